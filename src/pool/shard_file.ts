/**
 * One shard file as the process sees it: its single physical handle, its transaction
 * lock, its ownership and its health. A process-wide registry shares it between every
 * pool on the same file, so two pools (or two managers) never lock each other out.
 *
 * @module
 */

import { Mutex } from "npm:async-mutex@0.5.0";
import type { Driver, DriverHandle, PositionalRows } from "../driver/driver.ts";
import {
  ConnectionBrokenError,
  QueryError,
  ShardFileMissingError,
  ShardliteError,
  ShardOpenError,
} from "../errors.ts";
import type { Params, Row, RunResult } from "../types.ts";
import { OwnerLock } from "./ownership.ts";

/** A session: the unit that may own the shard's transaction. Leases wrap sessions. */
export class Session {
  /** The session's number within its pool. */
  readonly id: number;
  /** Set when the handle broke under this session's open transaction. */
  lostTransaction: ConnectionBrokenError | null = null;
  /** Leases served by this session. */
  leases = 0;
  constructor(id: number) {
    this.id = id;
  }
}

/** The lease a statement runs for, as the shard file needs to see it. */
export interface TimeoutReporter {
  /** The error to reject with after waiting `waitedMs` for a sibling's transaction. */
  transactionTimeout(waitedMs: number): Error;
  /** The error to reject with when the lease was returned while the statement waited. */
  releasedError(): Error | undefined;
}

/** What happened to a shard file, for pools' event listeners. */
export type ShardFileEvent =
  | { type: "handle-opened"; path: string; staleLockCleared: boolean }
  | { type: "handle-replaced"; path: string; reason: string; error: unknown }
  | { type: "file-missing"; path: string; error: ShardFileMissingError };

/** Tunables of a shard file, taken from the first pool that opens it. */
export interface ShardFileOptions {
  /** The driver that opens handles. */
  driver: Driver;
  /** Prepared statements kept per handle. */
  statementCacheSize: number;
  /** The handle's page cache, in KiB. */
  cacheSizeKiB: number;
  /** How often the file's identity on disk is checked, in milliseconds (0 = never). */
  fileCheckIntervalMs: number;
  /** Validate the handle once it has been idle this long, in milliseconds. */
  idleValidationMs: number;
  /** `PRAGMA synchronous`: "full" survives power loss, "normal" only process crashes. */
  synchronous: "full" | "normal";
}

/** Counters of one shard file's handle. */
export interface HandleStats {
  /** Whether a handle is open now. */
  handleOpen: boolean;
  /** Handles opened over the file's life in this process. */
  handlesOpened: number;
  /** Broken handles closed and replaced. */
  handlesReplaced: number;
  /** Errors that pointed at a broken handle (I/O, corruption, closed underneath). */
  handleErrors: number;
  /** Stale `<db>.lock` directories removed after a crash. */
  staleLocksCleared: number;
  /** Statements that had to wait for another session's transaction. */
  transactionWaits: number;
  /** Prepared statements cached on the handle now. */
  cachedStatements: number;
  /** Pools attached to the file in this process. */
  attachedPools: number;
}

/** Which driver method a statement runs through. */
export const Op = { Run: 0, All: 1, Get: 2, Values: 3, Exec: 4, RunMany: 5 } as const;
/** One of {@link Op}'s values. */
export type Op = typeof Op[keyof typeof Op];

type OpResult = RunResult | Row[] | Row | undefined | PositionalRows | void;

// Messages of errors that mean the handle itself is unusable, not just the statement.
const BROKEN_PATTERN =
  /disk I\/O error|malformed|file is not a database|already closed|Database is closed|unable to open database file|database disk image/i;

function isBrokenHandleError(error: unknown): boolean {
  return error instanceof Error && BROKEN_PATTERN.test(error.message);
}

const SQLITE_MAGIC = new TextEncoder().encode("SQLite format 3\0");

/** Whether `path` is a file that starts with SQLite's header (false when missing). */
function hasSqliteHeader(path: string): boolean {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true });
  } catch {
    return false;
  }
  try {
    const header = new Uint8Array(SQLITE_MAGIC.length);
    let read = 0;
    while (read < header.length) {
      const n = file.readSync(header.subarray(read));
      if (n === null || n === 0) return false;
      read += n;
    }
    return header.every((byte, i) => byte === SQLITE_MAGIC[i]);
  } finally {
    file.close();
  }
}

const registry = new Map<string, ShardFile>();

function registryKey(path: string): string {
  const slash = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  const dir = slash >= 0 ? path.slice(0, slash) || "/" : ".";
  const base = slash >= 0 ? path.slice(slash + 1) : path;
  try {
    const real = Deno.realPathSync(dir);
    return `${real}${real.endsWith("/") ? "" : "/"}${base}`;
  } catch {
    return path;
  }
}

/**
 * Attaches to the process-wide entry for `path`, opening it (taking ownership) when
 * this is the first pool on it. Throws {@link ShardLockedError} when another process
 * owns the file.
 */
export function attachShardFile(path: string, options: ShardFileOptions): ShardFile {
  const key = registryKey(path);
  let file = registry.get(key);
  if (file === undefined) {
    file = new ShardFile(path, key, options);
    file.open();
    registry.set(key, file);
  }
  file.attachedPools++;
  return file;
}

/** Every shard file open in this process (for module-level shutdown and tests). */
export function openShardFiles(): ShardFile[] {
  return [...registry.values()];
}

/** The shared state of one shard file. */
export class ShardFile {
  /** The path as the first pool named it. */
  readonly path: string;
  /** Pools attached now. */
  attachedPools = 0;
  readonly #key: string;
  readonly #options: ShardFileOptions;
  #handle: DriverHandle | null = null;
  #owner: OwnerLock | null = null;
  #identity: { dev: number | null; ino: number | null } | null = null;
  #failure: ShardFileMissingError | null = null;
  #failureReported = false;
  readonly #mutex = new Mutex();
  #txOwner: Session | null = null;
  #monitor: ReturnType<typeof setInterval> | null = null;
  // Statements run so far, and the count the monitor last saw: cheaper than a clock read.
  #statements = 0;
  #statementsAtLastCheck = -1;
  #idleSince = 0;
  #closed = false;
  readonly listeners: Set<(event: ShardFileEvent) => void> = new Set();
  readonly #stats = {
    handlesOpened: 0,
    handlesReplaced: 0,
    handleErrors: 0,
    staleLocksCleared: 0,
    transactionWaits: 0,
  };

  constructor(path: string, key: string, options: ShardFileOptions) {
    this.path = path;
    this.#key = key;
    this.#options = options;
  }

  /** The session holding the transaction, if any. */
  get transactionOwner(): Session | null {
    return this.#txOwner;
  }

  /** Counters of the handle. */
  stats(): HandleStats {
    return {
      handleOpen: this.#handle?.isOpen ?? false,
      ...this.#stats,
      cachedStatements: this.#handle?.cachedStatements ?? 0,
      attachedPools: this.attachedPools,
    };
  }

  #emit(event: ShardFileEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  /** Takes ownership and opens the first handle (creating the file if missing). */
  open(): void {
    this.#owner = OwnerLock.acquire(this.path);
    try {
      this.#openHandle(true);
    } catch (error) {
      this.#owner.release();
      this.#owner = null;
      throw error;
    }
    if (this.#options.fileCheckIntervalMs > 0) {
      const monitor = setInterval(() => this.#check(), this.#options.fileCheckIntervalMs);
      Deno.unrefTimer(monitor);
      this.#monitor = monitor;
    }
  }

  #openHandle(create: boolean): void {
    const owner = this.#owner;
    if (owner === null) throw new ShardOpenError(this.path, "the file is not owned");
    const staleLockCleared = owner.clearStaleDriverLock();
    if (staleLockCleared) this.#stats.staleLocksCleared++;
    if (create) {
      // Create it ourselves so that it is owner-only (0600).
      try {
        Deno.openSync(this.path, { createNew: true, write: true, mode: 0o600 }).close();
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) {
          throw new ShardOpenError(this.path, `cannot create the database file`, { cause: error });
        }
      }
    }
    let handle: DriverHandle;
    try {
      handle = this.#options.driver.open(this.path, {
        create: false,
        statementCacheSize: this.#options.statementCacheSize,
      });
    } catch (error) {
      throw new ShardOpenError(this.path, `cannot open the database`, { cause: error });
    }
    try {
      // EXCLUSIVE first: WAL needs it with this driver, and it keeps locks off the hot path.
      handle.get("PRAGMA locking_mode=EXCLUSIVE");
      const mode = handle.get("PRAGMA journal_mode=WAL")?.["journal_mode"];
      if (mode !== "wal") {
        throw new ShardOpenError(this.path, `journal_mode stayed ${String(mode)}, not wal`);
      }
      handle.exec(
        `PRAGMA foreign_keys=ON; PRAGMA synchronous=${this.#options.synchronous}; ` +
          `PRAGMA cache_size=-${this.#options.cacheSizeKiB}`,
      );
      handle.get("SELECT count(*) FROM sqlite_schema");
    } catch (error) {
      try {
        handle.close();
      } catch {
        // The open failed already; report that.
      }
      if (error instanceof ShardliteError) throw error;
      throw new ShardOpenError(this.path, `cannot configure the database`, { cause: error });
    }
    const info = Deno.statSync(this.path);
    this.#identity = { dev: info.dev, ino: info.ino };
    this.#handle = handle;
    this.#stats.handlesOpened++;
    this.#idleSince = performance.now();
    this.#emit({ type: "handle-opened", path: this.path, staleLockCleared });
  }

  /** Periodic check: the file still there and the same; the handle validated when idle. */
  #check(): void {
    if (this.#closed || this.#failure !== null) return;
    let reason: "deleted" | "replaced" | "truncated" | null = null;
    try {
      const info = Deno.statSync(this.path);
      if (
        this.#identity !== null &&
        (info.ino !== this.#identity.ino || info.dev !== this.#identity.dev)
      ) reason = "replaced";
      else if (!hasSqliteHeader(this.path)) reason = "truncated";
    } catch {
      reason = "deleted";
    }
    if (reason !== null) {
      this.#fail(new ShardFileMissingError(this.path, reason));
      return;
    }
    const now = performance.now();
    if (this.#statements !== this.#statementsAtLastCheck) {
      this.#statementsAtLastCheck = this.#statements;
      this.#idleSince = now;
    } else if (
      this.#handle !== null && this.#txOwner === null &&
      now - this.#idleSince >= this.#options.idleValidationMs
    ) {
      this.#idleSince = now;
      this.#validate();
    }
  }

  #validate(): boolean {
    const handle = this.#handle;
    if (handle === null) return false;
    try {
      handle.get("SELECT count(*) FROM sqlite_schema");
      return true;
    } catch (error) {
      this.#stats.handleErrors++;
      this.#dropHandle(`validation failed: ${(error as Error).message}`, error);
      return false;
    }
  }

  #fail(error: ShardFileMissingError): void {
    this.#failure = error;
    this.#failureReported = false;
    this.#dropHandle(error.message, error);
    this.#emit({ type: "file-missing", path: this.path, error });
  }

  /** Closes a broken handle; a transaction in flight on it is lost and its owner told. */
  #dropHandle(reason: string, error: unknown): void {
    const handle = this.#handle;
    this.#handle = null;
    if (handle !== null) {
      try {
        handle.close();
      } catch {
        // It is broken; closing is best effort.
      }
    }
    const owner = this.#txOwner;
    if (owner !== null) {
      owner.lostTransaction = new ConnectionBrokenError(
        this.path,
        `the transaction of session #${owner.id} was lost: ${reason}. Roll back and retry.`,
        { cause: error },
      );
      this.#txOwner = null;
      this.#mutex.release();
    }
    this.#emit({ type: "handle-replaced", path: this.path, reason, error });
  }

  /** Reopens after a failure, never creating a file that went missing. */
  #ensureHandle(): DriverHandle {
    if (this.#closed) throw new ShardOpenError(this.path, "the shard file was closed");
    if (this.#failure !== null) {
      // Reopen only a real database: never an emptied file SQLite would take as new.
      const exists = hasSqliteHeader(this.path);
      if (!exists || !this.#failureReported) {
        this.#failureReported = true;
        throw this.#failure;
      }
      this.#failure = null;
    }
    if (this.#handle === null) {
      if (this.#owner === null || !this.#owner.isIntact()) {
        this.#owner?.release();
        this.#owner = OwnerLock.acquire(this.path);
      }
      this.#openHandle(false);
      this.#stats.handlesReplaced++;
    }
    return this.#handle as DriverHandle;
  }

  /** Runs a statement now when the handle is free or owned by `session`; waits otherwise. */
  statement(
    session: Session,
    op: Op,
    sql: string,
    params: Params | undefined,
    timeoutMs: number,
    reporter: TimeoutReporter,
  ): OpResult | Promise<OpResult> {
    if (session.lostTransaction !== null) return Promise.reject(session.lostTransaction);
    if (this.#txOwner === session || (!this.#mutex.isLocked() && this.#handle !== null)) {
      return this.#runNow(session, op, sql, params, false);
    }
    return this.#runAfterWait(session, op, sql, params, timeoutMs, reporter);
  }

  async #runAfterWait(
    session: Session,
    op: Op,
    sql: string,
    params: Params | undefined,
    timeoutMs: number,
    reporter: TimeoutReporter,
  ): Promise<OpResult> {
    let holdsMutex = false;
    if (this.#mutex.isLocked()) {
      this.#stats.transactionWaits++;
      await this.#acquireMutex(timeoutMs, reporter);
      holdsMutex = true;
      // The lease may have been returned (or its transaction lost) while it waited.
      const stale = reporter.releasedError() ?? session.lostTransaction;
      if (stale !== null) {
        this.#mutex.release();
        throw stale;
      }
    }
    try {
      this.#ensureHandle();
    } catch (error) {
      if (holdsMutex) this.#mutex.release();
      throw error;
    }
    return this.#runNow(session, op, sql, params, holdsMutex);
  }

  #acquireMutex(timeoutMs: number, reporter: TimeoutReporter): Promise<void> {
    const started = performance.now();
    return new Promise<void>((resolve, reject) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        reject(reporter.transactionTimeout(performance.now() - started));
      }, timeoutMs);
      this.#mutex.acquire().then(() => {
        // A waiter that timed out passes the lock straight on.
        if (timedOut) this.#mutex.release();
        else {
          clearTimeout(timer);
          resolve();
        }
      }, reject);
    });
  }

  #runNow(
    session: Session,
    op: Op,
    sql: string,
    params: Params | undefined,
    holdsMutex: boolean,
  ): OpResult {
    const handle = this.#handle;
    if (handle === null) {
      if (holdsMutex) this.#mutex.release();
      throw new ConnectionBrokenError(this.path, "no open handle");
    }
    let result: OpResult = undefined;
    try {
      switch (op) {
        case Op.Get:
          result = handle.get(sql, params);
          break;
        case Op.All:
          result = handle.all(sql, params);
          break;
        case Op.Run:
          result = handle.run(sql, params);
          break;
        case Op.Values:
          result = handle.values(sql, params);
          break;
        case Op.Exec:
          handle.exec(sql);
          break;
        case Op.RunMany:
          // One call for many rows: no await and no bookkeeping per row.
          result = {
            changes: handle.runMany(sql, params as unknown as readonly Params[]),
            lastInsertRowid: 0,
          };
          break;
      }
    } catch (error) {
      const reported = this.#onError(error, sql);
      if (this.#handle === handle) this.#afterStatement(session, handle, holdsMutex);
      // A dropped handle already released a transaction owner's lock; release a waiter's.
      else if (holdsMutex) this.#mutex.release();
      throw reported;
    }
    this.#afterStatement(session, handle, holdsMutex);
    return result;
  }

  /** Tracks who owns the transaction after every statement (BEGIN may come as plain SQL). */
  #afterStatement(session: Session, handle: DriverHandle, holdsMutex: boolean): void {
    this.#statements++;
    const inTransaction = handle.inTransaction;
    if (inTransaction) {
      if (this.#txOwner === null) {
        this.#txOwner = session;
        // Free, so this takes the lock synchronously; the release comes with COMMIT/ROLLBACK.
        if (!holdsMutex) void this.#mutex.acquire();
      }
    } else if (this.#txOwner === session) {
      this.#txOwner = null;
      this.#mutex.release();
    } else if (holdsMutex) {
      this.#mutex.release();
    }
  }

  #onError(error: unknown, sql: string): Error {
    if (error instanceof ShardliteError) return error;
    if (isBrokenHandleError(error)) {
      this.#stats.handleErrors++;
      if (this.#failure === null) this.#check();
      if (this.#failure !== null) return this.#failure;
      this.#dropHandle((error as Error).message, error);
      return new ConnectionBrokenError(
        this.path,
        `the handle broke (${(error as Error).message}); it was closed and will be ` +
          `replaced on the next statement`,
        { cause: error },
      );
    }
    return new QueryError(this.path, sql, error);
  }

  /** Rolls back the transaction `session` holds, if any. Returns whether it held one. */
  rollbackIfOwner(session: Session): boolean {
    if (session.lostTransaction !== null) {
      session.lostTransaction = null;
      return true;
    }
    if (this.#txOwner !== session) return false;
    const handle = this.#handle;
    try {
      if (handle !== null && handle.inTransaction) handle.exec("ROLLBACK");
    } catch (error) {
      this.#stats.handleErrors++;
      this.#dropHandle(`ROLLBACK failed: ${(error as Error).message}`, error);
      session.lostTransaction = null;
      return true;
    }
    this.#txOwner = null;
    this.#mutex.release();
    return true;
  }

  /** Forgets a lost transaction (the session rolled back). */
  clearLostTransaction(session: Session): void {
    session.lostTransaction = null;
  }

  /** Detaches one pool; the last one checkpoints, closes the handle and releases ownership. */
  detach(): void {
    if (this.attachedPools > 0) this.attachedPools--;
    if (this.attachedPools === 0) this.close();
  }

  /** Closes the handle (checkpointing the WAL) and releases ownership. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (registry.get(this.#key) === this) registry.delete(this.#key);
    if (this.#monitor !== null) clearInterval(this.#monitor);
    this.#monitor = null;
    const handle = this.#handle;
    this.#handle = null;
    let failure: unknown;
    if (handle !== null) {
      try {
        if (handle.inTransaction) handle.exec("ROLLBACK");
        handle.get("PRAGMA wal_checkpoint(TRUNCATE)");
      } catch (error) {
        failure = error;
      }
      try {
        handle.close();
      } catch (error) {
        failure ??= error;
      }
    }
    if (this.#txOwner !== null) {
      this.#txOwner = null;
      this.#mutex.release();
    }
    this.#owner?.release();
    this.#owner = null;
    if (failure !== undefined && this.#failure === null) {
      throw new ShardOpenError(this.path, "closing the handle failed", { cause: failure });
    }
  }
}
