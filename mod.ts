/**
 * Shardlite for Deno: shard an application's data over many SQLite files behind one
 * async API.
 *
 * {@link ShardManager} routes every operation by shard key over `shard_<id>.db` files,
 * answers cross-shard queries as one database would, and persists its shard map.
 * The connection layer, {@link ConnectionPool}, hands out async leases
 * ({@link PooledConnection}) over one shard file's SQLite handles — WebAssembly
 * ({@link wasmDriver}, the default) or Deno's native `node:sqlite` ({@link nativeDriver}),
 * used by one process or shared by many (`access: "shared"`) — with hard caps, FIFO
 * waiting, timeouts with clear errors, health checks, stats, leak detection, crash-safe
 * file ownership and clean shutdown.
 *
 * @example
 * ```ts
 * import { ConnectionPool } from "./mod.ts";
 * const dir = await Deno.makeTempDir();
 * await using pool = new ConnectionPool(`${dir}/shard_0.db`, { maxConnections: 10 });
 * await pool.withConnection(async (conn) => {
 *   await conn.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)");
 *   await conn.run("INSERT INTO users (name) VALUES (?)", ["John"]);
 *   await conn.execute("SELECT COUNT(*) FROM users");
 *   console.log(conn.fetchone()?.[0]); // 1
 * });
 * await pool.closeAll();
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

export {
  ConnectionPool,
  DEFAULT_CLOSE_GRACE_MS,
  type GetConnectionOptions,
  type PoolEvent,
  type PoolOptions,
  type PoolStats,
} from "./src/pool/pool.ts";
export { Cursor, type IterateOptions, PooledConnection } from "./src/pool/connection.ts";
export type { ListenerErrorEvent, QueryEvent, SlowQueryEvent } from "./src/pool/query_monitor.ts";
export {
  type KeyOption,
  type ShardInfo,
  type ShardLayout,
  ShardManager,
  type ShardManagerOptions,
  type ShardStats,
} from "./src/api/manager.ts";
export { shutdown } from "./src/api/shutdown.ts";
export type { BatchRecovery } from "./src/routing/batches.ts";
export type {
  MisplacedRow,
  PlacementReport,
  RepairReport,
  VerifyPlacementOptions,
} from "./src/api/placement.ts";
export type { PlacementConflict, UnroutableRow } from "./src/api/reshard.ts";
export type { KeyAffinity, KeyColumn, KeyForm } from "./src/routing/key_column.ts";
export {
  BACKUP_FORMAT,
  BACKUP_MANIFEST_FILE,
  type BackupFileEntry,
  type BackupManifest,
  type BackupOptions,
  type BackupProgress,
  type BackupReport,
  backupShards,
  type RestoreOptions,
  type RestoreProgress,
  type RestoreReport,
  restoreShards,
} from "./src/api/backup.ts";
export type {
  AppliedMigration,
  MigrateOptions,
  MigrateReport,
  Migration,
  ShardMigrationStatus,
} from "./src/api/migrations.ts";
export type {
  ReshardOptions,
  ReshardPlan,
  ReshardProgress,
  ReshardReport,
} from "./src/api/reshard.ts";
export {
  type IterateRouteOptions,
  type QueryAllOptions,
  type ReadRouteOptions,
  type RouteOptions,
  Router,
  type SelectRouteOptions,
  type ShardSource,
  type WriteRouteOptions,
} from "./src/routing/router.ts";
export type {
  ConflictMode,
  InsertManyOptions,
  InsertRouteOptions,
  NoReturning,
  ReturningOption,
  UpsertOptions,
} from "./src/routing/write_options.ts";
export {
  type DescriptorKey,
  type HashDescriptor,
  HashStrategy,
  type LookupDescriptor,
  LookupStrategy,
  MAX_SHARDS,
  type ModuloDescriptor,
  ModuloStrategy,
  type RangeBoundary,
  type RangeDescriptor,
  RangeStrategy,
  sameLayout,
  type ShardingStrategy,
  type ShardKey,
  type StrategyDescriptor,
  strategyFromDescriptor,
} from "./src/routing/strategies.ts";
export type { ColumnFilter, Where } from "./src/sql/where.ts";
export type { AbortOption } from "./src/routing/abort.ts";
export type { ReadFrom, ReadFromOption } from "./src/routing/read_from.ts";
export type { ShardLocationInput } from "./src/api/locations.ts";
export type { RemoteRestoreTarget } from "./src/api/remote_restore.ts";
export type { OrderBy, OrderTerm } from "./src/sql/order.ts";
export type { CreateTableOptions } from "./src/sql/schema.ts";
export type { HandleStats, ShardFileEvent } from "./src/pool/shard_file.ts";
export {
  type ConfigureOptions,
  type Driver,
  type DriverCursor,
  type DriverHandle,
  isPromise,
  type MaybePromise,
  type OpenOptions,
  type PositionalRows,
  type SyncDriver,
  type SyncDriverHandle,
} from "./src/driver/driver.ts";
export { nativeBackup, nativeDriver } from "./src/driver/native.ts";
export { wasmDriver } from "./src/driver/wasm.ts";
export type { WorkerHostStats } from "./src/workers/host.ts";
export * from "./src/errors.ts";
export type { Params, Row, RunResult, SqlInput, SqlValue } from "./src/types.ts";
