/**
 * Safe SQL text for the routed operations. Identifiers (tables, columns) never reach
 * SQL unvalidated: they must match `^[A-Za-z_][A-Za-z0-9_]*$` (1 to 128 characters, not
 * starting with `sqlite_`) and are always double-quoted. Values are never spliced into
 * SQL: they are bound as parameters, after a check that they can be stored faithfully.
 *
 * @module
 */

import {
  InvalidIdentifierError,
  InvalidQueryError,
  InvalidSchemaError,
  InvalidValueError,
} from "../errors.ts";
import type { SqlInput, SqlValue } from "../types.ts";
import { describeKey } from "./keys.ts";

/** A statement ready to run: SQL text with `?` placeholders and the values to bind. */
export interface SqlStatement {
  /** The SQL text; identifiers are validated and quoted, values are `?` placeholders. */
  readonly sql: string;
  /** The values for the placeholders, in order. */
  readonly params: SqlValue[];
}

/**
 * Operators for one column of a filter; several operators in one object are AND-ed.
 * Comparisons follow SQLite: a NULL column value matches none of `ne`, `lt`, ..., `notIn`.
 */
export interface ColumnFilter {
  /** Equal to; `null` means `IS NULL`. */
  readonly eq?: SqlInput;
  /** Not equal to (`<>`); `null` means `IS NOT NULL`. */
  readonly ne?: SqlInput;
  /** Less than. */
  readonly lt?: SqlInput;
  /** Less than or equal to. */
  readonly lte?: SqlInput;
  /** Greater than. */
  readonly gt?: SqlInput;
  /** Greater than or equal to. */
  readonly gte?: SqlInput;
  /** One of the values; an empty array matches nothing, a `null` in it matches NULL. */
  readonly in?: readonly SqlInput[];
  /** None of the values; an empty array matches everything, a `null` in it excludes NULL. */
  readonly notIn?: readonly SqlInput[];
  /** SQL `LIKE` pattern (`%`, `_`; ASCII case-insensitive, as in SQLite). */
  readonly like?: string;
  /** `true`: the column is NULL; `false`: it is not. */
  readonly isNull?: boolean;
}

/**
 * A filter: column name to a value (equality; `null` means `IS NULL`) or to a
 * {@link ColumnFilter}. All columns are AND-ed; an empty filter matches every row.
 */
export type Where = Readonly<Record<string, SqlInput | ColumnFilter>>;

/** One ORDER BY term. */
export interface OrderTerm {
  /** The column to sort by. */
  readonly column: string;
  /** `"asc"` (the default) or `"desc"`. */
  readonly direction?: "asc" | "desc";
}

/** An ORDER BY term with its direction resolved. */
export interface ResolvedOrderTerm {
  /** The validated column name. */
  readonly column: string;
  /** The direction. */
  readonly direction: "asc" | "desc";
}

/** ORDER BY: one column name, or a list of names and terms, most significant first. */
export type OrderBy = string | readonly (string | OrderTerm)[];

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
}

/** The aggregate functions Shardlite can combine across shards. */
export type AggregateFunction = "COUNT" | "SUM" | "AVG" | "MIN" | "MAX";

/** A parsed aggregate such as `COUNT(*)` or `SUM(age)`. */
export interface Aggregate {
  /** The function, upper case. */
  readonly fn: AggregateFunction;
  /** The validated column, or `"*"` (COUNT only). */
  readonly column: string;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Returns `name` if it is a safe identifier, else throws {@link InvalidIdentifierError}
 * naming it. Safe: a string of 1 to 128 ASCII letters, digits and underscores, not
 * starting with a digit nor with `sqlite_` (any case; SQLite reserves those names).
 * `kind` says what it names ("table", "column", ...) for the message.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { validateIdentifier } from "./sql.ts";
 * assert(validateIdentifier("users", "table") === "users");
 * try {
 *   validateIdentifier("users; DROP TABLE x", "table");
 *   throw new Error("unreachable");
 * } catch (e) {
 *   assert((e as Error).name === "InvalidIdentifierError");
 * }
 * ```
 */
export function validateIdentifier(name: unknown, kind: string): string {
  if (typeof name !== "string") {
    throw new InvalidIdentifierError(describeKey(name), kind, `expected a string`);
  }
  if (name.length === 0) throw new InvalidIdentifierError(name, kind, "it is empty");
  if (name.length > 128) {
    throw new InvalidIdentifierError(name, kind, `it has ${name.length} characters`);
  }
  if (!IDENTIFIER.test(name)) {
    const bad = [...name].find((c) => !/[A-Za-z0-9_]/.test(c));
    throw new InvalidIdentifierError(
      name,
      kind,
      bad === undefined
        ? "it starts with a digit"
        : `it contains ${JSON.stringify(bad)} (U+${
          bad.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")
        })`,
    );
  }
  if (name.slice(0, 7).toLowerCase() === "sqlite_") {
    throw new InvalidIdentifierError(name, kind, "names starting with sqlite_ are reserved");
  }
  if (kind === "table" && name.slice(0, 11).toLowerCase() === "_shardlite_") {
    throw new InvalidIdentifierError(
      name,
      kind,
      "table names starting with _shardlite_ are reserved for Shardlite's bookkeeping",
    );
  }
  return name;
}

/**
 * Validates `name` (see {@link validateIdentifier}) and wraps it in double quotes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quoteIdentifier } from "./sql.ts";
 * assert(quoteIdentifier("order", "column") === '"order"');
 * ```
 */
export function quoteIdentifier(name: unknown, kind = "identifier"): string {
  return `"${validateIdentifier(name, kind)}"`;
}

/**
 * Checks that a value can be bound and stored faithfully, and returns what to bind:
 * booleans become 0/1; NaN (SQLite would store NULL), bigints outside int64, strings
 * with lone surrogates or NUL characters (the driver truncates text at NUL), `undefined`, objects other than Uint8Array, functions and
 * symbols throw {@link InvalidValueError} naming `column`. ±Infinity is allowed
 * (stored as REAL infinity).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toSqlValue } from "./sql.ts";
 * assert(toSqlValue(true, "active") === 1);
 * ```
 */
export function toSqlValue(value: unknown, column: string): SqlValue {
  switch (typeof value) {
    case "string":
      if (!value.isWellFormed()) {
        throw new InvalidValueError(column, "the string has a lone surrogate (invalid Unicode)");
      }
      // node-sqlite3-wasm binds text up to the first NUL: "a\0b" would be stored, and match, as "a"
      if (value.includes("\0")) {
        throw new InvalidValueError(
          column,
          "the string contains NUL (U+0000), which the SQLite driver truncates; store it as a Uint8Array",
        );
      }
      return value;
    case "number":
      if (Number.isNaN(value)) {
        throw new InvalidValueError(column, "NaN would be stored as NULL; pass null explicitly");
      }
      return value;
    case "bigint":
      if (value < -(2n ** 63n) || value >= 2n ** 63n) {
        throw new InvalidValueError(column, `${value}n is outside the 64-bit integer range`);
      }
      return value;
    case "boolean":
      return value ? 1 : 0;
    case "undefined":
      throw new InvalidValueError(column, "undefined; omit the column or pass null");
    case "object":
      if (value === null || value instanceof Uint8Array) return value;
      throw new InvalidValueError(column, `${describeKey(value)} cannot be stored`);
    default:
      throw new InvalidValueError(column, `a ${typeof value} cannot be stored`);
  }
}

function isFilter(value: unknown): value is ColumnFilter {
  return typeof value === "object" && value !== null && !(value instanceof Uint8Array) &&
    !Array.isArray(value);
}

const COMPARISONS = { lt: "<", lte: "<=", gt: ">", gte: ">=" } as const;

function filterTerms(column: string, filter: ColumnFilter, params: SqlValue[]): string[] {
  const quoted = `"${column}"`;
  const terms: string[] = [];
  for (const [op, operand] of Object.entries(filter) as [string, unknown][]) {
    const at = `where.${column}.${op}`;
    switch (op) {
      case "eq":
      case "ne": {
        const value = toSqlValue(operand, column);
        if (value === null) terms.push(`${quoted} IS ${op === "eq" ? "" : "NOT "}NULL`);
        else {
          terms.push(`${quoted} ${op === "eq" ? "=" : "<>"} ?`);
          params.push(value);
        }
        break;
      }
      case "lt":
      case "lte":
      case "gt":
      case "gte": {
        const value = toSqlValue(operand, column);
        if (value === null) {
          throw new InvalidQueryError(at, "a comparison with null matches nothing; use isNull");
        }
        terms.push(`${quoted} ${COMPARISONS[op]} ?`);
        params.push(value);
        break;
      }
      case "in":
      case "notIn": {
        if (!Array.isArray(operand)) {
          throw new InvalidQueryError(at, `expected an array, got ${describeKey(operand)}`);
        }
        const values = operand.map((item) => toSqlValue(item, column));
        const nonNull = values.filter((v) => v !== null);
        const hasNull = nonNull.length < values.length;
        const list = nonNull.length === 0
          ? undefined
          : `${quoted} ${op === "in" ? "IN" : "NOT IN"} (${nonNull.map(() => "?").join(", ")})`;
        params.push(...nonNull);
        if (op === "in") {
          const parts = [list, hasNull ? `${quoted} IS NULL` : undefined].filter(Boolean);
          terms.push(
            parts.length === 0 ? "0" : parts.length === 1 ? parts[0]! : `(${parts.join(" OR ")})`,
          );
        } else {
          const parts = [list, hasNull ? `${quoted} IS NOT NULL` : undefined].filter(Boolean);
          terms.push(parts.length === 0 ? "1" : parts.join(" AND "));
        }
        break;
      }
      case "like":
        if (typeof operand !== "string") {
          throw new InvalidQueryError(at, `expected a string pattern, got ${describeKey(operand)}`);
        }
        terms.push(`${quoted} LIKE ?`);
        params.push(toSqlValue(operand, column));
        break;
      case "isNull":
        if (typeof operand !== "boolean") {
          throw new InvalidQueryError(at, `expected true or false, got ${describeKey(operand)}`);
        }
        terms.push(`${quoted} IS ${operand ? "" : "NOT "}NULL`);
        break;
      default:
        throw new InvalidQueryError(
          at,
          "unknown operator; use eq, ne, lt, lte, gt, gte, in, notIn, like or isNull",
        );
    }
  }
  if (terms.length === 0) {
    throw new InvalidQueryError(`where.${column}`, "the operator object is empty");
  }
  return terms;
}

/**
 * Builds a WHERE clause (with the leading `WHERE`) from a filter, or an empty string
 * when there is nothing to filter. Plain values test equality (`null`: `IS NULL`);
 * operator objects allow `ne lt lte gt gte in notIn like isNull` (see {@link ColumnFilter}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildWhere } from "./sql.ts";
 * const { sql, params } = buildWhere({ team: "red", age: { gte: 18 }, deleted: null });
 * assert(sql === 'WHERE "team" = ? AND "age" >= ? AND "deleted" IS NULL');
 * assert(params.length === 2);
 * ```
 */
export function buildWhere(where?: Where | undefined): SqlStatement {
  if (where === undefined) return { sql: "", params: [] };
  if (typeof where !== "object" || where === null || Array.isArray(where)) {
    throw new InvalidQueryError("where", `expected an object, got ${describeKey(where)}`);
  }
  const params: SqlValue[] = [];
  const terms: string[] = [];
  for (const [name, condition] of Object.entries(where)) {
    const column = validateIdentifier(name, "column");
    if (isFilter(condition)) {
      terms.push(...filterTerms(column, condition, params));
      continue;
    }
    const value = toSqlValue(condition, column);
    if (value === null) {
      terms.push(`"${column}" IS NULL`);
    } else {
      terms.push(`"${column}" = ?`);
      params.push(value);
    }
  }
  return { sql: terms.length === 0 ? "" : `WHERE ${terms.join(" AND ")}`, params };
}

function checkCount(value: unknown, option: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidQueryError(
      option,
      `expected a non-negative safe integer, got ${describeKey(value)}`,
    );
  }
  return value;
}

/**
 * Resolves an ORDER BY option into validated terms with explicit directions.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveOrderBy } from "./sql.ts";
 * const terms = resolveOrderBy(["name", { column: "age", direction: "desc" }]);
 * assert(terms[0]!.direction === "asc" && terms[1]!.direction === "desc");
 * ```
 */
export function resolveOrderBy(orderBy: OrderBy): ResolvedOrderTerm[] {
  const list = typeof orderBy === "string" ? [orderBy] : orderBy;
  if (!Array.isArray(list)) {
    throw new InvalidQueryError("orderBy", `expected a column name or an array of terms`);
  }
  return list.map((term: unknown, i): ResolvedOrderTerm => {
    if (typeof term === "string") {
      return { column: validateIdentifier(term, "column"), direction: "asc" };
    }
    if (typeof term !== "object" || term === null) {
      throw new InvalidQueryError(
        `orderBy[${i}]`,
        `expected a column name or { column, direction }`,
      );
    }
    const { column, direction } = term as { column?: unknown; direction?: unknown };
    if (direction !== undefined && direction !== "asc" && direction !== "desc") {
      throw new InvalidQueryError(
        `orderBy[${i}].direction`,
        `expected "asc" or "desc", got ${describeKey(direction)}`,
      );
    }
    return { column: validateIdentifier(column, "column"), direction: direction ?? "asc" };
  });
}

/**
 * Builds a SELECT. LIMIT and OFFSET are bound as parameters.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildSelect } from "./sql.ts";
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
export function buildSelect(table: string, options: SelectOptions = {}): SqlStatement {
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
  const where = buildWhere(options.where);
  const params = [...where.params];
  if (where.sql !== "") parts.push(where.sql);
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

function rowEntries(row: unknown, option: string): [string, SqlValue][] {
  if (typeof row !== "object" || row === null || Array.isArray(row) || row instanceof Uint8Array) {
    throw new InvalidQueryError(
      option,
      `expected an object of column values, got ${describeKey(row)}`,
    );
  }
  return Object.entries(row).map(([name, value]) => {
    const column = validateIdentifier(name, "column");
    return [column, toSqlValue(value, column)];
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
 * import { buildInsert } from "./sql.ts";
 * const { sql, params } = buildInsert("users", { id: 1, name: "Ada", admin: true });
 * assert(sql === 'INSERT INTO "users" ("id", "name", "admin") VALUES (?, ?, ?)');
 * assert(params[2] === 1);
 * ```
 */
export function buildInsert(
  table: string,
  row: Readonly<Record<string, SqlInput>>,
  options: InsertOptions = {},
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
  const entries = rowEntries(row, "row");
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
 * import { rowsPerInsert } from "./sql.ts";
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
 * inserting `rows` rows: the values tuple repeated. One statement for many rows costs
 * about half as much per row as a statement a row.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { multiRowInsert } from "./sql.ts";
 * assert(multiRowInsert('INSERT INTO "t" ("a") VALUES (?)', 3) ===
 *   'INSERT INTO "t" ("a") VALUES (?), (?), (?)');
 * ```
 */
export function multiRowInsert(sql: string, rows: number): string {
  if (rows <= 1) return sql;
  const key = `${rows}\0${sql}`;
  let packed = multiRowCache.get(key);
  if (packed === undefined) {
    if (!sql.endsWith(")")) throw new RangeError(`not a one-row INSERT ... VALUES (...): ${sql}`);
    const tuple = sql.slice(sql.lastIndexOf("("));
    packed = sql + `, ${tuple}`.repeat(rows - 1);
    if (multiRowCache.size < 1024) multiRowCache.set(key, packed);
  }
  return packed;
}

/**
 * Splits rows for a one-row INSERT into packed statements: full multi-row statements
 * first, then the rows left over one at a time. Each part is `runMany(sql, params)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { packInsert } from "./sql.ts";
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
    parts.push({ sql: multiRowInsert(sql, per), params: chunks });
  }
  if (full * per < rows.length) {
    parts.push({ sql, params: rows.slice(full * per).map((row) => [...row]) });
  }
  return parts;
}

/**
 * Builds an UPDATE of the rows matching `where` (every row when absent).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildUpdate } from "./sql.ts";
 * const { sql, params } = buildUpdate("users", { name: "Bo" }, { id: 7 });
 * assert(sql === 'UPDATE "users" SET "name" = ? WHERE "id" = ?');
 * assert(params[0] === "Bo" && params[1] === 7);
 * ```
 */
export function buildUpdate(
  table: string,
  changes: Readonly<Record<string, SqlInput>>,
  where?: Where | undefined,
): SqlStatement {
  const target = quoteIdentifier(table, "table");
  const entries = rowEntries(changes, "changes");
  if (entries.length === 0) throw new InvalidQueryError("changes", "there is nothing to update");
  const filter = buildWhere(where);
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
 * import { buildDelete } from "./sql.ts";
 * assert(buildDelete("users", { id: 7 }).sql === 'DELETE FROM "users" WHERE "id" = ?');
 * ```
 */
export function buildDelete(table: string, where?: Where | undefined): SqlStatement {
  const target = quoteIdentifier(table, "table");
  const filter = buildWhere(where);
  return {
    sql: filter.sql === "" ? `DELETE FROM ${target}` : `DELETE FROM ${target} ${filter.sql}`,
    params: filter.params,
  };
}

/** Options of {@link buildCreateTable}. */
export interface CreateTableOptions {
  /** Add `IF NOT EXISTS`. */
  readonly ifNotExists?: boolean | undefined;
  /** A composite primary key, as a table constraint. */
  readonly primaryKey?: readonly string[] | undefined;
}

/**
 * Builds a CREATE TABLE from column names and definitions; each definition is checked
 * and normalised by {@link validateColumnDefinition}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildCreateTable } from "./sql.ts";
 * const { sql } = buildCreateTable("users", {
 *   id: "integer primary key",
 *   name: "TEXT NOT NULL DEFAULT 'anon'",
 * }, { ifNotExists: true });
 * assert(
 *   sql ===
 *     `CREATE TABLE IF NOT EXISTS "users" ("id" INTEGER PRIMARY KEY, "name" TEXT NOT NULL DEFAULT 'anon')`,
 * );
 * ```
 */
export function buildCreateTable(
  table: string,
  columns: Readonly<Record<string, string>>,
  options: CreateTableOptions = {},
): SqlStatement {
  const target = quoteIdentifier(table, "table");
  if (typeof columns !== "object" || columns === null || Array.isArray(columns)) {
    throw new InvalidSchemaError(undefined, describeKey(columns), "expected an object of columns");
  }
  const definitions = Object.entries(columns).map(([name, definition]) => {
    const column = validateIdentifier(name, "column");
    const normal = validateColumnDefinition(definition, column);
    return normal === "" ? `"${column}"` : `"${column}" ${normal}`;
  });
  if (definitions.length === 0) {
    throw new InvalidSchemaError(undefined, "", `table ${table} needs at least one column`);
  }
  if (options.primaryKey !== undefined) {
    if (!Array.isArray(options.primaryKey) || options.primaryKey.length === 0) {
      throw new InvalidQueryError("primaryKey", "expected a non-empty array of column names");
    }
    definitions.push(
      `PRIMARY KEY (${options.primaryKey.map((c) => quoteIdentifier(c, "column")).join(", ")})`,
    );
  }
  return {
    sql: `CREATE TABLE ${options.ifNotExists ? "IF NOT EXISTS " : ""}${target} (${
      definitions.join(", ")
    })`,
    params: [],
  };
}

/**
 * Builds a DROP TABLE.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildDropTable } from "./sql.ts";
 * assert(buildDropTable("users", { ifExists: true }).sql === 'DROP TABLE IF EXISTS "users"');
 * ```
 */
export function buildDropTable(
  table: string,
  options: { readonly ifExists?: boolean | undefined } = {},
): SqlStatement {
  return {
    sql: `DROP TABLE ${options.ifExists ? "IF EXISTS " : ""}${quoteIdentifier(table, "table")}`,
    params: [],
  };
}

type Token =
  | { readonly kind: "word"; readonly text: string; readonly upper: string }
  | { readonly kind: "number"; readonly text: string }
  | { readonly kind: "string"; readonly text: string }
  | { readonly kind: "punct"; readonly text: string };

function tokenize(definition: string, fail: (why: string) => never): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < definition.length) {
    const rest = definition.slice(i);
    const space = /^[ \t\r\n]+/.exec(rest);
    if (space) {
      i += space[0].length;
      continue;
    }
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest);
    if (word) {
      tokens.push({ kind: "word", text: word[0], upper: word[0].toUpperCase() });
      i += word[0].length;
      continue;
    }
    const number = /^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?(?![A-Za-z0-9_.])/.exec(
      rest,
    );
    if (number) {
      tokens.push({ kind: "number", text: number[0] });
      i += number[0].length;
      continue;
    }
    const string = /^'((?:[^']|'')*)'/.exec(rest);
    if (string) {
      tokens.push({ kind: "string", text: string[1]!.replaceAll("''", "'") });
      i += string[0].length;
      continue;
    }
    if (rest[0] === "'") fail(`unterminated string at offset ${i}`);
    // Any other character becomes a token the grammar refuses, so the message names the construct
    const char = String.fromCodePoint(rest.codePointAt(0)!);
    tokens.push({ kind: "punct", text: char });
    i += char.length;
  }
  return tokens;
}

const CONSTRAINT_WORDS = new Set([
  "PRIMARY",
  "NOT",
  "NULL",
  "UNIQUE",
  "DEFAULT",
  "COLLATE",
  "REFERENCES",
  "CHECK",
  "CONSTRAINT",
  "GENERATED",
  "AS",
  "ON",
  "KEY",
]);

/**
 * Checks a column definition for createTable against a small whitelist grammar and
 * returns it normalised (keywords upper case, single spaces, identifiers quoted):
 *
 * ```text
 * [type words (n[, m])]
 * ( PRIMARY KEY [ASC|DESC] [AUTOINCREMENT] | NOT NULL | NULL | UNIQUE
 * | DEFAULT (signed number | 'text' | NULL | TRUE | FALSE
 *            | CURRENT_TIMESTAMP | CURRENT_DATE | CURRENT_TIME)
 * | COLLATE (BINARY | NOCASE | RTRIM)
 * | REFERENCES table [(column)]
 *     [ON (DELETE | UPDATE) (CASCADE | SET NULL | SET DEFAULT | RESTRICT | NO ACTION)]... )...
 * ```
 *
 * Anything else (CHECK, GENERATED, expressions, comments, `;`) throws
 * {@link InvalidSchemaError}, a distinct error from identifiers since the fix differs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { validateColumnDefinition } from "./sql.ts";
 * assert(validateColumnDefinition("text  not null default 'it''s'") ===
 *   "TEXT NOT NULL DEFAULT 'it''s'");
 * assert(validateColumnDefinition("integer references users(id) on delete cascade") ===
 *   'INTEGER REFERENCES "users"("id") ON DELETE CASCADE');
 * ```
 */
export function validateColumnDefinition(definition: unknown, column?: string): string {
  const shown = typeof definition === "string" ? definition : describeKey(definition);
  const fail = (why: string): never => {
    throw new InvalidSchemaError(column, shown, why);
  };
  if (typeof definition !== "string") return fail("expected a string");
  if (definition.length > 1000) fail("it is longer than 1000 characters");
  const tokens = tokenize(definition, fail);
  let position = 0;
  const peek = (): Token | undefined => tokens[position];
  const peekWord = (): string | undefined => {
    const token = tokens[position];
    return token?.kind === "word" ? token.upper : undefined;
  };
  const takeWord = (...expected: string[]): string => {
    const word = peekWord();
    if (word === undefined || !expected.includes(word)) {
      const token = peek();
      fail(
        `expected ${expected.join(" or ")} ${
          token === undefined ? "at the end" : `instead of ${JSON.stringify(token.text)}`
        }`,
      );
    }
    position++;
    return word!;
  };
  const takePunct = (text: string): void => {
    const token = peek();
    if (token?.kind !== "punct" || token.text !== text) {
      fail(
        `expected "${text}" ${
          token === undefined ? "at the end" : `instead of ${JSON.stringify(token.text)}`
        }`,
      );
    }
    position++;
  };
  const takeSignedNumber = (): string => {
    let sign = "";
    const first = peek();
    if (first?.kind === "punct" && (first.text === "-" || first.text === "+")) {
      sign = first.text === "-" ? "-" : "";
      position++;
    }
    const token = peek();
    if (token?.kind !== "number") {
      return fail(
        `expected a number ${
          token === undefined ? "at the end" : `instead of ${JSON.stringify(token.text)}`
        }`,
      );
    }
    position++;
    return sign + token.text;
  };
  const referenced = (name: string, kind: string): string => {
    try {
      return quoteIdentifier(name, `referenced ${kind}`);
    } catch (error) {
      if (!(error instanceof InvalidIdentifierError)) throw error;
      return fail(`the referenced ${kind} name ${JSON.stringify(name)} is not allowed`);
    }
  };
  const out: string[] = [];

  const typeWords: string[] = [];
  while (peekWord() !== undefined && !CONSTRAINT_WORDS.has(peekWord()!)) {
    typeWords.push(peekWord()!);
    position++;
  }
  if (typeWords.length > 4) fail("the type name has more than 4 words");
  if (typeWords.length > 0) {
    let type = typeWords.join(" ");
    if (peek()?.kind === "punct" && peek()!.text === "(") {
      position++;
      type += `(${takeSignedNumber()}`;
      if (peek()?.kind === "punct" && peek()!.text === ",") {
        position++;
        type += `, ${takeSignedNumber()}`;
      }
      takePunct(")");
      type += ")";
    }
    out.push(type);
  }

  while (position < tokens.length) {
    const word = peekWord();
    if (word === undefined) fail(`unexpected ${JSON.stringify(peek()!.text)}`);
    position++;
    switch (word) {
      case "PRIMARY": {
        takeWord("KEY");
        let text = "PRIMARY KEY";
        if (peekWord() === "ASC" || peekWord() === "DESC") text += ` ${takeWord("ASC", "DESC")}`;
        if (peekWord() === "AUTOINCREMENT") text += ` ${takeWord("AUTOINCREMENT")}`;
        out.push(text);
        break;
      }
      case "NOT":
        takeWord("NULL");
        out.push("NOT NULL");
        break;
      case "NULL":
      case "UNIQUE":
        out.push(word);
        break;
      case "DEFAULT": {
        const token = peek();
        if (token?.kind === "string") {
          if (token.text.includes("\0")) fail("the default text contains a NUL character");
          position++;
          out.push(`DEFAULT '${token.text.replaceAll("'", "''")}'`);
        } else if (token?.kind === "word") {
          out.push(
            `DEFAULT ${
              takeWord("NULL", "TRUE", "FALSE", "CURRENT_TIMESTAMP", "CURRENT_DATE", "CURRENT_TIME")
            }`,
          );
        } else if (token?.kind === "number" || token?.text === "-" || token?.text === "+") {
          out.push(`DEFAULT ${takeSignedNumber()}`);
        } else {
          fail(
            `DEFAULT takes a number, a 'quoted string', NULL, TRUE, FALSE or CURRENT_TIMESTAMP, ` +
              `not ${token === undefined ? "nothing" : JSON.stringify(token.text)}`,
          );
        }
        break;
      }
      case "COLLATE":
        out.push(`COLLATE ${takeWord("BINARY", "NOCASE", "RTRIM")}`);
        break;
      case "REFERENCES": {
        const token = peek();
        if (token?.kind !== "word") return fail("REFERENCES needs a table name");
        position++;
        let text = `REFERENCES ${referenced(token.text, "table")}`;
        if (peek()?.kind === "punct" && peek()!.text === "(") {
          position++;
          const target = peek();
          if (target?.kind !== "word") return fail("REFERENCES table( needs a column name");
          position++;
          takePunct(")");
          text += `(${referenced(target.text, "column")})`;
        }
        while (peekWord() === "ON") {
          position++;
          const event = takeWord("DELETE", "UPDATE");
          const action = takeWord("CASCADE", "SET", "RESTRICT", "NO");
          const full = action === "SET"
            ? `SET ${takeWord("NULL", "DEFAULT")}`
            : action === "NO"
            ? `NO ${takeWord("ACTION")}`
            : action;
          text += ` ON ${event} ${full}`;
        }
        out.push(text);
        break;
      }
      default:
        fail(`${word} is not supported here`);
    }
  }
  return out.join(" ");
}

const AGGREGATE = /^\s*([A-Za-z]+)\s*\(\s*(\*|[A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$/;

/**
 * Parses an aggregate such as `"COUNT(*)"`, `"count(age)"` or `" max( age ) "`.
 * Only COUNT, SUM, AVG, MIN and MAX over one column (or `*` for COUNT) are accepted:
 * DISTINCT, expressions and other functions throw {@link InvalidQueryError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseAggregate } from "./sql.ts";
 * const { fn, column } = parseAggregate(" max( age ) ");
 * assert(fn === "MAX" && column === "age");
 * ```
 */
export function parseAggregate(expression: string): Aggregate {
  if (typeof expression !== "string") {
    throw new InvalidQueryError("aggregate", `expected a string, got ${describeKey(expression)}`);
  }
  const shown = JSON.stringify(expression.length > 80 ? expression.slice(0, 80) + "…" : expression);
  if (/\bdistinct\b/i.test(expression)) {
    throw new InvalidQueryError(
      "aggregate",
      `${shown}: DISTINCT cannot be combined across shards; fetch the distinct values instead`,
    );
  }
  const match = AGGREGATE.exec(expression);
  if (match === null) {
    throw new InvalidQueryError(
      "aggregate",
      `${shown} is not FN(column) or COUNT(*), with FN one of COUNT, SUM, AVG, MIN, MAX`,
    );
  }
  const fn = match[1]!.toUpperCase();
  if (fn !== "COUNT" && fn !== "SUM" && fn !== "AVG" && fn !== "MIN" && fn !== "MAX") {
    throw new InvalidQueryError(
      "aggregate",
      `${shown}: ${match[1]} is not one of COUNT, SUM, AVG, MIN, MAX`,
    );
  }
  const column = match[2]!;
  if (column === "*") {
    if (fn !== "COUNT") throw new InvalidQueryError("aggregate", `${shown}: only COUNT takes *`);
    return { fn, column };
  }
  return { fn, column: validateIdentifier(column, "column") };
}
