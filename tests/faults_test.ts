/**
 * Disk faults: a read-only (immutable) directory, a shard file deleted, truncated or
 * with a corrupted header, and a full disk. Each must give a typed Shardlite error
 * naming the shard file (and, through a ShardManager, a ShardOperationError naming the
 * shard id), while the other shards keep working and nothing committed is lost.
 *
 * The read-only and full-disk cases need root-level tools (`chattr +i`, `mount -t
 * tmpfs`): they are probed once at module load and reported as ignored (NOT RUN) when
 * the machine cannot do it; they never pass by skipping.
 */

import assert from "node:assert/strict";
import {
  ConnectionPool,
  ShardFileMissingError,
  ShardliteError,
  ShardManager,
  type ShardManagerOptions,
  ShardOpenError,
  ShardOperationError,
} from "../mod.ts";
import { eventCollector, tempDir } from "./helpers.ts";

const TABLE = { id: "INTEGER PRIMARY KEY", v: "TEXT" };

async function command(cmd: string, args: string[]): Promise<{ ok: boolean; stderr: string }> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
    return { ok: out.success, stderr: new TextDecoder().decode(out.stderr).trim() };
  } catch (error) {
    // Not installed, or --allow-run not granted.
    return { ok: false, stderr: String(error) };
  }
}

/** Whether `mount -t tmpfs` works here (root in a VM does; a container often does not). */
async function probeMount(): Promise<boolean> {
  const dir = await Deno.makeTempDir({ prefix: "shardlite-probe-mount-" });
  try {
    if (!(await command("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir])).ok) {
      return false;
    }
    return (await command("umount", [dir])).ok;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Whether `chattr +i` makes a directory refuse new files, even to root. */
async function probeChattr(): Promise<boolean> {
  const dir = await Deno.makeTempDir({ prefix: "shardlite-probe-chattr-" });
  try {
    if (!(await command("chattr", ["+i", dir])).ok) return false;
    try {
      Deno.writeTextFileSync(`${dir}/x`, "x");
      return false; // root was not bound by it
    } catch {
      return true;
    } finally {
      await command("chattr", ["-i", dir]);
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

const canMount = await probeMount();
const canChattr = await probeChattr();

/** Mounts a size-limited tmpfs on `dir` for the body; unmounts (lazily if busy) after. */
async function withTmpfs<T>(dir: string, size: string, body: () => Promise<T>): Promise<T> {
  const mounted = await command("mount", [
    "-t",
    "tmpfs",
    "-o",
    `size=${size},mode=0700`,
    "tmpfs",
    dir,
  ]);
  assert.ok(mounted.ok, `mount failed: ${mounted.stderr}`);
  try {
    return await body();
  } finally {
    const un = await command("umount", [dir]);
    // A leaked file descriptor keeps the mount busy: detach it so the directory can go.
    if (!un.ok) await command("umount", ["-l", dir]);
  }
}

/** The first id at or above `from` that routes to `shardId`. */
function idOnShard(manager: ShardManager, shardId: number, from: number): number {
  let id = from;
  while (manager.getShardId(id) !== shardId) id++;
  return id;
}

/** A manager with table `t` and `rows` rows (ids 0..rows-1); returns ids per shard. */
async function seeded(
  options: ShardManagerOptions,
  rows: number,
): Promise<{ manager: ShardManager; idsByShard: Map<number, number[]> }> {
  const manager = new ShardManager(options);
  await manager.createTable("t", TABLE, { shardKey: "id" });
  await manager.insertMany(
    "t",
    Array.from({ length: rows }, (_, id) => ({ id, v: `row ${id}` })),
  );
  const idsByShard = new Map<number, number[]>();
  for (let id = 0; id < rows; id++) {
    const shard = manager.getShardId(id);
    idsByShard.set(shard, [...(idsByShard.get(shard) ?? []), id]);
  }
  return { manager, idsByShard };
}

/** Every row of `shardId` is there, read by key and by a shard-wide select. */
async function assertShardIntact(manager: ShardManager, ids: readonly number[]): Promise<void> {
  for (const id of ids) {
    assert.deepEqual(await manager.select("t", { key: id }), [{ id, v: `row ${id}` }]);
  }
}

/** The error is a ShardOperationError for `shardId`, whose cause is typed and names the file. */
function assertShardError(
  error: unknown,
  manager: ShardManager,
  shardId: number,
): ShardliteError & { path: string } {
  assert.ok(error instanceof ShardOperationError, `expected ShardOperationError, got ${error}`);
  assert.equal(error.shardId, shardId);
  assert.equal(error.path, manager.shardPath(shardId));
  assert.ok(error.message.includes(manager.shardPath(shardId)), error.message);
  const cause = error.cause;
  assert.ok(cause instanceof ShardliteError, `cause must be typed, got ${cause}`);
  assert.ok("path" in cause, "the cause names the file");
  assert.equal((cause as ShardliteError & { path: string }).path, manager.shardPath(shardId));
  return cause as ShardliteError & { path: string };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return await p.then(
    (value) => assert.fail(`expected a rejection, got ${JSON.stringify(value)}`),
    (e: unknown) => e,
  );
}

// ---------------------------------------------------------------------------------------
// Read-only directory
// ---------------------------------------------------------------------------------------

Deno.test({
  name: "read-only (immutable) directory: a new shard fails with ShardOpenError, others work",
  ignore: !canChattr,
  fn: async () => {
    await using dir = await tempDir();
    await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
    // Open shards 0 and 1 only (raw SQL by key; createTable would open every shard).
    const keyOf = new Map<number, number>();
    for (let k = 0; keyOf.size < 4; k++) {
      if (!keyOf.has(manager.getShardId(k))) keyOf.set(manager.getShardId(k), k);
    }
    for (const shard of [0, 1]) {
      await manager.query(keyOf.get(shard)!, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
      await manager.query(keyOf.get(shard)!, "INSERT INTO t VALUES (?, ?)", [shard, "kept"]);
    }
    const before = [...Deno.readDirSync(dir.path)].map((e) => e.name).sort();
    const locked = await command("chattr", ["+i", dir.path]);
    assert.ok(locked.ok, locked.stderr);
    try {
      // A plain pool on a new file in that directory.
      const pool = new ConnectionPool(`${dir.path}/fresh.db`);
      const poolError = await rejection(pool.getConnection());
      assert.ok(poolError instanceof ShardOpenError, String(poolError));
      assert.equal(poolError.path, `${dir.path}/fresh.db`);
      await pool.closeAll();

      // Through the manager: shard 3 has never been opened.
      const error = await rejection(manager.query(keyOf.get(3)!, "SELECT 1"));
      const cause = assertShardError(error, manager, 3);
      assert.ok(cause instanceof ShardOpenError, String(cause));
      // The open shards keep working, reads and writes (their files already exist).
      for (const shard of [0, 1]) {
        const key = keyOf.get(shard)!;
        await manager.query(key, "INSERT INTO t VALUES (?, ?)", [shard + 100, "more"]);
        assert.deepEqual(
          await manager.query(key, "SELECT id, v FROM t ORDER BY id"),
          [{ id: shard, v: "kept" }, { id: shard + 100, v: "more" }],
        );
      }
      // Nothing half-created.
      assert.deepEqual([...Deno.readDirSync(dir.path)].map((e) => e.name).sort(), before);
    } finally {
      await command("chattr", ["-i", dir.path]);
    }
    // Once the directory is writable again, the shard opens on the next call.
    assert.deepEqual(await manager.query(keyOf.get(3)!, "SELECT 1 AS one"), [{ one: 1 }]);
  },
});

// ---------------------------------------------------------------------------------------
// Deleted shard file
// ---------------------------------------------------------------------------------------

Deno.test("a shard file deleted under a live manager: ShardFileMissingError, never recreated", async () => {
  await using dir = await tempDir();
  const { onEvent, waitFor, events } = eventCollector();
  const { manager, idsByShard } = await seeded({
    numShards: 3,
    dbDir: dir.path,
    pool: { fileCheckIntervalMs: 20, onEvent },
  }, 60);
  await using _ = manager;
  const victim = 1;
  const path = manager.shardPath(victim);
  await Deno.remove(path);
  await waitFor("file-missing");
  assert.ok(events.some((e) => e.type === "file-missing" && e.path === path));

  const key = idsByShard.get(victim)![0]!;
  for (
    const op of [
      () => manager.select("t", { key }),
      () => manager.insert("t", { id: idOnShard(manager, victim, 10_000), v: "x" }),
      () => manager.count("t"),
      () => manager.update("t", { v: "y" }, { key }),
    ]
  ) {
    const cause = assertShardError(await rejection(op()), manager, victim);
    assert.ok(cause instanceof ShardFileMissingError, String(cause));
    assert.equal(cause.reason, "deleted");
  }
  // The other shards keep their rows and take writes.
  for (const shard of [0, 2]) {
    await assertShardIntact(manager, idsByShard.get(shard)!);
    await manager.insert("t", { id: idOnShard(manager, shard, 1_000_000), v: "new" });
  }
  await assert.rejects(Deno.stat(path), Deno.errors.NotFound, "no empty database recreated");
  assert.equal(await manager.validateShardFiles(), true, "a missing (lazy) file is not corrupt");
  await manager.shutdown();
  await assert.rejects(Deno.stat(path), Deno.errors.NotFound, "not recreated by shutdown");
});

// ---------------------------------------------------------------------------------------
// Truncated shard file
// ---------------------------------------------------------------------------------------

/** Truncates `path` to 0 bytes or to half its size. */
function truncate(path: string, how: "zero" | "half"): void {
  const size = Deno.statSync(path).size;
  Deno.truncateSync(path, how === "zero" ? 0 : Math.floor(size / 2 / 4096) * 4096);
}

async function truncatedLive(how: "zero" | "half") {
  const dir = await tempDir();
  const { onEvent } = eventCollector();
  const { manager, idsByShard } = await seeded({
    numShards: 3,
    dbDir: dir.path,
    pool: { fileCheckIntervalMs: 20, onEvent },
  }, 3_000);
  // Put the rows into the main file, so truncating it destroys committed data.
  for (let s = 0; s < 3; s++) {
    await manager.getPool(s).withConnection((c) => c.get("PRAGMA wal_checkpoint(TRUNCATE)"));
  }
  const victim = 1;
  truncate(manager.shardPath(victim), how);
  // Give the file monitor several intervals to notice.
  await new Promise((resolve) => setTimeout(resolve, 120));
  return { dir, manager, idsByShard, victim };
}

for (const how of ["zero", "half"] as const) {
  Deno.test(`a shard file truncated (${how}) under a live manager: never fewer rows, others fine`, async () => {
    const { dir, manager, idsByShard, victim } = await truncatedLive(how);
    await using _dir = dir;
    try {
      const ids = idsByShard.get(victim)!;
      // Each read of the victim either returns every committed row or fails typed.
      for (let i = 0; i < 3; i++) {
        const rows = await manager.select("t", { where: { id: { in: ids } } }).then(
          (r) => r,
          (e: unknown) => {
            assertShardError(e, manager, victim);
            return undefined;
          },
        );
        if (rows !== undefined) assert.equal(rows.length, ids.length, "silently fewer rows");
      }
      for (const shard of [0, 2]) await assertShardIntact(manager, idsByShard.get(shard)!);
      await manager.insert("t", { id: idOnShard(manager, 0, 1_000_000), v: "new" });
    } finally {
      await manager.shutdown().catch((e: unknown) => {
        // Closing the damaged shard may fail; it must say so with a typed error.
        assert.ok(e instanceof ShardliteError, String(e));
      });
    }
  });

  Deno.test(`a shard file truncated (${how}) under a live manager: a write is refused, never acknowledged and lost`, async () => {
    const { dir, manager, idsByShard, victim } = await truncatedLive(how);
    await using _dir = dir;
    const id = idOnShard(manager, victim, 3_000_000);
    let acknowledged = false;
    try {
      const outcome = await manager.insert("t", { id, v: "after" }).then(
        () => "ok",
        (e: unknown) => e,
      );
      acknowledged = outcome === "ok";
      if (!acknowledged) assertShardError(outcome, manager, victim);
    } finally {
      await manager.shutdown().catch((e: unknown) => assert.ok(e instanceof ShardliteError));
    }
    // After a restart the damaged shard answers with every row or a typed error, and an
    // acknowledged write is there.
    await using again = new ShardManager({ numShards: 3, dbDir: dir.path });
    const ids = idsByShard.get(victim)!;
    const all = await again.select("t", { where: { id: { in: ids } } }).catch((e: unknown) => {
      assertShardError(e, again, victim);
      return undefined;
    });
    if (all !== undefined) assert.equal(all.length, ids.length, "silently fewer rows");
    if (acknowledged) {
      const rows = await again.select("t", { key: id }).catch((e: unknown) => e);
      assert.deepEqual(
        rows,
        [{ id, v: "after" }],
        "the insert was acknowledged after the file was truncated, then lost",
      );
    }
  });
}

Deno.test("a shard file truncated to 0 bytes while closed: validateShardFiles() is false, ops fail typed", async () => {
  await using dir = await tempDir();
  const { manager, idsByShard } = await seeded({ numShards: 3, dbDir: dir.path }, 60);
  await manager.shutdown();
  const victim = 2;
  Deno.truncateSync(`${dir.path}/shard_${victim}.db`, 0);
  await using again = new ShardManager({ numShards: 3, dbDir: dir.path });
  const key = idsByShard.get(victim)![0]!;
  assertShardError(await rejection(again.select("t", { key })), again, victim);
  assertShardError(await rejection(again.count("t")), again, victim);
  for (const shard of [0, 1]) await assertShardIntact(again, idsByShard.get(shard)!);
  assert.equal(
    await again.validateShardFiles(),
    false,
    "shard 2 lost every table the shard map records, yet validates as healthy",
  );
});

// ---------------------------------------------------------------------------------------
// Corrupted header
// ---------------------------------------------------------------------------------------

Deno.test("a corrupted header (bytes 0..16): ShardOpenError naming the file, others work", async () => {
  await using dir = await tempDir();
  const { manager, idsByShard } = await seeded({ numShards: 3, dbDir: dir.path }, 60);
  await manager.shutdown();
  const victim = 1;
  const path = `${dir.path}/shard_${victim}.db`;
  const file = await Deno.open(path, { read: true, write: true });
  await file.write(new TextEncoder().encode("NOT SQLITE 4 YOU"));
  file.close();

  await using again = new ShardManager({ numShards: 3, dbDir: dir.path });
  const key = idsByShard.get(victim)![0]!;
  for (const op of [() => again.select("t", { key }), () => again.count("t")]) {
    const cause = assertShardError(await rejection(op()), again, victim);
    assert.ok(cause instanceof ShardOpenError, String(cause));
    assert.equal(cause.path, path);
  }
  assert.equal(await again.validateShardFiles(), false);
  for (const shard of [0, 2]) {
    await assertShardIntact(again, idsByShard.get(shard)!);
    await again.insert("t", { id: idOnShard(again, shard, 5_000_000), v: "w" });
  }
  await again.shutdown();
  // The failed open left no sidecar behind; the damaged file is untouched for repair.
  const names = [...Deno.readDirSync(dir.path)].map((e) => e.name);
  assert.ok(!names.some((n) => n.startsWith(`shard_${victim}.db.`)), names.join(", "));
  assert.equal(
    new TextDecoder().decode(Deno.readFileSync(path).subarray(0, 16)),
    "NOT SQLITE 4 YOU",
  );
});

// ---------------------------------------------------------------------------------------
// Full disk
// ---------------------------------------------------------------------------------------

Deno.test({
  name: "a full disk: a typed error naming the shard, acknowledged rows kept, reads work",
  ignore: !canMount,
  fn: async () => {
    await using dir = await tempDir();
    await withTmpfs(dir.path, "1m", async () => {
      // Ballast, freed later so that the directory can be reopened.
      Deno.writeFileSync(`${dir.path}/ballast`, new Uint8Array(256 * 1024));
      const dbDir = `${dir.path}/db`;
      const manager = new ShardManager({ numShards: 2, dbDir });
      await manager.createTable("t", TABLE, { shardKey: "id" });
      const pad = "x".repeat(2_000);
      let acked = 0;
      let failure: unknown;
      for (let id = 0; id < 5_000 && failure === undefined; id++) {
        await manager.insert("t", { id, v: pad }).then(() => acked++, (e: unknown) => failure = e);
      }
      assert.ok(failure !== undefined, `the disk never filled (${acked} rows)`);
      const shardId = (failure as ShardOperationError).shardId;
      const cause = assertShardError(failure, manager, shardId);
      // node-sqlite3-wasm's VFS maps ENOSPC to SQLITE_IOERR_WRITE: "disk I/O error".
      assert.match(cause.message, /disk I\/O error|database or disk is full/);
      assert.ok(acked > 10, `only ${acked} rows fit`);

      // Reads still work on both shards, and every acknowledged row is there.
      const ids = async (m: ShardManager) =>
        (await m.select("t", { columns: ["id"], orderBy: "id" })).map((r) => r.id);
      const expected = Array.from({ length: acked }, (_, i) => i);
      assert.deepEqual(await ids(manager), expected);
      assert.deepEqual(await manager.select("t", { key: 0, columns: ["id"] }), [{ id: 0 }]);
      await manager.shutdown().catch((e: unknown) => {
        // The final checkpoint may not fit; the WAL keeps the rows.
        assert.ok(e instanceof ShardliteError, String(e));
      });
      // Nothing of it stays open: the mount can be detached.

      Deno.removeSync(`${dir.path}/ballast`);
      const again = new ShardManager({ numShards: 2, dbDir });
      try {
        assert.deepEqual(await ids(again), expected, "rows acknowledged before the error");
        assert.equal(await again.validateShardFiles(), true);
        await again.insert("t", { id: 1_000_000, v: "fits again" });
      } finally {
        await again.shutdown();
      }
    });
  },
});

Deno.test({
  name: "a full disk when a shard is first opened: ShardOpenError, no owner file or lock leaked",
  ignore: !canMount,
  fn: async () => {
    await using dir = await tempDir();
    let umounted = false;
    const mounted = await command("mount", [
      "-t",
      "tmpfs",
      "-o",
      "size=64k,mode=0700",
      "tmpfs",
      dir.path,
    ]);
    assert.ok(mounted.ok, mounted.stderr);
    try {
      // Fill the file system to the last block.
      const filler = Deno.openSync(`${dir.path}/filler`, { write: true, create: true });
      try {
        for (;;) filler.writeSync(new Uint8Array(4096));
      } catch {
        // Full.
      } finally {
        filler.close();
      }
      const path = `${dir.path}/s.db`;
      const pool = new ConnectionPool(path);
      const error = await rejection(pool.getConnection());
      await pool.closeAll();
      assert.ok(error instanceof ShardOpenError, `expected ShardOpenError, got ${error}`);
      assert.equal(error.path, path);
      assert.deepEqual(
        [...Deno.readDirSync(dir.path)].map((e) => e.name),
        ["filler"],
        "nothing half-created",
      );
    } finally {
      umounted = (await command("umount", [dir.path])).ok;
      if (!umounted) await command("umount", ["-l", dir.path]);
    }
    // umount fails with "target is busy" while this process keeps a file open there.
    assert.ok(umounted, "a file descriptor (the OS-locked owner file) leaked on that mount");
  },
});
