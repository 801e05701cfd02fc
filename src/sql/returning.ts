/**
 * The `RETURNING` clause of an INSERT, UPDATE, DELETE or upsert: the columns of every row
 * the statement inserted, updated or deleted.
 *
 * @module
 */

import { InvalidQueryError } from "../errors.ts";
import { columnList, sqliteReason } from "./upsert.ts";

/** A RETURNING clause: its SQL (with a leading space) and its validated columns. */
export interface ReturningClause {
  /** ` RETURNING "a", "b"`, to end a statement. */
  readonly sql: string;
  /** The columns, validated. */
  readonly columns: readonly string[];
}

/**
 * The RETURNING clause for `columns` (the `returning` option): a non-empty array of valid
 * column names. Throws {@link InvalidQueryError} naming `returning` for an empty list or
 * a non-array, and `InvalidIdentifierError` for a bad name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { returningClause } from "./returning.ts";
 * assert.equal(returningClause(["id", "name"]).sql, ' RETURNING "id", "name"');
 * assert.throws(() => returningClause([]), /returning/);
 * ```
 */
export function returningClause(columns: unknown): ReturningClause {
  const names = columnList(columns, "returning", false);
  return { sql: ` RETURNING ${names.map((c) => `"${c}"`).join(", ")}`, columns: names };
}

/**
 * The error a failed statement with a RETURNING clause is reported as when SQLite found
 * no column of that name (at prepare, so nothing was written): {@link InvalidQueryError}
 * naming `returning`. Undefined for any other error.
 */
export function returningError(
  error: unknown,
  table: string,
  returning: ReturningClause | undefined,
): InvalidQueryError | undefined {
  if (returning === undefined) return undefined;
  const reason = sqliteReason(error);
  const missing = reason === undefined
    ? null
    : /no such column: "?([A-Za-z_][A-Za-z0-9_]*)/.exec(reason);
  if (missing === null) return undefined;
  const name = (missing[1] as string).toLowerCase();
  if (!returning.columns.some((c) => c.toLowerCase() === name)) return undefined;
  return new InvalidQueryError(
    "returning",
    `${table} has no column ${missing[1]}; nothing was written`,
    { cause: error },
  );
}
