/**
 * The goals as ratios, measured as medians over interleaved rounds: each round times the
 * baseline and the contender back to back, so machine noise hits both alike.
 * `deno bench` gives averages and percentiles but no median; this script gives medians.
 *
 *   npx --yes deno@2.9.6 run --allow-read --allow-write bench/ratios.ts
 */

import sqlite from "node-sqlite3-wasm";
import genericPool from "generic-pool";
import { ConnectionPool, ShardManager } from "../mod.ts";

const { Database } = sqlite;
const dir = Deno.makeTempDirSync({ prefix: "shardlite-ratios-" });
const ROUNDS = 15;
const pool = { fileCheckIntervalMs: 0 };
const USERS = { id: "INTEGER PRIMARY KEY", name: "TEXT", age: "INTEGER" };

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

function rawDb(path: string) {
  const db = new Database(path);
  db.get("PRAGMA locking_mode=EXCLUSIVE");
  db.get("PRAGMA journal_mode=WAL");
  db.exec("CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)");
  return db;
}

const rows = Array.from({ length: 100_000 }, (_, i) => ({
  id: i + 1,
  name: `user${i + 1}`,
  age: 18 + (i % 60),
}));

async function report(
  label: string,
  baseline: () => Promise<number> | number,
  contender: () => Promise<number> | number,
  goal: string,
) {
  const base: number[] = [];
  const ours: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    base.push(await baseline());
    ours.push(await contender());
  }
  const b = median(base);
  const o = median(ours);
  console.log(
    `${label}: baseline ${b.toFixed(3)}, shardlite ${o.toFixed(3)} -> ${
      (o / b).toFixed(2)
    }x time (${(b / o).toFixed(2)}x rate); goal ${goal}`,
  );
}

// 1. Point read by key (µs per read, 20k reads a round).
{
  const raw = rawDb(`${dir}/raw.db`);
  const insert = raw.prepare("INSERT INTO users VALUES (?, ?, ?)");
  raw.exec("BEGIN");
  for (const r of rows.slice(0, 10_000)) insert.run([r.id, r.name, r.age]);
  raw.exec("COMMIT");
  insert.finalize();
  const get = raw.prepare("SELECT * FROM users WHERE id = ?");
  const manager = new ShardManager({ numShards: 4, dbDir: `${dir}/reads`, pool });
  await manager.createTable("users", USERS, { shardKey: "id" });
  await manager.insertMany("users", rows.slice(0, 10_000));
  const N = 20_000;
  await report("point read by key, µs", () => {
    const t = performance.now();
    for (let i = 0; i < N; i++) get.get([(i % 10_000) + 1]);
    return (performance.now() - t) * 1000 / N;
  }, async () => {
    const t = performance.now();
    for (let i = 0; i < N; i++) await manager.select("users", { key: (i % 10_000) + 1 });
    return (performance.now() - t) * 1000 / N;
  }, "select({ key }) within 2x of the raw prepared get");
  get.finalize();
  raw.close();
  await manager.shutdown();
}

// 2. insertMany of 100k rows over 4 shards vs one transaction into one file (ms).
{
  let round = 0;
  await report("insert 100k rows, ms", () => {
    const db = rawDb(`${dir}/bulk_raw_${round}.db`);
    const insert = db.prepare("INSERT INTO users VALUES (?, ?, ?)");
    const t = performance.now();
    db.exec("BEGIN");
    for (const r of rows) insert.run([r.id, r.name, r.age]);
    db.exec("COMMIT");
    const ms = performance.now() - t;
    insert.finalize();
    db.close();
    return ms;
  }, async () => {
    await using manager = new ShardManager({ numShards: 4, dbDir: `${dir}/bulk_${round++}`, pool });
    await manager.createTable("users", USERS, { shardKey: "id" });
    const t = performance.now();
    await manager.insertMany("users", rows);
    return performance.now() - t;
  }, "insertMany at least 0.8x the raw rate");
  // Information, no goal: insertMany packs rows into 100-row INSERTs; the same by hand.
  await report("insert 100k rows, ms, raw packed by hand", () => {
    const db = rawDb(`${dir}/bulk_packed_${round}.db`);
    const insert = db.prepare(
      `INSERT INTO users VALUES ${Array(100).fill("(?, ?, ?)").join(", ")}`,
    );
    const values = new Array<string | number>(300);
    const t = performance.now();
    db.exec("BEGIN");
    for (let i = 0; i < rows.length; i += 100) {
      for (let j = 0; j < 100; j++) {
        const r = rows[i + j] as { id: number; name: string; age: number };
        values[j * 3] = r.id;
        values[j * 3 + 1] = r.name;
        values[j * 3 + 2] = r.age;
      }
      insert.run(values);
    }
    db.exec("COMMIT");
    const ms = performance.now() - t;
    insert.finalize();
    db.close();
    return ms;
  }, async () => {
    await using manager = new ShardManager({ numShards: 4, dbDir: `${dir}/bulk_${round++}`, pool });
    await manager.createTable("users", USERS, { shardKey: "id" });
    const t = performance.now();
    await manager.insertMany("users", rows);
    return performance.now() - t;
  }, "none (information: the same packing on one file, no routing)");
}

// 3. 100 tasks on 4 slots, each lease held across one await (µs per lease).
{
  const sl = new ConnectionPool(`${dir}/contended.db`, { maxConnections: 4, ...pool });
  await sl.returnConnection(await sl.getConnection());
  const gp = genericPool.createPool<object>({
    create: () => Promise.resolve({}),
    destroy: () => Promise.resolve(),
  }, { max: 4, min: 0 });
  const contended = async (
    acquire: () => Promise<unknown>,
    release: (r: never) => unknown,
  ): Promise<number> => {
    const t = performance.now();
    for (let round = 0; round < 200; round++) {
      const tasks = new Array<Promise<void>>(100);
      for (let i = 0; i < 100; i++) {
        tasks[i] = (async () => {
          const r = await acquire();
          await null;
          await release(r as never);
        })();
      }
      await Promise.all(tasks);
    }
    return (performance.now() - t) * 1000 / 20_000;
  };
  await report(
    "100 tasks on 4 slots, µs per lease",
    () => contended(() => gp.acquire(), (r) => gp.release(r)),
    () => contended(() => sl.getConnection(), (r) => sl.returnConnection(r)),
    "faster than generic-pool",
  );
  await sl.closeAll();
  await gp.drain();
  await gp.clear();
}

Deno.removeSync(dir, { recursive: true });
