/**
 * Checks values before they are bound: values are never spliced into SQL, and a value
 * that SQLite or the driver would not store faithfully is refused before it is bound.
 *
 * @module
 */

import { InvalidValueError } from "../errors.ts";
import type { SqlValue } from "../types.ts";
import { describeKey } from "./describe.ts";

/**
 * A driver's rule for text (`Driver.checkText`): why it cannot store `text` and
 * read it back intact, or `undefined` when it can.
 */
export type TextCheck = (text: string) => string | undefined;

/**
 * Checks that a value can be bound and stored faithfully, and returns what to bind:
 * booleans become 0/1; NaN (SQLite would store NULL), bigints outside int64, strings
 * with lone surrogates, strings the driver's `checkText` refuses (both built-in drivers
 * refuse NUL characters), `undefined`, objects other than Uint8Array, functions and
 * symbols throw {@link InvalidValueError} naming `column`. ±Infinity is allowed
 * (stored as REAL infinity).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toSqlValue } from "./values.ts";
 * assert(toSqlValue(true, "active") === 1);
 * ```
 */
export function toSqlValue(
  value: unknown,
  column: string,
  checkText?: TextCheck | undefined,
): SqlValue {
  switch (typeof value) {
    case "string":
      if (!value.isWellFormed()) {
        throw new InvalidValueError(column, "the string has a lone surrogate (invalid Unicode)");
      }
      if (checkText !== undefined) {
        const problem = checkText(value);
        if (problem !== undefined) throw new InvalidValueError(column, problem);
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
