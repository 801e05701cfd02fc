/**
 * Observability: `onQuery` events, `slowQueryMs`, listener errors, and `metrics()` parsed
 * line by line as Prometheus text and checked against what the test did.
 */

import assert from "node:assert/strict";
import {
  ConnectionPool,
  type PoolEvent,
  PoolOverloadedError,
  PoolTimeoutError,
  QueryError,
  type QueryEvent,
  ShardManager,
} from "../mod.ts";
import { tempDir } from "./helpers.ts";

// A statement that takes hundreds of milliseconds whatever the machine: counting to a million.
const SLOW_SQL =
  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000) " +
  "SELECT count(*) AS c FROM n";
const SLOW_MS = 50;

function collector(): { events: PoolEvent[]; onEvent: (e: PoolEvent) => void } {
  const events: PoolEvent[] = [];
  return { events, onEvent: (e) => events.push(e) };
}

Deno.test("onQuery: sql, time, rows read and changed, errors, path; BEGIN/COMMIT/ROLLBACK", async () => {
  await using dir = await tempDir();
  const seen: QueryEvent[] = [];
  const path = `${dir.path}/s.db`;
  const { events, onEvent } = collector();
  await using pool = new ConnectionPool(path, { onQuery: (e) => seen.push(e), onEvent });
  await pool.withConnection(async (conn) => {
    await conn.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    await conn.run("INSERT INTO t (v) VALUES (?), (?), (?)", ["a", "b", "c"]);
    await conn.all("SELECT * FROM t");
    await conn.get("SELECT * FROM t WHERE id = ?", [2]);
    await conn.get("SELECT * FROM t WHERE id = ?", [99]);
    await conn.execute("SELECT v FROM t WHERE id < 3");
    await conn.execute("UPDATE t SET v = 'z' WHERE id > 1");
    await conn.runMany("INSERT INTO t (v) VALUES (?)", [["d"], ["e"]]);
    await assert.rejects(conn.all("SELECT * FROM missing"), QueryError);
  });
  const expected: [string, number | undefined][] = [
    ["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", undefined],
    ["INSERT INTO t (v) VALUES (?), (?), (?)", 3],
    ["SELECT * FROM t", 3],
    ["SELECT * FROM t WHERE id = ?", 1],
    ["SELECT * FROM t WHERE id = ?", 0],
    ["SELECT v FROM t WHERE id < 3", 2],
    ["UPDATE t SET v = 'z' WHERE id > 1", 2],
    ["INSERT INTO t (v) VALUES (?)", 2],
    ["SELECT * FROM missing", undefined],
  ];
  assert.deepEqual(seen.map((e) => [e.sql, e.rows]), expected);
  for (const event of seen) {
    assert.equal(event.path, path);
    assert.equal(event.shardId, undefined, "a pool of its own has no shard id");
    assert.equal(typeof event.durationMs, "number");
    assert.ok(event.durationMs >= 0 && Number.isFinite(event.durationMs));
  }
  assert.ok(seen.slice(0, -1).every((e) => !("error" in e)), "only the failure has an error");
  assert.ok(seen.at(-1)?.error instanceof QueryError);
  const stats = pool.getPoolStats();
  assert.equal(stats.totalStatements, expected.length);
  assert.equal(stats.statementErrors, 1);

  // The library's own BEGIN/COMMIT/ROLLBACK, for a transaction and a lease returned inside one.
  seen.length = 0;
  await pool.withConnection(async (conn) => {
    await conn.transaction((tx) => tx.run("INSERT INTO t (v) VALUES ('f')"));
    await assert.rejects(
      conn.transaction(async (tx) => {
        await tx.run("INSERT INTO t (v) VALUES ('g')");
        throw new Error("changed my mind");
      }),
      /changed my mind/,
    );
  });
  const lease = await pool.getConnection();
  await lease.exec("BEGIN");
  await lease.run("DELETE FROM t");
  await pool.returnConnection(lease); // rolled back, reported
  assert.deepEqual(events.map((e) => e.type), ["rollback-on-return"]);
  assert.deepEqual(seen.map((e) => e.sql), [
    "BEGIN IMMEDIATE",
    "INSERT INTO t (v) VALUES ('f')",
    "COMMIT",
    "BEGIN IMMEDIATE",
    "INSERT INTO t (v) VALUES ('g')",
    "ROLLBACK",
    "BEGIN",
    "DELETE FROM t",
    "ROLLBACK",
  ]);
  assert.equal(pool.getPoolStats().totalStatements, expected.length + seen.length);
  assert.equal(
    await pool.withConnection((c) => c.get("SELECT count(*) AS n FROM t")).then((r) => r?.n),
    6,
  );
});

Deno.test("onQuery through a manager: shardId and path on every event, fast path included", async () => {
  await using dir = await tempDir();
  const seen: QueryEvent[] = [];
  await using manager = new ShardManager({
    numShards: 4,
    dbDir: dir.path,
    onQuery: (e) => seen.push(e),
  });
  await manager.createTable("users", { id: "INTEGER PRIMARY KEY", name: "TEXT" }, {
    shardKey: "id",
  });
  for (const event of seen) {
    assert.equal(typeof event.shardId, "number");
    assert.equal(event.path, manager.shardPath(event.shardId as number));
  }
  seen.length = 0;
  await manager.insert("users", { id: 42, name: "Ada" });
  const shard = manager.getShardId(42, "users");
  assert.deepEqual(seen.map((e) => [e.shardId, e.rows]), [[shard, 1]]);
  seen.length = 0;
  const rows = await manager.select("users", { key: 42 }); // the allOnce fast path
  assert.equal(rows.length, 1);
  assert.equal(seen.length, 1);
  assert.equal(seen[0]?.shardId, shard);
  assert.equal(seen[0]?.path, manager.shardPath(shard));
  assert.equal(seen[0]?.rows, 1);
  assert.match(seen[0]?.sql ?? "", /^SELECT /);
  seen.length = 0;
  assert.equal(await manager.update("users", { name: "Bo" }, { key: 42 }), 1);
  assert.deepEqual(seen.map((e) => [e.shardId, e.rows]), [[shard, 1]]);
  seen.length = 0;
  await assert.rejects(manager.query(42, "SELECT * FROM nowhere"));
  assert.equal(seen.length, 1);
  assert.equal(seen[0]?.shardId, shard);
  assert.ok(seen[0]?.error instanceof QueryError);

  // Set once: on the manager or in pool, not both.
  assert.throws(
    () =>
      new ShardManager({
        numShards: 1,
        dbDir: dir.path,
        onQuery: () => {},
        pool: { onQuery: () => {} },
      }),
    TypeError,
  );
  assert.throws(
    () => new ShardManager({ numShards: 1, dbDir: dir.path, slowQueryMs: -1 }),
    RangeError,
  );
  assert.throws(
    () => new ConnectionPool(`${dir.path}/x.db`, { onQuery: 1 as unknown as () => void }),
    TypeError,
  );
});

Deno.test("a listener that throws or rejects does not break statements; it is reported", async () => {
  await using dir = await tempDir();
  const { events, onEvent } = collector();
  let calls = 0;
  await using pool = new ConnectionPool(`${dir.path}/s.db`, {
    onEvent,
    onQuery: () => {
      calls++;
      throw new Error("listener bug");
    },
  });
  await pool.withConnection(async (conn) => {
    await conn.exec("CREATE TABLE t (x)");
    assert.equal((await conn.run("INSERT INTO t VALUES (1)")).changes, 1);
    assert.deepEqual(await conn.all("SELECT x FROM t"), [{ x: 1 }]);
    await conn.transaction((tx) => tx.run("INSERT INTO t VALUES (2)"));
  });
  assert.equal(calls, 6);
  const errors = events.filter((e) => e.type === "listener-error");
  assert.equal(errors.length, 6);
  for (const e of errors) {
    assert.ok(e.type === "listener-error" && e.listener === "onQuery");
    assert.match(String((e as { error: Error }).error.message), /listener bug/);
  }
  assert.equal(pool.getPoolStats().activeConnections, 0);
  assert.equal(pool.getPoolStats().statementErrors, 0, "the statements themselves succeeded");

  // An async listener's rejection is reported too, never left unhandled.
  const { events: asyncEvents, onEvent: onAsyncEvent } = collector();
  await using other = new ConnectionPool(`${dir.path}/a.db`, {
    onEvent: onAsyncEvent,
    onQuery: () => Promise.reject(new Error("async listener bug")) as unknown as void,
  });
  assert.deepEqual(await other.withConnection((c) => c.get("SELECT 1 AS one")), { one: 1 });
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(asyncEvents.filter((e) => e.type === "listener-error").length, 1);

  // An onEvent listener that throws does not stop a return inside a transaction either.
  await using third = new ConnectionPool(`${dir.path}/b.db`, {
    maxConnections: 1,
    onEvent: () => {
      throw new Error("event listener bug");
    },
  });
  const originalError = console.error;
  const printed: unknown[][] = [];
  console.error = (...args: unknown[]) => printed.push(args);
  try {
    const conn = await third.getConnection();
    await conn.exec("BEGIN");
    await third.returnConnection(conn); // rollback-on-return: the listener throws
  } finally {
    console.error = originalError;
  }
  assert.equal(printed.length, 1);
  assert.deepEqual(await third.withConnection((c) => c.get("SELECT 2 AS two")), { two: 2 });
});

Deno.test("slowQueryMs: a slow statement is a slow-query event, counted; quick ones are not", async () => {
  await using dir = await tempDir();
  const { events, onEvent } = collector();
  const seen: QueryEvent[] = [];
  await using manager = new ShardManager({
    numShards: 2,
    dbDir: dir.path,
    slowQueryMs: SLOW_MS,
    onQuery: (e) => seen.push(e),
    pool: { onEvent },
  });
  await manager.createTable("t", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
  await manager.insert("t", { id: 1 });
  await manager.select("t", { key: 1 });
  const shard = manager.getShardId(1, "t");
  const [row] = await manager.query(1, SLOW_SQL);
  assert.equal(row?.c, 1_000_000);
  const slow = events.filter((e) => e.type === "slow-query");
  const reported = slow.find((e) => e.sql === SLOW_SQL);
  assert.ok(reported !== undefined, "the slow statement is reported");
  assert.equal(reported.shardId, shard);
  assert.equal(reported.path, manager.shardPath(shard));
  assert.equal(reported.rows, 1);
  // Exactly the statements at or over the threshold are reported, whatever the machine.
  assert.deepEqual(
    slow.map((e) => e.sql),
    seen.filter((e) => e.durationMs >= SLOW_MS).map((e) => e.sql),
  );
  for (const e of slow) assert.ok(e.durationMs >= SLOW_MS);
  const stats = await manager.getShardStats();
  const total = stats.reduce((n, s) => n + (s.pool?.slowQueries ?? 0), 0);
  assert.equal(total, slow.length);
  assert.ok(manager.metrics().includes(`shardlite_slow_statements_total{shard="${shard}"} `));
  assert.equal(
    metricValue(parseMetrics(manager.metrics()), "shardlite_slow_statements_total", shard),
    stats[shard]?.pool?.slowQueries,
  );
});

// --- a strict parser of the Prometheus text format ----------------------------------

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Family {
  type: "counter" | "gauge" | "histogram";
  help: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let at = 0;
  while (at < text.length) {
    const eq = text.indexOf("=", at);
    assert.ok(eq > at, `label name expected: ${line}`);
    const name = text.slice(at, eq);
    assert.match(name, LABEL_NAME, `label name: ${line}`);
    assert.equal(text[eq + 1], '"', `quoted label value: ${line}`);
    let value = "";
    let i = eq + 2;
    for (;; i++) {
      assert.ok(i < text.length, `unterminated label value: ${line}`);
      const c = text[i];
      if (c === "\\") {
        const next = text[++i];
        assert.ok(next === "\\" || next === '"' || next === "n", `escape: ${line}`);
        value += next === "n" ? "\n" : next;
      } else if (c === '"') break;
      else value += c;
    }
    assert.ok(!(name in labels), `duplicate label ${name}: ${line}`);
    labels[name] = value;
    at = i + 1;
    if (at < text.length) {
      assert.equal(text[at], ",", `comma between labels: ${line}`);
      at++;
    }
  }
  return labels;
}

function parseValue(text: string, line: string): number {
  if (text === "+Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  if (text === "NaN") return Number.NaN;
  assert.match(text, /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/, `numeric value: ${line}`);
  return Number(text);
}

/** The family a sample belongs to: itself, or a histogram's `_bucket`/`_sum`/`_count`. */
function familyOf(name: string, families: Map<string, Family>): string | undefined {
  if (families.has(name)) return name;
  const base = name.replace(/_(?:bucket|sum|count)$/, "");
  return families.get(base)?.type === "histogram" ? base : undefined;
}

/**
 * Parses exposition text strictly: HELP then TYPE before a family's samples, each family
 * declared once and its samples together, valid names, labels and values, one sample per
 * name and label set, counters ending in `_total` and never negative, histograms with
 * cumulative buckets ending in `+Inf` equal to `_count`, and one series per shard.
 */
function parseMetrics(text: string): Map<string, Family> {
  assert.ok(text.endsWith("\n"), "the text ends with a newline");
  const families = new Map<string, Family>();
  const seenSeries = new Set<string>();
  let current: string | undefined;
  let pendingHelp: { name: string; help: string } | undefined;
  for (const line of text.slice(0, -1).split("\n")) {
    assert.notEqual(line, "", "no blank lines");
    if (line.startsWith("# HELP ")) {
      const [, name, help] = /^# HELP (\S+) (.+)$/.exec(line) ?? [];
      assert.ok(name !== undefined && help !== undefined, `HELP with text: ${line}`);
      assert.match(name, METRIC_NAME);
      assert.ok(!families.has(name), `declared once: ${name}`);
      pendingHelp = { name, help };
      continue;
    }
    if (line.startsWith("# TYPE ")) {
      const [, name, type] = /^# TYPE (\S+) (counter|gauge|histogram)$/.exec(line) ?? [];
      assert.ok(name !== undefined && type !== undefined, `TYPE line: ${line}`);
      assert.equal(pendingHelp?.name, name, `HELP right before TYPE: ${line}`);
      if (type === "counter") assert.match(name, /_total$/, `counter name: ${name}`);
      families.set(name, { type: type as Family["type"], help: pendingHelp!.help, samples: [] });
      pendingHelp = undefined;
      current = name;
      continue;
    }
    assert.ok(!line.startsWith("#"), `no other comments: ${line}`);
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match !== null, `sample syntax: ${line}`);
    const [, name, labelText, valueText] = match as unknown as [
      string,
      string,
      string | undefined,
      string,
    ];
    const family = familyOf(name, families);
    assert.ok(family !== undefined, `declared by a TYPE line before it: ${line}`);
    assert.equal(family, current, `a family's samples together: ${line}`);
    const labels = labelText === undefined ? {} : parseLabels(labelText, line);
    const value = parseValue(valueText, line);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    assert.ok(!seenSeries.has(key), `one sample per series: ${line}`);
    seenSeries.add(key);
    const { type } = families.get(family)!;
    if (type === "counter") assert.ok(value >= 0 && Number.isFinite(value), `counter: ${line}`);
    if (type === "histogram" && name.endsWith("_bucket")) assert.ok("le" in labels, line);
    families.get(family)!.samples.push({ name, labels, value });
  }
  assert.equal(pendingHelp, undefined, "every HELP has its TYPE");
  for (const [name, family] of families) {
    if (family.type !== "histogram") {
      const shards = family.samples.map((s) => s.labels.shard).filter((s) => s !== undefined);
      assert.equal(new Set(shards).size, shards.length, `one series per shard: ${name}`);
      continue;
    }
    const byShard = new Map<string, Sample[]>();
    for (const s of family.samples) {
      const shard = s.labels.shard ?? "";
      if (!byShard.has(shard)) byShard.set(shard, []);
      byShard.get(shard)!.push(s);
    }
    for (const [shard, samples] of byShard) {
      const buckets = samples.filter((s) => s.name === `${name}_bucket`);
      const count = samples.filter((s) => s.name === `${name}_count`);
      const sum = samples.filter((s) => s.name === `${name}_sum`);
      assert.equal(count.length, 1, `one _count for shard ${shard}`);
      assert.equal(sum.length, 1, `one _sum for shard ${shard}`);
      assert.ok(buckets.length >= 2, `buckets for shard ${shard}`);
      let bound = Number.NEGATIVE_INFINITY;
      let cumulative = 0;
      for (const b of buckets) {
        const le = parseValue(b.labels.le as string, JSON.stringify(b));
        assert.ok(le > bound, `bucket bounds increase: shard ${shard}`);
        assert.ok(b.value >= cumulative, `buckets cumulative: shard ${shard}`);
        bound = le;
        cumulative = b.value;
      }
      assert.equal(bound, Number.POSITIVE_INFINITY, `the last bucket is +Inf: shard ${shard}`);
      assert.equal(cumulative, count[0]?.value, `+Inf equals _count: shard ${shard}`);
      assert.ok((sum[0]?.value ?? -1) >= 0);
    }
  }
  return families;
}

/** A per-shard sample's value (0 when the shard has no series yet). */
function metricValue(families: Map<string, Family>, name: string, shard: number): number {
  const family = families.get(familyOf(name, families) ?? name);
  assert.ok(family !== undefined, `${name} is declared`);
  const found = family.samples.filter((s) => s.name === name && s.labels.shard === String(shard));
  assert.ok(found.length <= 1);
  return found[0]?.value ?? 0;
}

const PER_SHARD = [
  "shardlite_leases_total",
  "shardlite_lease_waits_total",
  "shardlite_lease_wait_seconds_total",
  "shardlite_lease_timeouts_total",
  "shardlite_overload_refusals_total",
  "shardlite_statements_total",
  "shardlite_statement_errors_total",
  "shardlite_slow_statements_total",
  "shardlite_handles_replaced_total",
  "shardlite_leases_active",
  "shardlite_lease_waiters",
];

Deno.test("metrics(): strict Prometheus text whose values follow what was done", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({
    numShards: 4,
    dbDir: dir.path,
    timeStatements: true,
    pool: { maxConnections: 1, maxWaiting: 1, timeoutMs: 30 },
  });
  await manager.createTable("users", { id: "INTEGER PRIMARY KEY", name: "TEXT" }, {
    shardKey: "id",
  });
  const ids = Array.from({ length: 40 }, (_, i) => i + 1);
  await manager.insertMany("users", ids.map((id) => ({ id, name: `u${id}` })));
  const key = 7;
  const shard = manager.getShardId(key, "users");
  const before = parseMetrics(manager.metrics());
  for (const name of PER_SHARD) assert.ok(before.has(name), `${name} declared`);
  assert.equal(before.get("shardlite_statement_duration_seconds")?.type, "histogram");
  assert.equal(before.get("shardlite_open_shards")?.samples[0]?.value, 4);
  for (let id = 0; id < 4; id++) {
    assert.ok(
      metricValue(before, "shardlite_statements_total", id) > 0,
      "createTable ran on every shard",
    );
  }

  const N = 25;
  for (let i = 0; i < N; i++) assert.equal((await manager.select("users", { key })).length, 1);
  await assert.rejects(manager.query(key, "SELECT * FROM nowhere"));
  const after = parseMetrics(manager.metrics());
  const delta = (name: string, id: number) =>
    metricValue(after, name, id) - metricValue(before, name, id);
  assert.equal(delta("shardlite_statements_total", shard), N + 1);
  assert.equal(delta("shardlite_leases_total", shard), N + 1);
  assert.equal(delta("shardlite_statement_errors_total", shard), 1);
  assert.equal(delta("shardlite_statement_duration_seconds_count", shard), N + 1);
  assert.ok(delta("shardlite_statement_duration_seconds_sum", shard) >= 0);
  for (let id = 0; id < 4; id++) {
    if (id === shard) continue;
    for (const name of ["shardlite_statements_total", "shardlite_leases_total"]) {
      assert.equal(delta(name, id), 0, `${name} unchanged on shard ${id}`);
    }
  }
  // Every statement was timed: the histogram's count is the statement count.
  for (let id = 0; id < 4; id++) {
    assert.equal(
      metricValue(after, "shardlite_statement_duration_seconds_count", id),
      metricValue(after, "shardlite_statements_total", id),
    );
  }

  // Waits, timeouts and refusals on the key's shard (one slot, one waiter allowed).
  const pool = manager.getPool(shard);
  const held = await pool.getConnection();
  assert.equal(metricValue(parseMetrics(manager.metrics()), "shardlite_leases_active", shard), 1);
  const waiter = pool.getConnection(); // waits, then gets the slot
  await assert.rejects(pool.getConnection(), PoolOverloadedError);
  const waiting = parseMetrics(manager.metrics());
  assert.equal(metricValue(waiting, "shardlite_lease_waiters", shard), 1);
  await new Promise((resolve) => setTimeout(resolve, 5));
  await pool.returnConnection(held);
  const second = await waiter;
  await assert.rejects(pool.getConnection(), PoolTimeoutError); // waits 30 ms, times out
  await pool.returnConnection(second);
  const loaded = parseMetrics(manager.metrics());
  const change = (name: string) =>
    metricValue(loaded, name, shard) - metricValue(after, name, shard);
  assert.equal(change("shardlite_overload_refusals_total"), 1);
  assert.equal(change("shardlite_lease_timeouts_total"), 1);
  assert.equal(change("shardlite_lease_waits_total"), 1);
  assert.ok(change("shardlite_lease_wait_seconds_total") >= 0.004, "waited about 5 ms");
  assert.equal(change("shardlite_leases_total"), 2);
  assert.equal(metricValue(loaded, "shardlite_leases_active", shard), 0);
  assert.equal(metricValue(loaded, "shardlite_lease_waiters", shard), 0);
  assert.equal(change("shardlite_handles_replaced_total"), 0);
});

Deno.test("metrics(): counters survive a shard closed by maxOpenShards; no histogram untimed", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 3, dbDir: dir.path, maxOpenShards: 1 });
  await manager.createTable("t", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
  const keys = new Map<number, number>();
  for (let id = 1; keys.size < 3; id++) {
    const s = manager.getShardId(id, "t");
    if (!keys.has(s)) keys.set(s, id);
  }
  const before = parseMetrics(manager.metrics());
  assert.equal(before.has("shardlite_statement_duration_seconds"), false, "untimed: no histogram");
  for (const [, id] of keys) await manager.insert("t", { id });
  await manager.closeIdleShards();
  const after = parseMetrics(manager.metrics());
  for (const [s] of keys) {
    const grew = metricValue(after, "shardlite_statements_total", s) -
      metricValue(before, "shardlite_statements_total", s);
    assert.equal(grew, 1, `shard ${s}: one insert, counted after its pool closed`);
  }
  assert.equal(after.get("shardlite_open_shards")?.samples[0]?.value, 0);
  assert.ok((after.get("shardlite_shard_evictions_total")?.samples[0]?.value ?? 0) >= 2);
  for (const name of PER_SHARD) {
    for (const [s] of keys) {
      if (name.endsWith("_total")) {
        assert.ok(metricValue(after, name, s) >= metricValue(before, name, s), `${name} monotonic`);
      }
    }
  }
});

Deno.test("the test's parser refuses malformed exposition text", () => {
  const ok = '# HELP a_total A.\n# TYPE a_total counter\na_total{shard="0"} 1\n';
  parseMetrics(ok);
  const bad = [
    "a_total 1\n", // no TYPE before it
    "# TYPE a_total counter\na_total 1\n", // no HELP
    ok.replace('{shard="0"}', "{shard=0}"), // unquoted label value
    ok.replace('{shard="0"}', '{0shard="0"}'), // bad label name
    ok.replace(" 1\n", " one\n"), // not a number
    ok + 'a_total{shard="0"} 2\n', // the same series twice
    ok.replace("a_total counter", "a counter").replaceAll("a_total", "a"), // counter without _total
    "# HELP h H.\n# TYPE h histogram\n" +
    'h_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', // not cumulative
    "# HELP h H.\n# TYPE h histogram\n" +
    'h_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n', // +Inf != _count
    '# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', // no +Inf
    ok.slice(0, -1), // no final newline
  ];
  for (const text of bad) assert.throws(() => parseMetrics(text), assert.AssertionError, text);
});
