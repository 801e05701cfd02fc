import assert from "node:assert/strict";
import fc from "fast-check";
import sqlite from "node-sqlite3-wasm";
import {
  HashStrategy,
  InvalidIdentifierError,
  InvalidQueryError,
  InvalidShardKeyError,
  ModuloStrategy,
  PoolClosedError,
  type Row,
  ShardManager,
  ShardMapMismatchError,
  ShardOperationError,
  shutdown,
  type SqlValue,
} from "../mod.ts";
import { tempDir } from "./helpers.ts";

const { Database } = sqlite;
const USERS = { id: "INTEGER PRIMARY KEY", name: "TEXT", age: "INTEGER", team: "TEXT" };

async function seeded(dir: string, numShards = 4): Promise<ShardManager> {
  const manager = new ShardManager({ numShards, dbDir: dir });
  await manager.createTable("users", USERS, { shardKey: "id" });
  await manager.insertMany("users", [
    { id: 1, name: "Ada", age: 36, team: "red" },
    { id: 2, name: "Bo", age: 24, team: "blue" },
    { id: 3, name: "Cy", age: 41, team: "red" },
    { id: 4, name: "Di", age: 29, team: "blue" },
    { id: 5, name: "Ed", age: null, team: "red" },
    { id: 6, name: "Fa", age: 52, team: "green" },
  ]);
  return manager;
}

Deno.test("CRUD by shard key: insert, select by key, update, delete", async () => {
  await using dir = await tempDir();
  await using manager = await seeded(dir.path);
  await manager.insert("users", { id: 123, name: "John", age: 30 }, 123);
  await manager.insert("users", { id: 124, name: "Jane", age: 31 }); // key from the row
  assert.deepEqual(await manager.select("users", { key: 123, columns: ["name"] }), [{
    name: "John",
  }]);
  const rowsOnShard = await manager.query(123, "SELECT id FROM users WHERE id = ?", [123]);
  assert.deepEqual(rowsOnShard, [{ id: 123 }]);
  assert.equal(await manager.update("users", { name: "Johnny" }, { key: 123 }), 1);
  assert.deepEqual(await manager.select("users", { key: 123, columns: ["name"] }), [{
    name: "Johnny",
  }]);
  assert.equal(await manager.update("users", { team: "gold" }, { where: { team: "red" } }), 3);
  assert.equal(await manager.delete("users", { key: 124 }), 1);
  assert.equal(await manager.delete("users", { where: { team: "gold" } }), 3);
  assert.equal(await manager.count("users"), 4);
});

Deno.test("rows land on the shard the strategy names", async () => {
  await using dir = await tempDir();
  await using manager = await seeded(dir.path);
  for (let id = 1; id <= 6; id++) {
    const shard = manager.getShardId(id);
    const pool = manager.getPool(shard);
    const found = await pool.withConnection((c) =>
      c.get("SELECT id FROM users WHERE id = ?", [id])
    );
    assert.deepEqual(found, { id }, `user ${id} on shard ${shard}`);
  }
});

Deno.test("insert refuses a missing or mismatched key, and nothing is written", async () => {
  await using dir = await tempDir();
  await using manager = await seeded(dir.path);
  await assert.rejects(
    manager.insert("users", { id: 9, name: "X" }, 10),
    (e: unknown) =>
      e instanceof InvalidShardKeyError && /differs from the row's id/.test(e.message),
  );
  await manager.createTable("events", { at: "INTEGER", what: "TEXT" });
  await assert.rejects(
    manager.insert("events", { at: 1, what: "x" }),
    (e: unknown) => e instanceof InvalidShardKeyError && /no shard-key column/.test(e.message),
  );
  await assert.rejects(manager.insert("users", { id: 1.5, name: "X" }), InvalidShardKeyError);
  await assert.rejects(
    manager.insertMany("users", [{ id: 50, name: "ok" }, { id: "bad", name: "x" }, { name: "y" }]),
    InvalidShardKeyError,
  );
  assert.equal(await manager.count("users"), 6);
  assert.equal(await manager.count("events"), 0);
});

Deno.test("insertMany is all or nothing across shards", async () => {
  await using dir = await tempDir();
  await using manager = await seeded(dir.path);
  // id 2 exists: the PRIMARY KEY violation on its shard rolls back every shard.
  const rows = [10, 11, 12, 13, 14, 15, 2].map((id) => ({ id, name: `n${id}` }));
  const error = await manager.insertMany("users", rows).then(() => null, (e: unknown) => e);
  assert.ok(error instanceof ShardOperationError, String(error));
  assert.equal(error.shardId, manager.getShardId(2));
  assert.match(error.message, /UNIQUE constraint failed/);
  assert.equal(await manager.count("users"), 6);
});

Deno.test("update/delete with neither key nor where are refused unless allShards", async () => {
  await using dir = await tempDir();
  await using manager = await seeded(dir.path);
  await assert.rejects(
    manager.delete("users"),
    (e: unknown) => e instanceof InvalidQueryError && /allShards: true/.test(e.message),
  );
  await assert.rejects(manager.update("users", { team: "x" }), InvalidQueryError);
  await assert.rejects(manager.update("users", { team: "x" }, { where: {} }), InvalidQueryError);
  assert.equal(await manager.count("users", { team: "x" }), 0);
  await assert.rejects(
    manager.update("users", { id: 99 }, { key: 1 }),
    (e: unknown) => e instanceof InvalidQueryError && /shard key of users/.test(e.message),
  );
  assert.equal(await manager.update("users", { team: "x" }, { allShards: true }), 6);
  assert.equal(await manager.delete("users", { allShards: true }), 6);
});

Deno.test("aggregates combine exactly across shards", async () => {
  await using dir = await tempDir();
  await using manager = await seeded(dir.path);
  assert.equal(await manager.count("users"), 6);
  assert.equal(await manager.count("users", { team: "red" }), 3);
  assert.equal(await manager.sum("users", "age"), 182);
  // AVG is total SUM / total COUNT of non-NULL ages (5 of them), not an average of averages.
  assert.equal(await manager.avg("users", "age"), 182 / 5);
  assert.equal(await manager.min("users", "age"), 24);
  assert.equal(await manager.max("users", "name"), "Fa");
  assert.deepEqual(await manager.aggregate("users", "COUNT(*)"), { "COUNT(*)": 6 });
  assert.deepEqual(await manager.aggregate("users", ["SUM(age)", "max(age)"], { key: 3 }), {
    "SUM(age)": 41,
    "max(age)": 41,
  });
  assert.equal(await manager.sum("users", "age", { team: "none" }), null);
  await assert.rejects(manager.aggregate("users", "COUNT(DISTINCT age)"), /DISTINCT/i);
});

Deno.test("cross-shard select: ORDER BY merged, LIMIT/OFFSET exact, hidden sort columns", async () => {
  await using dir = await tempDir();
  await using manager = await seeded(dir.path);
  const byAge = await manager.select("users", {
    columns: ["name"],
    orderBy: [{ column: "age", direction: "desc" }, "id"],
    limit: 3,
    offset: 1,
  });
  assert.deepEqual(byAge, [{ name: "Cy" }, { name: "Ada" }, { name: "Di" }]);
  const all = await manager.select("users", { orderBy: "id" });
  assert.deepEqual(all.map((r) => r.id), [1, 2, 3, 4, 5, 6]);
  const red = await manager.select("users", {
    where: { team: "red", age: { gt: 30 } },
    orderBy: "id",
  });
  assert.deepEqual(red.map((r) => r.id), [1, 3]);
  const page = await manager.queryAll("SELECT id, name FROM users", [], {
    orderBy: [{ column: "id", direction: "desc" }],
    limit: 2,
  });
  assert.deepEqual(page, [{ id: 6, name: "Fa" }, { id: 5, name: "Ed" }]);
});

Deno.test("hostile identifiers are refused and nothing runs", async () => {
  await using dir = await tempDir();
  await using manager = await seeded(dir.path);
  const hostile = [
    'users"; DROP TABLE users; --',
    "users; DROP TABLE users",
    "users--",
    "users/*",
    "us\0ers",
    "sqlite_master",
    "",
    "x".repeat(129),
    "ｕsers",
  ];
  for (const name of hostile) {
    await assert.rejects(manager.createTable(name, { id: "INTEGER" }), InvalidIdentifierError);
    await assert.rejects(manager.select(name), InvalidIdentifierError);
    await assert.rejects(manager.insert(name, { id: 1 }, 1), InvalidIdentifierError);
    await assert.rejects(manager.select("users", { columns: [name] }), InvalidIdentifierError);
    await assert.rejects(manager.select("users", { orderBy: name }), InvalidIdentifierError);
    await assert.rejects(manager.count("users", { [name]: 1 }), InvalidIdentifierError);
  }
  await assert.rejects(
    manager.createTable("t", { id: "INTEGER); DROP TABLE users; --" }),
    /column definition|definition/i,
  );
  assert.equal(await manager.count("users"), 6);
  // Only users, and the insertMany bookkeeping of the seed.
  const tables = await manager.queryAll("SELECT name FROM sqlite_schema WHERE type = 'table'");
  assert.ok(
    tables.every((t) => t.name === "users" || t.name === "_shardlite_batches"),
    JSON.stringify(tables),
  );
});

Deno.test("the shard map is persisted; a different layout is refused", async () => {
  await using dir = await tempDir();
  const manager = await seeded(dir.path);
  await manager.shutdown();
  const map = JSON.parse(await Deno.readTextFile(`${dir.path}/shardlite.json`));
  assert.equal(map.numShards, 4);
  assert.deepEqual(map.strategy, { type: "hash", numShards: 4 });
  assert.deepEqual(map.tables.users, {
    shardKey: "id",
    keyType: { declaredType: "INTEGER", rowidAlias: true, strictTable: false },
  });

  const wrongCount = new ShardManager({ numShards: 5, dbDir: dir.path });
  await assert.rejects(
    wrongCount.count("users"),
    (e: unknown) =>
      e instanceof ShardMapMismatchError && /records 4 shards, 5 were asked/.test(e.message),
  );
  await wrongCount.shutdown();
  const wrongStrategy = new ShardManager({ dbDir: dir.path, strategy: new ModuloStrategy(4) });
  await assert.rejects(wrongStrategy.count("users"), ShardMapMismatchError);
  await wrongStrategy.shutdown();

  const again = new ShardManager({ numShards: 4, dbDir: dir.path });
  assert.equal(await again.count("users"), 6);
  // The shard key is remembered: no key needed on insert.
  await again.insert("users", { id: 77, name: "Gi" });
  assert.equal(again.getShardInfo().tables.users?.shardKey, "id");
  assert.equal(await again.validateShardFiles(), true);
  await again.shutdown();
});

Deno.test("a failing shard fails the whole cross-shard call, naming the shard", async () => {
  await using dir = await tempDir();
  await using manager = await seeded(dir.path);
  await manager.getPool(2).withConnection((c) => c.exec("DROP TABLE users"));
  const error = await manager.count("users").then(() => null, (e: unknown) => e);
  assert.ok(error instanceof ShardOperationError);
  assert.equal(error.shardId, 2);
  assert.match(error.message, /shard 2 \(.*shard_2\.db\) failed: .*no such table: users/);
  await assert.rejects(manager.select("users", { orderBy: "id" }), ShardOperationError);
});

Deno.test("transaction(key) is atomic on its shard", async () => {
  await using dir = await tempDir();
  await using manager = await seeded(dir.path);
  await assert.rejects(
    manager.transaction(1, async (c) => {
      await c.run("UPDATE users SET age = 0 WHERE id = 1");
      throw new Error("abort");
    }),
    /abort/,
  );
  assert.deepEqual(await manager.select("users", { key: 1, columns: ["age"] }), [{ age: 36 }]);
  await manager.transaction(1, (c) => c.run("UPDATE users SET age = 37 WHERE id = 1"));
  assert.deepEqual(await manager.select("users", { key: 1, columns: ["age"] }), [{ age: 37 }]);
});

Deno.test("shutdown leaves files that can be moved or deleted; later calls are refused", async () => {
  await using dir = await tempDir();
  const manager = await seeded(dir.path);
  await manager.shutdown();
  await manager.shutdown(); // idempotent
  const names = [...Deno.readDirSync(dir.path)].map((e) => e.name).sort();
  assert.deepEqual(names, [
    "shard_0.db",
    "shard_1.db",
    "shard_2.db",
    "shard_3.db",
    "shardlite.json",
  ]);
  if (Deno.build.os !== "windows") {
    assert.equal((Deno.statSync(`${dir.path}/shard_0.db`).mode ?? 0) & 0o777, 0o600);
  }
  await assert.rejects(manager.count("users"), PoolClosedError);
  await Deno.rename(`${dir.path}/shard_0.db`, `${dir.path}/moved.db`);
  await Deno.remove(`${dir.path}/moved.db`);
});

Deno.test("module shutdown() closes every manager and pool of the process", async () => {
  await using dir = await tempDir();
  const a = await seeded(`${dir.path}/a`);
  const b = await seeded(`${dir.path}/b`, 2);
  await shutdown();
  await assert.rejects(a.count("users"), PoolClosedError);
  await assert.rejects(b.count("users"), PoolClosedError);
  await Deno.remove(`${dir.path}/a`, { recursive: true });
});

Deno.test("two managers on one directory in one process share it", async () => {
  await using dir = await tempDir();
  await using a = await seeded(dir.path);
  await using b = new ShardManager({ numShards: 4, dbDir: dir.path });
  await b.insert("users", { id: 40, name: "Zed" });
  assert.equal(await a.count("users"), 7);
});

// --- equivalence with one unsharded database ---------------------------------------------

const rowArb = fc.record({
  age: fc.oneof(
    fc.integer({ min: -5, max: 5 }),
    fc.constant(null),
    fc.double({ noNaN: true, min: -10, max: 10 }),
  ),
  name: fc.oneof(fc.string({ maxLength: 3 }), fc.constant(null)),
  team: fc.constantFrom("red", "blue", "green"),
});

const queryArb = fc.record({
  orderColumn: fc.constantFrom("age", "name", "team"),
  direction: fc.constantFrom("asc" as const, "desc" as const),
  limit: fc.option(fc.integer({ min: 0, max: 8 }), { nil: undefined }),
  offset: fc.option(fc.integer({ min: 0, max: 8 }), { nil: undefined }),
  team: fc.option(fc.constantFrom("red", "blue", "green"), { nil: undefined }),
});

Deno.test("property: cross-shard answers equal one unsharded SQLite database", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 5 }),
      fc.array(rowArb, { maxLength: 40 }),
      fc.array(queryArb, { minLength: 1, maxLength: 4 }),
      async (numShards, rawRows, queries) => {
        await using dir = await tempDir();
        await using manager = new ShardManager({ numShards, dbDir: dir.path });
        await manager.createTable("t", {
          id: "INTEGER PRIMARY KEY",
          age: "",
          name: "TEXT",
          team: "TEXT",
        }, {
          shardKey: "id",
        });
        const rows = rawRows.map((r, i) => ({ id: i + 1, ...r }));
        if (rows.length > 0) await manager.insertMany("t", rows);
        const single = new Database();
        try {
          single.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, age, name TEXT, team TEXT)");
          for (const r of rows) {
            single.run("INSERT INTO t VALUES (?, ?, ?, ?)", [r.id, r.age, r.name, r.team]);
          }
          for (const q of queries) {
            const where = q.team === undefined ? undefined : { team: q.team };
            const whereSql = q.team === undefined ? "" : " WHERE team = ?";
            const whereParams: SqlValue[] = q.team === undefined ? [] : [q.team];
            // A total order: the primary key breaks ties.
            const sharded = await manager.select("t", {
              where,
              orderBy: [{ column: q.orderColumn, direction: q.direction }, "id"],
              limit: q.limit,
              offset: q.offset,
            });
            const limitSql = q.limit === undefined && q.offset === undefined
              ? ""
              : ` LIMIT ${q.limit ?? -1} OFFSET ${q.offset ?? 0}`;
            const expected = single.all(
              `SELECT * FROM t${whereSql} ORDER BY ${q.orderColumn} ${q.direction}, id${limitSql}`,
              whereParams,
            ) as Row[];
            assert.deepEqual(sharded, expected);
            const agg = await manager.aggregate(
              "t",
              ["COUNT(*)", "COUNT(age)", "SUM(age)", "AVG(age)", "MIN(age)", "MAX(name)"],
              { where },
            );
            const one = single.get(
              `SELECT COUNT(*) AS c, COUNT(age) AS ca, SUM(age) AS s, AVG(age) AS a, MIN(age) AS mi, MAX(name) AS mx FROM t${whereSql}`,
              whereParams,
            ) as Row;
            assert.equal(agg["COUNT(*)"], one.c);
            assert.equal(agg["COUNT(age)"], one.ca);
            assert.equal(agg["MIN(age)"], one.mi);
            assert.equal(agg["MAX(name)"], one.mx);
            // Float sums may differ in the last bits: addition order differs per shard.
            for (const [got, want] of [[agg["SUM(age)"], one.s], [agg["AVG(age)"], one.a]]) {
              if (want === null) assert.equal(got, null);
              else {assert.ok(
                  Math.abs(Number(got) - Number(want)) <=
                    1e-9 * Math.max(1, Math.abs(Number(want))),
                  `${got} vs ${want}`,
                );}
            }
          }
        } finally {
          single.close();
        }
      },
    ),
    { numRuns: 30 },
  );
});

Deno.test("strategies are pluggable and the map records their parameters", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ dbDir: dir.path, strategy: new ModuloStrategy(3) });
  await manager.createTable("t", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
  await manager.insertMany("t", [{ id: 3 }, { id: 4 }, { id: 5 }]);
  assert.equal(manager.getShardId(4), 1);
  assert.deepEqual(await manager.query(4, "SELECT id FROM t"), [{ id: 4 }]);
  assert.deepEqual(manager.getShardInfo().strategy, { type: "modulo", numShards: 3 });
  assert.throws(
    () => new ShardManager({ dbDir: dir.path, numShards: 2, strategy: new HashStrategy(3) }),
    RangeError,
  );
  assert.throws(() => new ShardManager({ dbDir: "", numShards: 2 }), TypeError);
  assert.throws(() => new ShardManager({ dbDir: dir.path }), /numShards is required/);
});

Deno.test("a fresh manager over an existing directory routes by key from its first call", async () => {
  await using dir = await tempDir();
  const first = await seeded(dir.path);
  await first.shutdown();
  await using again = new ShardManager({ numShards: 4, dbDir: dir.path });
  // The first operation must load the map (and the shard-key column) before routing.
  assert.equal(await again.delete("users", { key: 1 }), 1);
  assert.equal(await again.count("users"), 5);
  const fresh = new ShardManager({ numShards: 4, dbDir: dir.path });
  await again.shutdown();
  assert.deepEqual((await fresh.select("users", { key: 2 })).map((r) => r.id), [2]);
  await fresh.shutdown();
});

Deno.test("the caller's own error inside transaction(key) comes back unchanged", async () => {
  await using dir = await tempDir();
  await using manager = await seeded(dir.path);
  class Overdraft extends Error {}
  await assert.rejects(
    manager.transaction(1, () => {
      throw new Overdraft("not enough money");
    }),
    Overdraft,
  );
});

Deno.test("getShardStats counts rows and includes the WAL in the size", async () => {
  await using dir = await tempDir();
  await using manager = await seeded(dir.path, 2);
  const stats = await manager.getShardStats();
  assert.equal(stats.reduce((n, s) => n + (s.rows.users ?? 0), 0), 6);
  for (const s of stats) {
    const wal = Deno.statSync(`${s.path}-wal`).size;
    assert.equal(s.sizeBytes, Deno.statSync(s.path).size + wal);
    assert.ok(s.pool !== null && s.pool.totalLeases > 0);
  }
});

Deno.test("table names ignore case as SQLite does; a table's shard key cannot change", async () => {
  await using dir = await tempDir();
  await using manager = await seeded(dir.path);
  // "USERS" is the table "users": key routing still filters by its shard key.
  assert.deepEqual((await manager.select("USERS", { key: 3 })).map((r) => r.id), [3]);
  assert.equal(manager.getShardKeyColumn("Users"), "id");
  await manager.createTable("Users", USERS, { shardKey: "id" }); // same table, same key: no-op
  assert.deepEqual(Object.keys(manager.getShardInfo().tables), ["users"]);
  await assert.rejects(
    manager.createTable("users", USERS, { shardKey: "name" }),
    (e: unknown) =>
      e instanceof InvalidQueryError && /users already exists with shard key id/.test(e.message),
  );
  assert.equal(manager.getShardKeyColumn("users"), "id");
  await manager.dropTable("USERS");
  assert.deepEqual(manager.getShardInfo().tables, {});
});
