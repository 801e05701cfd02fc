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

/** A WHERE clause (with the leading `WHERE`, or `""` when nothing is filtered) and its values. */
export interface WhereClause {
  /** `WHERE ...` with `?` placeholders, or `""`. */
  readonly sql: string;
  /** The values for the placeholders, in order. */
  readonly params: SqlValue[];
}

function isFilter(value: unknown): value is ColumnFilter {
  return typeof value === "object" && value !== null && !(value instanceof Uint8Array) &&
    !Array.isArray(value);
}

const COMPARISONS = { lt: "<", lte: "<=", gt: ">", gte: ">=" } as const;

function filterTerms(
  column: string,
  filter: ColumnFilter,
  params: SqlValue[],
  checkText: TextCheck | undefined,
): string[] {
  const quoted = `"${column}"`;
  const terms: string[] = [];
  for (const [op, operand] of Object.entries(filter) as [string, unknown][]) {
    const at = `where.${column}.${op}`;
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
          throw new InvalidQueryError(at, `expected an array, got ${describeKey(operand)}`);
        }
        const values = operand.map((item) => toSqlValue(item, column, checkText));
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
        params.push(toSqlValue(operand, column, checkText));
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
 * when there is nothing to filter; `checkText` is the driver's rule for text. Plain values test equality (`null`: `IS NULL`);
 * operator objects allow `ne lt lte gt gte in notIn like isNull` (see {@link ColumnFilter}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildWhere } from "./where.ts";
 * const { sql, params } = buildWhere({ team: "red", age: { gte: 18 }, deleted: null });
 * assert(sql === 'WHERE "team" = ? AND "age" >= ? AND "deleted" IS NULL');
 * assert(params.length === 2);
 * ```
 */
export function buildWhere(
  where?: Where | undefined,
  checkText?: TextCheck | undefined,
): WhereClause {
  if (where === undefined) return { sql: "", params: [] };
  if (typeof where !== "object" || where === null || Array.isArray(where)) {
    throw new InvalidQueryError("where", `expected an object, got ${describeKey(where)}`);
  }
  const params: SqlValue[] = [];
  const terms: string[] = [];
  for (const [name, condition] of Object.entries(where)) {
    const column = validateIdentifier(name, "column");
    if (isFilter(condition)) {
      terms.push(...filterTerms(column, condition, params, checkText));
      continue;
    }
    const value = toSqlValue(condition, column, checkText);
    if (value === null) {
      terms.push(`"${column}" IS NULL`);
    } else {
      terms.push(`"${column}" = ?`);
      params.push(value);
    }
  }
  return { sql: terms.length === 0 ? "" : `WHERE ${terms.join(" AND ")}`, params };
}
