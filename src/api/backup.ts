/**
 * Backup and restore of a whole shard directory.
 *
 * {@link backupShards} writes a consistent snapshot of every shard (`VACUUM INTO`, run
 * through a lease of the shard's pool), a copy of the shard map and a manifest
 * (`backup.json`) with each file's size, rows per table and SHA-256.
 * {@link restoreShards} verifies all of that before it touches the target directory,
 * then installs the files atomically (temporary name, fsync, rename) and writes the
 * shard map last.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { type Driver, type DriverHandle, isPromise, type MaybePromise } from "../driver/driver.ts";
import {
  BackupDestinationError,
  BackupVerificationError,
  RestoreTargetError,
  ShardOperationError,
} from "../errors.ts";
import type { PooledConnection } from "../pool/connection.ts";
import { checkSignal } from "../routing/abort.ts";
import { defaultPoolDriver } from "../pool/pool.ts";
import { nativeDriver } from "../driver/native.ts";
import { readRemoteMap } from "./remote_map.ts";
import { OwnerLock } from "../pool/ownership.ts";
import {
  sameLayout,
  type StrategyDescriptor,
  strategyFromDescriptor,
} from "../routing/strategies.ts";
import { parseShardFileName, shardFileName } from "./layout.ts";
import type { ShardManager } from "./manager.ts";
import { RESHARD_PLAN_FILE } from "./reshard.ts";
import {
  readShardMap,
  SHARD_MAP_FILE,
  type ShardMap,
  writeJsonAtomic,
  writeShardMap,
} from "./shard_map.ts";

/** The manifest's format version. */
export const BACKUP_FORMAT = 1;
/** The manifest's file name inside a backup directory. */
export const BACKUP_MANIFEST_FILE = "backup.json";

/** One shard file of a backup, as the manifest records it. */
export interface BackupFileEntry {
  /** The shard's id. */
  shardId: number;
  /** The file's name inside the backup directory: `shard_<id>.db`. */
  file: string;
  /** The file's size in bytes. */
  sizeBytes: number;
  /** Lowercase hex SHA-256 of the file. */
  sha256: string;
  /** Rows per table in the snapshot (every table of the file, by name). */
  rows: Record<string, number>;
}

/** The manifest, `backup.json`. */
export interface BackupManifest {
  /** {@link BACKUP_FORMAT}. */
  format: number;
  /** When the backup was taken (ISO 8601). */
  createdAt: string;
  /** Number of shards. */
  numShards: number;
  /** The strategy descriptor, as in the shard map. */
  strategy: StrategyDescriptor;
  /** Whether writes were paused on every shard at once (one instant for all shards). */
  pointInTime: boolean;
  /** The shard map's file name in the backup ({@link SHARD_MAP_FILE}). */
  shardMap: string;
  /** Every shard file, by shard id. */
  files: BackupFileEntry[];
}

/** Progress of {@link backupShards}, reported after each shard. */
export interface BackupProgress {
  /** The shard just written. */
  shardId: number;
  /** Shards written so far. */
  done: number;
  /** Shards in all. */
  total: number;
  /** Bytes of shard files written so far. */
  bytes: number;
}

/** Options of {@link backupShards}. */
export interface BackupOptions {
  /** Called after each shard is written. */
  onProgress?: (progress: BackupProgress) => void;
  /**
   * Pause writes on every shard at once so that all shards are captured at one instant
   * (consistent across shards). Default false: each shard is consistent on its own, at
   * its own moment.
   */
  pointInTime?: boolean;
  /**
   * Aborts the backup between shards (and while it waits for a lease): it rejects with
   * the signal's reason and removes what it wrote, leaving `destDir` as it found it.
   */
  signal?: AbortSignal | undefined;
}

/** What {@link backupShards} returns. */
export interface BackupReport {
  /** The backup directory. */
  destDir: string;
  /** Number of shards. */
  numShards: number;
  /** Every shard file written, as in the manifest. */
  files: BackupFileEntry[];
  /** Bytes of shard files written. */
  bytes: number;
  /** Wall time of the whole backup, ms. */
  durationMs: number;
  /** With `pointInTime`: how long writes were paused on the shards, ms. */
  pausedMs?: number;
  /** `bytes` / 10^6 / seconds of `durationMs`. */
  megabytesPerSecond: number;
}

/** Progress of {@link restoreShards}, reported after each shard of each phase. */
export interface RestoreProgress {
  /** `verify` (checksums, integrity) comes first for every shard, then `install`. */
  phase: "verify" | "install";
  /** The shard just handled. */
  shardId: number;
  /** Shards done in this phase. */
  done: number;
  /** Shards in all. */
  total: number;
}

/** Options of {@link restoreShards}. */
export interface RestoreOptions {
  /**
   * Replace the shard files and shard map of a non-empty `dbDir`. Shard files beyond the
   * backup's shard count are removed. Refused anyway while any process (this one
   * included) has the directory or one of its shard files open.
   */
  overwrite?: boolean;
  /** Called after each shard is verified, then after each is installed. */
  onProgress?: (progress: RestoreProgress) => void;
  /** The driver that checks the backup's files. Default: `wasmDriver`. */
  driver?: Driver;
}

/** What {@link restoreShards} returns. */
export interface RestoreReport {
  /** The backup restored from. */
  backupDir: string;
  /** The directory restored into. */
  dbDir: string;
  /** Number of shards. */
  numShards: number;
  /** Bytes of shard files installed. */
  bytes: number;
  /** Files removed from `dbDir` because they are not part of the restored layout. */
  removed: string[];
  /** Wall time, ms. */
  durationMs: number;
}

const SIDECARS = ["-wal", "-journal", "-shm"] as const;

/**
 * SHA-256 of a file, lowercase hex, read in 1 MiB chunks so memory stays flat whatever
 * the shard's size (`crypto.subtle.digest` cannot stream; `node:crypto` can).
 */
async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path, { read: true });
  try {
    const buffer = new Uint8Array(1 << 20);
    for (;;) {
      const n = await file.read(buffer);
      if (n === null) break;
      hash.update(buffer.subarray(0, n));
    }
  } finally {
    file.close();
  }
  return hash.digest("hex");
}

function fsyncFile(path: string): void {
  const file = Deno.openSync(path, { read: true, write: true });
  try {
    file.syncSync();
  } finally {
    file.close();
  }
}

function fsyncDirectory(path: string): void {
  // Makes renames durable; not every platform lets a directory be opened, so best effort.
  try {
    const dir = Deno.openSync(path, { read: true });
    try {
      dir.syncSync();
    } finally {
      dir.close();
    }
  } catch {
    // Not supported here.
  }
}

function quoteName(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Entries of a directory, or undefined when it does not exist. */
function listDirectory(path: string): string[] | undefined {
  try {
    return [...Deno.readDirSync(path)].map((e) => e.name).sort();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    if (error instanceof Deno.errors.NotADirectory) throw new NotADirectory();
    throw error;
  }
}

class NotADirectory extends Error {}

/** The driver that opens local copies: the manager's, or node:sqlite for a server's. */
function localDriver(driver: Driver): Driver {
  return driver.remote === true ? nativeDriver : driver;
}

/**
 * Opens a snapshot file on its own handle of `driver` (EXCLUSIVE first: a WAL-format
 * file needs it with node-sqlite3-wasm), runs `fn`, closes it. For files only this code
 * uses.
 */
export async function withFileHandle<T>(
  driver: Driver,
  path: string,
  fn: (handle: DriverHandle) => MaybePromise<T>,
): Promise<T> {
  const opened = driver.open(path, { create: false, statementCacheSize: 0 });
  const handle = isPromise(opened) ? await opened : opened;
  try {
    await handle.get("PRAGMA locking_mode=EXCLUSIVE");
    return await fn(handle);
  } finally {
    await handle.close();
  }
}

async function countRows(handle: DriverHandle): Promise<Record<string, number>> {
  const rows: Record<string, number> = {};
  const tables = await handle.all(
    "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' " +
      "ESCAPE '\\' AND name NOT LIKE '\\_shardlite\\_%' ESCAPE '\\' ORDER BY name",
  );
  for (const { name } of tables) {
    const row = await handle.get(`SELECT count(*) AS n FROM ${quoteName(String(name))}`);
    rows[String(name)] = Number(row?.["n"] ?? 0);
  }
  return rows;
}

export function checkPath(path: string, what: string): void {
  if (typeof path !== "string" || path.trim() === "") {
    throw new TypeError(`${what} must be a non-empty string, got ${JSON.stringify(path)}`);
  }
  if (path.includes("\0")) throw new TypeError(`${what} must not contain NUL characters`);
}

export function trimSlashes(path: string): string {
  return path.replace(/\/+$/, "") || "/";
}

/**
 * Backs up every shard of `manager` into `destDir`, which must not exist or be empty
 * (it is created owner-only, 0700). Writes `shard_<id>.db` per shard (a compacted,
 * consistent snapshot by `VACUUM INTO`, owner-only), a copy of the shard map
 * (`shardlite.json`) and the manifest `backup.json` last, so a backup without a
 * manifest is an unfinished one.
 *
 * Without `pointInTime`, each shard is snapshotted through a lease of its pool while
 * the application keeps running; each shard is consistent, but shards are captured
 * one after another. With `pointInTime: true`, a lease on every shard opens
 * `BEGIN IMMEDIATE` (in shard order, as `insertMany` does), the shard files are copied
 * raw while writes wait, the transactions roll back, and the snapshots are compacted
 * from those copies: every shard is captured at the same instant, and `pausedMs` says
 * how long writes waited. (SQLite refuses `VACUUM INTO` inside a transaction, hence
 * the raw copies.) Shard files not created yet are created empty, as the manager would.
 *
 * The driver is synchronous, so the event loop is busy while one shard is compacted.
 *
 * @throws {BackupDestinationError} when `destDir` is not empty or not a directory.
 * @throws {ShardOperationError} when a shard cannot be read; the partial backup stays
 * in `destDir` without a manifest.
 *
 * @example
 * ```ts
 * import { backupShards, restoreShards } from "./backup.ts";
 * import { ShardManager } from "./manager.ts";
 * const dir = await Deno.makeTempDir();
 * await using manager = new ShardManager({ numShards: 4, dbDir: `${dir}/data` });
 * await manager.createTable("users", { id: "INTEGER PRIMARY KEY", name: "TEXT" }, { shardKey: "id" });
 * await manager.insertMany("users", [{ id: 1, name: "Ada" }, { id: 2, name: "Bo" }]);
 * const report = await backupShards(manager, `${dir}/backup`);
 * if (report.numShards !== 4) throw new Error("four shard files expected");
 * await restoreShards(`${dir}/backup`, `${dir}/restored`);
 * await using restored = new ShardManager({ numShards: 4, dbDir: `${dir}/restored` });
 * if (await restored.count("users") !== 2) throw new Error("two users expected");
 * await manager.shutdown();
 * await restored.shutdown();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function backupShards(
  manager: ShardManager,
  destDir: string,
  options: BackupOptions = {},
): Promise<BackupReport> {
  checkPath(destDir, "destDir");
  const signal = checkSignal(options.signal);
  const started = performance.now();
  const dest = trimSlashes(destDir);
  let entries: string[] | undefined;
  try {
    entries = listDirectory(dest);
  } catch (error) {
    if (error instanceof NotADirectory) throw new BackupDestinationError(dest, "not-a-directory");
    throw error;
  }
  if (entries !== undefined && entries.length > 0) {
    throw new BackupDestinationError(dest, "not-empty", entries.slice(0, 5));
  }
  const remote = manager.driver.remote === true;
  if (remote && options.pointInTime === true) {
    throw new TypeError(
      "pointInTime is for shard files (their files are copied while writes pause); shards on " +
        "servers are each backed up as one read snapshot, so leave pointInTime out",
    );
  }
  await manager.ready();
  const map = remote
    ? await manager.getPool(0).withConnection((c) => readRemoteMap(c, manager.dbDir))
    : readShardMap(manager.dbDir);
  if (map === undefined) throw new Error(`${manager.dbDir} has no shard map after ready()`);
  if (entries === undefined) await Deno.mkdir(dest, { recursive: true, mode: 0o700 });

  const ids = manager.strategy.getAllShardIds();
  let staging: string | undefined;
  if (options.pointInTime === true) {
    staging = `${dest}/.staging`;
    await Deno.mkdir(staging, { mode: 0o700 });
  }
  try {
    return await writeBackup(manager, map, dest, ids, staging, started, options);
  } catch (error) {
    // Aborted: nothing half. The directory was empty (or missing) when the call began.
    if (signal?.aborted) {
      if (entries === undefined) await removeIfExists(dest);
      else for (const entry of listDirectory(dest) ?? []) await removeIfExists(`${dest}/${entry}`);
    }
    throw error;
  } finally {
    // Raw copies are only ever needed inside this call.
    if (staging !== undefined) await removeIfExists(staging);
  }
}

async function writeBackup(
  manager: ShardManager,
  map: ShardMap,
  dest: string,
  ids: number[],
  staging: string | undefined,
  started: number,
  options: BackupOptions,
): Promise<BackupReport> {
  const total = ids.length;
  const signal = options.signal;
  const pausedMs = staging === undefined
    ? undefined
    : await copyPaused(manager, ids, staging, signal);

  const files: BackupFileEntry[] = [];
  let bytes = 0;
  for (const shardId of ids) {
    signal?.throwIfAborted();
    const file = shardFileName(shardId);
    const target = `${dest}/${file}`;
    // VACUUM INTO wants a missing or empty file: an empty one lets us choose its mode.
    Deno.openSync(target, { createNew: true, write: true, mode: 0o600 }).close();
    if (staging !== undefined) {
      const copy = `${staging}/${file}`;
      try {
        await withFileHandle(manager.driver, copy, (h) => manager.driver.backup(h, target));
      } catch (error) {
        throw new ShardOperationError(shardId, manager.shardPath(shardId), error);
      }
      for (const suffix of ["", ...SIDECARS]) await removeIfExists(`${copy}${suffix}`);
    } else {
      const pool = manager.getPool(shardId);
      await pool.withConnection(
        (c) => c.backupTo(target),
        signal === undefined ? undefined : { signal },
      ).catch((error) => {
        throw error === signal?.reason ? error : new ShardOperationError(shardId, pool.path, error);
      });
    }
    const rows = await withFileHandle(localDriver(manager.driver), target, countRows);
    fsyncFile(target);
    const sizeBytes = (await Deno.stat(target)).size;
    const sha256 = await sha256File(target);
    files.push({ shardId, file, sizeBytes, sha256, rows });
    bytes += sizeBytes;
    options.onProgress?.({ shardId, done: files.length, total, bytes });
  }
  writeShardMap(dest, map);
  const manifest: BackupManifest = {
    format: BACKUP_FORMAT,
    createdAt: new Date().toISOString(),
    numShards: map.numShards,
    strategy: map.strategy,
    pointInTime: options.pointInTime === true,
    shardMap: SHARD_MAP_FILE,
    files,
  };
  writeJsonAtomic(`${dest}/${BACKUP_MANIFEST_FILE}`, manifest);
  fsyncDirectory(dest);

  const durationMs = performance.now() - started;
  const report: BackupReport = {
    destDir: dest,
    numShards: map.numShards,
    files,
    bytes,
    durationMs,
    megabytesPerSecond: bytes / 1e6 / Math.max(durationMs / 1000, 1e-9),
  };
  if (pausedMs !== undefined) report.pausedMs = pausedMs;
  return report;
}

/**
 * Holds `BEGIN IMMEDIATE` on every shard (in shard order) while their files (and WALs)
 * are copied into `staging`; returns how long writes were paused, ms.
 */
async function copyPaused(
  manager: ShardManager,
  ids: number[],
  staging: string,
  signal: AbortSignal | undefined,
): Promise<number> {
  const leases: PooledConnection[] = [];
  let pauseStarted: number | undefined;
  try {
    for (const shardId of ids) {
      const pool = manager.getPool(shardId);
      leases.push(
        await pool.getConnection(signal === undefined ? undefined : { signal }).catch((error) => {
          throw error === signal?.reason
            ? error
            : new ShardOperationError(shardId, pool.path, error);
        }),
      );
    }
    signal?.throwIfAborted();
    pauseStarted = performance.now();
    for (const [i, lease] of leases.entries()) {
      await lease.exec("BEGIN IMMEDIATE").catch((error) => {
        throw new ShardOperationError(ids[i] as number, lease.path, error);
      });
    }
    // No session can write now, and nothing checkpoints: the file and its WAL are stable.
    for (const [i, lease] of leases.entries()) {
      const file = shardFileName(ids[i] as number);
      await Deno.copyFile(lease.path, `${staging}/${file}`);
      try {
        await Deno.copyFile(`${lease.path}-wal`, `${staging}/${file}-wal`);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
  } finally {
    for (const lease of leases) {
      await lease.rollback().catch(() => {});
      await lease.pool.returnConnection(lease);
    }
  }
  return performance.now() - (pauseStarted ?? performance.now());
}

async function removeIfExists(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Reads and validates the manifest and the shard map of a backup. */
export function readBackup(backupDir: string): { manifest: BackupManifest; map: ShardMap } {
  const manifestPath = `${backupDir}/${BACKUP_MANIFEST_FILE}`;
  const bad = (detail: string, cause?: unknown): BackupVerificationError =>
    new BackupVerificationError(
      { backupDir, path: manifestPath, problem: "manifest", detail },
      cause === undefined ? undefined : { cause },
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(Deno.readTextFileSync(manifestPath));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw bad("missing: the backup is unfinished, or this is not a backup directory");
    }
    throw bad(`unreadable (${(error as Error).message})`, error);
  }
  if (!isRecord(parsed)) throw bad("not a JSON object");
  if (parsed.format !== BACKUP_FORMAT) {
    throw bad(`format ${String(parsed.format)}, this version reads ${BACKUP_FORMAT}`);
  }
  const numShards = parsed.numShards;
  if (typeof numShards !== "number" || !Number.isSafeInteger(numShards) || numShards < 1) {
    throw bad(`numShards is ${JSON.stringify(numShards)}, not a positive integer`);
  }
  let strategy: StrategyDescriptor;
  try {
    const rebuilt = strategyFromDescriptor(parsed.strategy);
    if (rebuilt.numShards !== numShards) {
      throw new Error(`the strategy has ${rebuilt.numShards} shards, numShards is ${numShards}`);
    }
    strategy = rebuilt.describe();
  } catch (error) {
    throw bad(`invalid strategy: ${(error as Error).message}`, error);
  }
  if (!Array.isArray(parsed.files) || parsed.files.length !== numShards) {
    throw bad(`it must list ${numShards} shard files`);
  }
  const files: BackupFileEntry[] = [];
  for (const [i, entry] of (parsed.files as unknown[]).entries()) {
    if (
      !isRecord(entry) || entry.shardId !== i || entry.file !== shardFileName(i) ||
      typeof entry.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(entry.sha256) ||
      typeof entry.sizeBytes !== "number" || !Number.isSafeInteger(entry.sizeBytes) ||
      entry.sizeBytes < 0 || !isRecord(entry.rows)
    ) {
      throw bad(
        `files[${i}] must be { shardId: ${i}, file: "${shardFileName(i)}", sizeBytes, ` +
          `sha256 (64 hex digits), rows }`,
      );
    }
    files.push(entry as unknown as BackupFileEntry);
  }
  const mapPath = `${backupDir}/${SHARD_MAP_FILE}`;
  const badMap = (detail: string, cause?: unknown): BackupVerificationError =>
    new BackupVerificationError(
      { backupDir, path: mapPath, problem: "shard-map", detail },
      cause === undefined ? undefined : { cause },
    );
  let map: ShardMap | undefined;
  try {
    map = readShardMap(backupDir);
  } catch (error) {
    throw badMap((error as Error).message, error);
  }
  if (map === undefined) throw badMap("missing");
  if (map.numShards !== numShards || !sameLayout(map.strategy, strategy)) {
    throw badMap(
      `it records ${JSON.stringify(map.strategy)}, the manifest ${JSON.stringify(strategy)}`,
    );
  }
  return {
    manifest: {
      format: BACKUP_FORMAT,
      createdAt: String(parsed.createdAt),
      numShards,
      strategy,
      pointInTime: parsed.pointInTime === true,
      shardMap: SHARD_MAP_FILE,
      files,
    },
    map,
  };
}

/** Copies a backup file into `staging`, checks its integrity, then its checksum. */
export async function verifyFile(
  backupDir: string,
  entry: BackupFileEntry,
  staging: string,
  driver: Driver,
): Promise<string> {
  const source = `${backupDir}/${entry.file}`;
  const copy = `${staging}/${entry.file}`;
  const fail = (
    problem: "missing-file" | "checksum" | "integrity",
    detail: string,
    cause?: unknown,
  ) =>
    new BackupVerificationError(
      { backupDir, path: source, problem, detail },
      cause === undefined ? undefined : { cause },
    );
  try {
    await Deno.copyFile(source, copy);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw fail("missing-file", "missing");
    throw fail("missing-file", `unreadable (${(error as Error).message})`, error);
  }
  await Deno.chmod(copy, 0o600).catch(() => {});
  const size = (await Deno.stat(copy)).size;
  if (size !== entry.sizeBytes) {
    throw fail("checksum", `${size} bytes, the manifest says ${entry.sizeBytes}`);
  }
  let problems: string[];
  try {
    problems = await withFileHandle(
      driver,
      copy,
      async (h) =>
        (await h.all("PRAGMA integrity_check")).map((row) => String(row["integrity_check"])),
    );
  } catch (error) {
    throw fail("integrity", `cannot be opened as a database (${(error as Error).message})`, error);
  }
  if (problems.length !== 1 || problems[0] !== "ok") {
    throw fail("integrity", `PRAGMA integrity_check: ${problems.slice(0, 3).join("; ")}`);
  }
  // Last, so that the bytes installed are exactly the ones the manifest names.
  const sha256 = await sha256File(copy);
  if (sha256 !== entry.sha256) {
    throw fail("checksum", `SHA-256 is ${sha256}, the manifest says ${entry.sha256}`);
  }
  return copy;
}

/** Entries of the restore target (undefined when missing); throws when it is refused. */
function inspectTarget(source: string, target: string, overwrite: boolean): string[] | undefined {
  let entries: string[] | undefined;
  try {
    entries = listDirectory(target);
  } catch (error) {
    if (error instanceof NotADirectory) throw new RestoreTargetError(target, "not-a-directory");
    throw error;
  }
  if (entries === undefined) return undefined;
  if (Deno.realPathSync(target) === Deno.realPathSync(source)) {
    throw new RestoreTargetError(target, "is-backup");
  }
  if (entries.length > 0 && !overwrite) {
    throw new RestoreTargetError(target, "not-empty", entries.slice(0, 5));
  }
  return entries;
}

/**
 * Restores a backup made by {@link backupShards} into `dbDir`.
 *
 * Everything is verified before `dbDir` is touched: the manifest, the shard map and
 * their agreement, each file's size and SHA-256, and `PRAGMA integrity_check` on each
 * (run on a private copy, which is then the one installed). Then the directory is
 * locked (its owner lock, and each existing shard file's), each shard file is written
 * under a temporary name, fsynced and renamed into place (stale `-wal`/`-journal` files
 * of the old shard removed first), and the shard map is written last. A restore that
 * stops half way leaves a directory without a shard map, which no tool will take for a
 * complete one; run it again with `overwrite`.
 *
 * @throws {BackupVerificationError} when the backup fails any check; `dbDir` is untouched.
 * @throws {RestoreTargetError} when `dbDir` is not empty (without `overwrite`), not a
 * directory, or the backup directory itself.
 * @throws {ShardLockedError} when a process (this one too) has `dbDir` or one of its
 * shard files open.
 *
 * @example
 * ```ts
 * import { backupShards, restoreShards } from "./backup.ts";
 * import { ShardManager } from "./manager.ts";
 * const dir = await Deno.makeTempDir();
 * const manager = new ShardManager({ numShards: 2, dbDir: `${dir}/data` });
 * await manager.createTable("t", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
 * await manager.insertMany("t", [{ id: 1 }, { id: 2 }, { id: 3 }]);
 * await backupShards(manager, `${dir}/backup`);
 * await manager.shutdown();
 * const report = await restoreShards(`${dir}/backup`, `${dir}/data`, { overwrite: true });
 * if (report.numShards !== 2) throw new Error("two shards expected");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function restoreShards(
  backupDir: string,
  dbDir: string,
  options: RestoreOptions = {},
): Promise<RestoreReport> {
  checkPath(backupDir, "backupDir");
  checkPath(dbDir, "dbDir");
  const started = performance.now();
  const source = trimSlashes(backupDir);
  const target = trimSlashes(dbDir);
  const { manifest, map } = readBackup(source);
  const total = manifest.numShards;
  inspectTarget(source, target, options.overwrite === true); // fail fast; checked again below

  const staging = await Deno.makeTempDir({ prefix: "shardlite-restore-" });
  const locks: OwnerLock[] = [];
  try {
    const verified: string[] = [];
    for (const entry of manifest.files) {
      verified.push(
        await verifyFile(source, entry, staging, options.driver ?? defaultPoolDriver()),
      );
      options.onProgress?.({
        phase: "verify",
        shardId: entry.shardId,
        done: verified.length,
        total,
      });
    }

    // The target again, now that the backup is known good.
    const entries = inspectTarget(source, target, options.overwrite === true);
    if (entries === undefined) await Deno.mkdir(target, { recursive: true, mode: 0o700 });
    // The directory's owner lock, taken directly rather than through acquireDirectory():
    // that one is shared within a process, and a manager of this process must refuse too.
    locks.push(OwnerLock.acquire(`${target}/${SHARD_MAP_FILE}`));
    const present = listDirectory(target) ?? [];
    const shardFiles = present.filter((name) => parseShardFileName(name) !== undefined);
    for (const name of shardFiles) locks.push(OwnerLock.acquire(`${target}/${name}`));

    // Point of no return: the old map goes first, the new one comes last. A reshard plan
    // left in the directory describes the old data: it goes too.
    const removed: string[] = [];
    await removeIfExists(`${target}/${SHARD_MAP_FILE}`);
    for (const name of [RESHARD_PLAN_FILE, `${SHARD_MAP_FILE}.tmp`, `${RESHARD_PLAN_FILE}.tmp`]) {
      if (present.includes(name)) {
        await removeIfExists(`${target}/${name}`);
        removed.push(name);
      }
    }
    for (const name of shardFiles) {
      if (parseShardFileName(name)! < manifest.numShards) continue;
      for (const suffix of ["", ...SIDECARS, ".lock"]) {
        await removeIfExists(`${target}/${name}${suffix}`);
      }
      removed.push(name);
    }
    let bytes = 0;
    for (const [i, entry] of manifest.files.entries()) {
      const final = `${target}/${entry.file}`;
      const temporary = `${final}.restore-tmp`;
      await removeIfExists(temporary);
      await Deno.copyFile(verified[i] as string, temporary);
      await Deno.chmod(temporary, 0o600).catch(() => {});
      fsyncFile(temporary);
      // A WAL left by the old file would be replayed onto the new one: remove it first.
      for (const suffix of SIDECARS) await removeIfExists(`${final}${suffix}`);
      await removeIfExists(`${final}.lock`);
      await Deno.rename(temporary, final);
      bytes += entry.sizeBytes;
      options.onProgress?.({ phase: "install", shardId: entry.shardId, done: i + 1, total });
    }
    fsyncDirectory(target);
    writeShardMap(target, map);
    fsyncDirectory(target);
    return {
      backupDir: source,
      dbDir: target,
      numShards: manifest.numShards,
      bytes,
      removed,
      durationMs: performance.now() - started,
    };
  } finally {
    for (const lock of locks.reverse()) lock.release();
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
}
