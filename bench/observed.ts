/**
 * Shardlite set up with and without observability, for `observability_bench.ts` and
 * `observability_ratios.ts`. Not a benchmark itself.
 */

import { ConnectionPool, type PoolOptions, type Row, ShardManager } from "../mod.ts";
import { USERS } from "./users.ts";

/** Rows in every table. */
export const ROWS = 10_000;
const POINT = "SELECT id, name, age FROM users WHERE id = ?";

/** What each variant adds to the pools' options; the first is the baseline. */
export const VARIANTS: Readonly<Record<string, PoolOptions>> = {
  "no listener": {},
  "onQuery (no-op listener)": { onQuery: () => {} },
  "timeStatements (histogram, no listener)": { timeStatements: true },
};

const rows = Array.from({ length: ROWS }, (_, i) => ({
  id: i + 1,
  name: `user${i + 1}`,
  age: 18 + (i % 60),
}));

/** A manager over 4 shards of `dir` holding ROWS users, with `extra` on every pool. */
export async function routedReads(dir: string, extra: PoolOptions): Promise<ShardManager> {
  const manager = new ShardManager({
    numShards: 4,
    dbDir: dir,
    pool: { fileCheckIntervalMs: 0, ...extra },
  });
  await manager.createTable("users", USERS, { shardKey: "id" });
  await manager.insertMany("users", rows);
  return manager;
}

/** A point read on a held lease of a pool on `path` holding ROWS users, and its close. */
export async function heldReads(
  path: string,
  extra: PoolOptions,
): Promise<{ get: (id: number) => Promise<Row | undefined>; close: () => Promise<void> }> {
  const pool = new ConnectionPool(path, { fileCheckIntervalMs: 0, ...extra });
  const conn = await pool.getConnection();
  await conn.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)");
  await conn.transaction((c) =>
    c.runMany("INSERT INTO users VALUES (?, ?, ?)", rows.map((r) => [r.id, r.name, r.age]))
  );
  return {
    get: (id) => conn.get(POINT, [id]),
    close: async () => {
      await conn.release();
      await pool.closeAll();
    },
  };
}
