/**
 * Lease latency, contention and statement overhead of ConnectionPool, with
 * generic-pool and tarn doing the same work in the same run.
 *
 *   npx --yes deno@2.9.6 task bench
 */

import sqlite from "node-sqlite3-wasm";
import genericPool from "generic-pool";
import { Pool as TarnPool } from "tarn";
import { Semaphore } from "async-mutex";
import { ConnectionPool } from "../mod.ts";

const { Database } = sqlite;
const dir = Deno.makeTempDirSync({ prefix: "shardlite-bench-" });

// --- pools under test -----------------------------------------------------------------

function shardlite(name: string, maxConnections: number): ConnectionPool {
  return new ConnectionPool(`${dir}/${name}.db`, { maxConnections, fileCheckIntervalMs: 0 });
}

function generic(max: number): genericPool.Pool<object> {
  return genericPool.createPool<object>({
    create: () => Promise.resolve({}),
    destroy: () => Promise.resolve(),
  }, { max, min: 0 });
}

function tarn(max: number): TarnPool<object> {
  return new TarnPool<object>({
    create: () => ({}),
    destroy: () => {},
    min: 0,
    max,
  });
}

const slUncontended = shardlite("uncontended", 10);
const gpUncontended = generic(10);
const tnUncontended = tarn(10);
const semUncontended = new Semaphore(10);
// Open the file and create the first session before measuring.
await slUncontended.returnConnection(await slUncontended.getConnection());

Deno.bench({
  group: "lease + return, uncontended",
  name: "generic-pool acquire + release",
  baseline: true,
  async fn() {
    const r = await gpUncontended.acquire();
    await gpUncontended.release(r);
  },
});
Deno.bench({
  group: "lease + return, uncontended",
  name: "tarn acquire + release",
  async fn() {
    const r = await tnUncontended.acquire().promise;
    tnUncontended.release(r);
  },
});
Deno.bench({
  group: "lease + return, uncontended",
  name: "async-mutex Semaphore acquire + release (floor)",
  async fn() {
    const [, release] = await semUncontended.acquire();
    release();
  },
});
Deno.bench({
  group: "lease + return, uncontended",
  name: "shardlite getConnection + returnConnection",
  async fn() {
    const c = await slUncontended.getConnection();
    await slUncontended.returnConnection(c);
  },
});

// --- contention: 100 tasks share 4 slots, each holds its lease across one await --------
// Ten rounds per iteration (1,000 leases): single rounds are too short to time reliably.

const TASKS = 100;
const SLOTS = 4;
const slContended = shardlite("contended", SLOTS);
const gpContended = generic(SLOTS);
const tnContended = tarn(SLOTS);
await slContended.returnConnection(await slContended.getConnection());

async function contended(
  acquire: () => Promise<unknown>,
  release: (r: unknown) => unknown,
): Promise<void> {
  for (let round = 0; round < 10; round++) {
    const tasks = new Array<Promise<void>>(TASKS);
    for (let i = 0; i < TASKS; i++) {
      tasks[i] = (async () => {
        const r = await acquire();
        await null;
        await release(r);
      })();
    }
    await Promise.all(tasks);
  }
}

Deno.bench({
  group: "100 tasks on 4 slots (per 1,000 leases)",
  name: "generic-pool",
  baseline: true,
  fn: () => contended(() => gpContended.acquire(), (r) => gpContended.release(r as object)),
});
Deno.bench({
  group: "100 tasks on 4 slots (per 1,000 leases)",
  name: "tarn",
  fn: () => contended(() => tnContended.acquire().promise, (r) => tnContended.release(r as object)),
});
Deno.bench({
  group: "100 tasks on 4 slots (per 1,000 leases)",
  name: "shardlite",
  fn: () =>
    contended(
      () => slContended.getConnection(),
      (r) =>
        slContended.returnConnection(r as Awaited<ReturnType<typeof slContended.getConnection>>),
    ),
});

// --- a point SELECT through a lease against the raw driver handle -----------------------

const ROWS = 10_000;
function fill(db: InstanceType<typeof Database>): void {
  db.exec("CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)");
  db.exec("BEGIN");
  const insert = db.prepare("INSERT INTO users VALUES (?, ?, ?)");
  for (let i = 1; i <= ROWS; i++) insert.run([i, `user${i}`, 20 + (i % 50)]);
  insert.finalize();
  db.exec("COMMIT");
}

const raw = new Database(`${dir}/raw.db`);
raw.get("PRAGMA locking_mode=EXCLUSIVE");
raw.get("PRAGMA journal_mode=WAL");
fill(raw);
const rawSelect = raw.prepare("SELECT id, name, age FROM users WHERE id = ?");

const slSelect = shardlite("select", 10);
const held = await slSelect.getConnection();
await held.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)");
await held.transaction(async (c) => {
  for (let i = 1; i <= ROWS; i++) {
    await c.run("INSERT INTO users VALUES (?, ?, ?)", [i, `user${i}`, 20 + (i % 50)]);
  }
});
const POINT = "SELECT id, name, age FROM users WHERE id = ?";
let k = 0;
const nextId = () => (k = (k % ROWS) + 1);

Deno.bench({
  group: "point SELECT",
  name: "raw driver: prepared stmt.get",
  baseline: true,
  fn() {
    rawSelect.get([nextId()]);
  },
});
Deno.bench({
  group: "point SELECT",
  name: "shardlite: await conn.get on a held lease",
  async fn() {
    await held.get(POINT, [nextId()]);
  },
});
Deno.bench({
  group: "point SELECT",
  name: "shardlite: lease + get + return",
  async fn() {
    const c = await slSelect.getConnection();
    await c.get(POINT, [nextId()]);
    await slSelect.returnConnection(c);
  },
});

// --- reuse: leases served per session and per handle ------------------------------------

globalThis.addEventListener("unload", () => {
  for (
    const [label, pool] of [["uncontended", slUncontended], ["contended", slContended]] as const
  ) {
    const s = pool.getPoolStats();
    console.log(
      `reuse (${label}): ${s.totalLeases} leases served by ${s.totalConnectionsCreated} sessions ` +
        `(${Math.round(s.totalLeases / s.totalConnectionsCreated)} per session) and ` +
        `${s.handlesOpened} handle (${s.totalLeases} per handle)`,
    );
  }
  rawSelect.finalize();
  raw.close();
  Deno.removeSync(dir, { recursive: true });
});
