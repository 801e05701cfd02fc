/**
 * The options of a `ShardManager`, checked at construction: a bad value fails there with
 * a message naming it, not at the first query.
 *
 * @module
 */

import { shardFilePath } from "./layout.ts";
import { checkAccess, ConnectionPool, defaultPoolDriver, type PoolOptions } from "../pool/pool.ts";
import type { QueryEvent } from "../pool/query_monitor.ts";
import { HashStrategy, type ShardingStrategy } from "../routing/strategies.ts";
import { parseShardLocations, type RemoteShard, type ShardLocationInput } from "./locations.ts";
import { checkWorkers, WORKER_MAX_CONNECTIONS } from "../workers/options.ts";

/** Options of a {@link ShardManager}. */
export interface ShardManagerOptions {
  /** How many shard files. Required unless `strategy` is given. */
  numShards?: number;
  /**
   * The directory of the shard files (`shard_<id>.db`) and the shard map. Required unless
   * `shards` places the shards on servers.
   */
  dbDir?: string;
  /**
   * The shards' servers (libSQL / sqld), in shard-id order: a URL (`ws://`, `wss://`,
   * `http://`, `https://`, `libsql://`) or `{ url, authToken?, replicas? }`. The number of
   * shards is the list's length; no `dbDir` (the shard map lives on shard 0, where every
   * client reads it). Every manager call works as on local files. Needs `--allow-net` to
   * the servers only.
   *
   * @example
   * ```ts ignore
   * import { ShardManager } from "../../mod.ts";
   * await using manager = new ShardManager({
   *   shards: ["ws://10.0.0.1:8080", { url: "wss://db2.example:443", authToken: "…" }],
   * });
   * ```
   */
  shards?: readonly ShardLocationInput[];
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
  /**
   * `"exclusive"` (default): this manager's process alone uses the directory. `"shared"`:
   * any number of isolates and processes use it at once (`deno serve --parallel`,
   * Workers, several servers, the CLI beside a live server). Needs a driver that can
   * share a file (`pool: { driver: nativeDriver }`); exclusive and shared users exclude
   * each other with `ShardLockedError`, and operations that need the directory alone
   * (reshard, repairPlacement, restore) refuse while other users are live.
   */
  access?: "exclusive" | "shared";
  /**
   * Called after every statement any shard runs, with `shardId`, the shard file, the SQL,
   * its time in ms, the rows it returned or changed, and its error if it failed: the
   * user's statements (the `select({ key })` fast path included), the library's own on
   * the user's behalf (cross-shard parts, batch bookkeeping, migrations, reshard moves),
   * and the BEGIN/COMMIT/ROLLBACK of transactions; not health checks or the pragmas run
   * when a file opens. Same as `pool.onQuery` (set one or the other). A listener that
   * throws does not break the statement (it is reported as a `listener-error` event).
   *
   * @example Count statements per shard
   * ```ts
   * import { ShardManager } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * const perShard = new Map<number, number>();
   * await using manager = new ShardManager({
   *   numShards: 2,
   *   dbDir: dir,
   *   onQuery: (e) => perShard.set(e.shardId ?? -1, (perShard.get(e.shardId ?? -1) ?? 0) + 1),
   * });
   * await manager.createTable("t", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
   * perShard.clear();
   * await manager.insert("t", { id: 7 });
   * await manager.select("t", { key: 7 });
   * const shard = manager.getShardId(7, "t");
   * if (perShard.get(shard) !== 2 || perShard.size !== 1) throw new Error("insert + select");
   * await manager.shutdown();
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  onQuery?: (event: QueryEvent) => void;
  /**
   * A statement taking at least this long (ms), on any shard, is also reported as a
   * `slow-query` event through `pool.onEvent` (console warning by default). Same as
   * `pool.slowQueryMs` (set one or the other).
   */
  slowQueryMs?: number;
  /**
   * Time every statement for the statement-time histogram of `metrics()` even without
   * `onQuery` or `slowQueryMs` (which time statements anyway). Default false. Same as
   * `pool.timeStatements`.
   */
  timeStatements?: boolean;
  /**
   * How many module Web Workers run the shards' SQLite (shard `id` in worker
   * `id % workers`), started on first use and ended by `shutdown()` — call it (or use
   * `await using`): a live worker keeps the process from exiting. Default 0: in this
   * thread. The pools stay on this thread; only the SQLite handles move, and a pool's
   * `maxConnections` defaults to 64 instead of 10 (calls in flight travel together). Workers
   * keep the event loop free during big scans and aggregates (their SQLite runs
   * elsewhere); a single point read costs a round trip between threads (140–260 µs on the
   * 2-core project machine) instead of a few µs, and `insertMany` gains little on 2 cores
   * (its routing stays here). Needs a built-in driver (`wasmDriver`, `nativeDriver`), exclusive
   * access, and read access to the library's `src/` (a worker loads its module from
   * there). A worker that dies fails the calls in flight on its shards with
   * `WorkerCrashedError` and starts again on the next call. See the README's "Workers"
   * section.
   *
   * @example Two workers
   * ```ts
   * import { ShardManager } from "../../mod.ts";
   * const dir = await Deno.makeTempDir();
   * const manager = new ShardManager({ numShards: 4, dbDir: dir, workers: 2 });
   * await manager.createTable("t", { id: "INTEGER PRIMARY KEY", v: "TEXT" }, { shardKey: "id" });
   * await manager.insertMany("t", [{ id: 1, v: "a" }, { id: 2, v: "b" }, { id: 3, v: "c" }]);
   * if (await manager.count("t") !== 3) throw new Error("expected 3 rows");
   * await manager.shutdown(); // ends the workers
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  workers?: number;
}

/** {@link ShardManagerOptions} checked, with their defaults filled in. */
export interface ManagerSettings {
  /** The directory, without trailing slashes. */
  dbDir: string;
  /** The layout. */
  strategy: ShardingStrategy;
  /** How many shards a cross-shard operation works on at once. */
  maxConcurrentShards: number;
  /** How many shard files stay open at once. */
  maxOpenShards: number;
  /** Every shard pool's options (a copy, with `access` set). */
  pool: PoolOptions;
  /** How the directory is held (always `"shared"` for shards on servers). */
  access: "exclusive" | "shared";
  /** The shards' servers (`shards`), or null for shard files in `dbDir`. */
  remote: RemoteShard[] | null;
  /** How many shard workers (0: in-thread). */
  workers: number;
}

const DEFAULT_MAX_OPEN_SHARDS = 256;

/**
 * Checks `options` and fills in the defaults.
 *
 * @throws {TypeError | RangeError} for invalid options (the message names the option).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkManagerOptions } from "./options.ts";
 * const settings = checkManagerOptions({ numShards: 4, dbDir: "./data/" });
 * assert.equal(settings.dbDir, "./data");
 * assert.equal(settings.maxOpenShards, 256);
 * assert.throws(() => checkManagerOptions({ dbDir: "./data" }), TypeError);
 * ```
 */
export function checkManagerOptions(options: ShardManagerOptions): ManagerSettings {
  if (options === null || typeof options !== "object") {
    throw new TypeError("ShardManager options must be an object with numShards and dbDir");
  }
  if (options.shards !== undefined) return checkRemoteOptions(options);
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
  const { concurrency, maxOpen } = checkBounds(options);
  const dbDir = options.dbDir.replace(/\/+$/, "") || "/";
  const access = options.access ?? options.pool?.access ?? "exclusive";
  if (options.pool?.access !== undefined && options.pool.access !== access) {
    throw new TypeError(
      `access is ${JSON.stringify(access)} but pool.access is ${
        JSON.stringify(options.pool.access)
      }; set it once, as access`,
    );
  }
  const driver = options.pool?.driver ?? defaultPoolDriver();
  if (access !== "exclusive" && access !== "shared") {
    throw new TypeError(
      `access must be "exclusive" or "shared", got ${JSON.stringify(access) ?? String(access)}`,
    );
  }
  checkAccess(access, driver);
  const workers = checkWorkers(options.workers, driver, access);
  const pool: PoolOptions = { ...options.pool, access };
  if (workers > 0) pool.maxConnections ??= WORKER_MAX_CONNECTIONS;
  takeObservers(options, pool);
  // Fail at construction on bad pool options rather than at the first query.
  new ConnectionPool(shardFilePath(dbDir, 0), pool);
  return {
    dbDir,
    strategy,
    maxConcurrentShards: concurrency,
    maxOpenShards: maxOpen,
    pool,
    access,
    workers,
    remote: null,
  };
}

/** `maxConcurrentShards` and `maxOpenShards`, checked, defaults filled in. */
function checkBounds(options: ShardManagerOptions): { concurrency: number; maxOpen: number } {
  const concurrency = options.maxConcurrentShards ?? 16;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`maxConcurrentShards must be a positive integer, got ${concurrency}`);
  }
  const maxOpen = options.maxOpenShards ?? DEFAULT_MAX_OPEN_SHARDS;
  if (!Number.isSafeInteger(maxOpen) || maxOpen < 1) {
    throw new RangeError(`maxOpenShards must be a positive integer, got ${maxOpen}`);
  }
  return { concurrency, maxOpen };
}

/** Moves the manager-level observers (`onQuery`, ...) into the pool options, set once. */
function takeObservers(options: ShardManagerOptions, pool: PoolOptions): void {
  for (const name of ["onQuery", "slowQueryMs", "timeStatements"] as const) {
    if (options[name] === undefined) continue;
    if (options.pool?.[name] !== undefined) {
      throw new TypeError(`${name} is set both on the manager and in pool; set it once`);
    }
    (pool as Record<string, unknown>)[name] = options[name];
  }
}

/** The options of a manager whose shards are on servers (`shards`). */
function checkRemoteOptions(options: ShardManagerOptions): ManagerSettings {
  const remote = parseShardLocations(options.shards);
  if (options.dbDir !== undefined) {
    throw new TypeError(
      "dbDir names a directory of shard files; with shards, every shard is on its server " +
        "and the shard map on shard 0: leave dbDir out",
    );
  }
  if (options.numShards !== undefined && options.numShards !== remote.length) {
    throw new RangeError(
      `numShards (${options.numShards}) differs from the number of shards listed (${remote.length})`,
    );
  }
  const strategy = options.strategy ?? new HashStrategy(remote.length);
  if (strategy.numShards !== remote.length) {
    throw new RangeError(
      `the strategy has ${strategy.numShards} shards, shards lists ${remote.length} servers`,
    );
  }
  if (options.pool?.driver !== undefined) {
    throw new TypeError("shards on servers use the libsql driver; leave pool.driver out");
  }
  const access = options.access ?? options.pool?.access ?? "shared";
  if (access !== "shared" || (options.pool?.access ?? "shared") !== "shared") {
    throw new TypeError(
      `access is "shared" for shards on servers (many clients use them at once), got ` +
        JSON.stringify(access === "shared" ? options.pool?.access : access),
    );
  }
  const { concurrency, maxOpen } = checkBounds(options);
  const pool: PoolOptions = { ...options.pool, access };
  takeObservers(options, pool);
  const first = remote[0] as RemoteShard;
  new ConnectionPool(first.url, { ...pool, driver: first.driver }); // bad pool options fail here
  // A server runs its own SQLite: workers > 0 is refused (by the driver's `remote`).
  const workers = checkWorkers(options.workers, first.driver, access);
  return {
    dbDir: first.url,
    strategy,
    maxConcurrentShards: concurrency,
    maxOpenShards: maxOpen,
    pool,
    access,
    remote,
    workers,
  };
}
