import assert from "node:assert/strict";
import fc from "fast-check";
import {
  InvalidShardKeyError,
  InvalidStrategyDescriptorError,
  ShardKeyNotMappedError,
} from "../src/errors.ts";
import {
  canonicalKeyBytes,
  compareText,
  jumpHash,
  normalizeKey,
  stableHash64,
  stableHashModulo,
} from "../src/routing/keys.ts";
import {
  HashStrategy,
  LookupStrategy,
  ModuloStrategy,
  RangeStrategy,
  sameLayout,
  type ShardKey,
  type StrategyDescriptor,
  strategyFromDescriptor,
} from "../src/routing/strategies.ts";

// --- An independent, slow BigInt reference of the documented algorithms ---------------

const MASK64 = (1n << 64n) - 1n;

function referenceFnv1a64(bytes: Uint8Array): bigint {
  let hash = 0xcbf29ce484222325n;
  for (const byte of bytes) hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & MASK64;
  return hash;
}

function referenceFmix64(value: bigint): bigint {
  let k = value;
  k ^= k >> 33n;
  k = (k * 0xff51afd7ed558ccdn) & MASK64;
  k ^= k >> 33n;
  k = (k * 0xc4ceb9fe1a85ec53n) & MASK64;
  return k ^ (k >> 33n);
}

function referenceJump(key: bigint, buckets: number): number {
  let k = key;
  let b = -1;
  let j = 0;
  while (j < buckets) {
    b = j;
    k = (k * 2862933555777941757n + 1n) & MASK64;
    j = Math.floor((b + 1) * (2147483648 / Number((k >> 33n) + 1n)));
  }
  return b;
}

const referenceHash = (key: ShardKey): bigint =>
  referenceFmix64(referenceFnv1a64(canonicalKeyBytes(key)));

const shardKey: fc.Arbitrary<ShardKey> = fc.oneof(
  fc.integer(),
  fc.maxSafeInteger(),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ maxLength: 10 }),
  fc.uint8Array({ maxLength: 40 }),
);

Deno.test("reference implementation matches published vectors", () => {
  const text = (s: string) => new TextEncoder().encode(s);
  assert.equal(referenceFnv1a64(text("")), 0xcbf29ce484222325n);
  assert.equal(referenceFnv1a64(text("a")), 0xaf63dc4c8601ec8cn);
  assert.equal(referenceFnv1a64(text("foobar")), 0x85944171f73967e8n);
  // Lamping & Veach's jump hash vectors, as used by common Go implementations
  assert.equal(referenceJump(1n, 1), 0);
  assert.equal(referenceJump(42n, 57), 43);
  assert.equal(referenceJump(0xdead10ccn, 1), 0);
  assert.equal(referenceJump(0xdead10ccn, 666), 361);
  assert.equal(referenceJump(256n, 1024), 520);
});

Deno.test("the fast 32-bit path equals the BigInt reference", () => {
  fc.assert(
    fc.property(shardKey, fc.integer({ min: 1, max: 65536 }), (key, buckets) => {
      const expected = referenceHash(key);
      assert.equal(stableHash64(key), expected);
      assert.equal(jumpHash(key, buckets), referenceJump(expected, buckets));
      assert.equal(stableHashModulo(key, buckets), Number(expected % BigInt(buckets)));
    }),
    { numRuns: 3000 },
  );
});

Deno.test("canonical bytes follow the documented layout", () => {
  assert.deepEqual([...canonicalKeyBytes(5)], [1, 0, 0, 0, 0, 0, 0, 0, 5]);
  assert.deepEqual([...canonicalKeyBytes(-1)], [1, 255, 255, 255, 255, 255, 255, 255, 255]);
  assert.deepEqual([...canonicalKeyBytes(-(2n ** 63n))], [1, 128, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...canonicalKeyBytes("é")], [2, 0xc3, 0xa9]);
  assert.deepEqual([...canonicalKeyBytes("😀")], [2, 0xf0, 0x9f, 0x98, 0x80]);
  assert.deepEqual([...canonicalKeyBytes(new Uint8Array([7]))], [3, 7]);
  assert.deepEqual([...canonicalKeyBytes("")], [2]);
  assert.ok(Object.is(normalizeKey(-0), 0));
  assert.equal(normalizeKey(2n ** 53n), 2n ** 53n);
  assert.equal(normalizeKey(2n ** 53n - 1n), 2 ** 53 - 1);
});

// --- Golden vectors: these literals pin where data lives. Never update them. ------------

const RANGE_INTEGERS = new RangeStrategy([-1000, 0, 1000, 2n ** 53n]);
const RANGE_TEXT = new RangeStrategy(["b", "m", "\uffff"]);
const LOOKUP = new LookupStrategy(
  new Map<ShardKey, number>([
    [5, 9],
    ["acme", 3],
    [new Uint8Array([1, 2, 3]), 0],
    [2n ** 63n - 1n, 1],
  ]),
  new HashStrategy(4),
);

// key, HashStrategy(4), HashStrategy(7), ModuloStrategy(4), RANGE_INTEGERS or RANGE_TEXT
// (undefined: the range refuses that kind of key), LOOKUP, stable hash
const GOLDEN: [ShardKey, number, number, number, number | undefined, number, bigint][] = [
  [0, 2, 5, 0, 2, 2, 0xbfcb1a2fdd1fff6fn],
  [-0, 2, 5, 0, 2, 2, 0xbfcb1a2fdd1fff6fn],
  [1, 0, 0, 1, 2, 0, 0xd501b28892c3e128n],
  [-1, 3, 3, 1, 1, 3, 0x9ff811618b11c6f3n],
  [5, 3, 3, 1, 2, 9, 0x1822b8a27bbea21n],
  [5n, 3, 3, 1, 2, 9, 0x1822b8a27bbea21n],
  [42, 1, 6, 2, 2, 1, 0x33168a0aec46f7b8n],
  [-42, 0, 5, 2, 1, 0, 0xea7bda0b44e44ad8n],
  [1000, 1, 1, 0, 3, 1, 0x61dc6b4a2438d1c3n],
  [2 ** 31, 0, 5, 0, 3, 0, 0xdf333c363d309614n],
  [-(2 ** 31), 1, 6, 0, 0, 1, 0x38d2289c1454a349n],
  [2 ** 32, 1, 5, 0, 3, 1, 0x7d5737d2d655a117n],
  [Number.MAX_SAFE_INTEGER, 0, 5, 3, 3, 0, 0x78a33a6c31a35a59n],
  [Number.MIN_SAFE_INTEGER, 0, 0, 3, 0, 0, 0x40a95e04b70fe49fn],
  [2n ** 53n + 1n, 0, 6, 1, 4, 0, 0x5e9ce6278dab3744n],
  [2n ** 63n - 1n, 1, 1, 3, 4, 1, 0x12a1ffd70744103dn],
  [-(2n ** 63n), 0, 0, 0, 0, 0, 0x20d9c5c3638916f3n],
  ["", 1, 5, 1, 0, 1, 0x5aec852590056221n],
  ["a", 3, 4, 2, 0, 3, 0x9ed1dd64816f20d6n],
  ["user-17", 2, 2, 3, 2, 2, 0x47af1b6bd4378b2bn],
  ["tenant:acme", 3, 3, 0, 2, 3, 0xcf5c97ef232a84bcn],
  ["é", 1, 5, 2, 2, 1, 0x9a63229b4644220en],
  ["日本", 2, 2, 3, 2, 2, 0xfdb6f48536821493n],
  ["😀", 0, 0, 2, 3, 0, 0x5c6ad8f4cd45cdb6n],
  ["\uffff", 0, 0, 1, 3, 0, 0x51217eca434f0979n],
  ["\u{10000}", 2, 5, 0, 3, 2, 0xf8bd94bbcc295514n],
  [new Uint8Array(), 3, 3, 1, undefined, 3, 0x9e1997e507d81f0dn],
  [new Uint8Array([0]), 3, 3, 0, undefined, 3, 0x36dbe0a0f79f9d48n],
  [new Uint8Array([1, 2, 3]), 2, 2, 0, undefined, 0, 0x6ffc41f204a981f8n],
  [new Uint8Array([0xff, 0xfe]), 2, 2, 3, undefined, 2, 0x3c3a2a4ff24b9f97n],
];

Deno.test("golden vectors: no change may silently move data", async (t) => {
  const hash4 = new HashStrategy(4);
  const hash7 = new HashStrategy(7);
  const modulo4 = new ModuloStrategy(4);
  for (const [key, h4, h7, m4, range, lookup, hash] of GOLDEN) {
    const name = key instanceof Uint8Array
      ? `bytes [${[...key]}]`
      : typeof key === "bigint"
      ? `${key}n`
      : Object.is(key, -0)
      ? "-0"
      : JSON.stringify(key);
    await t.step(name, () => {
      assert.equal(stableHash64(key), hash);
      assert.equal(referenceHash(key), hash);
      assert.equal(hash4.getShardId(key), h4);
      assert.equal(hash7.getShardId(key), h7);
      assert.equal(modulo4.getShardId(key), m4);
      assert.equal(LOOKUP.getShardId(key), lookup);
      const rangeStrategy = typeof key === "string" ? RANGE_TEXT : RANGE_INTEGERS;
      if (range === undefined) {
        assert.throws(() => rangeStrategy.getShardId(key), InvalidShardKeyError);
      } else {
        assert.equal(rangeStrategy.getShardId(key), range);
      }
    });
  }
});

Deno.test("5 and 5n, -0 and 0 route identically under every strategy", () => {
  const strategies = [
    new HashStrategy(13),
    new ModuloStrategy(13),
    RANGE_INTEGERS,
    LOOKUP,
    new LookupStrategy(new Map<ShardKey, number>([[5n, 2], [0, 1]])),
  ];
  for (const strategy of strategies) {
    assert.equal(strategy.getShardId(5), strategy.getShardId(5n));
    assert.equal(strategy.getShardId(-0), strategy.getShardId(0));
  }
  fc.assert(
    fc.property(fc.maxSafeInteger(), fc.integer({ min: 1, max: 1000 }), (n, shards) => {
      const hash = new HashStrategy(shards);
      const modulo = new ModuloStrategy(shards);
      assert.equal(hash.getShardId(n), hash.getShardId(BigInt(n)));
      assert.equal(modulo.getShardId(n), modulo.getShardId(BigInt(n)));
      assert.equal(modulo.getShardId(n), Math.abs(n) % shards);
    }),
  );
});

Deno.test("growing HashStrategy from N to N+1 moves about 1/(N+1) keys, only into the new shard", () => {
  const keys: ShardKey[] = [];
  for (let i = 0; i < 10_000; i++) keys.push(i * 7919 - 30_000_000, `user-${i}`);
  for (const n of [1, 2, 3, 4, 7, 10, 31, 100]) {
    const before = new HashStrategy(n);
    const after = new HashStrategy(n + 1);
    let moved = 0;
    for (const key of keys) {
      const from = before.getShardId(key);
      const to = after.getShardId(key);
      if (from !== to) {
        moved++;
        assert.equal(to, n, `a key moved from ${from} to ${to}, not into the new shard ${n}`);
      }
    }
    const fraction = moved / keys.length;
    assert.ok(
      fraction > 0.5 / (n + 1) && fraction < 1.5 / (n + 1),
      `N=${n}: moved ${fraction}, expected about ${1 / (n + 1)}`,
    );
  }
});

Deno.test("HashStrategy spreads keys evenly", () => {
  const strategy = new HashStrategy(8);
  const counts = new Array<number>(8).fill(0);
  for (let i = 0; i < 80_000; i++) counts[strategy.getShardId(i)]!++;
  for (const count of counts) assert.ok(count > 9_000 && count < 11_000, `${counts}`);
});

Deno.test("RangeStrategy compares strings by UTF-8 bytes and integers exactly", () => {
  // JavaScript's UTF-16 order puts "😀" before "\uffff"; SQLite's BINARY order does not
  assert.ok("😀" < "\uffff");
  assert.equal(RANGE_TEXT.getShardId("😀"), 3);
  assert.equal(RANGE_TEXT.getShardId("\ufffe"), 2);
  assert.equal(RANGE_TEXT.getShardId("b"), 1);
  assert.equal(RANGE_TEXT.getShardId("a\u{10ffff}"), 0);
  assert.equal(RANGE_INTEGERS.getShardId(2n ** 53n), 4);
  assert.equal(RANGE_INTEGERS.getShardId(2 ** 53 - 1), 3);
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.string({ unit: "binary" }), { minLength: 1, maxLength: 8 }),
      fc.string({ unit: "binary" }),
      (raw, key) => {
        const boundaries = [...raw].sort(compareText);
        const strategy = new RangeStrategy(boundaries);
        const expected = boundaries.filter((b) => compareText(b, key) <= 0).length;
        assert.equal(strategy.getShardId(key), expected);
        // UTF-8 byte order is the reference
        const encode = (s: string) => [...new TextEncoder().encode(s)];
        const byBytes = boundaries.filter((b) => {
          const x = encode(b);
          const y = encode(key);
          for (let i = 0; i < Math.min(x.length, y.length); i++) {
            if (x[i] !== y[i]) return x[i]! < y[i]!;
          }
          return x.length <= y.length;
        }).length;
        assert.equal(expected, byBytes);
      },
    ),
  );
});

Deno.test("LookupStrategy pins tenants and falls back", () => {
  assert.equal(LOOKUP.numShards, 10);
  assert.deepEqual(LOOKUP.getAllShardIds(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(LOOKUP.getShardId(new Uint8Array([1, 2, 3])), 0);
  const strict = new LookupStrategy({ acme: 2, "5": 0 });
  assert.equal(strict.numShards, 3);
  assert.equal(strict.getShardId("5"), 0);
  assert.throws(() => strict.getShardId(5), (error: unknown) => {
    assert.ok(error instanceof ShardKeyNotMappedError);
    assert.equal(error.key, "number 5");
    assert.match(error.message, /not in the lookup map.*fallback/);
    return true;
  });
});

Deno.test("descriptors round-trip through JSON and compare by layout", () => {
  const strategies = [
    new HashStrategy(1),
    new HashStrategy(65536),
    new ModuloStrategy(12),
    RANGE_INTEGERS,
    RANGE_TEXT,
    LOOKUP,
    new LookupStrategy({ b: 1, a: 0 }),
    new LookupStrategy(new Map([["x", 0]]), new LookupStrategy({ y: 1 }, new ModuloStrategy(3))),
  ];
  for (const strategy of strategies) {
    const json = JSON.stringify(strategy.describe());
    const rebuilt = strategyFromDescriptor(JSON.parse(json));
    assert.deepEqual(rebuilt.describe(), strategy.describe());
    assert.equal(rebuilt.numShards, strategy.numShards);
    assert.ok(sameLayout(rebuilt, strategy));
    for (const [key] of GOLDEN) {
      let expected: number | string;
      try {
        expected = strategy.getShardId(key);
      } catch (error) {
        expected = (error as Error).name;
      }
      let actual: number | string;
      try {
        actual = rebuilt.getShardId(key);
      } catch (error) {
        actual = (error as Error).name;
      }
      assert.equal(actual, expected);
    }
  }
  assert.deepEqual(RANGE_INTEGERS.describe(), {
    type: "range",
    numShards: 5,
    boundaries: [-1000, 0, 1000, { bigint: "9007199254740992" }],
  });
  assert.deepEqual(LOOKUP.describe(), {
    type: "lookup",
    numShards: 10,
    entries: [[5, 9], [{ bigint: "9223372036854775807" }, 1], ["acme", 3], [
      { bytes: "010203" },
      0,
    ]],
    fallback: { type: "hash", numShards: 4 },
  });
  // Entry order and property order do not matter; content does
  assert.ok(sameLayout(new LookupStrategy({ a: 0, b: 1 }), new LookupStrategy({ b: 1, a: 0 })));
  assert.ok(sameLayout({ numShards: 3, type: "modulo" }, new ModuloStrategy(3)));
  assert.ok(!sameLayout(new ModuloStrategy(3), new HashStrategy(3)));
  assert.ok(!sameLayout(new LookupStrategy({ a: 0 }), new LookupStrategy({ a: 1 })));
});

Deno.test("bad descriptors throw InvalidStrategyDescriptorError naming the place", () => {
  const cases: [unknown, RegExp][] = [
    [null, /at descriptor: expected an object/],
    [{ type: "hash" }, /descriptor\.numShards/],
    [{ type: "hash", numShards: 0 }, /descriptor\.numShards/],
    [{ type: "hash", numShards: 70000 }, /numShards must be an integer from 1 to 65536/],
    [{ type: "ring", numShards: 2 }, /descriptor\.type/],
    [{ type: "hash", numShards: 2, extra: 1 }, /descriptor\.extra: unknown property/],
    [{ type: "range", numShards: 3, boundaries: [2, 1] }, /strictly ascending/],
    [
      { type: "range", numShards: 3, boundaries: [1] },
      /says 3 but the strategy it describes has 2/,
    ],
    [{ type: "range", numShards: 3, boundaries: [1, "a"] }, /all integers or all strings/],
    [{ type: "range", numShards: 2, boundaries: [1.5] }, /boundaries\[0\]: 1\.5 is not a safe/],
    [{ type: "range", numShards: 2, boundaries: [{ bigint: "12" }] }, /plain number/],
    [{ type: "range", numShards: 2, boundaries: [{ bigint: "1e30" }] }, /not a decimal integer/],
    [{ type: "lookup", numShards: 1, entries: [["a", -1]] }, /shard id/],
    [
      { type: "lookup", numShards: 1, entries: [["a"]] },
      /entries\[0\]: expected a \[key, shardId\]/,
    ],
    [{ type: "lookup", numShards: 1, entries: [[{ bytes: "0g" }, 0]] }, /bytes: not lowercase hex/],
    [{ type: "lookup", numShards: 1, entries: [[5, 0], [{ bigint: "5" }, 0]] }, /plain number/],
    [{ type: "lookup", numShards: 1, entries: [["a", 0], ["a", 0]] }, /duplicate key/],
    [
      { type: "lookup", numShards: 2, entries: [], fallback: { type: "hash", numShards: -2 } },
      /descriptor\.fallback\.numShards/,
    ],
  ];
  for (const [descriptor, pattern] of cases) {
    assert.throws(
      () => strategyFromDescriptor(descriptor),
      (error: unknown) => {
        assert.ok(error instanceof InvalidStrategyDescriptorError, String(error));
        assert.match(error.message, pattern);
        return true;
      },
      JSON.stringify(descriptor),
    );
  }
  assert.throws(
    () => sameLayout({ type: "hash" } as unknown as StrategyDescriptor, new HashStrategy(2)),
    InvalidStrategyDescriptorError,
  );
});

Deno.test("bad constructor arguments name the argument", () => {
  for (const Strategy of [HashStrategy, ModuloStrategy]) {
    for (const bad of [0, -1, 1.5, 65537, NaN, Infinity]) {
      assert.throws(() => new Strategy(bad), RangeError);
      assert.throws(() => new Strategy(bad), /numShards must be an integer from 1 to 65536/);
    }
    for (const bad of ["4", 4n, undefined, null]) {
      assert.throws(() => new Strategy(bad as unknown as number), TypeError);
      assert.throws(() => new Strategy(bad as unknown as number), /numShards must be a number/);
    }
  }
  assert.throws(() => new RangeStrategy([]), /boundaries must hold 1 to 65535 values/);
  assert.throws(() => new RangeStrategy([1, 1]), /strictly ascending.*boundaries\[1\]/);
  assert.throws(() => new RangeStrategy(["b", "a"]), /strictly ascending/);
  assert.throws(() => new RangeStrategy([1, "a"]), /all integers or all strings/);
  assert.throws(() => new RangeStrategy([0.5]), /boundaries\[0\] is not a valid key/);
  assert.throws(() => new RangeStrategy([new Uint8Array()]), /Uint8Array/);
  assert.throws(() => new RangeStrategy("abc" as unknown as string[]), TypeError);
  assert.throws(() => new LookupStrategy({}), /at least one entry or a fallback/);
  assert.throws(() => new LookupStrategy({ a: 1.5 }), /shard id for string "a" must be an integer/);
  assert.throws(() => new LookupStrategy({ a: 65536 }), RangeError);
  assert.throws(() => new LookupStrategy(new Map<ShardKey, number>([[5, 1], [5n, 1]])), /twice/);
  assert.throws(() => new LookupStrategy(new Map([[0.5, 1]])), /map key number 0.5/);
  assert.throws(
    () => new LookupStrategy({ a: 0 }, {} as unknown as HashStrategy),
    /fallback must be a ShardingStrategy/,
  );
});

Deno.test("bad keys throw InvalidShardKeyError with the key and the reason", () => {
  const strategies = [new HashStrategy(4), new ModuloStrategy(4), LOOKUP];
  const cases: [unknown, string, RegExp][] = [
    [1.5, "number 1.5", /only integers are keys/],
    [NaN, "number NaN", /NaN/],
    [Infinity, "number Infinity", /infinite/],
    [-Infinity, "number -Infinity", /infinite/],
    [2 ** 53, "number 9007199254740992", /pass it as a bigint/],
    [2n ** 63n, "bigint 9223372036854775808n", /outside the int64 range/],
    [-(2n ** 63n) - 1n, "bigint -9223372036854775809n", /outside the int64 range/],
    ["a\ud800", 'string "a\\ud800"', /lone surrogate at index 1/],
    ["\udc00x", 'string "\\udc00x"', /lone surrogate at index 0/],
    [true, "boolean", /a boolean cannot be a shard key/],
    [null, "null", /a null cannot be/],
    [undefined, "undefined", /an? undefined cannot be/],
    [{}, "object [object Object]", /a Object cannot be/],
    [[1], "object [object Array]", /a array cannot be/],
    [new Uint16Array(2), "object [object Uint16Array]", /Uint16Array cannot be/],
    [Symbol("s"), "symbol", /symbol cannot be/],
  ];
  for (const strategy of strategies) {
    for (const [key, description, reason] of cases) {
      assert.throws(
        () => strategy.getShardId(key as ShardKey),
        (error: unknown) => {
          assert.ok(error instanceof InvalidShardKeyError, `${description}: ${error}`);
          assert.equal(error.key, description);
          assert.match(error.reason, reason);
          assert.match(error.message, /A shard key is an integer/);
          return true;
        },
      );
    }
  }
  assert.throws(() => RANGE_TEXT.getShardId(5), /routes only string keys/);
  assert.throws(() => RANGE_INTEGERS.getShardId("5"), /routes only integer keys/);
});
