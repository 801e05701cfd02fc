// insertMany packs each shard's rows into multi-row INSERTs. These tests check that the
// packing never loses, duplicates, reorders or misroutes a row, whatever the row count,
// the number of columns (which sets the rows per statement) or changes of row shape.
import assert from "node:assert/strict";
import fc from "fast-check";
import { ShardManager, ShardOperationError, type SqlValue } from "../mod.ts";
import { tempDir } from "./helpers.ts";

// id + 40 columns: 41 values a row, so 24 rows fill a statement (999 values at most).
const WIDE = 40;
const wideColumns = Array.from({ length: WIDE }, (_, i) => `c${i}`);
const wideSchema: Record<string, string> = { id: "INTEGER PRIMARY KEY", note: "" };
for (const c of wideColumns) wideSchema[c] = "";

type Shape = "wide" | "note" | "idOnly";
type Input = Record<string, SqlValue>;

function makeRow(id: number, shape: Shape, value: SqlValue): Input {
  if (shape === "idOnly") return { id };
  if (shape === "note") return { id, note: value };
  const row: Input = { id };
  for (const [i, c] of wideColumns.entries()) {
    row[c] = i % 3 === 0 ? value : typeof value === "number" ? value + i : i;
  }
  return row;
}

/** A value as stored: -0 is bound as the integer 0 (see fuzz_values_test.ts). */
function stored(value: SqlValue | undefined): SqlValue {
  return Object.is(value, -0) ? 0 : value ?? null;
}

/** The row as stored: every column, NULL where the input left it out. */
function expected(row: Input): Input {
  const full: Input = { id: row.id as number, note: stored(row.note) };
  for (const c of wideColumns) full[c] = stored(row[c]);
  return full;
}

async function checkStored(manager: ShardManager, rows: Input[]): Promise<void> {
  const stored = await manager.select("t", { orderBy: "id" });
  assert.equal(stored.length, rows.length);
  const want = [...rows].sort((a, b) => (a.id as number) - (b.id as number)).map(expected);
  assert.deepEqual(stored.map((r) => ({ ...r })), want);
  // Each row sits on the shard its key maps to.
  for (const row of rows) {
    const id = row.id as number;
    const found = await manager.query(id, 'SELECT id FROM "t" WHERE id = ?', [id]);
    assert.equal(found.length, 1, `row ${id} is not on shard ${manager.getShardId(id)}`);
  }
}

const valueArb: fc.Arbitrary<SqlValue> = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true }),
  fc.string({ maxLength: 5 }),
  fc.constant(null),
  fc.uint8Array({ maxLength: 4 }),
);

Deno.test("property: insertMany stores every row once, on its shard, whatever the packing", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 4 }),
      // Runs of rows of one shape; lengths straddle the 24- and 100-row statement sizes.
      fc.array(
        fc.record({
          shape: fc.constantFrom<Shape>("wide", "note", "idOnly"),
          count: fc.integer({ min: 1, max: 130 }),
          value: valueArb,
        }),
        { minLength: 1, maxLength: 5 },
      ),
      async (numShards, runs) => {
        await using dir = await tempDir();
        await using manager = new ShardManager({ numShards, dbDir: dir.path });
        await manager.createTable("t", wideSchema, { shardKey: "id" });
        const rows: Input[] = [];
        for (const run of runs) {
          for (let i = 0; i < run.count; i++) {
            rows.push(makeRow(rows.length * 7 + 1, run.shape, run.value));
          }
        }
        assert.equal(await manager.insertMany("t", rows), rows.length);
        await checkStored(manager, rows);
      },
    ),
    { numRuns: 25 },
  );
});

Deno.test("insertMany crosses run boundaries and handles rows too wide to pack", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 2, dbDir: dir.path });
  // 600 columns: more than 999 / 2 values a row, so each row is its own statement.
  const many: Record<string, string> = { id: "INTEGER PRIMARY KEY" };
  for (let i = 0; i < 600; i++) many[`v${i}`] = "INTEGER";
  await manager.createTable("huge", many, { shardKey: "id" });
  const huge = Array.from({ length: 7 }, (_, r) => {
    const row: Record<string, number> = { id: r + 1 };
    for (let i = 0; i < 600; i++) row[`v${i}`] = r * 1000 + i;
    return row;
  });
  assert.equal(await manager.insertMany("huge", huge), 7);
  const back = await manager.select("huge", { orderBy: "id" });
  assert.deepEqual(back.map((r) => ({ ...r })), huge);

  // 4,321 narrow rows: more than one 1,000-row run per shard, and a ragged tail.
  await manager.createTable("t", wideSchema, { shardKey: "id" });
  const rows = Array.from({ length: 4_321 }, (_, i) => makeRow(i + 1, "note", `n${i}`));
  assert.equal(await manager.insertMany("t", rows), rows.length);
  await checkStored(manager, rows);
});

Deno.test("a conflict inside a packed statement rolls back every shard", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  await manager.createTable("t", wideSchema, { shardKey: "id" });
  await manager.insert("t", { id: 777, note: "first" });
  // Row 777 again, deep inside a full 100-row statement on its shard.
  const rows = Array.from({ length: 2_000 }, (_, i) => ({ id: i + 1, note: `n${i}` }));
  const error = await manager.insertMany("t", rows).then(() => null, (e: unknown) => e);
  assert.ok(error instanceof ShardOperationError, String(error));
  assert.equal(error.shardId, manager.getShardId(777));
  assert.match(error.message, /UNIQUE constraint failed: t\.id/);
  assert.deepEqual(await manager.select("t"), [{ id: 777, note: "first", ...nulls() }]);
});

function nulls(): Record<string, null> {
  return Object.fromEntries(wideColumns.map((c) => [c, null]));
}

Deno.test("insertMany of no rows writes nothing and returns 0", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 3, dbDir: dir.path });
  await manager.createTable("t", wideSchema, { shardKey: "id" });
  assert.equal(await manager.insertMany("t", []), 0);
  assert.equal(await manager.count("t"), 0);
});
