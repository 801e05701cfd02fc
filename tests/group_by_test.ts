// aggregateBy: per-group COUNT/SUM/AVG/MIN/MAX across shards answer exactly what one
// unsharded SQLite database answers for the same GROUP BY.
import assert from "node:assert/strict";
import fc from "fast-check";
import sqlite from "node-sqlite3-wasm";
import {
  InvalidIdentifierError,
  InvalidQueryError,
  type Row,
  ShardManager,
  type SqlValue,
} from "../mod.ts";
import { tempDir } from "./helpers.ts";

const rowArb = fc.record({
  team: fc.oneof(fc.constantFrom("red", "blue", "Red"), fc.constant(null)),
  level: fc.oneof(fc.integer({ min: 0, max: 2 }), fc.constant(1.0), fc.constant(null)),
  age: fc.oneof(
    fc.integer({ min: -5, max: 5 }),
    fc.constant(null),
    fc.double({ noNaN: true, noDefaultInfinity: true, min: -10, max: 10 }),
  ),
  name: fc.oneof(fc.string({ maxLength: 3 }), fc.constant(null)),
});

const EXPRESSIONS = ["COUNT(*)", "COUNT(age)", "SUM(age)", "AVG(age)", "MIN(age)", "MAX(name)"];

function close(got: SqlValue | undefined, want: SqlValue | undefined, what: string): void {
  if (typeof want === "number" && typeof got === "number" && !Number.isInteger(want)) {
    // REAL sums may differ in the last bits: addition order differs per shard.
    assert.ok(
      Math.abs(got - want) <= 1e-9 * Math.max(1, Math.abs(want)),
      `${what}: ${got} vs ${want}`,
    );
  } else {
    assert.deepEqual(got, want, what);
  }
}

Deno.test("property: aggregateBy equals GROUP BY on one unsharded SQLite database", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 5 }),
      fc.array(rowArb, { maxLength: 40 }),
      fc.constantFrom(["team"], ["level"], ["team", "level"]),
      fc.option(fc.constantFrom("red", "blue"), { nil: undefined }),
      async (numShards, raw, groupBy, name) => {
        await using dir = await tempDir();
        await using manager = new ShardManager({ numShards, dbDir: dir.path });
        const columns = {
          id: "INTEGER PRIMARY KEY",
          team: "TEXT",
          level: "",
          age: "",
          name: "TEXT",
        };
        await manager.createTable("t", columns, { shardKey: "id" });
        const rows = raw.map((r, i) => ({ id: i + 1, ...r }));
        if (rows.length > 0) await manager.insertMany("t", rows);
        const where = name === undefined ? undefined : { team: name };
        const got = await manager.aggregateBy("t", groupBy, EXPRESSIONS, { where });
        const single = new sqlite.Database();
        try {
          single.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, team TEXT, level, age, name TEXT)");
          for (const r of rows) {
            single.run("INSERT INTO t VALUES (?, ?, ?, ?, ?)", [
              r.id,
              r.team,
              r.level,
              r.age,
              r.name,
            ]);
          }
          const keys = groupBy.join(", ");
          const want = single.all(
            `SELECT ${keys}, ${EXPRESSIONS.map((e, i) => `${e} AS e${i}`).join(", ")} FROM t` +
              (name === undefined ? "" : " WHERE team = ?") + ` GROUP BY ${keys} ORDER BY ${keys}`,
            name === undefined ? [] : [name],
          ) as Row[];
          assert.equal(got.length, want.length, JSON.stringify({ got, want }));
          want.forEach((w, k) => {
            const g = got[k] as Row;
            for (const c of groupBy) close(g[c], w[c], `group ${k} ${c}`);
            EXPRESSIONS.forEach((e, i) => close(g[e], w[`e${i}`], `group ${k} ${e}`));
          });
        } finally {
          single.close();
        }
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("aggregateBy refuses bad group columns and routes by key", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 3, dbDir: dir.path });
  await manager.createTable("t", { id: "INTEGER PRIMARY KEY", team: "TEXT" }, { shardKey: "id" });
  await manager.insertMany("t", [{ id: 1, team: "a" }, { id: 2, team: "a" }, { id: 3, team: "b" }]);
  await assert.rejects(
    manager.aggregateBy("t", 'team"; DROP TABLE t; --', "COUNT(*)"),
    InvalidIdentifierError,
  );
  await assert.rejects(manager.aggregateBy("t", [], "COUNT(*)"), InvalidQueryError);
  await assert.rejects(manager.aggregateBy("t", "team", "TOTAL(id)"), InvalidQueryError);
  assert.deepEqual(await manager.aggregateBy("t", "team", "COUNT(*)", { key: 2 }), [
    { team: "a", "COUNT(*)": 1 },
  ]);
  assert.equal(await manager.count("t"), 3);
});
