/** The shardlite command line: every command in-process, and the real entry as a subprocess. */

import assert from "node:assert/strict";
import { BatchPendingError, ShardManager } from "../mod.ts";
import { kids, roles, setParent, setUpTrap } from "./batch_trap.ts";
import { OwnerLock } from "../src/pool/ownership.ts";
import { runCliCaptured } from "../src/cli/main.ts";
import { driverFlags, tempDir } from "./helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** A 4-shard directory: `users` spread evenly, `events` mostly on one user's shard. */
async function fixture(dbDir: string): Promise<void> {
  await using manager = new ShardManager({ numShards: 4, dbDir });
  await manager.createTable("users", { id: "INTEGER PRIMARY KEY", name: "TEXT" }, {
    shardKey: "id",
  });
  await manager.createTable("events", { id: "INTEGER PRIMARY KEY", user_id: "INTEGER" }, {
    shardKey: "user_id",
  });
  await manager.insertMany(
    "users",
    Array.from({ length: 400 }, (_, i) => ({ id: i, name: `u${i}` })),
  );
  await manager.insertMany("events", [
    ...Array.from({ length: 300 }, (_, i) => ({ id: i, user_id: 7 })),
    ...Array.from({ length: 100 }, (_, i) => ({ id: 1_000 + i, user_id: i })),
  ]);
}

async function fixtureDir(): Promise<
  { path: string; data: string; [Symbol.asyncDispose](): Promise<void> }
> {
  const dir = await tempDir("shardlite-cli-");
  const data = `${dir.path}/data`;
  await fixture(data);
  return { path: dir.path, data, [Symbol.asyncDispose]: () => dir[Symbol.asyncDispose]() };
}

Deno.test("info: the map, rows and sizes per shard, skew with the hot shard named", async () => {
  await using dir = await fixtureDir();
  const hotShard = new ShardManager({ numShards: 4, dbDir: dir.data }).getShardId(7);
  const text = await runCliCaptured(["info", dir.data]);
  assert.equal(text.code, 0, text.stderr);
  assert.equal(text.stderr, "");
  assert.match(text.stdout, /shards: +4/);
  assert.match(text.stdout, /strategy: +hash/);
  assert.match(text.stdout, /events \(shard key user_id\), users \(shard key id\)/);
  assert.match(text.stdout, /shard_3\.db/);
  assert.match(text.stdout, new RegExp(`hot shard: events - shard ${hotShard} holds \\d+ rows`));
  assert.doesNotMatch(text.stdout, /hot shard: users/);

  const json = await runCliCaptured(["info", dir.data, "--json"]);
  assert.equal(json.code, 0);
  const doc = JSON.parse(json.stdout);
  assert.equal(doc.numShards, 4);
  assert.deepEqual(doc.strategy, { type: "hash", numShards: 4 });
  assert.deepEqual(doc.tables.events, {
    shardKey: "user_id",
    keyType: { declaredType: "INTEGER", rowidAlias: false, strictTable: false },
  });
  assert.equal(doc.shards.length, 4);
  assert.equal(doc.skew.users.total, 400);
  assert.equal(doc.skew.events.total, 400);
  assert.ok(doc.skew.events.skew > 1.5);
  assert.deepEqual(doc.hot.map((h: { table: string; shardId: number }) => [h.table, h.shardId]), [
    ["events", hotShard],
  ]);
  assert.ok(doc.shards.every((s: { sizeBytes: number }) => s.sizeBytes > 0));
});

Deno.test("info and check on a directory without a map: exit 1 with a clear message", async () => {
  await using dir = await tempDir();
  for (const command of ["info", "check"]) {
    const result = await runCliCaptured([command, dir.path]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /has no shard map \(shardlite\.json\)/);
    assert.equal(result.stdout, "");
    const json = await runCliCaptured([command, `${dir.path}/nope`, "--json"]);
    assert.equal(json.code, 1);
    assert.deepEqual(JSON.parse(json.stdout).ok, false);
    assert.match(json.stderr, /does not exist/);
  }
  // Nothing was created by looking.
  assert.deepEqual([...Deno.readDirSync(dir.path)], []);
});

Deno.test("check: ok, then a missing shard (warning), an extra one and a corrupt one (problems)", async () => {
  await using dir = await fixtureDir();
  const ok = await runCliCaptured(["check", dir.data]);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /^ok: .* 4 shards, 4 checked\n$/);

  await Deno.remove(`${dir.data}/shard_3.db`);
  const missing = await runCliCaptured(["check", dir.data, "--json"]);
  assert.equal(missing.code, 0);
  const doc = JSON.parse(missing.stdout);
  assert.equal(doc.ok, true);
  assert.deepEqual(doc.warnings.map((w: { kind: string }) => w.kind), ["missing-shard"]);

  await Deno.copyFile(`${dir.data}/shard_0.db`, `${dir.data}/shard_6.db`);
  const extra = await runCliCaptured(["check", dir.data]);
  assert.equal(extra.code, 1);
  assert.match(extra.stdout, /problem: shard_6\.db is beyond the map's 4 shards/);
  await Deno.remove(`${dir.data}/shard_6.db`);

  // Damage a b-tree page of shard 1 (after the header page).
  const path = `${dir.data}/shard_1.db`;
  const bytes = Deno.readFileSync(path);
  const pageSize = ((bytes[16]! << 8) | bytes[17]!) || 65536;
  bytes.fill(0x5a, pageSize, pageSize + 64);
  Deno.writeFileSync(path, bytes);
  const corrupt = await runCliCaptured(["check", dir.data, "--json"]);
  assert.equal(corrupt.code, 1);
  const report = JSON.parse(corrupt.stdout);
  assert.equal(report.ok, false);
  assert.deepEqual(
    report.problems.map((p: { kind: string; shardId: number }) => [p.kind, p.shardId]),
    [["integrity", 1]],
  );
});

Deno.test("check reports an insertMany batch it cannot complete, then the one it completed", async () => {
  await using dir = await tempDir("shardlite-cli-");
  const data = `${dir.path}/data`;
  let victim = -1;
  {
    await using manager = new ShardManager({ numShards: 4, dbDir: data });
    victim = roles(manager, kids(60)).smallest;
    await setUpTrap(manager, victim);
    await assert.rejects(manager.insertMany("kids", kids(60)), BatchPendingError);
  }
  const pending = await runCliCaptured(["check", data, "--json"]);
  assert.equal(pending.code, 1, pending.stdout + pending.stderr);
  const problems = JSON.parse(pending.stdout).problems;
  assert.deepEqual(problems.map((p: { kind: string; shardId: number }) => [p.kind, p.shardId]), [
    ["batch-pending", victim],
  ]);
  assert.match(problems[0].message, /FOREIGN KEY constraint failed.*Repair that shard/);
  {
    await using manager = new ShardManager({ numShards: 4, dbDir: data });
    await setParent(manager, victim, true);
  }
  // Opened for the check, the directory completes the batch and says so.
  const done = await runCliCaptured(["check", data]);
  assert.equal(done.code, 0, done.stdout + done.stderr);
  assert.match(
    done.stdout,
    new RegExp(`was completed on opening: \\d+ row\\(s\\) written to shard_${victim}\\.db`),
  );
  await using manager = new ShardManager({ numShards: 4, dbDir: data });
  assert.equal(await manager.count("kids"), 60);
});

Deno.test("backup and restore through the CLI, with progress on stderr", async () => {
  await using dir = await fixtureDir();
  const backup = await runCliCaptured(["backup", dir.data, `${dir.path}/bk`, "--point-in-time"]);
  assert.equal(backup.code, 0, backup.stderr);
  assert.match(backup.stdout, /backed up 4 shards .* MB\/s\); writes paused [\d.]+ ms\n$/);
  assert.equal(backup.stderr.match(/^backup: shard \d written/gm)?.length, 4);

  const again = await runCliCaptured(["backup", dir.data, `${dir.path}/bk`]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /is not empty/);

  const restore = await runCliCaptured(["restore", `${dir.path}/bk`, `${dir.path}/restored`]);
  assert.equal(restore.code, 0, restore.stderr);
  assert.match(restore.stdout, /^restored 4 shards/);
  assert.equal(restore.stderr.match(/^restore: shard \d verified/gm)?.length, 4);
  assert.equal(restore.stderr.match(/^restore: shard \d installed/gm)?.length, 4);

  const refused = await runCliCaptured(["restore", `${dir.path}/bk`, `${dir.path}/restored`]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /not empty.*--overwrite/);
  const overwrite = await runCliCaptured([
    "restore",
    `${dir.path}/bk`,
    `${dir.path}/restored`,
    "--overwrite",
  ]);
  assert.equal(overwrite.code, 0, overwrite.stderr);

  const info = JSON.parse(
    (await runCliCaptured(["info", `${dir.path}/restored`, "--json"])).stdout,
  );
  assert.equal(info.skew.users.total, 400);
  assert.equal(info.skew.events.total, 400);
});

Deno.test("reshard: moves rows with a progress bar and reports what moved", async () => {
  await using dir = await fixtureDir();
  const result = await runCliCaptured(["reshard", dir.data, "--shards", "6"]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /resharded .*: 4 -> 6 shards, 800 rows scanned, \d+ moved/);
  assert.match(result.stderr, /reshard \[#+\] 100%/);
  const info = JSON.parse((await runCliCaptured(["info", dir.data, "--json"])).stdout);
  assert.equal(info.numShards, 6);
  assert.equal(info.skew.users.total, 400);
  assert.equal(info.skew.events.total, 400);
});

Deno.test("usage errors exit 2; --help and -h exit 0 everywhere", async () => {
  const usage: string[][] = [
    [],
    ["frobnicate"],
    ["--verbose"],
    ["info"],
    ["info", "a", "b"],
    ["info", "a", "--bogus"],
    ["check", "a", "--overwrite"],
    ["backup", "a"],
    ["restore", "a"],
    ["reshard", "a"],
    ["reshard", "a", "--shards"],
    ["reshard", "a", "--shards", "zero"],
    ["reshard", "a", "--shards", "0"],
  ];
  for (const argv of usage) {
    const result = await runCliCaptured(argv);
    assert.equal(result.code, 2, `${JSON.stringify(argv)}: ${result.stderr}`);
    assert.equal(result.stdout, "");
    assert.match(result.stderr, /^shardlite: .*\n\n[^]*Usage: /);
  }
  for (const command of [[], ["info"], ["check"], ["backup"], ["restore"], ["reshard"]]) {
    for (const flag of ["--help", "-h"]) {
      const result = await runCliCaptured([...command, flag]);
      assert.equal(result.code, 0);
      assert.match(result.stdout, /Usage: deno task shardlite/);
      assert.equal(result.stderr, "");
    }
  }
});

Deno.test("a directory owned by another process: exit 1 naming its pid", async () => {
  await using dir = await fixtureDir();
  // The OS lock is per open file, so holding it here refuses the command like another process.
  const lock = OwnerLock.acquire(`${dir.data}/shardlite.json`);
  try {
    for (
      const argv of [["info", dir.data], ["check", dir.data], ["backup", dir.data, `${dir.path}/b`]]
    ) {
      const result = await runCliCaptured(argv);
      assert.equal(result.code, 1);
      assert.match(result.stderr, new RegExp(`in use by another process \\(pid ${Deno.pid}\\)`));
    }
    const json = await runCliCaptured(["info", dir.data, "--json"]);
    assert.equal(JSON.parse(json.stdout).error.ownerPid, Deno.pid);
  } finally {
    lock.release();
  }
});

async function runEntry(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--config=${ROOT}deno.json`,
      "--allow-read",
      "--allow-write",
      ...driverFlags(),
      "src/cli/main.ts",
      ...args,
    ],
    cwd: ROOT,
    stdin: "null",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test("the real entry runs standalone: info --json, and a lock held by this process", async () => {
  await using dir = await fixtureDir();
  const result = await runEntry(["info", dir.data, "--json"]);
  assert.equal(result.code, 0, result.stderr);
  const doc = JSON.parse(result.stdout);
  assert.equal(doc.numShards, 4);
  assert.equal(doc.skew.users.total, 400);

  const lock = OwnerLock.acquire(`${dir.data}/shardlite.json`);
  try {
    const locked = await runEntry(["check", dir.data]);
    assert.equal(locked.code, 1);
    assert.match(locked.stderr, new RegExp(`pid ${Deno.pid}\\b`));
  } finally {
    lock.release();
  }
  assert.equal((await runEntry(["nope"])).code, 2);
});

Deno.test("check: misplaced rows are a problem; --repair moves them and reports conflicts", async () => {
  await using dir = await fixtureDir();
  // Put users 5000 and 5001 on shards their keys do not map to, 5001 also on its own.
  const manager = new ShardManager({ numShards: 4, dbDir: dir.data });
  const away = [0, 1, 2, 3].find((s) =>
    s !== manager.getShardId(5000) && s !== manager.getShardId(5001)
  ) as number;
  for (const [shard, id] of [[away, 5000], [away, 5001], [manager.getShardId(5001), 5001]]) {
    await manager.getPool(shard as number).withConnection((c) =>
      c.run("INSERT INTO users (id, name) VALUES (?, 'x')", [id as number])
    );
  }
  await manager.shutdown();
  const found = await runCliCaptured(["check", dir.data, "--json"]);
  assert.equal(found.code, 1);
  const doc = JSON.parse(found.stdout);
  assert.deepEqual(doc.problems.map((p: { kind: string }) => p.kind), ["misplaced-rows"]);
  assert.match(doc.problems[0].message, /2 row\(s\) are on a shard their key does not map to/);
  assert.match(doc.problems[0].message, /--repair/);
  assert.equal(doc.placement.misplaced, 2);

  const repaired = await runCliCaptured(["check", dir.data, "--repair"]);
  assert.equal(repaired.code, 1, repaired.stdout); // the duplicate stays a problem
  assert.match(repaired.stdout, /moved 1 misplaced row/);
  assert.match(repaired.stdout, /1 misplaced row\(s\) could not move .*users key 5001/);
  await using again = new ShardManager({ numShards: 4, dbDir: dir.data });
  assert.deepEqual(await again.select("users", { key: 5000 }), [{ id: 5000, name: "x" }]);
  assert.equal(await again.count("users", { id: 5001 }), 2); // nothing dropped
});
