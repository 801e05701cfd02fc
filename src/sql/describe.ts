/**
 * Printable descriptions of values for error messages: short, typed, never the whole of
 * a long string.
 *
 * @module
 */

/**
 * A short printable description of any value, for error messages.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeKey } from "./describe.ts";
 * assert.equal(describeKey(1.5), "number 1.5");
 * assert.equal(describeKey(5n), "bigint 5n");
 * ```
 */
export function describeKey(key: unknown): string {
  switch (typeof key) {
    case "number":
      return `number ${Object.is(key, -0) ? "-0" : String(key)}`;
    case "bigint":
      return `bigint ${key}n`;
    case "string":
      return `string ${JSON.stringify(key.length > 60 ? key.slice(0, 60) + "…" : key)}`;
    case "object":
      if (key === null) return "null";
      if (key instanceof Uint8Array) return `Uint8Array(${key.length})`;
      return `object ${Object.prototype.toString.call(key)}`;
    case "undefined":
      return "undefined";
    default:
      return typeof key;
  }
}
