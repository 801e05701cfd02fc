// Cross-shard insertMany is all or nothing, also past a failure between two shards'
// COMMITs: the coordinator's redo record completes the batch when the directory is next
// opened. Crashes (SIGKILL) are in reliability_crash_test.ts; these run in-process.
import assert from "node:assert/strict";
import fc from "fast-check";
import sqlite from "node-sqlite3-wasm";
import {
  BatchPendingError,
  ReshardError,
  ShardManager,
  ShardOperationError,
  type SqlValue,
} from "../mod.ts";
import {
  type BatchPart,
  decodeBatch,
  encodeBatch,
  encodeBatchInSlices,
  needsTag,
} from "../src/routing/batches.ts";
import { TimeSlice } from "../src/pool/yield.ts";
import { kids, roles, setParent, setUpTrap } from "./batch_trap.ts";
import { tempDir } from "./helpers.ts";

const USERS = { id: "INTEGER PRIMARY KEY", name: "TEXT" };

/** Rows of `_shardlite_batches` per shard file, read with the raw driver after shutdown. */
function bookkeeping(dbDir: string, numShards: number): { redo: number; markers: number }[] {
  return Array.from({ length: numShards }, (_, shard) => {
    const db = new sqlite.Database(`${dbDir}/shard_${shard}.db`, { fileMustExist: true });
    try {
      // The files are in WAL mode, which this driver reads only with an exclusive lock.
      db.get("PRAGMA locking_mode=EXCLUSIVE");
      const table = db.get(
        "SELECT 1 AS x FROM sqlite_schema WHERE name = '_shardlite_batches'",
      );
      if (table === null) return { redo: 0, markers: 0 };
      const row = db.get(
        "SELECT count(payload) AS redo, count(*) - count(payload) AS markers " +
          "FROM _shardlite_batches",
      ) as { redo: number; markers: number };
      return { redo: row.redo, markers: row.markers };
    } finally {
      db.close();
    }
  });
}

/** Redo records and markers over every shard, through the running manager. */
async function live(manager: ShardManager): Promise<{ redo: number; markers: number }> {
  const rows = await manager.queryAll(
    "SELECT count(payload) AS redo, count(*) - count(payload) AS markers FROM _shardlite_batches",
  );
  return {
    redo: rows.reduce((n, r) => n + Number(r.redo), 0),
    markers: rows.reduce((n, r) => n + Number(r.markers), 0),
  };
}

Deno.test("batch bookkeeping stays small while running and is gone after shutdown", async () => {
  await using dir = await tempDir();
  const manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  await manager.createTable("users", USERS, { shardKey: "id" });
  for (let round = 0; round < 5; round++) {
    const rows = Array.from({ length: 40 }, (_, i) => ({ id: round * 40 + i + 1, name: "u" }));
    assert.equal(await manager.insertMany("users", rows), 40);
    // Earlier batches' redo records are deleted inside later batches' transactions:
    // only the newest is left, and the markers of at most the two newest.
    const { redo, markers } = await live(manager);
    assert.equal(redo, 1, `round ${round}`);
    assert.ok(markers >= 3 && markers <= 6, `round ${round}: ${markers} markers`);
  }
  // One shard only: no redo record at all.
  const oneShard = Array.from({ length: 400 }, (_, i) => 1_000 + i)
    .filter((id) => manager.getShardId(id) === 2).map((id) => ({ id, name: "s2" }));
  await manager.insertMany("users", oneShard);
  assert.equal(await manager.count("users"), 200 + oneShard.length);
  await manager.shutdown();
  assert.deepEqual(bookkeeping(dir.path, 4), Array(4).fill({ redo: 0, markers: 0 }));
});

Deno.test("a shard that fails COMMIT past the commit point: BatchPendingError, then reopening completes the batch", async () => {
  await using dir = await tempDir();
  const rows = kids(60);
  let victim = -1;
  let missing = 0;
  let batchId = "";
  {
    await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
    const { coordinator, smallest, perShard } = roles(manager, rows);
    assert.notEqual(coordinator, smallest);
    victim = smallest;
    missing = perShard[victim]!;
    await setUpTrap(manager, victim);
    const error = await manager.insertMany("kids", rows).then(() => null, (e: unknown) => e);
    assert.ok(error instanceof BatchPendingError, String(error));
    assert.ok(error instanceof ShardOperationError, "callers catching ShardOperationError see it");
    assert.equal(error.shardId, victim);
    assert.equal(error.coordinator, coordinator);
    assert.match(error.message, /committed on shard \d+ \(its commit point\)/);
    assert.match(error.message, /FOREIGN KEY constraint failed/);
    assert.match(error.message, /Nothing is lost/);
    batchId = error.batchId;
    // Every shard but the victim committed its part.
    assert.equal(await manager.count("kids"), rows.length - missing);
    assert.equal(
      await manager.count("kids", {
        id: rows.find((r) => manager.getShardId(r.id) === victim)!.id,
      }),
      0,
    );
  }
  {
    // The shard still refuses: the part stays pending, and resharding is refused.
    await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
    await manager.ready();
    const recovery = manager.batchRecovery!;
    assert.equal(recovery.batches, 1);
    assert.deepEqual(recovery.pending.map((p) => [p.batch, p.shard]), [[batchId, victim]]);
    assert.equal(await manager.count("kids"), rows.length - missing);
    await assert.rejects(
      manager.reshard(5),
      (e: unknown) => e instanceof ReshardError && /cannot be completed/.test(e.message),
    );
    await setParent(manager, victim, true);
  }
  {
    await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
    await manager.ready();
    assert.deepEqual(manager.batchRecovery?.replayed, [{
      batch: batchId,
      shard: victim,
      rows: missing,
    }]);
    assert.deepEqual(manager.batchRecovery?.pending, []);
    const back = await manager.select("kids", { orderBy: "id" });
    assert.deepEqual(back.map((r) => ({ ...r })), rows);
    // More batches, then shrinking to 3 shards (every shard has parent 1 now): every
    // row once, where it belongs, and no bookkeeping left behind by the reshard.
    await manager.insertMany("kids", kids(90).slice(60));
    const report = await manager.reshard(3);
    assert.equal(report.scanned, 90);
    assert.equal(await manager.count("kids"), 90);
    for (const { id } of kids(90)) {
      assert.equal((await manager.query(id, "SELECT id FROM kids WHERE id = ?", [id])).length, 1);
    }
  }
  assert.deepEqual(bookkeeping(dir.path, 3), Array(3).fill({ redo: 0, markers: 0 }));
});

Deno.test("a coordinator that fails COMMIT rolls every shard back", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  const rows = kids(60);
  const { coordinator } = roles(manager, rows);
  await setUpTrap(manager, coordinator);
  const error = await manager.insertMany("kids", rows).then(() => null, (e: unknown) => e);
  assert.ok(error instanceof ShardOperationError, String(error));
  assert.ok(!(error instanceof BatchPendingError));
  assert.equal(error.shardId, coordinator);
  assert.equal(await manager.count("kids"), 0);
  // Fixed, the same call goes through whole.
  await setParent(manager, coordinator, true);
  assert.equal(await manager.insertMany("kids", rows), rows.length);
  assert.equal(await manager.count("kids"), rows.length);
});

const valueArb: fc.Arbitrary<SqlValue> = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true }).map((d) => (Object.is(d, -0) ? 0 : d)),
  fc.constantFrom(Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  fc.string({ unit: "binary" }),
  fc.string({ unit: "grapheme" }),
  fc.constant(null),
  fc.uint8Array({ maxLength: 40 }),
);

Deno.test("property: redo payloads round-trip every value exactly, encoded whole or in slices", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.array(valueArb, { minLength: 1, maxLength: 6 }), { maxLength: 8 }),
      fc.boolean(),
      fc.boolean(),
      async (rows, forceTagging, withOps) => {
        const special = forceTagging || rows.some((r) => r.some(needsTag));
        const parts: BatchPart[] = [{
          shard: 3,
          runs: rows.map((r) => ({ columns: r.map((_, i) => `c${i}`), values: [r] })),
        }];
        if (withOps) parts.push({ shard: 5, ops: [{ op: "delete", where: { c0: 1 } }] });
        for (
          const bytes of [
            encodeBatch("t", parts, special),
            // A slice of 0 ms: a turn of the event loop after every run.
            await encodeBatchInSlices("t", parts, special, new TimeSlice(0)),
          ]
        ) {
          const decoded = decodeBatch(bytes);
          assert.equal(decoded.table, "t");
          assert.deepEqual(decoded.parts, parts);
        }
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("concurrent insertMany calls, transactions and a point-in-time backup never deadlock", async () => {
  await using dir = await tempDir();
  // Few slots and a short timeout: a deadlock would surface as PoolTimeoutErrors.
  await using manager = new ShardManager({
    numShards: 4,
    dbDir: `${dir.path}/data`,
    pool: { maxConnections: 2, timeoutMs: 5_000 },
  });
  await manager.createTable("t", { id: "INTEGER PRIMARY KEY", v: "TEXT" }, { shardKey: "id" });
  const tasks: Promise<unknown>[] = [];
  for (let b = 0; b < 40; b++) {
    const rows = Array.from({ length: 50 }, (_, i) => ({ id: b * 1_000 + i + 1, v: "many" }));
    tasks.push(manager.insertMany("t", rows));
    const key = b * 1_000 + 999;
    tasks.push(manager.transaction(key, async (c) => {
      await c.run("INSERT INTO t (id, v) VALUES (?, ?)", [key, "tx"]);
    }));
    if (b === 20) tasks.push(manager.backup(`${dir.path}/backup`, { pointInTime: true }));
  }
  const results = await Promise.allSettled(tasks);
  const failed = results.filter((r) => r.status === "rejected");
  assert.deepEqual(failed.map((r) => String((r as PromiseRejectedResult).reason)), []);
  assert.equal(await manager.count("t"), 40 * 51);
});

Deno.test("shutdown with the coordinator's pool already closed (maxOpenShards) replays nothing twice", async () => {
  await using dir = await tempDir();
  // No primary key: a part replayed twice would show up as duplicate rows.
  const NOTES = { k: "INTEGER NOT NULL", note: "TEXT" };
  {
    const manager = new ShardManager({ numShards: 4, dbDir: dir.path, maxOpenShards: 1 });
    await manager.createTable("notes", NOTES, { shardKey: "k" });
    for (let round = 0; round < 3; round++) {
      const rows = Array.from({ length: 40 }, (_, i) => ({ k: round * 40 + i, note: "n" }));
      await manager.insertMany("notes", rows);
      // Touch one shard that is not the coordinator: the others, the coordinator among
      // them, get closed, with the redo record's deletion still owed.
      const coordinator = roles(manager, rows.map((r) => ({ id: r.k }))).coordinator;
      const other = rows.find((r) => manager.getShardId(r.k) !== coordinator)!.k;
      await manager.select("notes", { key: other });
    }
    assert.ok(manager.openShards.evictions > 0);
    await manager.shutdown();
  }
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  await manager.ready();
  assert.deepEqual(manager.batchRecovery?.replayed, []);
  assert.deepEqual(manager.batchRecovery?.pending, []);
  assert.equal(await manager.count("notes"), 120);
});

Deno.test("two managers opening one directory at once: one recovers, the other waits for it", async () => {
  await using dir = await tempDir();
  const rows = kids(60);
  let victim = -1;
  {
    await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
    victim = roles(manager, rows).smallest;
    await setUpTrap(manager, victim);
    await assert.rejects(manager.insertMany("kids", rows), BatchPendingError);
  }
  {
    await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
    await setParent(manager, victim, true);
  }
  await using a = new ShardManager({ numShards: 4, dbDir: dir.path });
  await using b = new ShardManager({ numShards: 4, dbDir: dir.path });
  await Promise.all([a.ready(), b.ready()]);
  // Whichever took the directory first recovered; the other ran no recovery of its own
  // and, having waited, sees the whole batch.
  const [first, second] = a.batchRecovery !== null ? [a, b] : [b, a];
  assert.equal(first.batchRecovery?.replayed.length, 1);
  assert.equal(second.batchRecovery, null);
  assert.equal(await second.count("kids"), rows.length);
  // Resharding under a second manager of this process is refused: it would keep routing
  // by the old layout.
  await assert.rejects(
    a.reshard(5),
    (e: unknown) =>
      e instanceof ReshardError && /another ShardManager in this process/.test(e.message),
  );
  await b.shutdown();
  await a.reshard(3);
  assert.equal(await a.count("kids"), rows.length);
});

Deno.test("update without a key is all or nothing across shards, also past the commit point", async () => {
  await using dir = await tempDir();
  const rows = kids(60);
  let victim = -1;
  {
    await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
    await setUpTrap(manager, -1); // parent 1 on every shard
    await manager.insertMany("kids", rows);
    // Parent 2 everywhere but on the victim, which is not the coordinator (shard 0 is:
    // an UPDATE has no row count up front, so the lowest shard coordinates).
    victim = 3;
    for (let shard = 0; shard < 4; shard++) {
      if (shard !== victim) {
        await manager.getPool(shard).withConnection((c) =>
          c.run("INSERT INTO parents (id) VALUES (2)")
        );
      }
    }
    // The coordinator refusing: nothing changes anywhere.
    await manager.getPool(0).withConnection((c) => c.run("DELETE FROM parents WHERE id = 2"));
    const refused = await manager.update("kids", { parent: 2 }, { where: { parent: 1 } })
      .then(() => null, (e: unknown) => e);
    assert.ok(refused instanceof ShardOperationError && !(refused instanceof BatchPendingError));
    assert.equal(refused.shardId, 0);
    assert.equal(await manager.count("kids", { parent: 1 }), rows.length);
    await manager.getPool(0).withConnection((c) => c.run("INSERT INTO parents (id) VALUES (2)"));
    // Past the commit point: the victim's part waits in the redo record.
    const error = await manager.update("kids", { parent: 2 }, { where: { parent: 1 } })
      .then(() => null, (e: unknown) => e);
    assert.ok(error instanceof BatchPendingError, String(error));
    assert.equal(error.shardId, victim);
    assert.equal(error.coordinator, 0);
    const onVictim = rows.filter((r) => manager.getShardId(r.id) === victim).length;
    assert.equal(await manager.count("kids", { parent: 1 }), onVictim);
    await manager.getPool(victim).withConnection((c) =>
      c.run("INSERT INTO parents (id) VALUES (2)")
    );
  }
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  await manager.ready();
  const replayed = manager.batchRecovery?.replayed ?? [];
  assert.equal(replayed.length, 1);
  assert.equal(replayed[0]?.shard, victim);
  assert.equal(await manager.count("kids", { parent: 2 }), rows.length);
  // And a delete over every shard is one batch too.
  assert.equal(await manager.delete("kids", { where: { parent: 2 } }), rows.length);
  assert.equal(await manager.count("kids"), 0);
});
