/**
 * Shard workers (`workers` option): the packed-parameter codec, the option's checks, lazy
 * start, a worker killed mid-write (both drivers, both ways to die), and shutdown ending
 * every worker so that the process exits by itself.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ConnectionBrokenError,
  ConnectionPool,
  nativeDriver,
  ShardManager,
  type SqlValue,
  wasmDriver,
  WorkerCrashedError,
} from "../mod.ts";
import {
  decodeParamSets,
  decodeReplies,
  decodeRequests,
  encodeParamSets,
  encodeReplies,
  encodeRequests,
  type Reply,
  type ReplyKind,
  type Request,
} from "../src/workers/protocol.ts";
import { WorkerHost, workerHostOf } from "../src/workers/host.ts";
import { MAX_WORKERS, WORKER_MAX_CONNECTIONS } from "../src/workers/options.ts";
import { type DriverName, DRIVERS, tempDir } from "./helpers.ts";

// --- codec ----------------------------------------------------------------------------------

const edgeNumbers = fc.constantFrom(
  0,
  -0,
  NaN,
  Infinity,
  -Infinity,
  2 ** 31,
  -(2 ** 31),
  2 ** 31 - 1,
  2 ** 53,
  -(2 ** 53) - 2,
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  5e-324,
);
const edgeBigints = fc.constantFrom(
  0n,
  -(2n ** 63n),
  2n ** 63n - 1n,
  2n ** 63n,
  -(2n ** 63n) - 1n,
  2n ** 200n,
  -(10n ** 40n),
);
const sqlValue: fc.Arbitrary<SqlValue> = fc.oneof(
  fc.constant(null),
  fc.integer(),
  fc.double(),
  edgeNumbers,
  fc.bigInt(),
  edgeBigints,
  fc.string(),
  fc.string({ unit: "grapheme", maxLength: 80 }),
  // Lone surrogates and every other code unit.
  fc.string({ unit: "binary", maxLength: 100 }),
  fc.string({ minLength: 60, maxLength: 300 }),
  fc.uint8Array({ maxLength: 64 }),
);

Deno.test("codec: decode(encode(rows)) deep-equals the rows for every SqlValue", () => {
  fc.assert(
    fc.property(fc.array(fc.array(sqlValue, { maxLength: 8 }), { maxLength: 40 }), (sets) => {
      const packed = encodeParamSets(sets);
      assert.ok(packed !== undefined);
      const decoded = decodeParamSets(packed.packed, packed.length);
      assert.deepEqual(decoded, sets);
      // deepEqual treats -0 and 0 as equal: check signs and NaN one by one.
      for (let s = 0; s < sets.length; s++) {
        for (let v = 0; v < (sets[s] as SqlValue[]).length; v++) {
          const want = sets[s]![v];
          if (typeof want === "number") assert.ok(Object.is(decoded[s]![v], want));
        }
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("codec: booleans and undefined kept; named parameters and objects are not packed", () => {
  const packed = encodeParamSets([[true, false, undefined as unknown as SqlValue]]);
  assert.ok(packed !== undefined);
  assert.deepEqual(decodeParamSets(packed.packed, packed.length), [[true, false, undefined]]);
  assert.equal(encodeParamSets([{ ":a": 1 }]), undefined);
  assert.equal(encodeParamSets([[new Date() as unknown as SqlValue]]), undefined);
  const big = "é".repeat(100_000);
  const one = encodeParamSets([[big]])!;
  assert.equal(decodeParamSets(one.packed, one.length)[0]![0], big);
});

// Every request shape, with the fields an encoder could drop or reorder.
const params = fc.option(fc.array(sqlValue, { maxLength: 4 }), { nil: undefined });
const plain = { noNullPrototype: true } as const;
const ids = fc.record({ id: fc.nat(), handle: fc.nat() }, plain);
const request: fc.Arbitrary<Request> = fc.oneof(
  fc.record({
    id: fc.nat(),
    op: fc.constant("open" as const),
    handle: fc.nat(),
    path: fc.string(),
    driver: fc.constantFrom("wasm" as const, "native" as const),
    create: fc.boolean(),
    statementCacheSize: fc.nat(),
  }, plain),
  fc.record({
    id: fc.nat(),
    op: fc.constant("configure" as const),
    handle: fc.nat(),
    access: fc.constantFrom("exclusive" as const, "shared" as const),
    synchronous: fc.constantFrom("full" as const, "normal" as const),
    cacheSizeKiB: fc.nat(),
  }, plain),
  fc.tuple(ids, fc.constantFrom("run", "all", "get", "values"), fc.string(), params).map(
    ([{ id, handle }, op, sql, p]) => {
      const r = { id, op, handle, sql } as Request & { params?: unknown };
      if (p !== undefined) r.params = p;
      return r as Request;
    },
  ),
  ids.map(({ id, handle }) => ({ id, op: "exec" as const, handle, sql: "BEGIN" })),
  fc.tuple(ids, fc.array(fc.array(sqlValue, { maxLength: 3 }), { maxLength: 3 })).map((
    [{ id, handle }, sets],
  ) => ({ id, op: "runMany" as const, handle, sql: "INSERT", sets: { sets } })),
  fc.tuple(ids, fc.nat(), params).map(([{ id, handle }, cursor, p]) => {
    const r: Request = { id, op: "iterate", handle, cursor, sql: "SELECT 1" };
    if (p !== undefined) r.params = p;
    return r;
  }),
  fc.tuple(ids, fc.nat(), fc.nat()).map(([{ id, handle }, cursor, max]) => ({
    id,
    op: "next" as const,
    handle,
    cursor,
    max,
  })),
  fc.tuple(ids, fc.nat()).map(([{ id, handle }, cursor]) => ({
    id,
    op: "closeCursor" as const,
    handle,
    cursor,
  })),
  ids.map(({ id, handle }) => ({ id, op: "backup" as const, handle, target: "/b.db" })),
  ids.map(({ id, handle }) => ({ id, op: "close" as const, handle })),
  fc.nat().map((id) => ({ id, op: "drain" as const })),
  fc.nat().map((id) => ({ id, op: "crash" as const })),
);

Deno.test("wire: requests and answers cross as flat arrays and come back equal", () => {
  fc.assert(
    fc.property(fc.array(request, { maxLength: 30 }), (requests) => {
      assert.deepEqual(decodeRequests(structuredClone(encodeRequests(requests))), requests);
    }),
    { numRuns: 300 },
  );
  const state = fc.record({
    open: fc.boolean(),
    inTransaction: fc.boolean(),
    cachedStatements: fc.nat({ max: 100_000 }),
  }, plain);
  const answer: fc.Arbitrary<[Reply, ReplyKind]> = fc.oneof(
    fc.tuple(fc.nat(), fc.array(fc.string(), { minLength: 1, maxLength: 4 }), fc.nat(5)).chain((
      [id, columns, count],
    ) =>
      fc.tuple(
        fc.array(sqlValue, {
          minLength: columns.length * count,
          maxLength: columns.length * count,
        }),
        fc.option(state, { nil: undefined }),
      ).map(([values, st]): [Reply, ReplyKind] => {
        const reply: Reply = { id, ok: true, value: { columns, values } };
        if (st !== undefined) reply.state = st;
        return [reply, "rows"];
      })
    ),
    fc.tuple(fc.nat(), fc.nat(), fc.oneof(fc.integer(), fc.bigInt()), state).map((
      [id, changes, lastInsertRowid, st],
    ): [Reply, ReplyKind] => [
      { id, ok: true, value: { changes, lastInsertRowid }, state: st },
      "run",
    ]),
    fc.tuple(
      fc.nat(),
      fc.oneof(fc.constant(null), fc.nat(), fc.dictionary(fc.string(), sqlValue, plain)),
    )
      .map(([id, value]): [Reply, ReplyKind] => [{ id, ok: true, value }, "value"]),
    fc.tuple(fc.nat(), fc.string(), state).map(([id, message, st]): [Reply, ReplyKind] => [
      {
        id,
        ok: false,
        error: { kind: "Error", name: "SQLiteError", message, fields: { code: 5 } },
        state: st,
      },
      "value",
    ]),
  );
  fc.assert(
    fc.property(fc.array(answer, { maxLength: 30 }), (pairs) => {
      const replies = pairs.map(([reply]) => reply);
      const kinds = pairs.map(([, kind]) => kind);
      assert.deepEqual(decodeReplies(structuredClone(encodeReplies(replies, kinds))), replies);
    }),
    { numRuns: 300 },
  );
});

// --- options ----------------------------------------------------------------------------------

Deno.test("workers: bad values, remote or custom drivers and shared access are refused", async () => {
  await using dir = await tempDir();
  for (const workers of [-1, 1.5, MAX_WORKERS + 1, Number.NaN, "2"]) {
    assert.throws(
      () => new ShardManager({ numShards: 2, dbDir: dir.path, workers: workers as number }),
      (e: unknown) => e instanceof RangeError && /^workers must be/.test(e.message),
      String(workers),
    );
  }
  const remote = { ...nativeDriver, name: "libsql", remote: true, canShare: true };
  assert.throws(
    () => new ShardManager({ numShards: 2, dbDir: dir.path, workers: 2, pool: { driver: remote } }),
    (e: unknown) => e instanceof TypeError && /workers \(2\).*remote/.test(e.message),
  );
  assert.throws(
    () => new ShardManager({ shards: ["ws://127.0.0.1:9"], workers: 2 }),
    (e: unknown) => e instanceof TypeError && /workers \(2\).*remote/.test(e.message),
  );
  const custom = { ...wasmDriver, name: "custom" };
  assert.throws(
    () => new ShardManager({ numShards: 2, dbDir: dir.path, workers: 1, pool: { driver: custom } }),
    (e: unknown) => e instanceof TypeError && /wasmDriver or nativeDriver/.test(e.message),
  );
  assert.throws(
    () =>
      new ShardManager({
        numShards: 2,
        dbDir: dir.path,
        workers: 2,
        access: "shared",
        pool: { driver: nativeDriver },
      }),
    (e: unknown) => e instanceof TypeError && /access "exclusive"/.test(e.message),
  );
  // 0 is in-thread, whatever the driver.
  const manager = new ShardManager({ numShards: 2, dbDir: dir.path, workers: 0 });
  assert.equal(manager.workers, 0);
  assert.equal(workerHostOf(manager), undefined);
  await manager.shutdown();
});

Deno.test("workers: started on first use, shard id % workers, ended by shutdown", async () => {
  await using dir = await tempDir();
  const manager = new ShardManager({ numShards: 4, dbDir: dir.path, workers: 3 });
  const host = workerHostOf(manager)!;
  assert.equal(manager.workers, 3);
  assert.equal(host.stats.started, 0, "nothing starts at construction");
  for (let id = 0; id < 4; id++) {
    assert.equal(host.workerIndexOf(manager.shardPath(id)), id % 3);
  }
  await manager.createTable("t", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
  assert.equal(host.stats.started, 3);
  await manager.shutdown();
  for (let i = 0; i < 3; i++) assert.equal(host.isRunning(i), false);
  // The files can go at once: nothing holds them.
  await Deno.remove(dir.path, { recursive: true });
  await Deno.mkdir(dir.path);
});

Deno.test("workers: pools default to 64 leases a shard; a maxConnections given is kept", async () => {
  await using dir = await tempDir();
  const wide = new ShardManager({ numShards: 2, dbDir: `${dir.path}/a`, workers: 2 });
  const given = new ShardManager({
    numShards: 2,
    dbDir: `${dir.path}/b`,
    workers: 2,
    pool: { maxConnections: 3 },
  });
  const inThread = new ShardManager({ numShards: 2, dbDir: `${dir.path}/c`, workers: 0 });
  try {
    assert.equal(wide.getPool(1).maxConnections, WORKER_MAX_CONNECTIONS);
    assert.equal(given.getPool(1).maxConnections, 3);
    assert.equal(inThread.getPool(1).maxConnections, 10);
  } finally {
    await wide.shutdown();
    await given.shutdown();
    await inThread.shutdown();
  }
});

Deno.test("workers: a cursor hands out every row once, in order, whatever the page sizes asked", async () => {
  await using dir = await tempDir();
  const host = new WorkerHost({
    workers: 1,
    driver: wasmDriver,
    kind: "wasm",
    shardIdOf: () => undefined,
  });
  const handle = await host.driver.open(`${dir.path}/c.db`, {
    create: true,
    statementCacheSize: 16,
  });
  try {
    await handle.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, pad TEXT)");
    // Narrow rows fill a page by count (2,048), wide ones by bytes (about 128 KiB).
    const narrow = Array.from({ length: 5_000 }, (_, i) => [i + 1, "x"]);
    const wide = Array.from({ length: 1_500 }, (_, i) => [5_001 + i, "y".repeat(2_000)]);
    await handle.exec("BEGIN");
    await handle.runMany("INSERT INTO t VALUES (?, ?)", [...narrow, ...wide]);
    await handle.exec("COMMIT");
    const cursor = await handle.iterate!("SELECT id, pad FROM t ORDER BY id");
    const sizes = [1, 100, 3_000, 7, 2_048, 4_096, 256, 10_000];
    const seen: number[] = [];
    for (let i = 0;; i++) {
      const size = sizes[i % sizes.length] as number;
      const rows = await cursor.next(size);
      assert.ok(rows.length <= size);
      for (const row of rows) seen.push(row.id as number);
      if (rows.length < size) break; // the end: nothing after a short page
    }
    assert.deepEqual(seen, Array.from({ length: 6_500 }, (_, i) => i + 1));
    assert.deepEqual(await cursor.next(10), []);
    await cursor.close();
  } finally {
    await handle.close();
    await host.shutdown();
  }
});

// --- a worker dies mid-write -------------------------------------------------------------------

/** The WorkerCrashedError in `error`'s cause chain, if any. */
function crashOf(error: unknown): WorkerCrashedError | undefined {
  for (let e = error; e instanceof Error; e = e.cause) {
    if (e instanceof WorkerCrashedError) return e;
  }
  return undefined;
}

/** A key of table `t` that lands on `shard`, from `from` upwards. */
function keyOn(manager: ShardManager, shard: number, from: number): number {
  let key = from;
  while (manager.getShardId(key, "t") !== shard) key++;
  return key;
}

for (const driverName of ["wasm", "native"] as DriverName[]) {
  for (const how of ["terminate", "throw"] as const) {
    Deno.test(
      `workers (${driverName}): a worker killed mid-write (${how}) fails its calls in flight ` +
        `with WorkerCrashedError; every acknowledged row is there after the restart`,
      async () => {
        await using dir = await tempDir();
        await using manager = new ShardManager({
          numShards: 4,
          dbDir: dir.path,
          workers: 2,
          pool: { driver: DRIVERS[driverName] },
        });
        const host = workerHostOf(manager)!;
        await manager.createTable("t", { id: "INTEGER PRIMARY KEY", v: "TEXT" }, {
          shardKey: "id",
        });
        // Worker 1 owns shards 1 and 3.
        const acknowledged = new Set<number>();
        const failures: unknown[] = [];
        let killed: Promise<void> | null = null;
        const kill = () => killed ??= host.killForTests(1, how);
        // A transaction open on shard 3 across the death: its row must be rolled back.
        const txKey = keyOn(manager, 3, 1_000_000);
        let txInserted!: () => void;
        const txInsertedNow = new Promise<void>((resolve) => txInserted = resolve);
        const transaction = manager.transaction(txKey, async (c) => {
          await c.run("INSERT INTO t (id, v) VALUES (?, 'tx')", [txKey]);
          txInserted();
          await kill();
          await c.run("INSERT INTO t (id, v) VALUES (?, 'tx2')", [txKey + 4_000_000]);
        }).then(() => assert.fail("the transaction cannot commit"), (e) => failures.push(e));
        await txInsertedNow;
        // One writer per shard, each inserting in turn; the kill comes on shard 1's 20th ack.
        const writers = [0, 1, 2, 3].map(async (shard) => {
          let key = shard * 100_000;
          for (let i = 0; i < 60; i++) {
            key = keyOn(manager, shard, key + 1);
            try {
              await manager.insert("t", { id: key, v: `w${shard}` });
              acknowledged.add(key);
              if (shard === 1 && i === 19) void kill();
            } catch (error) {
              failures.push(error);
            }
          }
        });
        // Bulk writes in flight on both workers as well.
        const bulk = Array.from({ length: 2_000 }, (_, i) => ({ id: 2_000_000 + i, v: "bulk" }));
        const bulkWrite = manager.insertMany("t", bulk).then(
          () => bulk.forEach((r) => acknowledged.add(r.id)),
          (error) => failures.push(error),
        );
        await Promise.all([...writers, transaction, bulkWrite]);
        await killed;

        assert.ok(failures.length >= 1, "the transaction's statement was in flight");
        for (const failure of failures) {
          const crash = crashOf(failure);
          assert.ok(crash !== undefined, `typed error, got ${String(failure)}`);
          assert.ok(crash instanceof ConnectionBrokenError);
          assert.equal(crash.workerIndex, 1);
          assert.deepEqual(crash.shardIds, [1, 3]);
          assert.match(crash.message, /worker 1 \(shards 1, 3\) died/);
          assert.ok(crash.cause instanceof Error);
        }
        // Every acknowledged row is there; the transaction's rows are not.
        const ids = new Set(
          (await manager.select("t", { columns: ["id"] })).map((r) => Number(r["id"])),
        );
        for (const id of acknowledged) assert.ok(ids.has(id), `acknowledged row ${id}`);
        assert.equal(ids.has(txKey), false, "the transaction was rolled back");
        assert.equal(host.stats.died, 1);
        // The manager keeps working, on the restarted worker's shards too.
        const after = [keyOn(manager, 1, 3_000_000), keyOn(manager, 3, 3_000_000)];
        for (const key of after) await manager.insert("t", { id: key, v: "after" });
        for (const key of after) {
          assert.deepEqual(await manager.select("t", { key, columns: ["v"] }), [{ v: "after" }]);
        }
        await manager.transaction(
          txKey,
          (c) => c.run("INSERT INTO t (id, v) VALUES (?, 'x')", [txKey]),
        );
        assert.equal(await manager.count("t", { id: txKey }), 1);
        assert.ok(host.isRunning(1), "restarted");
        assert.equal(host.stats.started, 3);
      },
    );
  }
}

Deno.test("workers: a killed worker's wasm lock directories are cleared before its shards reopen", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 2, dbDir: dir.path, workers: 2 });
  await manager.createTable("t", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
  const key = keyOn(manager, 1, 1);
  await manager.insert("t", { id: key });
  await workerHostOf(manager)!.killForTests(1, "terminate");
  // What the dead worker left: its node-sqlite3-wasm lock directory.
  assert.ok((await Deno.stat(`${manager.shardPath(1)}.lock`)).isDirectory);
  assert.deepEqual(await manager.select("t", { key }), [{ id: key }]);
  await manager.insert("t", { id: keyOn(manager, 1, key + 1) });
  assert.equal(await manager.count("t"), 2);
});

Deno.test("workers: a process that shuts its manager down exits by itself; the permissions workers need", async () => {
  await using dir = await tempDir();
  const script = `
    import { ShardManager } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
    const manager = new ShardManager({ numShards: 4, dbDir: ${
    JSON.stringify(dir.path)
  }, workers: 2 });
    await manager.createTable("t", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
    await manager.insertMany("t", Array.from({ length: 1000 }, (_, id) => ({ id })));
    if (await manager.count("t") !== 1000) throw new Error("count");
    await manager.shutdown();
    await Deno.remove(${JSON.stringify(dir.path)}, { recursive: true });
    console.log("shut down");
  `;
  const scriptPath = `${dir.path}/main.ts`;
  await Deno.writeTextFile(scriptPath, script);
  const root = new URL("..", import.meta.url).pathname;
  const run = async (read: string) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        `--config=${root}deno.json`,
        `--allow-read=${read}`,
        `--allow-write=${dir.path}`,
        scriptPath,
      ],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // A watchdog, not a synchronisation: a child kept alive by a worker never exits.
    const watchdog = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const { code, stdout, stderr } = await child.output();
    clearTimeout(watchdog);
    const decoder = new TextDecoder();
    return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
  };
  // The narrowest permissions: read the library's code (the worker module), the npm
  // packages and the data; write the data.
  const ok = await run(`${root}src,${root}node_modules,${dir.path}`);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout.trim(), "shut down");
  await Deno.mkdir(dir.path, { recursive: true });
  await Deno.writeTextFile(scriptPath, script);
  // Without read access to the library's code the workers cannot start: a typed error.
  const refused = await run(`${root}node_modules,${dir.path}`);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /ShardOpenError/);
  assert.match(refused.stderr, /Requires read access to "[^"]*src\/workers\/worker\.ts"/);
  await Deno.mkdir(dir.path, { recursive: true });
});

Deno.test("workers: a failing statement answered with a sibling's BEGIN in one batch does not take its transaction", async () => {
  await using dir = await tempDir();
  const host = new WorkerHost({
    workers: 1,
    driver: wasmDriver,
    kind: "wasm",
    shardIdOf: () => 0,
  });
  const pool = new ConnectionPool(`${dir.path}/shard_0.db`, {
    driver: host.driver,
    timeoutMs: 2_000,
  });
  try {
    await pool.withConnection((c) => c.exec("CREATE TABLE t (id INTEGER PRIMARY KEY)"));
    await pool.withConnection((c) => c.run("INSERT INTO t VALUES (1)"));
    const x = await pool.getConnection();
    const y = await pool.getConnection();
    const before = host.stats.messages;
    // Sent in one message, answered in one: x fails, y's BEGIN opens the transaction.
    const failing = x.run("INSERT INTO t VALUES (1)");
    const begin = y.run("BEGIN IMMEDIATE");
    const [f, b] = await Promise.allSettled([failing, begin]);
    assert.equal(host.stats.messages - before, 1, "one message for both");
    assert.equal(f.status, "rejected");
    assert.equal(b.status, "fulfilled");
    // y owns the transaction: its statements run; x's waits for the COMMIT.
    const order: string[] = [];
    const xInsert = x.run("INSERT INTO t VALUES (3)").then(() => order.push("x"));
    await y.run("INSERT INTO t VALUES (2)");
    order.push("y insert");
    await y.run("COMMIT");
    order.push("y commit");
    await xInsert;
    assert.deepEqual(order, ["y insert", "y commit", "x"]);
    await x[Symbol.asyncDispose]();
    await y[Symbol.asyncDispose]();
    const ids = await pool.withConnection((c) => c.all("SELECT id FROM t ORDER BY id"));
    assert.deepEqual(ids, [{ id: 1 }, { id: 2 }, { id: 3 }]);
  } finally {
    await pool.closeAll();
    await host.shutdown();
  }
});

Deno.test("workers: a value that cannot be sent fails its own call only", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 1, dbDir: dir.path, workers: 1 });
  await manager.createTable("t", { id: "INTEGER PRIMARY KEY", v: "TEXT" }, { shardKey: "id" });
  const pool = manager.getPool(0);
  const [bad, good] = await Promise.allSettled([
    pool.withConnection((c) =>
      c.run("INSERT INTO t VALUES (?, ?)", [1, (() => 1) as unknown as string])
    ),
    pool.withConnection((c) => c.run("INSERT INTO t VALUES (?, ?)", [2, "ok"])),
  ]);
  assert.equal(bad.status, "rejected");
  assert.equal(good.status, "fulfilled");
  assert.deepEqual(await manager.select("t", { columns: ["id"] }), [{ id: 2 }]);
});

Deno.test("workers: two managers on one directory share the workers; one shutting down leaves the other working", async () => {
  await using dir = await tempDir();
  const first = new ShardManager({ numShards: 2, dbDir: dir.path, workers: 2 });
  await first.createTable("t", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
  const second = new ShardManager({ numShards: 2, dbDir: dir.path, workers: 2 });
  await second.insert("t", { id: 1 });
  assert.equal(workerHostOf(first), workerHostOf(second));
  await first.shutdown();
  await second.insert("t", { id: 2 });
  assert.equal(await second.count("t"), 2);
  const host = workerHostOf(second)!;
  await second.shutdown();
  assert.equal(host.isRunning(0) || host.isRunning(1), false, "the last one ends them");
});
