/**
 * The shard directory a command works on: found, its shard map read, a quiet manager
 * opened over it.
 *
 * @module
 */

import { ShardManager } from "../api/manager.ts";
import { readShardMap, SHARD_MAP_FILE, type ShardMap } from "../api/shard_map.ts";
import { nativeDriver } from "../driver/native.ts";
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

/**
 * Whether `dbDir` is in use with `access: "shared"` now (a server with shared access is
 * live): its owner lock can be shared but not taken.
 */
export function inSharedUse(dbDir: string): boolean {
  let probe: Deno.FsFile;
  try {
    probe = Deno.openSync(`${dbDir}/${SHARD_MAP_FILE}.owner`, { read: true });
  } catch {
    return false;
  }
  try {
    if (probe.tryLockSync(true)) return false; // nobody holds it
    return probe.tryLockSync(false);
  } catch {
    return false;
  } finally {
    probe.close();
  }
}

/**
 * A manager over `dbDir` with the layout its map records. Beside a live server that
 * shares the directory (`access: "shared"`), the command shares it too, on the native
 * driver; otherwise it owns the directory, as a server with exclusive access would.
 */
export function openManager(dbDir: string, map: ShardMap): ShardManager {
  const shared = inSharedUse(dbDir);
  return new ShardManager({
    dbDir,
    strategy: strategyFromDescriptor(map.strategy),
    // Quiet pools: the command reports what matters itself.
    pool: shared ? { onEvent: () => {}, driver: nativeDriver } : { onEvent: () => {} },
    access: shared ? "shared" : "exclusive",
  });
}
