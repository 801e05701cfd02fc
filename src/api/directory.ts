/**
 * Opening a manager's shard directory, in the order a crash-safe start needs: take
 * ownership, load the shard map (or write the first one), pick up an unfinished reshard
 * plan, complete interrupted batches, record missing key types.
 *
 * @module
 */

import { ReshardError, ShardOperationError } from "../errors.ts";
import { type BatchRecovery, recoverBatches } from "../routing/batches.ts";
import { CURRENT_KEY_FORM } from "../routing/key_column.ts";
import { sameLayout, strategyFromDescriptor } from "../routing/strategies.ts";
import { readKeySchema } from "./key_schema.ts";
import { shardFilePath } from "./layout.ts";
import type { ManagerParts } from "./parts.ts";
import type { PooledConnection } from "../pool/connection.ts";
import type { RemoteShards } from "./remote.ts";
import type { RemoteShard } from "./locations.ts";
import {
  epochOf,
  readOrCreateRemoteMap,
  readRemoteMap,
  readRemotePlan,
  updateRemoteMap,
} from "./remote_map.ts";
import { RESHARD_PLAN_FILE, type ReshardPlan } from "./reshard.ts";
import {
  acquireDirectory,
  type DirectoryHold,
  directoryUsers,
  isLiveUser,
  withRecoveryLock,
} from "./directory_lock.ts";
import {
  checkLayout,
  readShardMap,
  SHARD_MAP_FORMAT,
  type ShardMap,
  withMapLock,
  writeShardMap,
} from "./shard_map.ts";

/** The owner part of the batch ids of clients of shards on servers: `t<ms since epoch>`. */
const REMOTE_OWNER_PREFIX = "t";

/**
 * Shards on servers: a batch this young may still be being written by its client, so a
 * recovery (by any client, when it opens) leaves it alone.
 */
export const REMOTE_BATCH_AGE_MS = 60_000;
let remoteBatchAgeMs = REMOTE_BATCH_AGE_MS;

/** @internal Tests: how old a batch of shards on servers must be to be recovered. */
export function setRemoteBatchAgeForTests(ms: number): void {
  remoteBatchAgeMs = ms;
}

function remoteOwnerIsLive(owner: string): boolean {
  if (!owner.startsWith(REMOTE_OWNER_PREFIX)) return false;
  const at = Number(owner.slice(REMOTE_OWNER_PREFIX.length));
  return Number.isFinite(at) && Date.now() - at < remoteBatchAgeMs;
}

// Batch recovery under way, by directory (real path), for managers sharing it to await.
const recoveries = new Map<string, Promise<void>>();

/** One manager's hold on its directory: the ownership it took, the recovery it ran. */
export class ShardDirectory {
  readonly #parts: ManagerParts;
  #hold: DirectoryHold | null = null;
  #batchRecovery: BatchRecovery | null = null;

  /** The directory of the manager made of `parts`; nothing is touched until {@link open}. */
  constructor(parts: ManagerParts) {
    this.#parts = parts;
  }

  /**
   * Under shared access, this user's id (its batches carry it); else undefined. Shards
   * on servers: the time, so that a recovery leaves batches younger than
   * {@link REMOTE_BATCH_AGE_MS} to the client still writing them.
   */
  get userId(): string | undefined {
    if (this.#parts.remote !== null) return `${REMOTE_OWNER_PREFIX}${Date.now()}`;
    return this.#hold?.userId;
  }

  /** The last batch recovery (see `ShardManager.batchRecovery`), or null. */
  get batchRecovery(): BatchRecovery | null {
    return this.#batchRecovery;
  }

  /**
   * Creates the directory, takes ownership of it, checks (or writes) the shard map, then
   * recovers. Marks the manager's admission open once done; a failure lets go of the
   * directory again, with the pools opened for recovery.
   */
  async open(): Promise<void> {
    if (this.#parts.remote !== null) return await this.#openRemote(this.#parts.remote);
    const { dbDir, admission, tables, pools } = this.#parts;
    await Deno.mkdir(dbDir, { recursive: true, mode: 0o700 });
    // shutdown() may have run while mkdir was awaited: take no lock it would not release.
    if (admission.isClosed) throw admission.closedError();
    const hold = acquireDirectory(dbDir, this.#parts.access);
    this.#hold = hold;
    tables.shared = hold.access === "shared";
    try {
      // Shared users opening a new directory at once: one writes the first map.
      const existing = hold.access === "shared"
        ? withMapLock(dbDir, () => this.#readOrCreateMap())
        : readShardMap(dbDir);
      admission.pending = readReshardPlan(dbDir);
      if (existing !== undefined) {
        const pendingTo = admission.pending?.to;
        // A manager opened with the layout an unfinished reshard was heading for is told so.
        if (pendingTo !== undefined && sameLayout(pendingTo, this.#parts.strategy.describe())) {
          this.#parts.useStrategy(strategyFromDescriptor(existing.strategy));
        }
        checkLayout(dbDir, existing, this.#parts.strategy);
        tables.load(existing);
      } else {
        const map = this.#firstMap();
        tables.load(map);
        writeShardMap(dbDir, map);
      }
      // Only the first owner in this process recovers; a manager sharing the directory
      // waits for that (and may have batches in flight, which are not recovery's to touch).
      const key = Deno.realPathSync(dbDir);
      if (directoryUsers(dbDir) === 1) {
        const recovery = this.recoverBatches();
        recoveries.set(key, recovery);
        try {
          await recovery;
        } finally {
          if (recoveries.get(key) === recovery) recoveries.delete(key);
        }
      } else {
        await recoveries.get(key);
      }
      await this.#recordKeyTypes();
    } catch (error) {
      // Pools opened for recovery let go of their files with the directory.
      await pools.discard();
      hold.release();
      this.#hold = null;
      throw error;
    }
    admission.markOpen();
  }

  /**
   * Shards on servers: reads the map from shard 0 (writing the first one), checks the
   * layout, and completes batches a crashed client left (any client may).
   */
  async #openRemote(remote: RemoteShards): Promise<void> {
    const { dbDir, admission, tables, pools } = this.#parts;
    tables.shared = true;
    tables.remoteStore = (change) => this.#onShardZero((c) => updateRemoteMap(c, dbDir, change));
    try {
      const map = await this.#onShardZero((c) =>
        readOrCreateRemoteMap(c, dbDir, () => ({
          ...this.#firstMap(),
          epoch: 1,
          servers: remote.servers.map((s) => s.url),
        }))
      );
      admission.pending = parsePlan(
        dbDir,
        await this.#onShardZero((c) => readRemotePlan(c)),
      );
      const pendingTo = admission.pending?.to;
      if (pendingTo !== undefined && sameLayout(pendingTo, this.#parts.strategy.describe())) {
        this.#parts.useStrategy(strategyFromDescriptor(map.strategy));
      }
      checkLayout(dbDir, map, this.#parts.strategy);
      tables.load(map);
      if (admission.isClosed) throw admission.closedError();
      // A crashed reshard's span: the servers it recorded (it resumes over them).
      if (admission.pending === null) await this.#recoverRemote(remote, remoteOwnerIsLive);
    } catch (error) {
      await pools.discard();
      throw error;
    }
    admission.markOpen();
  }

  /** Completes the batches of shards on servers that `ownerIsLive` says are abandoned. */
  async #recoverRemote(remote: RemoteShards, ownerIsLive: (owner: string) => boolean) {
    this.#batchRecovery = await recoverBatches(
      this.#parts.strategy.getAllShardIds(),
      (shardId, fn) => {
        const pool = this.#parts.getPool(shardId);
        return pool.withConnection(fn).catch((error) => {
          throw remote.failure(shardId, error) ??
            new ShardOperationError(shardId, pool.path, error);
        });
      },
      ownerIsLive,
    );
  }

  /** Runs `fn` on shard 0 (where the map of shards on servers lives). */
  #onShardZero<T>(fn: (conn: PooledConnection) => Promise<T>): Promise<T> {
    const pool = this.#parts.getPool(0);
    return pool.withConnection(fn).catch((error) => {
      throw this.#parts.remote?.failure(0, error) ?? error;
    });
  }

  /**
   * Shards on servers: reads the map on shard 0 again and routes by it (after a write
   * found its shard on another layout epoch: another client resharded).
   */
  async reloadRemoteMap(): Promise<void> {
    const { dbDir, tables } = this.#parts;
    const map = await this.#onShardZero((c) => readRemoteMap(c, dbDir));
    if (map === undefined) return;
    const current = tables.current;
    if (current !== null && epochOf(map) <= epochOf(current)) {
      tables.replace(map);
      return;
    }
    // Servers this client was not given (another client grew the layout): reached as
    // shard 0 is, with its token.
    const remote = this.#parts.remote;
    if (remote !== null && map.servers !== undefined && map.servers.length > remote.count) {
      const own = remote.servers;
      const first = own[0] as RemoteShard;
      await remote.setServers(
        map.servers.map((url, shardId) =>
          own[shardId] ?? { shardId, url, replicas: [], driver: first.driver }
        ),
      );
    }
    this.#parts.useStrategy(strategyFromDescriptor(map.strategy));
    tables.replace(map);
  }

  /** The map of a new directory: this manager's layout, no tables, the current key form. */
  #firstMap(): ShardMap {
    return {
      format: SHARD_MAP_FORMAT,
      numShards: this.#parts.strategy.numShards,
      strategy: this.#parts.strategy.describe(),
      tables: {},
      keyForm: CURRENT_KEY_FORM,
    };
  }

  /** Shared access, under the map lock: the map on disk, written first when missing. */
  #readOrCreateMap(): ShardMap {
    const existing = readShardMap(this.#parts.dbDir);
    if (existing !== undefined) return existing;
    const map = this.#firstMap();
    writeShardMap(this.#parts.dbDir, map);
    return map;
  }

  /** Lets go of the directory (at shutdown). Idempotent. */
  release(): void {
    this.#hold?.release();
    this.#hold = null;
  }

  /**
   * Completes cross-shard insertMany batches a crash interrupted (see `batches.ts`). For
   * shards on servers (called by a reshard, once every shard is fenced, so that no batch
   * can still be in flight): every batch found.
   */
  async recoverBatches(): Promise<void> {
    if (this.#parts.remote !== null) {
      return await this.#recoverRemote(this.#parts.remote, () => false);
    }
    const { dbDir, admission } = this.#parts;
    const limit = Math.max(this.#parts.strategy.numShards, admission.pending?.span ?? 0);
    const existing: number[] = [];
    for (let shardId = 0; shardId < limit; shardId++) {
      if (fileExists(shardFilePath(dbDir, shardId))) existing.push(shardId);
    }
    const recover = () =>
      recoverBatches(existing, (shardId, fn) => {
        const pool = this.#parts.getPool(shardId);
        return pool.withConnection(fn).catch((error) => {
          throw new ShardOperationError(shardId, pool.path, error);
        });
      }, (owner) => owner === this.userId || isLiveUser(dbDir, owner));
    // Shared users opening at once recover one after the other; each leaves the batches
    // of users still alive to them.
    this.#batchRecovery = this.#hold?.access === "shared"
      ? await withRecoveryLock(dbDir, recover)
      : await recover();
  }

  /**
   * Records the key type of sharded tables whose map entry lacks it (maps written before
   * key types were recorded), reading it from the first shard that has the table.
   */
  async #recordKeyTypes(): Promise<void> {
    const { dbDir, tables } = this.#parts;
    const map = tables.current as ShardMap;
    const missing = Object.entries(map.tables).filter(([, e]) =>
      e.shardKey !== null && e.keyType === undefined
    );
    if (missing.length === 0) return;
    const entries = { ...map.tables };
    for (const [table, entry] of missing) {
      for (const shardId of this.#parts.strategy.getAllShardIds()) {
        if (!fileExists(shardFilePath(dbDir, shardId))) continue;
        const schema = await this.#parts.getPool(shardId).withConnection((c) =>
          readKeySchema(c, table, entry.shardKey as string)
        );
        if (schema === undefined) continue;
        const { declaredType, rowidAlias, strictTable } = schema;
        entries[table] = { ...entry, keyType: { declaredType, rowidAlias, strictTable } };
        break;
      }
    }
    const next: ShardMap = { ...map, tables: entries };
    tables.replace(next);
    writeShardMap(dbDir, next);
  }
}

/** Whether `path` exists. */
export function fileExists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Reads an unfinished reshard plan of `dbDir`, if any. */
function readReshardPlan(dbDir: string): ReshardPlan | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(`${dbDir}/${RESHARD_PLAN_FILE}`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  return parsePlan(dbDir, JSON.parse(text));
}

/** A plan as read (from the plan file or shard 0), checked; null when there is none. */
function parsePlan(where: string, value: unknown): ReshardPlan | null {
  if (value === undefined) return null;
  const plan = value as ReshardPlan;
  if (plan?.format !== 1) {
    throw new ReshardError(where, `the reshard plan has an unknown format`);
  }
  return plan;
}
