/**
 * A manager's shards on servers, at run time: where each shard's pool connects, how a
 * failure of a server is reported (`ShardUnavailableError`), the epoch check every write
 * makes, and the replicas reads may go to.
 *
 * @module
 */

import {
  ConnectionBrokenError,
  PoolTimeoutError,
  ShardMapMismatchError,
  ShardOpenError,
  ShardUnavailableError,
} from "../errors.ts";
import type { PooledConnection } from "../pool/connection.ts";
import { ConnectionPool, type PoolOptions } from "../pool/pool.ts";
import type { RemoteShard } from "./locations.ts";
import { CREATE_META_TABLE, readShardEpoch } from "./remote_map.ts";

// A replica that failed is left alone this long before it is tried again.
const REPLICA_RETRY_MS = 5_000;

/** Whether `error` (a pool's) means the server could not be reached or did not answer. */
export function isUnavailable(error: unknown): boolean {
  return error instanceof ShardOpenError || error instanceof ConnectionBrokenError ||
    (error instanceof PoolTimeoutError && error.waitingFor === "driver");
}

/** One replica's pool and when it last failed. */
interface Replica {
  readonly url: string;
  pool: ConnectionPool | null;
  failedAt: number;
}

/** The run-time side of `ShardManagerOptions.shards`. */
export class RemoteShards {
  #shards: readonly RemoteShard[];
  readonly #poolOptions: PoolOptions;
  #replicas: Replica[][];
  #next: number[];
  // Shards whose reserved table is known to exist (the epoch check reads it).
  readonly #metaReady = new Set<number>();

  /** The shards of `shards`, their pools built with `poolOptions`. */
  constructor(shards: readonly RemoteShard[], poolOptions: PoolOptions) {
    this.#shards = shards;
    this.#poolOptions = poolOptions;
    this.#replicas = shards.map((s) => s.replicas.map((url) => ({ url, pool: null, failedAt: 0 })));
    this.#next = shards.map(() => 0);
  }

  /** How many shards are listed. */
  get count(): number {
    return this.#shards.length;
  }

  /** The servers, in shard-id order. */
  get servers(): readonly RemoteShard[] {
    return this.#shards;
  }

  /**
   * Routes by another list of servers (a reshard's span, then its new layout). Replicas
   * of a shard whose primary stays the same keep their pools; the others are closed.
   */
  async setServers(shards: readonly RemoteShard[]): Promise<void> {
    const replicas = shards.map((shard, i) =>
      this.#shards[i]?.url === shard.url
        ? this.#replicas[i] ?? []
        : shard.replicas.map((url) => ({ url, pool: null, failedAt: 0 }))
    );
    const dropped = this.#replicas.flat().filter((r) => !replicas.flat().includes(r));
    this.#shards = shards;
    this.#replicas = replicas;
    this.#next = shards.map(() => 0);
    await Promise.all(dropped.map((r) => r.pool?.closeAll()));
  }

  /** Where shard `shardId`'s pool connects, and with which driver. */
  place(shardId: number): { path: string; driver: RemoteShard["driver"] } {
    const shard = this.#shards[shardId];
    if (shard === undefined) {
      throw new RangeError(
        `shard ${shardId} has no server: shards lists ${this.#shards.length} (0 to ` +
          `${this.#shards.length - 1})`,
      );
    }
    return { path: shard.url, driver: shard.driver };
  }

  /** The URL of shard `shardId`. */
  url(shardId: number): string {
    return this.#shards[shardId]?.url ?? `shard ${shardId}`;
  }

  /**
   * What a shard's failure is reported as: `ShardUnavailableError` when its server could
   * not be reached or gave no answer; undefined for every other error.
   */
  failure(shardId: number, error: unknown): ShardUnavailableError | undefined {
    if (error instanceof ShardUnavailableError) return error;
    if (!isUnavailable(error)) return undefined;
    return new ShardUnavailableError(shardId, this.url(shardId), error);
  }

  /**
   * The epoch check of a write, inside its transaction on shard `shardId`: the shard must
   * belong to layout `epoch` with no reshard under way. Otherwise `stale()` (reloading the
   * map) runs and the write is refused with `ShardMapMismatchError`, before it wrote.
   */
  async checkEpoch(
    conn: PooledConnection,
    shardId: number,
    epoch: number,
    stale: () => Promise<void>,
  ): Promise<void> {
    if (!this.#metaReady.has(shardId)) {
      await conn.exec(CREATE_META_TABLE);
      this.#metaReady.add(shardId);
    }
    const found = await readShardEpoch(conn);
    if (found.epoch === epoch && !found.resharding) return;
    await stale().catch(() => {});
    throw new ShardMapMismatchError(
      this.url(shardId),
      found.resharding
        ? `shard ${shardId} is being resharded (from layout epoch ${found.epoch}); writes ` +
          `are refused until the reshard ends: retry then`
        : `shard ${shardId} belongs to layout epoch ${found.epoch}, this client routed by ` +
          `epoch ${epoch} (another client resharded); the map was reloaded: retry the call`,
    );
  }

  /** Whether shard `shardId` lists replicas. */
  hasReplicas(shardId: number): boolean {
    return (this.#replicas[shardId]?.length ?? 0) > 0;
  }

  /**
   * The pool of a replica of shard `shardId` to read from (round robin over those that did
   * not fail in the last seconds), or undefined when none is left.
   */
  replicaPool(shardId: number): { pool: ConnectionPool; failed: () => void } | undefined {
    const list = this.#replicas[shardId] ?? [];
    const now = performance.now();
    for (let tries = 0; tries < list.length; tries++) {
      const i = (this.#next[shardId] = ((this.#next[shardId] ?? 0) + 1) % list.length);
      const replica = list[i] as Replica;
      if (replica.failedAt !== 0 && now - replica.failedAt < REPLICA_RETRY_MS) continue;
      replica.pool ??= new ConnectionPool(replica.url, {
        ...this.#poolOptions,
        name: `shard ${shardId} replica ${i}`,
        driver: this.place(shardId).driver,
      });
      return {
        pool: replica.pool,
        failed: () => {
          replica.failedAt = performance.now();
        },
      };
    }
    return undefined;
  }

  /** Closes every replica pool (at shutdown). */
  async close(): Promise<void> {
    const pools = this.#replicas.flat().map((r) => r.pool).filter((p) => p !== null);
    for (const replica of this.#replicas.flat()) replica.pool = null;
    await Promise.all(pools.map((pool) => pool.closeAll()));
  }
}
