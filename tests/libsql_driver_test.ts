/**
 * The libSQL driver against real sqld servers (tests/sqld.ts): values compared with the
 * local node:sqlite driver, transactions on one stream per handle, a ConnectionPool over
 * a server URL, SIGKILL and restart. Nothing skips: a server that cannot start fails.
 */

import assert from "node:assert/strict";
import type { DriverHandle } from "../src/driver/driver.ts";
import { createLibsqlDriver, libsqlDriver } from "../src/driver/libsql.ts";
import { nativeDriver } from "../src/driver/native.ts";
import {
  ConnectionBrokenError,
  PoolTimeoutError,
  QueryError,
  ShardliteError,
  ShardOpenError,
} from "../src/errors.ts";
import { ConnectionPool } from "../src/pool/pool.ts";
import type { Params } from "../src/types.ts";
import { tempDir } from "./helpers.ts";
import { startSqld } from "./sqld.ts";

const OPEN = { create: true, statementCacheSize: 16 } as const;
const CONFIGURE = { access: "exclusive", synchronous: "full", cacheSizeKiB: 2048 } as const;

/** An open, configured handle on `url`, closed at scope exit. */
async function remote(url: string): Promise<DriverHandle & AsyncDisposable> {
  const handle = await libsqlDriver.open(url, OPEN);
  await libsqlDriver.configure(handle, CONFIGURE);
  return Object.assign(handle, { [Symbol.asyncDispose]: async () => await handle.close() });
}

/** What a call did: its value, or that it threw. */
type Outcome = { value: unknown } | { threw: true };
async function attempt(fn: () => unknown): Promise<Outcome> {
  try {
    return { value: await fn() };
  } catch {
    return { threw: true };
  }
}

/** Runs `body` on a sqld handle and on an in-memory node:sqlite handle; both must agree. */
async function same<T>(
  url: string,
  body: (handle: DriverHandle) => Promise<T>,
): Promise<T> {
  const local = nativeDriver.open(":memory:", OPEN);
  let expected: T;
  try {
    expected = await body(local);
  } finally {
    local.close();
  }
  await using handle = await remote(url);
  const actual = await body(handle);
  assert.deepStrictEqual(actual, expected, "sqld differs from node:sqlite");
  return actual;
}

const BOUND: readonly unknown[] = [
  0,
  1,
  -1,
  -0,
  2 ** 31,
  2 ** 53 - 1,
  -(2 ** 53 - 1),
  2 ** 53,
  1e20,
  1.5,
  -2.25,
  1e300,
  5e-324,
  0n,
  2n ** 53n + 1n,
  -(2n ** 63n),
  2n ** 63n - 1n,
  "",
  "text",
  "é😀 漢字",
  "a\nb\tc",
  new Uint8Array(0),
  new Uint8Array([0, 1, 255]),
  new Uint8Array([9, 1, 2, 9]).subarray(1, 3),
  null,
  true,
  false,
];

Deno.test("libsql: values round-trip as with node:sqlite (typeof, bigints, blobs, REAL)", async () => {
  await using server = await startSqld();
  const rows = await same(server.url, async (h) => {
    await h.exec("CREATE TABLE t (v)");
    for (const value of BOUND) await h.run("INSERT INTO t VALUES (?)", [value as never]);
    return {
      all: await h.all("SELECT typeof(v) AS type, v FROM t ORDER BY rowid"),
      values: (await h.values("SELECT v, v FROM t ORDER BY rowid")).rows,
      typed: await h.get("SELECT CAST(? AS REAL) AS r, ? + 0 AS i, ? AS b", [3, 2n ** 60n, true]),
    };
  });
  const big = rows.all.find((row) => row["v"] === 2n ** 53n + 1n);
  assert.deepStrictEqual(big, { type: "integer", v: 2n ** 53n + 1n });
  assert.ok(rows.all.some((row) => row["v"] instanceof Uint8Array));
  assert.deepStrictEqual(rows.typed, { r: 3, i: 2n ** 60n, b: 1 });
});

Deno.test("libsql: NUL in text is kept whole; NaN, Infinity and unsupported values are refused", async () => {
  await using server = await startSqld();
  await using h = await remote(server.url);
  await h.exec("CREATE TABLE t (v TEXT)");
  await h.run("INSERT INTO t VALUES (?)", ["a\0b"]);
  assert.deepStrictEqual(await h.get("SELECT v, hex(v) AS x FROM t"), { v: "a\0b", x: "610062" });
  assert.equal(libsqlDriver.checkText?.("a\0b"), undefined);
  for (const value of [NaN, Infinity, undefined, new Date(0), {}, [1], Symbol()]) {
    assert.deepStrictEqual(await attempt(() => h.get("SELECT ? AS v", [value as never])), {
      threw: true,
    });
  }
  // The handle is still fine after refused values (nothing was sent).
  assert.deepStrictEqual(await h.get("SELECT 1 AS one"), { one: 1 });
});

Deno.test("libsql: duplicate column names, named parameters, changes and rowids", async () => {
  await using server = await startSqld();
  const result = await same(server.url, async (h) => {
    const sql = "SELECT :a AS a, $b AS b, @c AS c, :a + 1 AS again";
    const cases: [string, Params | undefined][] = [
      ["prefixed", { ":a": 1, "$b": "two", "@c": null }],
      ["missing", { ":a": 1 }],
      ["bare keys", { a: 1, b: 2, c: 3 }],
      ["wrong prefix", { "$a": 1 }],
    ];
    const named: Record<string, Outcome> = {};
    for (const [label, params] of cases) named[label] = await attempt(() => h.get(sql, params));
    await h.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v UNIQUE)");
    return {
      duplicate: await h.values(`SELECT 1 AS a, 2 AS a, 'x' AS "1", NULL AS a, 2 AS b`),
      row: await h.get(`SELECT 1 AS a, 2 AS a, 'x' AS "1", NULL AS a, 2 AS b`),
      empty: await h.values("SELECT 1 AS a, 2 AS a WHERE 0"),
      named,
      positional: await h.get("SELECT ?2 AS a, ?1 AS b", [1, 2]),
      fewer: await h.get("SELECT ? AS a, ? AS b, ?5 AS c", [1]),
      noParams: await h.get("SELECT :a AS a, $b AS b"),
      noPositional: await h.get("SELECT ? AS a, ?3 AS b"),
      literals: await h.get(`SELECT ':x' AS "?", '?' AS [:y], ? AS z -- :w ?`, [3]),
      insert: await h.run("INSERT INTO t (v) VALUES (?)", ["a"]),
      big: await h.run("INSERT INTO t VALUES (?, ?)", [2n ** 62n, "b"]),
      after: await h.run("INSERT INTO t (v) VALUES (?)", ["c"]),
      many: await h.runMany("INSERT INTO t (v) VALUES (?)", [["d"], ["e"], ["f"]]),
      manyFails: await attempt(() =>
        h.runMany("INSERT INTO t (v) VALUES (?)", [["g"], ["a"], ["h"]])
      ),
      afterFailure: await h.all("SELECT v FROM t WHERE v IN ('g', 'h') ORDER BY v"),
      update: (await h.run("UPDATE t SET v = v || '!' WHERE id < ?", [100])).changes,
      values: await h.values("INSERT INTO t (v) VALUES (?)", ["z"]),
      returning: await h.all("DELETE FROM t WHERE v = ? RETURNING id, v", ["z"]),
      upsert: await h.get(
        "INSERT INTO t (id, v) VALUES (1, 'u') ON CONFLICT (id) DO UPDATE SET v = excluded.v " +
          "RETURNING v",
      ),
      json: await h.all("SELECT value FROM json_each(?)", ['[1, 2.5, "x"]']),
      emptyMany: await h.runMany("INSERT INTO t (v) VALUES (?)", []),
    };
  });
  assert.deepStrictEqual(result.duplicate, {
    columns: ["a", "a", "1", "a", "b"],
    rows: [[1, 2, "x", null, 2]],
  });
  assert.deepStrictEqual(result.row, { "1": "x", a: null, b: 2 }); // later names win
  assert.deepStrictEqual(result.named["bare keys"], { threw: true });
  assert.deepStrictEqual(result.big, { changes: 1, lastInsertRowid: 2n ** 62n });
  assert.equal(result.many, 3);
  assert.deepStrictEqual(result.manyFails, { threw: true });
  assert.deepStrictEqual(result.afterFailure, [{ v: "g" }]); // stopped at the failure
});

Deno.test("libsql: inTransaction follows BEGIN, SAVEPOINT, RELEASE, COMMIT and ROLLBACK", async () => {
  await using server = await startSqld();
  await same(server.url, async (h) => {
    const seen: [string, boolean][] = [];
    const step = async (label: string, fn: () => unknown) => {
      await fn();
      seen.push([label, h.inTransaction]);
    };
    await step("start", () => h.get("SELECT 1"));
    await step("exec BEGIN", () => h.exec("BEGIN"));
    await step("select in tx", () => h.get("SELECT 1"));
    await step("exec COMMIT", () => h.exec("COMMIT"));
    await step("run BEGIN IMMEDIATE", () => h.run("BEGIN IMMEDIATE"));
    await step("run SAVEPOINT", () => h.run("SAVEPOINT s1"));
    await step("ROLLBACK TO", () => h.run("ROLLBACK TO s1"));
    await step("RELEASE inner", () => h.run("RELEASE s1"));
    await step("run ROLLBACK", () => h.run("ROLLBACK"));
    await step("SAVEPOINT outside", () => h.exec("SAVEPOINT outer"));
    await step("RELEASE outer", () => h.exec("RELEASE outer"));
    await step("failing in tx", async () => {
      await h.exec("BEGIN");
      await assert.rejects(async () => await h.get("SELECT * FROM missing"));
    });
    await step("COMMIT via get", () => h.get("COMMIT"));
    await step("BEGIN via values", () => h.values("BEGIN"));
    await step("END via runMany", () => h.runMany("END", [[]]));
    await step("script", () => h.exec("BEGIN; CREATE TABLE s (x); INSERT INTO s VALUES (1);"));
    await step("OR ROLLBACK", async () => {
      await h.exec("CREATE TABLE w (id INTEGER PRIMARY KEY); INSERT INTO w VALUES (1)");
      await assert.rejects(async () => await h.run("INSERT OR ROLLBACK INTO w VALUES (1)"));
    });
    return seen;
  });
});

Deno.test("libsql: BEGIN ... ROLLBACK sent as statements is one transaction; handles never mix", async () => {
  await using server = await startSqld();
  await using a = await remote(server.url);
  await using b = await remote(server.url);
  await a.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)");
  await a.run("BEGIN");
  await a.run("INSERT INTO t VALUES (1, 'a')");
  assert.equal(a.inTransaction, true);
  assert.equal(b.inTransaction, false);
  // b is another connection: it sees nothing uncommitted, and is not in a's transaction.
  assert.deepStrictEqual(await b.all("SELECT * FROM t"), []);
  await a.run("ROLLBACK");
  assert.deepStrictEqual(await b.all("SELECT * FROM t"), []);
  assert.deepStrictEqual(await a.all("SELECT * FROM t"), []);
  // Pipelined: many statements sent at once run in order on a's stream.
  const sent = [a.run("BEGIN")];
  for (let i = 0; i < 20; i++) sent.push(a.run("INSERT INTO t VALUES (?, 'a')", [i]));
  sent.push(a.run("COMMIT"));
  await Promise.all(sent);
  assert.equal(a.inTransaction, false);
  assert.deepStrictEqual(await b.get("SELECT count(*) AS n FROM t"), { n: 20 });
});

Deno.test("libsql: a pool over a server URL: leases, transactions, rollback on return, serialized transactions", async () => {
  await using server = await startSqld();
  await using pool = new ConnectionPool(server.url, {
    driver: libsqlDriver,
    maxConnections: 4,
    timeoutMs: 5_000,
  });
  await pool.withConnection(async (conn) => {
    await conn.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    assert.equal((await conn.run("INSERT INTO t (v) VALUES (?)", ["one"])).changes, 1);
    assert.deepStrictEqual(await conn.get("SELECT id, v FROM t"), { id: 1, v: "one" });
    await conn.execute("SELECT v, v FROM t");
    assert.deepStrictEqual(conn.fetchone(), ["one", "one"]);
    await conn.transaction(async (tx) => {
      await tx.run("INSERT INTO t (v) VALUES ('two')");
      await tx.transaction(async (inner) => {
        await inner.run("INSERT INTO t (v) VALUES ('lost')");
        throw new Error("undo the savepoint");
      }).catch(() => {});
    });
    await assert.rejects(
      () =>
        conn.transaction(async (tx) => {
          await tx.run("INSERT INTO t (v) VALUES ('rolled back')");
          throw new Error("no");
        }),
      /no/,
    );
    assert.deepStrictEqual((await conn.all("SELECT v FROM t ORDER BY id")).map((r) => r["v"]), [
      "one",
      "two",
    ]);
    const error = await conn.run("INSERT INTO t (id) VALUES (1)").catch((e) => e);
    assert.ok(error instanceof QueryError, String(error));
    assert.match(error.message, /UNIQUE|constraint/i);
  });

  // A lease returned inside its transaction: rolled back.
  const leaked = await pool.getConnection();
  await leaked.exec("BEGIN IMMEDIATE");
  await leaked.run("INSERT INTO t (v) VALUES ('leaked')");
  await pool.returnConnection(leaked);
  assert.equal(
    (await pool.withConnection((c) => c.get("SELECT count(*) AS n FROM t WHERE v = 'leaked'")))
      ?.["n"],
    0,
  );

  // Two leases' transactions serialize: each reads, then writes its read + 1.
  await pool.withConnection((c) =>
    c.exec("CREATE TABLE counter (n INTEGER); INSERT INTO counter VALUES (0)")
  );
  const order: string[] = [];
  const bump = (name: string) =>
    pool.withConnection((c) =>
      c.transaction(async (tx) => {
        order.push(`${name} begin`);
        const row = await tx.get("SELECT n FROM counter");
        await new Promise((resolve) => setTimeout(resolve, 20));
        await tx.run("UPDATE counter SET n = ?", [(row?.["n"] as number) + 1]);
        order.push(`${name} end`);
      })
    );
  await Promise.all([bump("x"), bump("y"), bump("z")]);
  assert.deepStrictEqual(await pool.withConnection((c) => c.get("SELECT n FROM counter")), {
    n: 3,
  });
  for (let i = 0; i < order.length; i += 2) {
    assert.equal(order[i]!.split(" ")[0], order[i + 1]!.split(" ")[0], order.join(", "));
  }
  assert.equal(pool.getPoolStats().activeConnections, 0);
});

Deno.test("libsql: shared access gives each transaction its own connection; readers do not wait", async () => {
  await using server = await startSqld();
  await using pool = new ConnectionPool(server.url, {
    driver: libsqlDriver,
    access: "shared",
    maxConnections: 4,
  });
  await pool.withConnection((c) => c.exec("CREATE TABLE t (x); INSERT INTO t VALUES (1)"));
  const writer = await pool.getConnection();
  await writer.exec("BEGIN IMMEDIATE");
  await writer.run("INSERT INTO t VALUES (2)");
  // Another lease reads the committed state at once, while the write transaction is open.
  const read = await pool.withConnection((c) => c.get("SELECT count(*) AS n FROM t"));
  assert.deepStrictEqual(read, { n: 1 });
  await writer.commit();
  await writer.release();
  assert.deepStrictEqual(await pool.withConnection((c) => c.get("SELECT count(*) AS n FROM t")), {
    n: 2,
  });
});

Deno.test("libsql: over HTTP too: statements, a transaction, rollback", async () => {
  await using server = await startSqld();
  await using pool = new ConnectionPool(server.httpUrl, { driver: libsqlDriver });
  await pool.withConnection(async (conn) => {
    await conn.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)");
    await conn.transaction(async (tx) => {
      await tx.run("INSERT INTO t VALUES (?, ?)", [2n ** 60n, new Uint8Array([1, 2])]);
      assert.equal(tx.inTransaction, true);
    });
    await conn.exec("BEGIN");
    await conn.run("INSERT INTO t VALUES (1, NULL)");
    await conn.rollback();
    assert.deepStrictEqual(await conn.all("SELECT id, v FROM t"), [{
      id: 2n ** 60n,
      v: new Uint8Array([1, 2]),
    }]);
    // foreign_keys is on for every connection (HTTP opens one per statement outside a transaction).
    assert.deepStrictEqual(await conn.get("PRAGMA foreign_keys"), { foreign_keys: 1 });
  });
});

Deno.test("libsql: a killed server fails calls with typed errors within timeoutMs; the pool reconnects after restart", async () => {
  await using server = await startSqld();
  await using pool = new ConnectionPool(server.url, {
    driver: libsqlDriver,
    timeoutMs: 2_000,
    onEvent: () => {},
  });
  await pool.withConnection((c) => c.exec("CREATE TABLE t (id INTEGER PRIMARY KEY)"));
  // A transaction open when the server dies is reported lost.
  const inTx = await pool.getConnection();
  await inTx.exec("BEGIN IMMEDIATE");
  await inTx.run("INSERT INTO t VALUES (1)");
  await server.kill();
  const started = performance.now();
  const lost = await inTx.run("INSERT INTO t VALUES (2)").catch((e) => e);
  assert.ok(lost instanceof ConnectionBrokenError, String(lost));
  await inTx.release();
  // While it is down: typed errors, fast (connection refused), never a hang.
  for (let i = 0; i < 3; i++) {
    const error = await pool.withConnection((c) => c.get("SELECT 1")).catch((e) => e);
    assert.ok(error instanceof ShardliteError, String(error));
    assert.ok(
      error instanceof ConnectionBrokenError || error instanceof ShardOpenError ||
        error instanceof PoolTimeoutError,
      String(error),
    );
  }
  assert.ok(performance.now() - started < 2_000 * 4);
  await server.restart();
  assert.deepStrictEqual(await pool.withConnection((c) => c.all("SELECT id FROM t")), []);
  // An idle handle whose server was restarted reconnects by itself: no error at all.
  await server.restart();
  assert.deepStrictEqual(await pool.withConnection((c) => c.get("SELECT count(*) AS n FROM t")), {
    n: 0,
  });
});

Deno.test("libsql: a server that stops answering: PoolTimeoutError within timeoutMs, then it recovers", async () => {
  await using server = await startSqld();
  await using pool = new ConnectionPool(server.url, {
    driver: libsqlDriver,
    timeoutMs: 300,
    onEvent: () => {},
  });
  await pool.withConnection((c) => c.exec("CREATE TABLE t (x)"));
  await server.pause();
  try {
    const started = performance.now();
    const error = await pool.withConnection((c) => c.get("SELECT 1")).catch((e) => e);
    const waited = performance.now() - started;
    assert.ok(error instanceof PoolTimeoutError, String(error));
    assert.equal(error.waitingFor, "driver");
    assert.ok(waited < 300 + 500, `waited ${waited} ms`);
  } finally {
    server.resume();
  }
  // The handle that gave no answer was dropped; a new one works.
  assert.deepStrictEqual(await pool.withConnection((c) => c.get("SELECT count(*) AS n FROM t")), {
    n: 0,
  });
});

Deno.test("libsql: SIGKILL under load keeps every acknowledged row", async () => {
  await using server = await startSqld();
  await using pool = new ConnectionPool(server.url, {
    driver: libsqlDriver,
    maxConnections: 4,
    timeoutMs: 3_000,
    onEvent: () => {},
  });
  await pool.withConnection((c) => c.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, w INTEGER)"));
  const acknowledged: number[] = [];
  let next = 0;
  let stop = false;
  const writer = async (w: number) => {
    while (!stop) {
      const id = ++next;
      try {
        if (id % 3 === 0) {
          await pool.withConnection((c) =>
            c.transaction((tx) => tx.run("INSERT INTO t VALUES (?, ?)", [id, w]))
          );
        } else {
          await pool.withConnection((c) => c.run("INSERT INTO t VALUES (?, ?)", [id, w]));
        }
        acknowledged.push(id);
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
  };
  const writers = [1, 2, 3, 4].map(writer);
  for (let cycle = 0; cycle < 2; cycle++) {
    const before = acknowledged.length;
    while (acknowledged.length < before + 100) await new Promise((r) => setTimeout(r, 2));
    await server.kill();
    await new Promise((resolve) => setTimeout(resolve, 30));
    await server.restart();
  }
  const before = acknowledged.length;
  while (acknowledged.length < before + 50) await new Promise((r) => setTimeout(r, 2));
  stop = true;
  await Promise.all(writers);
  const stored = new Set(
    (await pool.withConnection((c) => c.all("SELECT id FROM t"))).map((r) => r["id"]),
  );
  const missing = acknowledged.filter((id) => !stored.has(id));
  assert.deepStrictEqual(missing, [], `${missing.length} acknowledged rows lost`);
});

Deno.test("libsql: backup writes a local SQLite copy (schema, rows, sequences, indexes)", async () => {
  await using server = await startSqld();
  await using dir = await tempDir();
  await using pool = new ConnectionPool(server.url, { driver: libsqlDriver });
  await pool.withConnection(async (conn) => {
    await conn.exec(
      "CREATE TABLE a (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT, g TEXT GENERATED ALWAYS AS (upper(v))); " +
        "CREATE INDEX a_v ON a (v); CREATE TABLE b (k BLOB, n REAL); " +
        "CREATE VIEW av AS SELECT id FROM a",
    );
    await conn.runMany("INSERT INTO a (v) VALUES (?)", [["x"], ["y"], ["z"]]);
    await conn.run("DELETE FROM a WHERE v = 'z'");
    await conn.run("INSERT INTO b VALUES (?, ?)", [new Uint8Array([7]), 2.5]);
    await conn.backupTo(`${dir.path}/copy.db`);
  });
  const copy = nativeDriver.open(`${dir.path}/copy.db`, { create: false, statementCacheSize: 4 });
  try {
    assert.deepStrictEqual(copy.all("SELECT id, v, g FROM a ORDER BY id"), [
      { id: 1, v: "x", g: "X" },
      { id: 2, v: "y", g: "Y" },
    ]);
    assert.deepStrictEqual(copy.all("SELECT k, n FROM b"), [{ k: new Uint8Array([7]), n: 2.5 }]);
    assert.deepStrictEqual(copy.get("SELECT seq FROM sqlite_sequence WHERE name = 'a'"), {
      seq: 3,
    });
    assert.deepStrictEqual(
      copy.all("SELECT name FROM sqlite_schema WHERE type IN ('index', 'view') ORDER BY name"),
      [{ name: "a_v" }, { name: "av" }],
    );
    assert.deepStrictEqual(copy.get("PRAGMA integrity_check"), { integrity_check: "ok" });
  } finally {
    copy.close();
  }
});

Deno.test("libsql: bad locations and options are refused with clear errors", async () => {
  for (
    const [url, pattern] of [
      ["not a url", /not a URL/],
      ["ftp://127.0.0.1:1", /unsupported URL scheme/],
    ] as const
  ) {
    await using pool = new ConnectionPool(url, { driver: libsqlDriver });
    const error = await pool.withConnection((c) => c.get("SELECT 1")).catch((e) => e);
    assert.ok(error instanceof ShardOpenError, String(error));
    assert.match(String(error.cause), pattern);
  }
  assert.throws(() => createLibsqlDriver({ authToken: "" }), /authToken/);
  // Nothing listens: refused at once, as a typed error naming the URL.
  const port = (() => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const free = (listener.addr as Deno.NetAddr).port;
    listener.close();
    return free;
  })();
  await using pool = new ConnectionPool(`ws://127.0.0.1:${port}`, { driver: libsqlDriver });
  const error = await pool.withConnection((c) => c.get("SELECT 1")).catch((e) => e);
  assert.ok(error instanceof ShardOpenError, String(error));
  assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
});

Deno.test("libsql: runMany packs a one-row INSERT's rows into multi-row statements, failing where node:sqlite fails", async () => {
  await using server = await startSqld();
  await using dir = await tempDir();
  const remote = await libsqlDriver.open(server.url, { create: true, statementCacheSize: 16 });
  const local = nativeDriver.open(`${dir.path}/x.db`, { create: true, statementCacheSize: 16 });
  try {
    const outcome = async (h: DriverHandle) => {
      await h.exec("CREATE TABLE p (id INTEGER PRIMARY KEY, v TEXT, n REAL) STRICT");
      await h.exec("BEGIN");
      const rows = Array.from({ length: 1_234 }, (_, i) => [i + 1, `v${i}`, i / 3]);
      const ok = await h.runMany("INSERT INTO p (id, v, n) VALUES (?, ?, ?)", rows);
      // A duplicate at row 777 of the second call: the 776 before it stay, as locally.
      const more = Array.from({ length: 1_000 }, (_, i) => [i === 776 ? 5 : 10_000 + i, "w", 1]);
      const failure = await (async () =>
        await h.runMany("INSERT OR ABORT INTO p (id, v, n) VALUES (?, ?, ?)", more))()
        .then(() =>
          "none", (e: Error) => e.message.replace(/^.*?(UNIQUE)/, "$1"));
      const upserted = await h.runMany(
        "INSERT INTO p (id, v, n) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET v = excluded.v",
        [[1, "one", 0], [2, "two", 0], [99_999, "new", 0]],
      );
      await h.exec("COMMIT");
      const count = await h.get("SELECT count(*) AS n, sum(n) AS s, max(id) AS m FROM p");
      const firsts = await h.all("SELECT id, v FROM p WHERE id IN (1, 2, 10775, 10776)");
      return { ok, failure, upserted, count, firsts };
    };
    assert.deepStrictEqual(await outcome(remote), await outcome(local));
  } finally {
    await remote.close();
    local.close();
  }
});
