/**
 * Fuzzing the ShardManager's inputs with fast-check (seeded; a failure prints the seed
 * and the shrunk counterexample to replay it).
 *
 * (a) Identifiers — random Unicode, quotes, NUL, `;`, `--`, SQL keywords, 100k-character
 *     strings — as table, column, orderBy and where-column names: valid names
 *     (`/^[A-Za-z_][A-Za-z0-9_]*$/`, at most 128 characters, not `sqlite_*`) work, every
 *     other one is refused with InvalidIdentifierError, and afterwards `sqlite_schema`
 *     on every shard lists exactly the tables the test created: nothing ran as SQL.
 *
 * (b) Values — each is either stored and read back by the rules below, or refused with
 *     a typed error, and a refused insert writes nothing. The rules, for a column
 *     without a declared type (no affinity):
 *
 *     | value given                                   | read back                      |
 *     | --------------------------------------------- | ------------------------------ |
 *     | `null`                                        | `null`                         |
 *     | well-formed string without NUL (any length)   | the same string                |
 *     | string with a lone surrogate, or with NUL     | refused: InvalidValueError     |
 *     | number other than NaN (±Infinity, unsafe ints)| the same number                |
 *     | `-0`                                          | `0` (bound as the integer 0)   |
 *     | `NaN`                                         | refused: InvalidValueError     |
 *     | bigint within ±2^53 (safe)                    | the same value as a number     |
 *     | bigint beyond 2^53, within int64              | the same bigint                |
 *     | bigint outside int64                          | refused: InvalidValueError     |
 *     | `true` / `false`                              | `1` / `0`                      |
 *     | Uint8Array (views included)                   | a Uint8Array of the same bytes |
 *     | undefined, objects, arrays, Dates, other typed arrays, functions, symbols | refused: InvalidValueError |
 *
 * `SHARDLITE_STRESS=1` runs 10x as many cases.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  InvalidIdentifierError,
  InvalidQueryError,
  InvalidValueError,
  ShardliteError,
  ShardManager,
  type SqlInput,
} from "../mod.ts";
import { tempDir } from "./helpers.ts";

const STRESS = Deno.env.get("SHARDLITE_STRESS") === "1";
const NUM_SHARDS = 3;

function isValidIdentifier(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) && name.length <= 128 &&
    !name.toLowerCase().startsWith("sqlite_");
}

/** Table names also may not take Shardlite's own prefix. */
function isValidTable(name: string): boolean {
  return isValidIdentifier(name) && !name.toLowerCase().startsWith("_shardlite_");
}

/** Any UTF-16 code unit, lone surrogates included. */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));

const hostileChar = fc.constantFrom(
  '"',
  "'",
  "`",
  "[",
  "]",
  ";",
  "-",
  "/",
  "*",
  "\0",
  " ",
  "\n",
  "(",
  ")",
  ",",
  ".",
  "$",
  "?",
  ":",
  "@",
  "é",
  "\u200b",
  "ｕ",
  "\ud800",
  "\udfff",
  "😀",
  "a",
  "Z",
  "_",
  "0",
  "9",
);

const identifierArb: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,30}$/), weight: 4 },
  { arbitrary: fc.string({ unit: hostileChar, maxLength: 40 }), weight: 3 },
  { arbitrary: fc.string({ unit: "binary", maxLength: 20 }), weight: 1 },
  { arbitrary: fc.string({ unit: codeUnit, maxLength: 20 }), weight: 1 },
  {
    arbitrary: fc.tuple(
      fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,8}$/),
      fc.constantFrom(";", "--", '"', "\0", "'", " ", "\0DROP", '"; DROP TABLE base; --', "/*"),
    ).map(([a, b]) => a + b),
    weight: 2,
  },
  {
    arbitrary: fc.constantFrom(
      "SELECT",
      "select",
      "DROP",
      "TABLE",
      "WHERE",
      "ORDER",
      "rowid",
      "or",
      "not",
      "users; DROP TABLE base",
      'x" OR "1"="1',
      "x--",
      "x/*",
      "sqlite_master",
      "SQLITE_SCHEMA",
      "sqlite_x",
      "sqlitex",
      "_shardlite_batches",
      "_SHARDLITE_x",
      "_",
      "__",
      "a".repeat(128),
      "a".repeat(129),
      "a".repeat(100_000),
      "1abc",
      "",
      " ",
      "a b",
      "ä",
    ),
    weight: 2,
  },
  { arbitrary: fc.integer({ min: 129, max: 100_000 }).map((n) => "b".repeat(n)), weight: 1 },
);

async function refusedIdentifier(p: Promise<unknown>, what: string): Promise<void> {
  await assert.rejects(p, InvalidIdentifierError, what);
}

/**
 * Calls `fn`, turning a synchronous throw into a rejection. sum/avg/min/max throw an
 * InvalidIdentifierError synchronously today (see the test at the end of this file);
 * the fuzz checks the error's type, that test checks the promise contract.
 */
function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return fn();
  } catch (error) {
    return Promise.reject(error);
  }
}

/** The tables of every shard, by reading sqlite_schema on each one. */
async function schemaPerShard(
  manager: ShardManager,
): Promise<{ name: string; type: string }[][]> {
  const result: { name: string; type: string }[][] = [];
  for (let shard = 0; shard < NUM_SHARDS; shard++) {
    const rows = await manager.getPool(shard).withConnection((c) =>
      c.all("SELECT name, type FROM sqlite_schema ORDER BY name")
    );
    result.push(rows.map((r) => ({ name: String(r.name), type: String(r.type) })));
  }
  return result;
}

/** A column's key in a `where`: `or` and `not` are where's keywords, so they go in another case. */
function whereKey(column: string): string {
  return column === "or" || column === "not" ? column.toUpperCase() : column;
}

Deno.test("fuzz: identifiers are either valid and work, or refused; nothing runs as SQL", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: NUM_SHARDS, dbDir: dir.path });
  await manager.createTable("base", { id: "INTEGER PRIMARY KEY", v: "TEXT" }, { shardKey: "id" });
  await manager.insertMany("base", [{ id: 1, v: "one" }, { id: 2, v: "two" }]);
  // Tables created, by lower-case name (SQLite table names are case-insensitive).
  const tables = new Map<string, number>([["base", 2]]);
  let run = 0;

  await fc.assert(
    fc.asyncProperty(identifierArb, async (name) => {
      run++;
      const valid = isValidIdentifier(name);
      const fixed = name.toLowerCase() === "base" || /^colfz_\d+$/i.test(name);

      // As a table name.
      if (!isValidTable(name)) {
        await refusedIdentifier(manager.createTable(name, { v: "TEXT" }), "createTable");
        await refusedIdentifier(manager.insert(name, { v: "x" }, run), "insert");
        await refusedIdentifier(manager.insertMany(name, [{ v: "x" }], [run]), "insertMany");
        await refusedIdentifier(manager.select(name), "select");
        await refusedIdentifier(manager.select(name, { key: run }), "select by key");
        await refusedIdentifier(manager.count(name), "count");
        await refusedIdentifier(manager.aggregateBy(name, "v", "COUNT(*)"), "aggregateBy table");
        await refusedIdentifier(manager.update(name, { v: "y" }, { key: run }), "update");
        await refusedIdentifier(manager.delete(name, { key: run }), "delete");
        await refusedIdentifier(manager.dropTable(name), "dropTable");
      } else if (!fixed) {
        await manager.createTable(name, { v: "TEXT" });
        await manager.insert(name, { v: `run ${run}` }, run);
        const lower = name.toLowerCase();
        tables.set(lower, (tables.get(lower) ?? 0) + 1);
        assert.equal(await manager.count(name), tables.get(lower));
        const rows = await manager.select(name, { where: { v: `run ${run}` }, orderBy: "v" });
        assert.deepEqual(rows, [{ v: `run ${run}` }]);
      }

      // As a column name: in columns, orderBy, where, insert, update, aggregates.
      const before = await manager.count("base");
      if (!valid) {
        await refusedIdentifier(manager.select("base", { columns: [name] }), "columns");
        await refusedIdentifier(manager.select("base", { orderBy: name }), "orderBy");
        await refusedIdentifier(
          manager.select("base", { orderBy: [{ column: name, direction: "desc" }] }),
          "orderBy term",
        );
        await refusedIdentifier(manager.select("base", { where: { [name]: 1 } }), "where");
        await refusedIdentifier(manager.count("base", { [name]: { gt: 1 } }), "where filter");
        await refusedIdentifier(manager.insert("base", { id: 1_000 + run, [name]: 1 }), "insert");
        await refusedIdentifier(manager.update("base", { [name]: 1 }, { key: 1 }), "update");
        await refusedIdentifier(manager.delete("base", { where: { [name]: 1 } }), "delete");
        await refusedIdentifier(call(() => manager.sum("base", name)), "sum");
        await refusedIdentifier(call(() => manager.max("base", name)), "max");
        await refusedIdentifier(manager.aggregateBy("base", name, "COUNT(*)"), "groupBy");
        await refusedIdentifier(
          manager.createTable(`colfz_${run}`, { [name]: "TEXT" }),
          "column definition",
        );
        await refusedIdentifier(
          manager.createTable(`colfz_${run}`, { id: "INTEGER" }, { shardKey: name }),
          "shard key",
        );
        assert.equal(await manager.count("base"), before, "a refused insert wrote nothing");
      } else {
        // A table whose only column (and shard key) has this name.
        const table = `colfz_${run}`;
        await manager.createTable(table, { [name]: "INTEGER" }, { shardKey: name });
        tables.set(table.toLowerCase(), 1);
        await manager.insert(table, { [name]: run });
        const expected = [{ [name]: run }];
        assert.deepEqual(await manager.select(table, { key: run }), expected);
        assert.deepEqual(
          await manager.select(table, {
            columns: [name],
            where: { [whereKey(name)]: { gte: run } },
            orderBy: [{ column: name, direction: "desc" }],
          }),
          expected,
        );
        assert.equal(Number(await manager.sum(table, name)), run);
        assert.equal(await manager.delete(table, { where: { [whereKey(name)]: { lt: 0 } } }), 0);
        // base has no such column (unless the name is id or v): a typed error, and not an
        // identifier refusal (SQLite says "no such column"; rowid/oid exist in SQLite but
        // not in the rows, which the merge reports as InvalidQueryError).
        if (!["id", "v"].includes(name.toLowerCase())) {
          await assert.rejects(
            manager.select("base", { orderBy: name }),
            (e: unknown) => e instanceof ShardliteError && !(e instanceof InvalidIdentifierError),
          );
        }
      }
    }),
    { numRuns: STRESS ? 2_000 : 200 },
  );

  // Nothing ran as SQL: every shard holds exactly the tables created, and base is intact.
  const expected = [...tables.keys()].sort();
  for (const [shard, all] of (await schemaPerShard(manager)).entries()) {
    // Shardlite's own bookkeeping table (and its key's index) left aside.
    const rows = all.filter((r) => !/^(sqlite_autoindex_)?_shardlite_batches/.test(r.name));
    // Tables, and the indexes createTable keeps on shard keys that are not the primary key.
    assert.ok(
      rows.every((r) =>
        r.type === "table" || (r.type === "index" && r.name.startsWith("shardlite_key_"))
      ),
      `shard ${shard}: ${JSON.stringify(rows)}`,
    );
    const tablesThere = rows.filter((r) => r.type === "table");
    assert.deepEqual(
      tablesThere.map((r) => r.name.toLowerCase()).sort(),
      expected,
      `shard ${shard}`,
    );
  }
  assert.deepEqual(await manager.select("base", { orderBy: "id" }), [
    { id: 1, v: "one" },
    { id: 2, v: "two" },
  ]);
  assert.equal(await manager.validateShardFiles(), true);
});

type Expected = { stored: true; readBack: unknown } | { stored: false };

/** What reading a value back from a column without a declared type gives, per the rules above. */
function expectation(value: unknown): Expected {
  switch (typeof value) {
    case "string":
      if (!value.isWellFormed() || value.includes("\0")) return { stored: false };
      return { stored: true, readBack: value };
    case "number":
      if (Number.isNaN(value)) return { stored: false };
      return { stored: true, readBack: Object.is(value, -0) ? 0 : value };
    case "bigint":
      if (value < -(2n ** 63n) || value >= 2n ** 63n) return { stored: false };
      return {
        stored: true,
        readBack:
          value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
            ? Number(value)
            : value,
      };
    case "boolean":
      return { stored: true, readBack: value ? 1 : 0 };
    case "object":
      if (value === null) return { stored: true, readBack: null };
      if (value instanceof Uint8Array) return { stored: true, readBack: new Uint8Array(value) };
      return { stored: false };
    default: // undefined, function, symbol
      return { stored: false };
  }
}

const valueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.string({ unit: "binary", maxLength: 50 }), // NUL included
  fc.string({ unit: codeUnit, maxLength: 20 }), // lone surrogates included
  fc.constantFrom("\ud800", "a\udc00b", "\0", "a\0b", "", "'; DROP TABLE vals; --", "😀", "é"),
  fc.integer({ min: 1_000, max: 100_000 }).map((n) => "ü".repeat(n)),
  fc.uint8Array({ maxLength: 64 }),
  fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 32 }), fc.nat(3)).map(([a, o]) =>
    a.subarray(o, a.length - 1)
  ),
  fc.double(), // NaN, ±Infinity and -0 included
  fc.constantFrom(
    NaN,
    Infinity,
    -Infinity,
    -0,
    0,
    2 ** 31,
    2 ** 53,
    2 ** 53 + 2,
    -(2 ** 53) - 2,
    2 ** 60,
    2 ** 63,
    -(2 ** 63),
    2 ** 64,
    1e308,
    Number.MIN_VALUE,
    Number.MAX_SAFE_INTEGER,
    Number.MIN_SAFE_INTEGER,
  ),
  fc.integer(),
  fc.maxSafeInteger(),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
  fc.constantFrom(
    2n ** 63n - 1n,
    -(2n ** 63n),
    2n ** 63n,
    -(2n ** 63n) - 1n,
    2n ** 53n,
    2n ** 53n + 1n,
    0n,
    -1n,
  ),
  fc.boolean(),
  fc.constantFrom<unknown>(
    undefined,
    null,
    {},
    [],
    [1],
    { a: 1 },
    new Date(0),
    () => 1,
    Symbol("s"),
    new Map(),
    new Uint16Array([1]),
    new Int8Array([1]),
    new ArrayBuffer(2),
    Object.create(null),
    new Number(1),
    new String("s"),
  ),
  fc.date(),
  fc.object({ maxDepth: 1 }),
  fc.array(fc.integer(), { maxLength: 3 }),
);

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function describe(value: unknown): string {
  try {
    if (typeof value === "bigint") return `${value}n`;
    if (typeof value === "string" && value.length > 40) return `string(${value.length})`;
    return fc.stringify(value);
  } catch {
    return String(typeof value);
  }
}

Deno.test("fuzz: values are stored and read back by the documented rules, or refused typed", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: NUM_SHARDS, dbDir: dir.path });
  await manager.createTable("vals", { id: "INTEGER PRIMARY KEY", v: "" }, { shardKey: "id" });
  let id = 0;
  let stored = 0;

  await fc.assert(
    fc.asyncProperty(valueArb, async (value) => {
      id++;
      const what = describe(value);
      const expected = expectation(value);
      const row = { id, v: value as SqlInput };
      if (!expected.stored) {
        await assert.rejects(manager.insert("vals", row), InvalidValueError, what);
        await assert.rejects(manager.insertMany("vals", [row]), InvalidValueError, what);
        await assert.rejects(
          manager.update("vals", { v: value as SqlInput }, { key: 1 }),
          InvalidValueError,
          what,
        );
        // In a filter a plain object reads as an operator object: InvalidQueryError.
        await assert.rejects(
          manager.select("vals", { where: { v: value as SqlInput } }),
          (e: unknown) => e instanceof InvalidValueError || e instanceof InvalidQueryError,
          what,
        );
        assert.deepEqual(await manager.select("vals", { key: id }), [], `${what} wrote a row`);
        assert.equal(await manager.count("vals"), stored, `${what} changed the count`);
        return;
      }
      await manager.insert("vals", row);
      stored++;
      const [got] = await manager.select("vals", { key: id });
      assert.ok(got !== undefined, what);
      assert.ok(
        Object.is(got.v, expected.readBack) ||
          (got.v instanceof Uint8Array && expected.readBack instanceof Uint8Array &&
            sameBytes(got.v, expected.readBack)) ||
          (typeof got.v === "string" && got.v === expected.readBack),
        `${what}: read back ${describe(got.v)} (${typeof got.v}), expected ${
          describe(expected.readBack)
        }`,
      );
      // The same value finds the row again as a filter.
      assert.deepEqual(
        await manager.select("vals", { where: { id, v: value as SqlInput }, columns: ["id"] }),
        [{ id }],
        `${what} as a where value`,
      );
    }),
    { numRuns: STRESS ? 4_000 : 400 },
  );
  assert.equal(await manager.count("vals"), stored);
});

Deno.test("sum/avg/min/max report an invalid column as a rejection, never a synchronous throw", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: NUM_SHARDS, dbDir: dir.path });
  await manager.createTable("base", { id: "INTEGER PRIMARY KEY", v: "INTEGER" }, {
    shardKey: "id",
  });
  for (const method of ["sum", "avg", "min", "max"] as const) {
    let promise: Promise<unknown> | undefined;
    assert.doesNotThrow(() => {
      promise = manager[method]("base", 'v"; DROP TABLE base; --');
    }, `${method}() threw synchronously; an async method must reject`);
    await assert.rejects(promise!, InvalidIdentifierError);
  }
});
