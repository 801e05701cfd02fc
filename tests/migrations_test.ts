/** Versioned migrations: order, reruns, failures on one shard, history checks, reshards, CLI. */

import assert from "node:assert/strict";
import {
  InvalidMigrationError,
  InvalidQueryError,
  type Migration,
  MigrationError,
  MigrationHistoryError,
  ReshardError,
  ShardManager,
  ShardOperationError,
} from "../mod.ts";
import { runCliCaptured } from "../src/cli/main.ts";
import { tempDir } from "./helpers.ts";

const BOOKKEEPING = "_shardlite_migrations";

/** The ids recorded on every shard, read straight from the files' bookkeeping tables. */
async function recorded(manager: ShardManager): Promise<string[][]> {
  const out: string[][] = [];
  for (const shardId of manager.strategy.getAllShardIds()) {
    out.push(
      await manager.getPool(shardId).withConnection(async (c) => {
        const table = await c.get("SELECT 1 AS x FROM sqlite_schema WHERE name = ?", [
          BOOKKEEPING,
        ]);
        if (table === undefined) return [];
        const rows = await c.all(`SELECT id FROM ${BOOKKEEPING} ORDER BY position`);
        return rows.map((r) => String(r.id));
      }),
    );
  }
  return out;
}

async function columns(manager: ShardManager, shardId: number, table: string): Promise<string[]> {
  return await manager.getPool(shardId).withConnection(async (c) =>
    (await c.all(`SELECT name FROM pragma_table_info(?)`, [table])).map((r) => String(r.name))
  );
}

async function hasTable(manager: ShardManager, shardId: number, name: string): Promise<boolean> {
  return await manager.getPool(shardId).withConnection(async (c) =>
    (await c.get("SELECT 1 AS x FROM sqlite_schema WHERE name = ?", [name])) !== undefined
  );
}

function caught(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(() => assert.fail("expected a rejection"), (e: unknown) => e);
}

Deno.test("migrate applies every migration in order on every shard, SQL and functions", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  const seen: number[] = [];
  const migrations: Migration[] = [
    { id: "0001_users", up: "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)" },
    {
      id: "0002_email",
      up: "ALTER TABLE users ADD COLUMN email TEXT; CREATE INDEX users_email ON users (email)",
    },
    {
      id: "0003_seed",
      up: async (conn, shardId) => {
        seen.push(shardId);
        assert.equal(conn.inTransaction, true);
        await conn.run("INSERT INTO users (id, name, email) VALUES (?, ?, ?)", [
          -1 - shardId,
          "system",
          `s${shardId}@x`,
        ]);
      },
    },
  ];
  const report = await manager.migrate(migrations);
  assert.equal(report.version, "0003_seed");
  assert.equal(report.applied, 12);
  assert.deepEqual(
    report.shards.map((s) => [s.shardId, s.applied]),
    [0, 1, 2, 3].map((id) => [id, ["0001_users", "0002_email", "0003_seed"]]),
  );
  assert.deepEqual(seen.sort(), [0, 1, 2, 3]);
  assert.deepEqual(
    await recorded(manager),
    Array(4).fill(["0001_users", "0002_email", "0003_seed"]),
  );
  const status = await manager.migrationStatus();
  for (const shard of status) {
    assert.equal(shard.version, "0003_seed");
    assert.equal(shard.path, manager.shardPath(shard.shardId));
    assert.deepEqual(shard.applied.map((m) => m.position), [1, 2, 3]);
    assert.match(shard.applied[0]?.checksum ?? "", /^[0-9a-f]{64}$/);
    assert.equal(shard.applied[2]?.checksum, null); // a function has none
    assert.ok(!Number.isNaN(Date.parse(shard.applied[0]?.appliedAt ?? "")));
    assert.deepEqual(await columns(manager, shard.shardId, "users"), ["id", "name", "email"]);
    assert.ok(await hasTable(manager, shard.shardId, "users_email"));
  }
  // The function's rows are on their shards.
  const rows = await manager.queryAll("SELECT id FROM users", [], { orderBy: "id" });
  assert.deepEqual(rows.map((r) => r.id), [-4, -3, -2, -1]);
});

Deno.test("a rerun applies nothing; an appended migration runs once per shard", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 3, dbDir: dir.path, maxConcurrentShards: 1 });
  let calls = 0;
  const migrations: Migration[] = [
    { id: "a", up: "CREATE TABLE t (x)" },
    {
      id: "b",
      up: async (conn) => {
        calls++;
        await conn.run("INSERT INTO t VALUES (1)");
      },
    },
  ];
  assert.equal((await manager.migrate(migrations)).applied, 6);
  assert.equal(calls, 3);
  const again = await manager.migrate(migrations);
  assert.equal(again.applied, 0);
  assert.deepEqual(again.shards.map((s) => s.applied), [[], [], []]);
  assert.equal(calls, 3, "up functions are not called again");
  assert.equal(await manager.queryAll(`SELECT * FROM ${BOOKKEEPING}`).then((r) => r.length), 6);
  assert.equal((await manager.queryAll("SELECT x FROM t")).length, 3);

  const more = await manager.migrate([...migrations, { id: "c", up: "ALTER TABLE t ADD y" }]);
  assert.equal(more.applied, 3);
  assert.equal(more.version, "c");
  assert.deepEqual(await recorded(manager), Array(3).fill(["a", "b", "c"]));
  assert.equal(calls, 3);
});

Deno.test("a migration failing on one shard: typed error, that shard rolled back, the others ahead; a rerun completes it", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  const migrations: Migration[] = [
    { id: "0001_users", up: "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)" },
    { id: "0002_audit", up: "ALTER TABLE users ADD COLUMN note TEXT; CREATE TABLE audit (x)" },
    { id: "0003_later", up: "CREATE TABLE later (x)" },
  ];
  await manager.migrate(migrations.slice(0, 1));
  // Shard 1 already has an object the migration creates: its second statement fails there.
  await manager.getPool(1).withConnection((c) => c.exec("CREATE TABLE audit (y)"));

  const error = await caught(manager.migrate(migrations));
  assert.ok(error instanceof MigrationError, String(error));
  assert.equal(error.migrationId, "0002_audit");
  assert.equal(error.shardId, 1);
  assert.equal(error.path, manager.shardPath(1));
  assert.equal(error.shardVersion, "0001_users");
  assert.deepEqual(error.failedShards, [1]);
  assert.deepEqual(error.migratedShards, [0, 2, 3]);
  assert.match(String((error.cause as Error).message), /audit already exists/);
  assert.match(error.message, /migration "0002_audit" failed on shard 1 /);
  assert.match(error.message, /shards 0, 2, 3 are already at "0002_audit"/);
  assert.match(error.message, /call migrate\(\) again/);

  // Shard 1 is at its previous version, without the ALTER that ran before the failure.
  assert.deepEqual(await recorded(manager), [
    ["0001_users", "0002_audit"],
    ["0001_users"],
    ["0001_users", "0002_audit"],
    ["0001_users", "0002_audit"],
  ]);
  assert.deepEqual(await columns(manager, 1, "users"), ["id", "name"]);
  assert.deepEqual(await columns(manager, 0, "users"), ["id", "name", "note"]);
  // Nothing after the failing migration started anywhere.
  for (const id of [0, 1, 2, 3]) assert.equal(await hasTable(manager, id, "later"), false);

  // Fix the cause; the rerun applies only what each shard lacks.
  await manager.getPool(1).withConnection((c) => c.exec("DROP TABLE audit"));
  const report = await manager.migrate(migrations);
  assert.deepEqual(report.shards.map((s) => s.applied), [
    ["0003_later"],
    ["0002_audit", "0003_later"],
    ["0003_later"],
    ["0003_later"],
  ]);
  assert.deepEqual(await recorded(manager), Array(4).fill(migrations.map((m) => m.id)));
  assert.deepEqual(await columns(manager, 1, "users"), ["id", "name", "note"]);
});

Deno.test("a function migration throwing on one shard: its error is the cause, the shard stays behind", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 3, dbDir: dir.path });
  const boom = new Error("no disk space on shard 1 (simulated)");
  let failing = true;
  const migrations: Migration[] = [
    { id: "first", up: "CREATE TABLE t (x)" },
    {
      id: "second",
      up: async (conn, shardId) => {
        await conn.run("INSERT INTO t VALUES (?)", [shardId]);
        if (shardId === 1 && failing) throw boom;
      },
    },
  ];
  const error = await caught(manager.migrate(migrations));
  assert.ok(error instanceof MigrationError);
  assert.equal(error.cause, boom);
  assert.equal(error.shardId, 1);
  assert.equal(error.migrationId, "second");
  const status = await manager.migrationStatus();
  assert.deepEqual(status.map((s) => s.version), ["second", "first", "second"]);
  // The row the function wrote before throwing was rolled back with it.
  assert.deepEqual(
    await manager.getPool(1).withConnection((c) => c.all("SELECT x FROM t")),
    [],
  );
  failing = false;
  const report = await manager.migrate(migrations);
  assert.equal(report.applied, 1);
  assert.deepEqual(
    (await manager.migrationStatus()).map((s) => s.version),
    Array(3).fill("second"),
  );
});

Deno.test("a malformed list is refused before anything is written", async () => {
  await using dir = await tempDir();
  const dbDir = `${dir.path}/data`;
  await using manager = new ShardManager({ numShards: 2, dbDir });
  const ok: Migration = { id: "ok", up: "CREATE TABLE ok (x)" };
  const cases: [unknown, string, RegExp][] = [
    [{ id: "x", up: "SELECT 1" }, "migrations", /expected an array/],
    [[ok, null], "migrations[1]", /expected an object/],
    [[ok, { up: "SELECT 1" }], "migrations[1].id", /non-empty string/],
    [[ok, { id: "  ", up: "SELECT 1" }], "migrations[1].id", /non-empty string/],
    [[ok, { id: 7, up: "SELECT 1" }], "migrations[1].id", /got number/],
    [[ok, { id: "ok", up: "SELECT 1" }], "migrations[1].id", /also the id of migrations\[0\]/],
    [[ok, { id: "n", up: 42 }], "migrations[1].up", /SQL text or a function/],
    [[ok, { id: "n" }], "migrations[1].up", /SQL text or a function/],
    [[ok, { id: "n", up: "" }], "migrations[1].up", /no statement/],
    [[ok, { id: "n", up: " -- only a comment;\n ; " }], "migrations[1].up", /no statement/],
    [[ok, { id: "n", up: "BEGIN; CREATE TABLE n (x); COMMIT" }], "migrations[1].up", /BEGIN/],
    [[ok, { id: "n", up: "CREATE TABLE n (x);\nCOMMIT;" }], "migrations[1].up", /COMMIT/],
    [[ok, { id: "n", up: "CREATE TABLE n (x); ROLLBACK" }], "migrations[1].up", /ROLLBACK/],
    [[ok, { id: "n", up: "CREATE TABLE n (x); end transaction" }], "migrations[1].up", /END/],
  ];
  for (const [list, at, reason] of cases) {
    const error = await caught(manager.migrate(list as Migration[]));
    assert.ok(error instanceof InvalidMigrationError, `${at}: ${error}`);
    assert.equal(error.at, at);
    assert.match(error.reason, reason);
    assert.match(error.message, /Nothing was applied/);
  }
  // Not even the directory was created: no shard, no bookkeeping table.
  await assert.rejects(Deno.stat(dbDir), Deno.errors.NotFound);

  // Savepoints, and BEGIN/END of a trigger body (with a CASE inside), are fine.
  await manager.migrate([
    ok,
    {
      id: "trigger",
      up: "CREATE TABLE log (v); SAVEPOINT s; CREATE TRIGGER ok_log AFTER INSERT ON ok BEGIN " +
        "INSERT INTO log VALUES (CASE WHEN new.x > 0 THEN 'pos' ELSE 'neg' END); END; RELEASE s; " +
        "INSERT INTO ok VALUES (1) -- ; COMMIT in a comment\n; SELECT 'BEGIN; COMMIT'",
    },
  ]);
  assert.deepEqual(await recorded(manager), [["ok", "trigger"], ["ok", "trigger"]]);
  assert.equal((await manager.queryAll("SELECT v FROM log")).length, 2);
});

Deno.test("a history that disagrees with the list is refused naming the shard and the first difference", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 3, dbDir: dir.path });
  const a = { id: "a", up: "CREATE TABLE a (x)" };
  const b = { id: "b", up: "CREATE TABLE b (x)" };
  const c = { id: "c", up: "CREATE TABLE c (x)" };
  const d = { id: "d", up: "CREATE TABLE d (x)" };
  await manager.migrate([a, b, c]);
  const before = await recorded(manager);

  const cases: [
    Migration[],
    MigrationHistoryError["reason"],
    number,
    string,
    string | undefined,
  ][] = [
    [[a, c, b, d], "order", 2, "b", "c"], // reordered
    [[a, { ...b, id: "b2" }, c, d], "order", 2, "b", "b2"], // renamed
    [[a, c, d], "order", 2, "b", "c"], // removed from the middle
    [[a, b], "missing", 3, "c", undefined], // an older list
    [[a, { id: "b", up: "CREATE TABLE b (x, y)" }, c, d], "changed", 2, "b", "b"], // edited SQL
  ];
  for (const [list, reason, position, appliedId, givenId] of cases) {
    const error = await caught(manager.migrate(list));
    assert.ok(error instanceof MigrationHistoryError, String(error));
    assert.equal(error.reason, reason);
    assert.equal(error.shardId, 0);
    assert.equal(error.path, manager.shardPath(0));
    assert.equal(error.position, position);
    assert.equal(error.appliedId, appliedId);
    assert.equal(error.givenId, givenId);
    assert.match(error.message, /Nothing was applied/);
    assert.deepEqual(await recorded(manager), before);
  }
  // An only cosmetic edit passes when checksums are not verified; the SQL is not rerun.
  const report = await manager.migrate([a, { id: "b", up: "CREATE TABLE  b (x)" }, c, d], {
    verifyChecksums: false,
  });
  assert.equal(report.applied, 3);
  assert.deepEqual(await recorded(manager), Array(3).fill(["a", "b", "c", "d"]));
});

Deno.test("two migrate() calls at once apply each migration once per shard", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 3, dbDir: dir.path });
  let calls = 0;
  const migrations: Migration[] = [
    { id: "t", up: "CREATE TABLE t (x)" },
    {
      id: "fill",
      up: async (conn) => {
        calls++;
        await conn.run("INSERT INTO t VALUES (1)");
      },
    },
  ];
  const [one, two] = await Promise.all([manager.migrate(migrations), manager.migrate(migrations)]);
  assert.equal(one.applied + two.applied, 6);
  assert.equal(calls, 3);
  assert.deepEqual(await recorded(manager), Array(3).fill(["t", "fill"]));
});

Deno.test("an up function that ends its own transaction is a failure, not recorded", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 2, dbDir: dir.path });
  const error = await caught(manager.migrate([
    { id: "t", up: "CREATE TABLE t (x)" },
    { id: "sneaky", up: (conn) => conn.commit() },
  ]));
  assert.ok(error instanceof MigrationError);
  assert.equal(error.migrationId, "sneaky");
  assert.match((error.cause as Error).message, /ended its own transaction/);
  assert.deepEqual(await recorded(manager), [["t"], ["t"]]);
});

Deno.test("an aborted migrate stops before the next migration; a rerun goes on", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 2, dbDir: dir.path });
  const controller = new AbortController();
  const reason = new Error("stop");
  const error = await caught(manager.migrate([
    {
      id: "one",
      up: async (conn) => {
        await conn.exec("CREATE TABLE one (x)");
        controller.abort(reason);
      },
    },
    { id: "two", up: "CREATE TABLE two (x)" },
  ], { signal: controller.signal }));
  assert.equal(error, reason);
  assert.deepEqual(await recorded(manager), [["one"], ["one"]]);
});

Deno.test("migrate refuses while a reshard is pending; after resuming it runs", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 2, dbDir: dir.path });
  await manager.createTable("users", { id: "INTEGER PRIMARY KEY", name: "TEXT" }, {
    shardKey: "id",
  });
  await manager.insertMany(
    "users",
    Array.from({ length: 2_000 }, (_, i) => ({ id: i, name: "u" })),
  );
  await manager.migrate([{ id: "m1", up: "CREATE INDEX users_name ON users (name)" }]);
  const controller = new AbortController();
  await caught(manager.reshard(3, {
    batchSize: 100,
    signal: controller.signal,
    onProgress: () => controller.abort(new Error("interrupted")),
  }));
  assert.notEqual(manager.pendingReshard, null);

  const list = [
    { id: "m1", up: "CREATE INDEX users_name ON users (name)" },
    { id: "m2", up: "ALTER TABLE users ADD COLUMN email TEXT" },
  ];
  const error = await caught(manager.migrate(list));
  assert.ok(error instanceof ReshardError, String(error));
  assert.match(error.message, /migrate\(\) refuses to run while the reshard .* is unfinished/);
  assert.match(error.message, /manager\.reshard\(3\)/);
  assert.match(error.message, /abortReshard\(\)/);
  // Nothing ran, on the old shards nor on the new one.
  for (const id of [0, 1, 2]) {
    assert.ok(!(await columns(manager, id, "users")).includes("email"), `shard ${id}`);
  }

  await manager.reshard(3);
  assert.equal((await manager.migrate(list)).applied, 3);
  assert.deepEqual(await recorded(manager), Array(3).fill(["m1", "m2"]));
});

Deno.test("a shard created by a reshard gets shard 0's history: later migrations run once everywhere", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 2, dbDir: dir.path });
  await manager.createTable("users", { id: "INTEGER PRIMARY KEY", name: "TEXT" }, {
    shardKey: "id",
  });
  await manager.insertMany("users", Array.from({ length: 300 }, (_, i) => ({ id: i, name: "u" })));
  const calls: number[] = [];
  const migrations: Migration[] = [
    { id: "0001_email", up: "ALTER TABLE users ADD COLUMN email TEXT" },
    { id: "0002_index", up: "CREATE INDEX users_email ON users (email)" },
    {
      id: "0003_function",
      up: (_conn, shardId) => {
        calls.push(shardId);
      },
    },
  ];
  await manager.migrate(migrations);
  await manager.reshard(3);
  assert.equal(manager.numShards, 3);
  // The new shard got the schema and the history, without running anything.
  assert.deepEqual(await recorded(manager), Array(3).fill(migrations.map((m) => m.id)));
  assert.deepEqual(await columns(manager, 2, "users"), ["id", "name", "email"]);
  assert.ok(await hasTable(manager, 2, "users_email"));

  const more: Migration[] = [...migrations, { id: "0004_age", up: "ALTER TABLE users ADD age" }];
  const report = await manager.migrate(more);
  assert.equal(report.applied, 3);
  assert.deepEqual(calls.sort(), [0, 1]);
  for (const id of [0, 1, 2]) {
    const ids = (await recorded(manager))[id] as string[];
    assert.deepEqual(ids, more.map((m) => m.id), `shard ${id}`);
    assert.deepEqual(await columns(manager, id, "users"), ["id", "name", "email", "age"]);
  }
  const status = await manager.migrationStatus();
  // Copied rows keep their checksums.
  assert.equal(status[2]?.applied[0]?.checksum, status[0]?.applied[0]?.checksum);
  assert.equal(await manager.count("users"), 300);
});

Deno.test("a reshard refuses shards at different migration versions, and names them", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 2, dbDir: dir.path });
  await manager.createTable("users", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
  const migrations: Migration[] = [
    { id: "a", up: "ALTER TABLE users ADD name TEXT" },
    {
      id: "b",
      up: (conn, shardId) => {
        if (shardId === 1) throw new Error("not on 1");
        return conn.exec("ALTER TABLE users ADD email TEXT");
      },
    },
  ];
  await assert.rejects(manager.migrate(migrations), MigrationError);
  const error = await caught(manager.reshard(3));
  assert.ok(error instanceof ReshardError);
  assert.match(
    error.message,
    /different migration versions \(shard 0 at "b" \(2 applied\); shard 1 at "a" \(1 applied\)\)/,
  );
  assert.equal(manager.pendingReshard, null);
  assert.equal(manager.numShards, 2);
  assert.equal(await hasTable(manager, 0, "users"), true);
});

Deno.test("shardlite check reports shards at different migration versions, in text and JSON", async () => {
  await using dir = await tempDir();
  const dbDir = `${dir.path}/data`;
  let fail = true;
  const migrations: Migration[] = [
    { id: "0001_t", up: "CREATE TABLE t (x)" },
    {
      id: "0002_u",
      up: async (conn, shardId) => {
        if (shardId === 2 && fail) throw new Error("shard 2 refuses");
        await conn.exec("CREATE TABLE u (x)");
      },
    },
  ];
  {
    await using manager = new ShardManager({ numShards: 3, dbDir });
    await assert.rejects(manager.migrate(migrations), MigrationError);
  }
  const text = await runCliCaptured(["check", dbDir]);
  assert.equal(text.code, 1, text.stdout + text.stderr);
  assert.match(
    text.stdout,
    /problem: the shards are at different migration versions: shards 0, 1 at "0002_u" \(2 applied\); shard 2 at "0001_t" \(1 applied\)/,
  );
  const json = await runCliCaptured(["check", dbDir, "--json"]);
  assert.equal(json.code, 1);
  const doc = JSON.parse(json.stdout);
  assert.equal(doc.ok, false);
  assert.deepEqual(doc.problems.map((p: { kind: string }) => p.kind), ["migration-versions"]);
  assert.deepEqual(
    doc.shards.map((s: { migrations: unknown }) => s.migrations),
    [
      { applied: 2, version: "0002_u" },
      { applied: 2, version: "0002_u" },
      { applied: 1, version: "0001_t" },
    ],
  );

  fail = false;
  {
    await using manager = new ShardManager({ numShards: 3, dbDir });
    await manager.migrate(migrations);
  }
  const ok = await runCliCaptured(["check", dbDir]);
  assert.equal(ok.code, 0, ok.stdout);
  assert.match(ok.stdout, /^ok: /);
});

Deno.test("applySchema is one transaction per shard: a failing statement leaves no shard changed", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 3, dbDir: dir.path });
  const error = await caught(manager.applySchema("CREATE TABLE a(x); CREATE TABLE b("));
  assert.ok(error instanceof ShardOperationError, String(error));
  for (const id of [0, 1, 2]) assert.equal(await hasTable(manager, id, "a"), false, `shard ${id}`);

  const control = await caught(manager.applySchema("BEGIN; CREATE TABLE a(x); COMMIT"));
  assert.ok(control instanceof InvalidQueryError);
  assert.match(control.message, /BEGIN statement at offset 0/);

  await manager.applySchema("CREATE TABLE a(x); CREATE INDEX a_x ON a (x)");
  for (const id of [0, 1, 2]) assert.equal(await hasTable(manager, id, "a_x"), true);
});
