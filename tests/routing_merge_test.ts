import assert from "node:assert/strict";
import fc from "fast-check";
import sqlite from "node-sqlite3-wasm";
import { AggregateOverflowError, InvalidQueryError } from "../src/errors.ts";
import {
  buildPartialAggregate,
  combineAggregate,
  compareSqlValues,
  mergeSorted,
  partialAggregateSql,
  shardLimit,
} from "../src/routing/merge.ts";
import { buildInsert, buildSelect } from "../src/sql/dml.ts";
import type { OrderTerm } from "../src/sql/order.ts";
import { buildCreateTable } from "../src/sql/schema.ts";
import type { Row, SqlValue } from "../src/types.ts";

import { withMemoryDb } from "./helpers.ts";
const { Database } = sqlite;
type Db = InstanceType<typeof Database>;

const sign = (n: number) => (n < 0 ? -1 : n > 0 ? 1 : 0);

Deno.test("compareSqlValues: SQLite's order, edge cases", async (t) => {
  await t.step("storage classes: NULL < numbers < TEXT < BLOB", () => {
    const ordered: SqlValue[] = [
      null,
      -Infinity,
      -(2n ** 63n),
      -1,
      0,
      0.5,
      2n ** 63n - 1n,
      Infinity,
      "",
      "a",
      new Uint8Array(),
      new Uint8Array([0]),
    ];
    for (let i = 0; i < ordered.length; i++) {
      for (let j = 0; j < ordered.length; j++) {
        assert.equal(sign(compareSqlValues(ordered[i]!, ordered[j]!)), sign(i - j), `${i} vs ${j}`);
      }
    }
  });
  await t.step("integers beyond 2^53 against floats, exactly", () => {
    assert.equal(compareSqlValues(2n ** 53n + 1n, 2 ** 53), 1);
    assert.equal(compareSqlValues(2 ** 53, 2n ** 53n + 1n), -1);
    assert.equal(compareSqlValues(2n ** 53n, 2 ** 53), 0);
    assert.equal(compareSqlValues(2n ** 63n - 1n, 2 ** 63), -1);
    assert.equal(compareSqlValues(-(2n ** 63n), -(2 ** 63)), 0);
    assert.equal(compareSqlValues(3n, 3.5), -1);
    assert.equal(compareSqlValues(4n, 3.5), 1);
    assert.equal(compareSqlValues(-3n, -3.5), 1);
    assert.equal(compareSqlValues(-4n, -3.5), -1);
    assert.equal(compareSqlValues(5n, 5), 0);
  });
  await t.step("-0 equals 0", () => {
    assert.equal(compareSqlValues(-0, 0), 0);
    assert.equal(compareSqlValues(0n, -0), 0);
  });
  await t.step("text by code point: surrogate pairs sort after U+FFFF", () => {
    assert.equal(compareSqlValues("\uffff", "\u{10000}"), -1);
    assert.equal(compareSqlValues("\u{1F600}", "\uffff"), 1);
    assert.equal(compareSqlValues("\ue000", "\u{10000}"), -1);
    assert.equal(compareSqlValues("a\u{10FFFF}", "b"), -1);
    assert.equal(compareSqlValues("ab", "a"), 1);
    assert.equal(compareSqlValues("é", "z"), 1);
  });
  await t.step("blobs: memcmp, then length", () => {
    assert.equal(compareSqlValues(new Uint8Array([1, 2]), new Uint8Array([1, 3])), -1);
    assert.equal(compareSqlValues(new Uint8Array([2]), new Uint8Array([1, 255])), 1);
    assert.equal(compareSqlValues(new Uint8Array([1]), new Uint8Array([1, 0])), -1);
    assert.equal(compareSqlValues(new Uint8Array([1, 0]), new Uint8Array([1, 0])), 0);
  });
});

/** Any value SQLite stores and gives back unchanged through this driver. */
const sqlValue: fc.Arbitrary<SqlValue> = fc.oneof(
  fc.constant(null),
  fc.integer({ min: -5, max: 5 }),
  fc.integer(),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  fc.constantFrom(2n ** 53n + 1n, 2 ** 53, 2n ** 53n, 0.5, -0, Infinity, -Infinity),
  fc.double({ noNaN: true }),
  fc.string({ unit: "binary", maxLength: 6 }).filter((s) => !s.includes("\0")),
  fc.constantFrom("\uffff", "\u{10000}", "\u{1F600}", "", "a"),
  fc.uint8Array({ maxLength: 4 }),
);

Deno.test("compareSqlValues agrees with SQLite's own comparison", () => {
  withMemoryDb((db) => {
    // NULL makes < and > NULL, so ask ORDER BY for the order and IS for equality
    const statement = db.prepare(
      "SELECT CASE WHEN ?1 IS ?2 THEN 0 WHEN (SELECT k FROM " +
        "(SELECT ?1 AS v, 1 AS k UNION ALL SELECT ?2, 2) ORDER BY v, k LIMIT 1) = 1 " +
        "THEN -1 ELSE 1 END AS c",
    );
    try {
      fc.assert(
        fc.property(sqlValue, sqlValue, (a, b) => {
          const row = statement.get([a, b] as never) as { c: number };
          assert.equal(sign(compareSqlValues(a, b)), row.c);
        }),
        { numRuns: 3000 },
      );
    } finally {
      statement.finalize();
    }
  });
});

Deno.test("mergeSorted: heap merge, stable ties, limit and offset", () => {
  const a = [{ id: 1, k: 1 }, { id: 2, k: 3 }, { id: 3, k: 5 }];
  const b = [{ id: 4, k: 1 }, { id: 5, k: 2 }];
  const c: Row[] = [];
  const d = [{ id: 6, k: null }, { id: 7, k: 3 }];
  const ids = (rows: Row[]) => rows.map((r) => r.id);
  assert.deepEqual(ids(mergeSorted([a, b, c, d], [{ column: "k", direction: "asc" }])), [
    6,
    1,
    4,
    5,
    2,
    7,
    3,
  ]);
  assert.deepEqual(ids(mergeSorted([a, b, c, d], "k", { offset: 2, limit: 3 })), [4, 5, 2]);
  assert.deepEqual(ids(mergeSorted([a, b, c, d], "k", { limit: 0 })), []);
  assert.deepEqual(ids(mergeSorted([a, b, c, d], "k", { offset: 100 })), []);
  assert.deepEqual(ids(mergeSorted([], "k")), []);
  const desc = [[...a].reverse(), [...b].reverse(), c, [...d].reverse()];
  assert.deepEqual(ids(mergeSorted(desc, [{ column: "k", direction: "desc" }])), [
    3,
    2,
    7,
    5,
    1,
    4,
    6,
  ]);
  assert.throws(() => mergeSorted([a], "nope"), /no column "nope"/);
  assert.throws(() => mergeSorted([a], "k", { limit: -1 }), InvalidQueryError);
  assert.throws(() => mergeSorted([a], "k; DROP"), /invalid column name/);
  assert.equal(shardLimit({ limit: 3, offset: 4 }), 7);
  assert.equal(shardLimit({}), undefined);
});

Deno.test("combineAggregate: unit cases", () => {
  assert.equal(
    combineAggregate("COUNT", [{ agg_count: 2 }, { agg_count: 2n ** 60n }]),
    2n ** 60n + 2n,
  );
  assert.equal(combineAggregate("count(*)", []), 0);
  const sum = (value: SqlValue, type: string) => ({ agg_sum: value, agg_type: type });
  assert.equal(combineAggregate("SUM(x)", [sum(null, "null"), sum(null, "null")]), null);
  assert.equal(combineAggregate("SUM(x)", []), null);
  assert.equal(
    combineAggregate("SUM(x)", [sum(2n ** 62n, "integer"), sum(2n ** 62n - 1n, "integer")]),
    2n ** 63n - 1n,
  );
  assert.equal(
    combineAggregate("SUM(x)", [sum(2n ** 62n, "integer"), sum(-(2n ** 62n), "integer")]),
    0,
  );
  assert.throws(
    () => combineAggregate("SUM(x)", [sum(2n ** 62n, "integer"), sum(2n ** 62n, "integer")]),
    (error: unknown) => {
      assert.ok(error instanceof AggregateOverflowError);
      assert.equal(error.total, 2n ** 63n);
      assert.match(error.message, /SUM\(x\) across shards .*"integer overflow"/);
      return true;
    },
  );
  // A REAL partial makes the total REAL, even when it reads back as an integer-valued number
  const real = combineAggregate("SUM(x)", [sum(3, "real"), sum(2, "integer")]);
  assert.equal(real, 5);
  // Compensated: naive left-to-right addition would give 0
  assert.equal(
    combineAggregate("SUM(x)", [sum(1e16, "real"), sum(1, "real"), sum(-1e16, "real")]),
    1,
  );
  const avg = (value: SqlValue, type: string, count: number) => ({
    ...sum(value, type),
    agg_count: count,
  });
  assert.equal(combineAggregate("AVG(x)", [avg(null, "null", 0)]), null);
  assert.equal(
    combineAggregate("AVG(x)", [avg(10, "integer", 4), avg(null, "null", 0), avg(5, "integer", 1)]),
    3,
  );
  // never an average of averages: (1 + 2 + 3) / 3, not ((1 + 2) / 2 + 3) / 2
  assert.equal(combineAggregate("AVG(x)", [avg(3, "integer", 2), avg(3, "integer", 1)]), 2);
  const value = (v: SqlValue) => ({ agg_value: v });
  assert.equal(combineAggregate("MIN(x)", [value(null), value(3), value("a"), value(-1n)]), -1n);
  assert.equal(combineAggregate("MAX(x)", [value(null), value(3), value("a"), value(-1n)]), "a");
  assert.equal(combineAggregate("MAX(x)", [value(null)]), null);
  assert.deepEqual(combineAggregate("MAX(x)", [value("\u{10000}"), value("\uffff")]), "\u{10000}");
  assert.equal(partialAggregateSql("COUNT(*)"), 'COUNT(*) AS "agg_count"');
  assert.equal(partialAggregateSql({ fn: "MIN", column: "age" }, "m"), 'MIN("age") AS "m_value"');
  assert.throws(() => partialAggregateSql("SUM(x)", "a b"), /invalid aggregate alias name/);
  assert.throws(() => combineAggregate("MIN(x)", [{}]), /has no agg_value/);
});

// --- The equivalence property: K shards combined == one database ---------------------

interface TestRow {
  id: number;
  v: SqlValue; // any storage class, for ORDER BY, MIN, MAX, COUNT
  n: SqlValue; // integers and dyadic reals whose sums are exact in any order
  big: SqlValue; // integers up to 2^57 in magnitude: exact bigint sums without overflow
  f: SqlValue; // arbitrary doubles: sums differ only by rounding
}

const testRow = (id: number): fc.Arbitrary<TestRow> =>
  fc.record({
    id: fc.constant(id),
    v: sqlValue,
    n: fc.oneof(
      fc.constant(null),
      fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
      fc.integer({ min: -(2 ** 30), max: 2 ** 30 }).map((k) => k / 8),
    ),
    big: fc.oneof(fc.constant(null), fc.bigInt({ min: -(2n ** 57n), max: 2n ** 57n })),
    f: fc.oneof(fc.constant(null), fc.double({ noNaN: true, min: -1e15, max: 1e15 })),
  });

const dataset = fc.integer({ min: 0, max: 60 }).chain((size) =>
  fc.record({
    rows: fc.tuple(...Array.from({ length: size }, (_, i) => testRow(i + 1))),
    shardCount: fc.integer({ min: 1, max: 5 }),
    placement: fc.array(fc.nat(), { minLength: size, maxLength: size }),
  })
);

const order = fc.record({
  terms: fc.array(
    fc.record({
      column: fc.constantFrom("v", "n", "big", "f"),
      direction: fc.constantFrom("asc" as const, "desc" as const),
    }),
    { minLength: 1, maxLength: 2 },
  ),
  limit: fc.option(fc.integer({ min: 0, max: 70 }), { nil: undefined }),
  offset: fc.option(fc.integer({ min: 0, max: 70 }), { nil: undefined }),
});

const AGGREGATES = [
  "COUNT(*)",
  "COUNT(v)",
  "MIN(v)",
  "MAX(v)",
  "MIN(n)",
  "MAX(f)",
  "SUM(n)",
  "SUM(big)",
  "AVG(n)",
  "AVG(big)",
  "SUM(f)",
  "AVG(f)",
];

function load(db: Db, rows: readonly TestRow[]): void {
  const create = buildCreateTable("t", { id: "INTEGER PRIMARY KEY", v: "", n: "", big: "", f: "" });
  db.run(create.sql);
  for (const row of rows) {
    const insert = buildInsert("t", { ...row });
    db.run(insert.sql, insert.params as never);
  }
}

const query = (db: Db, statement: { sql: string; params: SqlValue[] }) =>
  db.all(statement.sql, statement.params as never) as Row[];

function assertSameAggregate(
  name: string,
  combined: SqlValue,
  single: SqlValue,
  rows: readonly TestRow[],
) {
  if (name === "SUM(f)" || name === "AVG(f)") {
    // Floating-point addition is not associative: SQLite sums each shard in row order
    // (with compensation), the merge adds the shard totals, so the last bits may differ.
    if (single === null || combined === null) return assert.equal(combined, single);
    const magnitude = rows.reduce((s, r) => s + (typeof r.f === "number" ? Math.abs(r.f) : 0), 0);
    const scale = name === "AVG(f)" ? rows.filter((r) => r.f !== null).length : 1;
    assert.ok(
      Math.abs((combined as number) - (single as number)) <= (magnitude / scale) * 1e-14,
      `${name}: ${combined} vs ${single}`,
    );
    return;
  }
  const numeric = (x: SqlValue) => typeof x === "number" || typeof x === "bigint";
  if (numeric(combined) && numeric(single) && (name.startsWith("MIN") || name.startsWith("MAX"))) {
    // Equal values may differ in form (INTEGER 2^60 as bigint, REAL 2^60 as number); SQLite
    // keeps whichever it met first, which depends on placement
    // (=== rather than assert.equal: a comparison may answer -0 for equal values)
    assert.ok(compareSqlValues(combined, single) === 0, `${name}: ${combined} vs ${single}`);
    return;
  }
  assert.deepEqual(combined, single, name);
}

Deno.test("K shards merged by these functions answer exactly like one SQLite database", () => {
  fc.assert(
    fc.property(dataset, fc.array(order, { minLength: 1, maxLength: 3 }), (data, orders) => {
      const { rows, shardCount, placement } = data;
      const single = new Database();
      const shards: Db[] = [];
      try {
        for (let i = 0; i < shardCount; i++) shards.push(new Database());
        load(single, rows);
        const parts: TestRow[][] = shards.map(() => []);
        rows.forEach((row, i) => parts[placement[i]! % shardCount]!.push(row));
        shards.forEach((db, i) => load(db, parts[i]!));

        for (const { terms, limit, offset } of orders) {
          // The primary key last makes the order total, so one answer is right
          const orderBy: OrderTerm[] = [...terms, { column: "id", direction: "asc" }];
          const expected = query(single, buildSelect("t", { orderBy, limit, offset }));
          const perShard = shards.map((db) =>
            query(db, buildSelect("t", { orderBy, limit: shardLimit({ limit, offset }) }))
          );
          const merged = mergeSorted(perShard, orderBy, { limit, offset });
          assert.deepEqual(merged, expected);
        }

        const partials = shards.map((db) => query(db, buildPartialAggregate("t", AGGREGATES))[0]!);
        AGGREGATES.forEach((aggregate, i) => {
          const combined = combineAggregate(aggregate, partials, `a${i}`);
          const direct = query(single, { sql: `SELECT ${aggregate} AS x FROM t`, params: [] })[0]!
            .x!;
          assertSameAggregate(aggregate, combined, direct, rows);
        });
      } finally {
        single.close();
        for (const db of shards) db.close();
      }
    }),
    { numRuns: 150 },
  );
});
