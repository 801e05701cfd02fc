/**
 * The persisted shard map: `<dbDir>/shardlite.json`, written atomically. It records the
 * layout (shard count, strategy and its parameters) and each table's shard-key column,
 * so a directory is never reopened with a layout that would route data elsewhere.
 *
 * @module
 */

import { ShardMapMismatchError, ShardOpenError } from "../errors.ts";
import type { KeyForm } from "../routing/key_column.ts";
import {
  sameLayout,
  type ShardingStrategy,
  type StrategyDescriptor,
  strategyFromDescriptor,
} from "../routing/strategies.ts";

/** The map file's format version. */
export const SHARD_MAP_FORMAT = 1;
/** The map file's name inside `dbDir`. */
export const SHARD_MAP_FILE = "shardlite.json";

/** How a shard-key column stores values (read from the schema; see `key_column.ts`). */
export interface KeyTypeEntry {
  /** The column's declared type as written (`""` for none). */
  declaredType: string;
  /** The column is the table's rowid alias (`INTEGER PRIMARY KEY`). */
  rowidAlias: boolean;
  /** The table is STRICT. */
  strictTable: boolean;
}

/** A table as the map records it. */
export interface TableEntry {
  /** The column whose value is the shard key, if the table has one. */
  shardKey: string | null;
  /** How that column stores keys; recorded when the table is created or first opened. */
  keyType?: KeyTypeEntry;
}

/** The persisted shard map. */
export interface ShardMap {
  /** {@link SHARD_MAP_FORMAT}. */
  format: number;
  /** Number of shards. */
  numShards: number;
  /** The strategy and its parameters. */
  strategy: StrategyDescriptor;
  /** Tables by name. */
  tables: Record<string, TableEntry>;
  /**
   * How keys are hashed (see `KeyForm` in `key_column.ts`). Absent in maps written before
   * key forms existed, which keep form 1 until a reshard or `repairPlacement` moves them.
   */
  keyForm?: KeyForm;
  /**
   * Shards on servers: the layout's generation, 1 for the first and one more after each
   * reshard. Every write checks it against the shard's own copy, so a client that missed
   * a reshard is refused rather than writing under the old layout. Absent: 1.
   */
  epoch?: number;
  /**
   * Shards on servers: each shard's server (URL, no token), in shard-id order, so that a
   * client whose list is shorter (another client grew the layout) can reach the new ones.
   */
  servers?: string[];
}

/** The key form a map routes by. */
export function keyFormOf(map: ShardMap): KeyForm {
  return map.keyForm ?? 1;
}

const encoder = new TextEncoder();

/** Reads the map of `dbDir`, or undefined when there is none. */
export function readShardMap(dbDir: string): ShardMap | undefined {
  const path = `${dbDir}/${SHARD_MAP_FILE}`;
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new ShardOpenError(path, "cannot read the shard map", { cause: error });
  }
  return parseShardMap(text, dbDir, SHARD_MAP_FILE);
}

/**
 * A map read from `source` (`SHARD_MAP_FILE`, or a server's reserved table), checked.
 * `where` is what errors name (the directory, or shard 0's URL).
 */
export function parseShardMap(text: string, where: string, source: string): ShardMap {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ShardMapMismatchError(where, `${source} is not valid JSON (${error})`);
  }
  const map = parsed as Partial<ShardMap>;
  if (map === null || typeof map !== "object" || map.format !== SHARD_MAP_FORMAT) {
    throw new ShardMapMismatchError(
      where,
      `${source} has format ${String(map?.format)}, this version reads ${SHARD_MAP_FORMAT}`,
    );
  }
  const strategy = strategyFromDescriptor(map.strategy);
  if (strategy.numShards !== map.numShards) {
    throw new ShardMapMismatchError(where, `numShards and strategy disagree in ${source}`);
  }
  if (map.keyForm !== undefined && map.keyForm !== 1 && map.keyForm !== 2) {
    throw new ShardMapMismatchError(
      where,
      `${source} has keyForm ${JSON.stringify(map.keyForm)}; this version reads 1 and 2`,
    );
  }
  return {
    format: SHARD_MAP_FORMAT,
    numShards: strategy.numShards,
    strategy: strategy.describe(),
    tables: typeof map.tables === "object" && map.tables !== null ? map.tables : {},
    ...(map.keyForm === undefined ? {} : { keyForm: map.keyForm }),
    ...(map.epoch === undefined ? {} : { epoch: checkEpochValue(map.epoch, where, source) }),
    ...(Array.isArray(map.servers) && map.servers.every((u) => typeof u === "string")
      ? { servers: map.servers }
      : {}),
  };
}

function checkEpochValue(epoch: unknown, where: string, source: string): number {
  if (!Number.isSafeInteger(epoch) || (epoch as number) < 1) {
    throw new ShardMapMismatchError(where, `${source} has epoch ${JSON.stringify(epoch)}`);
  }
  return epoch as number;
}

/** Writes the map atomically: a temporary file, fsync, rename. */
export function writeShardMap(dbDir: string, map: ShardMap): void {
  writeJsonAtomic(`${dbDir}/${SHARD_MAP_FILE}`, map);
}

/** Writes JSON atomically: a temporary file, fsync, rename, so a crash leaves old or new. */
export function writeJsonAtomic(path: string, value: unknown): void {
  // A name of its own: other isolates or processes may write the same file at once.
  const temporary = `${path}.${Deno.pid}-${crypto.randomUUID().slice(0, 8)}.tmp`;
  const file = Deno.openSync(temporary, { write: true, create: true, truncate: true, mode: 0o600 });
  try {
    file.writeSync(encoder.encode(JSON.stringify(value, null, 2) + "\n"));
    file.syncSync();
  } finally {
    file.close();
  }
  Deno.renameSync(temporary, path);
}

/**
 * {@link writeJsonAtomic} with asynchronous file operations: the writes and the fsync run
 * off the event loop (a reshard writes its plan after every batch).
 */
export async function writeJsonAtomicAsync(path: string, value: unknown): Promise<void> {
  const temporary = `${path}.${Deno.pid}-${crypto.randomUUID().slice(0, 8)}.tmp`;
  const file = await Deno.open(temporary, {
    write: true,
    create: true,
    truncate: true,
    mode: 0o600,
  });
  try {
    const bytes = encoder.encode(JSON.stringify(value, null, 2) + "\n");
    for (let at = 0; at < bytes.length;) at += await file.write(bytes.subarray(at));
    await file.sync();
  } finally {
    file.close();
  }
  await Deno.rename(temporary, path);
}

/** Compares a requested layout with the persisted one; throws on mismatch. */
export function checkLayout(dbDir: string, map: ShardMap, strategy: ShardingStrategy): void {
  if (map.numShards !== strategy.numShards) {
    throw new ShardMapMismatchError(
      dbDir,
      `it records ${map.numShards} shards, ${strategy.numShards} were asked for`,
    );
  }
  if (!sameLayout(map.strategy, strategy.describe())) {
    throw new ShardMapMismatchError(
      dbDir,
      `it records strategy ${JSON.stringify(map.strategy)}, ` +
        `${JSON.stringify(strategy.describe())} was asked for`,
    );
  }
}

/**
 * Runs `fn` holding the map's write lock (`shardlite.json.lock`, exclusive): under shared
 * access, users that read the map, change it and write it back take turns. Held only for
 * one small read and write, so it is waited for on the thread.
 */
export function withMapLock<T>(dbDir: string, fn: () => T): T {
  const lock = Deno.openSync(`${dbDir}/${SHARD_MAP_FILE}.lock`, {
    read: true,
    write: true,
    create: true,
    mode: 0o600,
  });
  try {
    lock.lockSync(true);
    return fn();
  } finally {
    lock.close(); // closing drops the lock
  }
}
