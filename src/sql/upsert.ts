/**
 * The `ON CONFLICT` clause of an upsert: which uniqueness constraint a new row may collide
 * with (the conflict target), and what happens then — the listed columns take the new
 * row's values (`DO UPDATE SET c = excluded.c`), or nothing does (`DO NOTHING`).
 *
 * @module
 */

import {
  BatchPendingError,
  InvalidQueryError,
  QueryError,
  ShardOperationError,
} from "../errors.ts";
import type { Row } from "../types.ts";
import { describeKey } from "./describe.ts";
import { quoteIdentifier, validateIdentifier } from "./identifiers.ts";

/**
 * What an INSERT does when a row collides with an existing one, as SQL is built from it
 * and a redo record stores it (plain JSON). Column names are validated when it is built.
 */
export interface OnConflict {
  /**
   * The conflict target: the columns of a PRIMARY KEY or UNIQUE constraint. Absent: any
   * uniqueness constraint (only with `DO NOTHING`).
   */
  readonly target?: readonly string[] | undefined;
  /** Columns set to the new row's values on a conflict; absent or empty: `DO NOTHING`. */
  readonly update?: readonly string[] | undefined;
}

/**
 * The `ON CONFLICT` clause for `conflict`, with a leading space, to follow the VALUES of
 * an INSERT. Throws `InvalidIdentifierError` for a bad column name, and
 * {@link InvalidQueryError} naming `conflict` for a `DO UPDATE` without a target.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { conflictClause } from "./upsert.ts";
 * assert.equal(
 *   conflictClause({ target: ["id"], update: ["name"] }),
 *   ' ON CONFLICT ("id") DO UPDATE SET "name" = excluded."name"',
 * );
 * assert.equal(conflictClause({ target: ["id"] }), ' ON CONFLICT ("id") DO NOTHING');
 * assert.equal(conflictClause({}), " ON CONFLICT DO NOTHING");
 * ```
 */
export function conflictClause(conflict: OnConflict): string {
  const target = conflict.target === undefined
    ? ""
    : ` (${conflict.target.map((c) => quoteIdentifier(c, "conflict column")).join(", ")})`;
  const update = conflict.update ?? [];
  if (update.length === 0) return ` ON CONFLICT${target} DO NOTHING`;
  if (target === "") {
    throw new InvalidQueryError("conflict", "an update on conflict needs the conflict columns");
  }
  const set = update.map((c) => {
    const column = quoteIdentifier(c, "update column");
    return `${column} = excluded.${column}`;
  });
  return ` ON CONFLICT${target} DO UPDATE SET ${set.join(", ")}`;
}

/**
 * Checks a list of column names given as option `option`: an array of valid identifiers
 * (empty only when `allowEmpty`); names repeated (in any ASCII case) are kept once.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { columnList } from "./upsert.ts";
 * assert.deepEqual(columnList(["a", "b", "A"], "update", true), ["a", "b"]);
 * assert.throws(() => columnList([], "conflict", false), /conflict/);
 * ```
 */
export function columnList(value: unknown, option: string, allowEmpty: boolean): string[] {
  if (!Array.isArray(value) || (!allowEmpty && value.length === 0)) {
    throw new InvalidQueryError(
      option,
      `expected ${allowEmpty ? "an" : "a non-empty"} array of column names, got ${
        Array.isArray(value) ? "[]" : describeKey(value)
      }`,
    );
  }
  const seen = new Set<string>();
  const names: string[] = [];
  for (const name of value as unknown[]) {
    const column = validateIdentifier(name, `${option} column`);
    if (seen.has(column.toLowerCase())) continue;
    seen.add(column.toLowerCase());
    names.push(column);
  }
  return names;
}

/** The column options of an upsert (see `ShardManager.upsert`). */
export interface UpsertColumns {
  /** The conflict target; default: the table's primary key. */
  readonly conflict?: readonly string[] | undefined;
  /** Columns to update on a conflict; default: the row's columns outside the target. */
  readonly update?: readonly string[] | undefined;
}

/**
 * What an upsert of a row with `columns` does: the target is `options.conflict`, else
 * `primaryKey` (read from the schema; refused when empty); the update is `options.update`,
 * else every column of the row that is neither in the target nor the shard key. An update
 * naming the shard key is refused: it would change the key of the row it updates.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveUpsert } from "./upsert.ts";
 * const conflict = resolveUpsert("users", ["id", "name", "age"], {}, ["id"], "id");
 * assert.deepEqual(conflict, { target: ["id"], update: ["name", "age"] });
 * assert.throws(() => resolveUpsert("users", ["id"], { update: ["id"] }, ["id"], "id"), /update/);
 * ```
 */
export function resolveUpsert(
  table: string,
  columns: readonly string[],
  options: UpsertColumns,
  primaryKey: readonly string[] | undefined,
  shardKey: string | undefined,
): { target: string[]; update: string[] } {
  let target: string[];
  if (options.conflict !== undefined) {
    target = columnList(options.conflict, "conflict", false);
  } else {
    if (primaryKey === undefined || primaryKey.length === 0) {
      throw new InvalidQueryError(
        "conflict",
        `${table} has no PRIMARY KEY to default to; name the columns of one of its UNIQUE ` +
          `constraints`,
      );
    }
    target = [...primaryKey];
  }
  if (options.update !== undefined) {
    return { target, update: checkUpdateColumns(table, options.update, shardKey) };
  }
  const key = shardKey?.toLowerCase();
  const skip = new Set([
    ...target.map((c) => c.toLowerCase()),
    ...(key === undefined ? [] : [key]),
  ]);
  return { target, update: columns.filter((c) => !skip.has(c.toLowerCase())) };
}

/**
 * Checks an upsert's `update` columns (see {@link columnList}): naming the shard key is
 * refused with {@link InvalidQueryError} naming `update`, as the row it updates would
 * take another row's key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkUpdateColumns } from "./upsert.ts";
 * assert.deepEqual(checkUpdateColumns("users", ["name"], "id"), ["name"]);
 * assert.throws(() => checkUpdateColumns("users", ["ID"], "id"), /shard key/);
 * ```
 */
export function checkUpdateColumns(
  table: string,
  update: unknown,
  shardKey: string | undefined,
): string[] {
  const columns = columnList(update, "update", true);
  const key = shardKey?.toLowerCase();
  if (key !== undefined && columns.some((c) => c.toLowerCase() === key)) {
    throw new InvalidQueryError(
      "update",
      `${shardKey} is the shard key of ${table}; an upsert may not change it (the row it ` +
        `updates would take the key of another row; delete and insert it instead)`,
    );
  }
  return columns;
}

/**
 * The primary-key columns of `table` in key order, read with `PRAGMA table_info` (a
 * rowid table's `INTEGER PRIMARY KEY` counts; a table without one has none), or
 * undefined when the table does not exist.
 */
export async function readPrimaryKey(
  conn: { all(sql: string): Promise<Row[]> },
  table: string,
): Promise<string[] | undefined> {
  const columns = await conn.all(`PRAGMA table_info(${quoteIdentifier(table, "table")})`);
  if (columns.length === 0) return undefined;
  return columns.filter((c) => Number(c.pk) > 0)
    .sort((a, b) => Number(a.pk) - Number(b.pk))
    .map((c) => String(c.name));
}

/**
 * The SQLite message at the bottom of a shard's error (a `QueryError` or a
 * `ShardOperationError` wrapping one), or undefined for any other error.
 */
export function sqliteReason(error: unknown): string | undefined {
  let at: unknown = error;
  let reason: string | undefined;
  for (let depth = 0; depth < 8; depth++) {
    if (at instanceof BatchPendingError) return undefined; // past the commit point: not ours
    if (!(at instanceof QueryError || at instanceof ShardOperationError)) break;
    reason = at.cause instanceof Error ? at.cause.message : reason;
    at = at.cause;
  }
  return reason;
}

/**
 * The error a failed upsert is reported as, when SQLite refused its ON CONFLICT clause:
 * {@link InvalidQueryError} naming `conflict` for a target that is no PRIMARY KEY or
 * UNIQUE constraint, or a column that does not exist (`conflict` or `update`). SQLite
 * refuses these when it prepares the statement, so nothing was written. Undefined for
 * any other error.
 */
export function upsertError(
  error: unknown,
  table: string,
  conflict: OnConflict,
): InvalidQueryError | undefined {
  const reason = sqliteReason(error);
  if (reason === undefined) return undefined;
  if (/ON CONFLICT clause does not match any PRIMARY KEY or UNIQUE constraint/.test(reason)) {
    return new InvalidQueryError(
      "conflict",
      `(${conflict.target?.join(", ") ?? ""}) is not the column set of a PRIMARY KEY or UNIQUE ` +
        `constraint of ${table} (SQLite: ${reason}); nothing was written`,
      { cause: error },
    );
  }
  const missing = /no such column: "?(excluded\.)?"?([A-Za-z_][A-Za-z0-9_]*)/.exec(reason);
  if (missing === null) return undefined;
  const name = (missing[2] as string).toLowerCase();
  const has = (list: readonly string[] | undefined) =>
    list?.some((c) => c.toLowerCase() === name) === true;
  const option = missing[1] !== undefined || has(conflict.update)
    ? "update"
    : has(conflict.target)
    ? "conflict"
    : undefined;
  if (option === undefined) return undefined;
  return new InvalidQueryError(
    option,
    `${table} has no column ${missing[2]}; nothing was written`,
    { cause: error },
  );
}
