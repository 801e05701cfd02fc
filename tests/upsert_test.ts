// Upserts, insertMany's onConflict and RETURNING: what each call writes and returns, the
// typed errors for bad targets and columns (nothing written), all or nothing across shards
// (also when a crash cuts a batch short: the replay applies the same conflict handling), and
// a property test against one unsharded SQLite database. tests/conformance/native_test.ts
// runs every test here again on nativeDriver.
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  BatchPendingError,
  InvalidIdentifierError,
  InvalidQueryError,
  type Row,
  type RunResult,
  ShardManager,
  ShardOperationError,
  type SqlValue,
  TableNotFoundError,
  wasmDriver,
} from "../mod.ts";
import { applyPart, decodeBatch, encodeBatch } from "../src/routing/batches.ts";
import { kids, roles, setParent, setUpTrap } from "./batch_trap.ts";
import { spawnFixture, tempDir } from "./helpers.ts";

const USERS = { id: "INTEGER PRIMARY KEY", name: "TEXT", visits: "INTEGER NOT NULL DEFAULT 0" };

async function withUsers(
  fn: (manager: ShardManager) => Promise<void>,
  numShards = 4,
): Promise<void> {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards, dbDir: dir.path });
  await manager.createTable("users", USERS, { shardKey: "id" });
  await fn(manager);
}

/** The rejection of `promise` (fails when it resolves). */
async function refusal(promise: Promise<unknown>): Promise<unknown> {
  return await promise.then(
    (value) => assert.fail(`expected a rejection, got ${JSON.stringify(value)}`),
    (error: unknown) => error,
  );
}

function isOption(error: unknown, option: string): boolean {
  return error instanceof InvalidQueryError && error.option === option;
}

const byId = (a: Row, b: Row) => Number(a.id) - Number(b.id);

/** Ids on distinct shards, `count` of them, from 1 up. */
function spreadIds(manager: ShardManager, count: number): number[] {
  const seen = new Set<number>();
  const ids: number[] = [];
  for (let id = 1; ids.length < count; id++) {
    if (seen.has(manager.getShardId(id))) continue;
    seen.add(manager.getShardId(id));
    ids.push(id);
  }
  return ids;
}

Deno.test("upsert inserts a new row, then updates it on the primary key", async () => {
  await withUsers(async (manager) => {
    const first: RunResult = await manager.upsert("users", { id: 7, name: "Ada", visits: 1 });
    assert.equal(first.changes, 1);
    const second = await manager.upsert("users", { id: "7", name: "Ada L.", visits: 2 });
    assert.equal(second.changes, 1);
    assert.deepEqual(await manager.select("users", { key: 7 }), [
      { id: 7, name: "Ada L.", visits: 2 },
    ]);
    assert.equal(await manager.count("users"), 1);
    // On the key's shard, like insert.
    const [onShard] = await manager.query(7, "SELECT count(*) AS n FROM users WHERE id = 7");
    assert.equal(onShard?.n, 1);
  });
});

Deno.test("upsert: default update is every given column outside the target; update picks columns", async () => {
  await withUsers(async (manager) => {
    await manager.insert("users", { id: 1, name: "Ada", visits: 5 });
    // Only `name` given: visits stays.
    await manager.upsert("users", { id: 1, name: "Bo" });
    assert.deepEqual(await manager.select("users", { key: 1 }), [{ id: 1, name: "Bo", visits: 5 }]);
    // Explicit update: name is given but not updated.
    await manager.upsert("users", { id: 1, name: "Cy", visits: 6 }, { update: ["visits"] });
    assert.deepEqual(await manager.select("users", { key: 1 }), [{ id: 1, name: "Bo", visits: 6 }]);
    // A column not in the row takes the new row's value: its default.
    await manager.upsert("users", { id: 1, name: "Di" }, { update: ["name", "visits"] });
    assert.deepEqual(await manager.select("users", { key: 1 }), [{ id: 1, name: "Di", visits: 0 }]);
    // Nothing to update (only the key given, or update: []): the row stays, DO NOTHING.
    assert.equal((await manager.upsert("users", { id: 1 })).changes, 0);
    assert.equal((await manager.upsert("users", { id: 1, name: "Ed" }, { update: [] })).changes, 0);
    assert.deepEqual(
      await manager.upsert("users", { id: 1, name: "Ed" }, {
        update: [],
        returning: ["id"],
      }),
      [],
    );
    assert.deepEqual(await manager.select("users", { key: 1 }), [{ id: 1, name: "Di", visits: 0 }]);
    // ...but a new key is still inserted.
    assert.equal((await manager.upsert("users", { id: 2 })).changes, 1);
    assert.equal(await manager.count("users"), 2);
  });
});

Deno.test("upsert on an explicit UNIQUE target; the shard key is never in the default update", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  await manager.applySchema(
    "CREATE TABLE IF NOT EXISTS members (id INTEGER PRIMARY KEY, org INTEGER NOT NULL, " +
      "email TEXT NOT NULL, name TEXT, UNIQUE (org, email))",
  );
  await manager.createTable("members", {
    id: "INTEGER PRIMARY KEY",
    org: "INTEGER NOT NULL",
    email: "TEXT NOT NULL",
    name: "TEXT",
  }, { shardKey: "org" });
  const conflict = ["org", "email"];
  await manager.upsert("members", { org: 3, email: "a@x", name: "Ada" }, { conflict });
  const [updated] = await manager.upsert("members", { org: 3, email: "a@x", name: "Ada L." }, {
    conflict,
    returning: ["id", "org", "name"],
  });
  assert.equal(updated?.name, "Ada L.");
  assert.equal(await manager.count("members"), 1);
  // The same email in another org is another row.
  await manager.upsert("members", { org: 4, email: "a@x", name: "Other" }, { conflict });
  assert.equal(await manager.count("members"), 2);
  // The primary key (id) is the default target; the shard key org is not updated by default.
  const id = updated?.id as number;
  await manager.upsert("members", { id, org: 3, email: "b@x", name: "Ada B." });
  assert.deepEqual(
    await manager.select("members", { key: 3, columns: ["id", "org", "email", "name"] }),
    [{ id, org: 3, email: "b@x", name: "Ada B." }],
  );
  // Naming the shard key in update is refused, before anything is written.
  const error = await refusal(
    manager.upsert("members", { id, org: 3, email: "c@x" }, { update: ["org", "email"] }),
  );
  assert.ok(isOption(error, "update"), String(error));
  assert.match(String(error), /org is the shard key of members/);
  assert.equal((await manager.select("members", { key: 3 }))[0]?.email, "b@x");
});

Deno.test("upsert: a conflict target that is not unique, or columns that do not exist, are typed errors; nothing is written", async () => {
  await withUsers(async (manager) => {
    await manager.insert("users", { id: 1, name: "Ada" });
    const notUnique = await refusal(
      manager.upsert("users", { id: 2, name: "Ada" }, { conflict: ["name"] }),
    );
    assert.ok(isOption(notUnique, "conflict"), String(notUnique));
    assert.match(String(notUnique), /not the column set of a PRIMARY KEY or UNIQUE constraint/);
    assert.ok(
      (notUnique as Error).cause instanceof ShardOperationError,
      "SQLite's refusal is the cause",
    );
    const noColumn = await refusal(
      manager.upsert("users", { id: 2, name: "Ada" }, { conflict: ["nope"] }),
    );
    assert.ok(isOption(noColumn, "conflict"), String(noColumn));
    const noUpdate = await refusal(
      manager.upsert("users", { id: 1, name: "Bo" }, { update: ["nope"] }),
    );
    assert.ok(isOption(noUpdate, "update"), String(noUpdate));
    assert.ok(
      isOption(await refusal(manager.upsert("users", { id: 2 }, { conflict: [] })), "conflict"),
    );
    await assert.rejects(
      manager.upsert("users", { id: 2 }, { conflict: ['id"; DROP TABLE users; --'] }),
      InvalidIdentifierError,
    );
    await assert.rejects(
      manager.upsert("users", { id: 2 }, { update: ["a b"] }),
      InvalidIdentifierError,
    );
    // The shard key, as every key, is refused in update.
    assert.ok(
      isOption(await refusal(manager.upsert("users", { id: 1 }, { update: ["ID"] })), "update"),
    );
    assert.deepEqual(await manager.select("users", { orderBy: "id" }), [
      { id: 1, name: "Ada", visits: 0 },
    ]);
  });
});

Deno.test("upsert on a table without a primary key needs a target", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 2, dbDir: dir.path });
  await manager.createTable("events", { tenant: "INTEGER", kind: "TEXT UNIQUE", n: "INTEGER" }, {
    shardKey: "tenant",
  });
  const error = await refusal(manager.upsert("events", { tenant: 1, kind: "a", n: 1 }));
  assert.ok(isOption(error, "conflict"), String(error));
  assert.match(String(error), /no PRIMARY KEY/);
  await manager.upsert("events", { tenant: 1, kind: "a", n: 1 }, { conflict: ["kind"] });
  await manager.upsert("events", { tenant: 1, kind: "a", n: 2 }, { conflict: ["kind"] });
  assert.deepEqual(await manager.select("events"), [{ tenant: 1, kind: "a", n: 2 }]);
  // A table no shard has.
  await assert.rejects(manager.upsert("nothing", { tenant: 1 }, { key: 1 }), TableNotFoundError);
});

Deno.test("insertMany onConflict: ignore skips duplicates, update updates them, across 4 shards", async () => {
  await withUsers(async (manager) => {
    const ids = Array.from({ length: 40 }, (_, i) => i + 1);
    await manager.insertMany("users", ids.map((id) => ({ id, name: "old", visits: 1 })));
    const more = Array.from({ length: 60 }, (_, i) => ({ id: i + 1, name: "new", visits: 2 }));
    // 40 collide and are skipped, 20 are new.
    assert.equal(await manager.insertMany("users", more, { onConflict: "ignore" }), 20);
    assert.equal(await manager.count("users", { name: "old" }), 40);
    assert.equal(await manager.count("users", { name: "new" }), 20);
    // Plain insertMany (the default) still fails on a duplicate and writes nothing.
    await assert.rejects(
      manager.insertMany("users", [{ id: 1000, name: "x" }, { id: 1, name: "x" }]),
      ShardOperationError,
    );
    assert.equal(await manager.count("users"), 60);
    // update: 60 updated (name only: visits is not given), 10 inserted.
    const again = Array.from({ length: 70 }, (_, i) => ({ id: i + 1, name: "again" }));
    assert.equal(await manager.insertMany("users", again, { onConflict: "update" }), 70);
    assert.equal(await manager.count("users", { name: "again" }), 70);
    assert.equal(await manager.count("users", { visits: 1 }), 40);
    // Explicit update columns, and keys given as an option.
    await manager.insertMany("users", [{ id: 1, name: "kept", visits: 9 }], {
      onConflict: "update",
      update: ["visits"],
      keys: [1],
    });
    assert.deepEqual(await manager.select("users", { key: 1 }), [{
      id: 1,
      name: "again",
      visits: 9,
    }]);
    // The old third argument, a list of keys, still works.
    assert.equal(await manager.insertMany("users", [{ id: 500 }], [500]), 1);
  });
});

Deno.test("insertMany onConflict update: of two rows with one key in one call, the later wins", async () => {
  await withUsers(async (manager) => {
    await manager.insert("users", { id: 3, name: "first", visits: 1 });
    const rows = [
      { id: 3, name: "a", visits: 2 },
      { id: 4, name: "b", visits: 1 },
      { id: 3, name: "c" }, // another shape: another run, still after the first on its shard
      { id: 4, name: "d", visits: 7 },
    ];
    const returned = await manager.insertMany("users", rows, {
      onConflict: "update",
      returning: ["id", "name", "visits"],
    });
    assert.deepEqual(returned.filter((r) => r.id === 3), [
      { id: 3, name: "a", visits: 2 },
      { id: 3, name: "c", visits: 2 },
    ]);
    assert.deepEqual(await manager.select("users", { orderBy: "id" }), [
      { id: 3, name: "c", visits: 2 },
      { id: 4, name: "d", visits: 7 },
    ]);
    // ignore keeps the first of the call's rows with one key.
    await manager.insertMany("users", [{ id: 9, name: "x" }, { id: 9, name: "y" }], {
      onConflict: "ignore",
    });
    assert.equal((await manager.select("users", { key: 9 }))[0]?.name, "x");
  });
});

Deno.test("insertMany onConflict is all or nothing: a NOT NULL or CHECK failure on one shard writes nothing anywhere", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  await manager.applySchema(
    "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, " +
      "qty INTEGER CHECK (qty >= 0))",
  );
  await manager.createTable("items", { id: "INTEGER PRIMARY KEY", name: "TEXT", qty: "INTEGER" }, {
    shardKey: "id",
  });
  const ids = spreadIds(manager, 4);
  await manager.insertMany("items", ids.map((id) => ({ id, name: "old", qty: 1 })));
  const before = await manager.select("items", { orderBy: "id" });
  const [a, b, c, d] = ids as [number, number, number, number];
  for (const mode of ["ignore", "update"] as const) {
    for (
      const bad of [{ id: d, name: null, qty: 1 }, { id: d + 1000, name: "x", qty: -1 }]
    ) {
      const rows = [
        { id: a, name: "new", qty: 2 },
        { id: b, name: "new", qty: 2 },
        { id: c + 1000, name: "new", qty: 2 },
        bad,
      ];
      const error = await refusal(manager.insertMany("items", rows, { onConflict: mode }));
      assert.ok(
        error instanceof ShardOperationError && !(error instanceof BatchPendingError),
        String(error),
      );
      assert.match(String(error), /NOT NULL constraint failed|CHECK constraint failed/);
      assert.deepEqual(await manager.select("items", { orderBy: "id" }), before, `${mode}`);
    }
  }
});

Deno.test("insertMany: a shard still writing when another shard fails is rolled back too", async () => {
  // The failing shard fails at its first statement; the other has many runs (the row shape
  // alternates) and was still writing. None of its rows may survive the rollback.
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 2, dbDir: dir.path });
  await manager.createTable("t", {
    id: "INTEGER PRIMARY KEY",
    b: "TEXT",
    n: "INTEGER NOT NULL DEFAULT 0",
  }, { shardKey: "id" });
  const ids = Array.from({ length: 200 }, (_, i) => i + 1);
  const failing = ids.find((id) => manager.getShardId(id) === 1)!;
  const busy = ids.filter((id) => manager.getShardId(id) === 0)
    .map((id, i) => (i % 2 === 0 ? { id } : { id, b: "x" }));
  const rows = [{ id: failing, n: null }, ...busy];
  for (const options of [undefined, { onConflict: "update" as const }]) {
    await assert.rejects(manager.insertMany("t", rows, options), /NOT NULL constraint failed/);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(await manager.count("t"), 0, JSON.stringify(options));
  }
});

Deno.test("insertMany onConflict: bad options are refused before anything is written", async () => {
  await withUsers(async (manager) => {
    const rows = [{ id: 1, name: "a" }, { id: 2, name: "b" }];
    const cases: [unknown, string][] = [
      [{ onConflict: "replace" }, "onConflict"],
      [{ conflict: ["id"] }, "conflict"],
      [{ update: ["name"] }, "update"],
      [{ onConflict: "ignore", update: ["name"] }, "update"],
      [{ onConflict: "update", update: ["id"] }, "update"],
      [{ onConflict: "update", conflict: [] }, "conflict"],
      [{ onConflict: "update", returning: [] }, "returning"],
      [{ onConflict: "update", conflict: ["name"] }, "conflict"],
      [{ onConflict: "ignore", conflict: ["name"] }, "conflict"],
      [{ onConflict: "update", returning: ["nope"] }, "returning"],
    ];
    for (const [options, option] of cases) {
      const error = await refusal(manager.insertMany("users", rows, options as never));
      assert.ok(isOption(error, option), `${JSON.stringify(options)}: ${error}`);
    }
    assert.equal(await manager.count("users"), 0);
  });
});

Deno.test("returning on insert, upsert, update and delete: the affected rows", async () => {
  await withUsers(async (manager) => {
    const inserted: Row[] = await manager.insert("users", { id: 1, name: "Ada" }, {
      returning: ["id", "visits"],
    });
    assert.deepEqual(inserted, [{ id: 1, visits: 0 }]);
    // A key given in the options, as the third argument would be.
    assert.deepEqual(await manager.insert("users", { name: "Bo" }, { key: 2, returning: ["id"] }), [
      { id: 2 },
    ]);
    const plain: RunResult = await manager.insert("users", { id: 3, name: "Cy" });
    assert.equal(plain.changes, 1);
    assert.deepEqual(
      await manager.upsert("users", { id: 3, name: "Cyd" }, { returning: ["name"] }),
      [
        { name: "Cyd" },
      ],
    );
    await manager.insertMany(
      "users",
      Array.from({ length: 20 }, (_, i) => ({ id: 10 + i, name: "m" })),
    );
    // update and delete with a key: that shard only.
    const one: Row[] = await manager.update("users", { visits: 4 }, {
      key: 10,
      returning: ["id", "visits"],
    });
    assert.deepEqual(one, [{ id: 10, visits: 4 }]);
    // Without a key: every shard's rows, merged after the commit.
    const many = await manager.update("users", { visits: 5 }, {
      where: { name: "m" },
      returning: ["id", "visits"],
    });
    assert.deepEqual(
      many.sort(byId),
      Array.from({ length: 20 }, (_, i) => ({ id: 10 + i, visits: 5 })),
    );
    const count: number = await manager.update("users", { visits: 6 }, { where: { name: "m" } });
    assert.equal(count, 20);
    assert.deepEqual(
      await manager.update("users", { visits: 6 }, { key: 999, returning: ["id"] }),
      [],
    );
    const deleted = await manager.delete("users", {
      where: { id: { gte: 20 } },
      returning: ["id"],
    });
    assert.deepEqual(
      deleted.sort(byId).map((r) => r.id),
      Array.from({ length: 10 }, (_, i) => 20 + i),
    );
    assert.deepEqual(await manager.delete("users", { key: 1, returning: ["name"] }), [{
      name: "Ada",
    }]);
    assert.equal(await manager.delete("users", { key: 2 }), 1);
    assert.equal(await manager.count("users"), 11);
  });
});

Deno.test("returning: an empty list, a bad name or a missing column is refused, and nothing is written", async () => {
  await withUsers(async (manager) => {
    await manager.insertMany(
      "users",
      Array.from({ length: 12 }, (_, i) => ({ id: i + 1, name: "a" })),
    );
    const before = await manager.select("users", { orderBy: "id" });
    const calls: [string, () => Promise<unknown>][] = [
      ["insert", () => manager.insert("users", { id: 50 }, { returning: ["nope"] })],
      ["upsert", () => manager.upsert("users", { id: 1, name: "b" }, { returning: ["nope"] })],
      ["update key", () => manager.update("users", { name: "b" }, { key: 1, returning: ["nope"] })],
      [
        "update all",
        () =>
          manager.update("users", { name: "b" }, { allShards: true, returning: ["id", "nope"] }),
      ],
      [
        "delete all",
        () => manager.delete("users", { where: { id: { gt: 0 } }, returning: ["nope"] }),
      ],
      [
        "insertMany",
        () =>
          manager.insertMany("users", [{ id: 60 }, { id: 61 }, { id: 62 }], {
            returning: ["nope"],
          }),
      ],
    ];
    for (const [what, call] of calls) {
      const error = await refusal(call());
      assert.ok(isOption(error, "returning"), `${what}: ${error}`);
      assert.match(String(error), /users has no column nope/);
    }
    for (const returning of [[], "id", [1]]) {
      await assert.rejects(
        manager.update("users", { name: "b" }, { key: 1, returning: returning as never }),
        (e: unknown) => isOption(e, "returning") || e instanceof InvalidIdentifierError,
      );
    }
    await assert.rejects(
      manager.delete("users", { key: 1, returning: ["x; DROP TABLE users"] }),
      InvalidIdentifierError,
    );
    assert.deepEqual(await manager.select("users", { orderBy: "id" }), before);
  });
});

Deno.test("returning types: Row[] with returning, the count or RunResult without", () => {
  // Compile-time only: these must type-check as written (deno check runs on tests/).
  const typed = async (manager: ShardManager) => {
    const rows: Row[] = await manager.update("t", { a: 1 }, { where: { a: 2 }, returning: ["id"] });
    const count: number = await manager.update("t", { a: 1 }, { where: { a: 2 } });
    const deleted: Row[] = await manager.delete("t", { key: 1, returning: ["id"] });
    const gone: number = await manager.delete("t", { key: 1 });
    const inserted: Row[] = await manager.insert("t", { id: 1 }, { returning: ["id"] });
    const result: RunResult = await manager.insert("t", { id: 1 }, 1);
    const upserted: Row[] = await manager.upsert("t", { id: 1 }, { returning: ["id"] });
    const upsert: RunResult = await manager.upsert("t", { id: 1 });
    const many: Row[] = await manager.insertMany("t", [], {
      onConflict: "ignore",
      returning: ["id"],
    });
    const n: number = await manager.insertMany("t", [], { onConflict: "update" });
    return [rows, count, deleted, gone, inserted, result, upserted, upsert, many, n];
  };
  assert.equal(typeof typed, "function");
});

Deno.test("redo records: a conflict mode makes format 2; format 1 records (no conflict) replay as plain inserts", async () => {
  const plain = encodeBatch(
    "t",
    [{ shard: 1, runs: [{ columns: ["id"], values: [[1, 2]] }] }],
    false,
  );
  assert.equal(JSON.parse(new TextDecoder().decode(plain)).format, 1);
  const upsert = encodeBatch("t", [{
    shard: 1,
    runs: [{ columns: ["id", "n"], values: [[1, 5]], conflict: { target: ["id"], update: ["n"] } }],
  }], false);
  assert.equal(JSON.parse(new TextDecoder().decode(upsert)).format, 2);
  assert.deepEqual(decodeBatch(upsert).parts[0]?.runs?.[0]?.conflict, {
    target: ["id"],
    update: ["n"],
  });
  // A record as older versions wrote it.
  const old = new TextEncoder().encode(JSON.stringify({
    format: 1,
    table: "t",
    parts: [{ shard: 0, runs: [{ columns: ["id", "n"], values: [[1, 1, 2, 2]] }] }],
  }));
  await using dir = await tempDir();
  const { ConnectionPool } = await import("../mod.ts");
  await using pool = new ConnectionPool(`${dir.path}/s.db`);
  await pool.withConnection(async (conn) => {
    await conn.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)");
    assert.equal(await applyPart(conn, "t", decodeBatch(old).parts[0]!), 2);
    await assert.rejects(applyPart(conn, "t", decodeBatch(old).parts[0]!), /UNIQUE/);
    assert.equal(await applyPart(conn, "t", decodeBatch(upsert).parts[0]!), 1);
    assert.deepEqual(await conn.all("SELECT * FROM t ORDER BY id"), [{ id: 1, n: 5 }, {
      id: 2,
      n: 2,
    }]);
  });
});

/** Kids 1..count on every shard as "old" rows (parent NULL: no foreign key to satisfy). */
async function oldKids(manager: ShardManager, count: number): Promise<void> {
  await manager.insertMany("kids", kids(count).map((k) => ({ ...k, parent: null, note: "old" })));
}

Deno.test("an onConflict update batch past its commit point: BatchPendingError, and reopening replays it as an update", async () => {
  await using dir = await tempDir();
  const rows = kids(60).map((k) => ({ ...k, note: "new" }));
  let victim = -1;
  let onVictim = 0;
  {
    await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
    const { coordinator, smallest, perShard } = roles(manager, rows);
    assert.notEqual(coordinator, smallest);
    victim = smallest;
    onVictim = perShard[victim]!;
    await setUpTrap(manager, victim); // parent 1 everywhere but on the victim
    await oldKids(manager, 60);
    const error = await refusal(manager.insertMany("kids", rows, { onConflict: "update" }));
    assert.ok(error instanceof BatchPendingError, String(error));
    assert.equal(error.shardId, victim);
    assert.equal(await manager.count("kids", { note: "new" }), 60 - onVictim);
    assert.equal(await manager.count("kids"), 60);
    await setParent(manager, victim, true);
  }
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  await manager.ready();
  // A plain INSERT would fail on the victim's existing rows and stay pending.
  assert.deepEqual(manager.batchRecovery?.pending, []);
  assert.deepEqual(
    manager.batchRecovery?.replayed.map((r) => [r.shard, r.rows]),
    [[victim, onVictim]],
  );
  assert.deepEqual(
    await manager.select("kids", { orderBy: "id" }),
    rows.map((k) => ({ id: k.id, parent: 1, note: "new" })),
  );
});

Deno.test("an onConflict ignore batch past its commit point: the replay skips the same duplicates", async () => {
  await using dir = await tempDir();
  const rows = kids(90).map((k) => ({ ...k, note: "new" }));
  let victim = -1;
  {
    await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
    // The victim must get new rows (61..90), whose parent it lacks, and not coordinate.
    const { coordinator } = roles(manager, rows);
    victim = roles(manager, rows.slice(60)).perShard.findIndex((n, shard) =>
      n > 0 && shard !== coordinator
    );
    assert.ok(victim >= 0);
    await setUpTrap(manager, victim);
    await oldKids(manager, 60);
    const error = await refusal(manager.insertMany("kids", rows, { onConflict: "ignore" }));
    assert.ok(error instanceof BatchPendingError, String(error));
    await setParent(manager, victim, true);
  }
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  await manager.ready();
  assert.deepEqual(manager.batchRecovery?.pending, []);
  assert.equal(manager.batchRecovery?.replayed.length, 1);
  const stored = await manager.select("kids", { orderBy: "id" });
  assert.deepEqual(stored.map((k) => k.note), [
    ...Array(60).fill("old"),
    ...Array(30).fill("new"),
  ]);
});

Deno.test("kill -9 past an onConflict update batch's commit point: the next open replays it as an update, once", async () => {
  await using dir = await tempDir("shardlite-upsert-crash-");
  const child = spawnFixture("upsert_crasher.ts", [dir.path]);
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let said = "";
  while (!said.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    said += value;
  }
  child.kill("SIGKILL");
  const status = await child.status;
  await child.stdin.close().catch(() => {});
  await reader.cancel().catch(() => {});
  const [word, batch, , shard, onShard, total] = said.trim().split(" ");
  assert.equal(word, "PENDING", `the child said ${JSON.stringify(said)}:\n${await stderr}`);
  assert.equal(status.signal, "SIGKILL");
  const victim = Number(shard);
  {
    // Still refused by the shard: pending; the other shards hold the update.
    await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
    await manager.ready();
    assert.deepEqual(manager.batchRecovery?.pending.map((p) => [p.batch, p.shard]), [[
      batch,
      victim,
    ]]);
    assert.equal(await manager.count("kids", { note: "old" }), Number(onShard));
    await setParent(manager, victim, true);
  }
  {
    await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
    await manager.ready();
    assert.deepEqual(manager.batchRecovery?.replayed, [{
      batch,
      shard: victim,
      rows: Number(onShard),
    }]);
    const stored = await manager.select("kids", { orderBy: "id" });
    assert.deepEqual(
      stored,
      Array.from({ length: Number(total) }, (_, i) => ({ id: i + 1, parent: 1, note: "new" })),
    );
  }
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  await manager.ready();
  assert.equal(manager.batchRecovery?.batches, 0);
  assert.equal(await manager.count("kids"), Number(total));
});

// ---------------------------------------------------------------------------------------
// Property: a sequence of upserts and insertMany(onConflict) on 4 shards leaves the same
// rows, returns the same rows and counts, and fails in the same places as the same
// statements on one unsharded SQLite database (each insertMany one transaction there).

const COLUMNS = ["a", "b", "c"] as const;
type Input = { id: number; a?: SqlValue; b?: SqlValue; c?: SqlValue };
type Op =
  | { kind: "upsert"; row: Input; update: string[] | undefined; returning: boolean }
  | {
    kind: "many";
    rows: Input[];
    mode: "ignore" | "update" | undefined;
    update: string[] | undefined;
    returning: boolean;
  };

const rowArb: fc.Arbitrary<Input> = fc.record({
  id: fc.integer({ min: 1, max: 12 }),
  a: fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constant(null)),
  b: fc.constantFrom<SqlValue>("x", "y", null, 7n),
  // NULL breaks c's NOT NULL: that call fails, in both.
  c: fc.oneof({ weight: 12, arbitrary: fc.integer({ min: 0, max: 3 }) }, {
    weight: 1,
    arbitrary: fc.constant(null),
  }),
}, { requiredKeys: ["id"] });
const updateArb = fc.option(fc.subarray([...COLUMNS]), { nil: undefined });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant("upsert" as const),
    row: rowArb,
    update: updateArb,
    returning: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant("many" as const),
    rows: fc.array(rowArb, { maxLength: 10 }),
    mode: fc.constantFrom("ignore" as const, "update" as const, undefined),
    update: updateArb,
    returning: fc.boolean(),
  }).map((op) => (op.mode === "update" ? op : { ...op, update: undefined })),
);

type Reference = ReturnType<typeof wasmDriver.open>;

/** The reference's statement for one row, written out here, not by the library. */
function referenceSql(row: Input, mode: "ignore" | "update" | undefined, update?: string[]) {
  const columns = Object.keys(row);
  let sql = `INSERT INTO t (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`;
  if (mode === "ignore") sql += " ON CONFLICT DO NOTHING";
  if (mode === "update") {
    const set = update ?? columns.filter((c) => c !== "id");
    sql += set.length === 0
      ? " ON CONFLICT (id) DO NOTHING"
      : ` ON CONFLICT (id) DO UPDATE SET ${set.map((c) => `${c} = excluded.${c}`).join(", ")}`;
  }
  return { sql, params: columns.map((c) => row[c as keyof Input] as SqlValue) };
}

/** Runs `op` on the reference: its result, or "error" (the transaction rolled back). */
function onReference(db: Reference, op: Op): number | Row[] | "error" {
  const returning = op.returning ? " RETURNING id, a, b, c" : "";
  if (op.kind === "upsert") {
    const { sql, params } = referenceSql(op.row, "update", op.update);
    try {
      return op.returning ? db.all(sql + returning, params) : db.run(sql, params).changes;
    } catch {
      return "error";
    }
  }
  db.exec("BEGIN");
  try {
    const rows: Row[] = [];
    let changes = 0;
    for (const row of op.rows) {
      const { sql, params } = referenceSql(row, op.mode, op.update);
      if (op.returning) rows.push(...db.all(sql + returning, params));
      else changes += db.run(sql, params).changes;
    }
    db.exec("COMMIT");
    return op.returning ? rows : op.mode === undefined ? op.rows.length : changes;
  } catch {
    db.exec("ROLLBACK");
    return "error";
  }
}

async function onShards(manager: ShardManager, op: Op): Promise<number | Row[] | "error"> {
  const returning = op.returning ? { returning: ["id", "a", "b", "c"] } : {};
  try {
    if (op.kind === "upsert") {
      const options = { ...(op.update === undefined ? {} : { update: op.update }), ...returning };
      const result = await manager.upsert("t", op.row, options);
      return Array.isArray(result) ? result : result.changes;
    }
    return await manager.insertMany("t", op.rows, {
      ...(op.mode === undefined ? {} : { onConflict: op.mode }),
      ...(op.update === undefined ? {} : { update: op.update }),
      ...returning,
    });
  } catch (error) {
    if (error instanceof InvalidQueryError) throw error; // a bug, never a refusal of the data
    return "error";
  }
}

/** Rows returned, ordered by id; rows of one id keep their order (the order applied). */
function sorted(result: number | Row[] | "error") {
  return Array.isArray(result) ? [...result].sort(byId) : result;
}

Deno.test("property: upserts and insertMany(onConflict) on 4 shards equal one unsharded database", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  const schema = "id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c INTEGER NOT NULL DEFAULT 0";
  await manager.createTable("t", {
    id: "INTEGER PRIMARY KEY",
    a: "INTEGER",
    b: "TEXT",
    c: "INTEGER NOT NULL DEFAULT 0",
  }, {
    shardKey: "id",
  });
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 8 }), async (ops) => {
      await manager.delete("t", { allShards: true });
      const db = wasmDriver.open(":memory:", { create: true, statementCacheSize: 16 });
      try {
        db.exec(`CREATE TABLE t (${schema})`);
        for (const [i, op] of ops.entries()) {
          const want = sorted(onReference(db, op));
          const got = sorted(await onShards(manager, op));
          assert.deepEqual(
            got,
            want,
            `op ${i}: ${JSON.stringify(op, (_, v) => typeof v === "bigint" ? `${v}n` : v)}`,
          );
        }
        assert.deepEqual(
          await manager.select("t", { orderBy: "id" }),
          db.all("SELECT * FROM t ORDER BY id"),
        );
      } finally {
        db.close();
      }
    }),
    { numRuns: 150 },
  );
});
