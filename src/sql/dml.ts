/**
 * Builds the row statements — SELECT, INSERT, UPDATE, DELETE — and packs many one-row
 * INSERTs into multi-row ones.
 *
 * @module
 */

import { InvalidQueryError } from "../errors.ts";
import type { SqlInput, SqlValue } from "../types.ts";
import { describeKey } from "./describe.ts";
import { quoteIdentifier, validateIdentifier } from "./identifiers.ts";
import { type OrderBy, resolveOrderBy } from "./order.ts";
import { type TextCheck, toSqlValue } from "./values.ts";
import { buildWhere, type Where } from "./where.ts";

/** A statement ready to run: SQL text with `?` placeholders and the values to bind. */
export interface SqlStatement {
  /** The SQL text; identifiers are validated and quoted, values are `?` placeholders. */
  readonly sql: string;
  /** The values for the placeholders, in order. */
  readonly params: SqlValue[];
}

/** Options of {@link buildSelect}. */
export interface SelectOptions {
  /** Which rows; all when absent. */
  readonly where?: Where | undefined;
  /** Which columns; `*` when absent. */
  readonly columns?: readonly string[] | undefined;
  /** Sort order. */
  readonly orderBy?: OrderBy | undefined;
  /** At most this many rows (a non-negative safe integer). */
  readonly limit?: number | undefined;
  /** Skip this many rows first (a non-negative safe integer). */
  readonly offset?: number | undefined;
  /**
   * Only rows with `from <= rowid < to` (either side open when absent; safe integers, bound
   * as parameters), ANDed with `where`. For rowid tables only: a column named `rowid` would
   * be filtered instead.
   */
  readonly rowidRange?: { readonly from?: number | undefined; readonly to?: number | undefined };
}

function checkRowid(value: unknown, option: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw new InvalidQueryError(option, `expected a safe integer, got ${describeKey(value)}`);
  }
  return value;
}

/**
 * Returns `value` when it is a non-negative safe integer (a LIMIT or OFFSET), else throws
 * {@link InvalidQueryError} naming `option`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkCount } from "./dml.ts";
 * assert.equal(checkCount(10, "limit"), 10);
 * assert.throws(() => checkCount(-1, "limit"), /non-negative/);
 * ```
 */
export function checkCount(value: unknown, option: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidQueryError(
      option,
      `expected a non-negative safe integer, got ${describeKey(value)}`,
    );
  }
  return value;
}

/**
 * Builds a SELECT. LIMIT and OFFSET are bound as parameters.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildSelect } from "./dml.ts";
 * const { sql, params } = buildSelect("users", {
 *   columns: ["id", "name"],
 *   where: { age: { gt: 30 } },
 *   orderBy: [{ column: "name", direction: "desc" }],
 *   limit: 10,
 * });
 * assert(
 *   sql === 'SELECT "id", "name" FROM "users" WHERE "age" > ? ORDER BY "name" DESC LIMIT ?',
 * );
 * assert(params[0] === 30 && params[1] === 10);
 * ```
 */
export function buildSelect(
  table: string,
  options: SelectOptions = {},
  checkText?: TextCheck | undefined,
): SqlStatement {
  const parts = [`SELECT`];
  if (options.columns === undefined) {
    parts.push("*");
  } else {
    if (!Array.isArray(options.columns) || options.columns.length === 0) {
      throw new InvalidQueryError("columns", "expected a non-empty array of column names");
    }
    parts.push(options.columns.map((c) => quoteIdentifier(c, "column")).join(", "));
  }
  parts.push(`FROM ${quoteIdentifier(table, "table")}`);
  const where = buildWhere(options.where, checkText);
  const params = [...where.params];
  const range = options.rowidRange;
  if (range !== undefined && (range.from !== undefined || range.to !== undefined)) {
    const bounds: string[] = [];
    if (range.from !== undefined) {
      bounds.push("rowid >= ?");
      params.push(checkRowid(range.from, "rowidRange"));
    }
    if (range.to !== undefined) {
      bounds.push("rowid < ?");
      params.push(checkRowid(range.to, "rowidRange"));
    }
    const filter = where.sql === "" ? "" : `(${where.sql.slice("WHERE ".length)}) AND `;
    parts.push(`WHERE ${filter}${bounds.join(" AND ")}`);
  } else if (where.sql !== "") {
    parts.push(where.sql);
  }
  if (options.orderBy !== undefined) {
    const terms = resolveOrderBy(options.orderBy);
    if (terms.length > 0) {
      parts.push(
        `ORDER BY ${terms.map((t) => `"${t.column}" ${t.direction.toUpperCase()}`).join(", ")}`,
      );
    }
  }
  if (options.limit !== undefined || options.offset !== undefined) {
    // SQLite needs a LIMIT before an OFFSET; -1 means no limit
    parts.push("LIMIT ?");
    params.push(options.limit === undefined ? -1 : checkCount(options.limit, "limit"));
    if (options.offset !== undefined) {
      parts.push("OFFSET ?");
      params.push(checkCount(options.offset, "offset"));
    }
  }
  return { sql: parts.join(" "), params };
}

function rowEntries(
  row: unknown,
  option: string,
  checkText: TextCheck | undefined,
): [string, SqlValue][] {
  if (typeof row !== "object" || row === null || Array.isArray(row) || row instanceof Uint8Array) {
    throw new InvalidQueryError(
      option,
      `expected an object of column values, got ${describeKey(row)}`,
    );
  }
  return Object.entries(row).map(([name, value]) => {
    const column = validateIdentifier(name, "column");
    return [column, toSqlValue(value, column, checkText)];
  });
}

/** Options of {@link buildInsert}. */
export interface InsertOptions {
  /** What to do when the row violates a uniqueness constraint (default: fail). */
  readonly onConflict?: "ignore" | "replace" | undefined;
}

/**
 * Builds an INSERT of one row; an empty row inserts `DEFAULT VALUES`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildInsert } from "./dml.ts";
 * const { sql, params } = buildInsert("users", { id: 1, name: "Ada", admin: true });
 * assert(sql === 'INSERT INTO "users" ("id", "name", "admin") VALUES (?, ?, ?)');
 * assert(params[2] === 1);
 * ```
 */
export function buildInsert(
  table: string,
  row: Readonly<Record<string, SqlInput>>,
  options: InsertOptions = {},
  checkText?: TextCheck | undefined,
): SqlStatement {
  const verb = options.onConflict === undefined
    ? "INSERT"
    : options.onConflict === "ignore"
    ? "INSERT OR IGNORE"
    : options.onConflict === "replace"
    ? "INSERT OR REPLACE"
    : (() => {
      throw new InvalidQueryError("onConflict", `expected "ignore" or "replace"`);
    })();
  const target = quoteIdentifier(table, "table");
  const entries = rowEntries(row, "row", checkText);
  if (entries.length === 0) return { sql: `${verb} INTO ${target} DEFAULT VALUES`, params: [] };
  return {
    sql: `${verb} INTO ${target} (${entries.map(([c]) => `"${c}"`).join(", ")}) VALUES (${
      entries.map(() => "?").join(", ")
    })`,
    params: entries.map(([, v]) => v),
  };
}

/** Rows a multi-row INSERT holds at most. */
export const ROWS_PER_INSERT = 100;
/** Bound values a statement holds at most: SQLite's historical limit, safe in every build. */
export const VALUES_PER_STATEMENT = 999;

/**
 * How many rows of `width` values one multi-row INSERT takes: up to {@link ROWS_PER_INSERT}
 * and {@link VALUES_PER_STATEMENT} values; 1 when rows cannot be packed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rowsPerInsert } from "./dml.ts";
 * assert(rowsPerInsert(3) === 100 && rowsPerInsert(40) === 24 && rowsPerInsert(600) === 1);
 * ```
 */
export function rowsPerInsert(width: number): number {
  if (width <= 0) return 1;
  return Math.max(1, Math.min(ROWS_PER_INSERT, Math.floor(VALUES_PER_STATEMENT / width)));
}

const multiRowCache = new Map<string, string>();

/**
 * Turns a one-row `INSERT ... VALUES (?, ...)` (as {@link buildInsert} makes) into one
 * inserting `rows` rows: the values tuple repeated, then `suffix` (an `ON CONFLICT` or
 * `RETURNING` clause, see `upsert.ts`). One statement for many rows costs about half as
 * much per row as a statement a row.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { multiRowInsert } from "./dml.ts";
 * assert(multiRowInsert('INSERT INTO "t" ("a") VALUES (?)', 3) ===
 *   'INSERT INTO "t" ("a") VALUES (?), (?), (?)');
 * assert(multiRowInsert('INSERT INTO "t" ("a") VALUES (?)', 2, " ON CONFLICT DO NOTHING") ===
 *   'INSERT INTO "t" ("a") VALUES (?), (?) ON CONFLICT DO NOTHING');
 * ```
 */
export function multiRowInsert(sql: string, rows: number, suffix = ""): string {
  if (rows <= 1) return sql + suffix;
  const key = `${rows}\0${sql}\0${suffix}`;
  let packed = multiRowCache.get(key);
  if (packed === undefined) {
    if (!sql.endsWith(")")) throw new RangeError(`not a one-row INSERT ... VALUES (...): ${sql}`);
    const tuple = sql.slice(sql.lastIndexOf("("));
    packed = sql + `, ${tuple}`.repeat(rows - 1) + suffix;
    if (multiRowCache.size < 1024) multiRowCache.set(key, packed);
  }
  return packed;
}

/**
 * Splits rows for a one-row INSERT into packed statements: full multi-row statements
 * first, then the rows left over one at a time. Each part is `runMany(sql, params)`.
 * `suffix` ends every statement (see {@link multiRowInsert}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { packInsert } from "./dml.ts";
 * const rows = Array.from({ length: 250 }, (_, i) => [i, `n${i}`, i % 60]);
 * const parts = packInsert('INSERT INTO "t" ("a", "b", "c") VALUES (?, ?, ?)', rows);
 * assert(parts.length === 2);
 * assert(parts[0]!.params.length === 2 && parts[0]!.params[0]!.length === 300);
 * assert(parts[1]!.params.length === 50 && parts[1]!.params[0]!.length === 3);
 * ```
 */
export function packInsert(
  sql: string,
  rows: readonly (readonly SqlValue[])[],
  suffix = "",
): { sql: string; params: SqlValue[][] }[] {
  const width = rows[0]?.length ?? 0;
  const per = rowsPerInsert(width);
  const full = per > 1 ? Math.floor(rows.length / per) : 0;
  const parts: { sql: string; params: SqlValue[][] }[] = [];
  if (full > 0) {
    const chunks = new Array<SqlValue[]>(full);
    for (let c = 0; c < full; c++) {
      const chunk = new Array<SqlValue>(per * width);
      for (let r = 0; r < per; r++) {
        const row = rows[c * per + r] as readonly SqlValue[];
        for (let v = 0; v < width; v++) chunk[r * width + v] = row[v] as SqlValue;
      }
      chunks[c] = chunk;
    }
    parts.push({ sql: multiRowInsert(sql, per, suffix), params: chunks });
  }
  if (full * per < rows.length) {
    parts.push({ sql: sql + suffix, params: rows.slice(full * per).map((row) => [...row]) });
  }
  return parts;
}

/**
 * Builds an UPDATE of the rows matching `where` (every row when absent).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildUpdate } from "./dml.ts";
 * const { sql, params } = buildUpdate("users", { name: "Bo" }, { id: 7 });
 * assert(sql === 'UPDATE "users" SET "name" = ? WHERE "id" = ?');
 * assert(params[0] === "Bo" && params[1] === 7);
 * ```
 */
export function buildUpdate(
  table: string,
  changes: Readonly<Record<string, SqlInput>>,
  where?: Where | undefined,
  checkText?: TextCheck | undefined,
): SqlStatement {
  const target = quoteIdentifier(table, "table");
  const entries = rowEntries(changes, "changes", checkText);
  if (entries.length === 0) throw new InvalidQueryError("changes", "there is nothing to update");
  const filter = buildWhere(where, checkText);
  const sql = `UPDATE ${target} SET ${entries.map(([c]) => `"${c}" = ?`).join(", ")}`;
  return {
    sql: filter.sql === "" ? sql : `${sql} ${filter.sql}`,
    params: [...entries.map(([, v]) => v), ...filter.params],
  };
}

/**
 * Builds a DELETE of the rows matching `where` (every row when absent).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildDelete } from "./dml.ts";
 * assert(buildDelete("users", { id: 7 }).sql === 'DELETE FROM "users" WHERE "id" = ?');
 * ```
 */
export function buildDelete(
  table: string,
  where?: Where | undefined,
  checkText?: TextCheck | undefined,
): SqlStatement {
  const target = quoteIdentifier(table, "table");
  const filter = buildWhere(where, checkText);
  return {
    sql: filter.sql === "" ? `DELETE FROM ${target}` : `DELETE FROM ${target} ${filter.sql}`,
    params: filter.params,
  };
}
