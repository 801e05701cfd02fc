// One name for each thing: internal state is out of reach, deprecated aliases still work.
import assert from "node:assert/strict";
import * as shardlite from "../mod.ts";
import { ConnectionPool, PooledConnection, Router, ShardManager } from "../mod.ts";
import { leaseInternals } from "../src/pool/connection.ts";
import { poolMetrics } from "../src/pool/pool.ts";
import { tempDir } from "./helpers.ts";

const LEASE_INTERNALS = [
  "acquiredAt",
  "acquiredStack",
  "prevActive",
  "nextActive",
  "leakTimer",
  "abortSignal",
  "markReleased",
  "openStream",
  "readPage",
  "closeStream",
  "allNow",
  "releasedError",
  "answerTimeout",
  "transactionTimeout",
];

Deno.test("a lease shows no internal state; the library reaches it through connection.ts", async () => {
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/s.db`, { leakDetectionMs: 60_000 });
  const controller = new AbortController();
  const conn = await pool.getConnection({ signal: controller.signal });
  for (const name of LEASE_INTERNALS) assert.equal(name in conn, false, name);
  assert.deepEqual(Object.keys(conn), []);
  assert.equal(conn.id, 1);
  assert.equal(conn.pool, pool);
  const internals = leaseInternals(conn);
  assert.equal(internals.conn, conn);
  assert.equal(internals.abortSignal, controller.signal);
  assert.equal(typeof internals.acquiredStack, "string");
  assert.deepEqual(internals.allNow("SELECT 1 AS one"), [{ one: 1 }]);
  await pool.returnConnection(conn);
  assert.equal(internals.released, true);
  assert.ok(internals.releasedError() instanceof shardlite.LeaseReleasedError);
});

Deno.test("mod.ts exports no internal access; the pool's metrics feed is off the class", async () => {
  for (const name of ["leaseInternals", "leaseOf", "LeaseInternals", "poolMetrics"]) {
    assert.equal(name in shardlite, false, name);
  }
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/s.db`);
  assert.equal("metrics" in pool, false);
  await pool.withConnection((conn) => conn.get("SELECT 1"));
  assert.equal(poolMetrics(pool).leases, pool.getPoolStats().totalLeases);
});

Deno.test("returnConnection checks the brand, not the prototype", async () => {
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/s.db`);
  const fake = Object.create(PooledConnection.prototype) as PooledConnection;
  await assert.rejects(pool.returnConnection(fake), TypeError);
  await assert.rejects(pool.closeConnection({} as PooledConnection), TypeError);
  await assert.rejects(
    pool.returnConnection(null as unknown as PooledConnection),
    TypeError,
  );
});

Deno.test("deprecated pool and lease aliases still work", async () => {
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/s.db`);
  {
    await using conn = await pool.getConnectionContext();
    await conn.exec("CREATE TABLE t (x)");
    assert.equal(pool.active, 1);
  }
  assert.equal(pool.active, 0);
  const conn = await pool.getConnection();
  await conn.release();
  assert.equal(conn.released, true);
  const stats = pool.getPoolStats();
  assert.equal(stats.activeConnections, 0);
  assert.equal(stats.doubleReturns, 0);
  assert.equal(stats.connectionsClosed, 0);
  // closeConnection discards the session; returnConnection keeps it.
  const closed = await pool.getConnection();
  await pool.closeConnection(closed);
  assert.equal(pool.getPoolStats().connectionsClosed, 1);
  await pool.closeConnection(closed); // ending it again changes nothing
  assert.equal(pool.getPoolStats().doubleReturns, 0);
});

Deno.test("deprecated manager members still work; a Router over a manager routes as it does", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  await manager.createTable("users", { id: "INTEGER PRIMARY KEY", name: "TEXT" }, {
    shardKey: "id",
  });
  assert.ok(manager.router instanceof Router);
  await manager.router.routeInsert("users", { id: 1, name: "Ada" });
  manager.enter();
  manager.leave();
  // Built over the manager, a router sees the key column's type: "7" is the integer 7.
  const router = new Router(manager, manager.strategy);
  await router.routeInsert("users", { id: 7, name: "Bo" }, "7");
  assert.equal(router.getShardId("7", "users"), manager.getShardId(7, "users"));
  const [bo] = await manager.select<{ name: string }>("users", { key: 7 });
  assert.equal(bo?.name, "Bo");
  assert.equal(await manager.count("users"), 2);
});
