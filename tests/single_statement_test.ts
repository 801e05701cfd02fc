import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ConnectionPool,
  MultipleStatementsError,
  type PooledConnection,
  ShardManager,
} from "../mod.ts";
import {
  assertSingleStatement,
  findSecondStatement,
  statementEnd,
} from "../src/sql/single_statement.ts";
import { tempDir } from "./helpers.ts";

const HOSTILE = "SELECT 1; DROP TABLE users";

async function usersTableExists(conn: PooledConnection): Promise<boolean> {
  const row = await conn.get(
    "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'users'",
  );
  return row?.n === 1;
}

async function withUsers(fn: (conn: PooledConnection) => Promise<void>): Promise<void> {
  await using dir = await tempDir();
  await using pool = new ConnectionPool(`${dir.path}/s.db`);
  await pool.withConnection(async (conn) => {
    await conn.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)");
    await conn.run("INSERT INTO users VALUES (1, 'Ada')");
    await fn(conn);
  });
}

Deno.test("run, runMany, all, get and execute refuse two statements and run neither", async () => {
  await withUsers(async (conn) => {
    const calls: [string, () => Promise<unknown>][] = [
      ["conn.run()", () => conn.run(HOSTILE)],
      ["conn.runMany()", () => conn.runMany(HOSTILE, [[], []])],
      ["conn.all()", () => conn.all(HOSTILE)],
      ["conn.get()", () => conn.get(HOSTILE)],
      ["conn.execute()", () => conn.execute(HOSTILE)],
    ];
    for (const [call, fn] of calls) {
      // Twice: the second answer comes from the verdict cache.
      for (let round = 0; round < 2; round++) {
        const error = await fn().then(() => undefined, (e: unknown) => e);
        assert.ok(error instanceof MultipleStatementsError, `${call}: ${error}`);
        assert.equal(error.name, "MultipleStatementsError");
        assert.equal(error.call, call);
        assert.equal(error.offset, 9);
        assert.equal(error.next, "DROP TABLE users");
        assert.equal(
          error.message,
          `${call} runs one statement, but the SQL has more after offset 9 ("DROP TABLE users"); ` +
            `run scripts with exec(). Nothing ran.`,
        );
        assert.ok(await usersTableExists(conn), `${call} dropped the table`);
      }
    }
    // The first statement did not run either.
    await assert.rejects(
      conn.run("INSERT INTO users VALUES (2, 'Bo'); DELETE FROM users"),
      MultipleStatementsError,
    );
    assert.deepEqual(await conn.all("SELECT id FROM users"), [{ id: 1 }]);
    // exec() still runs scripts.
    await conn.exec("INSERT INTO users VALUES (3, 'Cy'); INSERT INTO users VALUES (4, 'Di');");
    assert.equal((await conn.get("SELECT count(*) AS n FROM users"))?.n, 3);
  });
});

Deno.test("trailing semicolons, whitespace and comments, and semicolons inside tokens are accepted", async () => {
  await withUsers(async (conn) => {
    const accepted: [string, Record<string, unknown>][] = [
      ["SELECT 1 AS x;", { x: 1 }],
      ["SELECT 1 AS x;;", { x: 1 }],
      ["SELECT 1 AS x ; ; \n", { x: 1 }],
      ["  \n\tSELECT 1 AS x  \r\n\t ", { x: 1 }],
      ["SELECT 1 AS x; -- done", { x: 1 }],
      ["SELECT 1 AS x -- ; DROP TABLE users\n", { x: 1 }],
      ["SELECT 1 AS x; /* done; */", { x: 1 }],
      ["SELECT 1 AS x /* ; DROP TABLE users */ ;", { x: 1 }],
      ["SELECT 1 AS x; -- one\n/* two */ ; -- three", { x: 1 }],
      ["SELECT ';' AS x", { x: ";" }],
      ["SELECT 'it''s; fine' AS x;", { x: "it's; fine" }],
      ['SELECT 1 AS "a;b"', { "a;b": 1 }],
      ['SELECT 1 AS "say ""hi""; bye"', { 'say "hi"; bye': 1 }],
      ["SELECT 1 AS [a;b]", { "a;b": 1 }],
      ["SELECT 1 AS `a;``b`", { "a;`b": 1 }],
      ["SELECT name AS x FROM users WHERE name <> 'x;y' -- ;\n;", { x: "Ada" }],
    ];
    for (const [sql, row] of accepted) {
      assert.deepEqual(await conn.get(sql), row, sql);
      assert.deepEqual(await conn.all(sql), [row], sql);
      const cursor = await conn.execute(sql);
      assert.deepEqual(cursor.fetchall(), [Object.values(row)], sql);
    }
    await conn.run("UPDATE users SET name = 'A;da'; -- rename");
    assert.equal(await conn.runMany("INSERT INTO users (name) VALUES (?);", [["x"], ["y"]]), 2);
    assert.ok(await usersTableExists(conn));
  });
});

Deno.test("a CREATE TRIGGER with a multi-statement body runs through run()", async () => {
  await withUsers(async (conn) => {
    await conn.exec(
      "CREATE TABLE log (id, what); CREATE TABLE counter (n); INSERT INTO counter VALUES (0)",
    );
    await conn.run(`
      CREATE TRIGGER users_log AFTER INSERT ON users
      BEGIN
        INSERT INTO log VALUES (new.id, CASE WHEN new.name LIKE '%;%' THEN 'odd' ELSE 'plain' END);
        UPDATE counter SET n = n + 1; -- a comment; with a semicolon
        /* and; another */
      END;
    `);
    await conn.run(
      "create temp trigger users_temp after delete on users begin delete from log; end",
    );
    await conn.run("INSERT INTO users VALUES (2, 'B;o')");
    await conn.run("INSERT INTO users VALUES (3, 'Cy')");
    assert.deepEqual(await conn.all("SELECT id, what FROM log ORDER BY id"), [
      { id: 2, what: "odd" },
      { id: 3, what: "plain" },
    ]);
    assert.equal((await conn.get("SELECT n FROM counter"))?.n, 2);
    await conn.run("DELETE FROM users WHERE id = 3");
    assert.equal((await conn.get("SELECT count(*) AS n FROM log"))?.n, 0);

    // A statement after the trigger's END is a second statement.
    const sql =
      "CREATE TRIGGER t2 AFTER UPDATE ON users BEGIN DELETE FROM log; END; DROP TABLE users";
    const error = await conn.run(sql).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof MultipleStatementsError);
    assert.equal(error.offset, sql.indexOf("END;") + 4);
    assert.equal(error.next, "DROP TABLE users");
    assert.ok(await usersTableExists(conn));
    assert.equal(
      (await conn.get("SELECT count(*) AS n FROM sqlite_master WHERE name = 't2'"))?.n,
      0,
    );
  });
});

Deno.test("unterminated strings and comments are left for SQLite to report", async () => {
  assert.equal(findSecondStatement("SELECT 'abc; DROP TABLE users"), -1);
  assert.equal(findSecondStatement('SELECT "abc; DROP TABLE users'), -1);
  assert.equal(findSecondStatement("SELECT [abc; DROP TABLE users"), -1);
  assert.equal(findSecondStatement("SELECT 1 /* ; DROP TABLE users"), -1);
  assert.equal(findSecondStatement("SELECT 1; /* DROP TABLE users"), -1);
  assert.equal(findSecondStatement("SELECT 1 -- ; DROP TABLE users"), -1);
  assert.equal(findSecondStatement(""), -1);
  assert.equal(findSecondStatement(" ;; -- nothing\n"), -1);
  await withUsers(async (conn) => {
    await assert.rejects(conn.all("SELECT 'abc; DROP TABLE users"), /unrecognized token/);
    assert.ok(await usersTableExists(conn));
  });
});

Deno.test("statementEnd follows SQLite's rules for trigger bodies", () => {
  // [the first statement with its `;`, what follows]
  const cases: [string, string][] = [
    ["SELECT 1;", " SELECT 2"],
    ["EXPLAIN CREATE TRIGGER g AFTER INSERT ON t BEGIN SELECT 1; END;", " SELECT 2"],
    ["CREATE TEMPORARY TRIGGER g AFTER INSERT ON t BEGIN SELECT 1; ; END ;", " SELECT 2"],
    ["create temp trigger g after insert on t begin select 1; /* ; */ end -- ;\n;", "SELECT 2"],
    // CREATE TABLE is no trigger, even with the words inside
    ["CREATE TABLE trigger_log (x);", " SELECT 2"],
    ["CREATE TABLE t (x DEFAULT 'CREATE TRIGGER');", " SELECT 2"],
    ["CREATE VIEW v AS SELECT 1 AS [trigger];", " END; SELECT 2"],
    // A CASE's END (not right after a `;`) does not close the body
    ["CREATE TRIGGER g AFTER INSERT ON t BEGIN SELECT CASE WHEN 1 THEN 2 END; END;", " SELECT 2"],
    // A body's END without a `;` after it runs to the end of the text
    ["CREATE TRIGGER g AFTER INSERT ON t BEGIN SELECT 1; END", ""],
  ];
  for (const [first, rest] of cases) {
    assert.equal(statementEnd(first + rest), first.length, first + rest);
  }
});

// --- property: two generated statements are refused, one is accepted ---------------------

const text = fc.string({
  unit: fc.constantFrom("a", "Z", " ", ";", "'", '"', "`", "]", "[", "-", "*", "/", "\n"),
  maxLength: 12,
});
const literal = fc.oneof(
  fc.integer().map(String),
  text.map((s) => `'${s.replaceAll("'", "''")}'`),
  fc.uint8Array({ maxLength: 4 }).map((b) =>
    `x'${[...b].map((v) => v.toString(16).padStart(2, "0")).join("")}'`
  ),
);
const name = fc.oneof(
  fc.constantFrom("a", "b", "users", "_x1"),
  text.map((s) => `"${s.replaceAll('"', '""')}"`),
  text.map((s) => `\`${s.replaceAll("`", "``")}\``),
  text.filter((s) => !s.includes("]")).map((s) => `[${s}]`),
);
const comment = fc.oneof(
  text.filter((s) => !s.includes("\n")).map((s) => `--${s}\n`),
  text.filter((s) => !s.includes("*/")).map((s) => `/*${s}*/`),
);
// A separator between tokens: at least some whitespace or a comment.
const gap = fc.array(fc.oneof(fc.constantFrom(" ", "\n", "\t", "  "), comment), {
  minLength: 1,
  maxLength: 3,
}).map((parts) => parts.join(""));
// Whitespace and comments where none is needed.
const blank = fc.array(fc.oneof(fc.constantFrom(" ", "\n", "\t"), comment), { maxLength: 3 })
  .map((parts) => parts.join(""));

function tokens(...parts: (string | fc.Arbitrary<string>)[]): fc.Arbitrary<string> {
  const arbitraries = parts.map((p) => typeof p === "string" ? fc.constant(p) : p);
  return fc.tuple(
    fc.tuple(...arbitraries),
    fc.array(gap, {
      minLength: parts.length,
      maxLength: parts.length,
    }),
  ).map(([values, gaps]) => values.map((v, i) => i === 0 ? v : gaps[i] + v).join(""));
}

const simple = fc.oneof(
  tokens("SELECT", literal, "AS", name),
  tokens("INSERT", "INTO", name, "VALUES", "(", literal, ")"),
  tokens("UPDATE", name, "SET", name, "=", literal, "WHERE", name, "=", literal),
  tokens("DELETE", "FROM", name, "WHERE", name, "IN", "(", literal, ",", literal, ")"),
);
const trigger = fc.tuple(
  fc.constantFrom("CREATE", "create", "CREATE TEMP", "CREATE TEMPORARY"),
  name,
  fc.array(fc.tuple(simple, blank), { minLength: 1, maxLength: 3 }),
  fc.constantFrom("END", "end", "End"),
).map(([create, n, body, end]) =>
  `${create} TRIGGER ${n} AFTER INSERT ON t BEGIN ${
    body.map(([s, b]) => `${s}${b};`).join(" ")
  } ${end}`
);
const statement = fc.oneof({ arbitrary: simple, weight: 3 }, { arbitrary: trigger, weight: 1 });
const trailing = fc.array(fc.tuple(blank, blank).map(([a, b]) => `${a};${b}`), { maxLength: 3 })
  .map((parts) => parts.join(""));

Deno.test("property: one statement with comments and semicolons around it is accepted", () => {
  fc.assert(
    fc.property(blank, statement, blank, trailing, (before, s, after, rest) => {
      const sql = before + s + after + rest;
      assert.equal(findSecondStatement(sql), -1, sql);
      assertSingleStatement(sql, "conn.all()");
    }),
    { numRuns: 500 },
  );
});

Deno.test("property: two statements joined by ; are refused where the first ends", () => {
  fc.assert(
    fc.property(
      blank,
      statement,
      blank,
      blank,
      statement,
      trailing,
      (before, first, mid, gapAfter, second, rest) => {
        const head = `${before}${first}${mid};`;
        const sql = `${head}${gapAfter}${second}${rest}`;
        assert.equal(findSecondStatement(sql), head.length, sql);
        const error = (() => {
          try {
            assertSingleStatement(sql, "conn.run()");
          } catch (e) {
            return e;
          }
        })();
        assert.ok(error instanceof MultipleStatementsError, sql);
        assert.equal(error.offset, head.length);
        assert.ok(second.startsWith(error.next.slice(0, 6)), `${error.next} / ${second}`);
      },
    ),
    { numRuns: 500 },
  );
});

// --- the manager ---------------------------------------------------------------------------

Deno.test("manager.query and queryAll refuse two statements; no shard drops anything", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  await manager.createTable("t", { id: "INTEGER PRIMARY KEY", v: "TEXT" }, { shardKey: "id" });
  await manager.insertMany("t", Array.from({ length: 20 }, (_, i) => ({ id: i, v: `v${i}` })));

  const one = await manager.query(7, "SELECT 1; DROP TABLE t").then(() => undefined, (e) => e);
  assert.ok(one instanceof MultipleStatementsError, String(one));
  assert.equal(one.call, "manager.query()");
  assert.equal(one.offset, 9);
  assert.equal(one.next, "DROP TABLE t");

  for (
    const options of [undefined, { orderBy: "id" }, { limit: 3 }, { orderBy: "id", offset: 2 }]
  ) {
    const all = await manager.queryAll("SELECT * FROM t; DROP TABLE t", [], options).then(
      () => undefined,
      (e) => e,
    );
    assert.ok(all instanceof MultipleStatementsError, `${JSON.stringify(options)}: ${all}`);
    assert.equal(all.call, "manager.queryAll()");
    assert.equal(all.offset, 16);
    assert.match(all.message, /^manager\.queryAll\(\) runs one statement, but the SQL has more/);
  }

  const tables = await manager.queryAll(
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 't'",
  );
  assert.equal(tables.length, 4, "every shard still has t");
  assert.equal(await manager.count("t"), 20);
  // A trailing semicolon and comment are still fine, also when queryAll wraps the SQL.
  assert.equal((await manager.queryAll("SELECT * FROM t; -- all")).length, 20);
  assert.deepEqual(
    await manager.queryAll("SELECT id FROM t;", [], { orderBy: "id", limit: 2 }),
    [{ id: 0 }, { id: 1 }],
  );
});
