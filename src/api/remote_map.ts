/**
 * The shard map of shards on servers, kept with the shards: a reserved table on shard 0
 * (`_shardlite_meta`, row `map`), so that every client on every machine routes by the same
 * layout. Each shard also keeps the layout's epoch (row `epoch`), which every write checks
 * in its own transaction: a client that missed a reshard is refused, never applied under
 * the old layout.
 *
 * @module
 */

import { ShardMapMismatchError } from "../errors.ts";
import type { PooledConnection } from "../pool/connection.ts";
import { parseShardMap, type ShardMap } from "./shard_map.ts";

/** The reserved table: `key` → `value` (JSON or text). */
export const META_TABLE = "_shardlite_meta";

/** Creates {@link META_TABLE} when missing. */
export const CREATE_META_TABLE =
  `CREATE TABLE IF NOT EXISTS ${META_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)`;

const MAP_SOURCE = `the shard map (${META_TABLE} on shard 0)`;
const READ_MAP = `SELECT value FROM ${META_TABLE} WHERE key = 'map'`;
const WRITE_MAP = `INSERT INTO ${META_TABLE} (key, value) VALUES ('map', ?) ` +
  `ON CONFLICT (key) DO UPDATE SET value = excluded.value`;
const READ_EPOCH = `SELECT value FROM ${META_TABLE} WHERE key = 'epoch'`;
const WRITE_EPOCH = `INSERT INTO ${META_TABLE} (key, value) VALUES ('epoch', ?) ` +
  `ON CONFLICT (key) DO UPDATE SET value = excluded.value`;

/** The epoch of a map (1 when it has none: the first layout). */
export function epochOf(map: ShardMap): number {
  return map.epoch ?? 1;
}

/** What a shard records of the layout it belongs to. */
export interface ShardEpoch {
  /** The layout's epoch (1 when never recorded). */
  epoch: number;
  /** A reshard away from that layout is under way: writes wait for it to finish. */
  resharding: boolean;
}

function isMissingTable(error: unknown): boolean {
  return /no such table/i.test(String((error as Error)?.message ?? error));
}

/** Shard 0's map, or undefined when none was written yet (read outside a transaction). */
export async function readRemoteMap(
  conn: PooledConnection,
  where: string,
): Promise<ShardMap | undefined> {
  let row;
  try {
    row = await conn.get(READ_MAP);
  } catch (error) {
    if (isMissingTable(error)) return undefined;
    throw error;
  }
  return row === undefined ? undefined : parseShardMap(String(row["value"]), where, MAP_SOURCE);
}

/**
 * Shard 0's map; when there is none, `first()` is written in one transaction (two clients
 * starting at once agree on whichever wrote first).
 */
export async function readOrCreateRemoteMap(
  conn: PooledConnection,
  where: string,
  first: () => ShardMap,
): Promise<ShardMap> {
  const existing = await readRemoteMap(conn, where);
  if (existing !== undefined) return existing;
  return await conn.transaction(async (tx) => {
    await tx.exec(CREATE_META_TABLE);
    const row = await tx.get(READ_MAP);
    if (row !== undefined) return parseShardMap(String(row["value"]), where, MAP_SOURCE);
    const map = first();
    await tx.run(WRITE_MAP, [JSON.stringify(map)]);
    return map;
  });
}

/**
 * Changes shard 0's map in one transaction: `change` gets the map as stored now (never a
 * stale copy, so two clients' changes never overwrite each other) and returns the next.
 */
export async function updateRemoteMap(
  conn: PooledConnection,
  where: string,
  change: (map: ShardMap) => ShardMap,
): Promise<ShardMap> {
  return await conn.transaction(async (tx) => {
    await tx.exec(CREATE_META_TABLE);
    const row = await tx.get(READ_MAP);
    if (row === undefined) {
      throw new ShardMapMismatchError(where, `${MAP_SOURCE} is missing`);
    }
    const next = change(parseShardMap(String(row["value"]), where, MAP_SOURCE));
    await tx.run(WRITE_MAP, [JSON.stringify(next)]);
    return next;
  });
}

/** What shard `conn` records of its layout (inside the caller's transaction, or not). */
export async function readShardEpoch(conn: PooledConnection): Promise<ShardEpoch> {
  let row;
  try {
    row = await conn.get(READ_EPOCH);
  } catch (error) {
    if (isMissingTable(error)) return { epoch: 1, resharding: false };
    throw error;
  }
  if (row === undefined) return { epoch: 1, resharding: false };
  const match = /^(\d+)(\+?)$/.exec(String(row["value"]));
  if (match === null) {
    throw new ShardMapMismatchError(
      conn.path,
      `${META_TABLE}.epoch holds ${JSON.stringify(row["value"])}`,
    );
  }
  return { epoch: Number(match[1]), resharding: match[2] === "+" };
}

/** Records the shard's layout epoch (inside the caller's transaction). */
export async function writeShardEpoch(conn: PooledConnection, state: ShardEpoch): Promise<void> {
  await conn.exec(CREATE_META_TABLE);
  await conn.run(WRITE_EPOCH, [`${state.epoch}${state.resharding ? "+" : ""}`]);
}

const READ_PLAN = `SELECT value FROM ${META_TABLE} WHERE key = 'reshard'`;

/** The unfinished reshard plan recorded on shard 0 (`reshard` row), if any. */
export async function readRemotePlan(conn: PooledConnection): Promise<unknown | undefined> {
  let row;
  try {
    row = await conn.get(READ_PLAN);
  } catch (error) {
    if (isMissingTable(error)) return undefined;
    throw error;
  }
  return row === undefined ? undefined : JSON.parse(String(row["value"]));
}

/** Records (or, given null, removes) the reshard plan on shard 0. */
export async function writeRemotePlan(conn: PooledConnection, plan: unknown | null): Promise<void> {
  await conn.exec(CREATE_META_TABLE);
  if (plan === null) {
    await conn.run(`DELETE FROM ${META_TABLE} WHERE key = 'reshard'`);
    return;
  }
  await conn.run(
    `INSERT INTO ${META_TABLE} (key, value) VALUES ('reshard', ?) ` +
      `ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
    [JSON.stringify(plan)],
  );
}

/** Writes `map` on shard 0 (inside the caller's transaction). */
export async function writeRemoteMap(conn: PooledConnection, map: ShardMap): Promise<void> {
  await conn.exec(CREATE_META_TABLE);
  await conn.run(WRITE_MAP, [JSON.stringify(map)]);
}
