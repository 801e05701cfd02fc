import assert from "node:assert/strict";
import {
  ConnectionBrokenError,
  ConnectionPool,
  ForeignLeaseError,
  LeaseReleasedError,
  PoolClosedError,
  PoolOverloadedError,
  PoolTimeoutError,
  QueryError,
  ShardFileMissingError,
  ShardliteError,
} from "../mod.ts";
import { closableDriver, eventCollector, settledState, tempDir, tick } from "./helpers.ts";

Deno.test("fresh pool: stats are zero and nothing is opened", async () => {
  await using dir = await tempDir();
  const pool = new ConnectionPool(`${dir.path}/s.db`);
  const stats = pool.getPoolStats();
  assert.equal(stats.activeConnections, 0);
  assert.equal(stats.poolSize, 0);
  assert.equal(stats.totalConnectionsCreated, 0);
  assert.equal(stats.waiting, 0);
  assert.equal(stats.maxConnections, 10);
  assert.equal(stats.timeoutMs, 30_000);
  assert.equal(stats.handleOpen, false);
  assert.equal(stats.dbPath, `${dir.path}/s.db`);
  await assert.rejects(Deno.stat(`${dir.path}/s.db`), Deno.errors.NotFound);
  await pool.closeAll();
});

Deno.test("get + return keeps one idle session; five sequential leases create one", async () => {
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/s.db`);
  const conn = await pool.getConnection();
  assert.equal(pool.getPoolStats().activeConnections, 1);
  await pool.returnConnection(conn);
  let stats = pool.getPoolStats();
  assert.equal(stats.poolSize, 1);
  assert.equal(stats.activeConnections, 0);
  assert.equal(stats.totalConnectionsCreated, 1);
  for (let i = 0; i < 5; i++) {
    const c = await pool.getConnection();
    await c.get("SELECT 1");
    await pool.returnConnection(c);
  }
  stats = pool.getPoolStats();
  assert.equal(stats.totalConnectionsCreated, 1);
  assert.equal(stats.totalLeases, 6);
  assert.equal(stats.handlesOpened, 1);
});

Deno.test("a missing database file is created, owner-only, in WAL mode with foreign keys", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/new.db`;
  await using pool = new ConnectionPool(path);
  await pool.withConnection(async (conn) => {
    assert.deepEqual(await conn.get("PRAGMA journal_mode"), { journal_mode: "wal" });
    assert.deepEqual(await conn.get("PRAGMA foreign_keys"), { foreign_keys: 1 });
    assert.deepEqual(await conn.get("PRAGMA locking_mode"), { locking_mode: "exclusive" });
  });
  const info = await Deno.stat(path);
  assert.ok(info.isFile);
  if (Deno.build.os !== "windows") assert.equal((info.mode ?? 0) & 0o777, 0o600);
});

Deno.test("maxConnections: three at once, a fourth times out with a clear PoolTimeoutError", async () => {
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/s.db`, {
    maxConnections: 3,
    timeoutMs: 50,
  });
  const leases = [
    await pool.getConnection(),
    await pool.getConnection(),
    await pool.getConnection(),
  ];
  // All three are usable at once, inside one task.
  await leases[0]!.exec("CREATE TABLE t (x)");
  await leases[1]!.run("INSERT INTO t VALUES (1)");
  assert.deepEqual(await leases[2]!.get("SELECT count(*) AS n FROM t"), { n: 1 });
  assert.equal(pool.getPoolStats().totalConnectionsCreated, 3);
  const error = await pool.getConnection().then(
    () => assert.fail("expected a timeout"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof PoolTimeoutError);
  assert.equal(error.timeoutMs, 50);
  assert.equal(error.waitingFor, "lease");
  assert.ok(error.waitedMs >= 49, `waited ${error.waitedMs}`);
  assert.deepEqual(error.counts, { active: 3, idle: 0, waiting: 0, max: 3 });
  assert.match(error.message, /s\.db - timed out after \d+ ms \(timeoutMs=50\)/);
  assert.match(error.message, /active=3, idle=0, waiting=0, max=3/);
  assert.equal(pool.getPoolStats().timeouts, 1);
  assert.equal(pool.getPoolStats().waiting, 0);
  for (const c of leases) await pool.returnConnection(c);
});

Deno.test("waiters are served in FIFO order as leases return", async () => {
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/s.db`, { maxConnections: 1 });
  const first = await pool.getConnection();
  const order: number[] = [];
  const waits = [1, 2, 3].map((n) =>
    pool.getConnection().then(async (c) => {
      order.push(n);
      await pool.returnConnection(c);
    })
  );
  assert.equal(pool.getPoolStats().waiting, 3);
  await pool.returnConnection(first);
  await Promise.all(waits);
  assert.deepEqual(order, [1, 2, 3]);
  assert.equal(pool.getPoolStats().totalWaited, 3);
});

Deno.test("an aborted waiter leaves the queue and never receives a lease", async () => {
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/s.db`, { maxConnections: 1 });
  const held = await pool.getConnection();
  const controller = new AbortController();
  const aborted = pool.getConnection({ signal: controller.signal });
  const next = pool.getConnection();
  assert.equal(pool.getPoolStats().waiting, 2);
  controller.abort(new Error("caller gave up"));
  await assert.rejects(aborted, /caller gave up/);
  assert.equal(pool.getPoolStats().waiting, 1);
  await pool.returnConnection(held);
  const c = await next;
  assert.equal(pool.getPoolStats().activeConnections, 1);
  assert.equal(pool.getPoolStats().aborted, 1);
  await pool.returnConnection(c);
  // An already-aborted signal is refused at once.
  await assert.rejects(pool.getConnection({ signal: AbortSignal.abort(new Error("no")) }), /no/);
});

Deno.test("maxWaiting refuses the excess at once with PoolOverloadedError", async () => {
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/s.db`, {
    maxConnections: 1,
    maxWaiting: 2,
  });
  const held = await pool.getConnection();
  const w1 = pool.getConnection();
  const w2 = pool.getConnection();
  const error = await pool.getConnection().then(() => null, (e: unknown) => e);
  assert.ok(error instanceof PoolOverloadedError);
  assert.equal(error.maxWaiting, 2);
  assert.equal(error.counts.waiting, 2);
  assert.match(error.message, /overloaded: 2 callers already wait \(maxWaiting=2/);
  await pool.returnConnection(held);
  await pool.returnConnection(await w1);
  await pool.returnConnection(await w2);
  assert.equal(pool.getPoolStats().overloaded, 1);
});

Deno.test("context and withConnection return the lease even when the body throws", async () => {
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/s.db`);
  await assert.rejects(
    pool.withConnection(() => {
      throw new Error("boom");
    }),
    /boom/,
  );
  assert.equal(pool.getPoolStats().activeConnections, 0);
  assert.equal(pool.getPoolStats().poolSize, 1);
  try {
    await using conn = await pool.getConnectionContext();
    await conn.get("SELECT 1");
    throw new Error("inside scope");
  } catch (e) {
    assert.match((e as Error).message, /inside scope/);
  }
  assert.equal(pool.getPoolStats().activeConnections, 0);
  assert.equal(pool.getPoolStats().totalConnectionsCreated, 1);
});

Deno.test("closeConnection discards the session; closeAll updates stats", async () => {
  await using dir = await tempDir();
  const pool = new ConnectionPool(`${dir.path}/s.db`);
  const a = await pool.getConnection();
  const b = await pool.getConnection();
  await pool.closeConnection(a);
  let stats = pool.getPoolStats();
  assert.equal(stats.activeConnections, 1);
  assert.equal(stats.poolSize, 0);
  assert.equal(stats.connectionsClosed, 1);
  await pool.returnConnection(b);
  assert.equal(pool.getPoolStats().poolSize, 1);
  await pool.closeAll();
  stats = pool.getPoolStats();
  assert.equal(stats.closed, true);
  assert.equal(stats.poolSize, 0);
  assert.equal(stats.handleOpen, false);
  await assert.rejects(pool.getConnection(), PoolClosedError);
  await pool.closeAll(); // idempotent
});

Deno.test("misuse changes nothing: returned lease, double return, foreign lease", async () => {
  await using dir = await tempDir();
  const { events, onEvent } = eventCollector();
  await using pool = new ConnectionPool(`${dir.path}/a.db`, { onEvent });
  await using other = new ConnectionPool(`${dir.path}/b.db`, { onEvent });
  const conn = await pool.getConnection();
  await pool.returnConnection(conn);
  await assert.rejects(conn.get("SELECT 1"), LeaseReleasedError);
  await assert.rejects(conn.run("SELECT 1"), /lease #1 was already returned/);
  assert.throws(() => conn.fetchone(), LeaseReleasedError);
  const before = pool.getPoolStats();
  await pool.returnConnection(conn);
  const after = pool.getPoolStats();
  assert.equal(after.doubleReturns, 1);
  assert.equal(after.poolSize, before.poolSize);
  assert.equal(after.activeConnections, 0);
  assert.deepEqual(events.map((e) => e.type), ["double-return"]);
  const foreign = await other.getConnection();
  await assert.rejects(pool.returnConnection(foreign), ForeignLeaseError);
  assert.equal(other.getPoolStats().activeConnections, 1);
  await other.returnConnection(foreign);
  // @ts-expect-error: a non-lease is refused with a TypeError
  await assert.rejects(pool.returnConnection({}), TypeError);
});

Deno.test("invalid constructor arguments throw TypeError/RangeError naming the argument", () => {
  // @ts-expect-error: wrong type on purpose
  assert.throws(() => new ConnectionPool(42), { name: "TypeError", message: /dbPath/ });
  assert.throws(() => new ConnectionPool(""), { name: "TypeError", message: /dbPath/ });
  assert.throws(() => new ConnectionPool("   "), { name: "TypeError", message: /dbPath/ });
  assert.throws(() => new ConnectionPool(":memory:"), { name: "TypeError", message: /dbPath/ });
  assert.throws(() => new ConnectionPool("x.db", { maxConnections: 0 }), {
    name: "RangeError",
    message: /maxConnections/,
  });
  assert.throws(() => new ConnectionPool("x.db", { maxConnections: -1 }), RangeError);
  assert.throws(() => new ConnectionPool("x.db", { maxConnections: 1.5 }), {
    name: "TypeError",
    message: /maxConnections/,
  });
  assert.throws(() => new ConnectionPool("x.db", { timeoutMs: 0 }), {
    name: "RangeError",
    message: /timeoutMs/,
  });
  assert.throws(() => new ConnectionPool("x.db", { timeoutMs: -5 }), RangeError);
  assert.throws(() => new ConnectionPool("x.db", { timeoutMs: Number.NaN }), {
    name: "TypeError",
    message: /timeoutMs/,
  });
  assert.throws(() => new ConnectionPool("x.db", { maxWaiting: -1 }), /maxWaiting/);
  assert.throws(() => new ConnectionPool("x.db", { leakDetectionMs: 0 }), /leakDetectionMs/);
});

Deno.test("a transaction holds the shard: a sibling's read waits, then sees only committed rows", async () => {
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/s.db`);
  const writer = await pool.getConnection();
  const reader = await pool.getConnection();
  await writer.exec("CREATE TABLE t (x INTEGER)");
  await writer.run("INSERT INTO t VALUES (1)");
  await writer.exec("BEGIN");
  assert.equal(writer.inTransaction, true);
  await writer.run("INSERT INTO t VALUES (2)");
  const read = reader.get("SELECT count(*) AS n FROM t");
  await tick();
  assert.equal(await settledState(read), "pending", "the read must wait for the transaction");
  await writer.run("INSERT INTO t VALUES (3)");
  await writer.exec("ROLLBACK");
  assert.deepEqual(await read, { n: 1 });
  assert.equal(pool.getPoolStats().transactionWaits, 1);
  // transaction(): committed rows become visible to the sibling after COMMIT.
  const tx = writer.transaction(async (c) => {
    await c.run("INSERT INTO t VALUES (4)");
    await tick();
    await c.run("INSERT INTO t VALUES (5)");
  });
  const read2 = reader.get("SELECT count(*) AS n FROM t");
  await tx;
  assert.deepEqual(await read2, { n: 3 });
  await pool.returnConnection(writer);
  await pool.returnConnection(reader);
});

Deno.test("a statement waiting on a sibling's transaction times out with PoolTimeoutError", async () => {
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/s.db`, { timeoutMs: 40 });
  const a = await pool.getConnection();
  const b = await pool.getConnection();
  await a.exec("CREATE TABLE t (x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1);");
  const error = await b.get("SELECT count(*) FROM t").then(() => null, (e: unknown) => e);
  assert.ok(error instanceof PoolTimeoutError);
  assert.equal(error.waitingFor, "transaction");
  assert.match(error.message, /waiting for another session's transaction to end/);
  assert.match(error.message, /session #1/);
  await a.commit();
  assert.deepEqual(await b.get("SELECT count(*) AS n FROM t"), { n: 1 });
  await pool.returnConnection(a);
  await pool.returnConnection(b);
});

Deno.test("returning a lease inside a transaction rolls it back and reports it", async () => {
  await using dir = await tempDir();
  const { events, onEvent } = eventCollector();
  await using pool = new ConnectionPool(`${dir.path}/s.db`, { onEvent });
  const a = await pool.getConnection();
  await a.exec("CREATE TABLE t (x)");
  await a.exec("BEGIN");
  await a.run("INSERT INTO t VALUES (1)");
  await pool.returnConnection(a);
  assert.deepEqual(events.map((e) => e.type), ["rollback-on-return"]);
  assert.equal(pool.getPoolStats().rollbacksOnReturn, 1);
  await pool.withConnection(async (b) => {
    assert.deepEqual(await b.get("SELECT count(*) AS n FROM t"), { n: 0 });
    // The shard is free again: a write goes through.
    await b.run("INSERT INTO t VALUES (2)");
  });
});

Deno.test("nested transaction() uses savepoints", async () => {
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/s.db`);
  await pool.withConnection(async (c) => {
    await c.exec("CREATE TABLE t (x)");
    await c.transaction(async () => {
      await c.run("INSERT INTO t VALUES (1)");
      await c.transaction(() => c.run("INSERT INTO t VALUES (2)"));
      await c.transaction(async () => {
        await c.run("INSERT INTO t VALUES (3)");
        throw new Error("inner");
      }).catch(() => {});
    });
    const rows = await c.all("SELECT x FROM t ORDER BY x");
    assert.deepEqual(rows, [{ x: 1 }, { x: 2 }]);
  });
});

Deno.test("execute(): positional rows keep duplicate and integer-like column names", async () => {
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/s.db`);
  await pool.withConnection(async (c) => {
    await c.exec("CREATE TABLE u (id INTEGER PRIMARY KEY, name TEXT)");
    const ins = await c.execute("INSERT INTO u (name) VALUES (?), (?)", ["a", "b"]);
    assert.equal(ins.rowcount, 2);
    assert.equal(ins.lastrowid, 2);
    const cur = await c.execute("SELECT name, id AS '2', name, id AS '1' FROM u ORDER BY id");
    assert.deepEqual(cur.columns, ["name", "2", "name", "1"]);
    assert.deepEqual(c.fetchone(), ["a", 1, "a", 1]);
    assert.deepEqual(c.fetchall(), [["b", 2, "b", 2]]);
    assert.equal(c.fetchone(), undefined);
    await c.execute("SELECT COUNT(*) FROM u");
    assert.deepEqual(c.fetchone(), [2]);
  });
});

Deno.test("values: bigint kept end to end, booleans bound as 0/1, blobs, named params", async () => {
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/s.db`);
  await pool.withConnection(async (c) => {
    await c.exec("CREATE TABLE v (i INTEGER, b, t TEXT, r REAL)");
    const big = 2n ** 62n + 1n;
    await c.run("INSERT INTO v VALUES (:i, :b, :t, :r)", {
      ":i": big,
      ":b": new Uint8Array([0, 1, 255]),
      ":t": "žluť 🐘",
      ":r": 1.5,
    });
    await c.run("INSERT INTO v (i) VALUES (?)", [true]);
    const rows = await c.all("SELECT * FROM v ORDER BY rowid");
    assert.deepEqual(rows[0], { i: big, b: new Uint8Array([0, 1, 255]), t: "žluť 🐘", r: 1.5 });
    assert.equal(rows[1]!.i, 1);
  });
});

Deno.test("SQL errors are QueryError naming the path and statement; the lease stays usable", async () => {
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/s.db`);
  await pool.withConnection(async (c) => {
    const error = await c.run("SELEC 1").then(() => null, (e: unknown) => e);
    assert.ok(error instanceof QueryError);
    assert.ok(error instanceof ShardliteError);
    assert.match(error.message, /s\.db - near "SELEC": syntax error \(in: SELEC 1\)/);
    assert.equal(await c.get("SELECT 1 AS one").then((r) => r?.one), 1);
  });
  assert.equal(pool.getPoolStats().handleErrors, 0);
});

Deno.test("a broken handle is replaced; its transaction fails, the pool stays usable", async () => {
  await using dir = await tempDir();
  const { events, onEvent } = eventCollector();
  const { driver, handles } = closableDriver();
  await using pool = new ConnectionPool(`${dir.path}/s.db`, { onEvent, driver });
  const conn = await pool.getConnection();
  const sibling = await pool.getConnection();
  await conn.exec("CREATE TABLE t (x); INSERT INTO t VALUES (1);");
  await conn.exec("BEGIN");
  await conn.run("INSERT INTO t VALUES (2)");
  // The handle is closed underneath, as a failing driver or VFS would leave it.
  handles[0]!.close();
  const lost = await conn.run("INSERT INTO t VALUES (3)").then(() => null, (e: unknown) => e);
  assert.ok(lost instanceof ConnectionBrokenError, String(lost));
  assert.match(lost.message, /s\.db - the handle broke \(Database already closed\)/);
  // The transaction in flight is lost; commit refuses, rollback acknowledges.
  await assert.rejects(conn.commit(), /transaction of session #1 was lost/);
  await conn.rollback();
  // Every session carries on with a new handle; only committed rows are there.
  assert.deepEqual(await sibling.get("SELECT count(*) AS n FROM t"), { n: 1 });
  assert.deepEqual(await conn.get("SELECT count(*) AS n FROM t"), { n: 1 });
  const stats = pool.getPoolStats();
  assert.equal(stats.handlesReplaced, 1);
  assert.equal(stats.handlesOpened, 2);
  assert.equal(stats.handleErrors, 1);
  assert.equal(handles.length, 2);
  assert.ok(events.some((e) => e.type === "handle-replaced"));
  await pool.returnConnection(conn);
  await pool.returnConnection(sibling);
});

Deno.test("a shard file deleted under a live pool is reported, never recreated", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/s.db`;
  const { onEvent, waitFor } = eventCollector();
  await using pool = new ConnectionPool(path, { onEvent, fileCheckIntervalMs: 20 });
  await pool.withConnection((c) => c.exec("CREATE TABLE t (x); INSERT INTO t VALUES (1);"));
  await Deno.remove(path);
  await waitFor("file-missing");
  const error = await pool.withConnection((c) => c.get("SELECT * FROM t")).then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(error instanceof ShardFileMissingError);
  assert.equal(error.reason, "deleted");
  assert.equal(error.path, path);
  assert.match(error.message, /was deleted while the pool had it open/);
  await assert.rejects(
    pool.withConnection((c) => c.run("CREATE TABLE u (y)")),
    ShardFileMissingError,
  );
  await assert.rejects(Deno.stat(path), Deno.errors.NotFound, "no empty database recreated");
});

Deno.test("two pools on one file share its handle and never lock each other out", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/s.db`;
  await using a = new ConnectionPool(path);
  await using b = new ConnectionPool(`${dir.path}/./s.db`);
  await a.withConnection((c) => c.exec("CREATE TABLE t (x)"));
  await b.withConnection((c) => c.run("INSERT INTO t VALUES (1)"));
  const ca = await a.getConnection();
  await ca.exec("BEGIN IMMEDIATE");
  await ca.run("INSERT INTO t VALUES (2)");
  const read = b.withConnection((c) => c.get("SELECT count(*) AS n FROM t"));
  await tick();
  assert.equal(await settledState(read), "pending");
  await ca.commit();
  assert.deepEqual(await read, { n: 2 });
  assert.equal(a.getPoolStats().attachedPools, 2);
  await a.returnConnection(ca);
  await a.closeAll();
  // b still works after a closed: the file stays open while a pool is attached.
  assert.deepEqual(await b.withConnection((c) => c.get("SELECT count(*) AS n FROM t")), { n: 2 });
});

Deno.test("closeAll: waiters rejected, active leases get the grace period, files deletable", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/s.db`;
  const { events, onEvent } = eventCollector();
  const pool = new ConnectionPool(path, { maxConnections: 1, onEvent });
  const held = await pool.getConnection();
  await held.exec("CREATE TABLE t (x); INSERT INTO t VALUES (1);");
  const waiter = pool.getConnection();
  const closing = pool.closeAll({ graceMs: 10_000 });
  await assert.rejects(waiter, PoolClosedError);
  await assert.rejects(pool.getConnection(), PoolClosedError);
  // The active lease can finish its work during the grace period.
  await held.run("INSERT INTO t VALUES (2)");
  await pool.returnConnection(held);
  await closing;
  assert.equal(events.filter((e) => e.type === "forced-close").length, 0);
  const names = [...Deno.readDirSync(dir.path)].map((e) => e.name).sort();
  assert.deepEqual(names, ["s.db"]);
  await Deno.rename(path, `${dir.path}/moved.db`);
  const reopened = new ConnectionPool(`${dir.path}/moved.db`);
  assert.deepEqual(
    await reopened.withConnection((c) => c.get("SELECT count(*) AS n FROM t")),
    { n: 2 },
  );
  await reopened.closeAll();
  await Deno.remove(`${dir.path}/moved.db`);
});

Deno.test("closeAll: a lease kept past the grace period is closed and reported", async () => {
  await using dir = await tempDir();
  const { events, onEvent } = eventCollector();
  const pool = new ConnectionPool(`${dir.path}/s.db`, { onEvent });
  const held = await pool.getConnection();
  await held.exec("CREATE TABLE t (x); BEGIN; INSERT INTO t VALUES (1);");
  await pool.closeAll({ graceMs: 5 });
  assert.deepEqual(events.map((e) => e.type).sort(), ["forced-close", "rollback-on-return"]);
  assert.equal(held.released, true);
  await assert.rejects(held.get("SELECT 1"), LeaseReleasedError);
  const again = new ConnectionPool(`${dir.path}/s.db`);
  assert.deepEqual(await again.withConnection((c) => c.get("SELECT count(*) AS n FROM t")), {
    n: 0,
  });
  await again.closeAll();
});

Deno.test("leak detection reports a lease held too long, with the stack that took it", async () => {
  await using dir = await tempDir();
  const { events, onEvent, waitFor } = eventCollector();
  await using pool = new ConnectionPool(`${dir.path}/s.db`, { leakDetectionMs: 10, onEvent });
  const conn = await pool.getConnection();
  const leak = await waitFor("leak");
  assert.equal(events.length, 1);
  assert.equal(leak?.type, "leak");
  if (leak?.type === "leak") {
    assert.equal(leak.leaseId, conn.id);
    assert.ok(leak.heldMs >= 9);
    assert.match(leak.stack ?? "", /pool_test\.ts/);
  }
  assert.equal(pool.getPoolStats().leaksDetected, 1);
  await pool.returnConnection(conn);
});

Deno.test("a statement never blocks the event loop while waiting for a transaction", async () => {
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/s.db`);
  const a = await pool.getConnection();
  const b = await pool.getConnection();
  await a.exec("CREATE TABLE t (x); BEGIN IMMEDIATE;");
  const waiting = b.run("INSERT INTO t VALUES (1)");
  // Timers keep firing while b waits.
  let ticks = 0;
  await new Promise<void>((resolve) => {
    const id = setInterval(() => {
      if (++ticks === 3) {
        clearInterval(id);
        resolve();
      }
    }, 1);
  });
  assert.equal(await settledState(waiting), "pending");
  await a.commit();
  await waiting;
  assert.deepEqual(await a.get("SELECT count(*) AS n FROM t"), { n: 1 });
  await pool.returnConnection(a);
  await pool.returnConnection(b);
});
