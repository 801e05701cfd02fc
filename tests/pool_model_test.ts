/**
 * Model-based tests of ConnectionPool with fast-check:
 * - `fc.commands` + `fc.asyncModelRun`: random sequences of pool operations checked
 *   against a model after every command;
 * - `fc.scheduler()`: random interleavings of concurrent tasks that lease, write in
 *   transactions, read and return.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ConnectionPool,
  LeaseReleasedError,
  PoolClosedError,
  type PooledConnection,
  type PoolEvent,
  PoolOverloadedError,
  type PoolStats,
  PoolTimeoutError,
  ShardliteError,
} from "../mod.ts";
import { tempDir, tick } from "./helpers.ts";

/** A lease timeout no command ever reaches: only the TimeoutWaiter command times out. */
const LONG_MS = 60_000;

/** Lets callbacks already queued as microtasks run (no timers involved). */
async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/**
 * Whether `p` is still pending. Races `p` itself (subscribed first) against an already
 * resolved marker, so an already-settled `p` wins the race.
 */
async function isPending(p: Promise<unknown>): Promise<boolean> {
  const marker = Symbol("pending");
  const winner = await Promise.race([p, Promise.resolve(marker)]).catch(() => null);
  return winner === marker;
}

function sortedIds(rows: { id?: unknown }[]): number[] {
  return rows.map((row) => Number(row.id)).sort((a, b) => a - b);
}

function sorted(ids: Iterable<number>): number[] {
  return [...ids].sort((a, b) => a - b);
}

// ---------------------------------------------------------------------------------------
// (a) fc.commands over a ConnectionPool
// ---------------------------------------------------------------------------------------

interface LeaseRec {
  conn: PooledConnection;
  /** A sibling read started while another lease held the transaction, not yet checked. */
  pendingRead: Promise<unknown> | null;
}

interface WaiterRec {
  order: number;
  promise: Promise<PooledConnection>;
  outcome: { kind: "pending" } | { kind: "lease"; conn: PooledConnection } | {
    kind: "error";
    error: unknown;
  };
  controller: AbortController | undefined;
}

interface Counters {
  totalLeases: number;
  totalWaited: number;
  timeouts: number;
  aborted: number;
  overloaded: number;
  doubleReturns: number;
  rollbacksOnReturn: number;
  connectionsClosed: number;
  transactionWaits: number;
}

interface Model {
  readonly max: number;
  readonly maxWaiting: number;
  /** Leases handed out and not returned, oldest first. */
  active: LeaseRec[];
  /** Leases returned or closed. */
  returned: PooledConnection[];
  /** Live waiters in arrival order. */
  waiters: WaiterRec[];
  /** Every waiter ever created (to check the dead ones never get a lease). */
  allWaiters: WaiterRec[];
  nextWaiterOrder: number;
  /** The lease holding the shard's transaction and the rows it wrote. */
  tx: { lease: LeaseRec; rows: number[] } | null;
  committed: Set<number>;
  /** Sibling reads whose lease was returned while they waited: they must never run. */
  orphanReads: Promise<unknown>[];
  nextRowId: number;
  counters: Counters;
  closed: boolean;
  /** Commands run so far (closeAll waits for a few, so that runs get deep). */
  steps: number;
  /** Every lease object ever handed out (identity). */
  seen: Set<PooledConnection>;
}

interface Real {
  pool: ConnectionPool;
  events: PoolEvent[];
  /** Stats right after setup; counters are compared as deltas from it. */
  base: PoolStats;
}

type PoolCommand = fc.AsyncCommand<Model, Real, false>;

class Cmd implements PoolCommand {
  constructor(
    readonly label: string,
    readonly pre: (m: Model) => boolean,
    readonly body: (m: Model, r: Real) => Promise<void>,
  ) {}
  check(m: Readonly<Model>): boolean {
    return this.pre(m as Model);
  }
  async run(m: Model, r: Real): Promise<void> {
    m.steps++;
    await this.body(m, r);
    await flushMicrotasks();
    checkInvariants(m, r, this.label);
  }
  toString(): string {
    return this.label;
  }
}

function pick<T>(list: readonly T[], index: number): T {
  const item = list[index % list.length];
  if (item === undefined) throw new Error("pick() from an empty list");
  return item;
}

function checkInvariants(m: Model, r: Real, after: string): void {
  const stats = r.pool.getPoolStats();
  const where = `after ${after}`;
  assert.ok(stats.activeConnections <= m.max, `${where}: active > maxConnections`);
  assert.equal(stats.activeConnections, m.active.length, `${where}: activeConnections`);
  assert.equal(stats.waiting, m.waiters.length, `${where}: waiting`);
  assert.ok(stats.poolSize <= m.max, `${where}: poolSize > maxConnections`);
  if (!m.closed && m.waiters.length > 0) {
    assert.equal(stats.activeConnections, m.max, `${where}: waiters while a slot is free`);
  }
  const c = m.counters;
  const b = r.base;
  assert.equal(stats.totalLeases - b.totalLeases, c.totalLeases, `${where}: totalLeases`);
  assert.equal(stats.totalWaited - b.totalWaited, c.totalWaited, `${where}: totalWaited`);
  assert.equal(stats.timeouts - b.timeouts, c.timeouts, `${where}: timeouts`);
  assert.equal(stats.aborted - b.aborted, c.aborted, `${where}: aborted`);
  assert.equal(stats.overloaded - b.overloaded, c.overloaded, `${where}: overloaded`);
  assert.equal(stats.doubleReturns - b.doubleReturns, c.doubleReturns, `${where}: doubleReturns`);
  assert.equal(
    stats.rollbacksOnReturn - b.rollbacksOnReturn,
    c.rollbacksOnReturn,
    `${where}: rollbacksOnReturn`,
  );
  assert.equal(
    stats.connectionsClosed - b.connectionsClosed,
    c.connectionsClosed,
    `${where}: connectionsClosed`,
  );
  if (!m.closed) {
    assert.equal(
      stats.transactionWaits - b.transactionWaits,
      c.transactionWaits,
      `${where}: transactionWaits`,
    );
  }
  // No lease (nor its session) is active twice.
  const conns = new Set(m.active.map((l) => l.conn));
  assert.equal(conns.size, m.active.length, `${where}: a lease object is active twice`);
  const sessions = new Set(m.active.map((l) => l.conn.sessionId));
  assert.equal(sessions.size, m.active.length, `${where}: two active leases share a session`);
  for (const lease of m.active) {
    assert.equal(lease.conn.released, false, `${where}: active lease #${lease.conn.id} released`);
    assert.equal(
      lease.conn.inTransaction,
      m.tx?.lease === lease,
      `${where}: lease #${lease.conn.id} inTransaction`,
    );
  }
  for (const conn of m.returned) {
    assert.equal(conn.released, true, `${where}: returned lease #${conn.id} not released`);
  }
  // Live waiters are still waiting; dead ones never got a lease.
  for (const waiter of m.allWaiters) {
    const live = m.waiters.includes(waiter);
    if (live) {
      assert.equal(waiter.outcome.kind, "pending", `${where}: waiter ${waiter.order} settled`);
    } else {
      assert.notEqual(waiter.outcome.kind, "pending", `${where}: waiter ${waiter.order} pending`);
    }
  }
}

/** Registers a lease just handed out: never seen before, not released. */
function adopt(m: Model, conn: PooledConnection): LeaseRec {
  assert.ok(!m.seen.has(conn), `lease #${conn.id} was handed out twice`);
  assert.equal(conn.released, false);
  m.seen.add(conn);
  const lease: LeaseRec = { conn, pendingRead: null };
  m.active.push(lease);
  m.counters.totalLeases++;
  return lease;
}

function newWaiter(
  m: Model,
  promise: Promise<PooledConnection>,
  controller: AbortController | undefined,
): WaiterRec {
  const waiter: WaiterRec = {
    order: m.nextWaiterOrder++,
    promise,
    outcome: { kind: "pending" },
    controller,
  };
  promise.then(
    (conn) => waiter.outcome = { kind: "lease", conn },
    (error: unknown) => waiter.outcome = { kind: "error", error },
  );
  m.allWaiters.push(waiter);
  return waiter;
}

/** A slot was freed: the oldest live waiter (and only it) must get the lease. */
async function expectServe(m: Model): Promise<void> {
  const next = m.waiters.shift();
  if (next === undefined) return;
  // Serving is synchronous: once queued callbacks ran, the oldest waiter has its lease.
  await tick();
  const outcome = next.outcome;
  assert.equal(outcome.kind, "lease", `FIFO: the oldest waiter (${next.order}) was not served`);
  const conn = await next.promise;
  adopt(m, conn);
  m.counters.totalWaited++;
  await flushMicrotasks();
  for (const other of m.waiters) {
    assert.equal(other.outcome.kind, "pending", `FIFO: waiter ${other.order} served out of turn`);
  }
}

/** Sibling reads pending on the transaction: they run once it ends and see committed rows. */
async function settleReads(m: Model): Promise<void> {
  const expected = sorted(m.committed);
  for (const lease of m.active) {
    const read = lease.pendingRead;
    if (read === null) continue;
    lease.pendingRead = null;
    await tick();
    assert.equal(await isPending(read), false, "a sibling read still waits after the tx");
    const rows = await read as { id: number }[];
    assert.deepEqual(sortedIds(rows), expected, "a sibling read saw uncommitted rows");
  }
  for (const read of m.orphanReads.splice(0)) {
    await tick();
    assert.equal(await isPending(read), false, "a returned lease's read still waits");
    await assert.rejects(read, LeaseReleasedError, "a returned lease's queued read ran");
  }
}

/** Ends a lease through returnConnection or closeConnection, with the model's effects. */
async function endLease(m: Model, r: Real, lease: LeaseRec, how: "return" | "close") {
  const orphan = lease.pendingRead;
  lease.pendingRead = null;
  const wasOwner = m.tx?.lease === lease;
  if (how === "return") await r.pool.returnConnection(lease.conn);
  else await r.pool.closeConnection(lease.conn);
  m.active.splice(m.active.indexOf(lease), 1);
  m.returned.push(lease.conn);
  if (how === "close") m.counters.connectionsClosed++;
  if (orphan !== null) {
    // Returned while its read waits for the transaction: the read must fail, later.
    m.orphanReads.push(orphan);
    assert.equal(await isPending(orphan), true, "a queued read settled before the tx ended");
  }
  if (wasOwner) {
    m.tx = null;
    m.counters.rollbacksOnReturn++;
    const last = r.events.at(-1);
    assert.ok(
      r.events.some((e) => e.type === "rollback-on-return" && e.leaseId === lease.conn.id),
      `no rollback-on-return event for lease #${lease.conn.id} (last: ${last?.type})`,
    );
    await settleReads(m);
  }
  await expectServe(m);
}

const open = (m: Model) => !m.closed;
const idleLeases = (m: Model) => m.active.filter((l) => l.pendingRead === null);

/**
 * How often each command of {@link commandArbs} is drawn, in its order: the commands that
 * open states (leases, transactions, waiters, sibling reads) come more often, since
 * fc.commands skips commands whose precondition does not hold.
 */
const WEIGHTS = [4, 3, 1, 2, 1, 3, 1, 1, 3, 2, 2, 4, 1, 1, 1, 1];

function commandArbs(): fc.Arbitrary<PoolCommand>[] {
  const arbs = [
    // Take a lease on the fast path (a free slot, nobody waiting).
    fc.constant(
      new Cmd(
        "GetNow",
        (m) => open(m) && m.active.length < m.max && m.waiters.length === 0,
        async (m, r) => {
          adopt(m, await r.pool.getConnection({ timeoutMs: LONG_MS }));
        },
      ),
    ),
    // Ask while the pool is full: wait (optionally abortable), or be refused when the
    // wait line is full.
    fc.boolean().map((abortable) =>
      new Cmd(
        `GetWait(abortable=${abortable})`,
        (m) => open(m) && m.active.length === m.max,
        async (m, r) => {
          const controller = abortable ? new AbortController() : undefined;
          const promise = r.pool.getConnection(
            controller === undefined
              ? { timeoutMs: LONG_MS }
              : { timeoutMs: LONG_MS, signal: controller.signal },
          );
          const waiter = newWaiter(m, promise, controller);
          if (m.waiters.length >= m.maxWaiting) {
            await flushMicrotasks();
            assert.equal(waiter.outcome.kind, "error", "an overloaded request must fail at once");
            await assert.rejects(promise, PoolOverloadedError);
            m.counters.overloaded++;
          } else {
            m.waiters.push(waiter);
          }
        },
      )
    ),
    // A waiter with the pool's tiny default timeout: it times out and never gets a lease.
    fc.constant(
      new Cmd(
        "TimeoutWaiter",
        (m) => open(m) && m.active.length === m.max && m.waiters.length < m.maxWaiting,
        async (m, r) => {
          const waiter = newWaiter(m, r.pool.getConnection(), undefined);
          m.waiters.push(waiter);
          assert.equal(r.pool.getPoolStats().waiting, m.waiters.length);
          const error = await waiter.promise.then(() => null, (e: unknown) => e);
          assert.ok(error instanceof PoolTimeoutError, `expected PoolTimeoutError, got ${error}`);
          assert.equal(error.waitingFor, "lease");
          m.waiters.splice(m.waiters.indexOf(waiter), 1);
          m.counters.timeouts++;
        },
      ),
    ),
    // Abort one live abortable waiter.
    fc.nat().map((i) =>
      new Cmd(
        `AbortWaiter(${i})`,
        (m) => open(m) && m.waiters.some((w) => w.controller !== undefined),
        async (m) => {
          const waiter = pick(m.waiters.filter((w) => w.controller !== undefined), i);
          const reason = new Error(`abort waiter ${waiter.order}`);
          waiter.controller?.abort(reason);
          await assert.rejects(waiter.promise, (e) => e === reason);
          m.waiters.splice(m.waiters.indexOf(waiter), 1);
          m.counters.aborted++;
        },
      )
    ),
    // An already-aborted signal is refused at once, whether a slot is free or not.
    fc.constant(
      new Cmd("GetPreAborted", open, async (m, r) => {
        const reason = new Error("aborted before asking");
        await assert.rejects(
          r.pool.getConnection({ signal: AbortSignal.abort(reason) }),
          (e) => e === reason,
        );
        m.counters.aborted++;
      }),
    ),
    // Return or close a lease (served waiters FIFO; an open transaction is rolled back).
    fc.tuple(fc.nat(), fc.constantFrom("return" as const, "close" as const)).map(([i, how]) =>
      new Cmd(
        `End(${i}, ${how})`,
        (m) => m.active.length > 0,
        async (m, r) => {
          await endLease(m, r, pick(m.active, i), how);
        },
      )
    ),
    // Return an ended lease again: a no-op apart from doubleReturns and an event.
    fc.tuple(fc.nat(), fc.boolean()).map(([i, viaClose]) =>
      new Cmd(
        `DoubleReturn(${i}, close=${viaClose})`,
        (m) => m.returned.length > 0,
        async (m, r) => {
          const conn = pick(m.returned, i);
          const before = r.pool.getPoolStats();
          const eventsBefore = r.events.length;
          if (viaClose) {
            await r.pool.closeConnection(conn);
            assert.deepEqual(r.pool.getPoolStats(), before);
            assert.equal(r.events.length, eventsBefore);
          } else {
            await r.pool.returnConnection(conn);
            assert.deepEqual(r.pool.getPoolStats(), {
              ...before,
              doubleReturns: before.doubleReturns + 1,
            });
            assert.deepEqual(r.events.slice(eventsBefore), [
              { type: "double-return", path: r.pool.path, leaseId: conn.id },
            ]);
            m.counters.doubleReturns++;
          }
        },
      )
    ),
    // Any use of an ended lease rejects with LeaseReleasedError.
    fc.tuple(fc.nat(), fc.nat({ max: 3 })).map(([i, how]) =>
      new Cmd(
        `UseReturned(${i}, ${how})`,
        (m) => m.returned.length > 0,
        async (m) => {
          const conn = pick(m.returned, i);
          const use = [
            () => conn.get("SELECT 1"),
            () => conn.exec("BEGIN"),
            () => conn.transaction(() => {}),
            () => conn.execute("SELECT 1"),
          ][how]!;
          await assert.rejects(use(), LeaseReleasedError);
          if (m.tx !== null) assert.equal(m.tx.lease.conn.inTransaction, true);
        },
      )
    ),
    // Open a transaction on a lease through SQL.
    fc.tuple(fc.nat(), fc.constantFrom("BEGIN", "BEGIN IMMEDIATE")).map(([i, sql]) =>
      new Cmd(
        `Begin(${i}, ${sql})`,
        (m) => open(m) && m.tx === null && m.active.length > 0,
        async (m) => {
          const lease = pick(m.active, i);
          await lease.conn.exec(sql);
          m.tx = { lease, rows: [] };
        },
      )
    ),
    // Write inside the open transaction.
    fc.constant(
      new Cmd("TxWrite", (m) => open(m) && m.tx !== null, async (m) => {
        const tx = m.tx!;
        const id = m.nextRowId++;
        await tx.lease.conn.run("INSERT INTO t (id) VALUES (?)", [id]);
        tx.rows.push(id);
      }),
    ),
    // End the open transaction.
    fc.constantFrom("COMMIT", "commit()", "ROLLBACK", "rollback()").map((how) =>
      new Cmd(`EndTx(${how})`, (m) => open(m) && m.tx !== null, async (m) => {
        const tx = m.tx!;
        const conn = tx.lease.conn;
        if (how === "COMMIT") await conn.exec("COMMIT");
        else if (how === "commit()") await conn.commit();
        else if (how === "ROLLBACK") await conn.exec("ROLLBACK");
        else await conn.rollback();
        assert.equal(conn.inTransaction, false);
        m.tx = null;
        if (how.toLowerCase().startsWith("commit")) {
          for (const id of tx.rows) m.committed.add(id);
        }
        await settleReads(m);
      })
    ),
    // A sibling reads while another lease holds the transaction: it must wait.
    fc.nat().map((i) =>
      new Cmd(
        `SiblingRead(${i})`,
        (m) => open(m) && m.tx !== null && idleLeases(m).some((l) => l !== m.tx?.lease),
        async (m) => {
          const lease = pick(idleLeases(m).filter((l) => l !== m.tx?.lease), i);
          const read = lease.conn.all("SELECT id FROM t");
          read.catch(() => {});
          lease.pendingRead = read;
          m.counters.transactionWaits++;
          await flushMicrotasks();
          assert.equal(await isPending(read), true, "a sibling read ran inside a transaction");
        },
      )
    ),
    // Autocommit write or read with no transaction open.
    fc.tuple(fc.nat(), fc.boolean()).map(([i, write]) =>
      new Cmd(
        `Autocommit(${i}, ${write ? "write" : "read"})`,
        (m) => open(m) && m.tx === null && m.active.length > 0,
        async (m) => {
          const conn = pick(m.active, i).conn;
          if (write) {
            const id = m.nextRowId++;
            await conn.run("INSERT INTO t (id) VALUES (?)", [id]);
            m.committed.add(id);
          } else {
            assert.deepEqual(sortedIds(await conn.all("SELECT id FROM t")), sorted(m.committed));
          }
        },
      )
    ),
    // transaction(fn): all rows or none.
    fc.tuple(fc.nat(), fc.integer({ min: 1, max: 3 }), fc.boolean()).map(([i, n, fail]) =>
      new Cmd(
        `TransactionFn(${i}, rows=${n}, fail=${fail})`,
        (m) => open(m) && m.tx === null && m.active.length > 0,
        async (m) => {
          const conn = pick(m.active, i).conn;
          const ids = Array.from({ length: n }, () => m.nextRowId++);
          const marker = new Error("roll me back");
          const done = conn.transaction(async (tx) => {
            assert.equal(tx.inTransaction, true);
            for (const id of ids) await tx.run("INSERT INTO t (id) VALUES (?)", [id]);
            if (fail) throw marker;
          });
          if (fail) await assert.rejects(done, (e) => e === marker);
          else {
            await done;
            for (const id of ids) m.committed.add(id);
          }
          assert.equal(conn.inTransaction, false);
        },
      )
    ),
    // closeAll, either forcing active leases closed at once or draining them.
    fc.boolean().map((force) =>
      new Cmd(`CloseAll(force=${force})`, (m) => open(m) && m.steps > 8, async (m, r) => {
        const waiters = m.waiters.splice(0);
        const reads = m.active.flatMap((l) => l.pendingRead === null ? [] : [l.pendingRead]);
        reads.push(...m.orphanReads.splice(0));
        const eventsBefore = r.events.length;
        const activeBefore = m.active.map((l) => l.conn.id);
        const closing = r.pool.closeAll({ graceMs: force ? 0 : LONG_MS });
        m.closed = true;
        for (const waiter of waiters) await assert.rejects(waiter.promise, PoolClosedError);
        await assert.rejects(r.pool.getConnection(), PoolClosedError);
        assert.equal(r.pool.getPoolStats().closed, true);
        if (force) {
          await closing;
          for (const read of reads) await assert.rejects(read, ShardliteError);
          const forced = r.events.slice(eventsBefore).filter((e) => e.type === "forced-close");
          assert.deepEqual(
            sorted(forced.map((e) => e.type === "forced-close" ? e.leaseId : -1)),
            sorted(activeBefore),
          );
          if (m.tx !== null) m.counters.rollbacksOnReturn++;
          m.counters.connectionsClosed += m.active.length;
        } else {
          // Drain: end the transaction, let its waiting readers finish, return every lease.
          if (m.tx !== null) {
            await m.tx.lease.conn.rollback();
            m.tx = null;
            await settleReads(m);
          }
          if (m.active.length > 0) {
            assert.equal(await isPending(closing), true, "closeAll must wait for leases");
          }
          for (const lease of m.active) await r.pool.returnConnection(lease.conn);
          await closing;
          assert.ok(!r.events.slice(eventsBefore).some((e) => e.type === "forced-close"));
        }
        m.tx = null;
        for (const lease of m.active) {
          lease.pendingRead = null;
          m.returned.push(lease.conn);
        }
        m.active = [];
        const stats = r.pool.getPoolStats();
        assert.equal(stats.handleOpen, false);
        assert.equal(stats.poolSize, 0);
      })
    ),
    fc.constant(
      new Cmd("GetAfterClose", (m) => m.closed, async (_m, r) => {
        await assert.rejects(r.pool.getConnection(), PoolClosedError);
        await assert.rejects(r.pool.getConnection({ timeoutMs: 1 }), PoolClosedError);
      }),
    ),
  ];
  assert.equal(arbs.length, WEIGHTS.length);
  return arbs.flatMap((arb, i) => Array.from({ length: WEIGHTS[i] ?? 1 }, () => arb));
}

Deno.test("model: random command sequences keep the pool's invariants", async () => {
  await using dir = await tempDir("shardlite-model-");
  let run = 0;
  const arbs = commandArbs();
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 1, max: 3 }),
      fc.integer({ min: 20, max: 50 }),
      fc.commands(arbs, { maxCommands: 80, size: "max" }),
      async (max, maxWaiting, timeoutMs, cmds) => {
        const path = `${dir.path}/model_${run++}.db`;
        const events: PoolEvent[] = [];
        const pool = new ConnectionPool(path, {
          maxConnections: max,
          maxWaiting,
          timeoutMs,
          onEvent: (e) => events.push(e),
        });
        try {
          await pool.withConnection((c) => c.exec("CREATE TABLE t (id INTEGER PRIMARY KEY)"));
          const real: Real = { pool, events, base: pool.getPoolStats() };
          const model: Model = {
            max,
            maxWaiting,
            active: [],
            returned: [],
            waiters: [],
            allWaiters: [],
            nextWaiterOrder: 0,
            tx: null,
            committed: new Set(),
            orphanReads: [],
            nextRowId: 1,
            counters: {
              totalLeases: 0,
              totalWaited: 0,
              timeouts: 0,
              aborted: 0,
              overloaded: 0,
              doubleReturns: 0,
              rollbacksOnReturn: 0,
              connectionsClosed: 0,
              transactionWaits: 0,
            },
            closed: false,
            steps: 0,
            seen: new Set(),
          };
          await fc.asyncModelRun(() => ({ model, real }), cmds);
          // Whatever happened, the committed rows (and only they) are on disk.
          if (!model.closed) {
            await pool.closeAll({ graceMs: 0 });
            model.closed = true;
          }
          const check = new ConnectionPool(path, { onEvent: () => {} });
          try {
            const rows = await check.withConnection((c) => c.all("SELECT id FROM t"));
            assert.deepEqual(sortedIds(rows), sorted(model.committed));
          } finally {
            await check.closeAll();
          }
        } finally {
          await pool.closeAll({ graceMs: 0 });
          await Deno.remove(path);
        }
      },
    ),
    { numRuns: 120 },
  );
});

// ---------------------------------------------------------------------------------------
// (b) fc.scheduler: interleavings of concurrent tasks
// ---------------------------------------------------------------------------------------

type TaskKind = "autocommit" | "tx-commit" | "tx-throw" | "sql-commit" | "sql-return" | "read";

interface TaskSpec {
  kind: TaskKind;
  rows: number;
  end: "return" | "close";
}

const taskArb: fc.Arbitrary<TaskSpec> = fc.record({
  kind: fc.constantFrom<TaskKind>(
    "autocommit",
    "tx-commit",
    "tx-throw",
    "sql-commit",
    "sql-return",
    "read",
  ),
  rows: fc.integer({ min: 1, max: 3 }),
  end: fc.constantFrom("return" as const, "close" as const),
});

Deno.test("scheduler: concurrent leases and transactions interleave safely", async () => {
  await using dir = await tempDir("shardlite-sched-");
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.scheduler(),
      fc.integer({ min: 1, max: 3 }),
      fc.array(taskArb, { minLength: 2, maxLength: 6 }),
      async (s, max, specs) => {
        const path = `${dir.path}/sched_${run++}.db`;
        const events: PoolEvent[] = [];
        const pool = new ConnectionPool(path, {
          maxConnections: max,
          timeoutMs: 5_000,
          onEvent: (e) => events.push(e),
        });
        try {
          await pool.withConnection((c) => c.exec("CREATE TABLE t (id INTEGER PRIMARY KEY)"));
          const held = new Set<PooledConnection>();
          const seen = new Set<PooledConnection>();
          const committed = new Set<number>();
          const reads: { before: number[]; rows: number[] }[] = [];
          let nextId = 1;

          const check = (where: string) => {
            const stats = pool.getPoolStats();
            assert.ok(stats.activeConnections <= max, `${where}: active > max`);
            // A waiter's continuation may not have run yet: the pool may count a lease
            // the task has not recorded, never the reverse.
            assert.ok(stats.activeConnections >= held.size, `${where}: active < held`);
            const sessions = new Set([...held].map((c) => c.sessionId));
            assert.equal(sessions.size, held.size, `${where}: two held leases share a session`);
            const owners = [...held].filter((c) => c.inTransaction);
            assert.ok(owners.length <= 1, `${where}: two leases in a transaction`);
          };
          const point = async (label: string) => {
            check(label);
            await s.schedule(Promise.resolve(), label);
            check(label);
          };

          const task = async (spec: TaskSpec, n: number) => {
            await point(`t${n} start`);
            const conn = await pool.getConnection();
            assert.ok(!seen.has(conn), `t${n}: lease handed out twice`);
            assert.ok(!conn.released);
            seen.add(conn);
            held.add(conn);
            check(`t${n} leased`);
            try {
              await point(`t${n} leased`);
              const ids = Array.from({ length: spec.rows }, () => nextId++);
              switch (spec.kind) {
                case "autocommit":
                  for (const id of ids) {
                    await conn.run("INSERT INTO t (id) VALUES (?)", [id]);
                    committed.add(id);
                    await point(`t${n} wrote ${id}`);
                  }
                  break;
                case "tx-commit":
                case "tx-throw": {
                  const marker = new Error("rollback");
                  const done = conn.transaction(async (tx) => {
                    for (const id of ids) {
                      await tx.run("INSERT INTO t (id) VALUES (?)", [id]);
                      await point(`t${n} tx wrote ${id}`);
                    }
                    if (spec.kind === "tx-throw") throw marker;
                  });
                  if (spec.kind === "tx-throw") await assert.rejects(done, (e) => e === marker);
                  else {
                    await done;
                    for (const id of ids) committed.add(id);
                  }
                  break;
                }
                case "sql-commit":
                case "sql-return":
                  await conn.exec("BEGIN");
                  for (const id of ids) {
                    await conn.run("INSERT INTO t (id) VALUES (?)", [id]);
                    await point(`t${n} sql tx wrote ${id}`);
                  }
                  if (spec.kind === "sql-commit") {
                    await conn.exec("COMMIT");
                    for (const id of ids) committed.add(id);
                  } // else: returned inside the transaction, rolled back below.
                  break;
                case "read": {
                  const before = sorted(committed);
                  const rows = sortedIds(await conn.all("SELECT id FROM t"));
                  reads.push({ before, rows });
                  break;
                }
              }
              await point(`t${n} done`);
            } finally {
              held.delete(conn);
              if (spec.end === "return") await pool.returnConnection(conn);
              else await pool.closeConnection(conn);
              assert.ok(conn.released);
              await assert.rejects(conn.get("SELECT 1"), LeaseReleasedError);
            }
          };

          await s.waitFor(Promise.all(specs.map((spec, n) => task(spec, n))));

          const stats = pool.getPoolStats();
          assert.equal(stats.activeConnections, 0);
          assert.equal(stats.waiting, 0);
          assert.equal(stats.totalLeases, specs.length + 1);
          assert.equal(stats.timeouts, 0);
          assert.equal(
            stats.rollbacksOnReturn,
            specs.filter((t) => t.kind === "sql-return").length,
          );
          assert.equal(stats.connectionsClosed, specs.filter((t) => t.end === "close").length);
          const final = await pool.withConnection((c) => c.all("SELECT id FROM t"));
          assert.deepEqual(sortedIds(final), sorted(committed), "table != committed writes");
          for (const read of reads) {
            for (const id of read.before) assert.ok(read.rows.includes(id), "a read lost a row");
            for (const id of read.rows) assert.ok(committed.has(id), `read uncommitted row ${id}`);
          }
        } finally {
          await pool.closeAll({ graceMs: 0 });
          await Deno.remove(path);
        }
      },
    ),
    { numRuns: 100 },
  );
});

// ---------------------------------------------------------------------------------------
// Regression: a statement queued behind a sibling's transaction must not run after its
// lease was returned (found while writing the model above).
// ---------------------------------------------------------------------------------------

Deno.test("a statement waiting for a transaction does not run after its lease is returned", async () => {
  await using dir = await tempDir();
  const events: PoolEvent[] = [];
  const pool = new ConnectionPool(`${dir.path}/s.db`, {
    maxConnections: 2,
    timeoutMs: 2_000,
    onEvent: (e) => events.push(e),
  });
  try {
    const a = await pool.getConnection();
    const b = await pool.getConnection();
    await a.exec("CREATE TABLE t (x)");
    await a.exec("BEGIN");
    await a.run("INSERT INTO t VALUES (1)");
    const pending = b.exec("BEGIN"); // waits for a's transaction
    pending.catch(() => {});
    await pool.returnConnection(b); // b gives up while its statement waits
    await a.exec("COMMIT");
    await assert.rejects(pending, LeaseReleasedError, "the queued BEGIN ran on a returned lease");
    // b's session is reused by the next lease, which must not inherit a transaction.
    const c = await pool.getConnection();
    assert.equal(c.sessionId, b.sessionId);
    assert.equal(c.inTransaction, false, "a fresh lease inherited a transaction it never began");
    // And the shard is not held by an idle session: another lease can still write.
    await a.run("INSERT INTO t VALUES (2)");
    await pool.returnConnection(c);
    await pool.returnConnection(a);
  } finally {
    await pool.closeAll({ graceMs: 0 });
  }
});
