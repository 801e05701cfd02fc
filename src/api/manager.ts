/**
 * `ShardManager`: one async API over many SQLite shard files. A façade: each of its jobs
 * has a file of its own — routing `routing/router.ts`, option checks `options.ts`, when
 * operations may run `admission.ts`, the open pools `pool_cache.ts`, opening the directory
 * `directory.ts`, the shard map in memory `loaded_map.ts`, DDL `schema_ops.ts`, reports
 * `stats.ts`, resharding `reshard_gate.ts`.
 *
 * @module
 */

import { InvalidQueryError, ReshardError } from "../errors.ts";
import type { PooledConnection } from "../pool/connection.ts";
import type { Driver } from "../driver/driver.ts";
import { type ConnectionPool, defaultPoolDriver, type PoolOptions } from "../pool/pool.ts";
import { admitted } from "../routing/admission.ts";
import type { BatchRecovery } from "../routing/batches.ts";
import type { ShardKey } from "../routing/keys.ts";
import type { KeyColumn, KeyForm } from "../routing/key_column.ts";
import {
  type IterateRouteOptions,
  type QueryAllOptions,
  type ReadRouteOptions,
  Router,
  type SelectRouteOptions,
  type ShardSource,
  type WriteRouteOptions,
} from "../routing/router.ts";
import { HashStrategy, type ShardingStrategy } from "../routing/strategies.ts";
import type {
  InsertManyOptions,
  InsertRouteOptions,
  NoReturning,
  ReturningOption,
  UpsertOptions,
} from "../routing/write_options.ts";
import type { CreateTableOptions } from "../sql/schema.ts";
import { validateIdentifier } from "../sql/identifiers.ts";
import type { Where } from "../sql/where.ts";
import type { AbortOption } from "../routing/abort.ts";
import type { ReadFromOption } from "../routing/read_from.ts";
import type { Params, Row, RunResult, SqlInput, SqlValue } from "../types.ts";
import { Admission } from "./admission.ts";
import {
  type BackupOptions,
  type BackupReport,
  backupShards,
  type RestoreOptions,
  type RestoreReport,
  restoreShards,
} from "./backup.ts";
import { fileExists, ShardDirectory } from "./directory.ts";
import { shardFilePath } from "./layout.ts";
import { LoadedMap } from "./loaded_map.ts";
import { formatMetrics } from "./metrics.ts";
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
import { checkManagerOptions, type ShardManagerOptions } from "./options.ts";
import type { ManagerParts } from "./parts.ts";
import {
  type PlacementReport,
  type RepairReport,
  verifyPlacement,
  type VerifyPlacementOptions,
} from "./placement.ts";
import { PoolCache } from "./pool_cache.ts";
import { ManagerSource } from "./manager_source.ts";
import { RemoteShards } from "./remote.ts";
import { type RemoteRestoreTarget, restoreOntoServers } from "./remote_restore.ts";
import { epochOf } from "./remote_map.ts";
import { parseShardFileName } from "./layout.ts";
import {
  acquireWorkerHost,
  registerWorkerHost,
  releaseWorkerHost,
  type WorkerHost,
  type WorkerHostStats,
} from "../workers/host.ts";
import { driverKindOf } from "../workers/options.ts";
import type { ReshardOptions, ReshardPlan, ReshardReport } from "./reshard.ts";
import * as resharding from "./reshard_gate.ts";
import * as ddl from "./schema_ops.ts";
import type { ShardMap } from "./shard_map.ts";
import * as stats from "./stats.ts";
import type { ShardLayout, ShardStats } from "./stats.ts";

export type { ShardManagerOptions } from "./options.ts";
export type { ShardInfo, ShardLayout, ShardStats } from "./stats.ts";

/**
 * Restricts `count`, `sum`, `avg`, `min` and `max` to the rows of one shard key (on its
 * shard). A `key` that is present but `undefined` or `null` is refused.
 */
export interface KeyOption extends AbortOption, ReadFromOption {
  /** The shard key. */
  key?: ShardKey;
}

const managers = new Set<ShardManager>();

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
  /** How the directory is held: by this process alone, or shared with others. */
  readonly access: "exclusive" | "shared";
  readonly #poolOptions: PoolOptions;
  readonly #pools: PoolCache;
  readonly #tables: LoadedMap;
  readonly #admission: Admission;
  readonly #directory: ShardDirectory;
  readonly #router: Router;
  // What the router sees of the manager: a private object, so that its bookkeeping
  // (enter, leave, the driver's text rule, ...) need not be methods of the manager.
  readonly #source: ManagerSource;
  // What the files implementing the operations below get instead of the manager.
  readonly #parts: ManagerParts;
  // Shards on servers (`shards`), or null for shard files in dbDir.
  readonly #remote: RemoteShards | null;
  #closed: Promise<void> | null = null;
  // The shard workers (`workers` option), or null in-thread.
  readonly #workers: WorkerHost | null;

  /**
   * Creates a manager. Nothing is touched on disk until the first operation, which
   * creates `dbDir`, takes ownership of it and checks or writes the shard map.
   *
   * @throws {TypeError | RangeError} for invalid options (the message names the option).
   */
  constructor(options: ShardManagerOptions) {
    const settings = checkManagerOptions(options);
    this.dbDir = settings.dbDir;
    this.#strategy = settings.strategy;
    this.maxConcurrentShards = settings.maxConcurrentShards;
    this.access = settings.access;
    this.#poolOptions = settings.pool;
    const remote = settings.remote === null
      ? null
      : new RemoteShards(settings.remote, settings.pool);
    this.#remote = remote;
    this.#workers = settings.workers === 0 ? null : acquireWorkerHost({
      workers: settings.workers,
      driver: this.driver,
      kind: driverKindOf(this.driver)!,
      shardIdOf: (path) => parseShardFileName(path.slice(path.lastIndexOf("/") + 1)),
    });
    if (this.#workers !== null) registerWorkerHost(this, this.#workers);
    const poolOptions = this.#workers === null
      ? this.#poolOptions
      : { ...this.#poolOptions, driver: this.#workers.driver };
    this.#pools = new PoolCache(
      remote === null ? this.dbDir : (shardId) => remote.place(shardId),
      poolOptions,
      settings.maxOpenShards,
    );
    this.#tables = new LoadedMap(this.dbDir);
    this.#admission = new Admission(this.dbDir, () => this.#directory.open());
    this.#source = this.#makeSource();
    this.#router = new Router(this.#source, settings.strategy);
    this.#parts = this.#makeParts();
    this.#directory = new ShardDirectory(this.#parts);
    managers.add(this);
  }

  #makeSource(): ManagerSource {
    return new ManagerSource(
      this.#admission,
      this.#pools,
      this.#tables,
      (shardId) => this.getPool(shardId),
      () => this.#directory,
      this.maxConcurrentShards,
      this.driver,
      this.#remote === null ? undefined : {
        remote: this.#remote,
        epoch: () => epochOf(this.#tables.current as ShardMap),
        reload: () => this.#directory.reloadRemoteMap(),
      },
      this.#workers !== null,
    );
  }

  #makeParts(): ManagerParts {
    // Getters: the strategy changes with a reshard, and the directory is built from these.
    const strategy = () => this.#strategy;
    const directory = () => this.#directory;
    return {
      dbDir: this.dbDir,
      get strategy() {
        return strategy();
      },
      useStrategy: (next) => {
        this.#strategy = next;
        this.#router.setStrategy(next);
      },
      maxConcurrentShards: this.maxConcurrentShards,
      access: this.access,
      admission: this.#admission,
      tables: this.#tables,
      pools: this.#pools,
      get directory() {
        return directory();
      },
      router: this.#router,
      getPool: (shardId) => this.getPool(shardId),
      ready: () => this.ready(),
      remote: this.#remote,
    };
  }

  /**
   * @internal Under shared access, the id this user's cross-shard batches carry (so a
   * recovery in another process leaves them alone); undefined when exclusive. Read by a
   * `Router` built over the manager (`new Router(manager, strategy)`); the manager's own
   * router reads it from a private source.
   */
  get batchOwner(): string | undefined {
    return this.#source.batchOwner;
  }

  /**
   * The driver of every shard's pool (`pool.driver`, `wasmDriver` by default; the libsql
   * driver for shards on servers).
   */
  get driver(): Driver {
    return this.#remote?.place(0).driver ?? this.#poolOptions.driver ?? defaultPoolDriver();
  }

  /**
   * @internal The driver's rule for text (`Driver.checkText`), which a router applies
   * before any shard is written. Read by a `Router` built over the manager; the manager's
   * own router reads it from a private source.
   */
  get checkText(): ((text: string) => string | undefined) | undefined {
    return this.#source.checkText;
  }

  /** How many workers run the shards' SQLite (`workers` option; 0: in this thread). */
  get workers(): number {
    return this.#workers?.size ?? 0;
  }

  /**
   * The shard workers' counts — workers started (restarts included) and died, messages
   * and calls sent — or undefined in-thread. Managers of one process with the same driver
   * and `workers` share their workers (two managers on one directory share its files'
   * handles), so these count for all of them.
   *
   * @example
   * ```ts
   * import { ShardManager } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * const manager = new ShardManager({ numShards: 2, dbDir: dir, workers: 2 });
   * await manager.createTable("t", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
   * const stats = manager.workerStats;
   * if (stats?.started !== 2 || stats.died !== 0) throw new Error("two workers, none died");
   * await manager.shutdown();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  get workerStats(): WorkerHostStats | undefined {
    return this.#workers?.stats;
  }

  /** The strategy that maps keys to shards (it changes after a reshard). */
  get strategy(): ShardingStrategy {
    return this.#strategy;
  }

  /** Number of shards. */
  get numShards(): number {
    return this.strategy.numShards;
  }

  /**
   * The router this manager delegates to.
   *
   * @deprecated Call the manager's own methods instead (`select`, `insert`, `update`,
   * `delete`, `aggregate`, `query`, `transaction`, ...): each forwards to the router's
   * matching `route*` method, and `getShardId` is on the manager too. To route with
   * another strategy, build a router yourself: `new Router(manager, strategy)`. Kept
   * working.
   */
  get router(): Router {
    return this.#router;
  }

  /** True once the directory is owned and the map loaded, while no reshard runs or waits. */
  get isReady(): boolean {
    return this.#admission.isReady;
  }

  /**
   * Resolves once `dbDir` is owned and the shard map checked, and no reshard is running.
   * Rejects after shutdown, and while an unfinished reshard waits to be resumed.
   */
  ready(): Promise<void> {
    return this.#admission.ready();
  }

  /** The unfinished reshard plan of the directory, if any (after the first operation). */
  get pendingReshard(): ReshardPlan | null {
    const pending = this.#admission.pending;
    return pending === null ? null : structuredClone(pending);
  }

  /**
   * An operation enters: while any is in, a reshard waits.
   *
   * @deprecated Bookkeeping of the manager's own operations, which enter and leave by
   * themselves; nothing to call. It stays so that the manager is still a `ShardSource`
   * for `new Router(manager, strategy)`, whose operations call it. Kept working.
   */
  enter(): void {
    this.#source.enter();
  }

  /**
   * An operation leaves (see {@link enter}).
   *
   * @deprecated Bookkeeping of the manager's own operations, which enter and leave by
   * themselves; nothing to call. It stays so that the manager is still a `ShardSource`
   * for `new Router(manager, strategy)`, whose operations call it. Kept working.
   */
  leave(): void {
    this.#source.leave();
  }

  /**
   * The last batch recovery of this manager (when it opened the directory, or before its
   * last reshard): cross-shard `insertMany` batches cut short after their commit point,
   * the shard parts replayed, and those still pending. Null before open, and for a
   * manager that shared a directory another manager of the process had opened first.
   */
  get batchRecovery(): BatchRecovery | null {
    const recovery = this.#directory.batchRecovery;
    return recovery === null ? null : structuredClone(recovery);
  }

  /** The path of shard `shardId`'s file (its server's URL for shards on servers). */
  shardPath(shardId: number): string {
    return this.#remote?.place(shardId).path ?? shardFilePath(this.dbDir, shardId);
  }

  /** The pool of shard `shardId` (created on first use). */
  getPool(shardId: number): ConnectionPool {
    if (this.#admission.isClosed) throw this.#admission.closedError();
    const limit = Math.max(this.numShards, this.#admission.pending?.span ?? 0);
    if (!Number.isSafeInteger(shardId) || shardId < 0 || shardId >= limit) {
      throw new RangeError(`shardId must be an integer from 0 to ${limit - 1}`);
    }
    return this.#pools.get(shardId);
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
    return await this.#pools.closeIdle();
  }

  /** Shard files open now, and how many were closed to respect `maxOpenShards`. */
  get openShards(): { open: number; max: number; evictions: number } {
    return this.#pools.stats;
  }

  /**
   * The manager's figures in the Prometheus text exposition format, one series per shard
   * used so far (`shard="<id>"`): leases, lease waits and their time, lease timeouts,
   * overload refusals, statements, statement errors, slow statements, handle replacements,
   * active leases and waiters, the statement-time histogram (when statements are timed:
   * `onQuery`, `slowQueryMs` or `timeStatements`), and open shards. Counters never go
   * down while the manager lives, also when `maxOpenShards` closes and reopens a shard.
   * Serve it as `text/plain; version=0.0.4`.
   *
   * @example
   * ```ts
   * import { ShardManager } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * await using manager = new ShardManager({ numShards: 2, dbDir: dir, timeStatements: true });
   * await manager.createTable("t", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
   * await manager.insert("t", { id: 1 });
   * const text = manager.metrics();
   * const shard = manager.getShardId(1, "t");
   * if (!text.includes("# TYPE shardlite_statements_total counter")) throw new Error("declared");
   * if (!text.includes(`shardlite_statement_duration_seconds_count{shard="${shard}"}`)) {
   *   throw new Error("timed");
   * }
   * await manager.shutdown();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  metrics(): string {
    const open = this.#pools.stats;
    return formatMetrics(this.#pools.metrics(), {
      openShards: open.open,
      maxOpenShards: open.max,
      evictions: open.evictions,
    });
  }

  /** The shard-key column recorded for `table`, if any. */
  getShardKeyColumn(table: string): string | undefined {
    return this.#tables.shardKeyColumn(table);
  }

  /** The shard `key` maps to. */
  getShardId(key: ShardKey, table?: string): number {
    return this.#router.getShardId(key, table);
  }

  /**
   * @internal The shard-key column of `table` with its type (a router's view), read by a
   * `Router` built over the manager.
   */
  getKeyColumn(table: string): KeyColumn | undefined {
    return this.#source.getKeyColumn(table);
  }

  /** @internal Whether the map records `table`, read by a `Router` built over the manager. */
  hasTable(table: string): boolean {
    return this.#source.hasTable(table);
  }

  /**
   * How this directory hashes keys (see `KeyForm`): 2 for directories created by this
   * version, 1 for older ones until a reshard moves them to 2.
   */
  get keyForm(): KeyForm {
    return this.#tables.keyForm;
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
    await ddl.createTable(this.#parts, table, columns, options);
  }

  /**
   * Runs DDL (one or more statements) on every shard, in one transaction per shard: a
   * statement that fails leaves its shard unchanged. Shards are independent, so others
   * may have committed; for changes that must reach every shard, use {@link migrate}.
   * The SQL must not hold BEGIN, COMMIT, END or ROLLBACK (InvalidQueryError).
   */
  async applySchema(sql: string): Promise<void> {
    await ddl.applySchema(this.#parts, sql);
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
      return await admitted(this, () => runMigrations(this, prepared, options));
    } catch (error) {
      const pending = this.#admission.pending;
      if (error instanceof ReshardError && pending !== null) {
        throw pendingReshardRefusal(this.dbDir, pending, error);
      }
      throw error;
    }
  }

  /** Every shard's applied migrations (`_shardlite_migrations`), in shard order. */
  migrationStatus(): Promise<ShardMigrationStatus[]> {
    return admitted(this, () => migrationStatus(this));
  }

  /** Drops `table` on every shard and forgets it in the shard map. */
  async dropTable(table: string, options: { ifExists?: boolean } = {}): Promise<void> {
    await ddl.dropTable(this.#parts, table, options);
  }

  /**
   * Inserts a row on its key's shard; the key may be omitted when the table has a shard
   * key. The third argument is the key, or options `{ key, returning }`: with `returning`
   * the call resolves to the inserted row's columns (SQL `RETURNING`, so defaults and a
   * rowid SQLite assigned are in it) instead of the statement's `RunResult`.
   *
   * @example
   * ```ts
   * import { ShardManager } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * await using manager = new ShardManager({ numShards: 4, dbDir: dir });
   * await manager.createTable("users", {
   *   id: "INTEGER PRIMARY KEY",
   *   name: "TEXT",
   *   plan: "TEXT DEFAULT 'free'",
   * }, { shardKey: "id" });
   * const [row] = await manager.insert("users", { id: 1, name: "Ada" }, {
   *   returning: ["id", "plan"],
   * });
   * if (row?.plan !== "free") throw new Error("expected the default plan");
   * await manager.shutdown();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  insert(
    table: string,
    row: Readonly<Record<string, SqlInput>>,
    options: InsertRouteOptions & ReturningOption,
  ): Promise<Row[]>;
  /** Inserts a row on its key's shard and resolves to the statement's result. */
  insert(
    table: string,
    row: Readonly<Record<string, SqlInput>>,
    keyOrOptions?: ShardKey | (InsertRouteOptions & NoReturning),
  ): Promise<RunResult>;
  /** Inserts a row: its columns with `returning`, else the statement's result. */
  insert(
    table: string,
    row: Readonly<Record<string, SqlInput>>,
    keyOrOptions?: ShardKey | InsertRouteOptions,
  ): Promise<RunResult | Row[]>;
  insert(
    table: string,
    row: Readonly<Record<string, SqlInput>>,
    keyOrOptions?: ShardKey | InsertRouteOptions,
  ): Promise<RunResult | Row[]> {
    if (
      typeof keyOrOptions === "object" && keyOrOptions !== null &&
      !(keyOrOptions instanceof Uint8Array)
    ) {
      return this.#router.routeInsert(table, row, undefined, keyOrOptions);
    }
    return this.#router.routeInsert(table, row, keyOrOptions);
  }

  /**
   * Inserts `row` on its key's shard or, when it collides there with an existing row on
   * the conflict target, updates that row instead (SQL `INSERT ... ON CONFLICT (target)
   * DO UPDATE SET c = excluded.c`). Routed by the row's shard key as {@link insert}.
   *
   * - `conflict`: the target, the columns of a PRIMARY KEY or UNIQUE constraint; default
   *   the table's primary key (a rowid table's `INTEGER PRIMARY KEY` counts). Any other
   *   set is refused with `InvalidQueryError` (`option: "conflict"`) and nothing is
   *   written. A target without the shard key is unique per shard only.
   * - `update`: the columns that take the row's values on a conflict; default every
   *   column of `row` outside the target and the shard key. Empty, or nothing left by the
   *   default: the existing row stays as it is (`DO NOTHING`, an insert-or-ignore on that
   *   target). Naming the shard key is refused (`option: "update"`).
   * - `returning`: resolve to the inserted or updated row's columns instead of the
   *   `RunResult` (no row when the conflict updated nothing).
   *
   * @example
   * ```ts
   * import { ShardManager } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * await using manager = new ShardManager({ numShards: 4, dbDir: dir });
   * await manager.createTable("users", {
   *   id: "INTEGER PRIMARY KEY",
   *   name: "TEXT",
   *   visits: "INTEGER",
   * }, { shardKey: "id" });
   * await manager.upsert("users", { id: 7, name: "Ada", visits: 1 }); // inserted
   * const [ada] = await manager.upsert("users", { id: 7, name: "Ada L.", visits: 2 }, {
   *   returning: ["name", "visits"],
   * }); // updated: id 7 exists
   * if (ada?.name !== "Ada L." || ada.visits !== 2) throw new Error("expected the update");
   * // Only the listed columns change on a conflict.
   * await manager.upsert("users", { id: 7, name: "not this", visits: 3 }, { update: ["visits"] });
   * const [row] = await manager.select("users", { key: 7 });
   * if (row?.name !== "Ada L." || row.visits !== 3) throw new Error("expected visits only");
   * await manager.shutdown();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  upsert(
    table: string,
    row: Readonly<Record<string, SqlInput>>,
    options: UpsertOptions & ReturningOption,
  ): Promise<Row[]>;
  /** Inserts or updates a row and resolves to the statement's result. */
  upsert(
    table: string,
    row: Readonly<Record<string, SqlInput>>,
    options?: UpsertOptions & NoReturning,
  ): Promise<RunResult>;
  /** Inserts or updates a row: its columns with `returning`, else the statement's result. */
  upsert(
    table: string,
    row: Readonly<Record<string, SqlInput>>,
    options?: UpsertOptions,
  ): Promise<RunResult | Row[]>;
  upsert(
    table: string,
    row: Readonly<Record<string, SqlInput>>,
    options?: UpsertOptions,
  ): Promise<RunResult | Row[]> {
    return this.#router.routeUpsert(table, row, options);
  }

  /**
   * Inserts rows grouped per shard, one transaction per shard, all or nothing across
   * shards, also across a crash: the shard with the most rows commits first, holding a
   * redo record of the other shards' rows, and opening the directory replays any part a
   * crash cut off. Before that first COMMIT a failure rolls every shard back; after it, a
   * shard that cannot commit (even on a second try) gives `BatchPendingError`, and its part
   * is applied when the directory is next opened. Returns the number of rows inserted.
   *
   * The third argument is the rows' keys (for a table without a shard-key column), or
   * options (see {@link InsertManyOptions}): `onConflict: "ignore"` skips rows that
   * collide with an existing row (or an earlier row of the call) on a PRIMARY KEY or
   * UNIQUE constraint, `onConflict: "update"` updates the existing row as {@link upsert}
   * does (same `conflict` and `update` options and defaults); rows apply in order, so of
   * two rows with one key the later wins, as in one database. Still all or nothing: a row
   * failing NOT NULL or CHECK writes nothing anywhere, and a replay after a crash applies
   * the same conflict handling. With `onConflict` the call resolves to the rows inserted
   * or updated, and with `returning` to those rows' columns (merged over shards).
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
    options: InsertManyOptions & ReturningOption,
  ): Promise<Row[]>;
  /** Inserts rows all or nothing across shards and resolves to how many were written. */
  insertMany(
    table: string,
    rows: readonly Readonly<Record<string, SqlInput>>[],
    keysOrOptions?: readonly ShardKey[] | (InsertManyOptions & NoReturning),
  ): Promise<number>;
  /** Inserts rows all or nothing across shards: rows with `returning`, else a count. */
  insertMany(
    table: string,
    rows: readonly Readonly<Record<string, SqlInput>>[],
    keysOrOptions?: readonly ShardKey[] | InsertManyOptions,
  ): Promise<number | Row[]>;
  insertMany(
    table: string,
    rows: readonly Readonly<Record<string, SqlInput>>[],
    keysOrOptions?: readonly ShardKey[] | InsertManyOptions,
  ): Promise<number | Row[]> {
    if (
      typeof keysOrOptions !== "object" || keysOrOptions === null || Array.isArray(keysOrOptions)
    ) {
      return this.#router.routeInsertMany(table, rows, keysOrOptions as readonly ShardKey[]);
    }
    const { keys, ...options } = keysOrOptions as InsertManyOptions;
    return this.#router.routeInsertMany(table, rows, keys, options);
  }

  /**
   * Streams the rows {@link select} would return, in the same order, without holding them
   * all: shard after shard, or with `orderBy` an ordered merge that holds `pageSize` rows
   * per shard (default 256), giving the event loop a turn between pages. Breaking out of
   * the loop (or `return()`) ends every shard's query and returns every lease. Bad options
   * reject the first `next()`. Rows another caller commits meanwhile may or may not be seen.
   *
   * @example
   * ```ts
   * import { ShardManager } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * await using manager = new ShardManager({ numShards: 4, dbDir: dir });
   * await manager.createTable("users", { id: "INTEGER PRIMARY KEY", age: "INTEGER" }, {
   *   shardKey: "id",
   * });
   * await manager.insertMany("users", Array.from({ length: 1000 }, (_, i) => ({ id: i + 1, age: i % 90 })));
   * let previous = -1;
   * for await (const user of manager.iterate<{ id: number; age: number }>("users", {
   *   where: { age: { gte: 18 } },
   *   orderBy: ["age", "id"],
   *   pageSize: 100,
   * })) {
   *   if (user.age < previous) throw new Error("out of order");
   *   previous = user.age;
   * }
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  iterate<T extends object = Row>(
    table: string,
    options?: IterateRouteOptions,
  ): AsyncIterableIterator<T> {
    return this.#router.routeIterate(table, options) as AsyncIterableIterator<
      unknown
    > as AsyncIterableIterator<T>;
  }

  /** Selects rows by key, or across every shard with ORDER BY/LIMIT/OFFSET merged exactly. */
  select<T extends object = Row>(table: string, options?: SelectRouteOptions): Promise<T[]> {
    return this.#router.routeSelect(table, options) as Promise<unknown[]> as Promise<T[]>;
  }

  /**
   * Updates rows; refuses to touch every row unless `{ allShards: true }`. With `key`, on
   * that key's shard; without, on every shard, all or nothing (also across a crash, as
   * {@link insertMany}). Returns the rows changed, or with `returning` the changed rows'
   * columns as updated (SQL `RETURNING`): over several shards, every shard's rows merged
   * in no particular order, returned once every shard has committed.
   *
   * @example
   * ```ts
   * import { ShardManager } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * await using manager = new ShardManager({ numShards: 4, dbDir: dir });
   * await manager.createTable("users", { id: "INTEGER PRIMARY KEY", age: "INTEGER" }, {
   *   shardKey: "id",
   * });
   * await manager.insertMany("users", [{ id: 1, age: 30 }, { id: 2, age: 40 }, { id: 3, age: 17 }]);
   * const older = await manager.update("users", { age: 50 }, {
   *   where: { age: { gte: 18 } },
   *   returning: ["id", "age"],
   * });
   * const ids = older.map((r) => r.id).sort();
   * if (ids.join() !== "1,2" || older.some((r) => r.age !== 50)) throw new Error("expected 1, 2");
   * if (await manager.update("users", { age: 18 }, { key: 3 }) !== 1) throw new Error("one row");
   * await manager.shutdown();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  update(
    table: string,
    changes: Readonly<Record<string, SqlInput>>,
    options: WriteRouteOptions & ReturningOption,
  ): Promise<Row[]>;
  /** Updates rows and resolves to how many changed. */
  update(
    table: string,
    changes: Readonly<Record<string, SqlInput>>,
    options?: WriteRouteOptions & NoReturning,
  ): Promise<number>;
  /** Updates rows: the rows with `returning`, else their count. */
  update(
    table: string,
    changes: Readonly<Record<string, SqlInput>>,
    options?: WriteRouteOptions,
  ): Promise<number | Row[]>;
  update(
    table: string,
    changes: Readonly<Record<string, SqlInput>>,
    options?: WriteRouteOptions,
  ): Promise<number | Row[]> {
    return this.#router.routeUpdate(table, changes, options);
  }

  /**
   * Deletes rows; refuses to delete every row unless `{ allShards: true }`. With `key`, on
   * that key's shard; without, on every shard, all or nothing (also across a crash, as
   * {@link insertMany}). Returns the rows deleted, or with `returning` the deleted rows'
   * columns (merged over shards as {@link update} does).
   *
   * @example
   * ```ts
   * import { ShardManager } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * await using manager = new ShardManager({ numShards: 4, dbDir: dir });
   * await manager.createTable("users", { id: "INTEGER PRIMARY KEY", name: "TEXT" }, {
   *   shardKey: "id",
   * });
   * await manager.insert("users", { id: 9, name: "Bo" });
   * const [gone] = await manager.delete("users", { key: 9, returning: ["name"] });
   * if (gone?.name !== "Bo") throw new Error("expected Bo");
   * await manager.shutdown();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  delete(table: string, options: WriteRouteOptions & ReturningOption): Promise<Row[]>;
  /** Deletes rows and resolves to how many were deleted. */
  delete(table: string, options?: WriteRouteOptions & NoReturning): Promise<number>;
  /** Deletes rows: the rows with `returning`, else their count. */
  delete(table: string, options?: WriteRouteOptions): Promise<number | Row[]>;
  delete(table: string, options?: WriteRouteOptions): Promise<number | Row[]> {
    return this.#router.routeDelete(table, options);
  }

  async #one(
    table: string,
    expression: string,
    where: Where | undefined,
    options: KeyOption | undefined,
  ): Promise<SqlValue> {
    const route: ReadRouteOptions = { where };
    if (options !== undefined) {
      if (options === null || typeof options !== "object") {
        throw new InvalidQueryError("options", "expected an object such as { key }");
      }
      if (Object.hasOwn(options, "key")) (route as { key?: unknown }).key = options.key;
      if (options.signal !== undefined) route.signal = options.signal;
      if (options.readFrom !== undefined) route.readFrom = options.readFrom;
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
    options?: ReadRouteOptions,
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
  aggregateBy<T extends object = Row>(
    table: string,
    groupBy: string | readonly string[],
    expressions: string | readonly string[],
    options?: ReadRouteOptions,
  ): Promise<T[]> {
    return this.#router.routeAggregateBy(table, groupBy, expressions, options) as Promise<
      unknown[]
    > as Promise<T[]>;
  }

  /**
   * Raw SQL on the shard of `key`; returns its rows. On shards on servers, a statement
   * other than SELECT, VALUES or EXPLAIN runs in a transaction that checks the layout
   * epoch first (see `ShardManagerOptions.shards`).
   */
  query<T extends object = Row>(
    key: ShardKey,
    sql: string,
    params?: Params,
    options?: AbortOption & ReadFromOption,
  ): Promise<T[]> {
    return this.#router.routeQuery(key, sql, params, options) as Promise<unknown[]> as Promise<
      T[]
    >;
  }

  /**
   * Raw SQL on every shard, rows merged (by `orderBy` when given). GROUP BY, DISTINCT
   * and aggregates are per shard here; use {@link aggregate} or {@link aggregateBy} for
   * combined ones.
   */
  queryAll<T extends object = Row>(
    sql: string,
    params?: Params,
    options?: QueryAllOptions,
  ): Promise<T[]> {
    return this.#router.routeQueryAll(sql, params, options) as Promise<unknown[]> as Promise<T[]>;
  }

  /** Runs `fn` in a transaction on the shard of `key`: ACID on that shard. */
  transaction<T>(
    key: ShardKey,
    fn: (conn: PooledConnection) => T | Promise<T>,
    options?: AbortOption,
  ): Promise<T> {
    return this.#router.routeTransaction(key, fn, options);
  }

  /** The layout: directory, shard count, strategy, shard files and tables. */
  getShardInfo(): ShardLayout {
    return stats.shardLayout(this.#parts);
  }

  /** Per-shard figures: file size, rows per table, pool stats. */
  async getShardStats(): Promise<ShardStats[]> {
    return await stats.shardStats(this.#parts);
  }

  /**
   * True when the persisted map matches this manager's layout and every existing shard
   * file passes `PRAGMA quick_check`.
   */
  async validateShardFiles(): Promise<boolean> {
    return await stats.validateShardFiles(this.#parts);
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
    return admitted(this, () =>
      verifyPlacement({
        map: this.#tables.current as ShardMap,
        strategy: this.strategy,
        exists: (id) => this.#remote !== null || fileExists(this.shardPath(id)),
        pool: (id) => this.getPool(id),
      }, options));
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
    return await resharding.repairPlacement(this.#parts, options);
  }

  /**
   * Writes a consistent snapshot of every shard (`VACUUM INTO`) plus the shard map and a
   * manifest with checksums into `destDir`, which must be empty or missing. With
   * `pointInTime`, writes on every shard pause while the shards are copied, so the backup
   * is one global point in time; the report says for how long (`pausedMs`).
   */
  backup(destDir: string, options?: BackupOptions): Promise<BackupReport> {
    return admitted(this, () => backupShards(this, destDir, options));
  }

  /**
   * Restores a backup into `dbDir`, verifying every file first (manifest, checksums,
   * `integrity_check`, map). Refuses a non-empty `dbDir` unless `overwrite: true`, and a
   * directory another process (or manager) owns. Given `{ shards: [urls] }` instead, the
   * backup goes onto those servers (one per shard, as `ShardManagerOptions.shards`): a
   * server holding tables is refused unless `overwrite: true`, and the map written on
   * shard 0 gets a new layout epoch, so clients still routing by what was there before
   * have their writes refused.
   */
  static restore(
    backupDir: string,
    dbDir: string | RemoteRestoreTarget,
    options?: RestoreOptions,
  ): Promise<RestoreReport> {
    if (typeof dbDir !== "string") return restoreOntoServers(backupDir, dbDir, options);
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
    return await resharding.reshard(this.#parts, to, options);
  }

  /**
   * Rolls back an unfinished reshard: every row goes back to the shard the old layout
   * assigns it, the files the reshard created are deleted, and the old map stays.
   */
  async abortReshard(options: ReshardOptions = {}): Promise<ReshardReport> {
    return await resharding.abortReshard(
      this.#parts,
      options,
      (to) => this.reshard(to, options),
    );
  }

  /**
   * Drains and closes every shard pool and releases the directory. Afterwards the shard
   * files can be moved or deleted, and further calls get PoolClosedError. Idempotent.
   */
  shutdown(options?: { graceMs?: number }): Promise<void> {
    if (this.#closed === null) {
      this.#closed = this.#shutdown(options);
      this.#admission.close();
    }
    return this.#closed;
  }

  async #shutdown(options: { graceMs?: number } | undefined): Promise<void> {
    managers.delete(this);
    // Best effort: whatever is left is cleaned when the directory is next opened.
    await this.#router.flushBatches((id) => this.#pools.peek(id)).catch(() => {});
    const results = await this.#pools.closeAll(options);
    await this.#remote?.close();
    // After the pools' closes (a worker answers in order), before others may take the files.
    if (this.#workers !== null) await releaseWorkerHost(this.#workers);
    this.#directory.release();
    const failed = results.find((r) => r.status === "rejected");
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
  }

  /** Shuts the manager down at the end of an `await using` scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}
