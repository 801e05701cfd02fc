/**
 * The shard directory a command works on: found, its shard map read, a quiet manager
 * opened over it.
 *
 * @module
 */

import { ShardManager } from "../api/manager.ts";
import { readShardMap, SHARD_MAP_FILE, type ShardMap } from "../api/shard_map.ts";
import { strategyFromDescriptor } from "../routing/strategies.ts";
import { CommandFailure } from "./failure.ts";

/** Reads the map of `dbDir` or says why there is none. */
export function requireMap(dbDir: string): ShardMap {
  let isDirectory = false;
  try {
    isDirectory = Deno.statSync(dbDir).isDirectory;
  } catch {
    throw new CommandFailure(`${dbDir} does not exist; give the directory of a shard set.`);
  }
  if (!isDirectory) throw new CommandFailure(`${dbDir} is not a directory.`);
  const map = readShardMap(dbDir);
  if (map === undefined) {
    throw new CommandFailure(
      `${dbDir} has no shard map (${SHARD_MAP_FILE}); it is not a Shardlite directory, or a ` +
        `restore into it stopped half way (run the restore again with --overwrite).`,
    );
  }
  return map;
}

/** A manager over `dbDir` with the layout its map records. */
export function openManager(dbDir: string, map: ShardMap): ShardManager {
  return new ShardManager({
    dbDir,
    strategy: strategyFromDescriptor(map.strategy),
    // Quiet pools: the command reports what matters itself.
    pool: { onEvent: () => {} },
  });
}
