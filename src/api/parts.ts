/**
 * The parts a `ShardManager` is built from, as the files implementing its operations see
 * them: the manager hands these down rather than itself, so its state stays private.
 *
 * @module
 */

import type { ConnectionPool } from "../pool/pool.ts";
import type { Router } from "../routing/router.ts";
import type { ShardingStrategy } from "../routing/strategies.ts";
import type { Admission } from "./admission.ts";
import type { ShardDirectory } from "./directory.ts";
import type { LoadedMap } from "./loaded_map.ts";
import type { PoolCache } from "./pool_cache.ts";
import type { RemoteShards } from "./remote.ts";

/** One manager's parts. */
export interface ManagerParts {
  /** The directory of the shard files. */
  readonly dbDir: string;
  /** The layout keys are routed by now. */
  readonly strategy: ShardingStrategy;
  /** Switches the layout (the manager's and its router's). */
  useStrategy(strategy: ShardingStrategy): void;
  /** How many shards a cross-shard operation works on at once. */
  readonly maxConcurrentShards: number;
  /** How the directory is held (`ShardManagerOptions.access`). */
  readonly access: "exclusive" | "shared";
  /** When operations may run. */
  readonly admission: Admission;
  /** The shard map as loaded. */
  readonly tables: LoadedMap;
  /** The open shard pools. */
  readonly pools: PoolCache;
  /** Ownership of the directory, batch recovery. */
  readonly directory: ShardDirectory;
  /** The manager's router. */
  readonly router: Router;
  /** The pool of a shard, checked as `ShardManager.getPool` checks it. */
  getPool(shardId: number): ConnectionPool;
  /** Resolves when operations may run (`ShardManager.ready`). */
  ready(): Promise<void>;
  /** The shards' servers (`shards`), or null for shard files in `dbDir`. */
  readonly remote: RemoteShards | null;
}
