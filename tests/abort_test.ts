/**
 * Cancellation: `signal` on manager calls. An aborted call rejects with the signal's
 * reason as soon as what it waits for ends, returns every lease, and writes nothing half.
 */
import assert from "node:assert/strict";
import { InvalidQueryError, type PooledConnection, ShardManager } from "../mod.ts";
import { settledState, tempDir } from "./helpers.ts";

const T = { id: "INTEGER PRIMARY KEY", v: "INTEGER" };

async function opened(dir: string, maxConnections = 4) {
  const manager = new ShardManager({ numShards: 4, dbDir: dir, pool: { maxConnections } });
  await manager.createTable("t", T, { shardKey: "id" });
  return manager;
}

/** A key of each shard, found by asking the manager. */
function keysByShard(manager: ShardManager): number[] {
  const keys: number[] = [];
  for (let k = 1; keys.filter((x) => x !== undefined).length < manager.numShards; k++) {
    const shard = manager.getShardId(k, "t");
    if (keys[shard] === undefined) keys[shard] = k;
  }
  return keys;
}

function leases(manager: ShardManager): { active: number; waiting: number } {
  let active = 0;
  let waiting = 0;
  for (let id = 0; id < manager.numShards; id++) {
    const c = manager.getPool(id).counts();
    active += c.active;
    waiting += c.waiting;
  }
  return { active, waiting };
}

Deno.test("an already-aborted signal: every call rejects with its reason, nothing runs", async () => {
  await using dir = await tempDir();
  await using manager = await opened(dir.path);
  const reason = new Error("stop here");
  const signal = AbortSignal.abort(reason);
  const calls: [string, () => Promise<unknown>][] = [
    ["insert", () => manager.insert("t", { id: 1, v: 1 }, { signal })],
    ["upsert", () => manager.upsert("t", { id: 1, v: 1 }, { signal })],
    ["insertMany", () => manager.insertMany("t", [{ id: 2, v: 2 }], { signal })],
    ["select", () => manager.select("t", { signal })],
    ["select key", () => manager.select("t", { key: 1, signal })],
    ["update", () => manager.update("t", { v: 9 }, { allShards: true, signal })],
    ["delete", () => manager.delete("t", { key: 1, signal })],
    ["count", () => manager.count("t", undefined, { signal })],
    ["aggregate", () => manager.aggregate("t", "SUM(v)", { signal })],
    ["aggregateBy", () => manager.aggregateBy("t", "v", "COUNT(*)", { signal })],
    ["query", () => manager.query(1, "SELECT 1", [], { signal })],
    ["queryAll", () => manager.queryAll("SELECT 1", [], { signal })],
    ["transaction", () => manager.transaction(1, () => 1, { signal })],
    ["iterate", async () => {
      for await (const _ of manager.iterate("t", { signal })) { /* none */ }
    }],
    ["backup", () => manager.backup(`${dir.path}/backup`, { signal })],
  ];
  for (const [name, call] of calls) {
    await assert.rejects(call(), (e: unknown) => e === reason, name);
  }
  assert.equal(await manager.count("t"), 0);
  assert.deepEqual(leases(manager), { active: 0, waiting: 0 });
  // The default reason is an AbortError.
  await assert.rejects(manager.select("t", { signal: AbortSignal.abort() }), {
    name: "AbortError",
  });
  await assert.rejects(
    manager.select("t", { signal: "soon" as never }),
    (e: unknown) => e instanceof InvalidQueryError && e.option === "signal",
  );
});

Deno.test("an abort ends a wait for a lease at once; the lease is never taken", async () => {
  await using dir = await tempDir();
  await using manager = await opened(dir.path, 1);
  const keys = keysByShard(manager);
  const held = await manager.getPool(manager.getShardId(keys[2]!, "t")).getConnection();
  const controller = new AbortController();
  const select = manager.select("t", { key: keys[2]!, signal: controller.signal });
  const insertMany = manager.insertMany(
    "t",
    keys.map((id) => ({ id, v: id })),
    { signal: controller.signal },
  );
  assert.equal(await settledState(select), "pending");
  assert.equal(await settledState(insertMany), "pending");
  controller.abort();
  await assert.rejects(select, { name: "AbortError" });
  await assert.rejects(insertMany, { name: "AbortError" });
  await held.release();
  assert.deepEqual(leases(manager), { active: 0, waiting: 0 });
  assert.equal(await manager.count("t"), 0); // insertMany is absent: no shard kept a row
});

Deno.test("an abort ends a wait for another session's transaction; the write never runs", async () => {
  await using dir = await tempDir();
  await using manager = await opened(dir.path);
  await manager.insert("t", { id: 7, v: 1 });
  const pool = manager.getPool(manager.getShardId(7, "t"));
  const holder: PooledConnection = await pool.getConnection();
  await holder.exec("BEGIN IMMEDIATE");
  const controller = new AbortController();
  const update = manager.update("t", { v: 2 }, { key: 7, signal: controller.signal });
  assert.equal(await settledState(update), "pending");
  controller.abort(new Error("user gave up"));
  await assert.rejects(update, /user gave up/);
  await holder.exec("COMMIT");
  await holder.release();
  assert.deepEqual(await manager.select("t", { key: 7 }), [{ id: 7, v: 1 }]);
});

Deno.test("transaction(key, fn, { signal }): aborted inside fn, it rolls back", async () => {
  await using dir = await tempDir();
  await using manager = await opened(dir.path);
  const controller = new AbortController();
  await assert.rejects(
    manager.transaction(5, async (conn) => {
      await conn.run("INSERT INTO t (id, v) VALUES (5, 5)");
      controller.abort();
      await conn.run("INSERT INTO t (id, v) VALUES (6, 6)"); // refused: the call was aborted
    }, { signal: controller.signal }),
    { name: "AbortError" },
  );
  assert.equal(await manager.count("t"), 0);
  // Aborted after fn's last statement: the COMMIT is refused, so it rolls back too.
  const late = new AbortController();
  await assert.rejects(
    manager.transaction(5, async (conn) => {
      await conn.run("INSERT INTO t (id, v) VALUES (5, 5)");
      late.abort();
    }, { signal: late.signal }),
    { name: "AbortError" },
  );
  assert.equal(await manager.count("t"), 0);
  assert.deepEqual(leases(manager), { active: 0, waiting: 0 });
});

Deno.test("iterate: an abort mid-stream rejects the next page and returns every lease", async () => {
  await using dir = await tempDir();
  await using manager = await opened(dir.path);
  await manager.insertMany("t", Array.from({ length: 2_000 }, (_, i) => ({ id: i + 1, v: i })));
  const controller = new AbortController();
  let seen = 0;
  await assert.rejects(async () => {
    for await (
      const _ of manager.iterate("t", { orderBy: "v", pageSize: 50, signal: controller.signal })
    ) {
      if (++seen === 120) controller.abort();
    }
  }, { name: "AbortError" });
  assert.ok(seen >= 120 && seen < 2_000, `saw ${seen} rows`);
  assert.deepEqual(leases(manager), { active: 0, waiting: 0 });
});

Deno.test("backup: aborted between shards, it leaves the destination as it found it", async () => {
  await using dir = await tempDir();
  await using manager = await opened(dir.path);
  await manager.insertMany("t", Array.from({ length: 100 }, (_, i) => ({ id: i + 1, v: i })));
  const controller = new AbortController();
  const dest = `${dir.path}/backup`;
  await assert.rejects(
    manager.backup(dest, {
      signal: controller.signal,
      onProgress: ({ done }) => {
        if (done === 2) controller.abort();
      },
    }),
    { name: "AbortError" },
  );
  await assert.rejects(Deno.stat(dest), Deno.errors.NotFound);
  // An empty destination stays, emptied.
  await Deno.mkdir(dest);
  const again = new AbortController();
  await assert.rejects(
    manager.backup(dest, {
      signal: again.signal,
      onProgress: () => again.abort(),
    }),
    { name: "AbortError" },
  );
  assert.deepEqual([...Deno.readDirSync(dest)], []);
  // Not aborted: a whole backup.
  const report = await manager.backup(dest, { signal: new AbortController().signal });
  assert.equal(report.files.length, 4);
});
