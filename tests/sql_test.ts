import assert from "node:assert/strict";
import fc from "fast-check";
import {
  InvalidIdentifierError,
  InvalidQueryError,
  InvalidSchemaError,
  InvalidValueError,
} from "../src/errors.ts";
import { parseAggregate } from "../src/sql/aggregate.ts";
import { buildDelete, buildInsert, buildSelect, buildUpdate } from "../src/sql/dml.ts";
import { quoteIdentifier, validateIdentifier } from "../src/sql/identifiers.ts";
import { buildCreateTable, buildDropTable, validateColumnDefinition } from "../src/sql/schema.ts";
import { buildWhere } from "../src/sql/where.ts";
import type { SqlValue } from "../src/types.ts";
import { nativeDriver } from "../src/driver/native.ts";
import { wasmDriver } from "../src/driver/wasm.ts";

import { type MemoryDb, withMemoryDb } from "./helpers.ts";

const run = (db: MemoryDb, statement: { sql: string; params: SqlValue[] }) =>
  db.run(statement.sql, statement.params as never);
const all = (db: MemoryDb, statement: { sql: string; params: SqlValue[] }) =>
  db.all(statement.sql, statement.params as never) as Record<string, SqlValue>[];

Deno.test("hostile identifiers are refused with InvalidIdentifierError naming them", () => {
  const hostile = [
    'users"',
    "users'",
    '"users"',
    "users; DROP TABLE x",
    "users;",
    "a--b",
    "a/*b*/",
    "a\0b",
    "a b",
    " users",
    "users\n",
    "1users",
    "",
    "x".repeat(129),
    "usérs",
    "uѕers", // Cyrillic dze
    "ｕsers", // fullwidth u
    "users\u200b", // zero-width space
    "sqlite_master",
    "SQLITE_temp",
    "a.b",
    "a-b",
    "[users]",
    "`users`",
    "$x",
    "@x",
    ":x",
    "?",
  ];
  for (const name of hostile) {
    assert.throws(
      () => validateIdentifier(name, "table"),
      (error: unknown) => {
        assert.ok(error instanceof InvalidIdentifierError, `${JSON.stringify(name)}: ${error}`);
        assert.equal(error.identifier, name);
        assert.equal(error.kind, "table");
        const shown = name.length > 80 ? name.slice(0, 80) : name;
        assert.ok(
          error.message.includes(JSON.stringify(shown).slice(0, -1)),
          `message names the bad name: ${error.message}`,
        );
        return true;
      },
    );
    assert.throws(() => quoteIdentifier(name, "column"), InvalidIdentifierError);
  }
  for (const bad of [undefined, null, 5, 5n, {}, ["users"], Symbol("users")]) {
    assert.throws(() => validateIdentifier(bad, "column"), (error: unknown) => {
      assert.ok(error instanceof InvalidIdentifierError);
      assert.match(error.message, /invalid column name .*expected a string/);
      return true;
    });
  }
  assert.throws(() => validateIdentifier("a;b", "table"), /contains ";" \(U\+003B\)/);
  assert.throws(() => validateIdentifier("1a", "table"), /starts with a digit/);
  assert.throws(() => validateIdentifier("sqlite_x", "table"), /reserved/);
  assert.throws(() => validateIdentifier("x".repeat(129), "table"), /129 characters/);
});

Deno.test("safe identifiers pass, keywords included, and are quoted", () => {
  for (const name of ["users", "_x", "a1", "Order", "select", "x".repeat(128), "sqlite"]) {
    assert.equal(validateIdentifier(name, "table"), name);
    assert.equal(quoteIdentifier(name), `"${name}"`);
  }
});

Deno.test("arbitrary strings are either refused or used safely against SQLite", () => {
  withMemoryDb((db) => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: "binary", maxLength: 30 }),
          fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,20}$/),
          fc.constantFrom('a"; DROP TABLE t; --', "sqlite_x", "a/*", "x\0y", "or", "not"),
        ),
        fc.integer(),
        (name, value) => {
          let table: string;
          try {
            table = validateIdentifier(name, "table");
          } catch (error) {
            assert.ok(error instanceof InvalidIdentifierError);
            return;
          }
          run(db, buildDropTable(table, { ifExists: true }));
          run(db, buildCreateTable(table, { [table]: "INTEGER", other: "TEXT" }));
          run(db, buildInsert(table, { [table]: value, other: name }));
          // `or` and `not` are where's keywords: such a column is named in another case.
          const column = table === "or" || table === "not" ? table.toUpperCase() : table;
          const rows = all(db, buildSelect(table, { where: { [column]: value } }));
          assert.deepEqual(rows, [{ [table]: value, other: name }]);
          const tables = db.all("SELECT name FROM sqlite_master WHERE type = 'table'");
          assert.deepEqual(tables, [{ name: table }]);
          run(db, buildDropTable(table));
        },
      ),
      { numRuns: 300 },
    );
  });
});

Deno.test("builders produce the expected SQL and parameters", async (t) => {
  await t.step("insert", () => {
    assert.deepEqual(buildInsert("users", { id: 1, name: "Ada", ok: false, pic: null }), {
      sql: 'INSERT INTO "users" ("id", "name", "ok", "pic") VALUES (?, ?, ?, ?)',
      params: [1, "Ada", 0, null],
    });
    assert.deepEqual(buildInsert("users", {}), {
      sql: 'INSERT INTO "users" DEFAULT VALUES',
      params: [],
    });
    assert.equal(
      buildInsert("t", { a: 1 }, { onConflict: "replace" }).sql,
      'INSERT OR REPLACE INTO "t" ("a") VALUES (?)',
    );
    assert.equal(
      buildInsert("t", { a: 1 }, { onConflict: "ignore" }).sql,
      'INSERT OR IGNORE INTO "t" ("a") VALUES (?)',
    );
  });
  await t.step("where", () => {
    assert.deepEqual(buildWhere(), { sql: "", params: [] });
    assert.deepEqual(buildWhere({}), { sql: "", params: [] });
    assert.deepEqual(buildWhere({ a: 1, b: null, c: true }), {
      sql: 'WHERE "a" = ? AND "b" IS NULL AND "c" = ?',
      params: [1, 1],
    });
    assert.deepEqual(
      buildWhere({
        age: { gt: 30, lte: 2n ** 60n },
        name: { like: "A%", ne: "Al" },
        x: { in: [1, "a", null] },
        y: { in: [] },
        z: { notIn: [1, null] },
        w: { notIn: [] },
        v: { isNull: false },
        u: { eq: null, ne: null },
        s: { gte: 1.5, lt: Infinity },
      }),
      {
        sql: 'WHERE "age" > ? AND "age" <= ? AND "name" LIKE ? AND "name" <> ? AND ' +
          '("x" IN (?, ?) OR "x" IS NULL) AND 0 AND "z" NOT IN (?) AND "z" IS NOT NULL AND 1 ' +
          'AND "v" IS NOT NULL AND "u" IS NULL AND "u" IS NOT NULL AND "s" >= ? AND "s" < ?',
        params: [30, 2n ** 60n, "A%", "Al", 1, "a", 1, 1.5, Infinity],
      },
    );
    assert.deepEqual(buildWhere({ b: new Uint8Array([1]) }).params, [new Uint8Array([1])]);
  });
  await t.step("select", () => {
    assert.deepEqual(buildSelect("users"), { sql: 'SELECT * FROM "users"', params: [] });
    assert.deepEqual(
      buildSelect("users", {
        columns: ["id", "age"],
        where: { team: "red" },
        orderBy: ["age", { column: "id", direction: "desc" }],
        limit: 10,
        offset: 5,
      }),
      {
        sql: 'SELECT "id", "age" FROM "users" WHERE "team" = ? ORDER BY "age" ASC, "id" DESC ' +
          "LIMIT ? OFFSET ?",
        params: ["red", 10, 5],
      },
    );
    assert.deepEqual(buildSelect("t", { orderBy: "a", offset: 3 }), {
      sql: 'SELECT * FROM "t" ORDER BY "a" ASC LIMIT ? OFFSET ?',
      params: [-1, 3],
    });
    assert.deepEqual(buildSelect("t", { limit: 0 }).params, [0]);
  });
  await t.step("update, delete, create, drop", () => {
    assert.deepEqual(buildUpdate("t", { a: 1, b: "x" }, { id: { in: [1, 2] } }), {
      sql: 'UPDATE "t" SET "a" = ?, "b" = ? WHERE "id" IN (?, ?)',
      params: [1, "x", 1, 2],
    });
    assert.deepEqual(buildUpdate("t", { a: null }), {
      sql: 'UPDATE "t" SET "a" = ?',
      params: [null],
    });
    assert.deepEqual(buildDelete("t"), { sql: 'DELETE FROM "t"', params: [] });
    assert.deepEqual(buildDelete("t", { a: { lt: 0 } }), {
      sql: 'DELETE FROM "t" WHERE "a" < ?',
      params: [0],
    });
    assert.equal(
      buildCreateTable("t", { id: "INTEGER PRIMARY KEY", v: "" }).sql,
      'CREATE TABLE "t" ("id" INTEGER PRIMARY KEY, "v")',
    );
    assert.equal(
      buildCreateTable("t", { a: "TEXT", b: "INTEGER" }, {
        primaryKey: ["a", "b"],
        ifNotExists: true,
      })
        .sql,
      'CREATE TABLE IF NOT EXISTS "t" ("a" TEXT, "b" INTEGER, PRIMARY KEY ("a", "b"))',
    );
    assert.equal(buildDropTable("t").sql, 'DROP TABLE "t"');
    assert.equal(buildDropTable("t", { ifExists: true }).sql, 'DROP TABLE IF EXISTS "t"');
  });
});

Deno.test("builders refuse bad input with typed errors", () => {
  const invalidValue = (fn: () => unknown, column: string, reason: RegExp) =>
    assert.throws(fn, (error: unknown) => {
      assert.ok(error instanceof InvalidValueError, String(error));
      assert.equal(error.column, column);
      assert.match(error.message, reason);
      return true;
    });
  invalidValue(() => buildInsert("t", { a: NaN }), "a", /NaN would be stored as NULL/);
  invalidValue(() => buildInsert("t", { a: undefined as never }), "a", /undefined; omit/);
  invalidValue(() => buildInsert("t", { a: {} as never }), "a", /cannot be stored/);
  invalidValue(() => buildInsert("t", { a: [1] as never }), "a", /cannot be stored/);
  invalidValue(() => buildInsert("t", { a: (() => 1) as never }), "a", /function/);
  invalidValue(() => buildInsert("t", { a: Symbol() as never }), "a", /symbol/);
  invalidValue(() => buildInsert("t", { a: new Uint16Array(1) as never }), "a", /Uint16Array/);
  invalidValue(() => buildInsert("t", { a: new Date() as never }), "a", /Date/);
  invalidValue(() => buildInsert("t", { a: 2n ** 63n }), "a", /64-bit/);
  invalidValue(() => buildInsert("t", { a: "\ud800" }), "a", /lone surrogate/);
  invalidValue(() => buildWhere({ a: "a\0b" }, wasmDriver.checkText), "a", /NUL .* truncates/);
  invalidValue(() => buildWhere({ a: "a\0b" }, nativeDriver.checkText), "a", /NUL .* reads back/);
  assert.deepEqual(buildWhere({ a: "a\0b" }).params, ["a\0b"]); // no driver rule: kept
  invalidValue(() => buildWhere({ a: undefined as never }), "a", /undefined/);
  invalidValue(() => buildWhere({ a: { gt: NaN } }), "a", /NaN/);
  invalidValue(() => buildUpdate("t", { b: NaN }, { a: 1 }), "b", /NaN/);
  assert.throws(() => buildInsert("t", { "a b": 1 }), InvalidIdentifierError);
  assert.throws(() => buildInsert("t;", { a: 1 }), InvalidIdentifierError);
  assert.throws(() => buildWhere({ "a=1 OR 1": 1 }), InvalidIdentifierError);
  assert.throws(() => buildSelect("t", { columns: ["*"] }), InvalidIdentifierError);
  assert.throws(() => buildSelect("t", { orderBy: "a; --" }), InvalidIdentifierError);
  const invalidQuery = (fn: () => unknown, option: string, reason: RegExp) =>
    assert.throws(fn, (error: unknown) => {
      assert.ok(error instanceof InvalidQueryError, String(error));
      assert.equal(error.option, option);
      assert.match(error.message, reason);
      return true;
    });
  invalidQuery(() => buildSelect("t", { limit: -1 }), "limit", /non-negative safe integer/);
  invalidQuery(() => buildSelect("t", { limit: 1.5 }), "limit", /non-negative/);
  invalidQuery(() => buildSelect("t", { offset: NaN }), "offset", /non-negative/);
  invalidQuery(() => buildSelect("t", { limit: "5" as never }), "limit", /string "5"/);
  invalidQuery(() => buildSelect("t", { columns: [] }), "columns", /non-empty/);
  invalidQuery(
    () => buildSelect("t", { orderBy: [{ column: "a", direction: "up" as never }] }),
    "orderBy[0].direction",
    /"asc" or "desc"/,
  );
  invalidQuery(() => buildWhere({ a: { gt: null } }), "where.a.gt", /use isNull/);
  invalidQuery(
    () => buildWhere({ a: { regexp: "x" } as never }),
    "where.a.regexp",
    /unknown operator/,
  );
  invalidQuery(() => buildWhere({ a: {} }), "where.a", /empty/);
  invalidQuery(() => buildWhere({ a: { in: 5 as never } }), "where.a.in", /expected an array/);
  invalidQuery(() => buildWhere({ a: { like: 5 as never } }), "where.a.like", /string pattern/);
  invalidQuery(() => buildWhere({ a: { isNull: 1 as never } }), "where.a.isNull", /true or false/);
  invalidQuery(() => buildWhere([] as never), "where", /expected an object/);
  invalidQuery(() => buildUpdate("t", {}), "changes", /nothing to update/);
  invalidQuery(
    () => buildInsert("t", { a: 1 }, { onConflict: "x" as never }),
    "onConflict",
    /ignore/,
  );
});

Deno.test("column definitions: a whitelist grammar, normalised", () => {
  const good: [string, string][] = [
    ["INTEGER PRIMARY KEY", "INTEGER PRIMARY KEY"],
    ["integer primary key autoincrement", "INTEGER PRIMARY KEY AUTOINCREMENT"],
    ["INTEGER PRIMARY KEY DESC", "INTEGER PRIMARY KEY DESC"],
    ["TEXT NOT NULL", "TEXT NOT NULL"],
    ["REAL DEFAULT 0", "REAL DEFAULT 0"],
    ["REAL DEFAULT -1.5e3", "REAL DEFAULT -1.5e3"],
    ["INTEGER DEFAULT +7", "INTEGER DEFAULT 7"],
    ["TEXT DEFAULT 'x'", "TEXT DEFAULT 'x'"],
    ["TEXT DEFAULT 'it''s; DROP TABLE x --'", "TEXT DEFAULT 'it''s; DROP TABLE x --'"],
    ["TEXT DEFAULT ''", "TEXT DEFAULT ''"],
    ["INTEGER DEFAULT NULL", "INTEGER DEFAULT NULL"],
    ["INTEGER DEFAULT TRUE", "INTEGER DEFAULT TRUE"],
    ["TEXT DEFAULT CURRENT_TIMESTAMP", "TEXT DEFAULT CURRENT_TIMESTAMP"],
    ["INTEGER REFERENCES users(id)", 'INTEGER REFERENCES "users"("id")'],
    ["INTEGER REFERENCES users", 'INTEGER REFERENCES "users"'],
    [
      "integer references users ( id ) on delete set null on update no action",
      'INTEGER REFERENCES "users"("id") ON DELETE SET NULL ON UPDATE NO ACTION',
    ],
    ["BLOB UNIQUE", "BLOB UNIQUE"],
    ["TEXT COLLATE NOCASE", "TEXT COLLATE NOCASE"],
    ["VARCHAR(255)", "VARCHAR(255)"],
    ["DECIMAL(10, 2) NULL", "DECIMAL(10, 2) NULL"],
    ["UNSIGNED BIG INT", "UNSIGNED BIG INT"],
    ["  text\n\tnot   null  ", "TEXT NOT NULL"],
    ["", ""],
    ["NOT NULL", "NOT NULL"],
  ];
  for (const [input, output] of good) assert.equal(validateColumnDefinition(input), output, input);
  const bad: [unknown, RegExp][] = [
    ["INTEGER CHECK (x > 0)", /CHECK is not supported/],
    ["TEXT; DROP TABLE users", /unexpected ";"/],
    ["TEXT -- comment", /unexpected "-"/],
    ["TEXT /* c */", /unexpected "\/"/],
    ["TEXT DEFAULT (1 + 1)", /DEFAULT takes a number, .* not "\("/],
    ["TEXT DEFAULT 'unterminated", /unterminated string/],
    ["TEXT DEFAULT 'a\0b'", /NUL/],
    ['TEXT DEFAULT "x"', /not "\\""/],
    ["TEXT COLLATE klingon", /expected BINARY or NOCASE or RTRIM/],
    ["INTEGER REFERENCES users(id); DROP", /unexpected ";"/],
    ["INTEGER REFERENCES sqlite_master(x)", /referenced table name "sqlite_master" is not allowed/],
    ["INTEGER REFERENCES users(id) ON DELETE EXPLODE", /CASCADE or SET/],
    ["INTEGER AS (1)", /AS is not supported/],
    ["INTEGER GENERATED ALWAYS AS (1)", /GENERATED is not supported/],
    ["INTEGER CONSTRAINT c NOT NULL", /CONSTRAINT is not supported/],
    ["A B C D E", /more than 4 words/],
    ["PRIMARY", /expected KEY at the end/],
    ["TEXT NOT", /expected NULL at the end/],
    ["VARCHAR(", /expected a number at the end/],
    ["VARCHAR(1", /expected "\)" at the end/],
    ["INTEGER DEFAULT", /not nothing/],
    ["TEXT ÿ", /unexpected "ÿ"/],
    ["TEXT \u{1F600}", /unexpected "\u{1F600}"/u],
    [5, /expected a string/],
    ["x".repeat(1001), /longer than 1000/],
  ];
  for (const [input, reason] of bad) {
    assert.throws(
      () => validateColumnDefinition(input, "col"),
      (error: unknown) => {
        assert.ok(error instanceof InvalidSchemaError, `${String(input)}: ${error}`);
        assert.equal(error.column, "col");
        assert.match(error.message, reason);
        assert.match(error.message, /for column "col"/);
        return true;
      },
    );
  }
  assert.throws(() => buildCreateTable("t", { a: "TEXT; DROP TABLE t" }), InvalidSchemaError);
  assert.throws(() => buildCreateTable("t", {}), /needs at least one column/);
});

Deno.test("every accepted column definition is valid SQLite", () => {
  withMemoryDb((db) => {
    db.exec('CREATE TABLE "users" ("id" INTEGER PRIMARY KEY)');
    const definitions = [
      "INTEGER PRIMARY KEY AUTOINCREMENT",
      "TEXT NOT NULL DEFAULT 'it''s'",
      "REAL DEFAULT -1.5e3",
      "INTEGER REFERENCES users(id) ON DELETE CASCADE ON UPDATE SET DEFAULT",
      "BLOB UNIQUE",
      "TEXT COLLATE RTRIM",
      "DECIMAL(10,2)",
      "INTEGER DEFAULT CURRENT_DATE",
      "",
    ];
    definitions.forEach((definition, i) => {
      const columns: Record<string, string> = { c: definition };
      if (!definition.includes("PRIMARY KEY")) columns.pk = "INTEGER PRIMARY KEY";
      run(db, buildCreateTable(`t${i}`, columns));
    });
    const text = db.all("SELECT sql FROM sqlite_master WHERE name = 't1'") as { sql: string }[];
    assert.equal(
      text[0]?.sql,
      `CREATE TABLE "t1" ("c" TEXT NOT NULL DEFAULT 'it''s', "pk" INTEGER PRIMARY KEY)`,
    );
    run(db, buildInsert("t1", {}));
    assert.deepEqual(db.all('SELECT "c" FROM "t1"'), [{ c: "it's" }]);
  });
});

Deno.test("values round-trip exactly through SQLite", () => {
  const value: fc.Arbitrary<SqlValue | boolean> = fc.oneof(
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.maxSafeInteger(),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
    fc.double({ noNaN: true }),
    fc.string({ unit: "binary" }).filter((s) => !s.includes("\0")),
    fc.uint8Array(),
  );
  withMemoryDb((db) => {
    run(db, buildCreateTable("t", { id: "INTEGER PRIMARY KEY", v: "" }));
    fc.assert(
      fc.property(value, (v) => {
        run(db, buildDelete("t"));
        run(db, buildInsert("t", { id: 1, v }));
        const rows = all(db, buildSelect("t", { columns: ["v"] }));
        const expected = typeof v === "boolean"
          ? Number(v)
          : typeof v === "bigint" && v >= BigInt(Number.MIN_SAFE_INTEGER) &&
              v <= BigInt(Number.MAX_SAFE_INTEGER)
          ? Number(v)
          : Object.is(v, -0)
          ? 0
          : v;
        assert.deepEqual(rows, [{ v: expected }]);
        // and the same value finds the row again through a bound WHERE
        const found = all(db, buildSelect("t", { columns: ["id"], where: { v } }));
        assert.deepEqual(found, [{ id: 1 }]);
      }),
      { numRuns: 500 },
    );
  });
});

Deno.test("filters behave as SQL on a real database", () => {
  withMemoryDb((db) => {
    run(db, buildCreateTable("t", { id: "INTEGER PRIMARY KEY", a: "" }));
    const values: SqlValue[] = [null, 1, 2, 3, "x", "y"];
    values.forEach((a, id) => run(db, buildInsert("t", { id, a })));
    const ids = (where: Parameters<typeof buildWhere>[0]) =>
      all(db, buildSelect("t", { columns: ["id"], where, orderBy: "id" })).map((r) => r.id);
    assert.deepEqual(ids({ a: null }), [0]);
    assert.deepEqual(ids({ a: { ne: 1 } }), [2, 3, 4, 5]);
    assert.deepEqual(ids({ a: { in: [] } }), []);
    assert.deepEqual(ids({ a: { in: [1, null] } }), [0, 1]);
    assert.deepEqual(ids({ a: { notIn: [] } }), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(ids({ a: { notIn: [1, null] } }), [2, 3, 4, 5]);
    assert.deepEqual(ids({ a: { gt: 1, lt: "a" } }), [2, 3]);
    assert.deepEqual(ids({ a: { like: "X" } }), [4]);
    assert.deepEqual(ids({ a: { isNull: false } }), [1, 2, 3, 4, 5]);
    assert.deepEqual(ids({ a: { gte: 2 }, id: { lte: 4 } }), [2, 3, 4]);
  });
});

Deno.test("parseAggregate accepts the five functions and refuses the rest", () => {
  assert.deepEqual(parseAggregate("COUNT(*)"), { fn: "COUNT", column: "*" });
  assert.deepEqual(parseAggregate("count(age)"), { fn: "COUNT", column: "age" });
  assert.deepEqual(parseAggregate("SUM(age)"), { fn: "SUM", column: "age" });
  assert.deepEqual(parseAggregate(" max( age ) "), { fn: "MAX", column: "age" });
  assert.deepEqual(parseAggregate("Avg(_x1)"), { fn: "AVG", column: "_x1" });
  assert.deepEqual(parseAggregate("min(b)"), { fn: "MIN", column: "b" });
  const bad: [string, RegExp][] = [
    ["COUNT(DISTINCT age)", /DISTINCT cannot be combined/],
    ["count(distinct(age))", /DISTINCT/],
    ["SUM(age + 1)", /is not FN\(column\)/],
    ["SUM(*)", /only COUNT takes \*/],
    ["MEDIAN(age)", /MEDIAN is not one of/],
    ["TOTAL(age)", /TOTAL is not one of/],
    ["COUNT(age) FROM x", /is not FN\(column\)/],
    ["COUNT(age); DROP TABLE t", /is not FN\(column\)/],
    ["COUNT(sqlite_x)", /reserved/],
    ["COUNT()", /is not FN/],
    ["", /is not FN/],
    ['SUM("age")', /is not FN/],
  ];
  for (const [expression, reason] of bad) {
    assert.throws(() => parseAggregate(expression), (error: unknown) => {
      assert.ok(
        error instanceof InvalidQueryError || error instanceof InvalidIdentifierError,
        String(error),
      );
      assert.match(error.message, reason);
      return true;
    });
  }
  assert.throws(() => parseAggregate(5 as never), InvalidQueryError);
});

Deno.test("table names starting with _shardlite_ are reserved; such columns are not", () => {
  for (const name of ["_shardlite_batches", "_SHARDLITE_moved", "_shardlite_x"]) {
    assert.throws(
      () => validateIdentifier(name, "table"),
      (e: unknown) => e instanceof InvalidIdentifierError && /reserved/.test(e.message),
    );
  }
  assert.equal(validateIdentifier("_shardlite_note", "column"), "_shardlite_note");
  assert.equal(validateIdentifier("_shardlitex", "table"), "_shardlitex");
});
