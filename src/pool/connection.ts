/**
 * A lease: one session over the shard's handle, handed out by a {@link ConnectionPool}.
 *
 * @module
 */

import { LeaseReleasedError, PoolTimeoutError, QueryError } from "../errors.ts";
import { isPromise, type PositionalRows } from "../driver/driver.ts";
import { assertSingleStatement } from "../sql/single_statement.ts";
import type { Params, Row, RunResult, SqlValue } from "../types.ts";
import {
  Op,
  type PageRequest,
  type Session,
  type ShardCursor,
  type ShardFile,
  type TimeoutReporter,
} from "./shard_file.ts";
import { yieldToEventLoop } from "./yield.ts";
import type { ConnectionPool } from "./pool.ts";
import type { QueryMonitor } from "./query_monitor.ts";

/**
 * The rows of one `execute()`, read positionally as the original Shardlite's
 * `fetchone()`/`fetchall()` do. Every column is kept in order, duplicate names included.
 */
export class Cursor {
  /** Column names in order; empty for statements that return no rows. */
  readonly columns: readonly string[];
  /** Rows changed by a write statement; -1 for a query. */
  readonly rowcount: number;
  /** The rowid of the last inserted row, for a write statement; undefined for a query. */
  readonly lastrowid: number | bigint | undefined;
  #rows: SqlValue[][];
  #position = 0;

  /** Creates a cursor over rows already read (Shardlite creates these). */
  constructor(
    columns: readonly string[],
    rows: SqlValue[][],
    rowcount: number,
    lastrowid: number | bigint | undefined,
  ) {
    this.columns = columns;
    this.#rows = rows;
    this.rowcount = rowcount;
    this.lastrowid = lastrowid;
  }

  /** The next row, or undefined when none is left. */
  fetchone(): SqlValue[] | undefined {
    return this.#rows[this.#position++];
  }

  /** Up to `size` next rows. */
  fetchmany(size = 1): SqlValue[][] {
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new RangeError(`fetchmany(size): size must be a non-negative integer, got ${size}`);
    }
    const rows = this.#rows.slice(this.#position, this.#position + size);
    this.#position += rows.length;
    return rows;
  }

  /** Every row not yet fetched. */
  fetchall(): SqlValue[][] {
    const rows = this.#rows.slice(this.#position);
    this.#position = this.#rows.length;
    return rows;
  }
}

const EMPTY_CURSOR = new Cursor([], [], -1, undefined);

type MaybeCursor = ShardCursor | Promise<ShardCursor>;

/** Statements an aborted lease may still send: they undo, never write. */
const UNDOING = /^\s*(?:ROLLBACK|RELEASE)\b/i;

/** Ends a stream's query; an error there changes nothing for the caller (the rows are read). */
function closeQuietly(stream: ShardCursor): void {
  try {
    const closed = stream.cursor.close();
    if (isPromise(closed)) closed.catch(() => {});
  } catch {
    // Finalizing reports the statement's last error again; it was reported already.
  }
}

// The method behind each operation, for errors; exec() takes scripts and is not checked.
const CALLS: Readonly<Record<Op, string>> = {
  [Op.Run]: "conn.run()",
  [Op.All]: "conn.all()",
  [Op.Get]: "conn.get()",
  [Op.Values]: "conn.execute()",
  [Op.Exec]: "conn.exec()",
  [Op.RunMany]: "conn.runMany()",
  [Op.Backup]: "conn.backupTo()",
  [Op.Cursor]: "conn.iterate()",
  [Op.Page]: "conn.iterate()",
};

/** Options of {@link PooledConnection.iterate}. */
export interface IterateOptions {
  /** Rows read from SQLite at a time (default {@link DEFAULT_PAGE_SIZE}). */
  readonly pageSize?: number | undefined;
}

/** Rows a stream reads at a time unless told otherwise. */
export const DEFAULT_PAGE_SIZE = 256;

/** Checks a `pageSize` option. */
export function checkPageSize(value: unknown): number {
  if (value === undefined) return DEFAULT_PAGE_SIZE;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`pageSize must be a positive integer, got ${String(value)}`);
  }
  return value;
}

/**
 * The library's side of one lease: its state, the pool's list of active leases, leak
 * detection, the statement path, streams read page by page, and the errors the shard file
 * reports for it (it is the {@link TimeoutReporter} of the lease's statements). A
 * {@link PooledConnection} keeps it in a private field; the library reaches it through
 * {@link leaseInternals} and {@link leaseOf}, which `mod.ts` does not export.
 */
export class LeaseInternals implements TimeoutReporter {
  /** The pool that handed the lease out. */
  readonly pool: ConnectionPool;
  /** The session under the lease. */
  readonly session: Session;
  /** The shard file the lease works on. */
  readonly file: ShardFile;
  /** The lease's number within its pool. */
  readonly id: number;
  /** How long the lease's statements wait for a sibling's transaction or an answer. */
  readonly timeoutMs: number;
  /** The signal the lease was taken with (see `GetConnectionOptions.signal`). */
  readonly abortSignal: AbortSignal | undefined;
  /** When the lease was taken (performance.now()), when leak detection is on. */
  readonly acquiredAt: number;
  /** The stack that took the lease, when leak detection is on. */
  readonly acquiredStack: string | undefined;
  /** Whether the lease has been returned or closed. */
  released = false;
  /** The rows of the last `execute()`, read by `fetchone()` and its siblings. */
  cursor: Cursor = EMPTY_CURSOR;
  /** Streams open on the lease, finalized when it ends. */
  streams: Set<ShardCursor> | null = null;
  /** Savepoints of nested `transaction()` calls open now. */
  savepoints = 0;
  /** The pool's active-lease list (no Set: it is on the hot path). */
  prevActive: LeaseInternals | null = null;
  /** The pool's active-lease list. */
  nextActive: LeaseInternals | null = null;
  /** The leak-detection timer, when on. */
  leakTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  #conn: PooledConnection | undefined = undefined;

  /** Makes a lease (the pool calls this). */
  constructor(
    pool: ConnectionPool,
    session: Session,
    file: ShardFile,
    id: number,
    timeoutMs: number,
    acquiredStack: string | undefined,
    signal?: AbortSignal,
  ) {
    this.abortSignal = signal;
    this.pool = pool;
    this.session = session;
    this.file = file;
    this.id = id;
    this.timeoutMs = timeoutMs;
    this.acquiredStack = acquiredStack;
    // A clock read costs as much as the rest of a lease: only leak detection needs it.
    this.acquiredAt = acquiredStack === undefined ? 0 : performance.now();
  }

  /**
   * The lease its user holds, made on first use: a query the pool runs on a lease of its
   * own (`pool.allOnce`, the point-read path) never needs one.
   */
  get conn(): PooledConnection {
    return this.#conn ??= new PooledConnection(this);
  }

  /** Ends the lease; the pool calls this. */
  markReleased(): Session {
    this.released = true;
    this.cursor = EMPTY_CURSOR;
    if (this.streams !== null) {
      // A stream still open when its lease ends: its statement is finalized now.
      for (const stream of this.streams) closeQuietly(stream);
      this.streams = null;
    }
    return this.session;
  }

  /** Opens a stream read page by page (the router's cross-shard merge). */
  openStream(sql: string, params: Params | undefined): Promise<ShardCursor> {
    return Promise.resolve(this.statement(Op.Cursor, sql, params) as MaybeCursor).then(
      (stream) => {
        (this.streams ??= new Set()).add(stream);
        return stream;
      },
    );
  }

  /** The next page of a stream opened with {@link openStream}. */
  readPage(stream: ShardCursor, max: number): Promise<Row[]> {
    try {
      const request: PageRequest = { cursor: stream, max };
      return Promise.resolve(
        this.statement(Op.Page, stream.sql, request as unknown as Params) as
          | Row[]
          | Promise<Row[]>,
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Ends a stream opened with {@link openStream}. */
  closeStream(stream: ShardCursor): void {
    if (this.streams?.delete(stream)) closeQuietly(stream);
  }

  /**
   * A statement's answer as a promise: an already-settled one on a synchronous driver
   * (no extra turn of the event loop), the driver's own on an asynchronous one.
   */
  settled<T>(op: Op, sql: string, params: Params | undefined): Promise<T> {
    try {
      const result = this.statement(op, sql, params) as T | Promise<T>;
      return isPromise(result) ? result : Promise.resolve(result);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** A query's rows, or a promise of them with an asynchronous driver (`pool.allOnce`). */
  allNow(sql: string, params?: Params): Row[] | Promise<Row[]> {
    return this.statement(Op.All, sql, params) as Row[] | Promise<Row[]>;
  }

  /** Runs one statement of the lease: checked, counted (or timed), then sent to the file. */
  statement(op: Op, sql: string, params: Params | undefined): unknown {
    if (this.released) throw new LeaseReleasedError(this.file.path, this.id);
    if (typeof sql !== "string") {
      throw new TypeError(`sql must be a string, got ${typeof sql}`);
    }
    // Checked before anything reaches the driver, which would run only the first statement.
    if (op !== Op.Exec && op !== Op.Page) assertSingleStatement(sql, CALLS[op]);
    const signal = this.abortSignal;
    if (signal !== undefined && signal.aborted && !UNDOING.test(sql)) throw signal.reason;
    // A page of a query being iterated is not a statement of its own: the query counted.
    if (op === Op.Page) {
      return this.file.statement(this.session, op, sql, params, this.timeoutMs, this);
    }
    const monitor = this.pool.monitor;
    if (monitor.timing) return this.#timed(monitor, op, sql, params);
    // Untimed: one increment, no clock read, nothing allocated unless the answer is a promise.
    monitor.statements++;
    let result: unknown;
    try {
      result = this.file.statement(this.session, op, sql, params, this.timeoutMs, this);
    } catch (error) {
      monitor.errors++;
      throw error;
    }
    return isPromise(result) ? result.then(undefined, monitor.countError) : result;
  }

  /** A statement timed for `onQuery`, `slowQueryMs` or the statement-time histogram. */
  #timed(monitor: QueryMonitor, op: Op, sql: string, params: Params | undefined): unknown {
    const started = performance.now();
    let result: unknown;
    try {
      result = this.file.statement(this.session, op, sql, params, this.timeoutMs, this);
    } catch (error) {
      monitor.failed(sql, started, error);
      throw error;
    }
    if (!isPromise(result)) {
      monitor.done(op, sql, started, result);
      return result;
    }
    return result.then((value) => {
      monitor.done(op, sql, started, value);
      return value;
    }, (error: unknown) => {
      monitor.failed(sql, started, error);
      throw error;
    });
  }

  /** The error for a statement that resumes after its lease was returned. */
  releasedError(): LeaseReleasedError | undefined {
    return this.released ? new LeaseReleasedError(this.file.path, this.id) : undefined;
  }

  /** The error for an asynchronous driver that did not answer in time. */
  answerTimeout(waitedMs: number, what: string): PoolTimeoutError {
    return new PoolTimeoutError({
      path: this.file.path,
      timeoutMs: this.timeoutMs,
      waitedMs,
      counts: this.pool.counts(),
      waitingFor: "driver",
      detail: `lease #${this.id} got no answer to ${what}`,
    });
  }

  /** The error for a statement that waited too long for a transaction. */
  transactionTimeout(waitedMs: number): PoolTimeoutError {
    const owner = this.file.transactionOwner;
    return new PoolTimeoutError({
      path: this.file.path,
      timeoutMs: this.timeoutMs,
      waitedMs,
      counts: this.pool.counts(),
      waitingFor: "transaction",
      detail: `lease #${this.id} waited for ${
        owner === null ? "the transaction lock" : `session #${owner.id}`
      } (a lease used while another lease of the same task holds a transaction deadlocks)`,
    });
  }
}

// Set by PooledConnection's static block, the one place that can read its private field.
let internalsOf: (conn: PooledConnection) => LeaseInternals;
let brandedInternals: (value: unknown) => LeaseInternals | undefined;

/**
 * The internals of `conn`, for the library (the pool, the router's streams); `mod.ts` does
 * not export it. Throws a TypeError for an object that is not a lease.
 */
export function leaseInternals(conn: PooledConnection): LeaseInternals {
  return internalsOf(conn);
}

/** The internals of `value` when it is a lease made by a pool, else undefined. */
export function leaseOf(value: unknown): LeaseInternals | undefined {
  return brandedInternals(value);
}

/**
 * A lease on a pool: a session over the shard's single handle. Statement methods are
 * async: a statement waits (without blocking the event loop) while another session
 * holds a transaction. Return it with `pool.returnConnection(conn)`, or let
 * `await using` do it. Every statement method but `exec()` runs exactly one statement:
 * SQL holding more throws `MultipleStatementsError` before anything runs.
 *
 * @example Use a lease and return it at scope exit
 * ```ts
 * import { ConnectionPool } from "../../mod.ts";
 * const dir = await Deno.makeTempDir();
 * await using pool = new ConnectionPool(`${dir}/shard_0.db`);
 * {
 *   await using conn = await pool.getConnection();
 *   await conn.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)");
 *   await conn.run("INSERT INTO users (name) VALUES (?)", ["John"]);
 *   const row = await conn.get("SELECT name FROM users WHERE id = ?", [1]);
 *   if (row?.name !== "John") throw new Error("expected John");
 * }
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class PooledConnection {
  readonly #internal: LeaseInternals;

  static {
    internalsOf = (conn) => conn.#internal;
    brandedInternals = (value) =>
      typeof value === "object" && value !== null && #internal in value
        ? value.#internal
        : undefined;
  }

  /** @internal Leases are made by {@link ConnectionPool.getConnection}. */
  constructor(internal: LeaseInternals) {
    this.#internal = internal;
  }

  /** The lease's number within its pool (1, 2, ...). */
  get id(): number {
    return this.#internal.id;
  }

  /** The pool that handed the lease out. */
  get pool(): ConnectionPool {
    return this.#internal.pool;
  }

  /** The shard file this lease works on. */
  get path(): string {
    return this.#internal.file.path;
  }

  /** The session under the lease (sessions are reused across leases). */
  get sessionId(): number {
    return this.#internal.session.id;
  }

  /** Whether the lease has been returned or closed. */
  get released(): boolean {
    return this.#internal.released;
  }

  /** Whether this lease's session holds the shard's open transaction. */
  get inTransaction(): boolean {
    const lease = this.#internal;
    return lease.file.ownsTransaction(lease.session);
  }

  /**
   * Runs a query and yields its rows one by one, reading `pageSize` rows from SQLite at a
   * time and giving the event loop a turn between pages, so memory stays bounded however
   * many rows there are. Breaking out of the loop (or `return()`) ends the query; so does
   * returning the lease. The stream is not a snapshot: a row another lease commits on
   * this shard meanwhile may or may not be seen, as SQLite says for a connection's own
   * changes. `T` names the row's shape (default {@link Row}).
   *
   * @example
   * ```ts
   * import { ConnectionPool } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * await using pool = new ConnectionPool(`${dir}/s.db`);
   * await pool.withConnection(async (conn) => {
   *   await conn.exec("CREATE TABLE t (x INTEGER)");
   *   await conn.runMany("INSERT INTO t VALUES (?)", Array.from({ length: 1000 }, (_, i) => [i]));
   *   let sum = 0;
   *   for await (const row of conn.iterate<{ x: number }>("SELECT x FROM t", [], { pageSize: 100 })) {
   *     sum += row.x;
   *   }
   *   if (sum !== 499_500) throw new Error("every row once");
   * });
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  iterate<T extends object = Row>(
    sql: string,
    params?: Params,
    options?: IterateOptions,
  ): AsyncIterableIterator<T> {
    const pageSize = checkPageSize(options?.pageSize);
    return this.#stream(sql, params, pageSize) as AsyncIterableIterator<T>;
  }

  async *#stream(
    sql: string,
    params: Params | undefined,
    pageSize: number,
  ): AsyncGenerator<Row, void, undefined> {
    const lease = this.#internal;
    const stream = await (lease.statement(Op.Cursor, sql, params) as ShardCursor);
    (lease.streams ??= new Set()).add(stream);
    try {
      const request: PageRequest = { cursor: stream, max: pageSize };
      for (;;) {
        const page = await (lease.statement(Op.Page, sql, request as unknown as Params) as
          | Row[]
          | Promise<Row[]>);
        for (let i = 0; i < page.length; i++) yield page[i] as Row;
        if (page.length < pageSize) return;
        await yieldToEventLoop();
      }
    } finally {
      if (lease.streams?.delete(stream)) closeQuietly(stream);
    }
  }

  /**
   * Runs a statement that returns no rows.
   *
   * @example
   * ```ts
   * import { ConnectionPool } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * await using pool = new ConnectionPool(`${dir}/s.db`);
   * await pool.withConnection(async (conn) => {
   *   await conn.exec("CREATE TABLE t (x)");
   *   const { changes } = await conn.run("INSERT INTO t VALUES (?), (?)", [1, 2]);
   *   if (changes !== 2) throw new Error("two rows expected");
   * });
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  run(sql: string, params?: Params): Promise<RunResult> {
    return this.#internal.settled<RunResult>(Op.Run, sql, params);
  }

  /**
   * Runs one statement once per parameter set, in a single call (no await per row).
   * Use it inside a transaction for bulk writes; returns the total rows changed.
   *
   * @example
   * ```ts
   * import { ConnectionPool } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * await using pool = new ConnectionPool(`${dir}/s.db`);
   * await pool.withConnection(async (conn) => {
   *   await conn.exec("CREATE TABLE t (x)");
   *   const changes = await conn.transaction((c) =>
   *     c.runMany("INSERT INTO t VALUES (?)", [[1], [2], [3]])
   *   );
   *   if (changes !== 3) throw new Error("three rows expected");
   * });
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  async runMany(sql: string, paramSets: readonly Params[]): Promise<number> {
    if (!Array.isArray(paramSets)) throw new TypeError("runMany: paramSets must be an array");
    const result =
      await (this.#internal.statement(Op.RunMany, sql, paramSets as unknown as Params) as
        | RunResult
        | Promise<RunResult>);
    return result.changes;
  }

  /**
   * Runs a query and returns every row as an object keyed by column name. `T` names the
   * row's shape (default {@link Row}); it is not checked against the database.
   *
   * @example
   * ```ts
   * import { ConnectionPool } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * await using pool = new ConnectionPool(`${dir}/s.db`);
   * await pool.withConnection(async (conn) => {
   *   await conn.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)");
   *   await conn.run("INSERT INTO users (name) VALUES (?)", ["Ada"]);
   *   const users = await conn.all<{ id: number; name: string }>("SELECT * FROM users");
   *   const first: string | undefined = users[0]?.name;
   *   if (first !== "Ada") throw new Error("expected Ada");
   * });
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  all<T extends object = Row>(sql: string, params?: Params): Promise<T[]> {
    return this.#internal.settled<T[]>(Op.All, sql, params);
  }

  /** Runs a query and returns its first row (typed as `T`, default {@link Row}), or undefined. */
  get<T extends object = Row>(sql: string, params?: Params): Promise<T | undefined> {
    return this.#internal.settled<T | undefined>(Op.Get, sql, params);
  }

  /** Runs one or more `;`-separated statements without parameters. */
  async exec(sql: string): Promise<void> {
    await this.#internal.statement(Op.Exec, sql, undefined);
  }

  /**
   * Runs a statement and returns a {@link Cursor} over its rows as arrays (every column
   * in order); also remembered for {@link fetchone} / {@link fetchall}.
   *
   * @example Positional rows keep duplicate column names
   * ```ts
   * import { ConnectionPool } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * await using pool = new ConnectionPool(`${dir}/s.db`);
   * await pool.withConnection(async (conn) => {
   *   await conn.execute("SELECT 1 AS a, 2 AS a");
   *   const row = conn.fetchone();
   *   if (row?.[0] !== 1 || row?.[1] !== 2) throw new Error("both columns expected");
   * });
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  async execute(sql: string, params?: Params): Promise<Cursor> {
    const lease = this.#internal;
    if (lease.released) throw new LeaseReleasedError(lease.file.path, lease.id);
    const result = await (lease.statement(Op.Values, sql, params) as
      | PositionalRows
      | Promise<PositionalRows>);
    const cursor = result.columns.length > 0
      ? new Cursor(result.columns, result.rows, -1, undefined)
      : new Cursor([], [], result.changes ?? 0, result.lastInsertRowid);
    lease.cursor = cursor;
    return cursor;
  }

  /** The next row of the last {@link execute}, or undefined. */
  fetchone(): SqlValue[] | undefined {
    const lease = this.#internal;
    if (lease.released) throw new LeaseReleasedError(lease.file.path, lease.id);
    return lease.cursor.fetchone();
  }

  /** The remaining rows of the last {@link execute}. */
  fetchall(): SqlValue[][] {
    const lease = this.#internal;
    if (lease.released) throw new LeaseReleasedError(lease.file.path, lease.id);
    return lease.cursor.fetchall();
  }

  /** Up to `size` more rows of the last {@link execute}. */
  fetchmany(size?: number): SqlValue[][] {
    const lease = this.#internal;
    if (lease.released) throw new LeaseReleasedError(lease.file.path, lease.id);
    return lease.cursor.fetchmany(size);
  }

  /** Commits this session's open transaction; a no-op when it has none. */
  async commit(): Promise<void> {
    const lease = this.#internal;
    if (lease.released) throw new LeaseReleasedError(lease.file.path, lease.id);
    if (lease.session.lostTransaction !== null) throw lease.session.lostTransaction;
    if (this.inTransaction) await this.exec("COMMIT");
  }

  /**
   * Writes a consistent copy of the shard's database to `target` (a missing or empty file)
   * through the driver (`VACUUM INTO` with node-sqlite3-wasm, SQLite's online backup with
   * node:sqlite), WAL content included. Waits like a statement for a sibling's
   * transaction; refused inside this lease's own transaction.
   */
  async backupTo(target: string): Promise<void> {
    const lease = this.#internal;
    if (lease.released) throw new LeaseReleasedError(lease.file.path, lease.id);
    if (this.inTransaction) {
      throw new QueryError(
        lease.file.path,
        "backup",
        new Error("a backup cannot run inside a transaction; commit or roll back first"),
      );
    }
    await lease.file.statement(lease.session, Op.Backup, target, undefined, lease.timeoutMs, lease);
  }

  /** Rolls back this session's open transaction; a no-op when it has none. */
  rollback(): Promise<void> {
    const lease = this.#internal;
    if (lease.released) return Promise.reject(new LeaseReleasedError(lease.file.path, lease.id));
    lease.savepoints = 0;
    lease.pool.monitor.rollback(lease.file, lease.session);
    return Promise.resolve();
  }

  /**
   * Runs `fn` in a transaction (`BEGIN IMMEDIATE` … `COMMIT`), rolling back when it
   * throws. Nested calls use savepoints. Other sessions' statements wait until it ends,
   * so keep it short.
   *
   * @example
   * ```ts
   * import { ConnectionPool } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * await using pool = new ConnectionPool(`${dir}/s.db`);
   * await pool.withConnection(async (conn) => {
   *   await conn.exec("CREATE TABLE t (x)");
   *   await conn.transaction(async (tx) => {
   *     await tx.run("INSERT INTO t VALUES (1)");
   *   });
   *   await conn.transaction(async (tx) => {
   *     await tx.run("INSERT INTO t VALUES (2)");
   *     throw new Error("changed my mind");
   *   }).catch(() => {});
   *   const row = await conn.get("SELECT count(*) AS n FROM t");
   *   if (row?.n !== 1) throw new Error("the second insert must be rolled back");
   * });
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  async transaction<T>(fn: (conn: this) => T | Promise<T>): Promise<T> {
    const lease = this.#internal;
    if (lease.released) throw new LeaseReleasedError(lease.file.path, lease.id);
    if (this.inTransaction) return await this.#savepoint(fn);
    await this.exec("BEGIN IMMEDIATE");
    try {
      const result = await fn(this);
      if (lease.session.lostTransaction !== null) throw lease.session.lostTransaction;
      await this.exec("COMMIT");
      return result;
    } catch (error) {
      if (!lease.released) lease.pool.monitor.rollback(lease.file, lease.session);
      throw error;
    }
  }

  async #savepoint<T>(fn: (conn: this) => T | Promise<T>): Promise<T> {
    const lease = this.#internal;
    const name = `shardlite_sp_${++lease.savepoints}`;
    await this.exec(`SAVEPOINT ${name}`);
    try {
      const result = await fn(this);
      await this.exec(`RELEASE ${name}`);
      return result;
    } catch (error) {
      if (this.inTransaction) await this.exec(`ROLLBACK TO ${name}; RELEASE ${name}`);
      throw error;
    } finally {
      lease.savepoints--;
    }
  }

  /**
   * Returns the lease to its pool.
   *
   * @deprecated A second name for `pool.returnConnection(conn)`: use that, or take the
   * lease with `await using conn = await pool.getConnection()` (or `pool.withConnection(fn)`)
   * and it is returned for you. Kept working.
   */
  release(): Promise<void> {
    return this.#internal.pool.returnConnection(this);
  }

  /** Returns the lease to its pool at the end of an `await using` scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#internal.pool.returnConnection(this);
  }
}
