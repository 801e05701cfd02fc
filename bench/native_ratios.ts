/**
 * The native driver's and shared access's goals as ratios: medians over interleaved
 * rounds (each round times the baseline and the contender back to back).
 *
 *   npx --yes deno@2.9.6 run --allow-read --allow-write --allow-run bench/native_ratios.ts
 */

import { DatabaseSync } from "node:sqlite";
import { ConnectionPool, nativeDriver, ShardManager } from "../mod.ts";
import { USERS } from "./users.ts";
import { report } from "./medians.ts";

const dir = Deno.makeTempDirSync({ prefix: "shardlite-native-ratios-" });
const pool = { fileCheckIntervalMs: 0, driver: nativeDriver };

const rows = Array.from({ length: 100_000 }, (_, i) => ({
  id: i + 1,
  name: `user${i + 1}`,
  age: 18 + (i % 60),
}));

/** A raw node:sqlite file as a shard is configured (EXCLUSIVE, WAL, synchronous FULL). */
function rawDb(path: string): DatabaseSync {
  const db = new DatabaseSync(path, { timeout: 0 });
  db.exec(
    "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; " +
      "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)",
  );
  return db;
}

function rawInsert(db: DatabaseSync, batch: readonly typeof rows[number][]): void {
  const insert = db.prepare("INSERT INTO users (id, name, age) VALUES (?, ?, ?)");
  db.exec("BEGIN");
  for (const row of batch) insert.run(row.id, row.name, row.age);
  db.exec("COMMIT");
}

// 1. Point SELECT through a held lease vs a raw prepared get (µs per read).
{
  const raw = rawDb(`${dir}/raw.db`);
  rawInsert(raw, rows.slice(0, 10_000));
  const get = raw.prepare("SELECT * FROM users WHERE id = ?");
  await using shard = new ConnectionPool(`${dir}/lease.db`, pool);
  const lease = await shard.getConnection();
  await lease.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)");
  await lease.transaction(async (tx) => {
    for (const r of rows.slice(0, 10_000)) {
      await tx.run("INSERT INTO users VALUES (?, ?, ?)", [r.id, r.name, r.age]);
    }
  });
  const N = 20_000;
  const sql = "SELECT * FROM users WHERE id = ?";
  await report("native point SELECT through a held lease, µs", () => {
    const t = performance.now();
    for (let i = 0; i < N; i++) get.get((i % 10_000) + 1);
    return (performance.now() - t) * 1000 / N;
  }, async () => {
    const t = performance.now();
    for (let i = 0; i < N; i++) await lease.get(sql, [(i % 10_000) + 1]);
    return (performance.now() - t) * 1000 / N;
  }, "within 1.2x of a raw node:sqlite prepared get");

  // 2. select({ key }) over 4 native shards.
  const manager = new ShardManager({ numShards: 4, dbDir: `${dir}/reads`, pool });
  await manager.createTable("users", USERS, { shardKey: "id" });
  await manager.insertMany("users", rows.slice(0, 10_000));
  await report("native select({ key }) over 4 shards, µs", () => {
    const t = performance.now();
    for (let i = 0; i < N; i++) get.get((i % 10_000) + 1);
    return (performance.now() - t) * 1000 / N;
  }, async () => {
    const t = performance.now();
    for (let i = 0; i < N; i++) await manager.select("users", { key: (i % 10_000) + 1 });
    return (performance.now() - t) * 1000 / N;
  }, "within 1.5x of a raw node:sqlite prepared get");
  await lease.release();
  await manager.shutdown();
  raw.close();
}

// 3. insertMany of 20k and 100k rows over 4 native shards vs one raw transaction (ms).
for (const size of [20_000, 100_000]) {
  let round = 0;
  const batch = rows.slice(0, size);
  await report(
    `native insertMany of ${size} rows over 4 shards, ms`,
    () => {
      const db = rawDb(`${dir}/bulk_raw_${size}_${round}.db`);
      const t = performance.now();
      rawInsert(db, batch);
      const ms = performance.now() - t;
      db.close();
      return ms;
    },
    async () => {
      await using manager = new ShardManager({
        numShards: 4,
        dbDir: `${dir}/bulk_${size}_${round++}`,
        pool,
      });
      await manager.createTable("users", USERS, { shardKey: "id" });
      const t = performance.now();
      await manager.insertMany("users", batch);
      return performance.now() - t;
    },
    "at least the raw one-file rate (one transaction, one prepared statement a row)",
    7,
  );
}

// 4. Shared access: a reader's point SELECT while a writer holds a transaction open.
{
  await using shared = new ConnectionPool(`${dir}/shared.db`, {
    ...pool,
    access: "shared",
    maxConnections: 4,
  });
  await shared.withConnection(async (c) => {
    await c.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)");
    await c.transaction(async (tx) => {
      for (const r of rows.slice(0, 10_000)) {
        await tx.run("INSERT INTO users VALUES (?, ?, ?)", [r.id, r.name, r.age]);
      }
    });
  });
  const reader = await shared.getConnection();
  const writer = await shared.getConnection();
  const N = 20_000;
  const read = async () => {
    const t = performance.now();
    for (let i = 0; i < N; i++) {
      await reader.get("SELECT * FROM users WHERE id = ?", [(i % 10_000) + 1]);
    }
    return (performance.now() - t) * 1000 / N;
  };
  await report(
    "shared point SELECT, µs: unloaded vs with a writer's transaction open",
    read,
    async () => {
      await writer.exec("BEGIN IMMEDIATE");
      await writer.run("UPDATE users SET age = age + 1 WHERE id <= 100");
      try {
        return await read();
      } finally {
        await writer.exec("COMMIT");
      }
    },
    "within 1.5x of the unloaded time",
  );
  await reader.release();
  await writer.release();
}

// 5. Shared access: two processes inserting into one file vs one process alone.
{
  const fixture = new URL("../tests/fixtures/shared_writer.ts", import.meta.url).pathname;
  const config = new URL("../deno.json", import.meta.url).pathname;
  const PER = 2_000;
  let round = 0;
  const run = async (processes: number): Promise<number> => {
    const path = `${dir}/two_${round++}.db`;
    {
      await using setup = new ConnectionPool(path, { ...pool, access: "shared" });
      await setup.withConnection((c) =>
        c.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)")
      );
    }
    const each = (2 * PER) / processes;
    const t = performance.now();
    const children = Array.from({ length: processes }, (_, p) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--quiet",
          `--config=${config}`,
          "--allow-read",
          "--allow-write",
          fixture,
          path,
          String(p * each),
          String(each),
        ],
        stdout: "piped",
        stderr: "piped",
      }).output());
    for (const output of await Promise.all(children)) {
      if (output.code !== 0) throw new Error(new TextDecoder().decode(output.stderr));
    }
    const ms = performance.now() - t;
    const db = new DatabaseSync(path);
    const n = (db.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n;
    db.close();
    if (n !== 2 * PER) throw new Error(`lost rows: ${n} of ${2 * PER}`);
    return ms;
  };
  await report(
    `shared: ${2 * PER} single-row transactions, ms: one process vs two processes together`,
    () => run(1),
    () => run(2),
    "two together at least 0.8x one process's rate (time at most 1.25x)",
    5,
  );
}

Deno.removeSync(dir, { recursive: true });
