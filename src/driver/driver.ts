/**
 * The driver interface: one SQLite handle, and everything that differs between SQLite
 * engines. The pool talks to handles only through this interface, so another driver
 * (Deno's native `node:sqlite`, a libSQL server, a worker) slots in without touching
 * the layers above.
 *
 * Every handle method may return its value or a promise of it. A synchronous driver
 * returns values, and the pool adds no `await` on that path; an asynchronous one
 * returns promises, and the pool tracks which session owns the transaction from the
 * statements the session sends (`BEGIN`, `SAVEPOINT`, `COMMIT`, ...), so no sibling's
 * statement slips into another session's transaction while one is in flight.
 *
 * @module
 */

import type { Params, Row, RunResult, SqlValue } from "../types.ts";

/** A value, or a promise of it. */
export type MaybePromise<T> = T | Promise<T>;

/** Rows as arrays, in column order, with the statement's column names (duplicates kept). */
export interface PositionalRows {
  /** Column names in order, duplicates included. */
  columns: string[];
  /** Each row's values, in column order. */
  rows: SqlValue[][];
  /** For a statement without result columns: rows it changed. */
  changes?: number;
  /** For a statement without result columns: the last inserted rowid. */
  lastInsertRowid?: number | bigint;
}

/** Options for opening a handle. */
export interface OpenOptions {
  /** Create the file when it does not exist. When false, a missing file is an error. */
  create: boolean;
  /** How many prepared statements to keep per handle. */
  statementCacheSize: number;
}

/** How a shard's handle is set up right after it is opened. */
export interface ConfigureOptions {
  /**
   * `"exclusive"`: this process alone uses the file (locks held for the handle's life).
   * `"shared"`: other handles and processes use it at once (WAL with shared memory).
   */
  access: "exclusive" | "shared";
  /** `PRAGMA synchronous`: "full" survives power loss, "normal" only process crashes. */
  synchronous: "full" | "normal";
  /** The page cache, in KiB. */
  cacheSizeKiB: number;
}

/** One open SQLite handle. Methods throw (or reject) on failure. */
export interface DriverHandle {
  /** Whether the handle is still open. */
  readonly isOpen: boolean;
  /** Whether a transaction is open on the handle (autocommit is off). */
  readonly inTransaction: boolean;
  /** Prepared statements currently cached. */
  readonly cachedStatements: number;
  /** Runs a statement that returns no rows. */
  run(sql: string, params?: Params): MaybePromise<RunResult>;
  /** Runs one statement once per parameter set; returns the total rows changed. */
  runMany(sql: string, paramSets: readonly Params[]): MaybePromise<number>;
  /** Runs a query and returns every row as an object. */
  all(sql: string, params?: Params): MaybePromise<Row[]>;
  /** Runs a query and returns its first row, or undefined. */
  get(sql: string, params?: Params): MaybePromise<Row | undefined>;
  /**
   * Runs any statement; a query's rows come back as arrays keeping every column, a
   * write reports its changes.
   */
  values(sql: string, params?: Params): MaybePromise<PositionalRows>;
  /** Runs one or more statements without parameters. */
  exec(sql: string): MaybePromise<void>;
  /** Finalizes every cached statement and closes the handle. */
  close(): MaybePromise<void>;
  /**
   * Runs a query and hands its rows out a page at a time (a statement of its own, not
   * the cache's, open until the last page or {@link DriverCursor.close}). Optional: without
   * it the pool reads every row at once and pages them from memory.
   */
  iterate?(sql: string, params?: Params): MaybePromise<DriverCursor>;
}

/** A query being read a page at a time ({@link DriverHandle.iterate}). */
export interface DriverCursor {
  /** Up to `max` next rows; fewer than `max` means there are no more (the cursor closed). */
  next(max: number): MaybePromise<Row[]>;
  /** Ends the query early (idempotent); the handle stays usable. */
  close(): MaybePromise<void>;
}

/** A handle whose methods return their values directly (no promise). */
export interface SyncDriverHandle extends DriverHandle {
  /** Runs a statement that returns no rows. */
  run(sql: string, params?: Params): RunResult;
  /** Runs one statement once per parameter set; returns the total rows changed. */
  runMany(sql: string, paramSets: readonly Params[]): number;
  /** Runs a query and returns every row as an object. */
  all(sql: string, params?: Params): Row[];
  /** Runs a query and returns its first row, or undefined. */
  get(sql: string, params?: Params): Row | undefined;
  /** Runs any statement, rows as arrays. */
  values(sql: string, params?: Params): PositionalRows;
  /** Runs one or more statements without parameters. */
  exec(sql: string): void;
  /** Runs a query, its rows handed out a page at a time (see {@link DriverHandle.iterate}). */
  iterate?(sql: string, params?: Params): DriverCursor;
  /** Finalizes every cached statement and closes the handle. */
  close(): void;
}

/**
 * A driver opens handles, and knows what is particular to its engine: how a shard's
 * handle is configured, which errors mean a broken handle or a busy lock, what a
 * crashed process leaves behind, and how to copy a live database.
 */
export interface Driver {
  /** A short name for stats and errors. */
  readonly name: string;
  /**
   * Whether handles in several places (this process and others) can use one file at
   * once — what `access: "shared"` needs.
   */
  readonly canShare: boolean;
  /**
   * True when `open` takes the URL of a database server rather than a file path: the
   * pool then does nothing to a file (no creation, owner lock, stale-lock clearing,
   * identity or header checks); the server owns its files. Absent: a local file.
   */
  readonly remote?: boolean;
  /**
   * True when a handle keeps its file in use until its (asynchronous) `close` has
   * completed — the handle lives in a worker of this process: the pool then keeps the
   * file's ownership until then, and `closeAll` resolves once it has. Absent: ownership is
   * released as soon as the close is sent.
   */
  readonly closeHoldsFile?: boolean;
  /** Opens a handle on `path`. */
  open(path: string, options: OpenOptions): MaybePromise<DriverHandle>;
  /**
   * Sets a freshly opened shard handle up (locking and journal mode, synchronous, cache,
   * foreign keys) and checks it reads. Throws when the file cannot be used that way.
   */
  configure(handle: DriverHandle, options: ConfigureOptions): MaybePromise<void>;
  /** Whether `error` means the handle itself is unusable (I/O, corruption, closed). */
  isBrokenHandleError(error: unknown): boolean;
  /** Whether `error` is SQLITE_BUSY: another connection holds the lock. */
  isBusyError(error: unknown): boolean;
  /**
   * Removes what a crashed owner of `path` left that would keep the file locked
   * (node-sqlite3-wasm: a `<db>.lock` directory). Called only while this process holds
   * the file's owner lock, so no live process uses it. Returns whether anything was removed.
   */
  clearStaleLock(path: string): boolean;
  /**
   * Writes a consistent copy of the open database to `target` (a missing or empty file),
   * WAL content included. Called outside any transaction on the handle.
   */
  backup(handle: DriverHandle, target: string): MaybePromise<void>;
  /**
   * Why this driver cannot store `text` and read it back intact, or `undefined` when it
   * can (absent: every well-formed string is kept). The manager refuses such a value
   * with `InvalidValueError` before any shard is written; statements sent on a lease
   * bind what they are given.
   */
  checkText?(text: string): string | undefined;
}

/** A driver whose handles are synchronous. */
export interface SyncDriver extends Driver {
  /** Opens a handle on `path`. */
  open(path: string, options: OpenOptions): SyncDriverHandle;
  /**
   * Sets a freshly opened shard handle up (see {@link Driver.configure}); synchronous for
   * exclusive access.
   */
  configure(handle: DriverHandle, options: ConfigureOptions): void | Promise<void>;
}

/** True when `value` is a promise (or another thenable): the asynchronous path. */
export function isPromise<T>(value: MaybePromise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}
