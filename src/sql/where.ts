/**
 * Builds WHERE clauses from filter objects: validated, quoted columns and bound values.
 *
 * @module
 */

import { InvalidQueryError } from "../errors.ts";
import type { SqlInput, SqlValue } from "../types.ts";
import { describeKey } from "./describe.ts";
import { validateIdentifier } from "./identifiers.ts";
import { type TextCheck, toSqlValue } from "./values.ts";

/**
 * Operators for one column of a filter; several operators in one object are AND-ed.
 * Comparisons follow SQLite: a NULL column value matches none of `ne`, `lt`, ..., `notIn`,
 * `like`, `glob`, `between` and `notBetween`.
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
  /**
   * One of the values; an empty array matches nothing, a `null` in it matches NULL. Any
   * length: up to 500 values are bound one `?` each (`IN (?, ?)`); a longer list is bound as
   * one JSON text (`IN (SELECT +value FROM json_each(?))`; Uint8Arrays as hex through
   * `unhex` in a second, integers a REAL column cannot hold exactly in a third) that keeps
   * each value's SQLite type, so it matches exactly the rows the short form matches.
   */
  readonly in?: readonly SqlInput[];
  /**
   * None of the values; an empty array matches everything, a `null` in it excludes NULL.
   * Lists of any length, bound as for `in`.
   */
  readonly notIn?: readonly SqlInput[];
  /** SQL `LIKE` pattern (`%`, `_`; ASCII case-insensitive, as in SQLite). */
  readonly like?: string;
  /** SQL `GLOB` pattern (`*`, `?`, `[...]`; case-sensitive, as in SQLite). */
  readonly glob?: string;
  /**
   * `[low, high]`, two non-null values: `column BETWEEN low AND high`, that is
   * `low <= column AND column <= high` (both bounds included).
   */
  readonly between?: readonly [SqlInput, SqlInput];
  /** `[low, high]`, two non-null values: `column NOT BETWEEN low AND high`. */
  readonly notBetween?: readonly [SqlInput, SqlInput];
  /** `true`: the column is NULL; `false`: it is not. */
  readonly isNull?: boolean;
}

/**
 * A filter: column name to a value (equality; `null` means `IS NULL`) or to a
 * {@link ColumnFilter}, plus the keywords `or` and `not`. All keys are AND-ed; an empty
 * filter matches every row.
 *
 * - **Keywords.** The keys `or` and `not`, spelt exactly so (lower case), are always the
 *   keywords below, whatever their value. To filter a column literally named `or` or `not`,
 *   spell its name in another case, `{ OR: 5 }` or `{ Not: { gt: 1 } }`: SQLite matches
 *   column names regardless of case.
 * - `or` and `not` nest (each sub-filter is a full `Where`) at most 32 levels deep.
 * - The index signature also admits arrays and filter objects under any name, because
 *   TypeScript cannot leave `or` and `not` out of it; under a column name they are refused
 *   when the clause is built.
 *
 * @example
 * ```ts
 * import type { Where } from "./where.ts";
 * const adultsOrStaff: Where = {
 *   team: "red",
 *   or: [{ age: { gte: 18 } }, { role: { in: ["staff", "admin"] } }],
 *   not: { name: { like: "test%" } },
 * };
 * ```
 */
export type Where = {
  /**
   * Rows matching at least one of the filters (SQL `OR`), AND-ed with the other keys. An
   * empty array is refused (it would match nothing).
   */
  readonly or?: readonly Where[];
  /**
   * Rows the filter is false for: SQL `NOT (filter)`, with SQL's three-valued logic. A row
   * for which the filter is unknown (NULL), e.g. `{ age: { gt: 30 } }` on a row whose `age`
   * is NULL, matches neither the filter nor its `not`; add `{ age: null }` through `or` to
   * include such rows.
   */
  readonly not?: Where;
  /** A column's condition: a value (equality, `null`: `IS NULL`) or a {@link ColumnFilter}. */
  readonly [column: string]: SqlInput | ColumnFilter | readonly Where[] | Where;
};

/** A WHERE clause (with the leading `WHERE`, or `""` when nothing is filtered) and its values. */
export interface WhereClause {
  /** `WHERE ...` with `?` placeholders, or `""`. */
  readonly sql: string;
  /** The values for the placeholders, in order. */
  readonly params: SqlValue[];
}

/** How deep `or` and `not` may nest. */
const MAX_NESTING = 32;
/** The longest `in`/`notIn` list bound one `?` per value; longer lists are one JSON text. */
const INLINE_LIST_MAX = 500;
/**
 * The most values one WHERE clause binds. Both drivers' SQLite binds at most 32766 per
 * statement; the rest is left to the statement around it (up to 2000 SET values, as SQLite
 * has at most 2000 columns, plus LIMIT and OFFSET).
 */
const MAX_PARAMS = 30_000;
/** AND/OR chains longer than this are split in halves: SQLite refuses trees 1000 deep. */
const FLAT_CHAIN_MAX = 32;

const OPERATORS = "eq, ne, lt, lte, gt, gte, in, notIn, like, glob, between, notBetween or isNull";
const COMPARISONS = { lt: "<", lte: "<=", gt: ">", gte: ">=" } as const;
const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"));

interface Context {
  readonly params: SqlValue[];
  readonly checkText: TextCheck | undefined;
}

function isFilter(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === "object" && value !== null && !(value instanceof Uint8Array) &&
    !Array.isArray(value);
}

function describe(value: unknown): string {
  return Array.isArray(value) ? `an array of ${value.length}` : describeKey(value);
}

function keywordHint(keyword: string): string {
  return `${keyword} is a keyword; to filter a column named ${keyword}, spell it in another ` +
    `case ({ ${keyword.toUpperCase()}: ... }), as SQLite column names ignore case`;
}

/** `terms` joined by `op`, in balanced halves when long (each half parenthesized). */
function chain(terms: readonly string[], op: "AND" | "OR"): string {
  if (terms.length <= FLAT_CHAIN_MAX) return terms.join(` ${op} `);
  const half = Math.ceil(terms.length / 2);
  return `(${chain(terms.slice(0, half), op)}) ${op} (${chain(terms.slice(half), op)})`;
}

/** Whether `term` is one parenthesized group (the SQL here holds no literals, only `?`). */
function enclosed(term: string): boolean {
  if (!term.startsWith("(")) return false;
  let open = 0;
  for (let i = 0; i < term.length; i++) {
    if (term[i] === "(") open++;
    else if (term[i] === ")" && --open === 0) return i === term.length - 1;
  }
  return false;
}

/** The AND of `terms` as one term that can stand beside OR or after NOT. */
function group(terms: readonly string[]): string {
  if (terms.length === 0) return "1";
  if (terms.length === 1) return terms[0]!;
  return `(${chain(terms, "AND")})`;
}

/** A value as JSON text that SQLite's json_each reads back as the value bound for it. */
function jsonValue(value: number | bigint | string): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "bigint":
      return String(value); // digits: INTEGER, exactly (int64 was checked)
    default:
      // the drivers bind safe integers as INTEGER and every other number as REAL: an
      // exponent makes the JSON number REAL, and the shortest round-trip digits are exact
      if (Number.isSafeInteger(value)) return String(value);
      if (Number.isFinite(value)) return value.toExponential();
      return value > 0 ? "9e999" : "-9e999";
  }
}

/** Text SQLite reads as an integer when it converts to a number (spaces, sign, digits). */
const INTEGER_TEXT = /^[ \t\n\v\f\r]*[+-]?[0-9]+[ \t\n\v\f\r]*$/;

/**
 * Whether SQLite's REAL affinity would round `value`: an integer, or text SQLite reads as
 * one, within int64 but not exactly a double. An IN subquery applies the comparison
 * affinity to its values before comparing (REAL turns such an integer into the nearest
 * double); a list of values compares them exactly.
 */
function roundedByReal(value: bigint | string): boolean {
  let integer = value;
  if (typeof integer === "string") {
    if (!INTEGER_TEXT.test(integer)) return false;
    integer = BigInt(integer.trim());
    if (integer < -(2n ** 63n) || integer >= 2n ** 63n) return false; // SQLite: REAL anyway
  }
  return BigInt(Number(integer)) !== integer;
}

/**
 * `column IN (...)` (or `NOT IN`): `(?, ?, ...)` for a short list, else subqueries over JSON
 * texts, one per kind of value: plain values (`+` drops json_each's BLOB affinity, so a
 * TEXT column converts numbers as it does for bound values), Uint8Arrays as hex, and
 * integers that REAL affinity would round, which cannot equal a REAL value exactly.
 */
function inSql(
  quoted: string,
  values: readonly NonNullable<SqlValue>[],
  negate: boolean,
  params: SqlValue[],
): string {
  if (values.length <= INLINE_LIST_MAX) {
    for (const value of values) params.push(value);
    return `${quoted} ${negate ? "NOT IN" : "IN"} (${values.map(() => "?").join(", ")})`;
  }
  const plain: string[] = [];
  const bytes: string[] = [];
  const rounded: string[] = [];
  for (const value of values) {
    if (value instanceof Uint8Array) {
      let hex = "";
      for (const byte of value) hex += HEX[byte];
      bytes.push(`"${hex}"`);
    } else if (typeof value !== "number" && roundedByReal(value)) {
      rounded.push(jsonValue(value));
    } else {
      plain.push(jsonValue(value));
    }
  }
  const selects: string[] = [];
  if (plain.length > 0) {
    selects.push("SELECT +value FROM json_each(?)");
    params.push(`[${plain.join(",")}]`);
  }
  if (bytes.length > 0) {
    selects.push("SELECT unhex(value) FROM json_each(?)");
    params.push(`[${bytes.join(",")}]`);
  }
  const list = selects.length === 0 ? undefined : `(${selects.join(" UNION ALL ")})`;
  if (rounded.length === 0) return `${quoted} ${negate ? "NOT IN" : "IN"} ${list}`;
  // compared exactly (the short form), such an integer equals no REAL value; a subquery
  // would compare its nearest double, so REAL values are left out of its match
  params.push(`[${rounded.join(",")}]`);
  const roundedArm =
    `(${quoted} IN (SELECT +value FROM json_each(?)) AND typeof(${quoted}) <> 'real')`;
  const either = list === undefined ? roundedArm : `(${quoted} IN ${list} OR ${roundedArm})`;
  return negate ? `NOT ${either}` : either;
}

function filterTerms(
  column: string,
  filter: Readonly<Record<string, unknown>>,
  path: string,
  context: Context,
): string[] {
  const { params, checkText } = context;
  const quoted = `"${column}"`;
  const terms: string[] = [];
  for (const [op, operand] of Object.entries(filter)) {
    const at = `${path}.${op}`;
    switch (op) {
      case "eq":
      case "ne": {
        const value = toSqlValue(operand, column, checkText);
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
        const value = toSqlValue(operand, column, checkText);
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
          throw new InvalidQueryError(at, `expected an array, got ${describe(operand)}`);
        }
        const nonNull: NonNullable<SqlValue>[] = [];
        let hasNull = false;
        for (const item of operand) {
          const value = toSqlValue(item, column, checkText);
          if (value === null) hasNull = true;
          else nonNull.push(value);
        }
        const list = nonNull.length === 0
          ? undefined
          : inSql(quoted, nonNull, op === "notIn", params);
        if (op === "in") {
          const parts = [list, hasNull ? `${quoted} IS NULL` : undefined].filter(Boolean);
          terms.push(
            parts.length === 0 ? "0" : parts.length === 1 ? parts[0]! : `(${parts.join(" OR ")})`,
          );
        } else {
          if (list !== undefined) terms.push(list);
          if (hasNull) terms.push(`${quoted} IS NOT NULL`);
          if (list === undefined && !hasNull) terms.push("1");
        }
        break;
      }
      case "like":
      case "glob":
        if (typeof operand !== "string") {
          throw new InvalidQueryError(at, `expected a string pattern, got ${describe(operand)}`);
        }
        terms.push(`${quoted} ${op.toUpperCase()} ?`);
        params.push(toSqlValue(operand, column, checkText));
        break;
      case "between":
      case "notBetween": {
        if (!Array.isArray(operand) || operand.length !== 2) {
          throw new InvalidQueryError(
            at,
            `expected [low, high], an array of two values, got ${describe(operand)}`,
          );
        }
        if (operand.some((bound) => bound === null || bound === undefined)) {
          throw new InvalidQueryError(
            at,
            "a null bound matches nothing; pass two non-null values (for an open range use " +
              "lt, lte, gt or gte)",
          );
        }
        const low = toSqlValue(operand[0], column, checkText);
        const high = toSqlValue(operand[1], column, checkText);
        terms.push(`${quoted} ${op === "between" ? "BETWEEN" : "NOT BETWEEN"} ? AND ?`);
        params.push(low, high);
        break;
      }
      case "isNull":
        if (typeof operand !== "boolean") {
          throw new InvalidQueryError(at, `expected true or false, got ${describe(operand)}`);
        }
        terms.push(`${quoted} IS ${operand ? "" : "NOT "}NULL`);
        break;
      case "or":
      case "not":
        throw new InvalidQueryError(
          at,
          `unknown operator; ${op} combines filters and goes beside column names, ` +
            `as in { ${op === "or" ? "or: [{ a: 1 }, { a: 2 }]" : "not: { a: 1 }"} }`,
        );
      default:
        throw new InvalidQueryError(at, `unknown operator; use ${OPERATORS}`);
    }
  }
  if (terms.length === 0) {
    throw new InvalidQueryError(path, `the operator object is empty; use ${OPERATORS}`);
  }
  return terms;
}

/** The AND-ed terms of one filter object, each of which can stand beside OR or after NOT. */
function whereTerms(
  where: Readonly<Record<string, unknown>>,
  path: string,
  depth: number,
  context: Context,
): string[] {
  const terms: string[] = [];
  for (const [name, condition] of Object.entries(where)) {
    if (name === "or") {
      terms.push(orTerm(condition, `${path}.or`, depth, context));
      continue;
    }
    if (name === "not") {
      if (!isFilter(condition)) {
        throw new InvalidQueryError(
          `${path}.not`,
          `expected a filter object, got ${describe(condition)}; ${keywordHint("not")}`,
        );
      }
      const inner = nested(condition, `${path}.not`, depth + 1, context);
      const only = inner.length === 1 ? inner[0]! : "";
      terms.push(
        `NOT ${enclosed(only) ? only : `(${inner.length === 0 ? "1" : chain(inner, "AND")})`}`,
      );
      continue;
    }
    const column = validateIdentifier(name, "column");
    if (isFilter(condition)) {
      terms.push(...filterTerms(column, condition, `${path}.${column}`, context));
      continue;
    }
    const value = toSqlValue(condition, column, context.checkText);
    if (value === null) {
      terms.push(`"${column}" IS NULL`);
    } else {
      terms.push(`"${column}" = ?`);
      context.params.push(value);
    }
  }
  return terms;
}

function nested(where: unknown, path: string, depth: number, context: Context): string[] {
  if (depth > MAX_NESTING) {
    throw new InvalidQueryError(
      path,
      `or and not nest more than ${MAX_NESTING} levels deep; flatten the filter`,
    );
  }
  if (!isFilter(where)) {
    throw new InvalidQueryError(path, `expected a filter object, got ${describe(where)}`);
  }
  return whereTerms(where, path, depth, context);
}

function orTerm(branches: unknown, path: string, depth: number, context: Context): string {
  if (!Array.isArray(branches)) {
    throw new InvalidQueryError(
      path,
      `expected an array of filters, got ${describe(branches)}; ${keywordHint("or")}`,
    );
  }
  if (branches.length === 0) {
    throw new InvalidQueryError(path, "an empty or matches nothing; pass at least one filter");
  }
  const parts = branches.map((branch, i) =>
    group(nested(branch, `${path}[${i}]`, depth + 1, context))
  );
  return parts.length === 1 ? parts[0]! : `(${chain(parts, "OR")})`;
}

/**
 * Builds a WHERE clause (with the leading `WHERE`) from a filter, or an empty string
 * when there is nothing to filter; `checkText` is the driver's rule for text, applied to
 * every operand. Plain values test equality (`null`: `IS NULL`); operator objects allow
 * `eq ne lt lte gt gte in notIn like glob between notBetween isNull` (see
 * {@link ColumnFilter}); `or: [filter, ...]` and `not: filter` combine whole filters (see
 * {@link Where}). Columns are validated and quoted, and every value is bound. Bad input
 * throws {@link InvalidQueryError} naming the option, such as `where.or[1].age.between`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildWhere } from "./where.ts";
 * const { sql, params } = buildWhere({ team: "red", age: { gte: 18 }, deleted: null });
 * assert(sql === 'WHERE "team" = ? AND "age" >= ? AND "deleted" IS NULL');
 * assert(params.length === 2);
 *
 * const filter = buildWhere({
 *   or: [{ age: { between: [18, 30] } }, { team: { in: ["red", "blue"] } }],
 *   not: { name: { like: "test%" } },
 *   id: { in: Array.from({ length: 1000 }, (_, i) => i) }, // long: one JSON parameter
 * });
 * assert.equal(
 *   filter.sql,
 *   'WHERE ("age" BETWEEN ? AND ? OR "team" IN (?, ?)) AND NOT ("name" LIKE ?) AND ' +
 *     '"id" IN (SELECT +value FROM json_each(?))',
 * );
 * assert.deepEqual(filter.params.slice(0, 5), [18, 30, "red", "blue", "test%"]);
 * assert.equal(filter.params[5], `[${Array.from({ length: 1000 }, (_, i) => i).join(",")}]`);
 * ```
 */
export function buildWhere(
  where?: Where | undefined,
  checkText?: TextCheck | undefined,
): WhereClause {
  if (where === undefined) return { sql: "", params: [] };
  if (!isFilter(where)) {
    throw new InvalidQueryError("where", `expected an object, got ${describe(where)}`);
  }
  const context: Context = { params: [], checkText };
  const terms = whereTerms(where, "where", 0, context);
  if (context.params.length > MAX_PARAMS) {
    throw new InvalidQueryError(
      "where",
      `the filter binds ${context.params.length} values, more than the ${MAX_PARAMS} allowed ` +
        `(SQLite binds at most 32766 per statement); gather equality alternatives of one ` +
        `column into one in list (a list of more than ${INLINE_LIST_MAX} values binds as one)`,
    );
  }
  return {
    sql: terms.length === 0 ? "" : `WHERE ${chain(terms, "AND")}`,
    params: context.params,
  };
}

/**
 * The key that filters `column` in a {@link Where}: the column itself, or for a column
 * literally named `or` or `not` (where's keywords) its upper-case spelling, which SQLite
 * takes for the same column.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { whereKeyOf } from "./where.ts";
 * assert.equal(whereKeyOf("age"), "age");
 * assert.equal(whereKeyOf("or"), "OR");
 * ```
 */
export function whereKeyOf(column: string): string {
  return column === "or" || column === "not" ? column.toUpperCase() : column;
}
