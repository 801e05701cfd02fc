/** backupShards / restoreShards: round trip, verification, refusals, point in time. */

import assert from "node:assert/strict";
import {
  BackupDestinationError,
  BackupVerificationError,
  RestoreTargetError,
  type Row,
  ShardLockedError,
  ShardManager,
} from "../mod.ts";
import {
  BACKUP_MANIFEST_FILE,
  type BackupManifest,
  backupShards,
  restoreShards,
} from "../src/api/backup.ts";
import { tempDir } from "./helpers.ts";

const USERS = { id: "INTEGER PRIMARY KEY", name: "TEXT", score: "REAL", avatar: "BLOB" };
const EVENTS = { id: "INTEGER PRIMARY KEY", user_id: "INTEGER", kind: "TEXT", big: "INTEGER" };

async function seeded(dbDir: string, users = 1_000): Promise<ShardManager> {
  const manager = new ShardManager({ numShards: 4, dbDir });
  await manager.createTable("users", USERS, { shardKey: "id" });
  await manager.createTable("events", EVENTS, { shardKey: "user_id" });
  await manager.applySchema("CREATE INDEX IF NOT EXISTS events_kind ON events (kind)");
  await manager.insertMany(
    "users",
    Array.from({ length: users }, (_, i) => ({
      id: i + 1,
      name: i % 7 === 0 ? null : `user ${i} 'quoted' "twice"`,
      score: i % 5 === 0 ? null : i / 3,
      avatar: i % 3 === 0 ? new Uint8Array([i & 255, 0, 255]) : null,
    })),
  );
  await manager.insertMany(
    "events",
    Array.from({ length: users * 2 }, (_, i) => ({
      id: i + 1,
      user_id: (i % users) + 1,
      kind: ["click", "view", "buy"][i % 3] as string,
      big: i % 11 === 0 ? 9_007_199_254_740_993n + BigInt(i) : i,
    })),
  );
  return manager;
}

function canonical(row: Row): string {
  return JSON.stringify(
    Object.keys(row).sort().map((k) => [k, row[k]]),
    (_k, v) =>
      typeof v === "bigint"
        ? `bigint:${v}`
        : v instanceof Uint8Array
        ? `bytes:${Array.from(v, (b) => b.toString(16).padStart(2, "0")).join("")}`
        : v,
  );
}

/** Per table: row count, an order-independent digest of every row, and rows per shard. */
async function fingerprint(manager: ShardManager): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const stats = await manager.getShardStats();
  for (const table of ["users", "events"]) {
    const rows = await manager.queryAll(`SELECT * FROM ${table}`);
    const lines = rows.map(canonical).sort().join("\n");
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", new TextEncoder().encode(lines)),
    );
    out[table] = {
      count: rows.length,
      digest: Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""),
      perShard: stats.map((s) => s.rows[table]),
    };
  }
  return out;
}

function names(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return ["<missing>"];
    throw error;
  }
}

function readManifest(dir: string): BackupManifest {
  return JSON.parse(Deno.readTextFileSync(`${dir}/${BACKUP_MANIFEST_FILE}`));
}

async function sha256(path: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await Deno.readFile(path)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("checksums of shard files larger than the 1 MiB hashing buffer", async () => {
  await using dir = await tempDir();
  const source = new ShardManager({ numShards: 1, dbDir: `${dir.path}/data` });
  await source.createTable("blobs", { id: "INTEGER PRIMARY KEY", body: "BLOB" }, {
    shardKey: "id",
  });
  // 40 rows of 64 KiB of varying bytes: a file of about 2.6 MiB, hashed in three reads.
  await source.insertMany(
    "blobs",
    Array.from({ length: 40 }, (_, i) => ({
      id: i + 1,
      body: Uint8Array.from({ length: 65_536 }, (_, j) => (i * 31 + j * 7) & 255),
    })),
  );
  await backupShards(source, `${dir.path}/backup`);
  await source.shutdown();
  const [entry] = readManifest(`${dir.path}/backup`).files;
  assert.ok(entry !== undefined && entry.sizeBytes > 2 * (1 << 20), `${entry?.sizeBytes} bytes`);
  assert.equal(entry.sha256, await sha256(`${dir.path}/backup/${entry.file}`));
  // Verification re-hashes in chunks too, and the restore passes.
  const restored = await restoreShards(`${dir.path}/backup`, `${dir.path}/restored`);
  assert.equal(restored.numShards, 1);
});

Deno.test("round trip: 4 shards -> backup -> restore into a new dir -> identical rows", async () => {
  await using dir = await tempDir();
  const source = await seeded(`${dir.path}/data`);
  const before = await fingerprint(source);
  const progress: { shardId: number; done: number; total: number; bytes: number }[] = [];
  const report = await backupShards(source, `${dir.path}/backup`, {
    onProgress: (p) => progress.push(p),
  });
  await source.shutdown();

  assert.equal(report.numShards, 4);
  assert.deepEqual(progress.map((p) => [p.shardId, p.done, p.total]), [
    [0, 1, 4],
    [1, 2, 4],
    [2, 3, 4],
    [3, 4, 4],
  ]);
  assert.equal(progress.at(-1)?.bytes, report.bytes);
  assert.ok(report.megabytesPerSecond > 0 && report.durationMs > 0);
  assert.equal(report.pausedMs, undefined);
  assert.deepEqual(names(`${dir.path}/backup`), [
    "backup.json",
    "shard_0.db",
    "shard_1.db",
    "shard_2.db",
    "shard_3.db",
    "shardlite.json",
  ]);
  if (Deno.build.os !== "windows") {
    assert.equal(Deno.statSync(`${dir.path}/backup`).mode! & 0o777, 0o700);
    for (const name of names(`${dir.path}/backup`)) {
      assert.equal(Deno.statSync(`${dir.path}/backup/${name}`).mode! & 0o777, 0o600, name);
    }
  }
  const manifest = readManifest(`${dir.path}/backup`);
  assert.equal(manifest.format, 1);
  assert.equal(manifest.numShards, 4);
  assert.deepEqual(manifest.strategy, { type: "hash", numShards: 4 });
  assert.ok(!Number.isNaN(Date.parse(manifest.createdAt)));
  for (const [i, entry] of manifest.files.entries()) {
    assert.equal(entry.file, `shard_${i}.db`);
    assert.equal(entry.sha256, await sha256(`${dir.path}/backup/${entry.file}`));
    assert.equal(entry.sizeBytes, Deno.statSync(`${dir.path}/backup/${entry.file}`).size);
  }
  const usersPerShard = (before.users as { perShard: number[] }).perShard;
  assert.deepEqual(manifest.files.map((f) => f.rows.users), usersPerShard);

  const restored = await restoreShards(`${dir.path}/backup`, `${dir.path}/restored`);
  assert.equal(restored.numShards, 4);
  assert.deepEqual(restored.removed, []);
  assert.deepEqual(names(`${dir.path}/restored`), [
    "shard_0.db",
    "shard_1.db",
    "shard_2.db",
    "shard_3.db",
    "shardlite.json",
  ]);
  await using again = new ShardManager({ numShards: 4, dbDir: `${dir.path}/restored` });
  assert.deepEqual(await fingerprint(again), before);
  assert.equal(again.getShardKeyColumn("events"), "user_id");
  assert.equal(await again.validateShardFiles(), true);
  // The index came along, and writes work on the restored shards.
  const indexes = await again.queryAll(
    "SELECT name FROM sqlite_schema WHERE type = 'index' AND name = 'events_kind'",
  );
  assert.equal(indexes.length, 4);
  await again.insert("users", { id: 5_000, name: "new" });
  assert.equal(await again.count("users"), 1_001);
});

Deno.test("a backup refuses a non-empty or non-directory destination", async () => {
  await using dir = await tempDir();
  await using manager = await seeded(`${dir.path}/data`, 10);
  await Deno.mkdir(`${dir.path}/full`);
  await Deno.writeTextFile(`${dir.path}/full/keep.txt`, "mine");
  await assert.rejects(backupShards(manager, `${dir.path}/full`), (e: unknown) => {
    assert.ok(e instanceof BackupDestinationError);
    assert.equal(e.reason, "not-empty");
    assert.deepEqual(e.entries, ["keep.txt"]);
    assert.match(e.message, /not empty.*keep\.txt.*new or empty directory/);
    return true;
  });
  assert.deepEqual(names(`${dir.path}/full`), ["keep.txt"]);
  await Deno.writeTextFile(`${dir.path}/file`, "x");
  await assert.rejects(
    backupShards(manager, `${dir.path}/file`),
    (e: unknown) => e instanceof BackupDestinationError && e.reason === "not-a-directory",
  );
  // An existing empty directory is fine; the path is bound, so quotes are harmless.
  await Deno.mkdir(`${dir.path}/it's "empty"`);
  const report = await backupShards(manager, `${dir.path}/it's "empty"`);
  assert.equal(report.files.length, 4);
});

async function backupOf(dir: string): Promise<string> {
  const manager = await seeded(`${dir}/data`, 50);
  await backupShards(manager, `${dir}/backup`);
  await manager.shutdown();
  return `${dir}/backup`;
}

function editManifest(backup: string, change: (m: BackupManifest) => void): void {
  const manifest = readManifest(backup);
  change(manifest);
  Deno.writeTextFileSync(`${backup}/${BACKUP_MANIFEST_FILE}`, JSON.stringify(manifest));
}

/** Damages the b-tree page of a table (page 2) without touching the database header. */
function corruptPage(path: string): void {
  const bytes = Deno.readFileSync(path);
  const pageSize = ((bytes[16]! << 8) | bytes[17]!) || 65536;
  bytes.fill(0x5a, pageSize, pageSize + 64);
  Deno.writeFileSync(path, bytes);
}

Deno.test("a damaged backup is refused before anything is written to dbDir", async (t) => {
  await using dir = await tempDir();
  const pristine = await backupOf(dir.path);
  let n = 0;
  const fresh = async (): Promise<string> => {
    const copy = `${dir.path}/copy${++n}`;
    await Deno.mkdir(copy);
    for (const name of names(pristine)) {
      await Deno.copyFile(`${pristine}/${name}`, `${copy}/${name}`);
    }
    return copy;
  };
  const cases: {
    name: string;
    damage: (backup: string) => void;
    problem: BackupVerificationError["problem"];
    file: RegExp;
  }[] = [
    {
      name: "one changed letter in a row fails the checksum (integrity_check cannot see it)",
      damage: (b) => {
        const bytes = Deno.readFileSync(`${b}/shard_2.db`);
        const at = new TextDecoder("latin1").decode(bytes).indexOf("quoted");
        assert.ok(at > 0);
        bytes[at] = "Q".charCodeAt(0);
        Deno.writeFileSync(`${b}/shard_2.db`, bytes);
      },
      problem: "checksum",
      file: /shard_2\.db$/,
    },
    {
      name: "a broken b-tree fails integrity_check even with a matching checksum",
      damage: (b) => corruptPage(`${b}/shard_1.db`),
      problem: "integrity",
      file: /shard_1\.db$/,
    },
    {
      name: "a truncated file fails the size check",
      damage: (b) => Deno.truncateSync(`${b}/shard_0.db`, 4096),
      problem: "checksum",
      file: /shard_0\.db$/,
    },
    {
      name: "a missing shard file",
      damage: (b) => Deno.removeSync(`${b}/shard_3.db`),
      problem: "missing-file",
      file: /shard_3\.db$/,
    },
    {
      name: "a missing manifest",
      damage: (b) => Deno.removeSync(`${b}/backup.json`),
      problem: "manifest",
      file: /backup\.json$/,
    },
    {
      name: "a manifest naming a file outside the backup",
      damage: (b) => editManifest(b, (m) => m.files[0]!.file = "../data/shard_0.db"),
      problem: "manifest",
      file: /backup\.json$/,
    },
    {
      name: "a shard map disagreeing with the manifest",
      damage: (b) => {
        const map = JSON.parse(Deno.readTextFileSync(`${b}/shardlite.json`));
        map.strategy = { type: "modulo", numShards: 4 };
        Deno.writeTextFileSync(`${b}/shardlite.json`, JSON.stringify(map));
      },
      problem: "shard-map",
      file: /shardlite\.json$/,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const backup = await fresh();
      c.damage(backup);
      if (c.problem === "integrity") {
        // Make the manifest agree with the damaged bytes: only integrity_check can tell.
        const path = `${backup}/shard_1.db`;
        const digest = await sha256(path);
        editManifest(backup, (m) => {
          m.files[1]!.sha256 = digest;
          m.files[1]!.sizeBytes = Deno.statSync(path).size;
        });
      }
      const target = `${dir.path}/target${n}`;
      for (const existing of [false, true]) {
        if (existing) await Deno.mkdir(target);
        await assert.rejects(restoreShards(backup, target), (e: unknown) => {
          assert.ok(e instanceof BackupVerificationError, String(e));
          assert.equal(e.problem, c.problem);
          assert.match(e.path, c.file);
          assert.match(e.message, /Nothing was restored/);
          return true;
        });
        assert.deepEqual(names(target), existing ? [] : ["<missing>"]);
      }
    });
  }
});

Deno.test("restore refuses a non-empty dbDir; overwrite replaces it, unless it is in use", async () => {
  await using dir = await tempDir();
  const backup = await backupOf(dir.path);
  // A 6-shard directory with other data.
  const other = new ShardManager({ numShards: 6, dbDir: `${dir.path}/other` });
  await other.createTable("users", USERS, { shardKey: "id" });
  await other.insertMany("users", Array.from({ length: 60 }, (_, i) => ({ id: 10_000 + i })));
  await other.shutdown();
  const beforeNames = names(`${dir.path}/other`);

  await assert.rejects(restoreShards(backup, `${dir.path}/other`), (e: unknown) => {
    assert.ok(e instanceof RestoreTargetError);
    assert.equal(e.reason, "not-empty");
    assert.match(e.message, /not empty.*overwrite: true \(CLI: --overwrite\)/);
    return true;
  });
  assert.deepEqual(names(`${dir.path}/other`), beforeNames);
  await assert.rejects(
    restoreShards(backup, backup, { overwrite: true }),
    (e: unknown) => e instanceof RestoreTargetError && e.reason === "is-backup",
  );

  // A manager of this very process holds the directory: refused, nothing changed.
  const holder = new ShardManager({ numShards: 6, dbDir: `${dir.path}/other` });
  await holder.count("users");
  await assert.rejects(
    restoreShards(backup, `${dir.path}/other`, { overwrite: true }),
    (e: unknown) => e instanceof ShardLockedError && e.ownerPid === Deno.pid,
  );
  await holder.shutdown();
  assert.deepEqual(names(`${dir.path}/other`), beforeNames);

  const report = await restoreShards(backup, `${dir.path}/other`, { overwrite: true });
  assert.deepEqual(report.removed, ["shard_4.db", "shard_5.db"]);
  assert.deepEqual(names(`${dir.path}/other`), [
    "shard_0.db",
    "shard_1.db",
    "shard_2.db",
    "shard_3.db",
    "shardlite.json",
  ]);
  await using restored = new ShardManager({ numShards: 4, dbDir: `${dir.path}/other` });
  assert.equal(await restored.count("users"), 50);
  assert.equal(await restored.count("users", { id: { gte: 10_000 } }), 0);
});

Deno.test("pointInTime pauses writes on every shard at once and reports pausedMs", async () => {
  await using dir = await tempDir();
  const manager = new ShardManager({ numShards: 4, dbDir: `${dir.path}/data` });
  await manager.createTable("t", { id: "INTEGER PRIMARY KEY", batch: "INTEGER" }, {
    shardKey: "id",
  });
  // A writer commits batches of 40 rows spread over all 4 shards (one transaction per
  // shard, committed together). A snapshot at one instant holds whole batches only.
  const BATCH = 40;
  let stop = false;
  let batches = 0;
  const writer = (async () => {
    while (!stop) {
      const first = batches * BATCH;
      await manager.insertMany(
        "t",
        Array.from({ length: BATCH }, (_, i) => ({ id: first + i, batch: batches })),
      );
      batches++;
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  })();
  while (batches < 5) await new Promise((resolve) => setTimeout(resolve, 1));
  const report = await backupShards(manager, `${dir.path}/backup`, { pointInTime: true });
  stop = true;
  await writer;
  await manager.shutdown();

  assert.equal(typeof report.pausedMs, "number");
  assert.ok(report.pausedMs! >= 0 && report.pausedMs! <= report.durationMs);
  const manifest = readManifest(`${dir.path}/backup`);
  assert.equal(manifest.pointInTime, true);
  const total = manifest.files.reduce((sum, f) => sum + (f.rows.t ?? 0), 0);
  assert.ok(total >= 5 * BATCH, `at least 5 batches expected, got ${total} rows`);
  assert.equal(total % BATCH, 0, `a partial batch was captured: ${total} rows`);
  assert.deepEqual(names(`${dir.path}/backup`).filter((n) => n.startsWith(".")), []);

  await restoreShards(`${dir.path}/backup`, `${dir.path}/restored`);
  await using restored = new ShardManager({ numShards: 4, dbDir: `${dir.path}/restored` });
  assert.equal(await restored.count("t"), total);
});
