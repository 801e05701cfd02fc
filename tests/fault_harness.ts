/**
 * A harness for fault-injection tests of `ConnectionPool` over a {@link FakeDriver}:
 * it runs leases and transactions, guards every one with a test-owned deadline, samples
 * the pool's counts at every driver call and pool event, and checks afterwards that no
 * lease was lost, every error was typed and named the shard, no committed row
 * disappeared and no failed transaction left a row behind.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import {
  ConnectionBrokenError,
  ConnectionPool,
  PoolClosedError,
  type PooledConnection,
  type PoolEvent,
  type PoolOptions,
  PoolTimeoutError,
  QueryError,
  ShardliteError,
  ShardOpenError,
} from "../mod.ts";
import { FakeDriver, type FakeDriverOptions, FAULT_PHASES, type FaultRule } from "./fake_driver.ts";

/** How a guarded promise ended. */
export type Settled<T> =
  | { status: "fulfilled"; value: T }
  | { status: "rejected"; reason: unknown }
  | { status: "hung" };

/**
 * Races `promise` against a deadline owned by the test: `hung` when the deadline wins.
 * The deadline's timer is cleared as soon as the promise settles.
 */
export async function guard<T>(promise: Promise<T>, deadlineMs: number): Promise<Settled<T>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<Settled<T>>((resolve) => {
    timer = setTimeout(() => resolve({ status: "hung" }), deadlineMs);
  });
  try {
    return await Promise.race([
      promise.then(
        (value): Settled<T> => ({ status: "fulfilled", value }),
        (reason): Settled<T> => ({ status: "rejected", reason }),
      ),
      deadline,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The error classes a caller of the pool may see under driver faults. */
export const TYPED_ERRORS = [
  PoolTimeoutError,
  ConnectionBrokenError,
  ShardOpenError,
  QueryError,
  PoolClosedError,
] as const;

/** What one operation of a storm did. */
export interface Outcome {
  /** A readable name: kind, worker and ids. */
  label: string;
  /** `tx`: rows inserted in one transaction; `auto`: one autocommit insert; `read`; `lease`. */
  kind: "tx" | "auto" | "read" | "lease";
  /** Rows the operation inserts. */
  ids: number[];
  /** How it ended. */
  status: "fulfilled" | "rejected" | "hung";
  /** The rejection, if any. */
  error?: unknown;
  /** A failure that may still have written (an answer lost after the real call ran). */
  ambiguous: boolean;
}

/** Options of a {@link FaultHarness}. */
export interface HarnessOptions {
  /** Rules installed before the pool's first lease. */
  rules?: readonly FaultRule[];
  /** Options of the fake driver (its rules are `rules`). */
  fake?: Omit<FakeDriverOptions, "rules" | "onCall">;
  /** Pool options over the defaults (maxConnections 2, timeoutMs 50, no file checks). */
  pool?: PoolOptions;
  /** A guarded step that has not settled after this long is a hang. Default 1 000 ms. */
  deadlineMs?: number;
  /** Treat every failed write as possibly written (rules with `timing: "after"`). */
  ambiguousFailures?: boolean;
}

/** Counts of `ConnectionPool.getPoolStats()` the harness checks. */
export interface CountsSample {
  /** Where it was taken. */
  where: string;
  /** Active leases. */
  active: number;
  /** Idle sessions. */
  idle: number;
  /** Waiting callers. */
  waiting: number;
}

/** One temporary shard, a fake driver over it and a pool using the fake. */
export class FaultHarness {
  /** The temporary directory. */
  readonly dir: string;
  /** The shard file (table `t (id INTEGER PRIMARY KEY, v TEXT)`, seeded empty). */
  readonly path: string;
  /** The fault-injecting driver. */
  readonly fake: FakeDriver;
  /** The pool under test. */
  readonly pool: ConnectionPool;
  /** The pool's cap. */
  readonly max: number;
  /**
   * Real handles the pool may hold open at once: one with exclusive access; with shared
   * access, the main one plus one per open transaction (at most one per active lease).
   */
  readonly maxHandles: number;
  /** The deadline of a guarded step. */
  readonly deadlineMs: number;
  /** Invariant violations seen so far (checked by {@link assertClean}). */
  readonly violations: string[] = [];
  /** Every pool event. */
  readonly events: PoolEvent[] = [];
  /** Every operation run through the harness. */
  readonly outcomes: Outcome[] = [];
  /** The largest active count sampled. */
  maxActiveSeen = 0;
  /** Samples taken. */
  samples = 0;
  readonly #ambiguousFailures: boolean;
  #nextId = 1;
  #sampling = false;
  #reportedHandles = false;

  private constructor(dir: string, options: HarnessOptions) {
    this.dir = dir;
    this.path = `${dir}/shard.db`;
    this.deadlineMs = options.deadlineMs ?? 1_000;
    this.#ambiguousFailures = options.ambiguousFailures ?? false;
    this.fake = new FakeDriver({
      ...options.fake,
      rules: options.rules ?? [],
      onCall: (call) => this.sample(`driver ${call.phase}${call.fault ? ` (${call.fault})` : ""}`),
    });
    const poolOptions: PoolOptions = {
      maxConnections: 2,
      timeoutMs: 50,
      fileCheckIntervalMs: 0,
      ...options.pool,
      driver: this.fake,
      onEvent: (event) => {
        this.events.push(event);
        this.sample(`event ${event.type}`);
      },
    };
    this.pool = new ConnectionPool(this.path, poolOptions);
    this.max = this.pool.maxConnections;
    this.maxHandles = poolOptions.access === "shared" ? 1 + this.max : 1;
  }

  /** Makes the directory, seeds the shard without the pool, and builds the pool. */
  static async create(options: HarnessOptions = {}): Promise<FaultHarness> {
    const dir = await Deno.makeTempDir({ prefix: "shardlite-faults-" });
    const db = new DatabaseSync(`${dir}/shard.db`);
    try {
      db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    } finally {
      db.close();
    }
    return new FaultHarness(dir, options);
  }

  /** Reads the pool's counts and records a violation when they break the rules. */
  sample(where: string): CountsSample | undefined {
    // Reading stats must not recurse through the driver (it reads handle getters only).
    if (this.#sampling) return undefined;
    this.#sampling = true;
    try {
      const stats = this.pool.getPoolStats();
      this.samples++;
      const sample = {
        where,
        active: stats.activeConnections,
        idle: stats.poolSize,
        waiting: stats.waiting,
      };
      if (sample.active > this.maxActiveSeen) this.maxActiveSeen = sample.active;
      if (sample.active > this.max) {
        this.violations.push(`active ${sample.active} > max ${this.max} at ${where}`);
      }
      if (sample.active < 0 || sample.idle < 0 || sample.waiting < 0) {
        this.violations.push(`negative count at ${where}: ${JSON.stringify(sample)}`);
      }
      if (sample.idle > this.max) {
        this.violations.push(`idle ${sample.idle} > max ${this.max} at ${where}`);
      }
      const handles = this.fake.openHandles(this.path);
      if (handles > this.maxHandles && !this.#reportedHandles) {
        this.#reportedHandles = true;
        this.violations.push(
          `${handles} real handles open at once on the shard (at most ${this.maxHandles}) ` +
            `at ${where}`,
        );
      }
      return sample;
    } finally {
      this.#sampling = false;
    }
  }

  /** A lease just handed out must not be inside anyone's transaction. */
  checkFresh(conn: PooledConnection, label: string): void {
    if (conn.inTransaction) {
      this.violations.push(
        `${label}: lease #${conn.id} (session #${conn.sessionId}) was handed out inside ` +
          `an open transaction`,
      );
    }
  }

  /** Fresh row ids. */
  ids(count: number): number[] {
    return Array.from({ length: count }, () => this.#nextId++);
  }

  /** Runs `promise` under the deadline and records its outcome. */
  async record(
    kind: Outcome["kind"],
    label: string,
    ids: number[],
    promise: Promise<unknown>,
  ): Promise<Outcome> {
    const settled = await guard(promise, this.deadlineMs);
    const outcome: Outcome = {
      label,
      kind,
      ids,
      status: settled.status,
      ambiguous: this.#ambiguousFailures && settled.status !== "fulfilled",
    };
    if (settled.status === "rejected") outcome.error = settled.reason;
    this.outcomes.push(outcome);
    this.sample(`after ${label}`);
    return outcome;
  }

  /** Inserts `rows` rows in one transaction, through `withConnection`. */
  txInsert(rows: number, label = "tx"): Promise<Outcome> {
    const ids = this.ids(rows);
    return this.record(
      "tx",
      `${label} [${ids.join(",")}]`,
      ids,
      this.pool.withConnection((conn) => {
        this.checkFresh(conn, label);
        return conn.transaction(async (tx) => {
          for (const id of ids) await tx.run("INSERT INTO t (id, v) VALUES (?, ?)", [id, label]);
        });
      }),
    );
  }

  /** Inserts one row in autocommit mode, through `getConnection` / `returnConnection`. */
  autoInsert(label = "auto"): Promise<Outcome> {
    const ids = this.ids(1);
    return this.record(
      "auto",
      `${label} [${ids[0]}]`,
      ids,
      (async () => {
        const conn = await this.pool.getConnection();
        this.checkFresh(conn, label);
        try {
          await conn.run("INSERT INTO t (id, v) VALUES (?, ?)", [ids[0] as number, label]);
        } finally {
          await this.pool.returnConnection(conn);
        }
      })(),
    );
  }

  /** Counts rows through `withConnection`. */
  read(label = "read"): Promise<Outcome> {
    return this.record(
      "read",
      label,
      [],
      this.pool.withConnection((conn) => conn.get("SELECT count(*) AS n FROM t")),
    );
  }

  /** Takes a lease, runs `fn` on it, and closes (not returns) it. */
  lease(fn: (conn: PooledConnection) => Promise<unknown>, label = "lease"): Promise<Outcome> {
    return this.record(
      "lease",
      label,
      [],
      (async () => {
        const conn = await this.pool.getConnection();
        try {
          await fn(conn);
        } finally {
          await this.pool.closeConnection(conn);
        }
      })(),
    );
  }

  /**
   * `workers` concurrent tasks, each running `rounds` rounds of: a two-row transaction,
   * an autocommit insert, a read, a one-row transaction. More workers than slots make
   * callers wait.
   */
  async storm(workers = 4, rounds = 1): Promise<void> {
    await Promise.all(Array.from({ length: workers }, async (_, w) => {
      for (let r = 0; r < rounds; r++) {
        await this.txInsert(2, `w${w} tx2`);
        await this.autoInsert(`w${w} auto`);
        await this.read(`w${w} read`);
        await this.txInsert(1, `w${w} tx1`);
      }
    }));
  }

  /** Outcomes that failed with an error of `type`. */
  failures<E>(type: abstract new (...args: never[]) => E): Outcome[] {
    return this.outcomes.filter((o) => o.status === "rejected" && o.error instanceof type);
  }

  /** Checks the counts now: no lease out, nobody waiting, idle sessions within max. */
  checkDrained(where: string): void {
    const stats = this.pool.getPoolStats();
    if (stats.activeConnections !== 0) {
      this.violations.push(`${stats.activeConnections} leases still active ${where} (lost)`);
    }
    if (stats.waiting !== 0) this.violations.push(`${stats.waiting} callers still wait ${where}`);
    if (stats.poolSize > this.max) {
      this.violations.push(`idle ${stats.poolSize} > max ${this.max} ${where}`);
    }
  }

  /** Records hangs and untyped errors among the outcomes. */
  checkOutcomes(): void {
    for (const o of this.outcomes) {
      if (o.status === "hung") {
        this.violations.push(`${o.label} did not settle within ${this.deadlineMs} ms`);
      } else if (o.status === "rejected") {
        const why = this.untyped(o.error);
        if (why !== undefined) this.violations.push(`${o.label}: ${why}`);
      }
    }
  }

  /** Why `error` is not a typed error naming the shard, or undefined when it is. */
  untyped(error: unknown): string | undefined {
    if (!TYPED_ERRORS.some((type) => error instanceof type)) {
      const name = error instanceof Error ? error.name : typeof error;
      return `untyped error ${name}: ${error instanceof Error ? error.message : String(error)}`;
    }
    if (!(error instanceof ShardliteError) || !error.message.includes(this.path)) {
      return `error without the shard path: ${(error as Error).message}`;
    }
    return undefined;
  }

  /**
   * Ends the test: checks the outcomes and counts, lifts the faults (releasing hung
   * calls), proves the pool still serves a transaction, closes it under the deadline,
   * checks no real handle was leaked, disposes the fake and checks the rows on disk
   * with node:sqlite. Returns the violations (empty when every invariant held).
   */
  async finish(
    options: { recover?: boolean; closeGraceMs?: number } = {},
  ): Promise<string[]> {
    this.checkOutcomes();
    this.checkDrained("after the storm");
    // Faults on closing stay for closeAll(); the others stop so the pool can recover.
    this.fake.clearFaults(
      FAULT_PHASES.filter((phase) => phase !== "close" && phase !== "internal"),
    );
    // For the recovery itself closing faults pause too: the pool never opens a handle
    // beside one that may still be open (its late checkpoint could undo the new handle's
    // commits), so a retired handle must close before the file is used again.
    const resumeClose = this.fake.suspendFaults(["close"]);
    this.fake.releaseHung();
    const answered = await guard(this.fake.settled(), this.deadlineMs);
    if (answered.status === "hung") this.violations.push("the fake's pending answers never came");
    this.checkDrained("after hung calls were released");
    if (options.recover ?? true) {
      const recovery = await this.txInsert(1, "recovery");
      if (recovery.status !== "fulfilled") {
        this.violations.push(
          `the pool did not recover once the faults stopped: ${recovery.status} ${
            (recovery.error as Error | undefined)?.message ?? ""
          }`,
        );
      }
      this.checkDrained("after recovery");
    }
    resumeClose();
    const closed = await guard(
      this.pool.closeAll(
        options.closeGraceMs === undefined ? undefined : { graceMs: options.closeGraceMs },
      ),
      this.deadlineMs,
    );
    if (closed.status === "hung") this.violations.push("closeAll() did not settle");
    this.fake.clearFaults();
    if (closed.status === "rejected") {
      const why = this.untyped(closed.reason);
      if (why !== undefined) this.violations.push(`closeAll(): ${why}`);
    }
    const stats = this.pool.getPoolStats();
    if (stats.activeConnections !== 0) {
      this.violations.push(`${stats.activeConnections} leases active after closeAll()`);
    }
    // A handle the pool never asked to close is a leak; one whose close failed is the fake's.
    for (const handle of this.fake.handles) {
      if (handle.inner.isOpen && handle.delivered && !handle.closeCalled) {
        this.violations.push(`real handle #${handle.id} left open by the pool after closeAll()`);
      }
    }
    const released = await guard(this.fake[Symbol.asyncDispose](), this.deadlineMs);
    if (released.status === "hung") this.violations.push("disposing the fake hung");
    this.checkRows();
    return this.violations;
  }

  /** Rows on disk, read with node:sqlite (no Shardlite code involved). */
  rowsOnDisk(): Set<number> {
    const db = new DatabaseSync(this.path);
    try {
      const rows = db.prepare("SELECT id FROM t").all() as { id: number }[];
      return new Set(rows.map((row) => Number(row.id)));
    } finally {
      db.close();
    }
  }

  /** Committed rows present, failed writes absent, transactions all or nothing. */
  checkRows(): void {
    const present = this.rowsOnDisk();
    for (const o of this.outcomes) {
      if (o.ids.length === 0) continue;
      const here = o.ids.filter((id) => present.has(id));
      if (o.status === "fulfilled" && here.length !== o.ids.length) {
        this.violations.push(
          `${o.label} resolved but rows ${
            o.ids.filter((id) => !present.has(id)).join(",")
          } are missing`,
        );
      } else if (o.status !== "fulfilled" && !o.ambiguous && here.length > 0) {
        this.violations.push(
          `${o.label} failed (${(o.error as Error | undefined)?.name ?? o.status}: ${
            (o.error as Error | undefined)?.message ?? ""
          }) but rows ${here.join(",")} are present`,
        );
      }
      if (here.length !== 0 && here.length !== o.ids.length) {
        this.violations.push(`${o.label} is half written: only ${here.join(",")} present`);
      }
    }
  }

  /** Removes the temporary directory (after {@link finish}). */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.pool.closed) await this.pool.closeAll({ graceMs: 0 }).catch(() => {});
    await this.fake[Symbol.asyncDispose]();
    await Deno.remove(this.dir, { recursive: true });
  }
}

/** Fails with every violation, one a line. */
export function assertClean(violations: readonly string[], context = ""): void {
  if (violations.length > 0) {
    throw new Error(
      `${context}${context ? ": " : ""}${violations.length} invariant violation(s):\n  ` +
        violations.join("\n  "),
    );
  }
}
