/**
 * The open shard pools of a manager, at most `maxOpenShards` of them: opening a shard
 * beyond the bound closes the least recently used pools that nobody is using.
 *
 * @module
 */

import { ConnectionPool, type PoolMetrics, type PoolOptions } from "../pool/pool.ts";
import type { Driver } from "../driver/driver.ts";
import { shardFilePath } from "./layout.ts";
import { ShardMetrics } from "./shard_metrics.ts";

/**
 * Where shard `shardId` lives: its file path or server URL, and the driver reaching it
 * when that is not the pool options' own.
 */
export type ShardPlace = (shardId: number) => { path: string; driver?: Driver };

/** What {@link PoolCache.stats} returns (a manager's `openShards`). */
export interface OpenShards {
  /** Shard pools open now. */
  open: number;
  /** The bound (`maxOpenShards`). */
  max: number;
  /** How many pools were closed to respect the bound. */
  evictions: number;
}

/**
 * One pool per shard of a directory, opened on first use, in least-recently-used order
 * (a Map keeps insertion order).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PoolCache } from "./pool_cache.ts";
 * const dir = await Deno.makeTempDir();
 * const pools = new PoolCache(dir, {}, 2);
 * await pools.get(0).withConnection((c) => c.exec("CREATE TABLE t (x)"));
 * assert.equal(pools.get(0), pools.get(0));
 * assert.deepEqual(pools.stats, { open: 1, max: 2, evictions: 0 });
 * assert.equal(await pools.closeIdle(), 1);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class PoolCache {
  readonly #place: ShardPlace;
  readonly #options: PoolOptions;
  readonly #max: number;
  readonly #pools = new Map<number, ConnectionPool>();
  // Pools closed to respect the bound, until their close completes.
  readonly #evicting = new Set<Promise<void>>();
  #evictions = 0;
  // The counts of pools closed here, so that a shard's counters survive its pool.
  readonly #metrics = new ShardMetrics();

  /**
   * A cache over the shard files of `dbDir` (or the shards `place` locates), each pool
   * built with `options`.
   */
  constructor(dbDir: string | ShardPlace, options: PoolOptions, maxOpenShards: number) {
    this.#place = typeof dbDir === "string"
      ? (shardId) => ({ path: shardFilePath(dbDir, shardId) })
      : dbDir;
    this.#options = options;
    this.#max = maxOpenShards;
  }

  /** The pool of shard `shardId` (created on first use); it becomes the most recently used. */
  get(shardId: number): ConnectionPool {
    let pool = this.#pools.get(shardId);
    if (pool === undefined) {
      const place = this.#place(shardId);
      pool = new ConnectionPool(place.path, {
        name: `shard ${shardId}`,
        ...this.#options,
        ...(place.driver === undefined ? {} : { driver: place.driver }),
      });
      pool.assignShard(shardId);
      this.#pools.set(shardId, pool);
    } else if (this.#pools.size >= this.#max) {
      // Mark it most recently used; only needed once the bound is near.
      this.#pools.delete(shardId);
      this.#pools.set(shardId, pool);
    }
    if (this.#pools.size > this.#max) this.#evictIdle(shardId);
    return pool;
  }

  /** The pool of shard `shardId` if it is open, without opening it or counting a use. */
  peek(shardId: number): ConnectionPool | undefined {
    return this.#pools.get(shardId);
  }

  /**
   * Closes idle pools beyond the bound. A burst over many shards may have opened more than
   * `maxOpenShards` (a busy pool is never closed); once it is done, its pools are idle.
   */
  trim(): void {
    if (this.#pools.size > this.#max) this.#evictIdle(-1);
  }

  /**
   * Closes least recently used pools nobody is using (all but `keep`'s) until at most
   * `maxOpenShards` are open. A busy pool is never closed: the bound is exceeded while every
   * pool is in use. A pool taken out here is closing; the next use of its shard opens a
   * fresh one (which shares the file's handle while the old one finishes closing).
   */
  #evictIdle(keep: number): void {
    for (const [shardId, pool] of this.#pools) {
      if (this.#pools.size <= this.#max) return;
      if (shardId === keep || !pool.isIdle) continue;
      this.#evictions++;
      this.#closeInBackground(shardId, pool);
    }
  }

  /** Takes `pool` out and closes it in the background (tracked until done). */
  #closeInBackground(shardId: number, pool: ConnectionPool): void {
    this.#pools.delete(shardId);
    const closing = this.#metrics.retire(shardId, pool, pool.closeAll()).catch(() => {
      // A close that fails leaves the file for the next open to check; nothing to add.
    });
    this.#evicting.add(closing);
    closing.finally(() => this.#evicting.delete(closing));
  }

  /**
   * Closes every pool nobody is using now (they reopen on their next use) and waits for
   * closes already under way. Returns how many it closed.
   */
  async closeIdle(): Promise<number> {
    let closed = 0;
    for (const [shardId, pool] of this.#pools) {
      if (!pool.isIdle) continue;
      closed++;
      this.#closeInBackground(shardId, pool);
    }
    await this.#settled();
    return closed;
  }

  /** Pools open now, the bound, and how many were closed to respect it. */
  get stats(): OpenShards {
    return { open: this.#pools.size, max: this.#max, evictions: this.#evictions };
  }

  /** Closes shard `shardId`'s pool for good (its file is about to go), and waits for it. */
  async remove(shardId: number): Promise<void> {
    const pool = this.#pools.get(shardId);
    this.#pools.delete(shardId);
    await pool?.closeAll();
    // A pool closed to respect maxOpenShards may still be closing.
    await this.#settled();
    this.#metrics.forget(shardId);
  }

  /** Every shard's figures since the cache was made, closed pools' included (by shard id). */
  metrics(): Map<number, PoolMetrics> {
    return this.#metrics.collect(this.#pools);
  }

  /**
   * Closes every pool (they stay listed, closed) and waits for background closes; resolves
   * with each pool's outcome, so the caller decides what a failure means.
   */
  async closeAll(options?: { graceMs?: number }): Promise<PromiseSettledResult<void>[]> {
    const pools = [...this.#pools.values()];
    const results = await Promise.allSettled(pools.map((p) => p.closeAll(options)));
    await this.#settled();
    return results;
  }

  /** Forgets every pool and closes them, ignoring failures (an open that failed). */
  async discard(): Promise<void> {
    const pools = [...this.#pools];
    this.#pools.clear();
    await Promise.allSettled(
      pools.map(([shardId, pool]) => this.#metrics.retire(shardId, pool, pool.closeAll())),
    );
  }

  async #settled(): Promise<void> {
    await Promise.allSettled([...this.#evicting]);
  }
}
