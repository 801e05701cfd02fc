/**
 * ShardManager with access: "shared": isolates and processes on one directory at once.
 */

import assert from "node:assert/strict";
import { nativeDriver, ReshardError, ShardLockedError, ShardManager } from "../mod.ts";
import { spawnFixture, tempDir } from "./helpers.ts";
import { runCliCaptured } from "../src/cli/main.ts";

const sharedOptions = (dbDir: string) => ({
  numShards: 4,
  dbDir,
  access: "shared" as const,
  pool: { driver: nativeDriver, timeoutMs: 20_000 },
});

async function readLine(child: Deno.ChildProcess): Promise<string> {
  const reader = child.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return text.trim();
}

Deno.test("shared: access needs a sharing driver, and must agree with pool.access", () => {
  assert.throws(
    () => new ShardManager({ numShards: 2, dbDir: "x", access: "shared" }),
    (e: unknown) => e instanceof TypeError && /access "shared"/.test(e.message),
  );
  assert.throws(
    () =>
      new ShardManager({
        numShards: 2,
        dbDir: "x",
        access: "exclusive",
        pool: { driver: nativeDriver, access: "shared" },
      }),
    /access is "exclusive" but pool.access is "shared"/,
  );
  assert.throws(
    () => new ShardManager({ numShards: 2, dbDir: "x", access: "everyone" as never }),
    /access must be "exclusive" or "shared", got "everyone"/,
  );
});

Deno.test("shared: two processes insert across shards into one directory; every row once", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager(sharedOptions(dir.path));
  await manager.createTable("events", { id: "INTEGER PRIMARY KEY", who: "TEXT" }, {
    shardKey: "id",
  });
  const child = spawnFixture("shared_manager.ts", [dir.path, "insert", "100000", "600"]);
  child.stdin.close();
  const mine = (async () => {
    for (let at = 0; at < 600; at += 50) {
      await manager.insertMany(
        "events",
        Array.from({ length: 50 }, (_, i) => ({ id: at + i, who: "parent" })),
      );
    }
  })();
  const [output] = await Promise.all([child.output(), mine]);
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  assert.match(new TextDecoder().decode(output.stdout), /DONE 600/);
  assert.equal(await manager.count("events"), 1200);
  assert.equal(await manager.count("events", { who: "parent" }), 600);
  assert.equal((await manager.verifyPlacement()).misplaced, 0);
});

Deno.test("shared: a table another process creates is routed here at once", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager(sharedOptions(dir.path));
  await manager.ready(); // opened before the table exists
  const child = spawnFixture("shared_manager.ts", [dir.path, "insert", "1", "10"]);
  child.stdin.close();
  const output = await child.output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  // The child created "events"; this manager finds its shard key from the map on disk.
  await manager.insert("events", { id: "77", who: "parent" });
  assert.deepEqual(await manager.select("events", { key: 77 }), [{ id: 77, who: "parent" }]);
  assert.equal(await manager.count("events"), 11);
});

Deno.test("shared: exclusive users are refused naming the shared pids; reshard waits for the directory alone", async () => {
  await using dir = await tempDir();
  const holder = spawnFixture("shared_manager.ts", [dir.path, "hold"]);
  const ready = await readLine(holder);
  const pid = Number(/READY (\d+)/.exec(ready)?.[1]);
  try {
    // An exclusive manager elsewhere is refused, naming the live shared user.
    const probe = spawnFixture("shared_manager.ts", [dir.path, "exclusive"]);
    probe.stdin.close();
    const report = JSON.parse(new TextDecoder().decode((await probe.output()).stdout));
    assert.equal(report.error, "ShardLockedError");
    assert.equal(report.heldAs, "shared");
    assert.deepEqual(report.sharedBy, [pid]);
    // In this process too, with the same fields.
    const exclusive = new ShardManager({
      numShards: 4,
      dbDir: dir.path,
      pool: { driver: nativeDriver },
    });
    const error = await exclusive.ready().then(() => null, (e: unknown) => e);
    assert.ok(error instanceof ShardLockedError, String(error));
    assert.deepEqual(error.sharedBy, [pid]);
    await exclusive.shutdown();
    // A shared manager here works beside it, but may not reshard while it lives.
    await using manager = new ShardManager(sharedOptions(dir.path));
    await manager.insert("events", { id: 1, who: "here" });
    const refused = await manager.reshard(5).then(() => null, (e: unknown) => e);
    assert.ok(refused instanceof ReshardError, String(refused));
    assert.match(
      refused.message,
      new RegExp(`shared with 1 other live user\\(s\\) \\(pid ${pid}\\)`),
    );
    assert.equal(manager.numShards, 4);
    assert.equal(await manager.count("events"), 1);
  } finally {
    holder.stdin.close();
    await holder.status;
  }
});

Deno.test("shared: the isolates of one process (Workers) share a directory", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager(sharedOptions(dir.path));
  await manager.createTable("events", { id: "INTEGER PRIMARY KEY", who: "TEXT" }, {
    shardKey: "id",
  });
  const worker = new Worker(new URL("./fixtures/shared_worker.ts", import.meta.url), {
    type: "module",
  });
  const done = new Promise<string>((resolve, reject) => {
    worker.onmessage = (e) => resolve(String(e.data));
    worker.onerror = (e) => reject(e);
  });
  worker.postMessage({ dbDir: dir.path, first: 5000, count: 200 });
  const mine = manager.insertMany(
    "events",
    Array.from({ length: 200 }, (_, i) => ({ id: i, who: "main" })),
  );
  const [answer] = await Promise.all([done, mine]);
  worker.terminate();
  assert.equal(answer, "done 200");
  assert.equal(await manager.count("events"), 400);
});

Deno.test("shared: info, check and backup work beside a live server that shares the directory", async () => {
  await using dir = await tempDir();
  const holder = spawnFixture("shared_manager.ts", [dir.path, "hold"]);
  assert.match(await readLine(holder), /READY \d+/);
  try {
    {
      await using writer = new ShardManager(sharedOptions(dir.path));
      await writer.insertMany("events", [{ id: 1, who: "a" }, { id: 2, who: "b" }]);
    }
    const info = await runCliCaptured(["info", dir.path, "--json"]);
    assert.equal(info.code, 0, info.stdout + info.stderr);
    assert.equal(JSON.parse(info.stdout).numShards, 4);
    const check = await runCliCaptured(["check", dir.path]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    const backup = await runCliCaptured(["backup", dir.path, `${dir.path}-backup`]);
    assert.equal(backup.code, 0, backup.stdout + backup.stderr);
    assert.ok(Deno.statSync(`${dir.path}-backup/backup.json`).isFile);
  } finally {
    holder.stdin.close();
    await holder.status;
    await Deno.remove(`${dir.path}-backup`, { recursive: true }).catch(() => {});
  }
});
