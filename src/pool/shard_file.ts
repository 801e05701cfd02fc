/**
 * One shard file as the process sees it: its single physical handle, its transaction
 * lock, its ownership and its health. A process-wide registry shares it between every
 * pool on the same file, so two pools (or two managers) never lock each other out.
 *
 * @module
 */

import { Mutex } from "npm:async-mutex@0.5.0";
import {
  type Driver,
  type DriverCursor,
  type DriverHandle,
  isPromise,
  type MaybePromise,
  type PositionalRows,
} from "../driver/driver.ts";
import {
  ConnectionBrokenError,
  PoolTimeoutError,
  QueryError,
  ShardFileMissingError,
  ShardliteError,
  ShardLockedError,
  ShardOpenError,
} from "../errors.ts";
import type { Params, Row, RunResult } from "../types.ts";
import { setDeadline, trimDeadlines } from "./deadlines.ts";
import { OwnerLock, ownerPathFor } from "./ownership.ts";

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
  /** The error to reject with when an asynchronous driver gave no answer to `what`. */
  answerTimeout(waitedMs: number, what: string): Error;
  /** The error to reject with when the lease was returned while the statement waited. */
  releasedError(): Error | undefined;
  /** Aborts a statement's wait for a sibling's transaction (rejecting with its reason). */
  readonly abortSignal?: AbortSignal | undefined;
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
  /** Whether this process alone uses the file, or shares it (see `PoolOptions.access`). */
  access: "exclusive" | "shared";
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
  /** Shared access: statements retried after SQLITE_BUSY (another writer held the lock). */
  busyRetries: number;
  /** Shared access: handles held by open transactions now. */
  transactionHandles: number;
  /** Prepared statements cached on the handle now. */
  cachedStatements: number;
  /** Pools attached to the file in this process. */
  attachedPools: number;
}

/**
 * Which driver method a statement runs through. `Cursor` opens a query read a page at a
 * time ({@link ShardCursor}); `Page` reads its next page (its params are a {@link PageRequest}).
 */
export const Op = {
  Run: 0,
  All: 1,
  Get: 2,
  Values: 3,
  Exec: 4,
  RunMany: 5,
  Backup: 6,
  Cursor: 7,
  Page: 8,
} as const;
/** One of {@link Op}'s values. */
export type Op = typeof Op[keyof typeof Op];

/** A query open on one handle of the file, read a page at a time. */
export interface ShardCursor {
  /** The handle the query runs on: its pages can come from no other. */
  readonly handle: DriverHandle;
  /** The driver's cursor. */
  readonly cursor: DriverCursor;
  /** The query (for errors and `onQuery`). */
  readonly sql: string;
}

/** What an `Op.Page` statement carries in place of parameters. */
export interface PageRequest {
  /** The cursor to read. */
  readonly cursor: ShardCursor;
  /** Rows to read at most. */
  readonly max: number;
}

type OpResult = RunResult | Row[] | Row | undefined | PositionalRows | void | ShardCursor;

/** What a statement does to the transaction, judged from its text before it runs. */
const Control = { None: 0, Transaction: 1 } as const;
type Control = typeof Control[keyof typeof Control];

const TRANSACTION_WORD = /^(?:BEGIN|SAVEPOINT|COMMIT|END|ROLLBACK|RELEASE)\b/i;
const TRANSACTION_WORD_ANYWHERE = /\b(?:BEGIN|SAVEPOINT|COMMIT|END|ROLLBACK|RELEASE)\b/i;

/**
 * Whether one statement may open or close a transaction: its first keyword (after
 * spaces and comments) is BEGIN, SAVEPOINT, COMMIT, END, ROLLBACK or RELEASE. A script
 * (`exec`) counts when such a word appears anywhere in it.
 */
function controlOf(op: Op, sql: string): Control {
  // A backup holds the handle to itself, like a transaction, until it is done.
  if (op === Op.Backup) return Control.Transaction;
  if (op === Op.Exec) {
    return TRANSACTION_WORD_ANYWHERE.test(sql) ? Control.Transaction : Control.None;
  }
  let at = 0;
  for (;;) {
    const c = sql.charCodeAt(at);
    // Letters other than b, c, e, r and s start no transaction keyword: the common case.
    if (c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) at++;
    else if (c === 0x2d && sql.charCodeAt(at + 1) === 0x2d) {
      const end = sql.indexOf("\n", at);
      if (end < 0) return Control.None;
      at = end + 1;
    } else if (c === 0x2f && sql.charCodeAt(at + 1) === 0x2a) {
      const end = sql.indexOf("*/", at + 2);
      if (end < 0) return Control.None;
      at = end + 2;
    } else {
      // The first two letters rule out SELECT, CREATE, EXPLAIN, REPLACE, ... without a regex:
      // BEgin, SAvepoint, COmmit, ENd, ROllback, REl(ease).
      const first = c | 0x20;
      const second = sql.charCodeAt(at + 1) | 0x20;
      const candidate = (first === 0x62 && second === 0x65) ||
        (first === 0x73 && second === 0x61) ||
        (first === 0x63 && second === 0x6f) || (first === 0x65 && second === 0x6e) ||
        (first === 0x72 && (second === 0x6f ||
          (second === 0x65 && (sql.charCodeAt(at + 2) | 0x20) === 0x6c)));
      if (!candidate) return Control.None;
      return TRANSACTION_WORD.test(at === 0 ? sql : sql.slice(at))
        ? Control.Transaction
        : Control.None;
    }
  }
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
// Entries of pools on servers, numbered (see attachShardFile).
let remoteEntries = 0;

// Shared access: the longest pause between retries of a statement that got SQLITE_BUSY.
// Short, because a writer holds SQLite's write lock for about one commit (an fsync).
const MAX_BUSY_BACKOFF_MS = 4;

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
  // A server's URL names no file, and each pool's driver carries its own credentials:
  // pools on a server never share an entry.
  const key = options.driver.remote === true ? `${path}#${++remoteEntries}` : registryKey(path);
  let file = registry.get(key);
  if (file === undefined) {
    file = new ShardFile(path, key, options);
    file.open();
    registry.set(key, file);
  } else if (file.access !== options.access) {
    // Pools of one process share the file's entry: they must agree on how it is held.
    throw new ShardLockedError({
      path,
      ownerPath: ownerPathFor(path),
      ownerPid: file.access === "exclusive" ? Deno.pid : undefined,
      heldAs: file.access,
      sharedBy: file.access === "shared" ? [Deno.pid] : [],
    });
  }
  file.attachedPools++;
  return file;
}

/**
 * Files whose last handle is still closing in the background (an asynchronous local
 * driver: shard workers), by registry key, with the ownership they still hold. A file
 * opened again meanwhile takes that ownership over and opens once the close is done.
 */
const closingFiles = new Map<string, { owner: OwnerLock | null; done: Promise<void> }>();

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
  // An asynchronous open under way, and statements sent but not yet answered.
  #opening: Promise<void> | null = null;
  // A dropped handle not known to be closed yet: no other handle opens until it is (two
  // handles on the file at once would fight over its lock and WAL).
  #closing: { handle: DriverHandle; done: Promise<boolean> | null; attempts: number } | null = null;
  // Callers waiting for an asynchronous driver's answer (failed when the file closes).
  readonly #waitingAnswers = new Set<(error: Error) => void>();
  // Shared access: ROLLBACKs still under way (their handles become spare when done).
  readonly #rollbacks = new Set<Promise<void>>();
  // Shared access: handles whose close failed (one may hold the write lock): retried.
  readonly #zombies: DriverHandle[] = [];
  #inFlight = 0;
  // Shared access: each open transaction has a handle of its own; spare ones are reused.
  readonly #shared: boolean;
  // The driver reaches a server, not a file: no owner lock, file creation or file checks.
  readonly #remote: boolean;
  readonly #txHandles = new Map<Session, DriverHandle>();
  readonly #spareHandles: DriverHandle[] = [];
  readonly listeners: Set<(event: ShardFileEvent) => void> = new Set();
  readonly #stats = {
    handlesOpened: 0,
    handlesReplaced: 0,
    handleErrors: 0,
    staleLocksCleared: 0,
    transactionWaits: 0,
    busyRetries: 0,
  };

  constructor(path: string, key: string, options: ShardFileOptions) {
    this.path = path;
    this.#key = key;
    this.#options = options;
    this.#shared = options.access === "shared";
    this.#remote = options.driver.remote === true;
  }

  /** The session holding the transaction, if any (exclusive access). */
  get transactionOwner(): Session | null {
    return this.#txOwner;
  }

  /** How this process holds the file. */
  get access(): "exclusive" | "shared" {
    return this.#options.access;
  }

  /** Whether `session` has a transaction open on this file. */
  ownsTransaction(session: Session): boolean {
    return this.#shared ? this.#txHandles.has(session) : this.#txOwner === session;
  }

  /** Counters of the handle. */
  stats(): HandleStats {
    return {
      handleOpen: this.#handle?.isOpen ?? false,
      ...this.#stats,
      cachedStatements: this.#handle?.cachedStatements ?? 0,
      attachedPools: this.attachedPools,
      transactionHandles: this.#txHandles.size,
    };
  }

  #emit(event: ShardFileEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  /** Takes ownership and opens the first handle (creating the file if missing). */
  open(): void {
    const previous = closingFiles.get(this.#key);
    if (previous !== undefined) closingFiles.delete(this.#key);
    if (previous?.owner != null) {
      // Still ours, still closing: take the ownership over; open once it has closed.
      this.#owner = previous.owner;
      this.#track(previous.done.then(() => this.#openHandle(true)));
    } else {
      this.#openFirst();
    }
    if (this.#options.fileCheckIntervalMs > 0) {
      const monitor = setInterval(() => this.#check(), this.#options.fileCheckIntervalMs);
      Deno.unrefTimer(monitor);
      this.#monitor = monitor;
    }
  }

  #openFirst(): void {
    this.#owner = this.#remote ? null : OwnerLock.acquire(this.path, this.#options.access);
    try {
      const opened = this.#openHandle(true);
      if (isPromise(opened)) this.#track(opened);
    } catch (error) {
      this.#owner?.release();
      this.#owner = null;
      throw error;
    }
  }

  /** An asynchronous open under way: statements wait for it (a failure is theirs to see). */
  #track(opening: Promise<void>): void {
    const tracked = opening.finally(() => {
      if (this.#opening === tracked) this.#opening = null;
    });
    this.#opening = tracked;
    tracked.catch(() => {});
  }

  #openHandle(create: boolean): MaybePromise<void> {
    const owner = this.#owner;
    if (owner === null && !this.#remote) {
      throw new ShardOpenError(this.path, "the file is not owned");
    }
    const driver = this.#options.driver;
    let staleLockCleared = false;
    try {
      // Safe only now: holding the owner lock alone proves no live process uses the file.
      if (owner?.access === "exclusive") staleLockCleared = driver.clearStaleLock(this.path);
    } catch (error) {
      throw new ShardOpenError(this.path, "cannot clear the lock a crashed owner left", {
        cause: error,
      });
    }
    if (staleLockCleared) this.#stats.staleLocksCleared++;
    if (create && !this.#remote) {
      // Create it ourselves so that it is owner-only (0600).
      try {
        Deno.openSync(this.path, { createNew: true, write: true, mode: 0o600 }).close();
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) {
          throw new ShardOpenError(this.path, `cannot create the database file`, { cause: error });
        }
      }
    }
    const openFailed = (error: unknown): never => {
      throw new ShardOpenError(this.path, `cannot open the database`, { cause: error });
    };
    let opened: MaybePromise<DriverHandle>;
    try {
      opened = driver.open(this.path, {
        create: false,
        statementCacheSize: this.#options.statementCacheSize,
      });
    } catch (error) {
      return openFailed(error);
    }
    if (isPromise(opened)) {
      return opened.then((handle) => this.#configure(handle, staleLockCleared), openFailed);
    }
    return this.#configure(opened, staleLockCleared);
  }

  #configure(handle: DriverHandle, staleLockCleared: boolean): MaybePromise<void> {
    const failed = (error: unknown): never => {
      // Closed before anything else opens (the open failed already; report that).
      this.#retire(handle);
      if (error instanceof ShardliteError) throw error;
      throw new ShardOpenError(this.path, `cannot configure the database`, { cause: error });
    };
    const done = () => {
      if (!this.#remote) {
        const info = Deno.statSync(this.path);
        this.#identity = { dev: info.dev, ino: info.ino };
      }
      this.#handle = handle;
      this.#stats.handlesOpened++;
      this.#idleSince = performance.now();
      this.#emit({ type: "handle-opened", path: this.path, staleLockCleared });
    };
    let configured: MaybePromise<void>;
    try {
      configured = this.#options.driver.configure(handle, {
        access: this.#options.access,
        synchronous: this.#options.synchronous,
        cacheSizeKiB: this.#options.cacheSizeKiB,
      });
    } catch (error) {
      return failed(error);
    }
    if (isPromise(configured)) return configured.then(done, failed);
    done();
  }

  /** Periodic check: the file still there and the same; the handle validated when idle. */
  #check(): void {
    // An asynchronous open under way: the file may not have its header yet.
    if (this.#closed || this.#failure !== null || this.#opening !== null) return;
    let reason: "deleted" | "replaced" | "truncated" | null = null;
    if (!this.#remote) {
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
      this.#handle !== null && this.#txOwner === null && this.#inFlight === 0 &&
      now - this.#idleSince >= this.#options.idleValidationMs
    ) {
      this.#idleSince = now;
      this.#validate();
    }
  }

  #validate(): void {
    const handle = this.#handle;
    if (handle === null) return;
    const failed = (error: unknown) => {
      if (this.#handle !== handle) return;
      this.#stats.handleErrors++;
      this.#dropHandle(`validation failed: ${(error as Error).message}`, error);
    };
    try {
      const checked = handle.get("SELECT count(*) FROM sqlite_schema");
      if (isPromise(checked)) checked.catch(failed);
    } catch (error) {
      failed(error);
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
    if (handle !== null) this.#retire(handle);
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

  /**
   * Closes a handle that is done with (broken, or half opened). Until its close has
   * succeeded no other handle is opened: one that cannot be closed is retried first.
   */
  #retire(handle: DriverHandle, attempts = 1): void {
    const closing = { handle, done: null as Promise<boolean> | null, attempts };
    this.#closing = closing;
    const settled = (ok: boolean) => {
      if (ok && this.#closing === closing) this.#closing = null;
      return ok;
    };
    try {
      const closed = handle.close();
      if (isPromise(closed)) closing.done = closed.then(() => settled(true), () => settled(false));
      else settled(true);
    } catch {
      settled(false); // kept: the next open tries again first
    }
  }

  /** Waits for (or retries) the close of a retired handle; throws while it stays open. */
  #afterClosing(): MaybePromise<void> {
    const closing = this.#closing;
    if (closing === null) return;
    if (closing.done !== null) {
      // An asynchronous close is waited for, however long (each caller's own deadline
      // bounds its wait): a handle that may still be open is never raced by a new one,
      // whose commits a late checkpoint of the old one's view could otherwise undo.
      return closing.done.then((ok) => {
        if (this.#closing !== closing) return;
        if (ok) this.#closing = null;
        else closing.done = null; // it failed: tried again (synchronously) next time
        if (!ok) return this.#afterClosing();
      });
    }
    // A synchronous close that failed is tried again (a few times, now): until it has
    // closed, no other handle opens — it may still hold the file's lock, and two handles
    // with their own view of the WAL would undo each other's commits.
    for (let attempt = 0; attempt < 3; attempt++) {
      const current = this.#closing as typeof closing | null;
      if (current === null) return;
      this.#retire(current.handle, current.attempts + 1);
      const retried = this.#closing as typeof closing | null;
      if (retried === null) return;
      if (retried.done !== null) return this.#afterClosing();
    }
    if (this.#closing !== null) {
      throw new ConnectionBrokenError(
        this.path,
        "a broken handle on the file could not be closed yet; no new handle is opened while " +
          "it may still hold the file's lock (the next statement tries again)",
      );
    }
  }

  /** Reopens after a failure, never creating a file that went missing. */
  #ensureHandle(timeoutMs = 30_000): MaybePromise<DriverHandle> {
    if (this.#closed) throw new ShardOpenError(this.path, "the shard file was closed");
    if (this.#opening !== null) return this.#opening.then(() => this.#ensureHandle(timeoutMs));
    if (this.#handle === null && this.#closing !== null) {
      const waited = this.#afterClosing();
      if (isPromise(waited)) return waited.then(() => this.#ensureHandle(timeoutMs));
    }
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
      if (!this.#remote && (this.#owner === null || !this.#owner.isIntact())) {
        this.#owner?.release();
        this.#owner = OwnerLock.acquire(this.path, this.#options.access);
      }
      const opened = this.#openHandle(false);
      this.#stats.handlesReplaced++;
      if (isPromise(opened)) {
        this.#track(opened);
        return opened.then(() => this.#ensureHandle(timeoutMs));
      }
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
    const control = controlOf(op, sql);
    if (op === Op.Cursor && control !== Control.None) {
      throw new TypeError("iterate() reads a query; it cannot begin or end a transaction");
    }
    if (op === Op.Page && this.#shared) {
      // Under shared access a cursor stays on its own handle, whatever the session does.
      const { handle } = (params as unknown as PageRequest).cursor;
      if (!handle.isOpen) {
        throw new ConnectionBrokenError(
          this.path,
          "the handle a query was being read from was closed; run the query again",
        );
      }
      return this.#sharedRun(
        session,
        handle,
        op,
        sql,
        params,
        control,
        performance.now(),
        timeoutMs,
        1,
        reporter,
      );
    }
    if (this.#shared) {
      return this.#sharedStatement(session, op, sql, params, control, timeoutMs, reporter);
    }
    if (this.#txOwner === session) {
      return this.#runNow(session, op, sql, params, control, false, timeoutMs, reporter);
    }
    if (!this.#mutex.isLocked() && this.#handle !== null) {
      if (control === Control.None) {
        return this.#runNow(session, op, sql, params, control, false, timeoutMs, reporter);
      }
      // A statement that may open a transaction takes the handle before it is sent, so
      // nothing of a sibling's can run inside the transaction, even on an async driver.
      void this.#mutex.acquire(); // free: taken synchronously
      return this.#runNow(session, op, sql, params, control, true, timeoutMs, reporter);
    }
    return this.#runAfterWait(session, op, sql, params, control, timeoutMs, reporter);
  }

  async #runAfterWait(
    session: Session,
    op: Op,
    sql: string,
    params: Params | undefined,
    control: Control,
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
      const handle = this.#ensureHandle(timeoutMs);
      if (isPromise(handle)) {
        await this.#deadline(handle, timeoutMs, reporter, "the handle to open", null);
      }
    } catch (error) {
      if (holdsMutex) this.#mutex.release();
      throw error;
    }
    if (!holdsMutex && this.#txOwner !== session) {
      // While the handle opened, a sibling may have begun a transaction: wait again.
      if (this.#mutex.isLocked()) {
        return await this.#runAfterWait(session, op, sql, params, control, timeoutMs, reporter);
      }
      if (control !== Control.None) {
        void this.#mutex.acquire();
        holdsMutex = true;
      }
    }
    return await this.#runNow(session, op, sql, params, control, holdsMutex, timeoutMs, reporter);
  }

  #acquireMutex(timeoutMs: number, reporter: TimeoutReporter): Promise<void> {
    const started = performance.now();
    const signal = reporter.abortSignal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      let timedOut = false;
      const onAbort = () => {
        timedOut = true;
        clearTimeout(timer);
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        timedOut = true;
        signal?.removeEventListener("abort", onAbort);
        reject(reporter.transactionTimeout(performance.now() - started));
      }, timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#mutex.acquire().then(() => {
        signal?.removeEventListener("abort", onAbort);
        // A waiter that timed out (or was aborted) passes the lock straight on.
        if (timedOut) this.#mutex.release();
        else {
          clearTimeout(timer);
          resolve();
        }
      }, reject);
    });
  }

  /**
   * An asynchronous driver's answer, bounded by `timeoutMs`: past it the caller gets the
   * reporter's timeout error, and `handle` (whose state is then unknown) is dropped; a
   * late answer is ignored.
   */
  #deadline<T>(
    promise: Promise<T>,
    timeoutMs: number,
    reporter: TimeoutReporter,
    what: string,
    handle: DriverHandle | null,
  ): Promise<T> {
    const started = performance.now();
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const settle = () => {
        this.#waitingAnswers.delete(onClose);
        done = true;
        timer.cancel();
        trimDeadlines();
      };
      // Closing the file fails a caller still waiting for an answer.
      const onClose = (error: Error) => {
        if (done) return;
        settle();
        reject(error);
      };
      this.#waitingAnswers.add(onClose);
      // One shared timer for every answer waited for (a timer each cost more than a
      // statement through a shard worker).
      const timer = setDeadline(timeoutMs, () => {
        this.#waitingAnswers.delete(onClose);
        done = true;
        const error = reporter.answerTimeout(performance.now() - started, what);
        if (handle !== null && this.#handle === handle) {
          this.#stats.handleErrors++;
          this.#dropHandle(`no answer within ${timeoutMs} ms to ${what}`, error);
        }
        reject(error);
      });
      promise.then((value) => {
        if (done) return this.#waitingAnswers.delete(onClose);
        settle();
        resolve(value);
      }, (error: unknown) => {
        if (done) return this.#waitingAnswers.delete(onClose);
        settle();
        reject(error);
      });
    });
  }

  #runNow(
    session: Session,
    op: Op,
    sql: string,
    params: Params | undefined,
    control: Control,
    holdsMutex: boolean,
    timeoutMs: number,
    reporter: TimeoutReporter,
  ): OpResult | Promise<OpResult> {
    const handle = this.#handle;
    if (handle === null) {
      if (holdsMutex) this.#mutex.release();
      throw new ConnectionBrokenError(this.path, "no open handle");
    }
    if (op === Op.Page && (params as unknown as PageRequest).cursor.handle !== handle) {
      // Replaced while this page waited its turn: its statement went with the old handle.
      if (holdsMutex) this.#mutex.release();
      throw new ConnectionBrokenError(
        this.path,
        "the handle a query was being read from was replaced; run the query again",
      );
    }
    let result: MaybePromise<OpResult | number>;
    try {
      result = dispatch(this.#options.driver, handle, op, sql, params);
    } catch (error) {
      throw this.#failed(session, handle, holdsMutex, error, sql);
    }
    if (isPromise(result)) {
      this.#inFlight++;
      const answer = this.#deadline(result, timeoutMs, reporter, describeSql(sql), handle);
      return answer.then((value) => {
        this.#inFlight--;
        this.#after(session, handle, control, holdsMutex);
        return shape(op, value);
      }, (error: unknown) => {
        this.#inFlight--;
        throw this.#failed(session, handle, holdsMutex, error, sql);
      });
    }
    this.#after(session, handle, control, holdsMutex);
    return op === Op.RunMany
      ? { changes: result as number, lastInsertRowid: 0 }
      : result as OpResult;
  }

  /** A statement failed: classify the error, then settle the transaction's ownership. */
  #failed(
    session: Session,
    handle: DriverHandle,
    holdsMutex: boolean,
    error: unknown,
    sql: string,
  ): Error {
    const reported = this.#onError(error, sql);
    // A failure may end a transaction (INSERT OR ROLLBACK, RAISE(ROLLBACK)): ask the handle.
    if (this.#handle === handle) this.#after(session, handle, Control.Transaction, holdsMutex);
    // A dropped handle already released a transaction owner's lock; release a waiter's.
    else if (holdsMutex && this.#txOwner !== session) this.#mutex.release();
    return reported;
  }

  /**
   * Settles who owns the transaction after a statement. Only a statement that may open or
   * close one (judged from its text before it ran) reads the handle's state; the session
   * holds the handle then, so the answer is its own.
   */
  #after(session: Session, handle: DriverHandle, control: Control, holdsMutex: boolean): void {
    this.#statements++;
    if (control === Control.None) {
      if (holdsMutex && this.#txOwner !== session) this.#mutex.release();
      return;
    }
    if (handle.inTransaction) {
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
    // A driver's own typed error may mean a broken handle (a shard worker that died).
    const broken = this.#options.driver.isBrokenHandleError(error);
    if (error instanceof ShardliteError && !broken) return error;
    if (broken) {
      this.#stats.handleErrors++;
      if (this.#failure === null && !this.#remote) this.#check();
      if (this.#failure !== null) return this.#failure;
      this.#dropHandle((error as Error).message, error);
      if (error instanceof ShardliteError) return error;
      return new ConnectionBrokenError(
        this.path,
        `the handle broke (${(error as Error).message}); it was closed and will be ` +
          `replaced on the next statement`,
        { cause: error },
      );
    }
    return new QueryError(this.path, sql, error);
  }

  /**
   * Shared access: a statement of a session with an open transaction runs on that
   * transaction's own handle; one that may open a transaction gets a handle of its own
   * (a spare, or a new one); every other statement runs on the file's main handle at
   * once. Readers so never wait for a writer (each handle reads its WAL snapshot), and
   * writers meet on SQLite's write lock: SQLITE_BUSY is retried asynchronously.
   */
  #sharedStatement(
    session: Session,
    op: Op,
    sql: string,
    params: Params | undefined,
    control: Control,
    timeoutMs: number,
    reporter: TimeoutReporter,
  ): OpResult | Promise<OpResult> {
    let handle = this.#txHandles.get(session);
    if (handle === undefined) {
      if (control === Control.None) {
        if (this.#handle === null || this.#opening !== null) {
          return (async () => {
            const opened = this.#ensureHandle(timeoutMs);
            if (isPromise(opened)) {
              await this.#deadline(opened, timeoutMs, reporter, "the handle to open", null);
            }
            return await this.#sharedStatement(
              session,
              op,
              sql,
              params,
              control,
              timeoutMs,
              reporter,
            );
          })();
        }
        handle = this.#handle;
      } else {
        this.#retryZombies();
        const spare = this.#spareHandles.pop();
        if (spare === undefined && this.#rollbacks.size > 0) {
          // A handle being rolled back is about to be spare: wait for it, open no other.
          const next = Promise.race([...this.#rollbacks]);
          return this.#deadline(next, timeoutMs, reporter, "a ROLLBACK to finish", null).then(() =>
            this.#sharedStatement(session, op, sql, params, control, timeoutMs, reporter)
          );
        }
        if (spare === undefined) {
          const extra = this.#openExtra();
          return this.#deadline(extra, timeoutMs, reporter, "a transaction handle to open", null)
            .then((opened) => {
              this.#spareHandles.push(opened);
              return this.#sharedStatement(session, op, sql, params, control, timeoutMs, reporter);
            });
        }
        handle = spare;
        this.#txHandles.set(session, handle);
      }
    }
    return this.#sharedRun(
      session,
      handle,
      op,
      sql,
      params,
      control,
      performance.now(),
      timeoutMs,
      1,
      reporter,
    );
  }

  #sharedRun(
    session: Session,
    handle: DriverHandle,
    op: Op,
    sql: string,
    params: Params | undefined,
    control: Control,
    started: number,
    timeoutMs: number,
    backoffMs: number,
    reporter: TimeoutReporter,
  ): OpResult | Promise<OpResult> {
    const failed = (error: unknown): OpResult | Promise<OpResult> => {
      // BUSY on a statement that changed nothing yet (autocommit, BEGIN, COMMIT): retry,
      // asynchronously and with backoff, until timeoutMs. Inside a transaction it is the
      // caller's to handle (a BEGIN DEFERRED that cannot upgrade).
      if (
        this.#options.driver.isBusyError(error) &&
        (control !== Control.None || !safeInTransaction(handle))
      ) {
        const waited = performance.now() - started;
        if (reporter.abortSignal?.aborted) {
          this.#settleShared(session, handle);
          throw reporter.abortSignal.reason;
        }
        if (waited + backoffMs > timeoutMs) {
          this.#settleShared(session, handle);
          throw new PoolTimeoutError({
            path: this.path,
            timeoutMs,
            waitedMs: waited,
            counts: {
              active: this.#txHandles.size,
              idle: this.#spareHandles.length,
              waiting: 0,
              max: 0,
            },
            waitingFor: "write-lock",
            detail: `the statement kept getting SQLITE_BUSY: ${sql.slice(0, 80)}`,
          }, { cause: error });
        }
        this.#stats.busyRetries++;
        return new Promise<void>((resolve) => setTimeout(resolve, backoffMs)).then(() =>
          this.#sharedRun(
            session,
            handle,
            op,
            sql,
            params,
            control,
            started,
            timeoutMs,
            Math.min(backoffMs * 2, MAX_BUSY_BACKOFF_MS),
            reporter,
          )
        );
      }
      const reported = this.#sharedError(session, handle, error, sql);
      this.#settleShared(session, handle);
      throw reported;
    };
    let result: MaybePromise<OpResult | number>;
    try {
      result = dispatch(this.#options.driver, handle, op, sql, params);
    } catch (error) {
      return failed(error);
    }
    if (isPromise(result)) {
      const answer = this.#deadline(result, timeoutMs, reporter, describeSql(sql), null);
      return answer.then((value) => {
        this.#statements++;
        if (control !== Control.None) this.#settleShared(session, handle);
        return shape(op, value);
      }, (error: unknown) => {
        // No answer: this handle's state is unknown, so it is not used again.
        if (error instanceof PoolTimeoutError && error.waitingFor === "driver") {
          if (this.#txHandles.get(session) === handle) this.#txHandles.delete(session);
          if (handle === this.#handle) this.#dropHandle("no answer from the driver", error);
          else this.#closeOrKeep(handle);
          throw error;
        }
        return failed(error);
      });
    }
    this.#statements++;
    if (control !== Control.None) this.#settleShared(session, handle);
    return shape(op, result);
  }

  /** After a statement that may end a transaction: a handle out of one goes back spare. */
  #settleShared(session: Session, handle: DriverHandle): void {
    if (this.#txHandles.get(session) !== handle || safeInTransaction(handle)) return;
    this.#txHandles.delete(session);
    if (this.#closed || !handle.isOpen) this.#closeOrKeep(handle);
    else if (this.#spareHandles.length < 4) this.#spareHandles.push(handle);
    else this.#closeOrKeep(handle);
  }

  /** Classifies an error on a shared-access handle; a broken transaction handle is dropped. */
  #sharedError(session: Session, handle: DriverHandle, error: unknown, sql: string): Error {
    if (handle === this.#handle || error instanceof ShardliteError) {
      return this.#onError(error, sql);
    }
    if (!this.#options.driver.isBrokenHandleError(error)) {
      return new QueryError(this.path, sql, error);
    }
    this.#stats.handleErrors++;
    this.#txHandles.delete(session);
    this.#closeOrKeep(handle);
    return new ConnectionBrokenError(
      this.path,
      `the transaction's handle broke (${(error as Error).message}); the transaction was lost. ` +
        `Roll back and retry.`,
      { cause: error },
    );
  }

  /** Closes a shared-access handle; one that will not close is kept and retried later. */
  #closeOrKeep(handle: DriverHandle): void {
    try {
      const closed = handle.close();
      if (isPromise(closed)) closed.catch(() => this.#zombies.push(handle));
    } catch {
      this.#zombies.push(handle);
    }
  }

  /** Tries again to close handles that failed to (their locks would block every writer). */
  #retryZombies(): void {
    if (this.#zombies.length === 0) return;
    for (const zombie of this.#zombies.splice(0)) {
      try {
        if (safeInTransaction(zombie)) {
          const rolledBack = zombie.exec("ROLLBACK");
          if (isPromise(rolledBack)) rolledBack.catch(() => {});
        }
      } catch {
        // Closing releases its locks all the same.
      }
      this.#closeOrKeep(zombie);
    }
  }

  /** Opens (and configures) one more handle on the file, for a transaction. */
  #openExtra(): Promise<DriverHandle> {
    return (async () => {
      if (this.#closed) throw new ShardOpenError(this.path, "the shard file was closed");
      let handle: DriverHandle;
      try {
        handle = await this.#options.driver.open(this.path, {
          create: false,
          statementCacheSize: this.#options.statementCacheSize,
        });
      } catch (error) {
        throw new ShardOpenError(this.path, `cannot open the database`, { cause: error });
      }
      try {
        await this.#options.driver.configure(handle, {
          access: this.#options.access,
          synchronous: this.#options.synchronous,
          cacheSizeKiB: this.#options.cacheSizeKiB,
        });
      } catch (error) {
        this.#closeOrKeep(handle);
        throw new ShardOpenError(this.path, `cannot configure the database`, { cause: error });
      }
      this.#stats.handlesOpened++;
      return handle;
    })();
  }

  #rollbackShared(session: Session): boolean {
    const handle = this.#txHandles.get(session);
    if (handle === undefined) return false;
    // The session lets go of the handle at once; the handle is spare again once rolled back.
    this.#txHandles.delete(session);
    const done = () => {
      if (this.#closed || !handle.isOpen || safeInTransaction(handle)) this.#closeOrKeep(handle);
      else if (this.#spareHandles.length < 4) this.#spareHandles.push(handle);
      else this.#closeOrKeep(handle);
    };
    const failed = () => this.#closeOrKeep(handle);
    try {
      const rolledBack = safeInTransaction(handle) ? handle.exec("ROLLBACK") : undefined;
      if (isPromise(rolledBack)) {
        const tracked: Promise<void> = rolledBack.then(done, failed).finally(() =>
          this.#rollbacks.delete(tracked)
        );
        this.#rollbacks.add(tracked);
      } else done();
    } catch {
      failed();
    }
    return true;
  }

  /** Rolls back the transaction `session` holds, if any. Returns whether it held one. */
  rollbackIfOwner(session: Session): boolean {
    if (session.lostTransaction !== null) {
      session.lostTransaction = null;
      return true;
    }
    if (this.#shared) return this.#rollbackShared(session);
    if (this.#txOwner !== session) return false;
    const handle = this.#handle;
    const failed = (error: unknown) => {
      this.#stats.handleErrors++;
      if (this.#handle === handle) {
        this.#dropHandle(`ROLLBACK failed: ${(error as Error).message}`, error);
      }
      session.lostTransaction = null;
    };
    let owner: Session = session;
    const released = () => {
      if (this.#txOwner !== owner) return;
      this.#txOwner = null;
      this.#mutex.release();
    };
    try {
      const rolledBack = handle !== null && handle.inTransaction
        ? handle.exec("ROLLBACK")
        : undefined;
      if (isPromise(rolledBack)) {
        // The session is free at once (its lease may be reused); the handle stays taken,
        // under a stand-in owner, until the ROLLBACK is done: siblings keep waiting.
        owner = new Session(-session.id);
        this.#txOwner = owner;
        rolledBack.then(released, failed);
        return true;
      }
    } catch (error) {
      failed(error);
      return true;
    }
    released();
    return true;
  }

  /** Forgets a lost transaction (the session rolled back). */
  clearLostTransaction(session: Session): void {
    session.lostTransaction = null;
  }

  /** Detaches one pool; the last one checkpoints, closes the handle and releases ownership. */
  detach(): void | Promise<void> {
    if (this.attachedPools > 0) this.attachedPools--;
    if (this.attachedPools === 0) return this.close();
  }

  /**
   * Closes the handle (checkpointing the WAL) and releases ownership. Idempotent. With
   * an asynchronous driver the handle finishes closing in the background; for a local file
   * (shard workers) the promise returned settles once it has, and only then is ownership
   * released: the file can be moved or deleted once it resolves.
   */
  close(): void | Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (registry.get(this.#key) === this) registry.delete(this.#key);
    if (this.#monitor !== null) clearInterval(this.#monitor);
    this.#monitor = null;
    const handle = this.#handle;
    this.#handle = null;
    let failure: unknown;
    let closing: Promise<void> | undefined;
    if (handle !== null) {
      try {
        const rolledBack = handle.inTransaction ? handle.exec("ROLLBACK") : undefined;
        // A server checkpoints its own files (sqld refuses the pragma).
        const checkpointed = this.#remote
          ? undefined
          : handle.get("PRAGMA wal_checkpoint(TRUNCATE)");
        for (const step of [rolledBack, checkpointed]) {
          if (isPromise(step)) step.catch(() => {});
        }
      } catch (error) {
        failure = error;
      }
      try {
        const closed = handle.close();
        if (isPromise(closed)) {
          const settled = closed.catch(() => {});
          if (this.#options.driver.closeHoldsFile === true) closing = settled;
        }
      } catch (error) {
        failure ??= error;
      }
    }
    if (this.#txOwner !== null) {
      this.#txOwner = null;
      this.#mutex.release();
    }
    for (const fail of [...this.#waitingAnswers]) {
      fail(
        new ConnectionBrokenError(
          this.path,
          "the shard file was closed while waiting for the driver",
        ),
      );
    }
    this.#waitingAnswers.clear();
    // Closing a handle rolls its transaction back; a lease still holding one loses it.
    for (const [session, extra] of this.#txHandles) {
      session.lostTransaction = new ConnectionBrokenError(this.path, "the shard file was closed");
      closeQuietly(extra);
    }
    this.#txHandles.clear();
    for (const spare of this.#spareHandles.splice(0)) closeQuietly(spare);
    const release = () => {
      this.#owner?.release();
      this.#owner = null;
    };
    if (failure !== undefined && this.#failure === null) {
      release();
      throw new ShardOpenError(this.path, "closing the handle failed", { cause: failure });
    }
    // A local file's handle still closing (in a worker) still has the file: owned till then
    // (or handed over to this process's next open of it).
    if (closing !== undefined) {
      const entry = { owner: this.#owner, done: closing };
      this.#owner = null;
      closingFiles.set(this.#key, entry);
      return closing.then(() => {
        if (closingFiles.get(this.#key) !== entry) return; // taken over
        closingFiles.delete(this.#key);
        entry.owner?.release();
      });
    }
    release();
  }
}

/** Runs `op` on `handle`: its value, or its promise with an asynchronous driver. */
function dispatch(
  driver: Driver,
  handle: DriverHandle,
  op: Op,
  sql: string,
  params: Params | undefined,
): MaybePromise<OpResult | number> {
  switch (op) {
    case Op.Backup:
      // `sql` carries the target path.
      return driver.backup(handle, sql);
    case Op.Get:
      return handle.get(sql, params);
    case Op.All:
      return handle.all(sql, params);
    case Op.Run:
      return handle.run(sql, params);
    case Op.Values:
      return handle.values(sql, params);
    case Op.Exec:
      return handle.exec(sql);
    case Op.RunMany:
      // One call for many rows: no await and no bookkeeping per row.
      return handle.runMany(sql, params as unknown as readonly Params[]);
    case Op.Cursor: {
      if (handle.iterate === undefined) {
        // No cursor in the driver: every row at once, handed out a page at a time.
        const rows = handle.all(sql, params);
        return isPromise(rows)
          ? rows.then((all) => ({ handle, cursor: memoryCursor(all), sql }))
          : { handle, cursor: memoryCursor(rows), sql };
      }
      const cursor = handle.iterate(sql, params);
      return isPromise(cursor)
        ? cursor.then((opened) => ({ handle, cursor: opened, sql }))
        : { handle, cursor, sql };
    }
    case Op.Page: {
      const request = params as unknown as PageRequest;
      return request.cursor.cursor.next(request.max);
    }
  }
}

/** Rows already read, handed out as a cursor. */
function memoryCursor(rows: Row[]): DriverCursor {
  let at = 0;
  return {
    next(max: number): Row[] {
      const page = rows.slice(at, at + max);
      at += page.length;
      if (page.length < max) rows = [];
      return page;
    },
    close(): void {
      rows = [];
    },
  };
}

function shape(op: Op, value: OpResult | number): OpResult {
  return op === Op.RunMany ? { changes: value as number, lastInsertRowid: 0 } : value as OpResult;
}

function closeQuietly(handle: DriverHandle): void {
  try {
    const closed = handle.close();
    if (isPromise(closed)) closed.catch(() => {});
  } catch {
    // It is broken; closing is best effort.
  }
}

/** A handle's transaction state; false once it is closed (reading it then may throw). */
function safeInTransaction(handle: DriverHandle): boolean {
  try {
    return handle.inTransaction;
  } catch {
    return false;
  }
}

/** A statement as named in messages: its first 80 characters. */
function describeSql(sql: string): string {
  return sql.length > 80 ? `${sql.slice(0, 80)}…` : sql;
}
