/**
 * Shard workers (`workers: 2`) against in-thread, medians over interleaved rounds
 * (bench/medians.ts), the baselines measured in the same run:
 *
 * 1. insertMany of 400k rows over 4 shards (goal: workers >= 1.5x the in-thread rate);
 * 2. insertMany of 20k rows over 4 shards vs a raw one-file insert (one transaction, one
 *    prepared statement a row), in-thread and with workers;
 * 3. the longest main-thread stall (bench/stall.ts) during a ~1 s cross-shard scan and an
 *    aggregate (goal with workers: <= 10 ms);
 * 4. point reads, 256 in flight (goal: workers within 1.5x of in-thread), and one at a time
 *    (the round trip).
 *
 *   npx --yes deno@2.9.6 run --allow-read=. --allow-write=.tmp bench/workers_ratios.ts [rounds]
 *
 * Run it on a quiet machine: figures taken while other processes run are noise.
 */

import { ShardManager } from "../mod.ts";
import { insertOneByOne, rawUsersDb, type User, USERS } from "./users.ts";
import { median, report } from "./medians.ts";
import { measureStall } from "./stall.ts";

Deno.mkdirSync(".tmp", { recursive: true });
const dir = Deno.makeTempDirSync({ dir: ".tmp", prefix: "shardlite-workers-" });
const pool = { fileCheckIntervalMs: 0 };
const rounds = Number(Deno.args[0] ?? 7);

function users(count: number): User[] {
  return Array.from({ length: count }, (_, i) => ({
    id: i + 1,
    name: `user${i + 1}`,
    age: 18 + ((i * 7919) % 60),
  }));
}

let serial = 0;
async function manager(workers: number): Promise<ShardManager> {
  const m = new ShardManager({ numShards: 4, dbDir: `${dir}/m${serial++}`, pool, workers });
  await m.createTable("users", USERS, { shardKey: "id" });
  return m;
}

// One manager per mode for the whole run, as in a server: its workers (and their compiled
// WebAssembly) stay warm. Each round writes a fresh table and drops it afterwards.
const writers = new Map<number, ShardManager>();
for (const workers of [0, 2]) writers.set(workers, await manager(workers));

async function timedInsert(workers: number, rows: User[]): Promise<number> {
  const m = writers.get(workers) as ShardManager;
  const table = `u${serial++}`;
  await m.createTable(table, USERS, { shardKey: "id" });
  const t = performance.now();
  await m.insertMany(table, rows);
  const ms = performance.now() - t;
  await m.dropTable(table);
  return ms;
}

// 1. insertMany 400k rows over 4 shards.
{
  const rows = users(400_000);
  await report(
    "insertMany 400k rows / 4 shards, ms: in-thread vs workers: 2",
    () => timedInsert(0, rows),
    () => timedInsert(2, rows),
    "workers >= 1.5x the in-thread rate",
    rounds,
  );
}

// 2. insertMany 20k rows over 4 shards vs a raw one-file insert.
{
  const rows = users(20_000);
  const raw = () => {
    const path = `${dir}/raw${serial++}.db`;
    const db = rawUsersDb(path);
    const t = performance.now();
    insertOneByOne(db, rows);
    const ms = performance.now() - t;
    db.close();
    Deno.removeSync(path);
    return ms;
  };
  await report(
    "insertMany 20k rows / 4 shards, ms: raw one-file insert vs in-thread",
    raw,
    () => timedInsert(0, rows),
    "in-thread at least the raw rate",
    rounds * 2,
  );
  await report(
    "insertMany 20k rows / 4 shards, ms: raw one-file insert vs workers: 2",
    raw,
    () => timedInsert(2, rows),
    "workers faster than raw",
    rounds * 2,
  );
}

for (const m of writers.values()) await m.shutdown();

// 3. The longest main-thread stall during a cross-shard scan and an aggregate.
{
  const N = 200_000;
  const rows = Array.from({ length: N }, (_, i) => ({
    id: i + 1,
    grp: i,
    n: (i * 7919) % N,
    name: `user${i}`,
  }));
  const schema = { id: "INTEGER PRIMARY KEY", grp: "INTEGER", n: "INTEGER", name: "TEXT" };
  const managers = new Map<number, ShardManager>();
  for (const workers of [0, 2]) {
    const m = new ShardManager({ numShards: 4, dbDir: `${dir}/scan${workers}`, pool, workers });
    await m.createTable("t", schema, { shardKey: "id" });
    await m.insertMany("t", rows);
    managers.set(workers, m);
  }
  const scan = async (m: ShardManager) => {
    let rows = 0;
    for await (const _ of m.iterate("t", { orderBy: "n" })) rows++;
    return rows;
  };
  const calls: [string, (m: ShardManager) => Promise<unknown>][] = [
    ["iterate (scan) 200k rows ordered across 4 shards", scan],
    ["select 200k rows ordered across 4 shards (kept)", (m) => m.select("t", { orderBy: "n" })],
    [
      "aggregate 4 expressions over 200k rows",
      (m) => m.aggregate("t", ["COUNT(*)", "SUM(n)", "AVG(grp)", "MAX(name)"]),
    ],
    ["aggregateBy 200k groups", (m) => m.aggregateBy("t", "grp", "COUNT(*)")],
  ];
  for (const [label, call] of calls) {
    const figures = new Map<number, { ms: number[]; stall: number[] }>();
    for (let r = 0; r < rounds; r++) {
      for (const [workers, m] of managers) {
        const { ms, stallMs } = await measureStall(() => call(m));
        const entry = figures.get(workers) ?? { ms: [], stall: [] };
        entry.ms.push(ms);
        entry.stall.push(stallMs);
        figures.set(workers, entry);
      }
    }
    for (const [workers, { ms, stall }] of figures) {
      console.log(
        `${label}, workers: ${workers}: ${median(ms).toFixed(0)} ms, longest stall ` +
          `${median(stall).toFixed(1)} ms (max of rounds ${Math.max(...stall).toFixed(1)})` +
          (workers > 0 ? "; goal stall <= 10 ms" : ""),
      );
    }
  }
  for (const m of managers.values()) await m.shutdown();
}

// 4. Point reads: 256 in flight, and one at a time.
{
  const rows = users(10_000);
  const inThread = await manager(0);
  const workers = await manager(2);
  // A pool's maxConnections bounds the calls in flight on its shard: 64 with workers by
  // default, 10 in-thread. With 10, 40 reads travel at once over 4 shards however many
  // callers wait, in smaller messages (the figure the default was raised for).
  const narrow = new ShardManager({
    numShards: 4,
    dbDir: `${dir}/m${serial++}`,
    pool: { ...pool, maxConnections: 10 },
    workers: 2,
  });
  await narrow.createTable("users", USERS, { shardKey: "id" });
  await inThread.insertMany("users", rows);
  await workers.insertMany("users", rows);
  await narrow.insertMany("users", rows);
  const N = 20_000;
  const inFlight = (m: ShardManager) => async () => {
    const t = performance.now();
    let next = 0;
    const reader = async () => {
      while (next < N) await m.select("users", { key: (next++ % 10_000) + 1 });
    };
    await Promise.all(Array.from({ length: 256 }, reader));
    return (performance.now() - t) * 1000 / N;
  };
  await report(
    "point reads, 256 in flight, µs/read: in-thread vs workers: 2",
    inFlight(inThread),
    inFlight(workers),
    "workers within 1.5x",
    rounds,
  );
  await report(
    "point reads, 256 in flight, µs/read: in-thread vs workers: 2 with maxConnections: 10",
    inFlight(inThread),
    inFlight(narrow),
    "none (the default before: 10 leases a shard)",
    rounds,
  );
  const oneAtATime = (m: ShardManager) => async () => {
    const t = performance.now();
    for (let i = 0; i < 5_000; i++) await m.select("users", { key: (i % 10_000) + 1 });
    return (performance.now() - t) * 1000 / 5_000;
  };
  await report(
    "point reads, one at a time, µs/read (the round trip): in-thread vs workers: 2",
    oneAtATime(inThread),
    oneAtATime(workers),
    "none (report the round trip)",
    rounds,
  );
  await inThread.shutdown();
  await workers.shutdown();
  await narrow.shutdown();
}

await Deno.remove(dir, { recursive: true });
