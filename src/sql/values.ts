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
 * Checks that a value can be bound and stored faithfully, and returns what to bind:
 * booleans become 0/1; NaN (SQLite would store NULL), bigints outside int64, strings
 * with lone surrogates or NUL characters (the driver truncates text at NUL), `undefined`, objects other than Uint8Array, functions and
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
