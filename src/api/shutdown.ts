/**
 * Module-level shutdown: closes every manager and pool of the process.
 *
 * @module
 */

import { openPools } from "../pool/pool.ts";
import { openManagers } from "./manager.ts";

/**
 * Shuts down every `ShardManager` and closes every `ConnectionPool` of the process,
 * so that every shard file can be moved or deleted. Rejects with the first failure
 * after trying them all.
 *
 * @example
 * ```ts
 * import { ShardManager, shutdown } from "../../mod.ts";
 * const dir = await Deno.makeTempDir();
 * const manager = new ShardManager({ numShards: 2, dbDir: dir });
 * await manager.createTable("t", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
 * await shutdown();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function shutdown(options?: { graceMs?: number }): Promise<void> {
  const results = await Promise.allSettled(openManagers().map((m) => m.shutdown(options)));
  results.push(...await Promise.allSettled(openPools().map((p) => p.closeAll(options))));
  const failed = results.find((r) => r.status === "rejected");
  if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
}
