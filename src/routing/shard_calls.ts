/**
 * How a router's calls reach their shards: admission, a lease on the shard's pool (or a
 * replica's), the write check of shards on servers, one retry of a read its connection
 * cut, concurrency across shards, and what a shard's failure is reported as.
 *
 * @module
 */

import PQueue from "npm:p-queue@10.0.0";
import {
  ConnectionBrokenError,
  ShardliteError,
  ShardOperationError,
  ShardUnavailableError,
  TableNotFoundError,
} from "../errors.ts";
import type { PooledConnection } from "../pool/connection.ts";
import type { ConnectionPool } from "../pool/pool.ts";
import { raceAbort } from "./abort.ts";
import { admit } from "./admission.ts";
import type { ReadFrom } from "./read_from.ts";
import type { ShardSource } from "./source.ts";

/** A read its server's connection cut mid-way: it may be sent once more. */
export function isRetryable(error: unknown): boolean {
  return error instanceof ShardUnavailableError && error.cause instanceof ConnectionBrokenError;
}

/** The calls of one router to the shards of its source. */
export class ShardCalls {
  readonly #source: ShardSource;
  readonly #queue: PQueue;

  /** Calls to `source`'s shards, at most `source.maxConcurrentShards` at once. */
  constructor(source: ShardSource) {
    this.#source = source;
    // p-queue bounds how many shards one process works on at once.
    this.#queue = new PQueue({ concurrency: source.maxConcurrentShards });
  }

  /**
   * Admits a call (see `admission.ts`); while it waits (the directory opening, a reshard)
   * `signal` can end the wait. Undefined when admitted at once (no await on the hot path).
   */
  enter(signal: AbortSignal | undefined, table?: string): Promise<void> | undefined {
    let admitted = admit(this.#source);
    const refresh = this.#source.refreshTable;
    if (table !== undefined && refresh !== undefined) {
      // A table another client created: its map entry is read before the call routes.
      admitted = admitted === undefined
        ? refresh.call(this.#source, table)
        : admitted.then(() => refresh.call(this.#source, table));
    }
    if (admitted === undefined || signal === undefined) return admitted;
    return raceAbort(admitted, signal, (late) => {
      late.then(() => this.#source.leave(), () => {});
    });
  }

  /** Runs `fn` on a lease of shard `shardId`; its failure is reported as {@link shardError} says. */
  onShard<T>(
    shardId: number,
    fn: (conn: PooledConnection) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    let pool: ConnectionPool;
    try {
      pool = this.#source.getPool(shardId);
    } catch (error) {
      return Promise.reject(error);
    }
    // The lease keeps the signal: its waits end, and its statements refuse, on abort.
    const leased = signal === undefined ? undefined : { signal };
    return pool.withConnection(fn, leased).catch((error: unknown) => {
      throw this.shardError(shardId, pool, error);
    });
  }

  /**
   * {@link onShard} for a write: on shards on servers, inside a transaction whose first
   * statement checks the layout epoch (`ShardSource.guardWrite`), so a client that missed
   * a reshard is refused before it writes.
   */
  onShardWrite<T>(
    shardId: number,
    fn: (conn: PooledConnection) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    const guard = this.#source.guardWrite;
    if (guard === undefined) return this.onShard(shardId, fn, signal);
    return this.onShard(shardId, (conn) =>
      conn.transaction(async (tx) => {
        await guard.call(this.#source, tx, shardId);
        return await fn(tx);
      }), signal);
  }

  /**
   * {@link onShard} for a read: from a replica when asked and one answers (else the
   * primary); on shards on servers, a read cut by a broken connection is tried once more.
   */
  async onShardRead<T>(
    shardId: number,
    fn: (conn: PooledConnection) => Promise<T>,
    signal: AbortSignal | undefined,
    readFrom: ReadFrom,
  ): Promise<T> {
    if (readFrom === "replica") {
      const replica = this.#source.replicaPool?.(shardId);
      if (replica !== undefined) {
        const leased = signal === undefined ? undefined : { signal };
        for (let attempt = 0; attempt < 2; attempt++) {
          try {
            return await replica.pool.withConnection(fn, leased);
          } catch (error) {
            const failure = this.#source.shardFailure?.(shardId, error);
            if (failure === undefined) throw this.shardError(shardId, replica.pool, error);
            // A cut connection is tried once more; a replica that does not answer is left
            // alone for a while, and the primary answers instead.
            if (attempt === 0 && isRetryable(failure) && signal?.aborted !== true) continue;
            replica.failed();
            break;
          }
        }
      }
    }
    try {
      return await this.onShard(shardId, fn, signal);
    } catch (error) {
      if (!isRetryable(error) || signal?.aborted) throw error;
      return await this.onShard(shardId, fn, signal);
    }
  }

  /** The pool a stream reads shard `shardId` from (a replica's when asked and one is up). */
  readPool(shardId: number, readFrom: ReadFrom): ConnectionPool {
    if (readFrom === "replica") {
      const replica = this.#source.replicaPool?.(shardId);
      if (replica !== undefined) return replica.pool;
    }
    return this.#source.getPool(shardId);
  }

  /** What a shard's failure is reported as (the caller's own errors pass through). */
  shardError(shardId: number, pool: ConnectionPool, error: unknown): unknown {
    const failure = this.#source.shardFailure?.(shardId, error);
    if (failure !== undefined) return failure;
    if (error instanceof ShardOperationError) return error;
    // The caller's own errors (and bad input) pass through; the shard's are wrapped.
    if (!(error instanceof ShardliteError) || !("path" in error)) return error;
    const missing = /no such table: (?:main\.)?([A-Za-z_][A-Za-z0-9_]*)/.exec(String(error));
    // A table the map does not know is the caller's mistake; a known one missing is damage.
    if (missing !== null && this.#source.hasTable?.(missing[1] as string) === false) {
      return new TableNotFoundError(missing[1] as string, shardId, { cause: error });
    }
    return new ShardOperationError(shardId, pool.path, error);
  }

  /** Runs `fn` on every listed shard concurrently; any failure fails the whole call. */
  async onShards<T>(
    shardIds: readonly number[],
    fn: (conn: PooledConnection, shardId: number) => Promise<T>,
    signal?: AbortSignal,
    readFrom?: ReadFrom,
  ): Promise<T[]> {
    const queued = signal === undefined ? undefined : { signal };
    const one = (id: number) =>
      readFrom === undefined
        ? this.onShard(id, (conn) => fn(conn, id), signal)
        : this.onShardRead(id, (conn) => fn(conn, id), signal, readFrom);
    // Every shard settles before the call does: an abort returns every lease first.
    const settled = await Promise.allSettled(
      shardIds.map((id) => this.#queue.add(() => one(id), queued)),
    );
    const results: T[] = [];
    for (const outcome of settled) {
      // No partial result is returned as if complete: the first failing shard is raised.
      if (outcome.status === "rejected") throw outcome.reason;
      results.push(outcome.value as T);
    }
    return results;
  }
}
