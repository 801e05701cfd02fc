/**
 * The driver seam: what a `DriverHandle` adds over its raw SQLite binding, for the
 * native driver (node:sqlite) and the wasm driver (node-sqlite3-wasm), in the same run.
 * Every database is configured as shard_file configures shards (EXCLUSIVE, then WAL),
 * with `synchronous=NORMAL` so that commits measure the driver rather than fsync.
 *
 *   npx --yes deno@2.9.6 bench --allow-read --allow-write bench/driver_bench.ts
 *
 * `deno bench` reports means and percentiles; for medians (of 31 samples of ≈5 ms each):
 *
 *   npx --yes deno@2.9.6 run --allow-read --allow-write bench/driver_bench.ts --medians
 */

import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import sqlite from "node-sqlite3-wasm";
import { ConnectionPool } from "../mod.ts";
import type { Driver, SyncDriver, SyncDriverHandle } from "../src/driver/driver.ts";
import { nativeDriver } from "../src/driver/native.ts";
import { wasmDriver } from "../src/driver/wasm.ts";

const { Database } = sqlite;
const dir = Deno.makeTempDirSync({ prefix: "shardlite-driver-bench-" });
const ROWS = 10_000;
const POINT = "SELECT id, name, age FROM users WHERE id = ?";
const SCHEMA = "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)";
const SETUP = ["PRAGMA locking_mode=EXCLUSIVE", "PRAGMA journal_mode=WAL"];
const INSERT_100 = `INSERT INTO log VALUES ${Array(100).fill("(?, ?, ?)").join(", ")}`;
const INSERT_1 = "INSERT INTO log VALUES (?, ?, ?)";

interface Case {
  group: string;
  name: string;
  baseline: boolean;
  fn: () => void | Promise<void>;
}
const cases: Case[] = [];

/** Registers a benchmark with `Deno.bench`, and keeps it for `--medians`. */
function bench(options: Case): void {
  cases.push(options);
  Deno.bench(options);
}

let k = 0;
const nextId = () => (k = (k % ROWS) + 1);
const users = Array.from({ length: ROWS }, (_, i) => [i + 1, `user${i + 1}`, 20 + ((i + 1) % 50)]);
const hundred = users.slice(0, 100).flat();
const thousand = users.slice(0, 1_000);

// --- the databases --------------------------------------------------------------------------

function rawNative(name: string): DatabaseSync {
  const db = new DatabaseSync(`${dir}/${name}.db`, { timeout: 0 });
  for (const pragma of SETUP) db.prepare(pragma).get();
  db.exec(`PRAGMA synchronous=NORMAL; ${SCHEMA}; CREATE TABLE log (a, b, c)`);
  const insert = db.prepare("INSERT INTO users VALUES (?, ?, ?)");
  db.exec("BEGIN");
  for (const [id, name, age] of users) {
    insert.run(BigInt(id as number), name!, BigInt(age as number));
  }
  db.exec("COMMIT");
  return db;
}

function rawWasm(name: string): InstanceType<typeof Database> {
  const db = new Database(`${dir}/${name}.db`);
  for (const pragma of SETUP) db.get(pragma);
  db.exec(`PRAGMA synchronous=NORMAL; ${SCHEMA}; CREATE TABLE log (a, b, c)`);
  const insert = db.prepare("INSERT INTO users VALUES (?, ?, ?)");
  db.exec("BEGIN");
  for (const row of users) insert.run(row);
  db.exec("COMMIT");
  insert.finalize();
  return db;
}

function handle(driver: SyncDriver, name: string): SyncDriverHandle {
  const h = driver.open(`${dir}/${name}.db`, { create: true, statementCacheSize: 128 });
  for (const pragma of SETUP) h.get(pragma);
  h.exec(`PRAGMA synchronous=NORMAL; ${SCHEMA}; CREATE TABLE log (a, b, c)`);
  h.exec("BEGIN");
  h.runMany("INSERT INTO users VALUES (?, ?, ?)", users);
  h.exec("COMMIT");
  return h;
}

async function pool(driver: Driver, name: string): Promise<ConnectionPool> {
  const p = new ConnectionPool(`${dir}/${name}.db`, {
    driver,
    fileCheckIntervalMs: 0,
    synchronous: "normal",
  });
  const c = await p.getConnection();
  await c.exec(SCHEMA);
  await c.transaction((t) => t.runMany("INSERT INTO users VALUES (?, ?, ?)", users));
  await p.returnConnection(c);
  return p;
}

const nativeRaw = rawNative("native-raw");
const wasmRaw = rawWasm("wasm-raw");
const native = handle(nativeDriver, "native");
const wasm = handle(wasmDriver, "wasm");
const nativePool = await pool(nativeDriver, "native-pool");
const wasmPool = await pool(wasmDriver, "wasm-pool");
const nativeLease = await nativePool.getConnection();
const wasmLease = await wasmPool.getConnection();

// --- point SELECT ---------------------------------------------------------------------------

const rawPoint = nativeRaw.prepare(POINT);
const rawPointArrays = nativeRaw.prepare(POINT);
(rawPointArrays as unknown as { setReturnArrays(on: boolean): void }).setReturnArrays(true);
const wasmRawPoint = wasmRaw.prepare(POINT);

bench({
  group: "point SELECT (prepared)",
  name: "raw node:sqlite: stmt.get(id)",
  baseline: true,
  fn() {
    rawPoint.get(nextId());
  },
});
bench({
  group: "point SELECT (prepared)",
  name: "raw node:sqlite: stmt.get(id), returnArrays",
  baseline: false,
  fn() {
    rawPointArrays.get(nextId());
  },
});
bench({
  group: "point SELECT (prepared)",
  name: "native handle.get",
  baseline: false,
  fn() {
    native.get(POINT, [nextId()]);
  },
});
bench({
  group: "point SELECT (prepared)",
  name: "native handle.get + inTransaction (as shard_file runs it)",
  baseline: false,
  fn() {
    native.get(POINT, [nextId()]);
    if (native.inTransaction) throw new Error("no transaction expected");
  },
});
bench({
  group: "point SELECT (prepared)",
  name: "raw node-sqlite3-wasm: stmt.get([id])",
  baseline: false,
  fn() {
    wasmRawPoint.get([nextId()]);
  },
});
bench({
  group: "point SELECT (prepared)",
  name: "wasm handle.get",
  baseline: false,
  fn() {
    wasm.get(POINT, [nextId()]);
  },
});

bench({
  group: "point SELECT on a held lease (ConnectionPool)",
  name: "raw node:sqlite: stmt.get(id)",
  baseline: true,
  fn() {
    rawPoint.get(nextId());
  },
});
bench({
  group: "point SELECT on a held lease (ConnectionPool)",
  name: "native driver: await conn.get",
  baseline: false,
  async fn() {
    await nativeLease.get(POINT, [nextId()]);
  },
});
bench({
  group: "point SELECT on a held lease (ConnectionPool)",
  name: "wasm driver: await conn.get",
  baseline: false,
  async fn() {
    await wasmLease.get(POINT, [nextId()]);
  },
});

// --- INSERT of 100 rows in one statement ------------------------------------------------------

const rawInsert100 = nativeRaw.prepare(INSERT_100);
const hundredBound = hundred.map((v) => typeof v === "number" ? BigInt(v) : v) as SQLInputValue[];
const wasmRawInsert100 = wasmRaw.prepare(INSERT_100);

bench({
  group: "INSERT 100 rows, one statement (autocommit)",
  name: "raw node:sqlite: stmt.run(...300 values)",
  baseline: true,
  fn() {
    rawInsert100.run(...hundredBound);
  },
});
bench({
  group: "INSERT 100 rows, one statement (autocommit)",
  name: "native handle.run",
  baseline: false,
  fn() {
    native.run(INSERT_100, hundred);
  },
});
bench({
  group: "INSERT 100 rows, one statement (autocommit)",
  name: "raw node-sqlite3-wasm: stmt.run(values)",
  baseline: false,
  fn() {
    wasmRawInsert100.run(hundred);
  },
});
bench({
  group: "INSERT 100 rows, one statement (autocommit)",
  name: "wasm handle.run",
  baseline: false,
  fn() {
    wasm.run(INSERT_100, hundred);
  },
});

// --- runMany of 1,000 rows in one transaction ---------------------------------------------------

const rawInsert1 = nativeRaw.prepare(INSERT_1);
const thousandBound = thousand.map((row) =>
  row.map((v) => typeof v === "number" ? BigInt(v) : v) as SQLInputValue[]
);

bench({
  group: "1,000 single-row INSERTs in a transaction",
  name: "raw node:sqlite: loop of stmt.run",
  baseline: true,
  fn() {
    nativeRaw.exec("BEGIN");
    for (const row of thousandBound) rawInsert1.run(...row);
    nativeRaw.exec("COMMIT");
  },
});
bench({
  group: "1,000 single-row INSERTs in a transaction",
  name: "native handle.runMany",
  baseline: false,
  fn() {
    native.exec("BEGIN");
    native.runMany(INSERT_1, thousand);
    native.exec("COMMIT");
  },
});
bench({
  group: "1,000 single-row INSERTs in a transaction",
  name: "wasm handle.runMany",
  baseline: false,
  fn() {
    wasm.exec("BEGIN");
    wasm.runMany(INSERT_1, thousand);
    wasm.exec("COMMIT");
  },
});

/** Time of `n` calls of `fn`, in ms. */
async function timeBatch(fn: Case["fn"], n: number): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    const result = fn();
    if (result instanceof Promise) await result;
  }
  return performance.now() - started;
}

/**
 * Median time per call of each case of a group, in µs: 31 rounds, each timing one batch
 * of about 5 ms of every case in turn, so that drift (other load, GC) hits all alike.
 */
async function groupMedians(group: readonly Case[]): Promise<number[]> {
  const batches: number[] = [];
  for (const c of group) {
    let n = 1;
    while ((await timeBatch(c.fn, n)) < 5) n *= 2;
    const warmUntil = performance.now() + 200;
    while (performance.now() < warmUntil) await timeBatch(c.fn, n);
    batches.push(n);
  }
  const samples: number[][] = group.map(() => []);
  for (let round = 0; round < 31; round++) {
    for (let i = 0; i < group.length; i++) {
      const n = batches[i] as number;
      samples[i]!.push(((await timeBatch(group[i]!.fn, n)) / n) * 1000);
    }
  }
  return samples.map((s) => s.sort((x, y) => x - y)[15] as number);
}

globalThis.addEventListener("unload", () => {
  wasmRawPoint.finalize();
  wasmRawInsert100.finalize();
  nativeRaw.close();
  wasmRaw.close();
  native.close();
  wasm.close();
  Deno.removeSync(dir, { recursive: true });
});

if (Deno.args.includes("--medians")) {
  for (const name of new Set(cases.map((c) => c.group))) {
    const group = cases.filter((c) => c.group === name);
    const medians = await groupMedians(group);
    const baseline = medians[group.findIndex((c) => c.baseline)] as number;
    console.log(`\n${name}`);
    group.forEach((c, i) => {
      const us = medians[i] as number;
      const time = us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(2)} µs`;
      console.log(`  ${c.name.padEnd(58)} ${time.padStart(10)}  ${(us / baseline).toFixed(2)}x`);
    });
  }
  dispatchEvent(new Event("unload"));
  Deno.exit(0);
}
