/**
 * The driver interface: one SQLite handle. The pool talks to handles only through
 * this interface, so another driver (Deno's native `node:sqlite`, a remote libSQL
 * server) can slot in without touching the layers above.
 *
 * @module
 */

import type { Params, Row, RunResult, SqlValue } from "../types.ts";

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

/** One open SQLite handle. All methods are synchronous and throw on failure. */
export interface DriverHandle {
  /** Whether the handle is still open. */
  readonly isOpen: boolean;
  /** Whether a transaction is open on the handle (autocommit is off). */
  readonly inTransaction: boolean;
  /** Prepared statements currently cached. */
  readonly cachedStatements: number;
  /** Runs a statement that returns no rows. */
  run(sql: string, params?: Params): RunResult;
  /** Runs one statement once per parameter set; returns the total rows changed. */
  runMany(sql: string, paramSets: readonly Params[]): number;
  /** Runs a query and returns every row as an object. */
  all(sql: string, params?: Params): Row[];
  /** Runs a query and returns its first row, or undefined. */
  get(sql: string, params?: Params): Row | undefined;
  /**
   * Runs any statement; a query's rows come back as arrays keeping every column, a
   * write reports its changes.
   */
  values(sql: string, params?: Params): PositionalRows;
  /** Runs one or more statements without parameters. */
  exec(sql: string): void;
  /** Finalizes every cached statement and closes the handle. */
  close(): void;
}

/** A driver opens handles. */
export interface Driver {
  /** A short name for stats and errors. */
  readonly name: string;
  /** Opens a handle on `path`. */
  open(path: string, options: OpenOptions): DriverHandle;
}
