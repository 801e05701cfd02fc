/**
 * One stored value, one shard: keys route by what SQLite stores in the shard-key column.
 * Each test here fails on the routing by JavaScript type that came before.
 */

import assert from "node:assert/strict";
import {
  HashStrategy,
  InvalidQueryError,
  InvalidShardKeyError,
  RangeStrategy,
  ShardManager,
  TableNotFoundError,
} from "../mod.ts";
import { tempDir } from "./helpers.ts";

/** Rows of `table` on every shard, with the shard each is on. */
async function everywhere(manager: ShardManager, table: string) {
  const found: { shard: number; row: Record<string, unknown> }[] = [];
  for (const shard of manager.strategy.getAllShardIds()) {
    const rows = await manager.getPool(shard).withConnection((c) =>
      c.all(`SELECT * FROM "${table}" ORDER BY rowid`)
    );
    for (const row of rows) found.push({ shard, row });
  }
  return found;
}

async function users(dir: string): Promise<ShardManager> {
  const manager = new ShardManager({ numShards: 4, dbDir: dir });
  await manager.createTable("users", { id: "INTEGER PRIMARY KEY", name: "TEXT" }, {
    shardKey: "id",
  });
  return manager;
}

Deno.test("an integer key and its decimal string are one key: no duplicate primary key", async () => {
  await using dir = await tempDir();
  await using manager = await users(dir.path);
  // Keys whose old (JavaScript-type) routing sent "7" elsewhere than 7.
  const old = new HashStrategy(4);
  const key = [7, 8, 9, 10, 11, 12].find((k) => old.getShardId(k) !== old.getShardId(String(k)))!;
  await manager.insert("users", { id: key, name: "num" });
  await assert.rejects(
    manager.insert("users", { id: String(key), name: "str" }),
    /UNIQUE constraint failed: users\.id/,
  );
  await manager.insert("users", { id: "100", name: "hundred" });
  assert.deepEqual(await manager.select("users", { where: { id: key } }), [
    { id: key, name: "num" },
  ]);
  for (const spelling of [key, String(key), BigInt(key), ` ${key} `, `+${key}`, `00${key}`]) {
    assert.deepEqual(await manager.select("users", { key: spelling }), [{ id: key, name: "num" }]);
    assert.equal(await manager.count("users", undefined, { key: spelling }), 1);
  }
  // Stored as the integer: the row's value was replaced by its stored form.
  assert.deepEqual(await manager.select("users", { key: 100 }), [{ id: 100, name: "hundred" }]);
  const rows = await everywhere(manager, "users");
  assert.equal(rows.length, 2);
  for (const { shard, row } of rows) assert.equal(shard, manager.getShardId(row.id as number));
  assert.equal(await manager.update("users", { name: "x" }, { key: `${key}` }), 1);
  assert.equal(await manager.delete("users", { key: BigInt(key) }), 1);
});

Deno.test("a key the column cannot store is refused, naming what was expected; nothing is written", async () => {
  await using dir = await tempDir();
  await using manager = await users(dir.path);
  for (const bad of ["abc", "7.5", 7.5, "", "0x10", "1e30"]) {
    const error = await manager.insert("users", { id: bad, name: "x" }).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(error instanceof InvalidShardKeyError, `${JSON.stringify(bad)}: ${error}`);
    assert.equal(error.table, "users");
    assert.equal(error.column, "id");
    assert.match(error.message, /users\.id \(INTEGER PRIMARY KEY\)/);
    assert.match(error.message, /Nothing was written/);
  }
  const error = await manager.insert("users", { id: "abc" }).catch((e) => e);
  assert.match(error.message, /expected an integer/);
  await assert.rejects(
    manager.insertMany("users", [{ id: 1, name: "a" }, { id: "abc", name: "b" }]),
    InvalidShardKeyError,
  );
  await assert.rejects(manager.select("users", { key: "abc" }), InvalidShardKeyError);
  assert.equal((await everywhere(manager, "users")).length, 0);
});

Deno.test("TEXT keys: a number is its decimal text; other spellings stay distinct", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  await manager.createTable("docs", { slug: "TEXT PRIMARY KEY", body: "TEXT" }, {
    shardKey: "slug",
  });
  await manager.insert("docs", { slug: 42, body: "number" });
  await assert.rejects(manager.insert("docs", { slug: "42", body: "text" }), /UNIQUE/);
  await manager.insert("docs", { slug: "042", body: "zero" }); // another text value
  assert.deepEqual(await manager.select("docs", { key: "42" }), [{ slug: "42", body: "number" }]);
  assert.deepEqual(await manager.select("docs", { key: 42n }), [{ slug: "42", body: "number" }]);
  assert.deepEqual(await manager.select("docs", { key: "042" }), [{ slug: "042", body: "zero" }]);
  await assert.rejects(manager.insert("docs", { slug: 4.5 }), /pass the text you mean/);
  const rows = await everywhere(manager, "docs");
  assert.deepEqual(rows.map((r) => r.row.slug).sort(), ["042", "42"]);
  for (const { shard, row } of rows) {
    assert.equal(shard, manager.getShardId(row.slug as string, "docs"));
  }
});

Deno.test("calls naming no table route a number, its decimal string and a bigint alike", async () => {
  await using dir = await tempDir();
  await using manager = await users(dir.path);
  await manager.createTable("docs", { slug: "TEXT PRIMARY KEY" }, { shardKey: "slug" });
  for (const n of [0, 1, 7, -12, 2 ** 40, Number.MAX_SAFE_INTEGER]) {
    const shard = manager.getShardId(n);
    for (const spelling of [String(n), BigInt(n)]) {
      assert.equal(manager.getShardId(spelling), shard);
    }
    assert.equal(manager.getShardId(String(n), "users"), shard);
    assert.equal(manager.getShardId(n, "docs"), shard);
  }
  const big = 2n ** 62n + 5n;
  assert.equal(manager.getShardId(String(big)), manager.getShardId(big));
  await manager.insert("users", { id: 77, name: "Ann" });
  await manager.insert("docs", { slug: 77 });
  for (const key of [77, "77", 77n]) {
    assert.deepEqual(await manager.query(key, "SELECT name FROM users WHERE id = 77"), [
      { name: "Ann" },
    ]);
    assert.deepEqual(await manager.query(key, "SELECT slug FROM docs"), [{ slug: "77" }]);
    const name = await manager.transaction(
      key,
      async (c) => (await c.get("SELECT name FROM users WHERE id = 77"))?.name,
    );
    assert.equal(name, "Ann");
  }
});

Deno.test("a range strategy over integers routes decimal strings of its integer keys", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ dbDir: dir.path, strategy: new RangeStrategy([100]) });
  await manager.createTable("t", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
  await manager.insert("t", { id: "150" });
  assert.equal(manager.getShardId("150"), 1);
  assert.deepEqual(await manager.select("t", { key: 150 }), [{ id: 150 }]);
});

Deno.test("key: undefined or null is refused by every key-taking call, nothing written", async () => {
  await using dir = await tempDir();
  await using manager = await users(dir.path);
  await manager.insertMany("users", [{ id: 1, name: "a" }, { id: 2, name: "b" }]);
  const calls: [string, () => Promise<unknown>][] = [
    ["select", () => manager.select("users", { key: undefined as never })],
    ["select null", () => manager.select("users", { key: null as never })],
    ["count", () => manager.count("users", undefined, { key: undefined as never })],
    ["aggregate", () => manager.aggregate("users", "COUNT(*)", { key: undefined as never })],
    [
      "aggregateBy",
      () => manager.aggregateBy("users", "name", "COUNT(*)", { key: undefined as never }),
    ],
    ["update", () => manager.update("users", { name: "z" }, { key: undefined as never })],
    ["delete", () => manager.delete("users", { key: undefined as never })],
    ["delete null", () => manager.delete("users", { key: null as never })],
    ["query", () => manager.query(undefined as never, "SELECT 1")],
    ["transaction", () => manager.transaction(null as never, () => 1)],
  ];
  for (const [name, call] of calls) {
    const error = await call().then(() => null, (e: unknown) => e);
    assert.ok(
      error instanceof InvalidQueryError || error instanceof InvalidShardKeyError,
      `${name}: ${error}`,
    );
    if (error instanceof InvalidQueryError) {
      assert.equal(error.option, "key", name);
      assert.match(error.message, /leave the key option out to reach every shard/, name);
    }
  }
  assert.deepEqual((await manager.select("users", { orderBy: "id" })).map((r) => r.name), [
    "a",
    "b",
  ]);
});

Deno.test("key plus a where on the shard-key column: AND-ed", async () => {
  await using dir = await tempDir();
  await using manager = await users(dir.path);
  await manager.insertMany("users", [{ id: 1, name: "a" }, { id: 2, name: "b" }]);
  assert.deepEqual(await manager.select("users", { key: 1, where: { id: 1 } }), [
    { id: 1, name: "a" },
  ]);
  assert.deepEqual(await manager.select("users", { key: 1, where: { id: "1" } }), [
    { id: 1, name: "a" },
  ]);
  assert.deepEqual(await manager.select("users", { key: 1, where: { id: 2 } }), []);
  assert.deepEqual(await manager.select("users", { key: 1, where: { id: { gte: 1 } } }), [
    { id: 1, name: "a" },
  ]);
  assert.deepEqual(await manager.select("users", { key: 1, where: { id: { gt: 1 } } }), []);
  assert.deepEqual(await manager.select("users", { key: 1, where: { id: { eq: 2 } } }), []);
  assert.equal(await manager.count("users", { id: 2, name: "b" }, { key: 2 }), 1);
  assert.equal(await manager.update("users", { name: "x" }, { key: 1, where: { id: 2 } }), 0);
  assert.equal(await manager.delete("users", { key: 2, where: { id: 2 } }), 1);
});

Deno.test("insert into a table that does not exist says so and how to create it", async () => {
  await using dir = await tempDir();
  await using manager = await users(dir.path);
  for (
    const call of [
      () => manager.insert("userz", { id: 1, name: "x" }),
      () => manager.insert("userz", { id: 1, name: "x" }, 1),
      () => manager.insertMany("userz", [{ id: 1 }]),
      () => manager.select("userz", { key: 1 }),
    ]
  ) {
    const error = await call().then(() => null, (e: unknown) => e);
    assert.ok(error instanceof TableNotFoundError, String(error));
    assert.equal(error.table, "userz");
    assert.match(error.message, /table userz does not exist/);
    assert.match(error.message, /manager\.createTable\("userz"/);
  }
});

Deno.test("insert with a key and no shard-key value stores the key in the row", async () => {
  await using dir = await tempDir();
  await using manager = await users(dir.path);
  await manager.insert("users", { name: "keyed" }, "31");
  assert.deepEqual(await manager.select("users", { key: 31 }), [{ id: 31, name: "keyed" }]);
  await assert.rejects(manager.insert("users", { id: 32, name: "x" }, 33), /differs from the row/);
});

Deno.test("a shard key that is not the primary key is indexed on every shard", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 3, dbDir: dir.path });
  await manager.createTable("events", {
    id: "INTEGER PRIMARY KEY",
    user_id: "INTEGER NOT NULL",
    kind: "TEXT",
  }, { shardKey: "user_id" });
  await manager.createTable("users", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
  for (const shard of manager.strategy.getAllShardIds()) {
    const indexes = await manager.getPool(shard).withConnection((c) =>
      c.all("SELECT name, tbl_name FROM sqlite_schema WHERE type = 'index' ORDER BY name")
    );
    assert.deepEqual(indexes, [{ name: "shardlite_key_events", tbl_name: "events" }]);
    const plan = await manager.getPool(shard).withConnection((c) =>
      c.all("EXPLAIN QUERY PLAN SELECT * FROM events WHERE user_id = ?", [5])
    );
    assert.match(String(plan.map((p) => p.detail)), /USING INDEX shardlite_key_events/);
  }
});

Deno.test("queryAll with orderBy or limit accepts SQL ending in a comment", async () => {
  await using dir = await tempDir();
  await using manager = await users(dir.path);
  await manager.insertMany("users", [{ id: 1, name: "a" }, { id: 2, name: "b" }]);
  for (const sql of ["SELECT id FROM users -- all", "SELECT id FROM users; -- all"]) {
    assert.deepEqual(await manager.queryAll(sql, [], { orderBy: "id", limit: 5 }), [
      { id: 1 },
      { id: 2 },
    ]);
  }
});
