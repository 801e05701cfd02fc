/**
 * `ConnectionPool`: async leases over one shard file's SQLite handle.
 *
 * @module
 */

import { type Driver, isPromise } from "../driver/driver.ts";
import { wasmDriver } from "../driver/wasm.ts";
import {
  ForeignLeaseError,
  PoolClosedError,
  type PoolCounts,
  PoolOverloadedError,
  PoolTimeoutError,
} from "../errors.ts";
import { LeaseInternals, leaseInternals, leaseOf, type PooledConnection } from "./connection.ts";
import type { Params, Row } from "../types.ts";
import {
  attachShardFile,
  type HandleStats,
  Session,
  type ShardFile,
  type ShardFileEvent,
} from "./shard_file.ts";
import { type Waiter, WaitQueue } from "./wait_queue.ts";
import {
  type ListenerErrorEvent,
  type QueryEvent,
  QueryMonitor,
  type SlowQueryEvent,
  type StatementTimes,
} from "./query_monitor.ts";

/** Options of a {@link ConnectionPool}. */
export interface PoolOptions {
  /** Hard cap on leases active at once. Default 10. */
  maxConnections?: number;
  /** How long a caller may wait for a lease or a sibling's transaction, in ms. Default 30 000. */
  timeoutMs?: number;
  /** Callers allowed to wait at once; beyond it requests fail with PoolOverloadedError. Default unbounded. */
  maxWaiting?: number;
  /** Report a lease held longer than this (ms), with the stack that took it. Default off. */
  leakDetectionMs?: number;
  /** Prepared statements cached on the shard's handle. Default 128. */
  statementCacheSize?: number;
  /**
   * SQLite's page cache of the shard's handle, in KiB (`PRAGMA cache_size=-N`). Default 2000,
   * SQLite's own. Every handle of the process shares one WebAssembly heap of at most 2 GiB:
   * with hundreds of shards open, lower it (or bound open shards with
   * `ShardManagerOptions.maxOpenShards`).
   */
  cacheSizeKiB?: number;
  /** How often the file is checked for deletion or replacement, in ms. Default 500 (0 = never). */
  fileCheckIntervalMs?: number;
  /** Validate the handle after it has been idle this long, in ms. Default 30 000. */
  idleValidationMs?: number;
  /** `PRAGMA synchronous`: "full" (default) survives power loss; "normal" survives process crashes. */
  synchronous?: "full" | "normal";
  /** A name for messages and stats; defaults to the path. */
  name?: string;
  /**
   * Receives pool events (leaks, double returns, rollbacks on return, handle replacement,
   * slow queries, listener errors). Default: warnings on the console. A listener that
   * throws is reported on the console; the pool carries on.
   */
  onEvent?: (event: PoolEvent) => void;
  /**
   * Called after every statement a lease runs (the user's, the library's own on the
   * user's behalf, and the BEGIN/COMMIT/ROLLBACK of transactions; not health checks),
   * with its SQL, its time, the rows it returned or changed, and its error if it failed.
   * Called synchronously, so keep it cheap; a listener that throws or rejects does not
   * affect the statement (it is reported as a `listener-error` event). Without it (and
   * without `slowQueryMs` and `timeStatements`) statements are not timed at all.
   *
   * @example Log every statement with its time
   * ```ts
   * import { ConnectionPool, type QueryEvent } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * const seen: QueryEvent[] = [];
   * await using pool = new ConnectionPool(`${dir}/s.db`, { onQuery: (e) => seen.push(e) });
   * await pool.withConnection(async (conn) => {
   *   await conn.exec("CREATE TABLE t (x)");
   *   await conn.run("INSERT INTO t VALUES (1), (2)");
   *   await conn.all("SELECT x FROM t");
   * });
   * const [, insert, select] = seen;
   * if (insert?.rows !== 2 || select?.rows !== 2) throw new Error("rows changed, rows read");
   * if (!(select.durationMs >= 0) || select.sql !== "SELECT x FROM t") throw new Error("timed");
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  onQuery?: (event: QueryEvent) => void;
  /**
   * A statement that takes at least this long (ms) is also reported as a `slow-query`
   * event through `onEvent` (counted in `slowQueries`). Default off. Setting it times
   * every statement (two clock reads each).
   *
   * @example Report statements slower than 100 ms
   * ```ts
   * import { ConnectionPool, type PoolEvent } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * const events: PoolEvent[] = [];
   * await using pool = new ConnectionPool(`${dir}/s.db`, {
   *   slowQueryMs: 0, // every statement is "slow": the example need not wait
   *   onEvent: (e) => events.push(e),
   * });
   * await pool.withConnection((conn) => conn.get("SELECT 1 AS one"));
   * const slow = events.find((e) => e.type === "slow-query");
   * if (slow?.type !== "slow-query" || slow.sql !== "SELECT 1 AS one") throw new Error("slow");
   * if (pool.getPoolStats().slowQueries !== 1) throw new Error("counted");
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  slowQueryMs?: number;
  /**
   * Time every statement for the statement-time histogram of `ShardManager.metrics()`,
   * even without `onQuery` or `slowQueryMs` (either of which times statements anyway).
   * Default false: a clock read costs about as much as a pooled point read's overhead.
   */
  timeStatements?: boolean;
  /** The driver that opens handles. Default: `wasmDriver` (node-sqlite3-wasm). */
  driver?: Driver;
  /**
   * `"exclusive"` (default): this process alone uses the file, through one handle held
   * with an exclusive lock. `"shared"`: other isolates and processes use the file at the
   * same time (WAL with shared memory); needs a driver that can share a file
   * (`nativeDriver`), else the constructor throws a TypeError.
   */
  access?: "exclusive" | "shared";
}

/** Options of one {@link ConnectionPool.getConnection} call. */
export interface GetConnectionOptions {
  /**
   * Aborts the lease's work: a caller still waiting leaves the queue and never receives a
   * lease; once leased, a statement waiting for a sibling's transaction stops waiting, and
   * statements sent after the abort (COMMIT included, but not ROLLBACK) reject with the
   * signal's reason, so `conn.transaction(fn)` rolls back. A statement already running
   * finishes.
   */
  signal?: AbortSignal;
  /** Overrides the pool's `timeoutMs` for this lease (its wait and its statements' waits). */
  timeoutMs?: number;
}

/** Events a pool reports. The default handler prints warnings to the console. */
export type PoolEvent =
  | {
    type: "leak";
    path: string;
    leaseId: number;
    heldMs: number;
    stack: string | undefined;
  }
  | { type: "double-return"; path: string; leaseId: number }
  | { type: "rollback-on-return"; path: string; leaseId: number }
  | { type: "forced-close"; path: string; leaseId: number; graceMs: number }
  | SlowQueryEvent
  | ListenerErrorEvent
  | ShardFileEvent;

/** A snapshot of a pool's state. */
export interface PoolStats extends HandleStats {
  /** The shard file. */
  dbPath: string;
  /** The pool's name. */
  name: string;
  /** Leases handed out and not returned. */
  activeConnections: number;
  /** Idle sessions kept for reuse. */
  poolSize: number;
  /** Hard cap on active leases. */
  maxConnections: number;
  /** Sessions created over the pool's life. */
  totalConnectionsCreated: number;
  /** Callers waiting for a lease now. */
  waiting: number;
  /** The default wait timeout, ms. */
  timeoutMs: number;
  /** Leases handed out over the pool's life. */
  totalLeases: number;
  /** Leases that had to wait for a free slot. */
  totalWaited: number;
  /** Total time spent waiting for leases, ms. */
  totalWaitMs: number;
  /** Longest wait for a lease, ms. */
  maxWaitMs: number;
  /** Waits that ended in PoolTimeoutError. */
  timeouts: number;
  /** Waits aborted through their signal. */
  aborted: number;
  /** Requests refused with PoolOverloadedError. */
  overloaded: number;
  /** Returns of a lease already returned. */
  doubleReturns: number;
  /** Leases reported as held past leakDetectionMs. */
  leaksDetected: number;
  /** Leases returned inside an open transaction (rolled back). */
  rollbacksOnReturn: number;
  /** Sessions discarded by closeConnection(). */
  connectionsClosed: number;
  /** Statements run through the pool's leases (ROLLBACKs included). */
  totalStatements: number;
  /** Of those, statements that failed. */
  statementErrors: number;
  /** Statements that took at least `slowQueryMs`. */
  slowQueries: number;
  /** Whether closeAll() was called. */
  closed: boolean;
}

const DEFAULT_MAX_CONNECTIONS = 10;
const DEFAULT_TIMEOUT_MS = 30_000;
/** The default grace period of {@link ConnectionPool.closeAll}, in ms. */
export const DEFAULT_CLOSE_GRACE_MS = 2_000;

/** SQLite's default page cache, in KiB. */
const DEFAULT_CACHE_SIZE_KIB = 2000;

function positiveInteger(value: unknown, name: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw new TypeError(`${name} must be a positive integer, got ${String(value)}`);
  }
  if (value <= 0) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

function positiveMs(value: unknown, name: string, allowZero = false): number {
  if (typeof value !== "number" || Number.isNaN(value)) {
    throw new TypeError(`${name} must be a number of milliseconds, got ${String(value)}`);
  }
  if (value < 0 || (!allowZero && value === 0)) {
    throw new RangeError(`${name} must be ${allowZero ? ">= 0" : "> 0"} ms, got ${value}`);
  }
  return value;
}

function defaultEventHandler(event: PoolEvent): void {
  switch (event.type) {
    case "leak":
      console.warn(
        `shardlite: ${event.path} - lease #${event.leaseId} held for ${
          Math.round(event.heldMs)
        } ms (possible leak); taken at:\n${event.stack ?? "(no stack)"}`,
      );
      break;
    case "double-return":
      console.warn(`shardlite: ${event.path} - lease #${event.leaseId} returned twice (ignored)`);
      break;
    case "rollback-on-return":
      console.warn(
        `shardlite: ${event.path} - lease #${event.leaseId} returned inside an open ` +
          `transaction; it was rolled back`,
      );
      break;
    case "forced-close":
      console.warn(
        `shardlite: ${event.path} - lease #${event.leaseId} still active after the close ` +
          `grace period of ${event.graceMs} ms; it was closed`,
      );
      break;
    case "file-missing":
      console.error(`shardlite: ${event.error.message}`);
      break;
    case "slow-query":
      console.warn(
        `shardlite: ${event.path} - slow statement: ${event.durationMs.toFixed(1)} ms${
          event.rows === undefined ? "" : `, ${event.rows} rows`
        }${event.error === undefined ? "" : " (failed)"}: ${
          event.sql.length > 200 ? `${event.sql.slice(0, 200)}…` : event.sql
        }`,
      );
      break;
    case "listener-error":
      console.error(
        `shardlite: ${event.path} - the ${event.listener} listener threw:`,
        event.error,
      );
      break;
    default:
      break;
  }
}

const openPoolSet = new Set<ConnectionPool>();

/** @internal Every pool of the process that opened its file and is not closed. */
export function openPools(): ConnectionPool[] {
  return [...openPoolSet];
}

let defaultDriver: Driver = wasmDriver;

/**
 * @internal For tests only: the driver of pools whose options name none (`wasmDriver`
 * unless changed). The conformance suite runs the same tests once per driver with it.
 */
export function setDefaultDriverForTests(driver: Driver): void {
  defaultDriver = driver;
}

/** @internal The driver pools use when their options name none (`wasmDriver`). */
export function defaultPoolDriver(): Driver {
  return defaultDriver;
}

/**
 * @internal One pool's figures for `ShardManager.metrics()`: counters (which only grow)
 * and the gauges `activeLeases` and `waiting`.
 */
export interface PoolMetrics {
  /** Leases handed out. */
  leases: number;
  /** Leases that waited for a free slot. */
  leaseWaits: number;
  /** Time spent waiting for leases, ms. */
  leaseWaitMs: number;
  /** Lease waits that timed out. */
  leaseTimeouts: number;
  /** Requests refused with PoolOverloadedError. */
  overloaded: number;
  /** Statements run. */
  statements: number;
  /** Statements that failed. */
  statementErrors: number;
  /** Statements that took at least slowQueryMs. */
  slowQueries: number;
  /** The statement-time histogram; null when statements are not timed. */
  statementTimes: StatementTimes | null;
  /** Broken handles closed (replaced on the next statement), seen while attached. */
  handlesReplaced: number;
  /** Leases active now (a gauge). */
  activeLeases: number;
  /** Callers waiting for a lease now (a gauge). */
  waiting: number;
}

// Set by ConnectionPool's static block, the one place that can read its private state.
let metricsOf: (pool: ConnectionPool) => PoolMetrics;

/**
 * One pool's figures for `ShardManager.metrics()`, for the manager's metrics only: the
 * pool's own snapshot for users is `pool.getPoolStats()`. `mod.ts` does not export it.
 */
export function poolMetrics(pool: ConnectionPool): PoolMetrics {
  return metricsOf(pool);
}

/**
 * A pool of leases over one shard file. With node-sqlite3-wasm every lease is a
 * session over the file's single EXCLUSIVE + WAL handle (shared by every pool of the
 * process on that file); up to `maxConnections` leases are active at once, and a
 * lease that opens a transaction holds the shard until it ends.
 *
 * @example Take a lease, use it, return it
 * ```ts
 * import { ConnectionPool } from "../../mod.ts";
 * const dir = await Deno.makeTempDir();
 * const pool = new ConnectionPool(`${dir}/shard_0.db`, { maxConnections: 5, timeoutMs: 1_000 });
 * const conn = await pool.getConnection();
 * try {
 *   await conn.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)");
 *   await conn.run("INSERT INTO users (name) VALUES (?)", ["John"]);
 * } finally {
 *   await pool.returnConnection(conn);
 * }
 * const stats = pool.getPoolStats();
 * if (stats.poolSize !== 1 || stats.totalConnectionsCreated !== 1) throw new Error("reuse");
 * await pool.closeAll();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class ConnectionPool {
  readonly #path: string;
  readonly #name: string;
  readonly #max: number;
  readonly #timeoutMs: number;
  readonly #maxWaiting: number;
  readonly #leakDetectionMs: number | undefined;
  readonly #fileOptions: {
    driver: Driver;
    access: "exclusive" | "shared";
    statementCacheSize: number;
    cacheSizeKiB: number;
    fileCheckIntervalMs: number;
    idleValidationMs: number;
    synchronous: "full" | "normal";
  };
  readonly #onEvent: (event: PoolEvent) => void;
  readonly #listener = (event: ShardFileEvent) => {
    if (event.type === "handle-replaced") this.#handlesReplaced++;
    this.#onEvent(event);
  };
  #handlesReplaced = 0;
  /** @internal Statement counts and, when asked for, their timing; leases report here. */
  readonly monitor: QueryMonitor;
  #file: ShardFile | null = null;
  readonly #idle: Session[] = [];
  // Active leases as an intrusive list: a Set costs more than the rest of a lease.
  #activeHead: LeaseInternals | null = null;
  #activeCount = 0;
  readonly #waiters: WaitQueue<PooledConnection> = new WaitQueue((waiter, now) =>
    this.#expire(waiter, now)
  );
  #closing = false;
  #closePromise: Promise<void> | null = null;
  #drained: (() => void) | null = null;
  #nextLeaseId = 1;
  readonly #counters = {
    totalConnectionsCreated: 0,
    totalLeases: 0,
    totalWaited: 0,
    totalWaitMs: 0,
    maxWaitMs: 0,
    timeouts: 0,
    aborted: 0,
    overloaded: 0,
    doubleReturns: 0,
    leaksDetected: 0,
    rollbacksOnReturn: 0,
    connectionsClosed: 0,
  };

  /**
   * Creates a pool for `dbPath`. Nothing is opened until the first lease.
   *
   * @throws {TypeError | RangeError} when an argument is invalid (the message names it).
   */
  constructor(dbPath: string, options: PoolOptions = {}) {
    if (typeof dbPath !== "string" || dbPath.trim() === "") {
      throw new TypeError(`dbPath must be a non-empty string, got ${JSON.stringify(dbPath)}`);
    }
    if (dbPath.includes("\0")) throw new TypeError("dbPath must not contain NUL characters");
    if (dbPath === ":memory:" || dbPath.startsWith("file:")) {
      throw new TypeError(
        `dbPath must be a file path (got ${dbPath}); a shard is a file on disk`,
      );
    }
    if (options === null || typeof options !== "object") {
      throw new TypeError("options must be an object");
    }
    this.#path = dbPath;
    this.#name = options.name ?? dbPath;
    this.#max = options.maxConnections === undefined
      ? DEFAULT_MAX_CONNECTIONS
      : positiveInteger(options.maxConnections, "maxConnections");
    this.#timeoutMs = options.timeoutMs === undefined
      ? DEFAULT_TIMEOUT_MS
      : positiveMs(options.timeoutMs, "timeoutMs");
    this.#maxWaiting = options.maxWaiting === undefined
      ? Number.POSITIVE_INFINITY
      : (options.maxWaiting === 0 ? 0 : positiveInteger(options.maxWaiting, "maxWaiting"));
    this.#leakDetectionMs = options.leakDetectionMs === undefined
      ? undefined
      : positiveMs(options.leakDetectionMs, "leakDetectionMs");
    this.#fileOptions = {
      driver: options.driver ?? defaultDriver,
      statementCacheSize: options.statementCacheSize === undefined
        ? 128
        : (options.statementCacheSize === 0
          ? 0
          : positiveInteger(options.statementCacheSize, "statementCacheSize")),
      cacheSizeKiB: options.cacheSizeKiB === undefined
        ? DEFAULT_CACHE_SIZE_KIB
        : positiveInteger(options.cacheSizeKiB, "cacheSizeKiB"),
      fileCheckIntervalMs: options.fileCheckIntervalMs === undefined
        ? 500
        : positiveMs(options.fileCheckIntervalMs, "fileCheckIntervalMs", true),
      idleValidationMs: options.idleValidationMs === undefined
        ? 30_000
        : positiveMs(options.idleValidationMs, "idleValidationMs"),
      synchronous: options.synchronous ?? "full",
      access: checkAccess(options.access, options.driver ?? defaultDriver),
    };
    if (this.#fileOptions.synchronous !== "full" && this.#fileOptions.synchronous !== "normal") {
      throw new TypeError(`synchronous must be "full" or "normal"`);
    }
    const onEvent = options.onEvent ?? defaultEventHandler;
    if (typeof onEvent !== "function") throw new TypeError("onEvent must be a function");
    const path = dbPath;
    // Events come from inside returns and statements: a listener that throws must not
    // leave the pool half way through one.
    this.#onEvent = (event) => {
      try {
        onEvent(event);
      } catch (error) {
        console.error(`shardlite: ${path} - the onEvent listener threw on "${event.type}":`, error);
      }
    };
    if (options.onQuery !== undefined && typeof options.onQuery !== "function") {
      throw new TypeError("onQuery must be a function");
    }
    if (options.timeStatements !== undefined && typeof options.timeStatements !== "boolean") {
      throw new TypeError("timeStatements must be a boolean");
    }
    this.monitor = new QueryMonitor(dbPath, {
      onQuery: options.onQuery,
      slowQueryMs: options.slowQueryMs === undefined
        ? undefined
        : positiveMs(options.slowQueryMs, "slowQueryMs", true),
      timeStatements: options.timeStatements ?? false,
    }, this.#onEvent);
  }

  /**
   * @internal Tells the pool which shard of a manager it serves: its `onQuery` and
   * `slow-query` events then carry `shardId`.
   */
  assignShard(shardId: number): void {
    this.monitor.shardId = shardId;
  }

  /** True when no lease is out, nobody waits and the pool is not closing. */
  get isIdle(): boolean {
    return this.#activeCount === 0 && this.#waiters.size === 0 && !this.#closing;
  }

  /** The shard file's path. */
  get path(): string {
    return this.#path;
  }

  /** The pool's hard cap on active leases. */
  get maxConnections(): number {
    return this.#max;
  }

  /** Leases active now. */
  get active(): number {
    return this.#activeCount;
  }

  /** Idle sessions ready for reuse. */
  get available(): number {
    return this.#idle.length;
  }

  /** Whether {@link closeAll} was called. */
  get closed(): boolean {
    return this.#closing;
  }

  /** @internal Counts for error messages. */
  counts(): PoolCounts {
    return {
      active: this.#activeCount,
      idle: this.#idle.length,
      waiting: this.#waiters.size,
      max: this.#max,
    };
  }

  /** Opens (and owns) the file on first use; later calls return the attached file. */
  #attach(): ShardFile {
    let file = this.#file;
    if (file === null) {
      file = attachShardFile(this.#path, this.#fileOptions);
      file.listeners.add(this.#listener);
      this.#file = file;
      openPoolSet.add(this);
    }
    return file;
  }

  /**
   * Takes a lease. Resolves at once when a slot is free and nobody waits; otherwise
   * waits in FIFO order up to `timeoutMs` (then {@link PoolTimeoutError}), or is refused
   * at once when `maxWaiting` callers already wait ({@link PoolOverloadedError}).
   * Return the lease with {@link returnConnection}, or take it with
   * `await using conn = await pool.getConnection()` and it is returned at scope exit.
   */
  getConnection(options?: GetConnectionOptions): Promise<PooledConnection> {
    if (this.#closing) return Promise.reject(new PoolClosedError(this.#path));
    let file: ShardFile;
    try {
      file = this.#file ?? this.#attach();
    } catch (error) {
      return Promise.reject(error);
    }
    let timeoutMs = this.#timeoutMs;
    let signal: AbortSignal | undefined;
    if (options !== undefined) {
      if (options.timeoutMs !== undefined) {
        try {
          timeoutMs = positiveMs(options.timeoutMs, "timeoutMs");
        } catch (error) {
          return Promise.reject(error);
        }
      }
      signal = options.signal;
      if (signal?.aborted) {
        this.#counters.aborted++;
        return Promise.reject(signal.reason);
      }
    }
    // Fast path: a free slot and nobody ahead; no queue, no timer.
    if (this.#activeCount < this.#max && this.#waiters.size === 0) {
      return Promise.resolve(this.#lease(file, timeoutMs, signal).conn);
    }
    return this.#wait(timeoutMs, signal);
  }

  #lease(file: ShardFile, timeoutMs: number, signal?: AbortSignal): LeaseInternals {
    let session = this.#idle.pop();
    if (session === undefined) {
      session = new Session(++this.#counters.totalConnectionsCreated);
    }
    session.leases++;
    this.#counters.totalLeases++;
    const leakMs = this.#leakDetectionMs;
    const lease = new LeaseInternals(
      this,
      session,
      file,
      this.#nextLeaseId++,
      timeoutMs,
      leakMs === undefined ? undefined : new Error("lease taken here").stack,
      signal,
    );
    this.#activeCount++;
    const head = this.#activeHead;
    if (head !== null) {
      head.prevActive = lease;
      lease.nextActive = head;
    }
    this.#activeHead = lease;
    if (leakMs !== undefined) {
      const timer = setTimeout(() => {
        lease.leakTimer = undefined;
        this.#counters.leaksDetected++;
        this.#onEvent({
          type: "leak",
          path: this.#path,
          leaseId: lease.id,
          heldMs: performance.now() - lease.acquiredAt,
          stack: lease.acquiredStack,
        });
      }, leakMs);
      Deno.unrefTimer(timer);
      lease.leakTimer = timer;
    }
    return lease;
  }

  #wait(
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<PooledConnection> {
    if (this.#waiters.size >= this.#maxWaiting) {
      this.#counters.overloaded++;
      return Promise.reject(
        new PoolOverloadedError({
          path: this.#path,
          maxWaiting: this.#maxWaiting,
          counts: this.counts(),
        }),
      );
    }
    const { promise, resolve, reject } = Promise.withResolvers<PooledConnection>();
    const waiter: Waiter<PooledConnection> = {
      started: Number.NaN, // stamped by the queue
      deadline: Number.NaN,
      timeoutMs,
      resolve,
      reject,
      cleanup: undefined,
      live: true,
      signal,
    };
    if (signal !== undefined) {
      const onAbort = () => {
        if (!this.#waiters.remove(waiter)) return;
        this.#counters.aborted++;
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      waiter.cleanup = () => signal.removeEventListener("abort", onAbort);
    }
    this.#waiters.push(waiter);
    return promise;
  }

  #expire(waiter: Waiter<PooledConnection>, now: number): void {
    this.#counters.timeouts++;
    waiter.cleanup?.();
    waiter.reject(
      new PoolTimeoutError({
        path: this.#path,
        timeoutMs: waiter.timeoutMs,
        waitedMs: now - waiter.started,
        counts: this.counts(),
        waitingFor: "lease",
      }),
    );
  }

  /** Hands free slots to waiters, oldest first. */
  #serveWaiters(): void {
    const file = this.#file;
    if (file === null) return;
    // One clock read serves every hand-off of this pass.
    const now = performance.now();
    while (this.#activeCount < this.#max) {
      const waiter = this.#waiters.shift(now);
      if (waiter === undefined) return;
      waiter.cleanup?.();
      const waited = now - waiter.started;
      this.#counters.totalWaited++;
      this.#counters.totalWaitMs += waited;
      if (waited > this.#counters.maxWaitMs) this.#counters.maxWaitMs = waited;
      waiter.resolve(this.#lease(file, waiter.timeoutMs, waiter.signal).conn);
    }
  }

  /** Why `conn`, which is not one of this pool's leases, cannot be returned to it. */
  #notOurs(conn: unknown, lease: LeaseInternals | undefined): Error {
    if (lease === undefined) {
      return new TypeError(`expected a PooledConnection, got ${String(conn)}`);
    }
    return new ForeignLeaseError(this.#path, lease.file.path);
  }

  /** Ends a lease: rolls back its open transaction (reported), clears its state. */
  #end(lease: LeaseInternals, keepSession: boolean): void {
    if (lease.leakTimer !== undefined) {
      clearTimeout(lease.leakTimer);
      lease.leakTimer = undefined;
    }
    const session = lease.markReleased();
    const { prevActive, nextActive } = lease;
    if (prevActive !== null) prevActive.nextActive = nextActive;
    else this.#activeHead = nextActive;
    if (nextActive !== null) nextActive.prevActive = prevActive;
    lease.prevActive = lease.nextActive = null;
    this.#activeCount--;
    const file = this.#file;
    let keep = keepSession && !this.#closing;
    if (file !== null && this.monitor.rollback(file, session)) {
      this.#counters.rollbacksOnReturn++;
      this.#onEvent({ type: "rollback-on-return", path: this.#path, leaseId: lease.id });
      keep = keep && session.lostTransaction === null;
    }
    if (keep && this.#idle.length < this.#max) this.#idle.push(session);
    else if (!keepSession) this.#counters.connectionsClosed++;
    if (this.#closing) {
      if (this.#activeCount === 0) this.#drained?.();
    } else if (this.#waiters.size > 0) {
      this.#serveWaiters();
    }
  }

  /**
   * Returns a lease for reuse. Returning it twice changes nothing (reported as a
   * `double-return` event); returning another pool's lease rejects with
   * {@link ForeignLeaseError}.
   */
  returnConnection(conn: PooledConnection): Promise<void> {
    const lease = leaseOf(conn);
    if (lease === undefined || lease.pool !== this) {
      return Promise.reject(this.#notOurs(conn, lease));
    }
    if (lease.released) {
      this.#counters.doubleReturns++;
      this.#onEvent({ type: "double-return", path: this.#path, leaseId: lease.id });
      return Promise.resolve();
    }
    this.#end(lease, true);
    return Promise.resolve();
  }

  /**
   * Ends a lease like {@link returnConnection}, but discards its session instead of
   * keeping it for reuse (counted in `connectionsClosed`): the original Shardlite's way
   * to close a connection rather than pool it. An open transaction is rolled back either
   * way, and the shard's handle stays open (every lease shares it). Ending a lease that
   * has already ended changes nothing and, unlike a second `returnConnection`, is not
   * reported.
   */
  closeConnection(conn: PooledConnection): Promise<void> {
    const lease = leaseOf(conn);
    if (lease === undefined || lease.pool !== this) {
      return Promise.reject(this.#notOurs(conn, lease));
    }
    if (lease.released) return Promise.resolve();
    this.#end(lease, false);
    return Promise.resolve();
  }

  /**
   * Takes a lease for `await using`: it is returned when the scope ends.
   *
   * @deprecated A second name for {@link getConnection}, whose leases are returned at
   * the end of an `await using` scope as well: write
   * `await using conn = await pool.getConnection()`. Kept working.
   *
   * @example
   * ```ts
   * import { ConnectionPool } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * await using pool = new ConnectionPool(`${dir}/s.db`);
   * {
   *   await using conn = await pool.getConnectionContext();
   *   await conn.exec("CREATE TABLE t (x)");
   * }
   * if (pool.getPoolStats().activeConnections !== 0) throw new Error("returned at scope exit");
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  getConnectionContext(options?: GetConnectionOptions): Promise<PooledConnection> {
    return this.getConnection(options);
  }

  /** Runs `fn` with a lease and returns it afterwards, even when `fn` throws. */
  withConnection<T>(
    fn: (conn: PooledConnection) => T | Promise<T>,
    options?: GetConnectionOptions,
  ): Promise<T> {
    // Fast path: a free slot, nobody waiting, no options: the lease is taken at once and
    // no await is spent on handing it out.
    const file = this.#file;
    if (
      options === undefined && file !== null && !this.#closing &&
      this.#activeCount < this.#max && this.#waiters.size === 0
    ) {
      const lease = this.#lease(file, this.#timeoutMs);
      let result: T | Promise<T>;
      try {
        result = fn(lease.conn);
      } catch (error) {
        if (!lease.released) this.#end(lease, true);
        return Promise.reject(error);
      }
      if (!isPromise(result)) {
        if (!lease.released) this.#end(lease, true);
        return Promise.resolve(result);
      }
      return result.then((value) => {
        if (!lease.released) this.#end(lease, true);
        return value;
      }, (error: unknown) => {
        if (!lease.released) this.#end(lease, true);
        throw error;
      });
    }
    return this.#withConnectionSlow(fn, options);
  }

  /**
   * @internal One query on a lease taken and returned around it: its rows when a lease is
   * free and the driver answers at once (no promise at all), else a promise. Throws (or
   * rejects) like the query.
   */
  allOnce(sql: string, params?: Params): Row[] | Promise<Row[]> {
    const file = this.#file;
    if (
      file === null || this.#closing || this.#activeCount >= this.#max || this.#waiters.size > 0
    ) {
      return this.withConnection((conn) => conn.all(sql, params));
    }
    const lease = this.#lease(file, this.#timeoutMs);
    let rows: Row[] | Promise<Row[]>;
    try {
      rows = lease.allNow(sql, params);
    } catch (error) {
      if (!lease.released) this.#end(lease, true);
      throw error;
    }
    if (!isPromise(rows)) {
      if (!lease.released) this.#end(lease, true);
      return rows;
    }
    return rows.then((found) => {
      if (!lease.released) this.#end(lease, true);
      return found;
    }, (error: unknown) => {
      if (!lease.released) this.#end(lease, true);
      throw error;
    });
  }

  async #withConnectionSlow<T>(
    fn: (conn: PooledConnection) => T | Promise<T>,
    options?: GetConnectionOptions,
  ): Promise<T> {
    const conn = await this.getConnection(options);
    try {
      return await fn(conn);
    } finally {
      const lease = leaseInternals(conn);
      if (!lease.released) this.#end(lease, true);
    }
  }

  /**
   * Closes the pool: new requests get {@link PoolClosedError}, waiters are rejected,
   * active leases get `graceMs` (default {@link DEFAULT_CLOSE_GRACE_MS}) to be
   * returned and are then closed. The last pool on a file checkpoints the WAL,
   * finalizes statements, closes the handle and releases the owner lock, so the file
   * can be moved or deleted right after. Idempotent.
   */
  closeAll(options?: { graceMs?: number }): Promise<void> {
    if (this.#closePromise !== null) return this.#closePromise;
    const graceMs = options?.graceMs === undefined
      ? DEFAULT_CLOSE_GRACE_MS
      : positiveMs(options.graceMs, "graceMs", true);
    this.#closing = true;
    this.#closePromise = this.#close(graceMs);
    return this.#closePromise;
  }

  async #close(graceMs: number): Promise<void> {
    for (const waiter of this.#waiters.drain()) {
      waiter.cleanup?.();
      waiter.reject(new PoolClosedError(this.#path, "the pool closed while the caller waited"));
    }
    if (this.#activeCount > 0 && graceMs > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#drained = resolve;
        timer = setTimeout(resolve, graceMs);
      });
      clearTimeout(timer);
      this.#drained = null;
    }
    for (let lease = this.#activeHead; lease !== null; lease = this.#activeHead) {
      this.#onEvent({ type: "forced-close", path: this.#path, leaseId: lease.id, graceMs });
      this.#end(lease, false);
    }
    this.#idle.length = 0;
    openPoolSet.delete(this);
    const file = this.#file;
    if (file !== null) {
      file.listeners.delete(this.#listener);
      // An asynchronous local handle (shard workers): done once it has closed.
      await file.detach();
    }
  }

  /** Closes the pool at the end of an `await using` scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.closeAll();
  }

  /**
   * A snapshot of the pool: the original Shardlite's fields (`activeConnections`,
   * `poolSize`, `maxConnections`, `totalConnectionsCreated`) plus waits, errors and the
   * shard handle's counters.
   */
  getPoolStats(): PoolStats {
    const handle: HandleStats = this.#file?.stats() ?? {
      handleOpen: false,
      handlesOpened: 0,
      handlesReplaced: 0,
      handleErrors: 0,
      staleLocksCleared: 0,
      transactionWaits: 0,
      busyRetries: 0,
      transactionHandles: 0,
      cachedStatements: 0,
      attachedPools: 0,
    };
    return {
      ...handle,
      dbPath: this.#path,
      name: this.#name,
      activeConnections: this.#activeCount,
      poolSize: this.#idle.length,
      maxConnections: this.#max,
      waiting: this.#waiters.size,
      timeoutMs: this.#timeoutMs,
      ...this.#counters,
      totalStatements: this.monitor.statements,
      statementErrors: this.monitor.errors,
      slowQueries: this.monitor.slowQueries,
      closed: this.#closing,
    };
  }

  static {
    metricsOf = (pool) => pool.#metrics();
  }

  /** The pool's figures for `ShardManager.metrics()` (see {@link poolMetrics}). */
  #metrics(): PoolMetrics {
    const counters = this.#counters;
    const monitor = this.monitor;
    return {
      leases: counters.totalLeases,
      leaseWaits: counters.totalWaited,
      leaseWaitMs: counters.totalWaitMs,
      leaseTimeouts: counters.timeouts,
      overloaded: counters.overloaded,
      statements: monitor.statements,
      statementErrors: monitor.errors,
      slowQueries: monitor.slowQueries,
      statementTimes: monitor.times,
      handlesReplaced: this.#handlesReplaced,
      activeLeases: this.#activeCount,
      waiting: this.#waiters.size,
    };
  }
}

/** Validates `access` against what the driver can do. */
export function checkAccess(access: unknown, driver: Driver): "exclusive" | "shared" {
  if (access === undefined || access === "exclusive") return "exclusive";
  if (access !== "shared") {
    throw new TypeError(
      `access must be "exclusive" or "shared", got ${JSON.stringify(access) ?? String(access)}`,
    );
  }
  if (!driver.canShare) {
    throw new TypeError(
      `access "shared" needs a driver that can share a file between processes; ` +
        `${driver.name} cannot (its files are locked by one handle of one process). ` +
        `Use nativeDriver for shared access, or access "exclusive"`,
    );
  }
  return "shared";
}
