/**
 * The sharding layer against the raw driver on one file, side by side in one run.
 *
 *   npx --yes deno@2.9.6 task bench
 */

import { ShardManager } from "../mod.ts";
import { insertOneByOne, insertPacked, rawUsersDb, type User, USERS } from "./users.ts";

const dir = Deno.makeTempDirSync({ prefix: "shardlite-shard-bench-" });
const ROWS = 100_000;
const pool = { fileCheckIntervalMs: 0 };

function rows(from: number, count: number) {
  const out = new Array<User>(count);
  for (let i = 0; i < count; i++) {
    const id = from + i;
    out[i] = { id, name: `user${id}`, age: 18 + ((id * 7919) % 60) };
  }
  return out;
}

// --- routed point read vs the raw driver's prepared get --------------------------------

const raw = rawUsersDb(`${dir}/raw_read.db`);
insertOneByOne(raw, rows(1, 10_000));
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
    const db = rawUsersDb(`${dir}/raw_insert_${round++}.db`);
    b.start();
    insertOneByOne(db, bulk);
    b.end();
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
    const db = rawUsersDb(`${dir}/raw_multi_${round++}.db`);
    b.start();
    insertPacked(db, bulk);
    b.end();
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
const single = rawUsersDb(`${dir}/single.db`);
insertOneByOne(single, rows(1, ROWS));
single.exec("CREATE INDEX users_age ON users (age)");
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
