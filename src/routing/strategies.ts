/**
 * Sharding strategies: pure functions from a shard key to a shard id, and the
 * JSON-safe descriptors that persist them in the shard map.
 *
 * Keys are canonicalised as described in `./keys.ts` (a compatibility promise):
 * integers (safe-integer numbers, `-0` as `0`, bigints within int64) route by value, so
 * `5` and `5n` land on the same shard; strings by their UTF-8 bytes; Uint8Arrays by
 * their bytes. Anything else throws {@link InvalidShardKeyError}.
 *
 * @module
 */

import {
  InvalidShardKeyError,
  InvalidStrategyDescriptorError,
  ShardKeyNotMappedError,
} from "../errors.ts";
import {
  canonicalKeyBytes,
  compareBytes,
  compareIntegers,
  compareText,
  describeKey,
  jumpHash,
  normalizeKey,
  type ShardKey,
  stableHashModulo,
} from "./keys.ts";

export type { ShardKey } from "./keys.ts";

/** The largest number of shards a strategy accepts. */
export const MAX_SHARDS = 65536;

/**
 * A key as written in a descriptor: a safe integer as a number, a text key as a string,
 * an integer beyond 2^53 as `{ bigint: "<decimal>" }`, bytes as `{ bytes: "<lowercase hex>" }`.
 */
export type DescriptorKey = number | string | { readonly bigint: string } | {
  readonly bytes: string;
};

/** Descriptor of a {@link HashStrategy}. */
export interface HashDescriptor {
  /** Discriminant. */
  readonly type: "hash";
  /** The number of shards. */
  readonly numShards: number;
}

/** Descriptor of a {@link ModuloStrategy}. */
export interface ModuloDescriptor {
  /** Discriminant. */
  readonly type: "modulo";
  /** The number of shards. */
  readonly numShards: number;
}

/** Descriptor of a {@link RangeStrategy}. */
export interface RangeDescriptor {
  /** Discriminant. */
  readonly type: "range";
  /** The number of shards: `boundaries.length + 1`. */
  readonly numShards: number;
  /** Strictly ascending boundaries, all integers (numbers or `{ bigint }`) or all strings. */
  readonly boundaries: readonly DescriptorKey[];
}

/** Descriptor of a {@link LookupStrategy}. */
export interface LookupDescriptor {
  /** Discriminant. */
  readonly type: "lookup";
  /** The number of shards: the fallback's, or the largest pinned id + 1, whichever is larger. */
  readonly numShards: number;
  /** `[key, shardId]` pairs, sorted by the keys' canonical bytes. */
  readonly entries: readonly (readonly [DescriptorKey, number])[];
  /** The strategy for keys not in `entries`, if any. */
  readonly fallback?: StrategyDescriptor;
}

/**
 * A JSON-safe description of a strategy, persisted in the shard map. Rebuild the
 * strategy with {@link strategyFromDescriptor}; compare layouts with {@link sameLayout}.
 */
export type StrategyDescriptor =
  | HashDescriptor
  | ModuloDescriptor
  | RangeDescriptor
  | LookupDescriptor;

/** Maps shard keys to shard ids `0 .. numShards-1`. Implementations are pure and synchronous. */
export interface ShardingStrategy {
  /** How many shards the strategy spreads keys over. */
  readonly numShards: number;
  /** The shard of `key`; throws {@link InvalidShardKeyError} for a key it cannot route. */
  getShardId(key: ShardKey): number;
  /** Every shard id, ascending: `0 .. numShards-1`. */
  getAllShardIds(): number[];
  /** The JSON-safe descriptor to persist. */
  describe(): StrategyDescriptor;
  /**
   * Which keys the strategy routes: `"integer"` or `"text"` for one kind only (a range
   * strategy), `"any"` (or absent) for every kind. A router gives an integer-only strategy
   * the integer a canonical decimal string spells, and a text-only one an integer's text.
   */
  readonly keyDomain?: "any" | "integer" | "text";
}

function checkShardCount(value: unknown, name: string): number {
  if (typeof value !== "number") {
    throw new TypeError(`${name} must be a number, got ${describeKey(value)}`);
  }
  if (!Number.isSafeInteger(value) || value < 1 || value > MAX_SHARDS) {
    throw new RangeError(`${name} must be an integer from 1 to ${MAX_SHARDS}, got ${value}`);
  }
  return value;
}

function allIds(numShards: number): number[] {
  const ids = new Array<number>(numShards);
  for (let i = 0; i < numShards; i++) ids[i] = i;
  return ids;
}

/**
 * Consistent hashing: the stable 64-bit hash of the key's canonical bytes (FNV-1a 64,
 * then MurmurHash3's fmix64) fed to Lamping & Veach's jump consistent hash. Growing
 * from N to N+1 shards moves about 1/(N+1) of the keys, all into the new shard.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HashStrategy } from "./strategies.ts";
 * const strategy = new HashStrategy(4);
 * const shard = strategy.getShardId("user-17");
 * assert(shard >= 0 && shard < 4);
 * assert(strategy.getShardId(5) === strategy.getShardId(5n));
 * ```
 */
export class HashStrategy implements ShardingStrategy {
  /** The number of shards. */
  readonly numShards: number;

  /** Creates a strategy over `numShards` shards (1 to 65536). */
  constructor(numShards: number) {
    this.numShards = checkShardCount(numShards, "numShards");
  }

  /** The shard of `key`. */
  getShardId(key: ShardKey): number {
    return jumpHash(key, this.numShards);
  }

  /** Every shard id. */
  getAllShardIds(): number[] {
    return allIds(this.numShards);
  }

  /** `{ type: "hash", numShards }`. */
  describe(): HashDescriptor {
    return { type: "hash", numShards: this.numShards };
  }
}

/**
 * Modulo sharding: `|key| % numShards` for integer keys (numbers and bigints alike);
 * for strings and bytes, the stable 64-bit hash (see {@link HashStrategy}) modulo
 * `numShards`. Simple and predictable, but changing `numShards` moves most keys.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ModuloStrategy } from "./strategies.ts";
 * const strategy = new ModuloStrategy(4);
 * assert(strategy.getShardId(10) === 2);
 * assert(strategy.getShardId(-10n) === 2);
 * ```
 */
export class ModuloStrategy implements ShardingStrategy {
  /** The number of shards. */
  readonly numShards: number;
  readonly #bigShards: bigint;

  /** Creates a strategy over `numShards` shards (1 to 65536). */
  constructor(numShards: number) {
    this.numShards = checkShardCount(numShards, "numShards");
    this.#bigShards = BigInt(this.numShards);
  }

  /** The shard of `key`. */
  getShardId(key: ShardKey): number {
    if (typeof key === "number" && Number.isSafeInteger(key)) {
      return Math.abs(key) % this.numShards;
    }
    if (typeof key === "bigint") {
      const value = normalizeKey(key) as number | bigint;
      if (typeof value === "number") return Math.abs(value) % this.numShards;
      return Number((value < 0n ? -value : value) % this.#bigShards);
    }
    return stableHashModulo(key, this.numShards);
  }

  /** Every shard id. */
  getAllShardIds(): number[] {
    return allIds(this.numShards);
  }

  /** `{ type: "modulo", numShards }`. */
  describe(): ModuloDescriptor {
    return { type: "modulo", numShards: this.numShards };
  }
}

/** A range boundary after normalisation: an exact integer (a number when safe) or a string. */
export type RangeBoundary = number | bigint | string;

function encodeKey(key: ShardKey): DescriptorKey {
  if (typeof key === "bigint") return { bigint: key.toString() };
  if (key instanceof Uint8Array) {
    let hex = "";
    for (const byte of key) hex += byte.toString(16).padStart(2, "0");
    return { bytes: hex };
  }
  return key;
}

/**
 * Range sharding over strictly ascending boundaries: shard `i` holds the keys `k` with
 * `boundaries[i-1] <= k < boundaries[i]` (shard 0 everything below `boundaries[0]`,
 * the last shard everything from the last boundary up), so there are
 * `boundaries.length + 1` shards. Boundaries are all integers (numbers or bigints,
 * compared exactly) or all strings, compared by UTF-8 bytes like SQLite's BINARY
 * collation (not JavaScript's UTF-16 order). A key of the other kind is refused.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RangeStrategy } from "./strategies.ts";
 * const strategy = new RangeStrategy([100, 200]);
 * assert(strategy.numShards === 3);
 * assert(strategy.getShardId(99) === 0);
 * assert(strategy.getShardId(100n) === 1);
 * assert(strategy.getShardId(250) === 2);
 * ```
 */
export class RangeStrategy implements ShardingStrategy {
  /** The number of shards: `boundaries.length + 1`. */
  readonly numShards: number;
  readonly #boundaries: readonly RangeBoundary[];
  readonly #kind: "integer" | "text";

  /** Creates a strategy from strictly ascending boundaries (at least one, at most 65535). */
  constructor(boundaries: readonly ShardKey[]) {
    if (!Array.isArray(boundaries)) {
      throw new TypeError(`boundaries must be an array, got ${describeKey(boundaries)}`);
    }
    if (boundaries.length < 1 || boundaries.length > MAX_SHARDS - 1) {
      throw new RangeError(
        `boundaries must hold 1 to ${MAX_SHARDS - 1} values, got ${boundaries.length}`,
      );
    }
    const values: RangeBoundary[] = [];
    let kind: "integer" | "text" | undefined;
    for (let i = 0; i < boundaries.length; i++) {
      const raw: unknown = boundaries[i];
      let value: ShardKey;
      try {
        value = normalizeKey(raw);
      } catch (error) {
        if (!(error instanceof InvalidShardKeyError)) throw error;
        throw new TypeError(`boundaries[${i}] is not a valid key: ${error.reason}`);
      }
      if (value instanceof Uint8Array) {
        throw new TypeError(`boundaries[${i}] is a Uint8Array; use integers or strings`);
      }
      const valueKind = typeof value === "string" ? "text" : "integer";
      if (kind !== undefined && valueKind !== kind) {
        throw new TypeError(
          `boundaries[${i}] is ${describeKey(raw)} but boundaries[0] is ` +
            `${describeKey(boundaries[0])}; use all integers or all strings`,
        );
      }
      kind = valueKind;
      const previous = values[i - 1];
      if (previous !== undefined && compareRange(previous, value) >= 0) {
        throw new RangeError(
          `boundaries must be strictly ascending: boundaries[${i}] (${describeKey(raw)}) ` +
            `is not greater than boundaries[${i - 1}] (${describeKey(boundaries[i - 1])})`,
        );
      }
      values.push(value);
    }
    this.#boundaries = values;
    this.#kind = kind!;
    this.numShards = values.length + 1;
  }

  /** `"integer"` or `"text"`: the kind of keys the boundaries order. */
  get keyDomain(): "integer" | "text" {
    return this.#kind;
  }

  /** The boundaries, normalised (safe integers as numbers). */
  get boundaries(): RangeBoundary[] {
    return [...this.#boundaries];
  }

  /** The shard of `key`. */
  getShardId(key: ShardKey): number {
    const value = normalizeKey(key);
    const isText = typeof value === "string";
    if (value instanceof Uint8Array || isText !== (this.#kind === "text")) {
      throw new InvalidShardKeyError(
        describeKey(key),
        `this RangeStrategy has ${this.#kind === "text" ? "string" : "integer"} boundaries ` +
          `and routes only ${this.#kind === "text" ? "string" : "integer"} keys`,
      );
    }
    // The shard is the number of boundaries <= key
    const boundaries = this.#boundaries;
    let low = 0;
    let high = boundaries.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (compareRange(boundaries[middle]!, value) <= 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** Every shard id. */
  getAllShardIds(): number[] {
    return allIds(this.numShards);
  }

  /** `{ type: "range", numShards, boundaries }`. */
  describe(): RangeDescriptor {
    return {
      type: "range",
      numShards: this.numShards,
      boundaries: this.#boundaries.map(encodeKey),
    };
  }
}

function compareRange(a: RangeBoundary, b: RangeBoundary): number {
  if (typeof a === "string") return compareText(a, b as string);
  return compareIntegers(a, b as number | bigint);
}

/** A string identifying a normalised key: equal keys (5 and 5n) give equal ids. */
function keyId(key: ShardKey): string {
  if (typeof key === "string") return "s" + key;
  if (key instanceof Uint8Array) return "b" + (encodeKey(key) as { bytes: string }).bytes;
  return "i" + key.toString();
}

/**
 * Tenant pinning: an explicit map from keys to shards, with an optional fallback
 * strategy for every other key. Keys follow the canonical rules (`5` and `5n` are one
 * key; a Uint8Array is matched by content). With a plain object as the map its keys
 * are strings: `{ "5": 1 }` pins the string `"5"`, not the integer 5. `numShards` is
 * the fallback's, or the largest pinned id + 1 when that is larger (a tenant may get a
 * shard of its own beyond the fallback's range).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HashStrategy, LookupStrategy } from "./strategies.ts";
 * const strategy = new LookupStrategy({ "big-tenant": 4 }, new HashStrategy(4));
 * assert(strategy.numShards === 5);
 * assert(strategy.getShardId("big-tenant") === 4);
 * assert(strategy.getShardId("small-tenant") < 4);
 * ```
 */
export class LookupStrategy implements ShardingStrategy {
  /** The number of shards. */
  readonly numShards: number;
  /** The strategy for unmapped keys, if any. */
  readonly fallback: ShardingStrategy | undefined;
  readonly #ids: Map<string, number>;
  readonly #entries: [ShardKey, number][];

  /** Creates a strategy from a key-to-shard map and an optional fallback strategy. */
  constructor(
    map: ReadonlyMap<ShardKey, number> | Readonly<Record<string, number>>,
    fallback?: ShardingStrategy,
  ) {
    if (typeof map !== "object" || map === null) {
      throw new TypeError(`map must be a Map or a plain object, got ${describeKey(map)}`);
    }
    if (fallback !== undefined && !isStrategy(fallback)) {
      throw new TypeError(`fallback must be a ShardingStrategy, got ${describeKey(fallback)}`);
    }
    const pairs: [unknown, unknown][] = map instanceof Map
      ? [...map.entries()]
      : Object.entries(map);
    this.#ids = new Map();
    this.#entries = [];
    let maxId = -1;
    for (const [rawKey, shardId] of pairs) {
      let key: ShardKey;
      try {
        key = normalizeKey(rawKey);
      } catch (error) {
        if (!(error instanceof InvalidShardKeyError)) throw error;
        throw new TypeError(`map key ${error.key} is not a valid shard key: ${error.reason}`);
      }
      if (
        typeof shardId !== "number" || !Number.isSafeInteger(shardId) || shardId < 0 ||
        shardId >= MAX_SHARDS
      ) {
        throw new RangeError(
          `the shard id for ${describeKey(rawKey)} must be an integer from 0 to ` +
            `${MAX_SHARDS - 1}, got ${describeKey(shardId)}`,
        );
      }
      const id = keyId(key);
      if (this.#ids.has(id)) {
        throw new RangeError(
          `the map holds the key ${describeKey(rawKey)} twice (5 and 5n are one key)`,
        );
      }
      this.#ids.set(id, shardId);
      this.#entries.push([key, shardId]);
      maxId = Math.max(maxId, shardId);
    }
    if (maxId < 0 && fallback === undefined) {
      throw new RangeError("a LookupStrategy needs at least one entry or a fallback strategy");
    }
    this.#entries.sort((a, b) => compareBytes(canonicalKeyBytes(a[0]), canonicalKeyBytes(b[0])));
    this.fallback = fallback;
    this.numShards = Math.max(maxId + 1, fallback?.numShards ?? 0);
  }

  /** The shard of `key`: its pinned shard, else the fallback's answer. */
  getShardId(key: ShardKey): number {
    const pinned = this.#ids.get(keyId(normalizeKey(key)));
    if (pinned !== undefined) return pinned;
    if (this.fallback === undefined) throw new ShardKeyNotMappedError(describeKey(key));
    return this.fallback.getShardId(key);
  }

  /** Every shard id. */
  getAllShardIds(): number[] {
    return allIds(this.numShards);
  }

  /** `{ type: "lookup", numShards, entries, fallback? }`, entries in canonical key order. */
  describe(): LookupDescriptor {
    const entries = this.#entries.map(([key, id]) => [encodeKey(key), id] as const);
    return this.fallback === undefined ? { type: "lookup", numShards: this.numShards, entries } : {
      type: "lookup",
      numShards: this.numShards,
      entries,
      fallback: this.fallback.describe(),
    };
  }
}

function isStrategy(value: unknown): value is ShardingStrategy {
  if (typeof value !== "object" || value === null) return false;
  const candidate = value as Partial<Record<keyof ShardingStrategy, unknown>>;
  return typeof candidate.numShards === "number" && typeof candidate.getShardId === "function" &&
    typeof candidate.getAllShardIds === "function" && typeof candidate.describe === "function";
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkKeys(value: Record<string, unknown>, allowed: readonly string[], at: string): void {
  for (const name of Object.keys(value)) {
    if (!allowed.includes(name)) {
      throw new InvalidStrategyDescriptorError(`${at}.${name}`, "unknown property");
    }
  }
}

function decodeKey(value: unknown, at: string): ShardKey {
  if (typeof value === "number" || typeof value === "string") {
    if (typeof value === "number" && !Number.isSafeInteger(value)) {
      throw new InvalidStrategyDescriptorError(at, `${value} is not a safe integer`);
    }
    return value;
  }
  if (isRecord(value)) {
    const names = Object.keys(value);
    if (names.length === 1 && typeof value.bigint === "string") {
      if (!/^-?[0-9]{1,19}$/.test(value.bigint)) {
        throw new InvalidStrategyDescriptorError(`${at}.bigint`, "not a decimal integer");
      }
      const big = BigInt(value.bigint);
      if (big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new InvalidStrategyDescriptorError(
          `${at}.bigint`,
          "a safe integer must be written as a plain number",
        );
      }
      return big;
    }
    if (names.length === 1 && typeof value.bytes === "string") {
      if (!/^(?:[0-9a-f]{2})*$/.test(value.bytes)) {
        throw new InvalidStrategyDescriptorError(`${at}.bytes`, "not lowercase hex pairs");
      }
      const bytes = new Uint8Array(value.bytes.length / 2);
      for (let i = 0; i < bytes.length; i++) {
        bytes[i] = parseInt(value.bytes.slice(2 * i, 2 * i + 2), 16);
      }
      return bytes;
    }
  }
  throw new InvalidStrategyDescriptorError(
    at,
    `expected a number, a string, { bigint } or { bytes }, got ${describeKey(value)}`,
  );
}

function rebuild(value: unknown, at: string): ShardingStrategy {
  if (!isRecord(value)) {
    throw new InvalidStrategyDescriptorError(at, `expected an object, got ${describeKey(value)}`);
  }
  const numShards = value.numShards;
  if (typeof numShards !== "number" || !Number.isSafeInteger(numShards) || numShards < 1) {
    throw new InvalidStrategyDescriptorError(
      `${at}.numShards`,
      `expected a positive integer, got ${describeKey(numShards)}`,
    );
  }
  let strategy: ShardingStrategy;
  try {
    switch (value.type) {
      case "hash":
        checkKeys(value, ["type", "numShards"], at);
        strategy = new HashStrategy(numShards);
        break;
      case "modulo":
        checkKeys(value, ["type", "numShards"], at);
        strategy = new ModuloStrategy(numShards);
        break;
      case "range": {
        checkKeys(value, ["type", "numShards", "boundaries"], at);
        const boundaries = value.boundaries;
        if (!Array.isArray(boundaries)) {
          throw new InvalidStrategyDescriptorError(`${at}.boundaries`, "expected an array");
        }
        strategy = new RangeStrategy(
          boundaries.map((item, i) => decodeKey(item, `${at}.boundaries[${i}]`)),
        );
        break;
      }
      case "lookup": {
        checkKeys(value, ["type", "numShards", "entries", "fallback"], at);
        const entries = value.entries;
        if (!Array.isArray(entries)) {
          throw new InvalidStrategyDescriptorError(`${at}.entries`, "expected an array");
        }
        const map = new Map<ShardKey, number>();
        entries.forEach((entry: unknown, i) => {
          if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[1] !== "number") {
            throw new InvalidStrategyDescriptorError(
              `${at}.entries[${i}]`,
              "expected a [key, shardId] pair",
            );
          }
          const key = decodeKey(entry[0], `${at}.entries[${i}][0]`);
          if (map.has(key)) {
            throw new InvalidStrategyDescriptorError(`${at}.entries[${i}]`, "duplicate key");
          }
          map.set(key, entry[1]);
        });
        const fallback = "fallback" in value && value.fallback !== undefined
          ? rebuild(value.fallback, `${at}.fallback`)
          : undefined;
        strategy = new LookupStrategy(map, fallback);
        break;
      }
      default:
        throw new InvalidStrategyDescriptorError(
          `${at}.type`,
          `expected "hash", "modulo", "range" or "lookup", got ${describeKey(value.type)}`,
        );
    }
  } catch (error) {
    if (error instanceof TypeError || error instanceof RangeError) {
      throw new InvalidStrategyDescriptorError(at, error.message);
    }
    throw error;
  }
  if (strategy.numShards !== numShards) {
    throw new InvalidStrategyDescriptorError(
      `${at}.numShards`,
      `says ${numShards} but the strategy it describes has ${strategy.numShards} shards`,
    );
  }
  return strategy;
}

/**
 * Rebuilds a strategy from a descriptor (typically parsed from the persisted shard
 * map), validating every field. Throws {@link InvalidStrategyDescriptorError} naming
 * the offending part when anything is malformed or inconsistent.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HashStrategy, strategyFromDescriptor } from "./strategies.ts";
 * const json = JSON.stringify(new HashStrategy(8).describe());
 * const strategy = strategyFromDescriptor(JSON.parse(json));
 * assert(strategy.getShardId("k") === new HashStrategy(8).getShardId("k"));
 * ```
 */
export function strategyFromDescriptor(descriptor: unknown): ShardingStrategy {
  return rebuild(descriptor, "descriptor");
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (isRecord(value)) {
    const names = Object.keys(value).filter((name) => value[name] !== undefined).sort();
    return `{${names.map((name) => `${JSON.stringify(name)}:${canonicalJson(value[name])}`)}}`;
  }
  return JSON.stringify(value);
}

/**
 * Whether two strategies (or descriptors) place every key on the same shard by
 * construction: their validated, normalised descriptors are deeply equal. Descriptors
 * are validated first (a malformed one throws {@link InvalidStrategyDescriptorError}),
 * so property order and the order of lookup entries do not matter.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HashStrategy, sameLayout } from "./strategies.ts";
 * assert(sameLayout(new HashStrategy(4), { numShards: 4, type: "hash" }));
 * assert(!sameLayout(new HashStrategy(4), new HashStrategy(5)));
 * ```
 */
export function sameLayout(
  a: ShardingStrategy | StrategyDescriptor,
  b: ShardingStrategy | StrategyDescriptor,
): boolean {
  const normal = (x: ShardingStrategy | StrategyDescriptor): string =>
    canonicalJson((isStrategy(x) ? x : strategyFromDescriptor(x)).describe());
  return normal(a) === normal(b);
}
