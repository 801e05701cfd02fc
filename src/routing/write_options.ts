/**
 * The options of the row writes — insert, insertMany, upsert — and the `returning` option
 * they share with update and delete. A call given `returning` resolves to the affected
 * rows (`Row[]`) instead of its count or `RunResult`; the overloads of `ShardManager` say
 * so in the types.
 *
 * @module
 */

import type { AbortOption } from "./abort.ts";
import type { ShardKey } from "./keys.ts";

/** A `returning` option: the call resolves to the rows it inserted, updated or deleted. */
export interface ReturningOption {
  /**
   * The columns of every row the call inserted, updated or deleted (SQL `RETURNING`),
   * each a column name; an empty list is refused. Over several shards the rows of every
   * shard are merged, in no particular order.
   */
  returning: readonly string[];
}

/** No `returning` option: the call resolves to its count or `RunResult`. */
export interface NoReturning {
  /** Absent (or undefined): no rows are returned. */
  returning?: undefined;
}

/** Options of `insert` (the third argument may also be the key itself). */
export interface InsertRouteOptions extends AbortOption {
  /** The row's shard key, for a table without a shard-key column (or equal to it). */
  key?: ShardKey;
  /** Columns of the inserted row to return (see {@link ReturningOption}). */
  returning?: readonly string[] | undefined;
}

/** Options of `upsert`. */
export interface UpsertOptions extends AbortOption {
  /** The row's shard key, for a table without a shard-key column (or equal to it). */
  key?: ShardKey;
  /**
   * The conflict target: the columns of a PRIMARY KEY or UNIQUE constraint (any other set
   * is refused with `InvalidQueryError` naming `conflict`). Default: the table's primary
   * key, read from its schema (a rowid table's `INTEGER PRIMARY KEY` counts). A target
   * without the shard key is unique per shard only.
   */
  conflict?: readonly string[] | undefined;
  /**
   * Columns that take the new row's values when the row conflicts (`SET c = excluded.c`).
   * Default: every column of the row outside the target and the shard key. Empty (or
   * nothing left by the default): the existing row stays as it is (`DO NOTHING`). Naming
   * the shard key is refused with `InvalidQueryError` naming `update`.
   */
  update?: readonly string[] | undefined;
  /** Columns of the row inserted or updated to return (none when nothing changed). */
  returning?: readonly string[] | undefined;
}

/**
 * What `insertMany` does with a row that collides with an existing one (or an earlier row
 * of the same call) on a PRIMARY KEY or UNIQUE constraint: `"ignore"` skips it,
 * `"update"` updates the existing row as `upsert` does.
 */
export type ConflictMode = "ignore" | "update";

/** Options of `insertMany` (the third argument may also be the list of keys itself). */
export interface InsertManyOptions extends AbortOption {
  /** Each row's shard key, in row order, for a table without a shard-key column. */
  keys?: readonly ShardKey[] | undefined;
  /**
   * On a uniqueness conflict: absent, the call fails and writes nothing; `"ignore"`
   * skips the row (any PRIMARY KEY or UNIQUE constraint, or only `conflict`'s); `"update"`
   * updates the existing row, with `conflict` and `update` as `upsert` takes them. Rows of
   * one call apply in order: of two rows with one key, the later wins. NOT NULL, CHECK
   * and foreign-key failures still fail the whole call.
   */
  onConflict?: ConflictMode | undefined;
  /** The conflict target (see {@link UpsertOptions.conflict}); needs `onConflict`. */
  conflict?: readonly string[] | undefined;
  /** Columns to update (see {@link UpsertOptions.update}); needs `onConflict: "update"`. */
  update?: readonly string[] | undefined;
  /** Columns of every row inserted or updated to return (see {@link ReturningOption}). */
  returning?: readonly string[] | undefined;
}
