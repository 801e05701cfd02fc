/**
 * Value types shared by every layer.
 *
 * @module
 */

/** A value as SQLite stores it and Shardlite returns it. Integers beyond 2^53 are bigints. */
export type SqlValue = number | bigint | string | Uint8Array | null;

/** A value accepted as a bound parameter: booleans are bound as 0 and 1. */
export type SqlInput = SqlValue | boolean;

/** Bound parameters: positional (`?`) as an array, or named (`:name`, `$name`, `@name`). */
export type Params = readonly SqlInput[] | Readonly<Record<string, SqlInput>>;

/** A row as an object keyed by column name. */
export type Row = Record<string, SqlValue>;

/** What a write statement reports. */
export interface RunResult {
  /** Rows inserted, updated or deleted by the statement. */
  changes: number;
  /** The rowid of the last inserted row on this handle. */
  lastInsertRowid: number | bigint;
}
