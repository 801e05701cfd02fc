/**
 * Shard workers (`workers: 2`) against in-thread, one `deno bench` group per question, the
 * thing to beat marked as baseline. Medians and stalls: bench/workers_ratios.ts.
 *
 *   npx --yes deno@2.9.6 bench --allow-read=. --allow-write=.tmp bench/workers_bench.ts
 */

import { ShardManager } from "../mod.ts";
import { insertOneByOne, rawUsersDb, type User, USERS } from "./users.ts";

Deno.mkdirSync(".tmp", { recursive: true });
const dir = Deno.makeTempDirSync({ dir: ".tmp", prefix: "shardlite-workers-bench-" });
const pool = { fileCheckIntervalMs: 0 };

function users(count: number): User[] {
  return Array.from({ length: count }, (_, i) => ({
    id: i + 1,
    name: `user${i + 1}`,
    age: 18 + ((i * 7919) % 60),
  }));
}

// One manager per mode, as in a server (its workers stay warm); a fresh table per run.
let serial = 0;
const writers = new Map<number, ShardManager>();
for (const workers of [0, 2]) {
  const m = new ShardManager({ numShards: 4, dbDir: `${dir}/w${workers}`, pool, workers });
  writers.set(workers, m);
}
async function insertInto(workers: number, rows: User[]): Promise<void> {
  const m = writers.get(workers) as ShardManager;
  const table = `u${serial++}`;
  await m.createTable(table, USERS, { shardKey: "id" });
  await m.insertMany(table, rows);
  await m.dropTable(table);
}

const rows400k = users(400_000);
for (const workers of [0, 2]) {
  Deno.bench({
    group: "insertMany 400k rows / 4 shards",
    name: workers === 0 ? "in-thread" : `workers: ${workers}`,
    baseline: workers === 0,
    n: 5,
    warmup: 1,
    async fn() {
      await insertInto(workers, rows400k);
    },
  });
}

const rows20k = users(20_000);
Deno.bench({
  group: "insertMany 20k rows / 4 shards",
  name: "raw: one file, one transaction, one prepared statement a row",
  baseline: true,
  n: 20,
  warmup: 2,
  fn() {
    const path = `${dir}/raw${serial++}.db`;
    const db = rawUsersDb(path);
    insertOneByOne(db, rows20k);
    db.close();
    Deno.removeSync(path);
  },
});
for (const workers of [0, 2]) {
  Deno.bench({
    group: "insertMany 20k rows / 4 shards",
    name: workers === 0 ? "insertMany in-thread" : `insertMany workers: ${workers}`,
    n: 20,
    warmup: 2,
    async fn() {
      await insertInto(workers, rows20k);
    },
  });
}

const readers = new Map<number, ShardManager>();
for (const workers of [0, 2]) {
  const m = new ShardManager({ numShards: 4, dbDir: `${dir}/reads${workers}`, pool, workers });
  await m.createTable("users", USERS, { shardKey: "id" });
  await m.insertMany("users", users(10_000));
  readers.set(workers, m);
}
let key = 0;
const nextKey = () => (key = (key % 10_000) + 1);
for (const [workers, m] of readers) {
  Deno.bench({
    group: "point reads, 256 in flight",
    name: workers === 0 ? "in-thread" : `workers: ${workers}`,
    baseline: workers === 0,
    async fn() {
      await Promise.all(Array.from({ length: 256 }, () => m.select("users", { key: nextKey() })));
    },
  });
}
for (const [workers, m] of readers) {
  Deno.bench({
    group: "point read, one at a time",
    name: workers === 0 ? "in-thread" : `workers: ${workers}`,
    baseline: workers === 0,
    async fn() {
      await m.select("users", { key: nextKey() });
    },
  });
}

globalThis.addEventListener("unload", () => {
  for (const m of [...readers.values(), ...writers.values()]) void m.shutdown();
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch {
    // The workers may still be closing their files; the next run's temp dir is new.
  }
});
