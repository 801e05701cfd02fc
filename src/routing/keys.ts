/**
 * Shard keys: their canonical byte form, the stable 64-bit hash of that form, and the
 * text order SQLite uses. Everything here is a compatibility promise: data placed on
 * shards by one version must be found by every later one.
 *
 * Canonical form of a key (the bytes that are hashed):
 *
 * | key | bytes |
 * | --- | --- |
 * | integer: a safe-integer `number` (`-0` counts as `0`) or a `bigint` in int64 | `0x01` + 8 bytes, big-endian two's complement |
 * | `string` (well-formed UTF-16: no lone surrogates) | `0x02` + its UTF-8 bytes |
 * | `Uint8Array` | `0x03` + the bytes |
 *
 * So `5` and `5n` are the same key. Anything else is refused with
 * {@link InvalidShardKeyError}: non-integer numbers, NaN, ±Infinity, numbers beyond
 * 2^53 (they are ambiguous: pass a bigint), bigints outside int64, strings with a lone
 * surrogate (not encodable in UTF-8), and every other type.
 *
 * The stable hash is FNV-1a 64 (offset basis 0xcbf29ce484222325, prime 0x100000001b3)
 * over the canonical bytes, followed by MurmurHash3's 64-bit finalizer `fmix64`
 * (constants 0xff51afd7ed558ccd and 0xc4ceb9fe1a85ec53) so that the jump hash, which
 * reads the top bits, sees well-mixed input.
 *
 * @module
 */

import { InvalidShardKeyError } from "../errors.ts";
import { describeKey } from "../sql/describe.ts";

export { describeKey };

/**
 * A value that selects a shard: an integer (`number` or `bigint`), a string or bytes.
 * See the module documentation for the canonical form each kind is hashed in.
 */
export type ShardKey = number | bigint | string | Uint8Array;

const TWO_32 = 4294967296;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE_BIG = BigInt(Number.MIN_SAFE_INTEGER);

/** Tag bytes of the canonical form. */
const TAG_INTEGER = 0x01;
const TAG_TEXT = 0x02;
const TAG_BYTES = 0x03;

// State in typed arrays: a module-level `let` holding a uint32 boxes a heap number per write
const STATE = new Int32Array(4); // the running FNV hash as four 16-bit limbs, least significant first
const PRODUCT = new Uint32Array(2); // [hi, lo] of the last multiply64

/** Sets PRODUCT to (ah:al * bh:bl) mod 2^64 with 32-bit integer operations only. */
function multiply64(ah: number, al: number, bh: number, bl: number): void {
  // High half of the 32x32 product al*bl from 16-bit limbs (Hacker's Delight, mulhu)
  const a0 = al & 0xffff;
  const a1 = al >>> 16;
  const b0 = bl & 0xffff;
  const b1 = bl >>> 16;
  const t = ((a0 * b0) >>> 16) + a0 * b1;
  const w1 = (t & 0xffff) + a1 * b0;
  const carry = a1 * b1 + (t >>> 16) + (w1 >>> 16);
  PRODUCT[1] = Math.imul(al, bl);
  PRODUCT[0] = carry + Math.imul(al, bh) + Math.imul(ah, bl);
}

/**
 * FNV-1a 64 over the low `count` bytes of `packed`, most significant first: xor each
 * byte in, multiply by the prime 2^40 + 0x1b3 (mod 2^64), on 16-bit limbs.
 */
function absorb(packed: number, count: number): void {
  let v0 = STATE[0]!;
  let v1 = STATE[1]!;
  let v2 = STATE[2]!;
  let v3 = STATE[3]!;
  for (let shift = (count - 1) * 8; shift >= 0; shift -= 8) {
    v0 ^= (packed >>> shift) & 0xff;
    const t0 = v0 * 0x1b3;
    let t1 = v1 * 0x1b3;
    let t2 = v2 * 0x1b3 + (v0 << 8);
    const t3 = v3 * 0x1b3 + (v1 << 8);
    t1 += t0 >>> 16;
    t2 += t1 >>> 16;
    v0 = t0 & 0xffff;
    v1 = t1 & 0xffff;
    v2 = t2 & 0xffff;
    v3 = (t3 + (t2 >>> 16)) & 0xffff;
  }
  STATE[0] = v0;
  STATE[1] = v1;
  STATE[2] = v2;
  STATE[3] = v3;
}

/** MurmurHash3 fmix64 on STATE; leaves the result in PRODUCT. */
function finalizeState(): void {
  const hi = ((STATE[3]! << 16) | STATE[2]!) >>> 0;
  const lo = ((STATE[1]! << 16) | STATE[0]!) >>> 0;
  multiply64(hi, (lo ^ (hi >>> 1)) >>> 0, 0xff51afd7, 0xed558ccd);
  const hi2 = PRODUCT[0]!;
  multiply64(hi2, (PRODUCT[1]! ^ (hi2 >>> 1)) >>> 0, 0xc4ceb9fe, 0x1a85ec53);
  PRODUCT[1] = PRODUCT[1]! ^ (PRODUCT[0]! >>> 1);
}

function refuseNumber(key: number): never {
  if (Number.isNaN(key)) throw new InvalidShardKeyError(describeKey(key), "NaN is not a key");
  if (!Number.isFinite(key)) {
    throw new InvalidShardKeyError(describeKey(key), "an infinite number is not a key");
  }
  if (!Number.isInteger(key)) {
    throw new InvalidShardKeyError(
      describeKey(key),
      "only integers are keys; round it, or use a string if the fraction matters",
    );
  }
  throw new InvalidShardKeyError(
    describeKey(key),
    "the number is beyond 2^53 and no longer exact; pass it as a bigint",
  );
}

function refuseBigint(key: bigint): never {
  throw new InvalidShardKeyError(describeKey(key), "the bigint is outside the int64 range");
}

function refuseType(key: unknown): never {
  throw new InvalidShardKeyError(describeKey(key), `a ${typeofName(key)} cannot be a shard key`);
}

function typeofName(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") {
    return Array.isArray(value) ? "array" : (value.constructor?.name ?? "object");
  }
  return typeof value;
}

function refuseLoneSurrogate(key: string, index: number): never {
  throw new InvalidShardKeyError(
    describeKey(key),
    `lone surrogate at index ${index}: the string is not valid Unicode and has no UTF-8 form`,
  );
}

/** Feeds the 8 canonical integer bytes of a safe integer into the hash state. */
function hashSafeInteger(key: number): void {
  const hi = Math.floor(key / TWO_32);
  absorb(TAG_INTEGER, 1);
  absorb(hi >>> 0, 4);
  absorb(key - hi * TWO_32, 4);
}

function hashText(key: string): void {
  absorb(TAG_TEXT, 1);
  const length = key.length;
  let i = 0;
  // ASCII fast path with the limbs in locals (same step as absorb)
  let v0 = STATE[0]!;
  let v1 = STATE[1]!;
  let v2 = STATE[2]!;
  let v3 = STATE[3]!;
  for (; i < length; i++) {
    const unit = key.charCodeAt(i);
    if (unit >= 0x80) break;
    v0 ^= unit;
    const t0 = v0 * 0x1b3;
    let t1 = v1 * 0x1b3;
    let t2 = v2 * 0x1b3 + (v0 << 8);
    const t3 = v3 * 0x1b3 + (v1 << 8);
    t1 += t0 >>> 16;
    t2 += t1 >>> 16;
    v0 = t0 & 0xffff;
    v1 = t1 & 0xffff;
    v2 = t2 & 0xffff;
    v3 = (t3 + (t2 >>> 16)) & 0xffff;
  }
  STATE[0] = v0;
  STATE[1] = v1;
  STATE[2] = v2;
  STATE[3] = v3;
  for (; i < length; i++) {
    const unit = key.charCodeAt(i);
    // Each code point's UTF-8 bytes, packed most significant first
    if (unit < 0x80) {
      absorb(unit, 1);
    } else if (unit < 0x800) {
      absorb(((0xc0 | (unit >>> 6)) << 8) | 0x80 | (unit & 0x3f), 2);
    } else if (unit < 0xd800 || unit >= 0xe000) {
      absorb(
        ((0xe0 | (unit >>> 12)) << 16) | ((0x80 | ((unit >>> 6) & 0x3f)) << 8) | 0x80 |
          (unit & 0x3f),
        3,
      );
    } else {
      const next = i + 1 < length ? key.charCodeAt(i + 1) : 0;
      if (unit >= 0xdc00 || next < 0xdc00 || next > 0xdfff) refuseLoneSurrogate(key, i);
      const codePoint = 0x10000 + ((unit - 0xd800) << 10) + (next - 0xdc00);
      i++;
      absorb(
        ((0xf0 | (codePoint >>> 18)) << 24) | ((0x80 | ((codePoint >>> 12) & 0x3f)) << 16) |
          ((0x80 | ((codePoint >>> 6) & 0x3f)) << 8) | 0x80 | (codePoint & 0x3f),
        4,
      );
    }
  }
}

/** Leaves the 64-bit stable hash of `key` in PRODUCT, or throws for a bad key. */
function hashIntoState(key: ShardKey): void {
  // FNV-1a 64 offset basis 0xcbf29ce484222325
  STATE[0] = 0x2325;
  STATE[1] = 0x8422;
  STATE[2] = 0x9ce4;
  STATE[3] = 0xcbf2;
  if (typeof key === "number") {
    if (!Number.isSafeInteger(key)) refuseNumber(key);
    hashSafeInteger(key);
  } else if (typeof key === "string") {
    hashText(key);
  } else if (typeof key === "bigint") {
    if (key >= MIN_SAFE_BIG && key <= MAX_SAFE_BIG) {
      hashSafeInteger(Number(key));
    } else {
      if (key < INT64_MIN || key > INT64_MAX) refuseBigint(key);
      const unsigned = BigInt.asUintN(64, key);
      absorb(TAG_INTEGER, 1);
      absorb(Number(unsigned >> 32n), 4);
      absorb(Number(unsigned & 0xffffffffn), 4);
    }
  } else if (key instanceof Uint8Array) {
    absorb(TAG_BYTES, 1);
    for (let i = 0; i < key.length; i++) absorb(key[i]!, 1);
  } else {
    refuseType(key);
  }
  finalizeState();
}

/**
 * The stable 64-bit hash of a key (FNV-1a 64 over the canonical bytes, then fmix64),
 * as an unsigned bigint. For inspection and tests; routing uses an allocation-free path.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stableHash64 } from "./keys.ts";
 * assert(stableHash64(5) === stableHash64(5n));
 * ```
 */
export function stableHash64(key: ShardKey): bigint {
  hashIntoState(key);
  return (BigInt(PRODUCT[0]!) << 32n) | BigInt(PRODUCT[1]!);
}

/**
 * Lamping & Veach's jump consistent hash of the stable hash of `key` into
 * `numBuckets` buckets (0 .. numBuckets-1). Growing from N to N+1 buckets moves about
 * 1/(N+1) of the keys, all into the new bucket. `numBuckets` must be a positive
 * integer below 2^31; callers validate it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jumpHash } from "./keys.ts";
 * const bucket = jumpHash("tenant-42", 8);
 * assert(bucket >= 0 && bucket < 8);
 * ```
 */
export function jumpHash(key: ShardKey, numBuckets: number): number {
  hashIntoState(key);
  let hi = PRODUCT[0]!;
  let lo = PRODUCT[1]!;
  let bucket = -1;
  let next = 0;
  while (next < numBuckets) {
    bucket = next;
    // key = key * 2862933555777941757 + 1 (mod 2^64), the paper's LCG
    multiply64(hi, lo, 0x27bb2ee6, 0x87b0b0fd);
    lo = (PRODUCT[1]! + 1) >>> 0;
    hi = lo === 0 ? (PRODUCT[0]! + 1) >>> 0 : PRODUCT[0]!;
    // Same double arithmetic as the C reference: (b + 1) * (2^31 / ((key >> 33) + 1))
    next = Math.floor((bucket + 1) * (2147483648 / ((hi >>> 1) + 1)));
  }
  return bucket;
}

/**
 * The stable 64-bit hash of `key` modulo `divisor` (a positive integer at most 2^21).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stableHash64, stableHashModulo } from "./keys.ts";
 * assert(BigInt(stableHashModulo("a", 7)) === stableHash64("a") % 7n);
 * ```
 */
export function stableHashModulo(key: ShardKey, divisor: number): number {
  hashIntoState(key);
  // (hi * 2^32 + lo) mod d, kept below 2^53 by reducing hi first
  return ((PRODUCT[0]! % divisor) * TWO_32 + PRODUCT[1]!) % divisor;
}

/**
 * Classifies a key: an exact integer (a number when it is a safe integer, else a
 * bigint), or the string or bytes themselves. Throws {@link InvalidShardKeyError} for
 * anything that is not a valid shard key, with the same rules as the hash.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { normalizeKey } from "./keys.ts";
 * assert(normalizeKey(5n) === 5);
 * assert(Object.is(normalizeKey(-0), 0));
 * ```
 */
export function normalizeKey(key: unknown): ShardKey {
  if (typeof key === "number") {
    if (!Number.isSafeInteger(key)) refuseNumber(key);
    return key === 0 ? 0 : key;
  }
  if (typeof key === "bigint") {
    if (key >= MIN_SAFE_BIG && key <= MAX_SAFE_BIG) return Number(key);
    if (key < INT64_MIN || key > INT64_MAX) refuseBigint(key);
    return key;
  }
  if (typeof key === "string") {
    if (!key.isWellFormed()) {
      for (let i = 0; i < key.length; i++) {
        const unit = key.charCodeAt(i);
        if (unit >= 0xd800 && unit <= 0xdbff) {
          const next = key.charCodeAt(i + 1);
          if (next >= 0xdc00 && next <= 0xdfff) {
            i++;
            continue;
          }
        }
        if (unit >= 0xd800 && unit <= 0xdfff) refuseLoneSurrogate(key, i);
      }
    }
    return key;
  }
  if (key instanceof Uint8Array) return key;
  return refuseType(key);
}

/**
 * The canonical bytes of a key (see the module documentation): the exact input of
 * the stable hash. Allocates; for inspection, tests and persisted formats.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalKeyBytes } from "./keys.ts";
 * const bytes = canonicalKeyBytes(-1);
 * assert(bytes.length === 9 && bytes[0] === 0x01 && bytes[8] === 0xff);
 * ```
 */
export function canonicalKeyBytes(key: ShardKey): Uint8Array {
  const normal = normalizeKey(key);
  if (typeof normal === "number" || typeof normal === "bigint") {
    const out = new Uint8Array(9);
    out[0] = TAG_INTEGER;
    new DataView(out.buffer).setBigInt64(1, BigInt(normal), false);
    return out;
  }
  const body = typeof normal === "string" ? new TextEncoder().encode(normal) : normal;
  const out = new Uint8Array(body.length + 1);
  out[0] = typeof normal === "string" ? TAG_TEXT : TAG_BYTES;
  out.set(body, 1);
  return out;
}

/**
 * Compares two well-formed strings by Unicode code point, which is the order of their
 * UTF-8 bytes and so SQLite's BINARY collation. JavaScript's `<` compares UTF-16 code
 * units instead and puts U+FFFF after U+10000; this does not.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compareText } from "./keys.ts";
 * assert(compareText("\uffff", "\u{10000}") < 0);
 * assert("\uffff" > "\u{10000}"); // the UTF-16 order disagrees
 * ```
 */
export function compareText(a: string, b: string): number {
  if (a === b) return 0;
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (D800-DFFF) encode code points above every BMP unit: lift them above E000-FFFF
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x < y ? -1 : 1;
  }
  return a.length - b.length < 0 ? -1 : a.length === b.length ? 0 : 1;
}

/**
 * Compares byte arrays like SQLite compares BLOBs: `memcmp` over the common length,
 * then the shorter first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compareBytes } from "./keys.ts";
 * assert(compareBytes(new Uint8Array([1]), new Uint8Array([1, 0])) < 0);
 * ```
 */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return a.length < b.length ? -1 : a.length === b.length ? 0 : 1;
}

/**
 * Compares two exact integers given as numbers or bigints, without rounding.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compareIntegers } from "./keys.ts";
 * assert(compareIntegers(2 ** 53, 2n ** 53n + 1n) < 0);
 * ```
 */
export function compareIntegers(a: number | bigint, b: number | bigint): number {
  if (typeof a === "number" && typeof b === "number") return a < b ? -1 : a > b ? 1 : 0;
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
