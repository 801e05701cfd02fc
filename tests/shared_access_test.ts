/**
 * access: "shared" (nativeDriver): several handles, isolates and processes on one file.
 * Readers never wait for a writer's transaction, writers meet on SQLite's write lock
 * (retried asynchronously), and exclusive and shared users exclude each other.
 */

import assert from "node:assert/strict";
import {
  ConnectionPool,
  nativeDriver,
  PoolTimeoutError,
  ShardLockedError,
  ShardManager,
  wasmDriver,
} from "../mod.ts";
import { spawnFixture, tempDir } from "./helpers.ts";

const shared = { driver: nativeDriver, access: "shared" } as const;

Deno.test("shared access needs a driver that can share; other values are refused", () => {
  assert.throws(
    () => new ConnectionPool("x.db", { driver: wasmDriver, access: "shared" }),
    (e: unknown) =>
      e instanceof TypeError && /access "shared"/.test(e.message) &&
      /node-sqlite3-wasm cannot/.test(e.message),
  );
  assert.throws(
    () => new ConnectionPool("x.db", { access: "both" as never }),
    /access must be "exclusive" or "shared", got "both"/,
  );
  assert.throws(
    () => new ShardManager({ numShards: 2, dbDir: "x", pool: { access: "shared" } }),
    TypeError,
  );
});

Deno.test("shared: a reader does not wait for a writer's open transaction, and sees only committed rows", async () => {
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/s.db`, { ...shared, maxConnections: 4 });
  await pool.withConnection((c) =>
    c.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT); INSERT INTO t VALUES (1, 'old')")
  );
  const writer = await pool.getConnection();
  await writer.exec("BEGIN IMMEDIATE");
  await writer.run("UPDATE t SET who = 'new' WHERE id = 1");
  await writer.run("INSERT INTO t VALUES (2, 'uncommitted')");
  // The reader's statement completes while the writer's transaction is still open.
  const reader = await pool.getConnection();
  assert.deepEqual(await reader.all("SELECT id, who FROM t ORDER BY id"), [{ id: 1, who: "old" }]);
  assert.equal(writer.inTransaction, true);
  assert.equal(reader.inTransaction, false);
  assert.equal(pool.getPoolStats().transactionHandles, 1);
  await writer.exec("COMMIT");
  assert.deepEqual(await reader.all("SELECT id, who FROM t ORDER BY id"), [
    { id: 1, who: "new" },
    { id: 2, who: "uncommitted" },
  ]);
  await writer.release();
  await reader.release();
});

Deno.test("shared: a second writer waits asynchronously for the write lock, bounded by timeoutMs", async () => {
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/s.db`, { ...shared, timeoutMs: 150 });
  await pool.withConnection((c) => c.exec("CREATE TABLE t (id INTEGER PRIMARY KEY)"));
  const first = await pool.getConnection();
  await first.exec("BEGIN IMMEDIATE");
  const second = await pool.getConnection();
  // Another transaction cannot start while the first holds the write lock ...
  const started = performance.now();
  const waited = second.exec("BEGIN IMMEDIATE").then(() => "began", (e: unknown) => e);
  // ... but the event loop keeps running while it waits.
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 5);
  const outcome = await waited;
  clearInterval(ticker);
  assert.ok(outcome instanceof PoolTimeoutError, String(outcome));
  assert.equal(outcome.waitingFor, "write-lock");
  assert.match(outcome.message, /s\.db - timed out .*write lock/);
  assert.ok(performance.now() - started >= 100);
  assert.ok(ticks >= 5, `the event loop ran only ${ticks} timer ticks while waiting`);
  assert.ok(pool.getPoolStats().busyRetries > 0);
  // Once the first commits, the second begins.
  await first.run("INSERT INTO t VALUES (1)");
  await first.exec("COMMIT");
  await second.transaction((tx) => tx.run("INSERT INTO t VALUES (2)"));
  assert.deepEqual(await second.all("SELECT id FROM t ORDER BY id"), [{ id: 1 }, { id: 2 }]);
  await first.release();
  await second.release();
});

Deno.test("shared: two processes write one file together, no errors and no lost rows", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/s.db`;
  await using pool = new ConnectionPool(path, { ...shared, timeoutMs: 20_000 });
  await pool.withConnection((c) => c.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)"));
  const child = spawnFixture("shared_writer.ts", [path, "100000", "300"]);
  const writes = (async () => {
    for (let id = 0; id < 300; id++) {
      await pool.withConnection((c) =>
        c.transaction((tx) => tx.run("INSERT INTO t VALUES (?, 'parent')", [id]))
      );
    }
  })();
  child.stdin.close();
  const [output] = await Promise.all([child.output(), writes]);
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  assert.match(new TextDecoder().decode(output.stdout), /DONE 300/);
  const counts = await pool.withConnection((c) =>
    c.all("SELECT who = 'parent' AS mine, count(*) AS n FROM t GROUP BY 1 ORDER BY 1")
  );
  assert.deepEqual(counts, [{ mine: 0, n: 300 }, { mine: 1, n: 300 }]);
});

Deno.test("shared and exclusive users exclude each other, naming how the file is held", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/s.db`;
  {
    await using pool = new ConnectionPool(path, shared);
    await pool.withConnection((c) => c.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)"));
    const child = spawnFixture("shared_writer.ts", [path, "1", "1", "exclusive"]);
    child.stdin.close();
    const output = await child.output();
    const report = JSON.parse(new TextDecoder().decode(output.stdout));
    assert.equal(report.error, "ShardLockedError");
    assert.equal(report.heldAs, "shared");
    assert.match(report.message, /in use with access "shared"/);
  }
  await using exclusive = new ConnectionPool(path, { driver: nativeDriver });
  await exclusive.withConnection((c) => c.get("SELECT 1"));
  const sharer = new ConnectionPool(path, shared);
  const error = await sharer.withConnection((c) => c.get("SELECT 1")).then(() => null, (e) => e);
  assert.ok(error instanceof ShardLockedError, String(error));
  assert.equal(error.heldAs, "exclusive");
  assert.equal(error.ownerPid, Deno.pid);
  await sharer.closeAll();
});
