/**
 * `where` filters: `or`, `not`, every column operator and lists of any length, checked
 * against SQL written by hand. The property test builds random tables (every column
 * affinity, rows of mixed types and NULLs) and random filters, and compares the rows
 * `buildWhere` selects with the rows of the same filter rendered by a small translator
 * below, which writes every value as an SQL literal and every list inline. Both drivers.
 * `SHARDLITE_STRESS=1` runs 10x as many cases.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { InvalidIdentifierError, InvalidQueryError, InvalidValueError } from "../src/errors.ts";
import type { DriverHandle } from "../src/driver/driver.ts";
import { nativeDriver } from "../src/driver/native.ts";
import { wasmDriver } from "../src/driver/wasm.ts";
import { buildWhere, type ColumnFilter, type Where } from "../src/sql/where.ts";
import type { SqlInput, SqlValue } from "../src/types.ts";
import { ShardManager } from "../mod.ts";
import { tempDir } from "./helpers.ts";

const STRESS = Deno.permissions.querySync({ name: "env", variable: "SHARDLITE_STRESS" })
      .state === "granted" && Deno.env.get("SHARDLITE_STRESS") === "1";
const DRIVERS = { wasm: wasmDriver, native: nativeDriver } as const;

async function open(driver: typeof wasmDriver): Promise<DriverHandle> {
  return await driver.open(":memory:", { create: true, statementCacheSize: 16 });
}

async function ids(db: DriverHandle, sql: string, params: readonly SqlValue[] = []) {
  const rows = await db.all(sql, params as SqlValue[]);
  return rows.map((row) => Number(row.id));
}

// --- the independent translator: a filter as SQL text with literal values ----------------

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A value as an SQL literal of the type the drivers bind it as. */
function literal(value: SqlInput): string {
  if (value === null) return "NULL";
  if (typeof value === "boolean") return value ? "1" : "0";
  if (typeof value === "bigint") return String(value);
  if (typeof value === "string") return `'${value.replaceAll("'", "''")}'`;
  if (value instanceof Uint8Array) return `X'${hex(value)}'`;
  // numbers: safe integers bind as INTEGER, everything else as REAL
  if (Number.isSafeInteger(value)) return String(value === 0 ? 0 : value);
  if (value === Infinity) return "1e999";
  if (value === -Infinity) return "-1e999";
  const text = String(value);
  return /[.e]/.test(text) ? text : `${text}.0`;
}

function columnSql(column: string, filter: ColumnFilter): string[] {
  const c = `"${column}"`;
  const out: string[] = [];
  for (const [op, operand] of Object.entries(filter)) {
    const v = operand as SqlInput;
    const list = operand as SqlInput[];
    const pair = operand as [SqlInput, SqlInput];
    switch (op) {
      case "eq":
        out.push(v === null ? `${c} IS NULL` : `${c} = ${literal(v)}`);
        break;
      case "ne":
        out.push(v === null ? `${c} IS NOT NULL` : `${c} <> ${literal(v)}`);
        break;
      case "lt":
        out.push(`${c} < ${literal(v)}`);
        break;
      case "lte":
        out.push(`${c} <= ${literal(v)}`);
        break;
      case "gt":
        out.push(`${c} > ${literal(v)}`);
        break;
      case "gte":
        out.push(`${c} >= ${literal(v)}`);
        break;
      case "in":
      case "notIn": {
        const values = list.filter((x) => x !== null);
        const hasNull = values.length < list.length;
        const inList = `${c} ${op === "in" ? "IN" : "NOT IN"} (${values.map(literal).join(", ")})`;
        if (op === "in") {
          const parts = [...(values.length ? [inList] : []), ...(hasNull ? [`${c} IS NULL`] : [])];
          out.push(parts.length === 0 ? "0" : `(${parts.join(" OR ")})`);
        } else {
          const parts = [
            ...(values.length ? [inList] : []),
            ...(hasNull ? [`${c} IS NOT NULL`] : []),
          ];
          out.push(parts.length === 0 ? "1" : `(${parts.join(" AND ")})`);
        }
        break;
      }
      case "like":
        out.push(`${c} LIKE ${literal(v)}`);
        break;
      case "glob":
        out.push(`${c} GLOB ${literal(v)}`);
        break;
      case "between":
        out.push(`(${c} >= ${literal(pair[0])} AND ${c} <= ${literal(pair[1])})`);
        break;
      case "notBetween":
        out.push(`NOT (${c} >= ${literal(pair[0])} AND ${c} <= ${literal(pair[1])})`);
        break;
      case "isNull":
        out.push(`${c} IS ${operand ? "" : "NOT "}NULL`);
        break;
      default:
        throw new Error(`translator: unknown operator ${op}`);
    }
  }
  return out;
}

/** The filter as SQL text: AND of its keys, `or` and `not` as SQL OR and NOT. */
function translate(where: Where): string {
  const terms: string[] = [];
  for (const [key, condition] of Object.entries(where)) {
    if (key === "or") {
      terms.push(`(${(condition as Where[]).map((w) => `(${translate(w)})`).join(" OR ")})`);
    } else if (key === "not") {
      terms.push(`NOT (${translate(condition as Where)})`);
    } else if (
      typeof condition === "object" && condition !== null && !(condition instanceof Uint8Array)
    ) {
      terms.push(...columnSql(key, condition as ColumnFilter));
    } else {
      const v = condition as SqlInput;
      terms.push(v === null ? `"${key}" IS NULL` : `"${key}" = ${literal(v)}`);
    }
  }
  return terms.length === 0 ? "1" : terms.map((t) => `(${t})`).join(" AND ");
}

// --- random tables and filters --------------------------------------------------------------

const TABLE = "CREATE TABLE t (id INTEGER PRIMARY KEY, i INTEGER, s TEXT, r REAL, b BLOB, n, " +
  "m NUMERIC, c TEXT COLLATE NOCASE)";
const COLUMNS = ["id", "i", "s", "r", "b", "n", "m", "c"] as const;
const ROW_COLUMNS = ["i", "s", "r", "b", "n", "m", "c"] as const;

/** Values that rows and filters share often, so that filters hit rows. */
const POOL: SqlValue[] = [
  0,
  1,
  2,
  -1,
  7,
  1.5,
  -0.25,
  2 ** 53,
  2 ** 53 - 1,
  1e20,
  Infinity,
  -Infinity,
  2n ** 63n - 1n,
  -(2n ** 63n),
  2n ** 62n,
  "",
  "a",
  "A",
  "ab",
  "1",
  "2",
  "7",
  "01",
  "1.5",
  " 7",
  "1e20",
  "%",
  "_",
  "it's",
  new Uint8Array([]),
  new Uint8Array([0]),
  new Uint8Array([0x31]),
  new Uint8Array([0x61, 0x62]),
];

/** A few values that compare equal across types (or only through affinity or NOCASE). */
const HOT: SqlValue[] = [
  7,
  "7",
  "7.0",
  7.5,
  "7.5",
  2n ** 62n,
  "4611686018427387904",
  1e20,
  "1e20",
  "abc",
  "ABC",
  new Uint8Array([0x37]),
];

const text = fc.string({ unit: "binary", maxLength: 4 }).filter((s) =>
  !s.includes("\0") && s.isWellFormed()
);
const stored: fc.Arbitrary<SqlValue> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...HOT) },
  { weight: 6, arbitrary: fc.constantFrom(...POOL) },
  { weight: 2, arbitrary: fc.integer({ min: -3, max: 12 }) },
  { weight: 1, arbitrary: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }) },
  { weight: 1, arbitrary: fc.double({ noNaN: true }) },
  { weight: 1, arbitrary: text },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 3 }) },
);
const rowValue: fc.Arbitrary<SqlValue> = fc.oneof(
  { weight: 4, arbitrary: stored },
  { weight: 1, arbitrary: fc.constant(null) },
);
const table = fc.array(
  fc.array(rowValue, { minLength: ROW_COLUMNS.length, maxLength: ROW_COLUMNS.length }),
  { minLength: 2, maxLength: 12 },
);

/** A seeded list of 501..1600 values of the kinds asked for, with `base` spread through it. */
function longList(
  base: SqlInput[],
  size: number,
  seed: number,
  kinds: readonly string[],
  own: readonly SqlValue[],
): SqlInput[] {
  let state = seed >>> 0 || 1;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0);
  const out: SqlInput[] = [];
  for (let k = 0; k < size; k++) {
    const n = (next() % 400) - 200;
    switch (kinds[next() % kinds.length]) {
      case "int":
        out.push(n);
        break;
      case "digits":
        out.push(String(n)); // matches INTEGER columns through affinity
        break;
      case "text":
        out.push(`v${n}`);
        break;
      case "real":
        out.push(n + 0.5);
        break;
      case "bigint":
        out.push(BigInt(n) * 2n ** 40n);
        break;
      case "own": // the table's values, in another type
        if (own.length > 0) out.push(crossType(own[next() % own.length]!));
        break;
      default:
        out.push(new Uint8Array([n & 255]));
    }
  }
  for (const value of base) out.splice(next() % (out.length + 1), 0, value);
  return out;
}

const pattern: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("%", "a%", "A%", "_", "%1%", "1%", "", "*", "a*", "[0-9]*", "?", "[a-z]", "7"),
  text,
);

/** The same value in another SQLite type: numbers as text, numeric text as numbers. */
function crossType(value: SqlValue): SqlValue {
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  if (typeof value === "string") {
    const number = Number(value);
    return value.trim() !== "" && Number.isFinite(number) ? number : value.toUpperCase();
  }
  return value;
}

/** Random filters whose values are often the table's own (`seen`), so that they hit rows. */
function filterOf(seen: readonly SqlValue[], depth: number): fc.Arbitrary<Where> {
  const own = seen.filter((v) => v !== null);
  const operand: fc.Arbitrary<SqlInput> = fc.oneof(
    { weight: 4, arbitrary: own.length > 0 ? fc.constantFrom(...own) : stored },
    { weight: 2, arbitrary: own.length > 0 ? fc.constantFrom(...own).map(crossType) : stored },
    { weight: 5, arbitrary: stored },
    { weight: 1, arbitrary: fc.boolean() },
  );
  const maybeNull: fc.Arbitrary<SqlInput> = fc.oneof(
    { weight: 6, arbitrary: operand },
    { weight: 1, arbitrary: fc.constant(null) },
  );
  const list: fc.Arbitrary<SqlInput[]> = fc.oneof(
    { weight: 2, arbitrary: fc.array(maybeNull, { maxLength: 6 }) },
    {
      weight: 1,
      arbitrary: fc.tuple(
        fc.array(maybeNull, { maxLength: 8 }),
        fc.integer({ min: 501, max: 1600 }),
        fc.integer(),
        fc.subarray(["int", "digits", "text", "real", "bigint", "blob", "own"], { minLength: 1 }),
      ).map(([base, size, seed, kinds]) => longList(base, size, seed, kinds, own)),
    },
  );
  const operator: fc.Arbitrary<[string, unknown]> = fc.oneof(
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom("eq", "ne"), maybeNull) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom("lt", "lte", "gt", "gte"), operand) },
    { weight: 3, arbitrary: fc.tuple(fc.constantFrom("in", "notIn"), list) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom("like", "glob"), pattern) },
    {
      weight: 1,
      arbitrary: fc.tuple(fc.constantFrom("between", "notBetween"), fc.tuple(operand, operand)),
    },
    { weight: 1, arbitrary: fc.tuple(fc.constant("isNull"), fc.boolean()) },
  );
  const condition: fc.Arbitrary<unknown> = fc.oneof(
    { weight: 1, arbitrary: maybeNull },
    {
      weight: 3,
      arbitrary: fc.array(operator, { minLength: 1, maxLength: 2, size: "xsmall" }).map((ops) =>
        Object.fromEntries(ops)
      ),
    },
  );
  const whereOf = (level: number): fc.Arbitrary<Where> => {
    const columns = fc.array(fc.tuple(fc.constantFrom(...COLUMNS), condition), { maxLength: 2 });
    if (level === 0) return columns.map((entries) => Object.fromEntries(entries) as Where);
    const inner = whereOf(level - 1);
    return fc.tuple(
      columns,
      fc.option(fc.array(inner, { minLength: 1, maxLength: 3 }), { freq: 2 }),
      fc.option(inner, { freq: 4 }),
    ).map(([entries, or, not]) => {
      const where: Record<string, unknown> = Object.fromEntries(entries);
      if (or !== null) where.or = or;
      if (not !== null) where.not = not;
      return where as Where;
    });
  };
  return whereOf(depth);
}

const tableAndFilter = table.chain((rows) =>
  filterOf(rows.flat(), 3).map((where) => ({ rows, where }))
);

Deno.test("property: buildWhere selects the rows of the same filter written by hand", async () => {
  const dbs = await Promise.all(Object.values(DRIVERS).map(open));
  try {
    for (const db of dbs) await db.exec(TABLE);
    let longLists = 0;
    await fc.assert(
      fc.asyncProperty(tableAndFilter, async ({ rows, where }) => {
        const { sql, params } = buildWhere(where, wasmDriver.checkText);
        if (sql.includes("json_each")) longLists++;
        const expectedSql = `SELECT id FROM t WHERE ${translate(where)} ORDER BY id`;
        for (const [name, db] of Object.keys(DRIVERS).map((n, k) => [n, dbs[k]!] as const)) {
          await db.run("DELETE FROM t");
          for (const [k, row] of rows.entries()) {
            await db.run(
              `INSERT INTO t (id, ${ROW_COLUMNS.join(", ")}) VALUES (?, ${
                ROW_COLUMNS.map(() => "?").join(", ")
              })`,
              [k + 1, ...row],
            );
          }
          const expected = await ids(db, expectedSql);
          const actual = await ids(db, `SELECT id FROM t ${sql} ORDER BY id`, params);
          assert.deepEqual(actual, expected, `${name}: ${sql}\nvs ${expectedSql}`);
        }
      }),
      { numRuns: STRESS ? 2000 : 200, seed: 20_240_611 },
    );
    assert.ok(longLists > 0, "some filters had long lists");
  } finally {
    for (const db of dbs) await db.close();
  }
});

// --- long lists ---------------------------------------------------------------------------

for (const [name, driver] of Object.entries(DRIVERS)) {
  Deno.test(`[${name}] SQLite binds at most 32766 parameters per statement`, async () => {
    const db = await open(driver);
    try {
      const marks = (n: number) => Array(n).fill("?").join(",");
      await db.all(`SELECT 1 WHERE 1 IN (${marks(32766)})`, Array(32766).fill(1));
      await assert.rejects(
        async () => await db.all(`SELECT 1 WHERE 1 IN (${marks(32767)})`, Array(32767).fill(1)),
        /too many SQL variables/,
      );
    } finally {
      await db.close();
    }
  });

  Deno.test(`[${name}] a long in list compares as the short one does`, async () => {
    const db = await open(driver);
    try {
      await db.exec(TABLE);
      const rows: SqlValue[][] = [
        [7, "7", 7, new Uint8Array([7]), 7, 7, "abc"],
        ["7", "7.0", 7.5, "7", "7", "7", "ABC"],
        [2n ** 62n, "x", 2 ** 53, 1.5, 1.5, "1.5", "x"],
        [null, "1e20", 1e20, null, "1e20", 1e20, null],
        // 2^62 + 1 is no double: a REAL column holds 2^62, the others the integer or its text
        [2n ** 62n + 1n, 2n ** 62n + 1n, 2n ** 62n + 1n, 2n ** 62n + 1n, 2n ** 62n + 1n, 1n, "x"],
      ];
      for (const [k, row] of rows.entries()) {
        await db.run("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [k + 1, ...row]);
      }
      const probes: SqlInput[][] = [
        [7, "7", 7.5, 2 ** 53, 1e20],
        ["7", "007", "+7", " 7", "1.5", "4611686018427387904"], // digit strings
        [7n, 2n ** 62n, 1.5, "abc", "7.0"], // a TEXT column against numbers
        [new Uint8Array([7]), "ABC", Infinity, -Infinity, true, 1],
        [2n ** 62n + 1n, 2n ** 62n], // REAL affinity would round the first in a subquery
        ["4611686018427387905", " +4611686018427387905\t", "4611686018427387904", 7],
        [2n ** 62n + 1n, new Uint8Array([7]), "x"],
      ];
      const padding = (n: number) => Array.from({ length: n }, (_, k) => `pad-${k}`);
      for (const column of ["id", ...ROW_COLUMNS]) {
        for (const probe of probes) {
          for (const op of ["in", "notIn"] as const) {
            const short = buildWhere({ [column]: { [op]: probe } });
            const long = buildWhere({ [column]: { [op]: [...probe, ...padding(600)] } });
            assert.ok(!short.sql.includes("json_each") && long.sql.includes("json_each"));
            assert.ok(long.params.length <= 3);
            assert.deepEqual(
              await ids(db, `SELECT id FROM t ${long.sql} ORDER BY id`, long.params),
              await ids(db, `SELECT id FROM t ${short.sql} ORDER BY id`, short.params),
              `${column} ${op} ${String(probe)}`,
            );
          }
        }
      }
    } finally {
      await db.close();
    }
  });

  Deno.test(`[${name}] lists longer than the parameter limit, of every type`, async () => {
    const db = await open(driver);
    try {
      await db.exec("CREATE TABLE v (id INTEGER PRIMARY KEY, x)");
      const values: SqlValue[] = [
        39_999,
        -(2n ** 63n),
        2n ** 63n - 1n,
        "needle",
        'quote"and\\back\nslash\u2028',
        0.1,
        -2.5e-300,
        2 ** 60,
        Infinity,
        -Infinity,
        new Uint8Array([]),
        new Uint8Array([0, 255, 16]),
        "😀",
      ];
      for (const [k, x] of values.entries()) await db.run("INSERT INTO v VALUES (?, ?)", [k, x]);
      await db.run("INSERT INTO v VALUES (?, ?)", [100, "not in the list"]);
      await db.run("INSERT INTO v VALUES (?, ?)", [101, null]);
      const many = [...Array.from({ length: 40_000 }, (_, k) => 100_000 + k), ...values];
      const blobs = Array.from({ length: 40_000 }, (_, k) => new Uint8Array([k & 255, k >> 8, 1]));
      const select = async (where: Where) => {
        const { sql, params } = buildWhere(where, driver.checkText);
        assert.ok(params.length <= 3, sql);
        return await ids(db, `SELECT id FROM v ${sql} ORDER BY id`, params);
      };
      const all = values.map((_, k) => k);
      assert.deepEqual(await select({ x: { in: many } }), all);
      assert.deepEqual(await select({ x: { in: [...blobs, ...values] } }), all);
      assert.deepEqual(await select({ x: { in: [...many, null] } }), [...all, 101]);
      assert.deepEqual(await select({ x: { notIn: many } }), [100]);
      assert.deepEqual(await select({ x: { notIn: [...blobs, ...many, null] } }), [100]);
      assert.deepEqual(await select({ x: { notIn: blobs } }), [...all, 100]);
      // the driver's text rule and the value checks reach every value of a long list
      const bad = (value: unknown) => [...many.slice(0, 30_000), value, ...many.slice(30_000)];
      assert.throws(
        () => buildWhere({ x: { in: bad("a\0b") as SqlInput[] } }, driver.checkText),
        (e) => e instanceof InvalidValueError && e.column === "x",
      );
      for (const value of [NaN, undefined, 2n ** 63n, "\ud800", {}, [1]]) {
        assert.throws(
          () => buildWhere({ x: { notIn: bad(value) as SqlInput[] } }),
          InvalidValueError,
        );
      }
    } finally {
      await db.close();
    }
  });

  Deno.test(`[${name}] wide and deep filters stay within SQLite's limits`, async () => {
    const db = await open(driver);
    try {
      await db.exec("CREATE TABLE v (id INTEGER PRIMARY KEY, x)");
      for (let k = 0; k < 10; k++) await db.run("INSERT INTO v VALUES (?, ?)", [k, k]);
      const run = async (where: Where) => {
        const { sql, params } = buildWhere(where);
        return await ids(db, `SELECT id FROM v ${sql} ORDER BY id`, params);
      };
      // 5000 OR branches and 1500 AND-ed columns: SQLite refuses expressions 1000 deep
      const branches = Array.from({ length: 5000 }, (_, k) => ({ x: k * 2 }));
      assert.deepEqual(await run({ or: branches }), [0, 2, 4, 6, 8]);
      const columns = Array.from({ length: 1500 }, (_, k) => `c${k}`);
      await db.exec(`CREATE TABLE w (id INTEGER PRIMARY KEY, ${columns.join(", ")})`);
      await db.run(
        `INSERT INTO w (id, ${columns.join(", ")}) VALUES (1, ${
          columns.map(() => "0").join(", ")
        }), (2, ${columns.map((_, k) => k === 1499 ? "1" : "0").join(", ")})`,
      );
      const wide = buildWhere({
        ...Object.fromEntries(columns.map((c) => [c, 0])),
        or: [{ id: 1 }, { not: { id: 1 } }],
      });
      assert.deepEqual(await ids(db, `SELECT id FROM w ${wide.sql}`, wide.params), [1]);
      // 32 levels of or and not are fine
      let deep: Where = { x: { between: [3, 5] } };
      for (let level = 0; level < 32; level++) {
        deep = level % 2 === 0 ? { not: deep } : { or: [deep, { x: -1 }] };
      }
      assert.deepEqual(await run(deep), [3, 4, 5]);
    } finally {
      await db.close();
    }
  });
}

// --- bad input -----------------------------------------------------------------------------

function invalidQuery(fn: () => unknown, option: string, reason: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof InvalidQueryError, String(error));
    assert.equal(error.option, option);
    assert.match(error.message, reason);
    return true;
  });
}

Deno.test("bad filters are refused with InvalidQueryError naming the option", () => {
  const w = (where: unknown) => () => buildWhere(where as Where);
  invalidQuery(w({ or: [] }), "where.or", /empty or matches nothing; pass at least one filter/);
  invalidQuery(w({ or: { a: 1 } }), "where.or", /expected an array of filters.*\{ OR: \.\.\. \}/);
  invalidQuery(w({ or: 5 }), "where.or", /or is a keyword/);
  invalidQuery(w({ or: [{ a: 1 }, null] }), "where.or[1]", /expected a filter object, got null/);
  invalidQuery(w({ or: [[{ a: 1 }]] }), "where.or[0]", /filter object, got an array/);
  invalidQuery(w({ not: 5 }), "where.not", /expected a filter object.*not is a keyword/);
  invalidQuery(w({ not: [{ a: 1 }] }), "where.not", /expected a filter object, got an array/);
  invalidQuery(w({ not: null }), "where.not", /got null/);
  invalidQuery(w({ not: new Uint8Array(1) }), "where.not", /Uint8Array/);
  invalidQuery(
    w({ or: [{ a: 1 }, { b: 2 }, { age: { between: [1] } }] }),
    "where.or[2].age.between",
    /expected \[low, high\], an array of two values, got an array of 1/,
  );
  invalidQuery(w({ age: { between: 5 } }), "where.age.between", /\[low, high\].*number 5/);
  invalidQuery(w({ age: { between: [1, 2, 3] } }), "where.age.between", /array of 3/);
  invalidQuery(w({ age: { between: [null, 2] } }), "where.age.between", /null bound.*non-null/);
  invalidQuery(w({ age: { notBetween: [1, undefined] } }), "where.age.notBetween", /null bound/);
  invalidQuery(w({ not: { age: { glob: 5 } } }), "where.not.age.glob", /string pattern/);
  invalidQuery(w({ age: { like: null } }), "where.age.like", /string pattern, got null/);
  invalidQuery(w({ age: { glob: ["a*"] } }), "where.age.glob", /string pattern/);
  invalidQuery(w({ age: { regexp: "x" } }), "where.age.regexp", /unknown operator; use eq, ne/);
  invalidQuery(w({ age: { or: [{ gt: 1 }] } }), "where.age.or", /goes beside column names/);
  invalidQuery(w({ age: { not: { gt: 1 } } }), "where.age.not", /goes beside column names/);
  invalidQuery(w({ age: {} }), "where.age", /operator object is empty/);
  invalidQuery(w({ or: [{ age: {} }] }), "where.or[0].age", /empty/);
  invalidQuery(w({ age: { in: "1,2" } }), "where.age.in", /expected an array/);
  invalidQuery(w({ age: { gt: null } }), "where.age.gt", /use isNull/);
  invalidQuery(w({ age: { isNull: "yes" } }), "where.age.isNull", /true or false/);
  invalidQuery(w([{ a: 1 }]), "where", /expected an object/);
  invalidQuery(w(new Uint8Array(2)), "where", /expected an object/);
  invalidQuery(
    w({ or: [{ not: { or: [{ a: 1 }, { not: { b: { between: [1, null] } } }] } }] }),
    "where.or[0].not.or[1].not.b.between",
    /null bound/,
  );
  // nesting is bounded, also for cyclic objects
  let deep: Where = { a: 1 };
  for (let level = 0; level < 33; level++) deep = { not: deep };
  invalidQuery(w(deep), `where${".not".repeat(33)}`, /nest more than 32 levels/);
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.or = [cyclic];
  invalidQuery(w(cyclic), `where${".or[0]".repeat(33)}`, /nest more than 32 levels/);
  // too many bound values for one statement
  const branches = Array.from({ length: 30_001 }, (_, k) => ({ a: k }));
  invalidQuery(w({ or: branches }), "where", /binds 30001 values.*32766.*one in list/);
  // identifiers and values are still checked everywhere
  assert.throws(w({ or: [{ "a; DROP TABLE t": 1 }] }), InvalidIdentifierError);
  assert.throws(w({ not: { "x y": { gt: 1 } } }), InvalidIdentifierError);
  assert.throws(w({ a: { between: [1, NaN] } }), InvalidValueError);
  assert.throws(w({ or: [{ a: { in: [1, undefined] } }] }), InvalidValueError);
  assert.throws(w({ a: [{ b: 1 }] }), InvalidValueError); // an array under a column name
  assert.throws(() => buildWhere({ a: { glob: "a\0" } }, wasmDriver.checkText), InvalidValueError);
});

Deno.test("or and not are keywords; other spellings reach columns named so", async () => {
  const db = await open(wasmDriver);
  try {
    await db.exec('CREATE TABLE k (id INTEGER PRIMARY KEY, "or", "not")');
    await db.run("INSERT INTO k VALUES (1, 5, 'x'), (2, 6, NULL)");
    const select = async (where: Where) => {
      const { sql, params } = buildWhere(where);
      return await ids(db, `SELECT id FROM k ${sql} ORDER BY id`, params);
    };
    assert.deepEqual(await select({ OR: 5 }), [1]);
    assert.deepEqual(await select({ Or: { in: [5, 6] }, NOT: null }), [2]);
    assert.deepEqual(await select({ or: [{ OR: 5 }, { NOT: null }] }), [1, 2]);
    assert.deepEqual(await select({ not: { OR: 5 } }), [2]);
    invalidQuery(() => buildWhere({ or: 5 } as never), "where.or", /\{ OR: \.\.\. \}/);
    invalidQuery(() => buildWhere({ not: "x" } as never), "where.not", /\{ NOT: \.\.\. \}/);
  } finally {
    await db.close();
  }
});

Deno.test("SQL shapes: or, not, between, glob, and long lists as one JSON value", () => {
  assert.deepEqual(
    buildWhere({ a: 1, or: [{ b: 2 }, { c: 3, d: { gt: 4 } }], not: { e: { in: [5, null] } } }),
    {
      sql: 'WHERE "a" = ? AND ("b" = ? OR ("c" = ? AND "d" > ?)) AND ' +
        'NOT ("e" IN (?) OR "e" IS NULL)',
      params: [1, 2, 3, 4, 5],
    },
  );
  assert.deepEqual(buildWhere({ or: [{}] }), { sql: "WHERE 1", params: [] });
  assert.deepEqual(buildWhere({ not: {} }), { sql: "WHERE NOT (1)", params: [] });
  assert.deepEqual(buildWhere({ not: { a: 1, b: 2 } }).sql, 'WHERE NOT ("a" = ? AND "b" = ?)');
  assert.deepEqual(
    buildWhere({ x: { between: [1, 5], notBetween: ["a", "b"], glob: "a*", like: "%" } }),
    {
      sql: 'WHERE "x" BETWEEN ? AND ? AND "x" NOT BETWEEN ? AND ? AND "x" GLOB ? AND "x" LIKE ?',
      params: [1, 5, "a", "b", "a*", "%"],
    },
  );
  const inline = Array.from({ length: 500 }, (_, k) => k);
  assert.equal(buildWhere({ x: { in: inline } }).params.length, 500);
  const long = [...inline, 2 ** 53, -0, 1.5, 2n ** 62n, 's"', Infinity, -Infinity, true];
  assert.deepEqual(buildWhere({ x: { in: long } }), {
    sql: 'WHERE "x" IN (SELECT +value FROM json_each(?))',
    params: [
      `[${inline.join(",")},9.007199254740992e+15,0,1.5e+0,4611686018427387904,"s\\"",` +
      `9e999,-9e999,1]`,
    ],
  });
  const bytes = Array.from({ length: 501 }, (_, k) => new Uint8Array([k & 255, 10]));
  assert.deepEqual(buildWhere({ x: { notIn: [...bytes, "t", null] } }), {
    sql: 'WHERE "x" NOT IN (SELECT +value FROM json_each(?) UNION ALL ' +
      'SELECT unhex(value) FROM json_each(?)) AND "x" IS NOT NULL',
    params: ['["t"]', `[${bytes.map((b) => `"${hex(b)}"`).join(",")}]`],
  });
  // integers a REAL value cannot equal exactly: their own subquery, REAL values left out
  const snowflakes = Array.from({ length: 501 }, (_, k) => 2n ** 62n + BigInt(2 * k + 1));
  assert.deepEqual(buildWhere({ x: { notIn: [...snowflakes, 5, "4611686018427387905"] } }), {
    sql: 'WHERE NOT ("x" IN (SELECT +value FROM json_each(?)) OR ' +
      `("x" IN (SELECT +value FROM json_each(?)) AND typeof("x") <> 'real'))`,
    params: ["[5]", `[${snowflakes.join(",")},"4611686018427387905"]`],
  });
  // chains longer than 32 terms are split in balanced halves
  const wide = buildWhere({ or: Array.from({ length: 64 }, (_, k) => ({ a: k })) }).sql;
  assert.equal(
    wide,
    `WHERE ((${Array(32).fill('"a" = ?').join(" OR ")}) OR (${
      Array(32).fill('"a" = ?').join(" OR ")
    }))`,
  );
});

// --- through a ShardManager -----------------------------------------------------------------

Deno.test("a ShardManager filters with or, not, a 2000-value in and between across shards", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  const unsharded = await open(wasmDriver);
  try {
    const schema = { id: "INTEGER PRIMARY KEY", name: "TEXT", age: "INTEGER", team: "TEXT" };
    await manager.createTable("users", schema, { shardKey: "id" });
    await unsharded.exec(
      "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, age INTEGER, team TEXT)",
    );
    const teams = ["red", "blue", "green", null];
    const rows = Array.from({ length: 400 }, (_, k) => ({
      id: k + 1,
      name: `user${k}`,
      age: k % 13 === 0 ? null : 18 + (k * 7) % 60,
      team: teams[k % 4]!,
    }));
    await manager.insertMany("users", rows);
    for (const row of rows) {
      await unsharded.run("INSERT INTO users VALUES (?, ?, ?, ?)", [
        row.id,
        row.name,
        row.age,
        row.team,
      ]);
    }
    assert.ok(new Set(rows.map((r) => manager.getShardId(r.id))).size > 1);
    const wanted = Array.from({ length: 2000 }, (_, k) => k * 3); // ids 0, 3, ..., 5997
    const filters: Where[] = [
      { or: [{ age: { between: [20, 30] } }, { team: "red" }], not: { name: { like: "user1%" } } },
      { id: { in: wanted }, not: { team: null } },
      { id: { notIn: wanted }, age: { notBetween: [25, 60] } },
      { or: [{ id: { in: wanted.map(String) } }, { age: null }], team: { glob: "[rg]*" } },
      { not: { or: [{ age: { gt: 40 } }, { team: { in: ["blue", null] } }] } },
    ];
    for (const where of filters) {
      const { sql, params } = buildWhere(where);
      const expected = await unsharded.all(`SELECT * FROM users ${sql} ORDER BY id`, params);
      assert.ok(expected.length > 0 && expected.length < rows.length, sql);
      assert.deepEqual(await manager.select("users", { where, orderBy: "id" }), expected, sql);
      assert.equal(await manager.count("users", where), expected.length, sql);
    }
    // with a key: the shard-key condition is AND-ed with or/not
    assert.deepEqual(
      await manager.select("users", { key: 4, where: { or: [{ team: "red" }, { age: 39 }] } }),
      [{ id: 4, name: "user3", age: 39, team: null }],
    );
    assert.equal(await manager.count("users", { not: { id: { in: wanted } } }, { key: 3 }), 0);
  } finally {
    await unsharded.close();
  }
});
