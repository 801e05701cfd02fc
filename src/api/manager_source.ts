/**
 * What a manager's own router sees of it (`ShardSource`): admission, pools, the loaded map,
 * the driver's text rule, the batch owner, and for shards on servers the write check,
 * failure reports, replicas and map reloads.
 *
 * @module
 */

import type { Driver } from "../driver/driver.ts";
import type { ConnectionPool } from "../pool/pool.ts";
import type { KeyColumn, KeyForm } from "../routing/key_column.ts";
import type { ShardSource } from "../routing/source.ts";
import type { Admission } from "./admission.ts";
import type { ShardDirectory } from "./directory.ts";
import type { LoadedMap } from "./loaded_map.ts";
import type { PoolCache } from "./pool_cache.ts";
import type { RemoteShards } from "./remote.ts";

/** What the router's source needs of shards on servers. */
export interface RemoteSide {
  readonly remote: RemoteShards;
  /** The epoch of the map this client routes by. */
  epoch(): number;
  /** Reloads the map from shard 0 (after a write found another epoch). */
  reload(): Promise<void>;
}

/**
 * What a manager's own router sees of it: the manager's bookkeeping (`enter`, `leave`, the
 * driver's text rule, the batch owner, ...) without making it methods of the manager. A
 * class rather than an object of closures: the point-read path calls it on every read.
 */
export class ManagerSource implements ShardSource {
  readonly #admission: Admission;
  readonly #pools: PoolCache;
  readonly #tables: LoadedMap;
  readonly #directory: () => ShardDirectory;
  readonly getPool: (shardId: number) => ConnectionPool;
  readonly maxConcurrentShards: number;
  readonly checkText: ((text: string) => string | undefined) | undefined;
  readonly #remote: RemoteSide | undefined;
  get remote(): boolean {
    return this.#remote !== undefined;
  }
  readonly offThread: boolean;
  guardWrite: ShardSource["guardWrite"] = (conn, shardId) => {
    const remote = this.#remote as RemoteSide;
    return remote.remote.checkEpoch(conn, shardId, remote.epoch(), remote.reload);
  };
  shardFailure: ShardSource["shardFailure"] = (shardId, error) =>
    this.#remote?.remote.failure(shardId, error);
  replicaPool: ShardSource["replicaPool"] = (shardId) => this.#remote?.remote.replicaPool(shardId);
  #reloading: Promise<void> | null = null;
  refreshTable: ShardSource["refreshTable"] = (table) => {
    if (this.#tables.recordedName(table) !== undefined) return undefined;
    // Calls for unknown tables at once share one read of the map.
    this.#reloading ??= (this.#remote as RemoteSide).reload().catch(() => {}).finally(() => {
      this.#reloading = null;
    });
    return this.#reloading;
  };
  constructor(
    admission: Admission,
    pools: PoolCache,
    tables: LoadedMap,
    getPool: (shardId: number) => ConnectionPool,
    directory: () => ShardDirectory,
    maxConcurrentShards: number,
    driver: Driver,
    remote: RemoteSide | undefined,
    workers: boolean,
  ) {
    this.#remote = remote;
    this.offThread = workers || remote !== undefined;
    if (remote === undefined) {
      this.guardWrite = undefined;
      this.shardFailure = undefined;
      this.replicaPool = undefined;
      this.refreshTable = undefined;
    }
    this.#admission = admission;
    this.#pools = pools;
    this.#tables = tables;
    this.getPool = getPool;
    this.#directory = directory;
    this.maxConcurrentShards = maxConcurrentShards;
    this.checkText = driver.checkText === undefined
      ? undefined
      : (text: string) => driver.checkText?.(text);
  }
  ready(): Promise<void> {
    return this.#admission.ready();
  }
  get isReady(): boolean {
    return this.#admission.isReady;
  }
  enter(): void {
    this.#admission.enter();
  }
  leave(): void {
    this.#pools.trim();
    this.#admission.leave();
  }
  getShardKeyColumn(table: string): string | undefined {
    return this.#tables.shardKeyColumn(table);
  }
  getKeyColumn(table: string): KeyColumn | undefined {
    return this.#tables.keyColumn(table);
  }
  hasTable(table: string): boolean {
    return this.#tables.recordedName(table) !== undefined;
  }
  get keyForm(): KeyForm {
    return this.#tables.keyForm;
  }
  get batchOwner(): string | undefined {
    return this.#directory().userId;
  }
}
