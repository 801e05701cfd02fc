/**
 * The goals as ratios, measured as medians over interleaved rounds: each round times the
 * baseline and the contender back to back, so machine noise hits both alike.
 * `deno bench` gives averages and percentiles but no median; this script gives medians.
 *
 *   npx --yes deno@2.9.6 run --allow-read --allow-write bench/ratios.ts
 */

import { Semaphore } from "async-mutex";
import genericPool from "generic-pool";
import { ConnectionPool, ShardManager } from "../mod.ts";
import { insertOneByOne, insertPacked, rawUsersDb, USERS } from "./users.ts";
import { report } from "./medians.ts";

const dir = Deno.makeTempDirSync({ prefix: "shardlite-ratios-" });
const pool = { fileCheckIntervalMs: 0 };

const rows = Array.from({ length: 100_000 }, (_, i) => ({
  id: i + 1,
  name: `user${i + 1}`,
  age: 18 + (i % 60),
}));

// 1. Point read by key (µs per read, 20k reads a round).
{
  const raw = rawUsersDb(`${dir}/raw.db`);
  insertOneByOne(raw, rows.slice(0, 10_000));
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
  const raw = (fill: typeof insertOneByOne) => () => {
    const db = rawUsersDb(`${dir}/bulk_raw_${round}_${fill.name}.db`);
    const t = performance.now();
    fill(db, rows);
    const ms = performance.now() - t;
    db.close();
    return ms;
  };
  const sharded = async () => {
    await using manager = new ShardManager({ numShards: 4, dbDir: `${dir}/bulk_${round++}`, pool });
    await manager.createTable("users", USERS, { shardKey: "id" });
    const t = performance.now();
    await manager.insertMany("users", rows);
    return performance.now() - t;
  };
  await report(
    "insert 100k rows, ms",
    raw(insertOneByOne),
    sharded,
    "insertMany at least 0.8x the raw rate",
  );
  // Information, no goal: insertMany packs rows into 100-row INSERTs; the same by hand.
  await report(
    "insert 100k rows, ms, raw packed by hand",
    raw(insertPacked),
    sharded,
    "none (information: the same packing on one file, no routing)",
  );
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
  // Information: a bare async-mutex Semaphore (no timeouts, stats or leases) in the same loop.
  const semaphore = new Semaphore(4);
  await report(
    "100 tasks on 4 slots, µs per lease, async-mutex Semaphore alone",
    () => contended(() => gp.acquire(), (r) => gp.release(r)),
    () =>
      contended(() => semaphore.acquire().then(([, release]) => release), (r: () => void) => r()),
    "none (information: the floor a queue of promises sets)",
  );
  await sl.closeAll();
  await gp.drain();
  await gp.clear();
}

Deno.removeSync(dir, { recursive: true });
