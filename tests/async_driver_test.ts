/**
 * The driver seam with an asynchronous driver: every handle call answers later (as a
 * remote or worker-backed driver does). The pool must keep sessions' transactions apart
 * from the statements they send, not from what the handle says afterwards.
 */

import assert from "node:assert/strict";
import {
  ConnectionPool,
  type Driver,
  type DriverHandle,
  ShardManager,
  type SyncDriverHandle,
  wasmDriver,
} from "../mod.ts";
import { tempDir } from "./helpers.ts";

/** wasmDriver, but every call resolves on a later macrotask. */
function asyncDriver(): { driver: Driver; calls: string[] } {
  const calls: string[] = [];
  const later = <T>(fn: () => T): Promise<T> =>
    new Promise((resolve, reject) =>
      setTimeout(() => {
        try {
          resolve(fn());
        } catch (error) {
          reject(error);
        }
      }, 0)
    );
  const inners = new WeakMap<DriverHandle, SyncDriverHandle>();
  const wrap = (inner: SyncDriverHandle): DriverHandle => {
    const handle: DriverHandle = {
      get isOpen() {
        return inner.isOpen;
      },
      get inTransaction() {
        return inner.inTransaction;
      },
      get cachedStatements() {
        return inner.cachedStatements;
      },
      run: (sql, params) => later(() => (calls.push(sql), inner.run(sql, params))),
      runMany: (sql, sets) => later(() => (calls.push(sql), inner.runMany(sql, sets))),
      all: (sql, params) => later(() => (calls.push(sql), inner.all(sql, params))),
      get: (sql, params) => later(() => (calls.push(sql), inner.get(sql, params))),
      values: (sql, params) => later(() => (calls.push(sql), inner.values(sql, params))),
      exec: (sql) => later(() => (calls.push(sql), inner.exec(sql))),
      close: () => later(() => inner.close()),
    };
    inners.set(handle, inner);
    return handle;
  };
  const driver: Driver = {
    ...wasmDriver,
    name: "async-wasm",
    open: (path, options) => later(() => wrap(wasmDriver.open(path, options))),
    configure: (handle, options) =>
      later(() => inners.get(handle)!).then((inner) => wasmDriver.configure(inner, options)),
    backup: (handle, target) =>
      later(() => {
        wasmDriver.backup(inners.get(handle)!, target); // synchronous for wasm
      }),
  };
  return { driver, calls };
}

Deno.test("async driver: a sibling's statement never runs inside another session's transaction", async () => {
  await using dir = await tempDir();
  const { driver } = asyncDriver();
  await using pool = new ConnectionPool(`${dir.path}/s.db`, { driver, maxConnections: 4 });
  await pool.withConnection((c) => c.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)"));
  const a = await pool.getConnection();
  const b = await pool.getConnection();
  // A's BEGIN is in flight when B sends its INSERT: B must wait for A's whole transaction.
  const begun = a.exec("BEGIN IMMEDIATE");
  const sibling = b.run("INSERT INTO t (id, who) VALUES (2, 'b')");
  await begun;
  assert.equal(a.inTransaction, true);
  await a.run("INSERT INTO t (id, who) VALUES (1, 'a')");
  await a.rollback();
  await sibling;
  assert.deepEqual(await b.all("SELECT id, who FROM t ORDER BY id"), [{ id: 2, who: "b" }]);
  await a.release();
  await b.release();
});

Deno.test("async driver: transactions, savepoints and a manager work end to end", async () => {
  await using dir = await tempDir();
  const { driver, calls } = asyncDriver();
  await using manager = new ShardManager({ numShards: 2, dbDir: dir.path, pool: { driver } });
  await manager.createTable("t", { id: "INTEGER PRIMARY KEY", v: "TEXT" }, { shardKey: "id" });
  await manager.insertMany("t", Array.from({ length: 50 }, (_, i) => ({ id: i, v: `v${i}` })));
  await manager.transaction(7, async (c) => {
    await c.run("UPDATE t SET v = 'seven' WHERE id = 7");
    await c.transaction(async (inner) => {
      await inner.run("UPDATE t SET v = 'lost' WHERE id = 7");
      throw new Error("undo the savepoint");
    }).catch(() => {});
  });
  assert.deepEqual(await manager.select("t", { key: 7 }), [{ id: 7, v: "seven" }]);
  assert.equal(await manager.count("t"), 50);
  assert.ok(calls.length > 10);
  await using backup = await tempDir();
  const report = await manager.backup(`${backup.path}/b`);
  assert.equal(report.files.length, 2);
});
