/**
 * What one pool knows about the statements its leases run. Counting is always on (an
 * increment); timing — the `onQuery` listener, the `slowQueryMs` check and the
 * statement-time histogram — only when one of `onQuery`, `slowQueryMs` or
 * `timeStatements` asked for it, because a clock read costs as much as a pooled point
 * read's whole overhead.
 *
 * @module
 */

import { isPromise, type PositionalRows } from "../driver/driver.ts";
import type { RunResult } from "../types.ts";
import { Op, type Session, type ShardFile } from "./shard_file.ts";

/** One statement as {@link QueryMonitor} reports it to an `onQuery` listener. */
export interface QueryEvent {
  /** The shard, when the pool belongs to a `ShardManager`. */
  shardId?: number;
  /** The shard file. */
  path: string;
  /** The statement as sent (`ROLLBACK` for a rollback the pool or a lease ran). */
  sql: string;
  /** From the call to its answer, in ms; a wait for a sibling's transaction included. */
  durationMs: number;
  /** Rows returned (reads) or changed (writes); absent for `exec()` scripts. */
  rows?: number;
  /** The error, when the statement failed. */
  error?: unknown;
}

/** A statement that took at least `slowQueryMs`, reported through `onEvent`. */
export interface SlowQueryEvent {
  /** The event's type. */
  type: "slow-query";
  /** The shard file. */
  path: string;
  /** The shard, when the pool belongs to a `ShardManager`. */
  shardId?: number;
  /** The statement. */
  sql: string;
  /** How long it took, in ms. */
  durationMs: number;
  /** Rows returned or changed, when known. */
  rows?: number;
  /** The error, when the slow statement failed (a timeout, say). */
  error?: unknown;
}

/** A listener (`onQuery`) that threw or rejected; the statement itself was not affected. */
export interface ListenerErrorEvent {
  /** The event's type. */
  type: "listener-error";
  /** The shard file. */
  path: string;
  /** Which listener failed. */
  listener: "onQuery";
  /** What it threw. */
  error: unknown;
}

/**
 * Upper bounds of the statement-time histogram's buckets, in seconds: 10 µs (a point read
 * is a few µs) to 10 s (a statement that waited for a lease's timeout), 1-2.5-5 steps.
 */
export const STATEMENT_TIME_BUCKETS: readonly number[] = [
  0.00001,
  0.000025,
  0.00005,
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

const BUCKET_BOUNDS_MS = STATEMENT_TIME_BUCKETS.map((seconds) => seconds * 1000);

/** The statement-time histogram of one pool. */
export interface StatementTimes {
  /** Statements per bucket of {@link STATEMENT_TIME_BUCKETS}, not cumulative; the last is +Inf. */
  buckets: number[];
  /** Total time, in ms. */
  sumMs: number;
  /** Statements timed. */
  count: number;
}

/** What the monitor was asked to do (the pool's options, checked). */
export interface QueryMonitorOptions {
  /** Receives every statement. */
  onQuery: ((event: QueryEvent) => void) | undefined;
  /** Statements at least this long (ms) are reported as `slow-query` events. */
  slowQueryMs: number | undefined;
  /** Time statements for the histogram even without a listener. */
  timeStatements: boolean;
}

/** The rows a statement returned or changed, from its answer. */
function rowsOf(op: Op, value: unknown): number | undefined {
  switch (op) {
    case Op.Get:
      return value === undefined ? 0 : 1;
    case Op.Run:
    case Op.RunMany:
      return (value as RunResult).changes;
    case Op.Values: {
      const result = value as PositionalRows;
      return result.columns.length > 0 ? result.rows.length : (result.changes ?? 0);
    }
    default:
      // Rows read (all(), and any other operation answering with rows); none for scripts.
      return Array.isArray(value) ? value.length : undefined;
  }
}

/**
 * Counts, and when asked times, one pool's statements. A lease counts an untimed statement
 * itself (one increment, no clock, no allocation); a timed one ends in {@link done} or
 * {@link failed}.
 */
export class QueryMonitor {
  /** Statements run (sent to the shard file). */
  statements = 0;
  /** Statements that failed. */
  errors = 0;
  /** Statements that took at least `slowQueryMs`. */
  slowQueries = 0;
  /** Whether statements are timed: a listener, a slow-query threshold or the histogram. */
  readonly timing: boolean;
  /** The shard id events carry (set by the manager that owns the pool). */
  shardId: number | undefined = undefined;
  readonly #path: string;
  readonly #onQuery: ((event: QueryEvent) => void) | undefined;
  readonly #slowQueryMs: number;
  readonly #report: (event: SlowQueryEvent | ListenerErrorEvent) => void;
  readonly #times: StatementTimes | null;
  /** Counts a failure of an untimed statement that answered with a promise. */
  readonly countError = (error: unknown): never => {
    this.errors++;
    throw error;
  };

  /** A monitor for the pool of `path`; `report` is the pool's (guarded) `onEvent`. */
  constructor(
    path: string,
    options: QueryMonitorOptions,
    report: (event: SlowQueryEvent | ListenerErrorEvent) => void,
  ) {
    this.#path = path;
    this.#onQuery = options.onQuery;
    this.#slowQueryMs = options.slowQueryMs ?? Number.POSITIVE_INFINITY;
    this.#report = report;
    this.timing = options.onQuery !== undefined || options.slowQueryMs !== undefined ||
      options.timeStatements;
    this.#times = this.timing
      ? {
        buckets: new Array<number>(STATEMENT_TIME_BUCKETS.length + 1).fill(0),
        sumMs: 0,
        count: 0,
      }
      : null;
  }

  /** A copy of the statement-time histogram; null when statements are not timed. */
  get times(): StatementTimes | null {
    const times = this.#times;
    return times === null ? null : { ...times, buckets: [...times.buckets] };
  }

  /**
   * Rolls back `session`'s transaction on `file`, accounted for as a `ROLLBACK` statement
   * when one ran. Returns what `file.rollbackIfOwner` does.
   */
  rollback(file: ShardFile, session: Session): boolean {
    // A transaction lost with a broken handle is only forgotten: no statement runs.
    if (session.lostTransaction !== null) return file.rollbackIfOwner(session);
    if (!file.ownsTransaction(session)) return false;
    if (!this.timing) {
      this.statements++;
      return file.rollbackIfOwner(session);
    }
    const started = performance.now();
    const rolledBack = file.rollbackIfOwner(session);
    this.done(Op.Exec, "ROLLBACK", started, undefined);
    return rolledBack;
  }

  /** A timed statement succeeded with `value`. */
  done(op: Op, sql: string, started: number, value: unknown): void {
    this.statements++;
    const durationMs = performance.now() - started;
    this.#time(durationMs);
    if (this.#onQuery === undefined && durationMs < this.#slowQueryMs) return;
    const rows = rowsOf(op, value);
    this.#emit(sql, durationMs, rows, undefined, false);
  }

  /** A timed statement failed with `error`. */
  failed(sql: string, started: number, error: unknown): void {
    this.statements++;
    this.errors++;
    const durationMs = performance.now() - started;
    this.#time(durationMs);
    this.#emit(sql, durationMs, undefined, error, true);
  }

  #time(durationMs: number): void {
    const times = this.#times as StatementTimes;
    times.count++;
    times.sumMs += durationMs;
    let bucket = 0;
    while (bucket < BUCKET_BOUNDS_MS.length && durationMs > (BUCKET_BOUNDS_MS[bucket] as number)) {
      bucket++;
    }
    (times.buckets[bucket] as number)++;
  }

  #emit(
    sql: string,
    durationMs: number,
    rows: number | undefined,
    error: unknown,
    isError: boolean,
  ): void {
    const onQuery = this.#onQuery;
    if (onQuery !== undefined) {
      const event: QueryEvent = { path: this.#path, sql, durationMs };
      if (this.shardId !== undefined) event.shardId = this.shardId;
      if (rows !== undefined) event.rows = rows;
      if (isError) event.error = error;
      try {
        const returned: unknown = onQuery(event);
        // An async listener's rejection is reported too, never left unhandled.
        if (isPromise(returned)) returned.then(undefined, (thrown) => this.#listenerFailed(thrown));
      } catch (thrown) {
        this.#listenerFailed(thrown);
      }
    }
    if (durationMs >= this.#slowQueryMs) {
      this.slowQueries++;
      const event: SlowQueryEvent = { type: "slow-query", path: this.#path, sql, durationMs };
      if (this.shardId !== undefined) event.shardId = this.shardId;
      if (rows !== undefined) event.rows = rows;
      if (isError) event.error = error;
      this.#report(event);
    }
  }

  #listenerFailed(error: unknown): void {
    this.#report({ type: "listener-error", path: this.#path, listener: "onQuery", error });
  }
}
