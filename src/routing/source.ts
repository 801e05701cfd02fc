/**
 * What a `Router` needs from the layer that owns the shards (a `ShardManager`, or anything
 * that hands out a pool per shard).
 *
 * @module
 */

import type { PooledConnection } from "../pool/connection.ts";
import type { ConnectionPool } from "../pool/pool.ts";
import type { KeyColumn, KeyForm } from "./key_column.ts";

/** What a router needs from the layer that owns the shards (a `ShardManager`). */
export interface ShardSource {
  /** Resolves when the shard map is loaded; rejects when the source is closed. */
  ready(): Promise<void>;
  /** True once `ready()` has resolved, no reshard runs and the source is open. */
  readonly isReady: boolean;
  /** An operation starts (only while `isReady`); a reshard waits for all to leave. */
  enter(): void;
  /** An operation ends. */
  leave(): void;
  /** The pool of shard `shardId`. */
  getPool(shardId: number): ConnectionPool;
  /** The shard-key column recorded for `table`, if any. */
  getShardKeyColumn(table: string): string | undefined;
  /**
   * The shard-key column of `table` with its type (see `key_column.ts`), so keys are
   * routed by the value SQLite stores. Without it, keys route by their JavaScript type.
   */
  getKeyColumn?(table: string): KeyColumn | undefined;
  /** Whether `table` is recorded (sharded or not). Lets errors say a table is missing. */
  hasTable?(table: string): boolean;
  /** How keys are hashed (see `KeyForm`); 1 when absent, the form of older directories. */
  readonly keyForm?: KeyForm;
  /**
   * Under shared access, who this user is: its cross-shard batches carry it, so that a
   * recovery run by another process leaves the batches of a live user alone.
   */
  readonly batchOwner?: string | undefined;
  /** How many shards run concurrently in a cross-shard operation. */
  readonly maxConcurrentShards: number;
  /**
   * The driver's rule for text (`Driver.checkText`): values it refuses are refused before
   * any shard is written. Absent: only the rules that hold for every driver apply.
   */
  readonly checkText?: ((text: string) => string | undefined) | undefined;
  /**
   * True when the shards are on servers: their queries then run at once, each on its
   * server (an ordered merge opens every shard's query together).
   */
  readonly remote?: boolean | undefined;
  /**
   * True when SQLite runs off this thread (shard workers, or servers): a statement cut in
   * pieces for the event loop's sake would then only add round trips.
   */
  readonly offThread?: boolean | undefined;
  /**
   * Shards on servers: the check every write makes first, inside its transaction on the
   * shard (the layout epoch). It throws to refuse the write. Absent: nothing to check.
   */
  readonly guardWrite?: ((conn: PooledConnection, shardId: number) => Promise<void>) | undefined;
  /**
   * Shards on servers: what a shard's failure is reported as (`ShardUnavailableError`
   * when its server is unreachable), or undefined to report it as usual.
   */
  readonly shardFailure?: ((shardId: number, error: unknown) => Error | undefined) | undefined;
  /**
   * Shards on servers: when `table` is not in the loaded map, reads the map again (another
   * client may have created it) and resolves once done (never rejects); undefined when the
   * table is known or there is nothing to reload.
   */
  readonly refreshTable?: ((table: string) => Promise<void> | undefined) | undefined;
  /**
   * Shards on servers: a replica's pool to read shard `shardId` from (`readFrom:
   * "replica"`), with a callback marking it failed; undefined when there is none.
   */
  readonly replicaPool?:
    | ((shardId: number) => { pool: ConnectionPool; failed: () => void } | undefined)
    | undefined;
}
