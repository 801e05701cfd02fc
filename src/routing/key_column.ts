/**
 * What a shard key is once SQLite has stored it. A row's key is the value SQLite keeps
 * in the table's shard-key column, and that depends on the column's type affinity, not
 * on the JavaScript type the caller passed: `"7"` and `7` are one value in an INTEGER
 * column, and `7` is the text `"7"` in a TEXT column. {@link storedKey} turns any key a
 * caller passes into that stored value (or refuses it), and {@link routingKey} into the
 * value a strategy routes by, so that two keys SQLite stores alike always share a shard.
 *
 * | affinity (declared type) | number / bigint | string | Uint8Array |
 * | --- | --- | --- | --- |
 * | INTEGER (`INT` in the name), NUMERIC (anything else) | the integer | the integer it spells (`"007"`, `" 7 "`, `"7.0"`, `"1e3"`); other text stays text | bytes |
 * | REAL (`REAL`, `FLOA`, `DOUB`) | the integer (stored as REAL) | the integer it spells; other text stays text | bytes |
 * | TEXT (`CHAR`, `CLOB`, `TEXT`) | its decimal text | the string | bytes |
 * | BLOB (`BLOB` or no type) | the integer | the string | bytes |
 *
 * A rowid alias (`INTEGER PRIMARY KEY`) and the columns of a STRICT table keep only their
 * own class: a key that would not convert (`"abc"` for an INTEGER PRIMARY KEY) is refused.
 * Fractional numbers (and text spelling one, in a numeric column) are refused everywhere:
 * they are stored as REAL, and a REAL's text form and rounding make it a poor key.
 *
 * @module
 */

import { InvalidShardKeyError } from "../errors.ts";
import { describeKey, normalizeKey, type ShardKey } from "./keys.ts";
import type { TextCheck } from "../sql/values.ts";
import type { ShardingStrategy } from "./strategies.ts";

/** SQLite's type affinities, as its rules derive them from a declared column type. */
export type KeyAffinity = "INTEGER" | "TEXT" | "BLOB" | "REAL" | "NUMERIC";

/**
 * How a directory hashes keys, recorded in its shard map as `keyForm`:
 * - `1`: directories made before key forms existed. A stored key is hashed by its storage
 *   class: the text `"7"` and the integer `7` are different keys.
 * - `2`: an integer and its canonical decimal text (`"7"`, `"-12"`; no sign, zeros or
 *   spaces added) are one key, so calls that name no table (`transaction(key)`,
 *   `query(key)`) route `7`, `7n` and `"7"` alike, whatever the tables' key types.
 */
export type KeyForm = 1 | 2;

/** The key form of new directories. */
export const CURRENT_KEY_FORM: KeyForm = 2;

/** A table's shard-key column: what is needed to tell how SQLite stores a key in it. */
export interface KeyColumn {
  /** The table. */
  readonly table: string;
  /** The shard-key column. */
  readonly column: string;
  /** The column's declared type as written (`""` when it has none). */
  readonly declaredType: string;
  /** The affinity SQLite derives from the declared type. */
  readonly affinity: KeyAffinity;
  /**
   * True when the column keeps only values of its own class (a rowid alias, `INTEGER
   * PRIMARY KEY`, or a column of a STRICT table): a key that does not convert is refused.
   */
  readonly strict: boolean;
  /** True for the table's rowid alias (`INTEGER PRIMARY KEY`). */
  readonly rowidAlias: boolean;
}

/**
 * The affinity SQLite gives a declared column type (its rules, in their order).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { affinityOf } from "./key_column.ts";
 * assert.equal(affinityOf("VARCHAR(20)"), "TEXT");
 * assert.equal(affinityOf("BIGINT"), "INTEGER");
 * assert.equal(affinityOf(""), "BLOB");
 * assert.equal(affinityOf("DECIMAL(10,2)"), "NUMERIC");
 * ```
 */
export function affinityOf(declaredType: string): KeyAffinity {
  const type = declaredType.toUpperCase();
  if (type.includes("INT")) return "INTEGER";
  if (type.includes("CHAR") || type.includes("CLOB") || type.includes("TEXT")) return "TEXT";
  if (type.includes("BLOB") || type.trim() === "") return "BLOB";
  if (type.includes("REAL") || type.includes("FLOA") || type.includes("DOUB")) return "REAL";
  return "NUMERIC";
}

/**
 * Describes a shard-key column from its schema: its declared type, whether it is the
 * table's rowid alias, and whether the table is STRICT (where `ANY` converts nothing).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { keyColumnOf } from "./key_column.ts";
 * const id = keyColumnOf("users", "id", "INTEGER", { rowidAlias: true, strictTable: false });
 * assert.equal(id.affinity, "INTEGER");
 * assert.equal(id.strict, true);
 * ```
 */
export function keyColumnOf(
  table: string,
  column: string,
  declaredType: string,
  options: { rowidAlias: boolean; strictTable: boolean },
): KeyColumn {
  const anyInStrict = options.strictTable && declaredType.trim().toUpperCase() === "ANY";
  return {
    table,
    column,
    declaredType,
    affinity: anyInStrict ? "BLOB" : affinityOf(declaredType),
    strict: options.rowidAlias || (options.strictTable && !anyInStrict),
    rowidAlias: options.rowidAlias,
  };
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const TWO_63 = 2 ** 63;
// SQLite's own whitespace (sqlite3Isspace), which its numeric conversion skips at both ends
const SQL_SPACE = /^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g;
const INTEGER_LITERAL = /^[+-]?[0-9]+$/;
const REAL_LITERAL = /^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
const CANONICAL_DECIMAL = /^(?:0|-?[1-9][0-9]{0,18})$/;

/** An exact integer as the library keeps it: a number when safe, else a bigint. */
function exact(value: bigint): number | bigint {
  return value >= -9007199254740991n && value <= 9007199254740991n ? Number(value) : value;
}

function refuse(key: unknown, column: KeyColumn, reason: string): never {
  const declaredType = column.rowidAlias
    ? `${column.declaredType} PRIMARY KEY`
    : column.strict
    ? `${column.declaredType} in a STRICT table`
    : column.declaredType;
  throw new InvalidShardKeyError(describeKey(key), reason, { ...column, declaredType });
}

function classWord(affinity: KeyAffinity): string {
  return affinity === "INTEGER" ? "an integer" : affinity === "REAL" ? "a number" : "text";
}

/** The integer SQLite makes of a REAL in a numeric column, or undefined when none. */
function integralReal(value: number): number | bigint | undefined {
  if (!Number.isInteger(value) || value <= -TWO_63 || value >= TWO_63) return undefined;
  return exact(BigInt(value));
}

/** A key that is an exact integer, stored in `column`. */
function storeInteger(key: unknown, value: number | bigint, column: KeyColumn): ShardKey {
  switch (column.affinity) {
    case "TEXT":
      return String(value);
    case "REAL":
      // Stored as REAL: beyond 2^53 an integer may round, and SQLite then finds the stored
      // row by neither the integer given nor its rounded value consistently.
      if (typeof value === "bigint" && (value > 2n ** 53n || value < -(2n ** 53n))) {
        refuse(
          key,
          column,
          `a REAL column holds integers exactly only up to 2^53 (it would store ${
            Number(value)
          }); use an INTEGER shard-key column for such keys`,
        );
      }
      return value;
    case "BLOB":
      if (column.strict) refuse(key, column, "a BLOB column of a STRICT table stores only bytes");
      return value;
    default:
      return value;
  }
}

/** A key that is text, stored in `column`. */
function storeText(key: string, column: KeyColumn, checkText: TextCheck | undefined): ShardKey {
  if (!key.isWellFormed()) return normalizeKey(key); // refuses, naming the lone surrogate
  const problem = checkText?.(key);
  if (problem !== undefined) refuse(key, column, problem);
  switch (column.affinity) {
    case "TEXT":
      return key;
    case "BLOB":
      if (column.strict) refuse(key, column, "a BLOB column of a STRICT table stores only bytes");
      return key;
    default: {
      const number = key.replace(SQL_SPACE, "");
      if (INTEGER_LITERAL.test(number)) {
        const integer = BigInt(number);
        if (integer >= INT64_MIN && integer <= INT64_MAX) {
          return storeInteger(key, exact(integer), column);
        }
      }
      if (REAL_LITERAL.test(number)) {
        const real = Number(number);
        const integer = integralReal(real);
        if (integer !== undefined) return storeInteger(key, integer, column);
        refuse(
          key,
          column,
          Number.isInteger(real)
            ? "SQLite would store it as a REAL beyond the 64-bit integer range"
            : `SQLite would store it as the REAL ${real}; fractional numbers are not shard ` +
              `keys (use an integer, or a TEXT shard-key column for such text)`,
        );
      }
      if (column.strict) {
        refuse(
          key,
          column,
          `expected ${classWord(column.affinity)}: the column stores only ${
            column.affinity === "REAL" ? "numbers" : "integers"
          }, and the text does not spell one`,
        );
      }
      return key; // non-numeric text stays text in a numeric column
    }
  }
}

/**
 * The value SQLite stores for `key` in `column` (see the module documentation): the
 * value a row holds, and routes by. Without a column (a call that names no table), the
 * key itself, checked. `checkText` is the driver's rule for text (see `Driver.checkText`).
 * Throws {@link InvalidShardKeyError} saying what was expected.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { keyColumnOf, storedKey } from "./key_column.ts";
 * const id = keyColumnOf("users", "id", "INTEGER", { rowidAlias: true, strictTable: false });
 * assert.equal(storedKey("007", id), 7);
 * assert.throws(() => storedKey("abc", id), /expected an integer/);
 * const name = keyColumnOf("users", "name", "TEXT", { rowidAlias: false, strictTable: false });
 * assert.equal(storedKey(7n, name), "7");
 * ```
 */
export function storedKey(
  key: unknown,
  column: KeyColumn | undefined,
  checkText?: TextCheck | undefined,
): ShardKey {
  if (column === undefined) return normalizeKey(key);
  switch (typeof key) {
    case "number":
      if (Number.isSafeInteger(key)) return storeInteger(key, key === 0 ? 0 : key, column);
      if (Number.isFinite(key) && !Number.isInteger(key)) {
        refuse(
          key,
          column,
          column.affinity === "TEXT"
            ? "fractional numbers are not shard keys; pass the text you mean as a string"
            : column.strict && column.affinity === "INTEGER"
            ? "expected an integer: the column stores only integers"
            : "fractional numbers are not shard keys (SQLite stores them as REAL); use an integer",
        );
      }
      return normalizeKey(key); // refuses NaN, infinities and unsafe integers, saying why
    case "bigint":
      return storeInteger(key, normalizeKey(key) as number | bigint, column);
    case "string":
      return storeText(key, column, checkText);
    case "object":
      if (key instanceof Uint8Array) {
        if (column.strict && column.affinity !== "BLOB") {
          refuse(key, column, `expected ${classWord(column.affinity)}, not bytes`);
        }
        return key;
      }
      if (key === null) refuse(key, column, "a shard key cannot be NULL");
      return normalizeKey(key);
    case "boolean":
      return refuse(key, column, "a boolean is not a shard key; pass 1 or 0");
    default:
      return refuse(key, column, `a ${typeof key} is not a shard key`);
  }
}

/** What keys a strategy routes: any value, only integers, or only text (range strategies). */
export type KeyDomain = "any" | "integer" | "text";

/**
 * The value a strategy routes a stored key by. In key form 2 (and always for a range
 * strategy, whose integer or text boundaries refused the other kind before), an integer
 * and its canonical decimal text are one key: a strategy over integers or any values
 * sees the integer, one over text sees the text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { routingKey } from "./key_column.ts";
 * assert.equal(routingKey("7", 2, "any"), 7);
 * assert.equal(routingKey("007", 2, "any"), "007");
 * assert.equal(routingKey("7", 1, "any"), "7");
 * assert.equal(routingKey(7, 1, "text"), "7");
 * ```
 */
export function routingKey(stored: ShardKey, form: KeyForm, domain: KeyDomain): ShardKey {
  if (typeof stored === "string") {
    if ((form === 1 && domain === "any") || domain === "text") return stored;
    if (!CANONICAL_DECIMAL.test(stored)) return stored;
    const integer = BigInt(stored);
    return integer >= INT64_MIN && integer <= INT64_MAX ? exact(integer) : stored;
  }
  if (domain === "text" && (typeof stored === "number" || typeof stored === "bigint")) {
    return String(stored);
  }
  return stored;
}

/**
 * True when two stored keys are the same value (numbers and bigints compare exactly).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sameStoredKey } from "./key_column.ts";
 * assert(sameStoredKey(5, 5n));
 * assert(!sameStoredKey(5, "5"));
 * ```
 */
export function sameStoredKey(a: ShardKey, b: ShardKey): boolean {
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    if (!(a instanceof Uint8Array && b instanceof Uint8Array) || a.length !== b.length) {
      return false;
    }
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  if (typeof a === "string" || typeof b === "string") return a === b;
  return BigInt(a) === BigInt(b);
}

/**
 * The shard `strategy` assigns a stored key in key form `form` (see {@link routingKey}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HashStrategy } from "./strategies.ts";
 * import { shardOfStored } from "./key_column.ts";
 * const strategy = new HashStrategy(8);
 * assert.equal(shardOfStored(strategy, "42", 2), strategy.getShardId(42));
 * ```
 */
export function shardOfStored(strategy: ShardingStrategy, stored: ShardKey, form: KeyForm): number {
  return strategy.getShardId(routingKey(stored, form, strategy.keyDomain ?? "any"));
}

/**
 * A shard-key value as read back from a shard: an integer the driver returned as a
 * number beyond 2^53 (exact there, unlike one a caller passes) becomes its bigint, so
 * {@link storedKey} accepts it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { keyFromRow } from "./key_column.ts";
 * assert.equal(keyFromRow(2 ** 53), 2n ** 53n);
 * assert.equal(keyFromRow("a"), "a");
 * ```
 */
export function keyFromRow(value: unknown): unknown {
  return typeof value === "number" && Number.isInteger(value) && !Number.isSafeInteger(value) &&
      Math.abs(value) < TWO_63
    ? BigInt(value)
    : value;
}
