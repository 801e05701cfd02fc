/**
 * Per-shard figures that outlive the shard's pool. A pool closed to respect
 * `maxOpenShards` (or by `closeIdleShards`) leaves its counts here, and the shard's next
 * pool adds to them, so a manager's counters never go down while it lives.
 *
 * @module
 */

import { type ConnectionPool, type PoolMetrics, poolMetrics } from "../pool/pool.ts";
import type { StatementTimes } from "../pool/query_monitor.ts";

/** A pool's counters added to `into` (gauges too, when `withGauges`). */
function add(into: PoolMetrics, from: PoolMetrics, withGauges: boolean): void {
  into.leases += from.leases;
  into.leaseWaits += from.leaseWaits;
  into.leaseWaitMs += from.leaseWaitMs;
  into.leaseTimeouts += from.leaseTimeouts;
  into.overloaded += from.overloaded;
  into.statements += from.statements;
  into.statementErrors += from.statementErrors;
  into.slowQueries += from.slowQueries;
  into.handlesReplaced += from.handlesReplaced;
  into.statementTimes = addTimes(into.statementTimes, from.statementTimes);
  if (withGauges) {
    into.activeLeases += from.activeLeases;
    into.waiting += from.waiting;
  }
}

function addTimes(a: StatementTimes | null, b: StatementTimes | null): StatementTimes | null {
  if (a === null) return b === null ? null : { ...b, buckets: [...b.buckets] };
  if (b === null) return a;
  return {
    buckets: a.buckets.map((n, i) => n + (b.buckets[i] ?? 0)),
    sumMs: a.sumMs + b.sumMs,
    count: a.count + b.count,
  };
}

function empty(): PoolMetrics {
  return {
    leases: 0,
    leaseWaits: 0,
    leaseWaitMs: 0,
    leaseTimeouts: 0,
    overloaded: 0,
    statements: 0,
    statementErrors: 0,
    slowQueries: 0,
    statementTimes: null,
    handlesReplaced: 0,
    activeLeases: 0,
    waiting: 0,
  };
}

/**
 * The counts of a manager's closed pools, by shard, plus the pools still closing (whose
 * counts may still move).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConnectionPool } from "../pool/pool.ts";
 * import { ShardMetrics } from "./shard_metrics.ts";
 * const dir = await Deno.makeTempDir();
 * const kept = new ShardMetrics();
 * const pool = new ConnectionPool(`${dir}/shard_0.db`);
 * await pool.withConnection((c) => c.exec("CREATE TABLE t (x)"));
 * await kept.retire(0, pool, pool.closeAll());
 * const again = new ConnectionPool(`${dir}/shard_0.db`);
 * await again.withConnection((c) => c.get("SELECT 1"));
 * assert.equal(kept.collect(new Map([[0, again]])).get(0)?.statements, 2);
 * await again.closeAll();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class ShardMetrics {
  readonly #retired = new Map<number, PoolMetrics>();
  readonly #closing = new Map<ConnectionPool, number>();

  /** Keeps `pool`'s counts for `shardId` once `closed` settles (counted meanwhile). */
  async retire(shardId: number, pool: ConnectionPool, closed: Promise<unknown>): Promise<void> {
    this.#closing.set(pool, shardId);
    try {
      await closed;
    } finally {
      if (this.#closing.delete(pool)) {
        let kept = this.#retired.get(shardId);
        if (kept === undefined) this.#retired.set(shardId, kept = empty());
        add(kept, poolMetrics(pool), false);
      }
    }
  }

  /** Forgets shard `shardId` (its file is gone), closing pools included. */
  forget(shardId: number): void {
    this.#retired.delete(shardId);
    for (const [pool, id] of this.#closing) if (id === shardId) this.#closing.delete(pool);
  }

  /** Every shard's figures: its open pool's (from `open`), its closing pools', its closed ones'. */
  collect(open: ReadonlyMap<number, ConnectionPool>): Map<number, PoolMetrics> {
    const shards = new Map<number, PoolMetrics>();
    const at = (shardId: number): PoolMetrics => {
      let found = shards.get(shardId);
      if (found === undefined) shards.set(shardId, found = empty());
      return found;
    };
    for (const [shardId, kept] of this.#retired) add(at(shardId), kept, false);
    for (const [pool, shardId] of this.#closing) add(at(shardId), poolMetrics(pool), true);
    for (const [shardId, pool] of open) add(at(shardId), poolMetrics(pool), true);
    return shards;
  }
}
