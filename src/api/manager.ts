/**
 * `ShardManager`: one async API over many SQLite shard files.
 *
 * @module
 */

import {
  InvalidQueryError,
  PoolClosedError,
  ReshardError,
  ShardOperationError,
} from "../errors.ts";
import type { PooledConnection } from "../pool/connection.ts";
import type { Driver } from "../driver/driver.ts";
import { wasmDriver } from "../driver/wasm.ts";
import { ConnectionPool, type PoolOptions, type PoolStats } from "../pool/pool.ts";
import { type BatchRecovery, recoverBatches } from "../routing/batches.ts";
import type { ShardKey } from "../routing/keys.ts";
import { CURRENT_KEY_FORM, type KeyColumn, type KeyForm } from "../routing/key_column.ts";
import { ensureKeyIndex, keyColumnFromEntry, readKeySchema } from "./key_schema.ts";
import {
  type PlacementReport,
  type RepairReport,
  verifyPlacement,
  type VerifyPlacementOptions,
} from "./placement.ts";
import {
  type QueryAllOptions,
  type RouteOptions,
  Router,
  type SelectRouteOptions,
  type ShardSource,
  type WriteRouteOptions,
} from "../routing/router.ts";
import { buildCreateTable, buildDropTable, type CreateTableOptions } from "../sql/schema.ts";
import { quoteIdentifier, validateIdentifier } from "../sql/identifiers.ts";
import type { Where } from "../sql/where.ts";
import {
  HashStrategy,
  sameLayout,
  type ShardingStrategy,
  type StrategyDescriptor,
  strategyFromDescriptor,
} from "../routing/strategies.ts";
import type { Params, Row, RunResult, SqlInput, SqlValue } from "../types.ts";
import { shardFilePath } from "./layout.ts";
import {
  acquireDirectory,
  checkLayout,
  directoryUsers,
  readShardMap,
  SHARD_MAP_FORMAT,
  type ShardMap,
  writeJsonAtomic,
  writeShardMap,
} from "./shard_map.ts";
import {
  type BackupOptions,
  type BackupReport,
  backupShards,
  type RestoreOptions,
  type RestoreReport,
  restoreShards,
} from "./backup.ts";
import {
  newPlan,
  RESHARD_PLAN_FILE,
  type ReshardOptions,
  type ReshardPlan,
  type ReshardReport,
  runReshard,
} from "./reshard.ts";
import {
  type MigrateOptions,
  type MigrateReport,
  type Migration,
  migrationStatus,
  pendingReshardRefusal,
  prepareMigrations,
  runMigrations,
  type ShardMigrationStatus,
} from "./migrations.ts";
import { findTransactionControl } from "../sql/statements.ts";

/** Options of a {@link ShardManager}. */
export interface ShardManagerOptions {
  /** How many shard files. Required unless `strategy` is given. */
  numShards?: number;
  /** The directory of the shard files (`shard_<id>.db`) and the shard map. */
  dbDir: string;
  /** How keys map to shards. Default: `new HashStrategy(numShards)`. */
  strategy?: ShardingStrategy;
  /** Options of every shard's {@link ConnectionPool}. */
  pool?: PoolOptions;
  /** How many shards a cross-shard operation works on at once. Default 16. */
  maxConcurrentShards?: number;
  /**
   * How many shard files stay open at once. Beyond it, opening a shard closes the least
   * recently used shards that nobody is using (checkpointing them; each reopens on its
   * next use, in about a millisecond); an operation over more shards than that, which
   * holds them all at once, closes the extra ones when it ends. Each open shard costs its page cache (`pool.
   * cacheSizeKiB`, 2 MB by default) plus about 0.3 MB, out of one 2 GiB WebAssembly heap
   * for the whole process. Default 256.
   */
  maxOpenShards?: number;
}

/**
 * Restricts `count`, `sum`, `avg`, `min` and `max` to the rows of one shard key (on its
 * shard). A `key` that is present but `undefined` or `null` is refused.
 */
export interface KeyOption {
  /** The shard key. */
  key?: ShardKey;
}

/** One shard as {@link ShardManager.getShardInfo} describes it. */
export interface ShardInfo {
  /** The shard's id. */
  shardId: number;
  /** Its file. */
  path: string;
}

/** What {@link ShardManager.getShardInfo} returns. */
export interface ShardLayout {
  /** The directory. */
  dbDir: string;
  /** Number of shards. */
  numShards: number;
  /** The strategy's descriptor. */
  strategy: StrategyDescriptor;
  /** Every shard. */
  shards: ShardInfo[];
  /** Tables and their shard-key columns. */
  tables: Record<string, { shardKey: string | null }>;
}

/** One shard's figures from {@link ShardManager.getShardStats}. */
export interface ShardStats extends ShardInfo {
  /** Whether the file exists (files are created lazily). */
  exists: boolean;
  /** The file's size plus its WAL's, in bytes (0 when missing). */
  sizeBytes: number;
  /** Rows per known table (empty when the file does not exist). */
  rows: Record<string, number>;
  /** The shard pool's stats, when the pool was used. */
  pool: PoolStats | null;
}

const managers = new Set<ShardManager>();

const DEFAULT_MAX_OPEN_SHARDS = 256;

// Batch recovery under way, by directory (real path), for managers sharing it to await.
const recoveries = new Map<string, Promise<void>>();

/** @internal Every open manager of the process, for module-level shutdown(). */
export function openManagers(): ShardManager[] {
  return [...managers];
}

/**
 * Shards data over SQLite files in one directory and routes every operation by shard key.
 *
 * @example
 * ```ts
 * import { ShardManager } from "../../mod.ts";
 * const dir = await Deno.makeTempDir();
 * await using manager = new ShardManager({ numShards: 4, dbDir: dir });
 * await manager.createTable("users", { id: "INTEGER PRIMARY KEY", name: "TEXT", age: "INTEGER" }, {
 *   shardKey: "id",
 * });
 * await manager.insert("users", { id: 123, name: "John", age: 30 });
 * await manager.insertMany("users", [{ id: 1, name: "Ada", age: 36 }, { id: 2, name: "Bo", age: 24 }]);
 * const [john] = await manager.select("users", { key: 123 });
 * if (john?.name !== "John") throw new Error("expected John");
 * if (await manager.count("users") !== 3) throw new Error("expected 3 users");
 * await manager.shutdown();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class ShardManager implements ShardSource {
  /** The directory of the shard files. */
  readonly dbDir: string;
  #strategy: ShardingStrategy;
  /** How many shards a cross-shard operation works on at once. */
  readonly maxConcurrentShards: number;
  readonly #poolOptions: PoolOptions;
  // Open pools in least-recently-used order (a Map keeps insertion order).
  readonly #pools = new Map<number, ConnectionPool>();
  readonly #maxOpenShards: number;
  // Pools closed to respect maxOpenShards, until their close completes.
  readonly #evicting = new Set<Promise<void>>();
  #evictions = 0;
  #batchRecovery: BatchRecovery | null = null;
  readonly #router: Router;
  #map: ShardMap | null = null;
  // Key columns derived from the map, by recorded table name; cleared when the map changes.
  readonly #keyColumns = new Map<string, KeyColumn>();
  #ready: Promise<void> | null = null;
  #releaseDirectory: (() => void) | null = null;
  #closed: Promise<void> | null = null;
  // Resharding: a plan left unfinished, the gate that holds operations off while one
  // runs, and the operations in flight it waits for.
  #pending: ReshardPlan | null = null;
  #gate: Promise<void> | null = null;
  #inFlight = 0;
  #drained: (() => void) | null = null;

  /**
   * Creates a manager. Nothing is touched on disk until the first operation, which
   * creates `dbDir`, takes ownership of it and checks or writes the shard map.
   *
   * @throws {TypeError | RangeError} for invalid options (the message names the option).
   */
  constructor(options: ShardManagerOptions) {
    if (options === null || typeof options !== "object") {
      throw new TypeError("ShardManager options must be an object with numShards and dbDir");
    }
    if (typeof options.dbDir !== "string" || options.dbDir.trim() === "") {
      throw new TypeError(`dbDir must be a non-empty string, got ${JSON.stringify(options.dbDir)}`);
    }
    if (options.dbDir.includes("\0")) throw new TypeError("dbDir must not contain NUL characters");
    const strategy = options.strategy ?? (() => {
      if (options.numShards === undefined) {
        throw new TypeError("numShards is required when no strategy is given");
      }
      return new HashStrategy(options.numShards);
    })();
    if (options.numShards !== undefined && options.numShards !== strategy.numShards) {
      throw new RangeError(
        `numShards (${options.numShards}) differs from the strategy's (${strategy.numShards})`,
      );
    }
    const concurrency = options.maxConcurrentShards ?? 16;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
      throw new RangeError(`maxConcurrentShards must be a positive integer, got ${concurrency}`);
    }
    const maxOpen = options.maxOpenShards ?? DEFAULT_MAX_OPEN_SHARDS;
    if (!Number.isSafeInteger(maxOpen) || maxOpen < 1) {
      throw new RangeError(`maxOpenShards must be a positive integer, got ${maxOpen}`);
    }
    this.#maxOpenShards = maxOpen;
    this.dbDir = options.dbDir.replace(/\/+$/, "") || "/";
    this.#strategy = strategy;
    this.maxConcurrentShards = concurrency;
    this.#poolOptions = { ...options.pool };
    // Fail at construction on bad pool options rather than at the first query.
    new ConnectionPool(this.shardPath(0), this.#poolOptions);
    this.#router = new Router(this, strategy);
    managers.add(this);
  }

  /** The driver of every shard's pool (`pool.driver`, `wasmDriver` by default). */
  get driver(): Driver {
    return this.#poolOptions.driver ?? wasmDriver;
  }

  /** The strategy that maps keys to shards (it changes after a reshard). */
  get strategy(): ShardingStrategy {
    return this.#strategy;
  }

  /** Number of shards. */
  get numShards(): number {
    return this.strategy.numShards;
  }

  /** The router this manager delegates to. */
  get router(): Router {
    return this.#router;
  }

  /** True once the directory is owned and the map loaded, while no reshard runs or waits. */
  get isReady(): boolean {
    return this.#releaseDirectory !== null && this.#closed === null && this.#gate === null &&
      this.#pending === null;
  }

  /**
   * Resolves once `dbDir` is owned and the shard map checked, and no reshard is running.
   * Rejects after shutdown, and while an unfinished reshard waits to be resumed.
   */
  ready(): Promise<void> {
    if (this.#closed !== null) {
      return Promise.reject(new PoolClosedError(this.dbDir, "the shard manager was shut down"));
    }
    const opening = this.#startOpening();
    if (this.#gate !== null) return this.#gate;
    return opening.then(() => {
      if (this.#pending !== null && this.#gate === null) throw this.#pendingError(this.#pending);
    });
  }

  /** Starts opening once; a failed open (a live rival owner, a bad map) is retried next time. */
  #startOpening(): Promise<void> {
    if (this.#ready === null) {
      const opening = this.#open();
      this.#ready = opening;
      opening.catch(() => {
        if (this.#ready === opening) this.#ready = null;
      });
    }
    return this.#ready;
  }

  #pendingError(plan: ReshardPlan): ReshardError {
    if (plan.mode === "repair") {
      return new ReshardError(
        this.dbDir,
        `an unfinished placement repair was found; resume it with manager.repairPlacement() ` +
          `(or "deno task shardlite check --repair"). No operation is routed until then.`,
      );
    }
    return new ReshardError(
      this.dbDir,
      `an unfinished reshard from ${JSON.stringify(plan.from)} to ${JSON.stringify(plan.to)} ` +
        `was found; resume it with manager.reshard(${
          plan.to.type === "hash" ? plan.to.numShards : "<the same strategy>"
        }) (or "deno task shardlite reshard"), or roll it back with abortReshard(). No ` +
        `operation is routed until then.`,
    );
  }

  /** The unfinished reshard plan of the directory, if any (after the first operation). */
  get pendingReshard(): ReshardPlan | null {
    return this.#pending === null ? null : structuredClone(this.#pending);
  }

  /** @internal An operation enters (the router calls this). */
  enter(): void {
    this.#inFlight++;
  }

  /** @internal An operation leaves. */
  leave(): void {
    // A burst over many shards may have opened more than maxOpenShards; its pools are
    // idle now that it is done.
    if (this.#pools.size > this.#maxOpenShards) this.#evictIdle(-1);
    if (--this.#inFlight === 0) this.#drained?.();
  }

  async #open(): Promise<void> {
    await Deno.mkdir(this.dbDir, { recursive: true, mode: 0o700 });
    // shutdown() may have run while mkdir was awaited: take no lock it would not release.
    if (this.#closed !== null) {
      throw new PoolClosedError(this.dbDir, "the shard manager was shut down");
    }
    const release = acquireDirectory(this.dbDir);
    try {
      const existing = readShardMap(this.dbDir);
      this.#pending = readReshardPlan(this.dbDir);
      if (existing !== undefined) {
        const pendingTo = this.#pending?.to;
        // A manager opened with the layout an unfinished reshard was heading for is told so.
        if (pendingTo !== undefined && sameLayout(pendingTo, this.strategy.describe())) {
          this.#strategy = strategyFromDescriptor(existing.strategy);
          this.#router.setStrategy(this.#strategy);
        }
        checkLayout(this.dbDir, existing, this.strategy);
        this.#map = existing;
      } else {
        this.#map = {
          format: SHARD_MAP_FORMAT,
          numShards: this.strategy.numShards,
          strategy: this.strategy.describe(),
          tables: {},
          keyForm: CURRENT_KEY_FORM,
        };
        writeShardMap(this.dbDir, this.#map);
      }
      // Only the first owner in this process recovers; a manager sharing the directory
      // waits for that (and may have batches in flight, which are not recovery's to touch).
      const key = Deno.realPathSync(this.dbDir);
      if (directoryUsers(this.dbDir) === 1) {
        const recovery = this.#recoverBatches();
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
      const pools = [...this.#pools.values()];
      this.#pools.clear();
      await Promise.allSettled(pools.map((pool) => pool.closeAll()));
      release();
      throw error;
    }
    this.#releaseDirectory = release;
  }

  /** Completes cross-shard insertMany batches a crash interrupted (see `batches.ts`). */
  async #recoverBatches(): Promise<void> {
    const limit = Math.max(this.numShards, this.#pending?.span ?? 0);
    const existing: number[] = [];
    for (let shardId = 0; shardId < limit; shardId++) {
      if (existsSync(this.shardPath(shardId))) existing.push(shardId);
    }
    this.#batchRecovery = await recoverBatches(existing, (shardId, fn) => {
      const pool = this.getPool(shardId);
      return pool.withConnection(fn).catch((error) => {
        throw new ShardOperationError(shardId, pool.path, error);
      });
    });
  }

  /**
   * The last batch recovery of this manager (when it opened the directory, or before its
   * last reshard): cross-shard `insertMany` batches cut short after their commit point,
   * the shard parts replayed, and those still pending. Null before open, and for a
   * manager that shared a directory another manager of the process had opened first.
   */
  get batchRecovery(): BatchRecovery | null {
    return this.#batchRecovery === null ? null : structuredClone(this.#batchRecovery);
  }

  /** The path of shard `shardId`'s file. */
  shardPath(shardId: number): string {
    return shardFilePath(this.dbDir, shardId);
  }

  /** The pool of shard `shardId` (created on first use). */
  getPool(shardId: number): ConnectionPool {
    if (this.#closed !== null) {
      throw new PoolClosedError(this.dbDir, "the shard manager was shut down");
    }
    const limit = Math.max(this.numShards, this.#pending?.span ?? 0);
    if (!Number.isSafeInteger(shardId) || shardId < 0 || shardId >= limit) {
      throw new RangeError(`shardId must be an integer from 0 to ${limit - 1}`);
    }
    let pool = this.#pools.get(shardId);
    if (pool === undefined) {
      pool = new ConnectionPool(this.shardPath(shardId), {
        name: `shard ${shardId}`,
        ...this.#poolOptions,
      });
      this.#pools.set(shardId, pool);
    } else if (this.#pools.size >= this.#maxOpenShards) {
      // Mark it most recently used; only needed once the bound is near.
      this.#pools.delete(shardId);
      this.#pools.set(shardId, pool);
    }
    if (this.#pools.size > this.#maxOpenShards) this.#evictIdle(shardId);
    return pool;
  }

  /**
   * Closes least recently used pools nobody is using until at most `maxOpenShards` are
   * open. A busy pool is never closed: the bound is exceeded while every pool is in use.
   * A pool taken out here is closing; the next use of its shard opens a fresh one (which
   * shares the file's handle while the old one finishes closing).
   */
  #evictIdle(keep: number): void {
    for (const [shardId, pool] of this.#pools) {
      if (this.#pools.size <= this.#maxOpenShards) return;
      if (shardId === keep || !pool.isIdle) continue;
      this.#evictions++;
      this.#closePool(shardId, pool);
    }
  }

  /** Takes `pool` out and closes it in the background (tracked until done). */
  #closePool(shardId: number, pool: ConnectionPool): void {
    this.#pools.delete(shardId);
    const closing = pool.closeAll().catch(() => {
      // A close that fails leaves the file for the next open to check; nothing to add.
    });
    this.#evicting.add(closing);
    closing.finally(() => this.#evicting.delete(closing));
  }

  /**
   * Closes every shard pool nobody is using now (they reopen on their next use) and waits
   * for closes already under way. Returns how many it closed. Frees their memory and file
   * handles, e.g. after a burst over many shards.
   *
   * @example
   * ```ts
   * import { ShardManager } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * await using manager = new ShardManager({ numShards: 8, dbDir: dir, maxOpenShards: 4 });
   * await manager.createTable("t", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
   * await manager.count("t"); // every shard, at most 4 kept open afterwards
   * if (manager.openShards.open > 4) throw new Error("bound not kept");
   * await manager.closeIdleShards();
   * if (manager.openShards.open !== 0) throw new Error("idle shards left open");
   * await manager.shutdown();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  async closeIdleShards(): Promise<number> {
    let closed = 0;
    for (const [shardId, pool] of this.#pools) {
      if (!pool.isIdle) continue;
      closed++;
      this.#closePool(shardId, pool);
    }
    await Promise.allSettled([...this.#evicting]);
    return closed;
  }

  /** Shard files open now, and how many were closed to respect `maxOpenShards`. */
  get openShards(): { open: number; max: number; evictions: number } {
    return { open: this.#pools.size, max: this.#maxOpenShards, evictions: this.#evictions };
  }

  /** The shard-key column recorded for `table`, if any. */
  getShardKeyColumn(table: string): string | undefined {
    const tables = this.#map?.tables;
    if (tables === undefined) return undefined;
    const entry = tables[table] ?? tables[this.#recordedName(table) ?? ""];
    return entry?.shardKey ?? undefined;
  }

  /** The name the map records for `table`: SQLite table names ignore ASCII case. */
  #recordedName(table: string): string | undefined {
    const tables = this.#map?.tables ?? {};
    if (Object.hasOwn(tables, table)) return table;
    const lower = table.toLowerCase();
    return Object.keys(tables).find((name) => name.toLowerCase() === lower);
  }

  /** The shard `key` maps to. */
  getShardId(key: ShardKey, table?: string): number {
    return this.#router.getShardId(key, table);
  }

  /** @internal The shard-key column of `table` with its type (the router's view). */
  getKeyColumn(table: string): KeyColumn | undefined {
    const name = this.#recordedName(table);
    if (name === undefined) return undefined;
    let column = this.#keyColumns.get(name);
    if (column === undefined) {
      column = keyColumnFromEntry(name, this.#map?.tables[name]);
      if (column !== undefined) this.#keyColumns.set(name, column);
    }
    return column;
  }

  /** @internal Whether the map records `table`. */
  hasTable(table: string): boolean {
    return this.#recordedName(table) !== undefined;
  }

  /**
   * How this directory hashes keys (see `KeyForm`): 2 for directories created by this
   * version, 1 for older ones until a reshard moves them to 2.
   */
  get keyForm(): KeyForm {
    return this.#map === null ? CURRENT_KEY_FORM : this.#map.keyForm ?? 1;
  }

  /**
   * Records the key type of sharded tables whose map entry lacks it (maps written before
   * key types were recorded), reading it from the first shard that has the table.
   */
  async #recordKeyTypes(): Promise<void> {
    const map = this.#map as ShardMap;
    const missing = Object.entries(map.tables).filter(([, e]) =>
      e.shardKey !== null && e.keyType === undefined
    );
    if (missing.length === 0) return;
    const tables = { ...map.tables };
    for (const [table, entry] of missing) {
      for (const shardId of this.strategy.getAllShardIds()) {
        if (!existsSync(this.shardPath(shardId))) continue;
        const schema = await this.getPool(shardId).withConnection((c) =>
          readKeySchema(c, table, entry.shardKey as string)
        );
        if (schema === undefined) continue;
        const { declaredType, rowidAlias, strictTable } = schema;
        tables[table] = { ...entry, keyType: { declaredType, rowidAlias, strictTable } };
        break;
      }
    }
    this.#map = { ...map, tables };
    this.#keyColumns.clear();
    writeShardMap(this.dbDir, this.#map);
  }

  async #persistTables(change: (tables: ShardMap["tables"]) => void): Promise<void> {
    await this.ready();
    const map = this.#map as ShardMap;
    const next: ShardMap = { ...map, tables: { ...map.tables } };
    change(next.tables);
    writeShardMap(this.dbDir, next);
    this.#map = next;
    this.#keyColumns.clear();
  }

  /**
   * Creates `table` on every shard (`IF NOT EXISTS` unless told otherwise) and records
   * its shard-key column in the shard map.
   */
  async createTable(
    table: string,
    columns: Readonly<Record<string, string>>,
    options: CreateTableOptions & { shardKey?: string } = {},
  ): Promise<void> {
    const { shardKey, ...createOptions } = options;
    const statement = buildCreateTable(table, columns, { ifNotExists: true, ...createOptions });
    if (shardKey !== undefined) {
      validateIdentifier(shardKey, "shard key column");
      if (!Object.hasOwn(columns, shardKey)) {
        throw new InvalidQueryError(
          "shardKey",
          `${shardKey} is not a column of ${table}; name one of: ${
            Object.keys(columns).join(", ")
          }`,
        );
      }
    }
    await this.ready();
    const recorded = this.#recordedName(table);
    if (recorded !== undefined) {
      // Changing a table's shard key would route new rows differently from existing ones.
      const existing = this.#map?.tables[recorded]?.shardKey ?? null;
      if (existing !== (shardKey ?? null)) {
        throw new InvalidQueryError(
          "shardKey",
          `table ${recorded} already exists with shard key ${existing ?? "(none)"}; its rows ` +
            `are placed by it. Drop the table, or create it under another name`,
        );
      }
    }
    // The key's storage (affinity, rowid alias, STRICT) comes from the schema as SQLite
    // built it; the key is indexed on every shard unless it leads the primary key.
    const schemas = await this.#router.routeEachShard(async (c) => {
      await c.exec(statement.sql);
      if (shardKey === undefined) return undefined;
      const schema = await readKeySchema(c, recorded ?? table, shardKey);
      if (schema !== undefined) await ensureKeyIndex(c, recorded ?? table, schema);
      return schema;
    });
    const schema = schemas.find((found) => found !== undefined);
    await this.#persistTables((tables) => {
      tables[recorded ?? table] = schema === undefined ? { shardKey: shardKey ?? null } : {
        shardKey: shardKey ?? null,
        keyType: {
          declaredType: schema.declaredType,
          rowidAlias: schema.rowidAlias,
          strictTable: schema.strictTable,
        },
      };
    });
  }

  /**
   * Runs DDL (one or more statements) on every shard, in one transaction per shard: a
   * statement that fails leaves its shard unchanged. Shards are independent, so others
   * may have committed; for changes that must reach every shard, use {@link migrate}.
   * The SQL must not hold BEGIN, COMMIT, END or ROLLBACK (InvalidQueryError).
   */
  async applySchema(sql: string): Promise<void> {
    if (typeof sql !== "string" || sql.trim() === "") {
      throw new TypeError("applySchema(sql): sql must be a non-empty string");
    }
    const control = findTransactionControl(sql);
    if (control !== undefined) {
      throw new InvalidQueryError(
        "sql",
        `applySchema runs its SQL as one transaction per shard; leave out the ` +
          `${control.keyword} statement at offset ${control.offset}`,
      );
    }
    await this.#router.routeEachShard((c) => c.transaction((tx) => tx.exec(sql)));
  }

  /**
   * Applies versioned migrations on every shard, in order: on each shard, each migration
   * runs in one transaction with its bookkeeping row (`_shardlite_migrations`), so a shard
   * is always at some prefix of the list. Only what a shard lacks runs: calling it again
   * with the same list is a no-op. Migration k finishes on every shard that lacks it
   * (`maxConcurrentShards` at once) before k+1 starts anywhere.
   *
   * Nothing runs when the list is malformed (InvalidMigrationError), when a shard's
   * history is not a prefix of the list, or an applied migration's SQL changed
   * (MigrationHistoryError), or while a reshard is unfinished (ReshardError). A migration
   * failing on a shard rejects with MigrationError naming it and the shard, which stays
   * at its previous version (others may be one ahead); fix the cause and call `migrate`
   * again to complete it.
   *
   * @example
   * ```ts
   * import { type Migration, ShardManager } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * await using manager = new ShardManager({ numShards: 4, dbDir: dir });
   * const migrations: Migration[] = [
   *   { id: "0001_users", up: "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)" },
   *   { id: "0002_email", up: "ALTER TABLE users ADD COLUMN email TEXT" },
   *   {
   *     id: "0003_seed", // a function runs inside the migration's transaction on each shard
   *     up: async (conn, shardId) => {
   *       await conn.run("INSERT INTO users (id, name) VALUES (?, ?)", [-1 - shardId, "system"]);
   *     },
   *   },
   * ];
   * const first = await manager.migrate(migrations);
   * if (first.applied !== 12 || first.version !== "0003_seed") throw new Error("3 x 4 shards");
   * const again = await manager.migrate(migrations);
   * if (again.applied !== 0) throw new Error("a rerun applies nothing");
   * const status = await manager.migrationStatus();
   * if (!status.every((s) => s.version === "0003_seed")) throw new Error("every shard at 0003");
   * await manager.shutdown();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  async migrate(
    migrations: readonly Migration[],
    options: MigrateOptions = {},
  ): Promise<MigrateReport> {
    const prepared = await prepareMigrations(migrations);
    try {
      return await this.#admitted(() => runMigrations(this, prepared, options));
    } catch (error) {
      if (error instanceof ReshardError && this.#pending !== null) {
        throw pendingReshardRefusal(this.dbDir, this.#pending, error);
      }
      throw error;
    }
  }

  /** Every shard's applied migrations (`_shardlite_migrations`), in shard order. */
  migrationStatus(): Promise<ShardMigrationStatus[]> {
    return this.#admitted(() => migrationStatus(this));
  }

  /** Drops `table` on every shard and forgets it in the shard map. */
  async dropTable(table: string, options: { ifExists?: boolean } = {}): Promise<void> {
    const statement = buildDropTable(table, { ifExists: options.ifExists ?? true });
    await this.#router.routeEachShard((c) => c.exec(statement.sql));
    await this.#persistTables((tables) => {
      delete tables[this.#recordedName(table) ?? table];
    });
  }

  /** Inserts a row on its key's shard; the key may be omitted when the table has a shard key. */
  insert(
    table: string,
    row: Readonly<Record<string, SqlInput>>,
    key?: ShardKey,
  ): Promise<RunResult> {
    return this.#router.routeInsert(table, row, key);
  }

  /**
   * Inserts rows grouped per shard, one transaction per shard, all or nothing across
   * shards, also across a crash: the shard with the most rows commits first, holding a
   * redo record of the other shards' rows, and opening the directory replays any part a
   * crash cut off. Before that first COMMIT a failure rolls every shard back; after it, a
   * shard that cannot commit (even on a second try) gives `BatchPendingError`, and its part
   * is applied when the directory is next opened. Returns the number of rows inserted.
   *
   * @example
   * ```ts
   * import { ShardManager } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * await using manager = new ShardManager({ numShards: 4, dbDir: dir });
   * await manager.createTable("users", { id: "INTEGER PRIMARY KEY", name: "TEXT" }, {
   *   shardKey: "id",
   * });
   * const rows = Array.from({ length: 1_000 }, (_, i) => ({ id: i + 1, name: `user ${i + 1}` }));
   * if (await manager.insertMany("users", rows) !== 1_000) throw new Error("expected 1000");
   * if (await manager.count("users") !== 1_000) throw new Error("expected 1000 rows");
   * await manager.shutdown();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  insertMany(
    table: string,
    rows: readonly Readonly<Record<string, SqlInput>>[],
    keys?: readonly ShardKey[],
  ): Promise<number> {
    return this.#router.routeInsertMany(table, rows, keys);
  }

  /** Selects rows by key, or across every shard with ORDER BY/LIMIT/OFFSET merged exactly. */
  select(table: string, options?: SelectRouteOptions): Promise<Row[]> {
    return this.#router.routeSelect(table, options);
  }

  /**
   * Updates rows; refuses to touch every row unless `{ allShards: true }`. With `key`, on
   * that key's shard; without, on every shard, all or nothing (also across a crash, as
   * {@link insertMany}). Returns the rows changed.
   */
  update(
    table: string,
    changes: Readonly<Record<string, SqlInput>>,
    options?: WriteRouteOptions,
  ): Promise<number> {
    return this.#router.routeUpdate(table, changes, options);
  }

  /**
   * Deletes rows; refuses to delete every row unless `{ allShards: true }`. With `key`, on
   * that key's shard; without, on every shard, all or nothing (also across a crash, as
   * {@link insertMany}). Returns the rows deleted.
   */
  delete(table: string, options?: WriteRouteOptions): Promise<number> {
    return this.#router.routeDelete(table, options);
  }

  async #one(
    table: string,
    expression: string,
    where: Where | undefined,
    options: KeyOption | undefined,
  ): Promise<SqlValue> {
    const route: RouteOptions = { where };
    if (options !== undefined) {
      if (options === null || typeof options !== "object") {
        throw new InvalidQueryError("options", "expected an object such as { key }");
      }
      if (Object.hasOwn(options, "key")) (route as { key?: unknown }).key = options.key;
    }
    const result = await this.#router.routeAggregate(table, expression, route);
    return result[expression] ?? null;
  }

  /**
   * COUNT(*) over every shard, or over the rows of `options.key` on its shard.
   *
   * @example
   * ```ts
   * import { ShardManager } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * await using manager = new ShardManager({ numShards: 2, dbDir: dir });
   * await manager.createTable("t", { id: "INTEGER PRIMARY KEY", team: "TEXT" }, { shardKey: "id" });
   * await manager.insertMany("t", [{ id: 1, team: "red" }, { id: 2, team: "red" }]);
   * if (await manager.count("t", { team: "red" }) !== 2) throw new Error("two reds");
   * if (await manager.count("t", undefined, { key: "2" }) !== 1) throw new Error("one with id 2");
   * await manager.shutdown();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  async count(table: string, where?: Where, options?: KeyOption): Promise<number> {
    return Number(await this.#one(table, "COUNT(*)", where, options));
  }

  /** SUM(column) over every shard, or `options.key`'s rows (NULL when no row has a value). */
  async sum(table: string, column: string, where?: Where, options?: KeyOption): Promise<SqlValue> {
    return await this.#one(table, `SUM(${validateIdentifier(column, "column")})`, where, options);
  }

  /** AVG(column) over every shard (or `options.key`'s rows): total SUM / total COUNT. */
  async avg(table: string, column: string, where?: Where, options?: KeyOption): Promise<SqlValue> {
    return await this.#one(table, `AVG(${validateIdentifier(column, "column")})`, where, options);
  }

  /** MIN(column) over every shard (or `options.key`'s rows). */
  async min(table: string, column: string, where?: Where, options?: KeyOption): Promise<SqlValue> {
    return await this.#one(table, `MIN(${validateIdentifier(column, "column")})`, where, options);
  }

  /** MAX(column) over every shard (or `options.key`'s rows). */
  async max(table: string, column: string, where?: Where, options?: KeyOption): Promise<SqlValue> {
    return await this.#one(table, `MAX(${validateIdentifier(column, "column")})`, where, options);
  }

  /**
   * COUNT/SUM/AVG/MIN/MAX expressions over every shard (or `key`'s), keyed by the
   * expression as given: `aggregate("users", "COUNT(*)")` → `{ "COUNT(*)": 6 }`.
   */
  aggregate(
    table: string,
    expressions: string | readonly string[],
    options?: RouteOptions,
  ): Promise<Record<string, SqlValue>> {
    return this.#router.routeAggregate(table, expressions, options);
  }

  /**
   * COUNT/SUM/AVG/MIN/MAX per group, over every shard (or `key`'s): one row per group of
   * equal `groupBy` values, ordered by them (NULL first), with each expression keyed as
   * given. Each group combines exactly across shards, as `aggregate` does; groups merge
   * when their values are equal under SQLite's BINARY collation.
   *
   * @example
   * ```ts
   * import { ShardManager } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * await using manager = new ShardManager({ numShards: 4, dbDir: dir });
   * await manager.createTable("users", { id: "INTEGER PRIMARY KEY", city: "TEXT", age: "INTEGER" }, {
   *   shardKey: "id",
   * });
   * await manager.insertMany("users", Array.from({ length: 30 }, (_, i) => ({
   *   id: i + 1,
   *   city: i % 3 === 0 ? "Oslo" : "Lima",
   *   age: 20 + i,
   * })));
   * const rows = await manager.aggregateBy("users", "city", ["COUNT(*)", "AVG(age)"]);
   * // [{ city: "Lima", "COUNT(*)": 20, "AVG(age)": 35 }, { city: "Oslo", "COUNT(*)": 10, "AVG(age)": 33.5 }]
   * if (rows[0]?.["AVG(age)"] !== 35 || rows[1]?.["COUNT(*)"] !== 10) throw new Error("unexpected");
   * await manager.shutdown();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  aggregateBy(
    table: string,
    groupBy: string | readonly string[],
    expressions: string | readonly string[],
    options?: RouteOptions,
  ): Promise<Row[]> {
    return this.#router.routeAggregateBy(table, groupBy, expressions, options);
  }

  /** Raw SQL on the shard of `key`; returns its rows. */
  query(key: ShardKey, sql: string, params?: Params): Promise<Row[]> {
    return this.#router.routeQuery(key, sql, params);
  }

  /**
   * Raw SQL on every shard, rows merged (by `orderBy` when given). GROUP BY, DISTINCT
   * and aggregates are per shard here; use {@link aggregate} or {@link aggregateBy} for
   * combined ones.
   */
  queryAll(sql: string, params?: Params, options?: QueryAllOptions): Promise<Row[]> {
    return this.#router.routeQueryAll(sql, params, options);
  }

  /** Runs `fn` in a transaction on the shard of `key`: ACID on that shard. */
  transaction<T>(key: ShardKey, fn: (conn: PooledConnection) => T | Promise<T>): Promise<T> {
    return this.#router.routeTransaction(key, fn);
  }

  /** The layout: directory, shard count, strategy, shard files and tables. */
  getShardInfo(): ShardLayout {
    return {
      dbDir: this.dbDir,
      numShards: this.numShards,
      strategy: this.strategy.describe(),
      shards: this.strategy.getAllShardIds().map((shardId) => ({
        shardId,
        path: this.shardPath(shardId),
      })),
      tables: structuredClone(this.#map?.tables ?? {}),
    };
  }

  /** Per-shard figures: file size, rows per table, pool stats. */
  async getShardStats(): Promise<ShardStats[]> {
    await this.ready();
    const tables = Object.keys(this.#map?.tables ?? {});
    const stats: ShardStats[] = [];
    // At most maxConcurrentShards at once: each one opens its shard.
    const ids = this.strategy.getAllShardIds();
    for (let at = 0; at < ids.length; at += this.maxConcurrentShards) {
      stats.push(...await this.#statsOf(ids.slice(at, at + this.maxConcurrentShards), tables));
    }
    return stats;
  }

  #statsOf(ids: readonly number[], tables: readonly string[]): Promise<ShardStats[]> {
    return Promise.all(
      ids.map(async (shardId) => {
        const path = this.shardPath(shardId);
        let sizeBytes = 0;
        let exists = false;
        try {
          sizeBytes = (await Deno.stat(path)).size;
          exists = true;
          // Committed pages may still sit in the WAL until the next checkpoint.
          sizeBytes += (await Deno.stat(`${path}-wal`)).size;
        } catch {
          // No file, or no WAL.
        }
        const rows: Record<string, number> = {};
        let pool = this.#pools.get(shardId);
        if (exists) {
          pool = this.getPool(shardId);
          await pool.withConnection(async (c) => {
            for (const table of tables) {
              // Names come from the map file: quote (and so validate) them again.
              const row = await c.get(
                `SELECT count(*) AS n FROM ${quoteIdentifier(table, "table")}`,
              );
              rows[table] = Number(row?.["n"] ?? 0);
            }
          }).catch((error) => {
            throw new ShardOperationError(shardId, path, error);
          });
        }
        return { shardId, path, exists, sizeBytes, rows, pool: pool?.getPoolStats() ?? null };
      }),
    );
  }

  /**
   * True when the persisted map matches this manager's layout and every existing shard
   * file passes `PRAGMA quick_check`.
   */
  async validateShardFiles(): Promise<boolean> {
    await this.ready();
    try {
      const map = readShardMap(this.dbDir);
      if (map === undefined) return false;
      checkLayout(this.dbDir, map, this.strategy);
    } catch {
      return false;
    }
    const results = await Promise.all(
      this.strategy.getAllShardIds().map(async (shardId) => {
        try {
          await Deno.stat(this.shardPath(shardId));
        } catch {
          return true;
        }
        try {
          return await this.getPool(shardId).withConnection(async (c) => {
            const check = await c.get("PRAGMA quick_check");
            if (check?.["quick_check"] !== "ok") return false;
            // An emptied file checks "ok": it must still hold every table of the map.
            for (const table of Object.keys(this.#map?.tables ?? {})) {
              const found = await c.get(
                "SELECT 1 AS x FROM sqlite_schema WHERE type = 'table' AND name = ? COLLATE NOCASE",
                [table],
              );
              if (found === undefined) return false;
            }
            return true;
          });
        } catch {
          return false;
        }
      }),
    );
    return results.every(Boolean);
  }

  /**
   * Checks that every row of every sharded table is on the shard its key maps to, by the
   * value SQLite stores in the shard-key column. Rows can be elsewhere when they were
   * written by an older version (which routed `"7"` and `7` apart even where SQLite stores
   * both as the integer 7) or by hand. Reads only; see {@link repairPlacement}.
   *
   * @example
   * ```ts
   * import { ShardManager } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * await using manager = new ShardManager({ numShards: 4, dbDir: dir });
   * await manager.createTable("users", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
   * await manager.insertMany("users", [{ id: 1 }, { id: "2" }, { id: 3n }]);
   * const report = await manager.verifyPlacement();
   * if (report.scanned !== 3 || report.misplaced !== 0) throw new Error("misplaced rows");
   * await manager.shutdown();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  verifyPlacement(options?: VerifyPlacementOptions): Promise<PlacementReport> {
    return this.#admitted(() =>
      verifyPlacement({
        map: this.#map as ShardMap,
        strategy: this.strategy,
        exists: (id) => existsSync(this.shardPath(id)),
        pool: (id) => this.getPool(id),
      }, options)
    );
  }

  /**
   * Moves every misplaced row (see {@link verifyPlacement}) to the shard its key maps to,
   * crash-safe and resumable like a reshard (it is one, to the same layout): after a
   * crash, operations are refused until `repairPlacement()` is called again. A misplaced
   * row whose key (or another unique value) already exists on its shard is left where it
   * is and reported in `conflicts`, never dropped; rows whose key cannot be routed stay
   * too (`unroutable`). Operations wait while it runs.
   */
  async repairPlacement(options: ReshardOptions = {}): Promise<RepairReport> {
    if (this.#closed !== null) {
      throw new PoolClosedError(this.dbDir, "the shard manager was shut down");
    }
    await this.#startOpening();
    if (this.#gate !== null) throw new ReshardError(this.dbDir, "a reshard is already running");
    const pending = this.#pending;
    if (pending !== null && pending.mode !== "repair") {
      throw new ReshardError(
        this.dbDir,
        `an unfinished reshard to ${JSON.stringify(pending.to)} must be resumed (or rolled ` +
          `back with abortReshard()) before placement can be repaired`,
      );
    }
    const plan = pending ?? newPlan(this.#map as ShardMap, this.strategy, this.strategy, "repair");
    const report = await this.#runReshard(plan, this.strategy, options, pending !== null);
    return {
      scanned: report.scanned,
      moved: report.moved,
      conflicts: plan.conflicts ?? [],
      unroutable: plan.unroutable ?? [],
      resumed: report.resumed,
      durationMs: report.durationMs,
    };
  }

  /** Runs `fn` as an operation: it waits for a running reshard, and a reshard waits for it. */
  async #admitted<T>(fn: () => Promise<T>): Promise<T> {
    while (!this.isReady) await this.ready();
    this.enter();
    try {
      return await fn();
    } finally {
      this.leave();
    }
  }

  /**
   * Writes a consistent snapshot of every shard (`VACUUM INTO`) plus the shard map and a
   * manifest with checksums into `destDir`, which must be empty or missing. With
   * `pointInTime`, writes on every shard pause while the shards are copied, so the backup
   * is one global point in time; the report says for how long (`pausedMs`).
   */
  backup(destDir: string, options?: BackupOptions): Promise<BackupReport> {
    return this.#admitted(() => backupShards(this, destDir, options));
  }

  /**
   * Restores a backup into `dbDir`, verifying every file first (manifest, checksums,
   * `integrity_check`, map). Refuses a non-empty `dbDir` unless `overwrite: true`, and a
   * directory another process (or manager) owns.
   */
  static restore(
    backupDir: string,
    dbDir: string,
    options?: RestoreOptions,
  ): Promise<RestoreReport> {
    return restoreShards(backupDir, dbDir, options);
  }

  /**
   * Moves every row of every sharded table to the shard `target` assigns it (a number
   * means `new HashStrategy(n)`), then commits the new shard map. With the hash
   * strategy, growing N → N+1 moves only the rows the jump hash moves (about 1/(N+1)),
   * and shrinking moves only the rows of the removed shards, whose files are deleted
   * once the new map is committed.
   *
   * Crash-safe and resumable: the plan and its progress are durable in
   * `dbDir/reshard.json`; after a crash, a manager refuses ordinary operations until
   * `reshard(target)` resumes it (or `abortReshard()` rolls it back). While it runs,
   * this manager's other operations wait and then see the new layout.
   *
   * @example
   * ```ts
   * import { ShardManager } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * await using manager = new ShardManager({ numShards: 2, dbDir: dir });
   * await manager.createTable("t", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
   * await manager.insertMany("t", Array.from({ length: 100 }, (_, i) => ({ id: i })));
   * const report = await manager.reshard(3);
   * if (report.scanned !== 100 || manager.numShards !== 3) throw new Error("resharded");
   * if (await manager.count("t") !== 100) throw new Error("every row once");
   * await manager.shutdown();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  async reshard(
    target: ShardingStrategy | number,
    options: ReshardOptions = {},
  ): Promise<ReshardReport> {
    const to = typeof target === "number" ? new HashStrategy(target) : target;
    if (this.#closed !== null) {
      throw new PoolClosedError(this.dbDir, "the shard manager was shut down");
    }
    await this.#startOpening();
    if (this.#gate !== null) throw new ReshardError(this.dbDir, "a reshard is already running");
    const pending = this.#pending;
    if (pending !== null && !sameLayout(pending.to, to.describe())) {
      throw new ReshardError(
        this.dbDir,
        `an unfinished reshard to ${JSON.stringify(pending.to)} must be resumed (or rolled ` +
          `back with abortReshard()) before another one starts`,
      );
    }
    if (
      pending === null && sameLayout(this.strategy.describe(), to.describe()) &&
      this.keyForm === CURRENT_KEY_FORM
    ) {
      const empty: Record<string, { scanned: number; moved: number }> = {};
      for (const table of Object.keys(this.#map?.tables ?? {})) {
        empty[table] = { scanned: 0, moved: 0 };
      }
      return {
        from: to.describe(),
        to: to.describe(),
        tables: empty,
        scanned: 0,
        moved: 0,
        resumed: false,
        removedFiles: [],
        durationMs: 0,
      };
    }
    return await this.#runReshard(
      pending ?? newPlan(this.#map as ShardMap, this.strategy, to),
      to,
      options,
      pending !== null,
    );
  }

  /**
   * Rolls back an unfinished reshard: every row goes back to the shard the old layout
   * assigns it, the files the reshard created are deleted, and the old map stays.
   */
  async abortReshard(options: ReshardOptions = {}): Promise<ReshardReport> {
    await this.#startOpening();
    const pending = this.#pending;
    if (pending === null) throw new ReshardError(this.dbDir, "there is no unfinished reshard");
    if (pending.state === "committed") {
      return await this.reshard(strategyFromDescriptor(pending.to), options);
    }
    const back = strategyFromDescriptor(pending.from);
    const plan = newPlan(this.#map as ShardMap, this.strategy, back, pending.mode ?? "reshard");
    plan.toKeyForm = pending.fromKeyForm ?? 1;
    plan.span = Math.max(plan.span, pending.span);
    plan.scan = plan.span;
    return await this.#runReshard(plan, back, options, false);
  }

  async #runReshard(
    plan: ReshardPlan,
    to: ShardingStrategy,
    options: ReshardOptions,
    resumed: boolean,
  ): Promise<ReshardReport> {
    let open!: () => void;
    this.#gate = new Promise<void>((resolve) => open = resolve);
    this.#pending = plan;
    try {
      // Let operations already admitted finish; new ones wait at the gate.
      if (this.#inFlight > 0) {
        await new Promise<void>((resolve) => this.#drained = resolve);
        this.#drained = null;
      }
      // Another manager of this process on the directory would keep routing by the old
      // layout, and its batches in flight are not for recovery to touch.
      if (directoryUsers(this.dbDir) > 1) {
        throw new ReshardError(
          this.dbDir,
          `another ShardManager in this process has the directory open; shut it down ` +
            `first (it would keep routing by the old layout)`,
        );
      }
      // No batch bookkeeping may outlive the layout it names: with nothing in flight,
      // finish or clear every batch (of any router over this manager) first.
      await this.#router.flushBatches();
      await this.#recoverBatches();
      const waiting = this.#batchRecovery?.pending ?? [];
      if (waiting.length > 0) {
        const first = waiting[0] as BatchRecovery["pending"][number];
        throw new ReshardError(
          this.dbDir,
          `${waiting.length} insertMany batch part(s) cannot be completed (batch ` +
            `${first.batch}, shard ${first.shard}: ${first.error}); a reshard would route ` +
            `them by the wrong layout. Repair shard ${first.shard} (see ` +
            `manager.batchRecovery), then reshard again.`,
        );
      }
      const fromCount = this.strategy.numShards;
      const report = await runReshard(
        {
          dbDir: this.dbDir,
          map: this.#map as ShardMap,
          pool: (id) => this.getPool(id),
          writePlan: (p) => writeJsonAtomic(`${this.dbDir}/${RESHARD_PLAN_FILE}`, p),
          deletePlan: () => Deno.removeSync(`${this.dbDir}/${RESHARD_PLAN_FILE}`),
          commitMap: (map) => {
            writeShardMap(this.dbDir, map);
            this.#map = map;
            this.#keyColumns.clear();
            this.#strategy = to;
            this.#router.setStrategy(to);
          },
          removeShard: async (id) => {
            const pool = this.#pools.get(id);
            this.#pools.delete(id);
            await pool?.closeAll();
            // A pool closed to respect maxOpenShards may still be closing.
            await Promise.allSettled([...this.#evicting]);
            const removed: string[] = [];
            for (const path of [this.shardPath(id), `${this.shardPath(id)}-wal`]) {
              try {
                await Deno.remove(path);
                removed.push(path);
              } catch (error) {
                if (!(error instanceof Deno.errors.NotFound)) throw error;
              }
            }
            return removed;
          },
        },
        plan,
        to,
        fromCount,
        options,
        resumed,
      );
      this.#pending = null;
      return report;
    } finally {
      // A failed or aborted run leaves its plan pending (resumable); ops stay refused.
      if (this.#pending !== null && !existsSync(`${this.dbDir}/${RESHARD_PLAN_FILE}`)) {
        this.#pending = null;
      }
      this.#gate = null;
      open();
    }
  }

  /**
   * Drains and closes every shard pool and releases the directory. Afterwards the shard
   * files can be moved or deleted, and further calls get PoolClosedError. Idempotent.
   */
  shutdown(options?: { graceMs?: number }): Promise<void> {
    this.#closed ??= (async () => {
      managers.delete(this);
      // Best effort: whatever is left is cleaned when the directory is next opened.
      await this.#router.flushBatches((id) => this.#pools.get(id)).catch(() => {});
      const pools = [...this.#pools.values()];
      const results = await Promise.allSettled(pools.map((p) => p.closeAll(options)));
      await Promise.allSettled([...this.#evicting]);
      this.#releaseDirectory?.();
      this.#releaseDirectory = null;
      const failed = results.find((r) => r.status === "rejected");
      if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
    })();
    return this.#closed;
  }

  /** Shuts the manager down at the end of an `await using` scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}

function existsSync(path: string): boolean {
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
  const plan = JSON.parse(text) as ReshardPlan;
  if (plan?.format !== 1) {
    throw new ReshardError(dbDir, `${RESHARD_PLAN_FILE} has an unknown format`);
  }
  return plan;
}
