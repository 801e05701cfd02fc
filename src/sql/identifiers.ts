/**
 * Validates and quotes SQL identifiers (table and column names). A name reaches SQL only
 * if it matches `^[A-Za-z_][A-Za-z0-9_]*$` (1 to 128 characters, not starting with
 * `sqlite_`), and always double-quoted.
 *
 * @module
 */

import { InvalidIdentifierError } from "../errors.ts";
import { describeKey } from "./describe.ts";

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
 * import { validateIdentifier } from "./identifiers.ts";
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
 * import { quoteIdentifier } from "./identifiers.ts";
 * assert(quoteIdentifier("order", "column") === '"order"');
 * ```
 */
export function quoteIdentifier(name: unknown, kind = "identifier"): string {
  return `"${validateIdentifier(name, kind)}"`;
}
