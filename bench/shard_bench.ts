/**
 * The sharding layer against the raw driver on one file, side by side in one run.
 *
 *   npx --yes deno@2.9.6 task bench
 */

import sqlite from "node-sqlite3-wasm";
import { ShardManager } from "../mod.ts";

const { Database } = sqlite;
const dir = Deno.makeTempDirSync({ prefix: "shardlite-shard-bench-" });
const ROWS = 100_000;
const USERS = { id: "INTEGER PRIMARY KEY", name: "TEXT", age: "INTEGER" };
const pool = { fileCheckIntervalMs: 0 };

function rows(from: number, count: number) {
  const out = new Array<{ id: number; name: string; age: number }>(count);
  for (let i = 0; i < count; i++) {
    const id = from + i;
    out[i] = { id, name: `user${id}`, age: 18 + ((id * 7919) % 60) };
  }
  return out;
}

/** Inserts rows 100 at a time through a prepared 100-row INSERT (ROWS is a multiple). */
function insertPacked(
  insert: { run(values: (string | number)[]): unknown },
  all: { id: number; name: string; age: number }[],
) {
  const values = new Array<string | number>(300);
  for (let i = 0; i < all.length; i += 100) {
    for (let j = 0; j < 100; j++) {
      const r = all[i + j] as { id: number; name: string; age: number };
      values[j * 3] = r.id;
      values[j * 3 + 1] = r.name;
      values[j * 3 + 2] = r.age;
    }
    insert.run(values);
  }
}

function rawHandle(path: string) {
  const db = new Database(path);
  db.get("PRAGMA locking_mode=EXCLUSIVE");
  db.get("PRAGMA journal_mode=WAL");
  db.exec("CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)");
  return db;
}

// --- routed point read vs the raw driver's prepared get --------------------------------

const raw = rawHandle(`${dir}/raw_read.db`);
{
  const insert = raw.prepare("INSERT INTO users VALUES (?, ?, ?)");
  raw.exec("BEGIN");
  for (const r of rows(1, 10_000)) insert.run([r.id, r.name, r.age]);
  raw.exec("COMMIT");
  insert.finalize();
}
const rawGet = raw.prepare("SELECT * FROM users WHERE id = ?");
const reads = new ShardManager({ numShards: 4, dbDir: `${dir}/reads`, pool });
await reads.createTable("users", USERS, { shardKey: "id" });
await reads.insertMany("users", rows(1, 10_000));
let k = 0;
const nextId = () => (k = (k % 10_000) + 1);

Deno.bench({
  group: "point read by key",
  name: "raw driver: prepared get on one handle",
  baseline: true,
  fn() {
    rawGet.get([nextId()]);
  },
});
Deno.bench({
  group: "point read by key",
  name: "ShardManager.select({ key }) over 4 shards",
  async fn() {
    await reads.select("users", { key: nextId() });
  },
});
Deno.bench({
  group: "point read by key",
  name: "ShardManager.query(key, sql) over 4 shards",
  async fn() {
    const id = nextId();
    await reads.query(id, "SELECT * FROM users WHERE id = ?", [id]);
  },
});

// --- bulk insert: 100k rows over 4 shards vs one transaction into one file ---------------

// Only the inserting (through COMMIT) is timed: opening files and closing them is not.
let round = 0;
const bulk = rows(1, ROWS);
Deno.bench({
  group: "insert 100k rows",
  name: "raw driver: one transaction, prepared insert, one file",
  baseline: true,
  n: 10,
  warmup: 1,
  fn(b) {
    const db = rawHandle(`${dir}/raw_insert_${round++}.db`);
    const insert = db.prepare("INSERT INTO users VALUES (?, ?, ?)");
    b.start();
    db.exec("BEGIN");
    for (const r of bulk) insert.run([r.id, r.name, r.age]);
    db.exec("COMMIT");
    b.end();
    insert.finalize();
    db.close();
  },
});
// For honesty: insertMany packs rows into 100-row INSERTs; this is the same trick by hand.
Deno.bench({
  group: "insert 100k rows",
  name: "raw driver: one transaction, 100-row multi-row INSERTs, one file",
  n: 10,
  warmup: 1,
  fn(b) {
    const db = rawHandle(`${dir}/raw_multi_${round++}.db`);
    const insert = db.prepare(
      `INSERT INTO users VALUES ${Array(100).fill("(?, ?, ?)").join(", ")}`,
    );
    b.start();
    db.exec("BEGIN");
    insertPacked(insert, bulk);
    db.exec("COMMIT");
    b.end();
    insert.finalize();
    db.close();
  },
});
Deno.bench({
  group: "insert 100k rows",
  name: "ShardManager.insertMany over 4 shards",
  n: 10,
  warmup: 1,
  async fn(b) {
    await using manager = new ShardManager({ numShards: 4, dbDir: `${dir}/bulk_${round++}`, pool });
    await manager.createTable("users", USERS, { shardKey: "id" });
    b.start();
    await manager.insertMany("users", bulk);
    b.end();
  },
});

// --- cross-shard reads over 8 shards ------------------------------------------------------

const wide = new ShardManager({ numShards: 8, dbDir: `${dir}/wide`, pool });
await wide.createTable("users", USERS, { shardKey: "id" });
await wide.insertMany("users", rows(1, ROWS));
const single = rawHandle(`${dir}/single.db`);
{
  const insert = single.prepare("INSERT INTO users VALUES (?, ?, ?)");
  single.exec("BEGIN");
  for (const r of rows(1, ROWS)) insert.run([r.id, r.name, r.age]);
  single.exec("COMMIT");
  insert.finalize();
  single.exec("CREATE INDEX users_age ON users (age)");
}
await wide.applySchema("CREATE INDEX IF NOT EXISTS users_age ON users (age)");

Deno.bench({
  group: "cross-shard count (100k rows)",
  name: "raw driver: COUNT(*) on one file",
  baseline: true,
  fn() {
    single.get("SELECT COUNT(*) AS n FROM users");
  },
});
Deno.bench({
  group: "cross-shard count (100k rows)",
  name: "ShardManager.count over 8 shards",
  async fn() {
    await wide.count("users");
  },
});
Deno.bench({
  group: "ORDER BY age DESC LIMIT 10 (100k rows)",
  name: "raw driver: one file",
  baseline: true,
  fn() {
    single.all("SELECT * FROM users ORDER BY age DESC, id LIMIT 10");
  },
});
Deno.bench({
  group: "ORDER BY age DESC LIMIT 10 (100k rows)",
  name: "ShardManager.select over 8 shards (k-way merge)",
  async fn() {
    await wide.select("users", {
      orderBy: [{ column: "age", direction: "desc" }, "id"],
      limit: 10,
    });
  },
});

globalThis.addEventListener("unload", () => {
  rawGet.finalize();
  raw.close();
  single.close();
  Deno.removeSync(dir, { recursive: true });
});
