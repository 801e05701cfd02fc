import assert from "node:assert/strict";
import { HashStrategy, ModuloStrategy, ReshardError, type Row, ShardManager } from "../mod.ts";
import { spawnFixture, tempDir } from "./helpers.ts";

const USERS = { id: "INTEGER PRIMARY KEY", name: "TEXT", email: "TEXT" };

async function fill(dir: string, numShards: number, rows: number): Promise<void> {
  await using manager = new ShardManager({ numShards, dbDir: dir });
  await manager.createTable("users", USERS, { shardKey: "id" });
  await manager.insertMany(
    "users",
    Array.from({ length: rows }, (_, i) => ({ id: i + 1, name: `u${i + 1}`, email: `${i}@x` })),
  );
}

/** Row count and an order-independent checksum of every row. */
async function fingerprint(manager: ShardManager): Promise<{ count: number; sum: string }> {
  const rows = await manager.queryAll("SELECT id, name, email FROM users");
  let sum = 0n;
  for (const row of rows) {
    const text = JSON.stringify([row.id, row.name, row.email]);
    let h = 1469598103934665603n;
    for (const ch of text) {
      h = ((h ^ BigInt(ch.codePointAt(0) ?? 0)) * 1099511628211n) & ((1n << 64n) - 1n);
    }
    sum = (sum + h) & ((1n << 64n) - 1n);
  }
  return { count: rows.length, sum: sum.toString(16) };
}

async function everyRowWhereItBelongs(manager: ShardManager): Promise<void> {
  for (const shardId of manager.strategy.getAllShardIds()) {
    const rows = await manager.getPool(shardId).withConnection((c) =>
      c.all("SELECT id FROM users")
    );
    for (const row of rows as Row[]) {
      assert.equal(
        manager.getShardId(row.id as number),
        shardId,
        `row ${row.id} on shard ${shardId}`,
      );
    }
    const check = await manager.getPool(shardId).withConnection((c) =>
      c.get("PRAGMA integrity_check")
    );
    assert.deepEqual(check, { integrity_check: "ok" });
  }
}

Deno.test("growing 4 -> 5 moves about 1/5 of the rows, all into the new shard", async () => {
  await using dir = await tempDir();
  await fill(dir.path, 4, 5_000);
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  const before = await fingerprint(manager);
  const oldStrategy = new HashStrategy(4);
  const report = await manager.reshard(5, { batchSize: 400 });
  assert.equal(manager.numShards, 5);
  assert.equal(report.scanned, 5_000);
  assert.equal(report.tables.users?.moved, report.moved);
  assert.ok(report.moved > 5_000 * 0.12 && report.moved < 5_000 * 0.28, `moved ${report.moved}`);
  // Only rows whose jump hash changed moved, and they all went to shard 4.
  let expectedMoves = 0;
  for (let id = 1; id <= 5_000; id++) {
    if (oldStrategy.getShardId(id) !== manager.getShardId(id)) {
      expectedMoves++;
      assert.equal(manager.getShardId(id), 4);
    }
  }
  assert.equal(report.moved, expectedMoves);
  assert.deepEqual(await fingerprint(manager), before);
  await everyRowWhereItBelongs(manager);
  const map = JSON.parse(await Deno.readTextFile(`${dir.path}/shardlite.json`));
  assert.deepEqual(map.strategy, { type: "hash", numShards: 5 });
  await assert.rejects(Deno.stat(`${dir.path}/reshard.json`), Deno.errors.NotFound);
});

Deno.test("shrinking 5 -> 4 moves only the removed shard's rows and deletes its file", async () => {
  await using dir = await tempDir();
  await fill(dir.path, 5, 3_000);
  await using manager = new ShardManager({ numShards: 5, dbDir: dir.path });
  const before = await fingerprint(manager);
  const onShard4 = await manager.getPool(4).withConnection((c) =>
    c.get("SELECT count(*) AS n FROM users")
  );
  const report = await manager.reshard(4);
  assert.equal(report.moved, onShard4?.n);
  assert.deepEqual(report.removedFiles, [`${dir.path}/shard_4.db`]);
  await assert.rejects(Deno.stat(`${dir.path}/shard_4.db`), Deno.errors.NotFound);
  assert.deepEqual(await fingerprint(manager), before);
  await everyRowWhereItBelongs(manager);
});

Deno.test("another strategy: hash -> modulo over the same data", async () => {
  await using dir = await tempDir();
  await fill(dir.path, 3, 1_000);
  await using manager = new ShardManager({ numShards: 3, dbDir: dir.path });
  const before = await fingerprint(manager);
  await manager.reshard(new ModuloStrategy(4));
  assert.deepEqual(manager.getShardInfo().strategy, { type: "modulo", numShards: 4 });
  assert.deepEqual(await fingerprint(manager), before);
  await everyRowWhereItBelongs(manager);
});

Deno.test("a table without a shard key is refused before anything moves", async () => {
  await using dir = await tempDir();
  await fill(dir.path, 2, 100);
  await using manager = new ShardManager({ numShards: 2, dbDir: dir.path });
  await manager.createTable("logs", { at: "INTEGER", line: "TEXT" });
  const error = await manager.reshard(3).then(() => null, (e: unknown) => e);
  assert.ok(error instanceof ReshardError);
  assert.equal(error.table, "logs");
  assert.match(error.message, /table logs has no shard-key column.*Nothing was moved/);
  assert.equal(manager.numShards, 2);
  await assert.rejects(Deno.stat(`${dir.path}/shard_2.db`), Deno.errors.NotFound);
  assert.equal(await manager.count("users"), 100); // still usable: nothing pending
});

Deno.test("a collision stops the reshard naming table and key; nothing is lost; abort rolls back", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 2, dbDir: dir.path });
  await manager.createTable("users", { ...USERS, email: "TEXT UNIQUE" }, { shardKey: "id" });
  // Same email on two shards: legal while they are apart. The second copy sits in the
  // middle of a packed multi-row INSERT, and the error still names its row.
  const ids = Array.from({ length: 300 }, (_, i) => i + 1);
  const a = ids.find((id) => manager.getShardId(id) === 0) as number;
  const b = ids.filter((id) => manager.getShardId(id) === 1)[60] as number;
  await manager.insertMany(
    "users",
    ids.map((id) => ({ id, name: `n${id}`, email: id === a || id === b ? "same@x" : `${id}@x` })),
  );
  const one = new ModuloStrategy(1);
  const error = await manager.reshard(one).then(() => null, (e: unknown) => e);
  assert.ok(error instanceof ReshardError, String(error));
  assert.equal(error.table, "users");
  assert.match(error.message, new RegExp(`row with id = ${b} of table users collides`));
  assert.match(error.message, /Nothing was lost/);
  assert.match(String(error.cause), /UNIQUE constraint failed: users\.email/);
  // The plan is pending: ordinary operations are refused, not routed by a mixed map.
  await assert.rejects(manager.count("users"), /unfinished reshard/);
  assert.notEqual(manager.pendingReshard, null);
  const back = await manager.abortReshard();
  assert.deepEqual(back.to, { type: "hash", numShards: 2 });
  assert.equal(await manager.count("users"), 300);
  await everyRowWhereItBelongs(manager);
});

Deno.test("operations issued during a reshard wait, then see the new layout", async () => {
  await using dir = await tempDir();
  await fill(dir.path, 2, 2_000);
  await using manager = new ShardManager({ numShards: 2, dbDir: dir.path });
  await manager.count("users");
  const resharding = manager.reshard(3, { batchSize: 100 });
  const insert = manager.insert("users", { id: 9_999, name: "late", email: "late@x" });
  const read = manager.select("users", { key: 1_500 });
  const count = manager.count("users");
  await resharding;
  await insert;
  assert.deepEqual((await read).map((r) => r.id), [1_500]);
  // Issued after the insert: it counts 2,000 or 2,001 rows, never a row twice or none.
  assert.ok([2_000, 2_001].includes(await count));
  assert.equal(await manager.count("users"), 2_001);
  await everyRowWhereItBelongs(manager);
});

const CYCLES = Deno.env.get("SHARDLITE_STRESS") === "1" ? 50 : 3;

Deno.test(`kill -9 in the middle of a reshard, ${CYCLES} times: it resumes, every row exactly once`, async () => {
  await using dir = await tempDir();
  await fill(dir.path, 3, 3_000);
  let expected: { count: number; sum: string };
  {
    await using manager = new ShardManager({ numShards: 3, dbDir: dir.path });
    expected = await fingerprint(manager);
  }
  let from = 3;
  let killed = 0;
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const to = from === 3 ? 5 : 3;
    const child = spawnFixture("resharder.ts", [dir.path, String(from), String(to)]);
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    // Kill after a cycle-dependent number of batches (deterministic, spread over the run).
    const killAfter = 1 + ((cycle * 7) % 12);
    let batches = 0;
    let buffer = "";
    let done = false;
    while (!done) {
      const { value, done: eof } = await reader.read();
      if (eof) break;
      buffer += value;
      for (const line of buffer.split("\n").slice(0, -1)) {
        if (line === "DONE") done = true;
        else if (line.startsWith("BATCH") && ++batches >= killAfter) done = true;
      }
      buffer = buffer.slice(buffer.lastIndexOf("\n") + 1);
    }
    child.kill("SIGKILL");
    const status = await child.status;
    await reader.cancel();
    await child.stderr.cancel();
    await child.stdin.close();
    if (status.signal === "SIGKILL") killed++;
    // Reopen: the unfinished plan is reported, then resumed to completion.
    await using manager = new ShardManager({ numShards: from, dbDir: dir.path });
    const pending = await manager.count("users").then(() => null, (e: unknown) => e);
    if (pending !== null) {
      assert.ok(pending instanceof ReshardError, `cycle ${cycle}: ${pending}`);
      const report = await manager.reshard(to);
      assert.equal(report.resumed, true);
    } else if (manager.numShards !== to) {
      await manager.reshard(to); // killed before the plan was written: start again
    }
    assert.equal(manager.numShards, to, `cycle ${cycle}`);
    assert.deepEqual(await fingerprint(manager), expected, `cycle ${cycle}`);
    await everyRowWhereItBelongs(manager);
    from = to;
  }
  assert.ok(killed >= 1, "at least one child was killed mid-reshard");
});

Deno.test("an aborted reshard stays pending and resumable; resuming completes it", async () => {
  await using dir = await tempDir();
  await fill(dir.path, 2, 2_000);
  await using manager = new ShardManager({ numShards: 2, dbDir: dir.path });
  const before = await fingerprint(manager);
  const controller = new AbortController();
  const reason = new Error("operator pressed ctrl-c");
  const error = await manager.reshard(3, {
    batchSize: 100,
    signal: controller.signal,
    onProgress: () => controller.abort(reason),
  }).then(() => null, (e: unknown) => e);
  assert.equal(error, reason);
  assert.deepEqual(manager.pendingReshard?.to, { type: "hash", numShards: 3 });
  await assert.rejects(manager.count("users"), ReshardError);
  const report = await manager.reshard(3);
  assert.equal(report.resumed, true);
  assert.equal(manager.numShards, 3);
  assert.deepEqual(await fingerprint(manager), before);
  await everyRowWhereItBelongs(manager);
});
