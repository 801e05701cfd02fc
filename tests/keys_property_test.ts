/**
 * Keys are routed by the value SQLite stores in the table's shard-key column
 * (`src/routing/key_column.ts`). This file checks that promise against SQLite itself:
 *
 * - Deterministic: an integer key and its decimal text are one key of an INTEGER PRIMARY
 *   KEY (the second insert is a UNIQUE violation, and a lookup by either finds the row),
 *   and one key of a TEXT column. With keys hashed by their JavaScript type, `7` and `"7"`
 *   would land on different shards for most of the keys tried, and both would fail.
 * - Property: random keys of every JavaScript type a caller can pass (integers, their
 *   decimal strings with and without zeros, signs, spaces or exponents, integral and
 *   fractional floats, bigints, strings, bytes, and invalid ones), inserted one at a time
 *   and with `insertMany` into one table per shard-key affinity, then read back through
 *   every key-taking call, agree with one unsharded SQLite database (the oracle) holding
 *   the same inserts: the same rows with the same stored values and storage classes, the
 *   same UNIQUE violations, no duplicates, every row on the shard its stored key names.
 *   A key the manager refuses (InvalidShardKeyError) writes nothing, and is not given to
 *   the oracle.
 * - Property: calls that name no table (`getShardId(key)`, `transaction(key)`,
 *   `query(key)`) agree with the table calls for a number, its decimal string and its
 *   bigint.
 *
 * `SHARDLITE_STRESS=1` runs 10x as many cases.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import sqlite from "node-sqlite3-wasm";
import {
  InvalidQueryError,
  InvalidShardKeyError,
  ShardManager,
  type SqlInput,
  type SqlValue,
} from "../mod.ts";
import { type MemoryDb, tempDir } from "./helpers.ts";

const STRESS = Deno.env.get("SHARDLITE_STRESS") === "1";
const NUM_SHARDS = 4;

/** One table per shard-key affinity, with a second column `v` tagging each insert. */
interface TableSpec {
  readonly name: string;
  readonly column: string;
  readonly definition: string;
  readonly strict: boolean;
  /** The column stores only its own class: text that does not convert is refused. */
  readonly onlyIntegers: boolean;
}

const TABLES: readonly TableSpec[] = [
  {
    name: "t_pk",
    column: "id",
    definition: "INTEGER PRIMARY KEY",
    strict: false,
    onlyIntegers: true,
  },
  { name: "t_int", column: "k", definition: "INTEGER UNIQUE", strict: false, onlyIntegers: false },
  { name: "t_text", column: "k", definition: "TEXT UNIQUE", strict: false, onlyIntegers: false },
  { name: "t_real", column: "k", definition: "REAL UNIQUE", strict: false, onlyIntegers: false },
  { name: "t_num", column: "k", definition: "NUMERIC UNIQUE", strict: false, onlyIntegers: false },
  { name: "t_blob", column: "k", definition: "BLOB UNIQUE", strict: false, onlyIntegers: false },
  { name: "t_none", column: "k", definition: "UNIQUE", strict: false, onlyIntegers: false },
  { name: "t_strict", column: "k", definition: "INTEGER UNIQUE", strict: true, onlyIntegers: true },
];

function createSql(spec: TableSpec): string {
  return `CREATE TABLE "${spec.name}" ("${spec.column}" ${spec.definition}, "v" TEXT)${
    spec.strict ? " STRICT" : ""
  }`;
}

/** Creates every table in the manager (recording its shard key) and in the oracle. */
async function createTables(manager: ShardManager, db: MemoryDb): Promise<void> {
  for (const spec of TABLES) {
    db.exec(createSql(spec));
    // createTable has no STRICT option: make the table first; createTable (IF NOT EXISTS)
    // then records its shard key, reading the key's type from the schema SQLite built.
    if (spec.strict) await manager.applySchema(createSql(spec));
    await manager.createTable(spec.name, { [spec.column]: spec.definition, v: "TEXT" }, {
      shardKey: spec.column,
    });
  }
}

/** A printable key, for assertion messages. */
function show(key: unknown): string {
  if (typeof key === "bigint") return `${key}n`;
  if (typeof key === "number") return Object.is(key, -0) ? "-0" : String(key);
  if (typeof key === "string") return JSON.stringify(key);
  if (key instanceof Uint8Array) return `bytes[${[...key].join(",")}]`;
  return String(key);
}

/** An identity for deduplicating lookup keys (type and value). */
function identity(key: unknown): string {
  return `${typeof key}:${show(key)}`;
}

type Outcome = "ok" | "invalid" | "unique" | `error: ${string}`;

function classify(error: unknown): Outcome {
  if (error instanceof InvalidShardKeyError) return "invalid";
  const message = error instanceof Error ? error.message : String(error);
  if (/UNIQUE constraint failed/.test(message)) return "unique";
  return `error: ${error instanceof Error ? error.name : typeof error}: ${message}`;
}

async function managerOutcome(fn: () => Promise<unknown>): Promise<Outcome> {
  try {
    await fn();
    return "ok";
  } catch (error) {
    const outcome = classify(error);
    if (outcome.startsWith("error")) throw error; // neither a refusal nor a UNIQUE violation
    return outcome;
  }
}

function oracleOutcome(fn: () => unknown): Outcome {
  try {
    fn();
    return "ok";
  } catch (error) {
    const outcome = classify(error);
    return outcome === "invalid" ? `error: ${String(error)}` : outcome;
  }
}

/** A stored row, as `SELECT k, typeof(k) AS kt, v` returns it. */
interface StoredRow {
  k: SqlValue;
  kt: string;
  v: string;
}

function stateSql(spec: TableSpec): string {
  return `SELECT "${spec.column}" AS k, typeof("${spec.column}") AS kt, v FROM "${spec.name}"`;
}

function plain(rows: readonly Record<string, SqlValue>[]): Record<string, SqlValue>[] {
  return rows.map((row) => ({ ...row })).sort((a, b) =>
    String(a.v) < String(b.v) ? -1 : String(a.v) > String(b.v) ? 1 : 0
  );
}

/** The key a stored value is, as a caller passes it: a REAL beyond 2^53 as a bigint. */
function keyOfStored(value: SqlValue): SqlInput {
  if (typeof value === "number" && Number.isInteger(value) && !Number.isSafeInteger(value)) {
    return BigInt(value);
  }
  return value;
}

/** The spellings of a stored value a caller could use: its number, bigint and decimal text. */
function spellings(value: SqlValue): SqlInput[] {
  const key = keyOfStored(value);
  if (typeof key === "number" && Number.isSafeInteger(key)) return [key, BigInt(key), String(key)];
  if (typeof key === "bigint") return [key, String(key)];
  if (typeof key === "string" && /^-?[0-9]+$/.test(key)) {
    const big = BigInt(key);
    const spelled: SqlInput[] = [key];
    if (big >= -(2n ** 63n) && big < 2n ** 63n) spelled.push(big);
    if (Number.isSafeInteger(Number(big)) && BigInt(Number(big)) === big) spelled.push(Number(big));
    return spelled;
  }
  return [key];
}

/** Keys every table must refuse, whatever its affinity. */
function mustRefuse(key: unknown): boolean {
  switch (typeof key) {
    case "number":
      return !Number.isSafeInteger(key);
    case "bigint":
      return key < -(2n ** 63n) || key >= 2n ** 63n;
    case "string":
      return key.includes("\0") || !key.isWellFormed();
    case "boolean":
    case "undefined":
      return true;
    default:
      return key === null;
  }
}

/** Keys `spec` must accept (a subset: the plainly storable ones). */
function mustAccept(key: unknown, spec: TableSpec): boolean {
  if (typeof key === "number") return Number.isSafeInteger(key);
  if (typeof key === "bigint") {
    // A REAL column rounds integers beyond 2^53; near 2^63 they round out of range.
    if (spec.definition.startsWith("REAL")) {
      return key >= -(2n ** 53n) + 1n && key <= 2n ** 53n - 1n;
    }
    return key >= -(2n ** 63n) && key < 2n ** 63n;
  }
  if (typeof key === "string") {
    if (mustRefuse(key)) return false;
    // Decimal integer text, with SQLite's spaces, a sign and leading zeros: every column.
    const integer = /^[ \t\n\f\r]*[+-]?0*([0-9]{1,15})[ \t\n\f\r]*$/.test(key);
    if (integer) return true;
    return ["t_text", "t_blob", "t_none"].includes(spec.name);
  }
  if (key instanceof Uint8Array) return !spec.onlyIntegers;
  return false;
}

// ---------------------------------------------------------------------------------------
// Key generators

const SMALL_MIN = -3;
const SMALL_MAX = 12;
const small = fc.integer({ min: SMALL_MIN, max: SMALL_MAX });
const integer = fc.oneof(
  { arbitrary: small, weight: 6 },
  { arbitrary: fc.maxSafeInteger(), weight: 1 },
  { arbitrary: fc.constantFrom(Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER), weight: 1 },
);

type Spelling =
  | "plain"
  | "zeros"
  | "plus"
  | "spaces"
  | "tabs"
  | "dot0"
  | "dot"
  | "exp"
  | "exp2";

/** A decimal spelling of an integer that SQLite converts to it in a numeric column. */
function spell(n: number, how: Spelling): string {
  const sign = n < 0 ? "-" : "";
  const digits = String(Math.abs(n));
  switch (how) {
    case "plain":
      return String(n);
    case "zeros":
      return `${sign}00${digits}`;
    case "plus":
      return n < 0 ? String(n) : `+${digits}`;
    case "spaces":
      return ` ${n} `;
    case "tabs":
      return `\t${n}\n`;
    case "dot0":
      return `${n}.0`;
    case "dot":
      return `${n}.`;
    case "exp":
      return `${n}e0`;
    case "exp2":
      return `${n}00E-2`;
  }
}

const spelledInteger = fc.tuple(
  integer,
  fc.constantFrom<Spelling>(
    "plain",
    "zeros",
    "plus",
    "spaces",
    "tabs",
    "dot0",
    "dot",
    "exp",
    "exp2",
  ),
).map(([n, how]) => spell(n, how));

const fractional = fc.oneof(
  small.map((n) => n + 0.5),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((x) => !Number.isInteger(x)),
);

const bigints = fc.oneof(
  { arbitrary: fc.bigInt({ min: BigInt(SMALL_MIN), max: BigInt(SMALL_MAX) }), weight: 3 },
  { arbitrary: fc.bigInt({ min: 2n ** 53n - 2n, max: 2n ** 53n + 3n }), weight: 1 },
  { arbitrary: fc.bigInt({ min: 2n ** 62n - 1n, max: 2n ** 62n + 2n }), weight: 1 },
  { arbitrary: fc.bigInt({ min: 2n ** 63n - 3n, max: 2n ** 63n - 1n }), weight: 1 },
  { arbitrary: fc.bigInt({ min: -(2n ** 63n), max: -(2n ** 63n) + 2n }), weight: 1 },
);

const strings = fc.oneof(
  fc.string({ unit: fc.constantFrom("a", "b", "7", "0", " ", "-", ".", "e", "x"), maxLength: 3 }),
  fc.string({ unit: "grapheme", maxLength: 3 }),
  fc.constantFrom("abc", "", "0x7", "7e", "1e400", "\u00a07", "\uff17", "NaN", "Infinity", "1_0"),
  fc.constantFrom(
    "-0",
    "+0",
    "-0.0",
    "00",
    ".5e1",
    "1e18",
    "9007199254740993",
    "9007199254740993.0",
  ),
  fc.constantFrom("9223372036854775807", "9223372036854775808", "-9223372036854775808"),
);

const invalid = fc.constantFrom<unknown>(
  NaN,
  Infinity,
  -Infinity,
  2 ** 60,
  2 ** 53,
  1e21,
  null,
  true,
  false,
  2n ** 63n,
  -(2n ** 63n) - 1n,
  "a\0b",
  "\ud800",
);

/** Any key a caller can pass, weighted so that small integers (and collisions) are common. */
const anyKey: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: integer, weight: 6 },
  { arbitrary: fc.constant(-0), weight: 1 },
  { arbitrary: spelledInteger, weight: 6 },
  { arbitrary: fractional, weight: 2 },
  { arbitrary: fractional.map(String), weight: 1 },
  { arbitrary: bigints, weight: 3 },
  { arbitrary: bigints.map(String), weight: 2 },
  { arbitrary: strings, weight: 4 },
  { arbitrary: fc.uint8Array({ maxLength: 2, max: 3 }), weight: 2 },
  { arbitrary: invalid, weight: 2 },
);

type Op = { kind: "one"; key: unknown } | { kind: "many"; keys: unknown[] };

const ops: fc.Arbitrary<Op[]> = fc.array(
  fc.oneof(
    { arbitrary: anyKey.map((key): Op => ({ kind: "one", key })), weight: 4 },
    {
      arbitrary: fc.array(anyKey, { minLength: 2, maxLength: 4 }).map((keys): Op => ({
        kind: "many",
        keys,
      })),
      weight: 1,
    },
  ),
  { minLength: 1, maxLength: 14 },
);

// ---------------------------------------------------------------------------------------
// The model

async function rowCount(manager: ShardManager, spec: TableSpec): Promise<number> {
  return await manager.count(spec.name);
}

/** Inserts `keys` (one insert, or one insertMany) into every table, checked against the oracle. */
async function applyOp(
  manager: ShardManager,
  db: MemoryDb,
  op: Op,
  nextTag: () => string,
): Promise<void> {
  for (const spec of TABLES) {
    const keys = op.kind === "one" ? [op.key] : op.keys;
    const rows = keys.map((key) => ({ [spec.column]: key as SqlInput, v: nextTag() }));
    const label = `${op.kind === "one" ? "insert" : "insertMany"} ${spec.name} (${spec.definition}${
      spec.strict ? " STRICT" : ""
    }) keys ${keys.map(show).join(", ")}`;
    const before = await rowCount(manager, spec);
    // The oracle first, in a savepoint: rolled back when the manager refuses the keys.
    db.exec("SAVEPOINT op");
    const oracle = oracleOutcome(() => {
      for (const row of rows) {
        db.run(`INSERT INTO "${spec.name}" ("${spec.column}", v) VALUES (?, ?)`, [
          row[spec.column] as never,
          row.v as string,
        ]);
      }
    });
    let inserted: number | undefined;
    const outcome = await managerOutcome(async () => {
      if (op.kind === "one") {
        inserted = (await manager.insert(spec.name, rows[0]!)).changes;
      } else {
        inserted = await manager.insertMany(spec.name, rows);
      }
    });
    if (outcome === "invalid" || oracle !== "ok") db.exec("ROLLBACK TO op");
    db.exec("RELEASE op");
    const after = await rowCount(manager, spec);
    if (outcome === "invalid") {
      assert.equal(after, before, `${label}: refused, yet rows were written`);
      // A batch is refused when any of its keys is; keys that must all be accepted are not.
      assert.ok(!keys.every((key) => mustAccept(key, spec)), `${label}: refused valid keys`);
      continue;
    }
    assert.ok(
      !keys.some(mustRefuse),
      `${label}: accepted a key that must be refused (${oracle} in SQLite)`,
    );
    assert.equal(outcome, oracle, `${label}: the manager says ${outcome}, SQLite says ${oracle}`);
    if (outcome === "ok") {
      assert.equal(inserted, rows.length, `${label}: rows inserted`);
      assert.equal(after, before + rows.length, `${label}: row count`);
    } else {
      assert.equal(after, before, `${label}: a failed write left rows behind`);
    }
  }
}

/**
 * The manager's rows of every table equal the oracle's (values and storage classes), each
 * exactly once, each on the shard its stored key names. Returns each row's shard by tag.
 */
async function checkState(
  manager: ShardManager,
  db: MemoryDb,
): Promise<Map<string, Map<string, number>>> {
  const placed = new Map<string, Map<string, number>>();
  for (const spec of TABLES) {
    const where = new Map<string, number>();
    placed.set(spec.name, where);
    const sharded: StoredRow[] = [];
    for (let shard = 0; shard < NUM_SHARDS; shard++) {
      const rows = await manager.getPool(shard).withConnection((c) => c.all(stateSql(spec)));
      for (const row of rows as unknown as StoredRow[]) {
        assert.ok(!where.has(row.v), `${spec.name}: row ${row.v} is on two shards`);
        where.set(row.v, shard);
        sharded.push(row);
      }
    }
    const oracle = db.all(stateSql(spec)) as unknown as StoredRow[];
    assert.deepEqual(
      plain(sharded as never),
      plain(oracle as never),
      `${spec.name}: the shards' rows differ from SQLite's`,
    );
    // Each row on the shard its stored key names, with or without the table; and the
    // calls that name no table reach it.
    for (const row of sharded) {
      const key = keyOfStored(row.k);
      const shard = where.get(row.v)!;
      const label = `${spec.name}: row ${row.v} with ${row.kt} ${show(row.k)} on shard ${shard}`;
      assert.equal(
        manager.getShardId(key as never, spec.name),
        shard,
        `${label}: getShardId(table)`,
      );
      assert.equal(manager.getShardId(key as never), shard, `${label}: getShardId()`);
      const sql = `SELECT v FROM "${spec.name}" WHERE "${spec.column}" = ?`;
      const queried = await manager.query(key as never, sql, [key]);
      assert.ok(queried.some((r) => r.v === row.v), `${label}: query(key) misses it`);
      const inTransaction = await manager.transaction(key as never, (c) => c.all(sql, [key]));
      assert.ok(inTransaction.some((r) => r.v === row.v), `${label}: transaction(key) misses it`);
    }
  }
  const report = await manager.verifyPlacement();
  assert.equal(report.misplaced, 0, `verifyPlacement: ${JSON.stringify(report.rows, replacer)}`);
  assert.deepEqual(
    report.unroutable,
    [],
    `verifyPlacement calls stored keys unroutable: ${JSON.stringify(report.unroutable, replacer)}`,
  );
  return placed;
}

function replacer(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? `${value}n` : value;
}

function isRefusal(error: unknown): boolean {
  return error instanceof InvalidShardKeyError || error instanceof InvalidQueryError;
}

/** Each key-taking call, for `key` in `spec`, agrees with the oracle's `WHERE k = key`. */
async function checkLookup(
  manager: ShardManager,
  db: MemoryDb,
  spec: TableSpec,
  key: unknown,
  placed: Map<string, number>,
): Promise<void> {
  const label = `${spec.name} (${spec.definition}${spec.strict ? " STRICT" : ""}) key ${show(key)}`;
  let found: Record<string, SqlValue>[];
  try {
    found = await manager.select(spec.name, { key: key as never });
  } catch (error) {
    if (!isRefusal(error)) throw error;
    assert.ok(!mustAccept(key, spec), `${label}: select refused a key it must accept: ${error}`);
    // Every other key-taking call refuses it too.
    assert.throws(() => manager.getShardId(key as never, spec.name), isRefusal, label);
    await assert.rejects(
      manager.aggregate(spec.name, "COUNT(*)", { key: key as never }),
      isRefusal,
      `${label}: aggregate`,
    );
    await assert.rejects(
      manager.update(spec.name, { v: "never" }, { key: key as never }),
      isRefusal,
      `${label}: update`,
    );
    return;
  }
  assert.ok(!mustRefuse(key), `${label}: select accepted a key that must be refused`);
  const sql = `SELECT * FROM "${spec.name}" WHERE "${spec.column}" = ?`;
  const expected = db.all(sql, [key as never]) as Record<string, SqlValue>[];
  assert.deepEqual(plain(found), plain(expected), `${label}: select({ key })`);
  const counted = await manager.aggregate(spec.name, "COUNT(*)", { key: key as never });
  assert.equal(counted["COUNT(*)"], expected.length, `${label}: aggregate COUNT(*) { key }`);
  // The where path binds the key as given on every shard: SQLite compares by the affinity.
  assert.equal(
    await manager.count(spec.name, { [spec.column]: key as never }),
    expected.length,
    `${label}: count({ ${spec.column}: key })`,
  );
  const shard = manager.getShardId(key as never, spec.name);
  for (const row of expected) {
    assert.equal(placed.get(row.v as string), shard, `${label}: getShardId vs the row's shard`);
  }
}

/** update({ key }) changes the rows the oracle's UPDATE does; both get the same new tag. */
async function checkUpdate(
  manager: ShardManager,
  db: MemoryDb,
  spec: TableSpec,
  key: unknown,
  tag: string,
): Promise<void> {
  let changed: number;
  try {
    changed = await manager.update(spec.name, { v: tag }, { key: key as never });
  } catch (error) {
    if (isRefusal(error)) return; // checked by checkLookup
    throw error;
  }
  const oracle = db.run(`UPDATE "${spec.name}" SET v = ? WHERE "${spec.column}" = ?`, [
    tag,
    key as never,
  ]);
  assert.equal(changed, oracle.changes, `${spec.name} key ${show(key)}: update({ key }) changes`);
}

async function checkCase(opList: Op[]): Promise<void> {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: NUM_SHARDS, dbDir: dir.path });
  const db = new sqlite.Database();
  try {
    await createTables(manager, db);
    let tags = 0;
    const nextTag = () => `v${String(tags++).padStart(4, "0")}`;
    for (const op of opList) await applyOp(manager, db, op, nextTag);
    const placed = await checkState(manager, db);

    // Look up every generated key and every spelling of every stored key, in every table.
    const lookups = new Map<string, unknown>();
    for (const op of opList) {
      for (const key of op.kind === "one" ? [op.key] : op.keys) lookups.set(identity(key), key);
    }
    for (const spec of TABLES) {
      for (const row of db.all(stateSql(spec)) as unknown as StoredRow[]) {
        for (const key of spellings(row.k)) lookups.set(identity(key), key);
      }
    }
    for (const spec of TABLES) {
      for (const key of lookups.values()) {
        await checkLookup(manager, db, spec, key, placed.get(spec.name)!);
      }
    }
    for (const spec of TABLES) {
      for (const key of lookups.values()) await checkUpdate(manager, db, spec, key, nextTag());
    }
    await checkState(manager, db); // the updates changed the same rows
  } finally {
    db.close();
  }
}

// ---------------------------------------------------------------------------------------

Deno.test("an integer and its decimal text are one key of an INTEGER PRIMARY KEY and of a TEXT column", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: NUM_SHARDS, dbDir: dir.path });
  await manager.createTable("users", { id: "INTEGER PRIMARY KEY", v: "TEXT" }, { shardKey: "id" });
  await manager.createTable("names", { k: "TEXT UNIQUE", v: "TEXT" }, { shardKey: "k" });
  // 16 keys: hashed by JavaScript type, 7 and "7" would share a shard with odds 1/4 each.
  for (let n = 1; n <= 16; n++) {
    await manager.insert("users", { id: n, v: `int ${n}` });
    await assert.rejects(
      manager.insert("users", { id: String(n), v: `text ${n}` }),
      /UNIQUE constraint failed/,
      `users: "${n}" after ${n}`,
    );
    await assert.rejects(
      manager.insert("users", { id: `00${n}`, v: `zeros ${n}` }),
      /UNIQUE constraint failed/,
      `users: "00${n}" after ${n}`,
    );
    assert.deepEqual(await manager.select("users", { key: String(n) }), [{ id: n, v: `int ${n}` }]);
    assert.deepEqual(await manager.select("users", { key: BigInt(n) }), [{ id: n, v: `int ${n}` }]);

    await manager.insert("names", { k: String(n), v: `text ${n}` });
    await assert.rejects(
      manager.insert("names", { k: n, v: `int ${n}` }),
      /UNIQUE constraint failed/,
      `names: ${n} after "${n}"`,
    );
    assert.deepEqual(await manager.select("names", { key: n }), [{ k: String(n), v: `text ${n}` }]);
    // "007" is other text than "7" in a TEXT column.
    await manager.insert("names", { k: `00${n}`, v: `zeros ${n}` });
  }
  assert.equal(await manager.count("users"), 16);
  assert.equal(await manager.count("names"), 32);
  assert.equal((await manager.verifyPlacement()).misplaced, 0);
});

Deno.test("a REAL shard key beyond 2^53 is refused, or else found and routed as SQLite stores it", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 2, dbDir: dir.path });
  await manager.createTable("t", { k: "REAL UNIQUE", v: "TEXT" }, { shardKey: "k" });
  const oracle = new sqlite.Database();
  let accepted = 0;
  try {
    oracle.exec(createSql({ ...TABLES[3]!, name: "t" }));
    // Exactly doubles (2^53, 2^62, 1e18) and not (2^60 + 1, which a REAL column stores as
    // 2^60, and which SQLite's `k = ?` then no longer finds, as a bigint nor as text).
    const keys = [2n ** 53n, 2n ** 62n, "4611686018427387904", "1e18", 2n ** 60n + 1n, "1e16"];
    for (const [i, key] of keys.entries()) {
      const v = `r${i}`;
      const outcome = await managerOutcome(() => manager.insert("t", { k: key, v }));
      if (outcome === "invalid") {
        assert.equal(await manager.count("t"), accepted, `${show(key)}: refused, yet written`);
        continue;
      }
      assert.equal(outcome, "ok", show(key));
      accepted++;
      oracle.run("INSERT INTO t (k, v) VALUES (?, ?)", [key, v]);
      const expected = plain(oracle.all("SELECT * FROM t WHERE k = ?", [key]) as never);
      assert.deepEqual(plain(await manager.select("t", { key })), expected, `${show(key)}: key`);
      const where = await manager.select("t", { where: { k: key } });
      assert.deepEqual(plain(where), expected, `${show(key)}: where`);
    }
  } finally {
    oracle.close();
  }
  // Whatever was accepted, the manager's own scans can route.
  const report = await manager.verifyPlacement();
  assert.deepEqual(
    report.unroutable.map((u) => `${u.key}: ${u.reason}`),
    [],
    "verifyPlacement: rows the manager wrote are unroutable",
  );
  assert.equal(report.misplaced, 0);
  await manager.reshard(3);
  assert.equal(await manager.count("t"), accepted);
});

Deno.test("property: keys of every type and affinity agree with one unsharded SQLite database", async () => {
  await fc.assert(fc.asyncProperty(ops, checkCase), { numRuns: STRESS ? 400 : 40 });
});

Deno.test("property: calls that name no table route a number, its decimal text and its bigint as the table calls do", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: NUM_SHARDS, dbDir: dir.path });
  await manager.createTable("t_pk", { id: "INTEGER PRIMARY KEY", v: "TEXT" }, { shardKey: "id" });
  await manager.createTable("t_text", { k: "TEXT UNIQUE", v: "TEXT" }, { shardKey: "k" });
  const fileOf = async (key: SqlInput): Promise<string> => {
    const [viaTransaction] = await manager.transaction(
      key as never,
      (c) => c.all("PRAGMA database_list"),
    );
    const [viaQuery] = await manager.query(key as never, "PRAGMA database_list");
    assert.equal(viaQuery?.file, viaTransaction?.file, `query and transaction for ${show(key)}`);
    return String(viaTransaction?.file);
  };
  const int64 = fc.oneof(
    fc.bigInt({ min: -(2n ** 63n), max: -(2n ** 53n) - 1n }),
    fc.bigInt({ min: 2n ** 53n + 1n, max: 2n ** 63n - 1n }),
  );
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.maxSafeInteger().map((n): SqlInput[] => [n, String(n), BigInt(n)]),
        int64.map(
          (b): SqlInput[] => [b, String(b)],
        ),
      ),
      async (spellings) => {
        const expected = manager.getShardId(spellings[0] as never);
        for (const key of spellings) {
          const label = `${show(key)} (spelling of ${show(spellings[0])})`;
          assert.equal(manager.getShardId(key as never), expected, `${label}: getShardId()`);
          assert.equal(manager.getShardId(key as never, "t_pk"), expected, `${label}: t_pk`);
          assert.equal(manager.getShardId(key as never, "t_text"), expected, `${label}: t_text`);
          const file = await fileOf(key);
          assert.ok(
            file.endsWith(manager.shardPath(expected).split("/").pop()!),
            `${label}: transaction(key) ran on ${file}, not shard ${expected}`,
          );
        }
      },
    ),
    { numRuns: STRESS ? 2_000 : 200 },
  );
});
