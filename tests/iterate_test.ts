/**
 * Streaming: `manager.iterate` and `conn.iterate` give the rows `select`/`all` give, in
 * the same order, holding a bounded number of rows, and end every query and lease when
 * the loop ends early, fails or the lease is returned.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { setImmediate } from "node:timers";
import {
  ConnectionBrokenError,
  ConnectionPool,
  InvalidQueryError,
  type Row,
  ShardManager,
} from "../mod.ts";
import { closableDriver, prng, tempDir, testDriver } from "./helpers.ts";
import { rowidCuts, sortSplit } from "../src/routing/split.ts";

const USERS = { id: "INTEGER PRIMARY KEY", team: "TEXT", score: "REAL", tag: "" };

function users(n: number, seed = 1) {
  const random = prng(seed);
  return Array.from({ length: n }, (_, i) => ({
    id: i + 1,
    team: ["red", "blue", "green", null][Math.floor(random() * 4)] as string | null,
    score: Math.floor(random() * 1000) / 10,
    tag: random() < 0.2 ? null : random() < 0.5 ? Math.floor(random() * 50) : `t${i % 7}`,
  }));
}

async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const row of stream) out.push(row);
  return out;
}

function activeLeases(manager: ShardManager): number {
  let active = 0;
  for (let id = 0; id < manager.numShards; id++) active += manager.getPool(id).counts().active;
  return active;
}

Deno.test("iterate equals select for every option, with small pages", async (t) => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  await manager.createTable("users", USERS, { shardKey: "id" });
  await manager.insertMany("users", users(1_500));

  const cases = [
    {},
    { orderBy: "id" },
    { orderBy: [{ column: "score", direction: "desc" as const }, "id"] },
    { orderBy: ["team", "tag", "id"], limit: 333, offset: 17 },
    { where: { team: "red" }, orderBy: "score", columns: ["id"] },
    { key: 42 },
    { limit: 10, offset: 5 },
    { orderBy: "tag", columns: ["team"], limit: 50 },
  ];
  for (const options of cases) {
    await t.step(JSON.stringify(options), async () => {
      const selected = await manager.select("users", options);
      for (const pageSize of [1, 7, 256]) {
        const streamed = await collect(manager.iterate("users", { ...options, pageSize }));
        if (options.orderBy === undefined) {
          // Unordered: the same rows (select and iterate both go shard by shard).
          assert.deepEqual(streamed, selected);
        } else {
          assert.deepEqual(
            streamed.map((r) => r),
            selected,
            `pageSize ${pageSize}`,
          );
        }
      }
      assert.equal(activeLeases(manager), 0);
    });
  }
});

Deno.test("property: an ordered stream over shards equals one unsharded database", async () => {
  await using dir = await tempDir();
  let round = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 5 }),
      fc.integer({ min: 0, max: 400 }),
      fc.integer({ min: 1, max: 50 }),
      fc.constantFrom("score", "team", "tag"),
      fc.constantFrom<"asc" | "desc">("asc", "desc"),
      fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }),
      fc.integer({ min: 0, max: 30 }),
      async (numShards, n, pageSize, column, direction, limit, offset) => {
        const rows = users(n, round + 7);
        await using manager = new ShardManager({ numShards, dbDir: `${dir.path}/m${round}` });
        await using pool = new ConnectionPool(`${dir.path}/one${round++}.db`);
        await manager.createTable("users", USERS, { shardKey: "id" });
        await manager.insertMany("users", rows);
        const expected = await pool.withConnection(async (conn) => {
          await conn.exec(
            `CREATE TABLE users (id INTEGER PRIMARY KEY, team TEXT, score REAL, tag)`,
          );
          for (const r of rows) {
            await conn.run("INSERT INTO users VALUES (?, ?, ?, ?)", [r.id, r.team, r.score, r.tag]);
          }
          return await conn.all(
            `SELECT * FROM users ORDER BY "${column}" ${direction}, id LIMIT ? OFFSET ?`,
            [limit ?? -1, offset],
          );
        });
        const streamed = await collect(manager.iterate("users", {
          orderBy: [{ column, direction }, "id"],
          pageSize,
          limit,
          offset,
        }));
        assert.deepEqual(streamed.map((r) => ({ ...r })), expected.map((r) => ({ ...r })));
        assert.equal(activeLeases(manager), 0);
      },
    ),
    { numRuns: Deno.env.get("SHARDLITE_STRESS") ? 150 : 25, seed: 4242 },
  );
});

Deno.test("a sort split into rowid runs gives the rows of the unsplit select", async (t) => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 3, dbDir: dir.path });
  await manager.createTable("users", USERS, { shardKey: "id" });
  // Duplicate sort values, NULLs, and integers mixed with text in `tag`.
  await manager.insertMany("users", users(1_200, 99));
  const saved = sortSplit.runRows;
  const cases = [
    { orderBy: ["tag", "id"] },
    { orderBy: [{ column: "team", direction: "desc" as const }, "tag", "id"] },
    { orderBy: [{ column: "score", direction: "desc" as const }, "id"], limit: 77, offset: 31 },
    { where: { or: [{ team: "red" }, { tag: null }] }, orderBy: ["tag", "id"], columns: ["id"] },
    { orderBy: ["team", "id"], columns: ["score"], limit: 500 },
  ];
  try {
    for (const options of cases) {
      await t.step(JSON.stringify(options), async () => {
        sortSplit.runRows = Infinity;
        const whole = await manager.select("users", options);
        const wholeStreamed = await collect(manager.iterate("users", { ...options, pageSize: 9 }));
        assert.deepEqual(wholeStreamed, whole);
        // About 400 rows a shard in runs of about 30: a dozen runs each.
        sortSplit.runRows = 30;
        const cuts = await manager.getPool(0).withConnection((conn) => rowidCuts(conn, "users"));
        assert.ok(cuts.length >= 5, `${cuts.length + 1} runs`);
        assert.deepEqual(await manager.select("users", options), whole);
        for (const pageSize of [1, 7, 256]) {
          const streamed = await collect(manager.iterate("users", { ...options, pageSize }));
          assert.deepEqual(streamed, whole, `pageSize ${pageSize}`);
        }
        assert.equal(activeLeases(manager), 0);
      });
    }
  } finally {
    sortSplit.runRows = saved;
  }
});

Deno.test("aggregateBy split into rowid runs gives the groups of the unsplit one", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 3, dbDir: dir.path });
  await manager.createTable("users", USERS, { shardKey: "id" });
  await manager.insertMany("users", users(1_200, 7));
  const saved = sortSplit.runRows;
  const cases: [string | string[], string[], Record<string, unknown>?][] = [
    ["tag", ["COUNT(*)", "SUM(score)", "AVG(score)", "MIN(id)", "MAX(team)"]],
    [["team", "tag"], ["COUNT(*)", "SUM(score)"]],
    ["team", ["COUNT(*)", "AVG(score)"], { where: { score: { gt: 10 } } }],
  ];
  try {
    for (const [groupBy, expressions, options] of cases) {
      sortSplit.runRows = Infinity;
      const whole = await manager.aggregateBy("users", groupBy, expressions, options);
      sortSplit.runRows = 30;
      const cuts = await manager.getPool(0).withConnection((conn) => rowidCuts(conn, "users"));
      assert.ok(cuts.length >= 5, `${cuts.length + 1} runs`);
      // REAL sums add in another order: equal to the last bits (see the README), else exact.
      const near = (rows: Row[]) =>
        rows.map((row) =>
          Object.fromEntries(
            Object.entries(row).map(([k, v]) => [
              k,
              typeof v === "number" && !Number.isInteger(v) ? Number(v.toPrecision(12)) : v,
            ]),
          )
        );
      const split = await manager.aggregateBy("users", groupBy, expressions, options);
      assert.equal(split.length, whole.length);
      assert.deepEqual(near(split), near(whole), JSON.stringify([groupBy, expressions, options]));
    }
  } finally {
    sortSplit.runRows = saved;
  }
  assert.equal(activeLeases(manager), 0);
});

Deno.test("aggregate split into rowid ranges gives the values of the unsplit one", async () => {
  await using dir = await tempDir();
  // In-thread: the split is for this thread's event loop (with workers, none: see below).
  await using manager = new ShardManager({ numShards: 3, dbDir: dir.path, workers: 0 });
  await manager.createTable("users", USERS, { shardKey: "id" });
  await manager.insertMany("users", users(1_200, 7));
  // REAL sums add in another order: equal to the last bits, else exact.
  const near = (row: Record<string, unknown>) =>
    Object.fromEntries(
      Object.entries(row).map(([k, v]) => [
        k,
        typeof v === "number" && !Number.isInteger(v) ? Number(v.toPrecision(12)) : v,
      ]),
    );
  const ranges = () => {
    let n = 0;
    return {
      onQuery: (e: { sql: string }) => {
        if (/rowid >= \?/.test(e.sql)) n++;
      },
      count: () => n,
    };
  };
  const unseen = ranges();
  await using inWorkers = new ShardManager({
    numShards: 3,
    dbDir: `${dir.path}/w`,
    workers: 2,
    onQuery: unseen.onQuery,
  });
  await inWorkers.createTable("users", USERS, { shardKey: "id" });
  await inWorkers.insertMany("users", users(1_200, 7));
  const saved = sortSplit.runRows;
  const cases: [string[], Record<string, unknown>?][] = [
    [["COUNT(*)", "SUM(score)", "AVG(score)", "MIN(id)", "MAX(team)", "COUNT(tag)"]],
    [["COUNT(*)", "AVG(score)", "MIN(tag)"], { where: { score: { gt: 10 } } }],
    [["SUM(score)", "MAX(score)"], { where: { score: { gt: 1e9 } } }], // no row matches
  ];
  try {
    for (const [expressions, options] of cases) {
      sortSplit.runRows = Infinity;
      const whole = await manager.aggregate("users", expressions, options);
      sortSplit.runRows = 30;
      const seen = ranges();
      await using split = new ShardManager({
        numShards: 3,
        dbDir: dir.path,
        workers: 0,
        onQuery: seen.onQuery,
      });
      const got = await split.aggregate("users", expressions, options);
      assert.ok(seen.count() >= 3 * 5, `${seen.count()} range statements`);
      // Shard workers run SQLite elsewhere: one statement a shard, no ranges.
      const before = unseen.count();
      const fromWorkers = await inWorkers.aggregate("users", expressions, options);
      assert.equal(unseen.count(), before);
      assert.deepEqual(near(fromWorkers), near(whole));
      assert.deepEqual(near(got), near(whole), JSON.stringify([expressions, options]));
    }
  } finally {
    sortSplit.runRows = saved;
  }
  assert.equal(activeLeases(manager), 0);
});

Deno.test("no split for WITHOUT ROWID tables or a column named rowid", async () => {
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/one.db`);
  await pool.withConnection(async (conn) => {
    await conn.exec(
      "CREATE TABLE plain (id INTEGER PRIMARY KEY, v); " +
        "CREATE TABLE wr (id INTEGER PRIMARY KEY, v) WITHOUT ROWID; " +
        "CREATE TABLE shadow (id INTEGER PRIMARY KEY, oid INTEGER, v)",
    );
    for (const table of ["plain", "wr", "shadow"]) {
      await conn.exec(
        `WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 100) ` +
          `INSERT INTO ${table} (id, v) SELECT i, i % 3 FROM c`,
      );
    }
    assert.equal((await rowidCuts(conn, "plain", 10)).length, 9);
    assert.deepEqual(await rowidCuts(conn, "wr", 10), []);
    assert.deepEqual(await rowidCuts(conn, "shadow", 10), []);
    assert.deepEqual(await rowidCuts(conn, "plain", 150), []);
  });
});

Deno.test("200k rows over 4 shards: bounded memory, the unsharded order", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  await manager.createTable("big", { id: "INTEGER PRIMARY KEY", pad: "TEXT", n: "INTEGER" }, {
    shardKey: "id",
  });
  const N = 200_000;
  const pad = "x".repeat(400);
  for (let start = 0; start < N; start += 50_000) {
    await manager.insertMany(
      "big",
      Array.from({ length: 50_000 }, (_, i) => ({
        id: start + i + 1,
        pad,
        n: (start + i) * 7919 % N,
      })),
    );
  }
  // Ordered by a column no index covers: each shard sorts, the stream merges.
  const options = { orderBy: "n", columns: ["id", "n", "pad"] };
  // The live heap: a full GC first (the test task runs with --expose-gc), so garbage not
  // yet collected does not count, and the figures do not depend on when V8 collects.
  const gc = (globalThis as { gc?: () => void }).gc;
  assert.ok(gc !== undefined, "run with --v8-flags=--expose-gc (the test task does)");
  const heap = () => {
    gc();
    return Deno.memoryUsage().heapUsed;
  };

  // Streaming: the live heap stays near where it started, however many rows pass.
  const before = heap();
  let peak = before;
  let count = 0;
  let previous = -1;
  for await (const row of manager.iterate<{ id: number; n: number }>("big", options)) {
    assert.ok(row.n > previous, `row ${count}: ${row.n} after ${previous}`);
    previous = row.n;
    if (++count % 10_000 === 0) peak = Math.max(peak, heap());
  }
  assert.equal(count, N);
  const streamGrowth = peak - before;

  // The same rows through select: held all at once.
  const all = await manager.select("big", options);
  const selectGrowth = heap() - before;
  assert.equal(all.length, N);
  console.log(
    `heap growth: stream ${(streamGrowth / 2 ** 20).toFixed(1)} MiB, select ${
      (selectGrowth / 2 ** 20).toFixed(1)
    } MiB`,
  );
  // Measured: about 0.3 MiB against 35 MiB or more.
  assert.ok(
    streamGrowth * 20 < selectGrowth,
    `stream heap growth ${(streamGrowth / 2 ** 20).toFixed(1)} MiB vs select ` +
      `${(selectGrowth / 2 ** 20).toFixed(1)} MiB`,
  );
  assert.equal(activeLeases(manager), 0);
});

Deno.test("breaking out, return() and errors end every shard's query and lease", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  await manager.createTable("users", USERS, { shardKey: "id" });
  await manager.insertMany("users", users(2_000));

  let seen = 0;
  for await (const _ of manager.iterate("users", { orderBy: "score", pageSize: 10 })) {
    if (++seen === 25) break;
  }
  assert.equal(seen, 25);
  assert.equal(activeLeases(manager), 0);

  const stream = manager.iterate("users", { orderBy: "id", pageSize: 10 });
  assert.equal((await stream.next()).done, false);
  assert.equal(activeLeases(manager), 4); // one lease per shard while merging
  await stream.return?.();
  assert.equal(activeLeases(manager), 0);
  assert.deepEqual(await stream.next(), { done: true, value: undefined });

  // Bad options: the first next() rejects, nothing is leased.
  await assert.rejects(collect(manager.iterate("users", { pageSize: 0 })), RangeError);
  await assert.rejects(
    collect(manager.iterate("users", { orderBy: "nope; DROP" })),
    (e: unknown) => e instanceof Error,
  );
  await assert.rejects(
    collect(manager.iterate("users", null as never)),
    InvalidQueryError,
  );
  assert.equal(activeLeases(manager), 0);

  // The shards are still fully usable.
  assert.equal(await manager.count("users"), 2_000);
});

Deno.test("conn.iterate: pages, early end, lease return ends the query", async () => {
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/s.db`, { driver: testDriver() });
  await pool.withConnection(async (conn) => {
    await conn.exec("CREATE TABLE t (x INTEGER)");
    await conn.runMany("INSERT INTO t VALUES (?)", Array.from({ length: 1_000 }, (_, i) => [i]));
  });
  const conn = await pool.getConnection();
  const all = await collect(conn.iterate<{ x: number }>("SELECT x FROM t ORDER BY x", [], {
    pageSize: 33,
  }));
  assert.deepEqual(all.map((r) => r.x), Array.from({ length: 1_000 }, (_, i) => i));

  // Two streams at once on one lease, and a write between pages.
  const a = conn.iterate<{ x: number }>("SELECT x FROM t WHERE x < 100 ORDER BY x", [], {
    pageSize: 10,
  });
  const b = conn.iterate<{ x: number }>("SELECT x FROM t WHERE x >= 900 ORDER BY x");
  assert.equal((await a.next()).value?.x, 0);
  assert.equal((await b.next()).value?.x, 900);
  await conn.run("INSERT INTO t VALUES (?)", [5_000]);
  assert.equal((await a.next()).value?.x, 1);
  await a.return?.();
  await b.return?.();

  // The lease goes back with a stream open: the stream is finished, not truncated silently.
  const c = conn.iterate("SELECT x FROM t", [], { pageSize: 5 });
  await c.next();
  await pool.returnConnection(conn);
  await assert.rejects(async () => {
    for await (const _ of c) { /* drain */ }
  }, (e: unknown) => e instanceof Error && /returned|released/i.test(e.message));

  // Statements that open or end transactions are not streams.
  await pool.withConnection(async (again) => {
    await assert.rejects(collect(again.iterate("BEGIN")), TypeError);
    assert.equal(again.inTransaction, false);
  });
  await pool.closeAll();
});

Deno.test("a stream whose handle is replaced fails with ConnectionBrokenError, not a short read", async () => {
  await using dir = await tempDir();
  const { driver, handles } = closableDriver();
  await using pool = new ConnectionPool(`${dir.path}/s.db`, { driver });
  await pool.withConnection(async (conn) => {
    await conn.exec("CREATE TABLE t (x INTEGER)");
    await conn.runMany("INSERT INTO t VALUES (?)", Array.from({ length: 100 }, (_, i) => [i]));
  });
  const conn = await pool.getConnection();
  const stream = conn.iterate<{ x: number }>("SELECT x FROM t", [], { pageSize: 10 });
  assert.equal((await stream.next()).value?.x, 0);
  // The handle dies underneath (as a broken one would be closed and replaced).
  await handles[0]!.close();
  await assert.rejects(collect(stream), ConnectionBrokenError);
  // The lease goes on working on a new handle.
  assert.deepEqual(await conn.get("SELECT count(*) AS n FROM t"), { n: 100 });
  await pool.returnConnection(conn);
});

Deno.test("a select read in several runs per shard is one snapshot: a write lands before or after it", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 2, dbDir: dir.path });
  await manager.createTable("t", { id: "INTEGER PRIMARY KEY", n: "INTEGER", v: "INTEGER" }, {
    shardKey: "id",
  });
  await manager.insertMany(
    "t",
    Array.from({ length: 600 }, (_, i) => ({ id: i + 1, n: (i * 37) % 600, v: 0 })),
  );
  const saved = sortSplit.runRows;
  sortSplit.runRows = 30; // about 10 runs a shard, opened with event-loop turns between them
  try {
    const reading = manager.select<{ id: number; v: number }>("t", { orderBy: "n" });
    // Sent at the select's first turn of the event loop, when a shard's first run is open
    // and its others are not: one statement that changes every row.
    const writing = new Promise<number>((resolve, reject) =>
      setImmediate(() => manager.update("t", { v: 1 }, { allShards: true }).then(resolve, reject))
    );
    const [rows, changed] = await Promise.all([reading, writing]);
    assert.equal(changed, 600);
    // Per shard: before or after, never both (there is no isolation across shards).
    for (const shard of [0, 1]) {
      const seen = new Set(
        rows.filter((r) => manager.getShardId(r.id, "t") === shard).map((r) => r.v),
      );
      assert.equal(seen.size, 1, `shard ${shard}: the update seen by some runs, not others`);
    }
  } finally {
    sortSplit.runRows = saved;
  }
});
