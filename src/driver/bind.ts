/**
 * How a value is bound by a driver whose engine takes every JavaScript number as REAL
 * (node:sqlite, libSQL's hrana): the way node-sqlite3-wasm binds it, so that every driver
 * stores the same value the same way.
 *
 * @module
 */

/** A value such an engine binds: a bigint is its only way to bind an INTEGER. */
export type BoundValue = bigint | number | string | Uint8Array | null;

function unsupported(value: unknown): TypeError {
  return new TypeError(`Unsupported type for binding: "${typeof value}"`);
}

/**
 * One value, bound as node-sqlite3-wasm binds it: safe integers and booleans as INTEGER
 * (a bigint), other numbers as REAL, strings, bigints, bytes and null as they are.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bindLikeWasm } from "./bind.ts";
 * assert.equal(bindLikeWasm(7), 7n);
 * assert.equal(bindLikeWasm(true), 1n);
 * assert.equal(bindLikeWasm(0.5), 0.5);
 * ```
 */
export function bindLikeWasm(value: unknown): BoundValue {
  switch (typeof value) {
    case "number":
      return Number.isSafeInteger(value) ? BigInt(value) : value;
    case "string":
    case "bigint":
      return value;
    case "boolean":
      return value ? 1n : 0n;
    case "object":
      if (value === null || value instanceof Uint8Array) return value;
      throw unsupported(value);
    default:
      throw unsupported(value);
  }
}
