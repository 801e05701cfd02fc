/**
 * What a manager reports about its shard files: the layout, each file's size, rows per
 * table, pool figures, whether every file checks out.
 *
 * @module
 */

import { ShardOperationError } from "../errors.ts";
import type { PoolStats } from "../pool/pool.ts";
import type { StrategyDescriptor } from "../routing/strategies.ts";
import { quoteIdentifier } from "../sql/identifiers.ts";
import { shardFilePath } from "./layout.ts";
import type { ManagerParts } from "./parts.ts";
import { checkLayout, readShardMap } from "./shard_map.ts";
import { readRemoteMap } from "./remote_map.ts";

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

/** `ShardManager.getShardInfo()`: the layout, from memory. */
export function shardLayout(parts: ManagerParts): ShardLayout {
  const { dbDir, strategy } = parts;
  return {
    dbDir,
    numShards: strategy.numShards,
    strategy: strategy.describe(),
    shards: strategy.getAllShardIds().map((shardId) => ({
      shardId,
      path: parts.remote?.place(shardId).path ?? shardFilePath(dbDir, shardId),
    })),
    tables: structuredClone(parts.tables.current?.tables ?? {}),
  };
}

/** `ShardManager.getShardStats()`: every shard's figures, in shard order. */
export async function shardStats(parts: ManagerParts): Promise<ShardStats[]> {
  await parts.ready();
  const tables = parts.tables.tableNames;
  const stats: ShardStats[] = [];
  // At most maxConcurrentShards at once: each one opens its shard.
  const ids = parts.strategy.getAllShardIds();
  const step = parts.maxConcurrentShards;
  for (let at = 0; at < ids.length; at += step) {
    stats.push(...await statsOf(parts, ids.slice(at, at + step), tables));
  }
  return stats;
}

function statsOf(
  parts: ManagerParts,
  ids: readonly number[],
  tables: readonly string[],
): Promise<ShardStats[]> {
  return Promise.all(
    ids.map(async (shardId) => {
      const remote = parts.remote !== null;
      const path = parts.remote?.place(shardId).path ?? shardFilePath(parts.dbDir, shardId);
      let sizeBytes = 0;
      let exists = remote; // a server's database always exists
      if (!remote) {
        try {
          sizeBytes = (await Deno.stat(path)).size;
          exists = true;
          // Committed pages may still sit in the WAL until the next checkpoint.
          sizeBytes += (await Deno.stat(`${path}-wal`)).size;
        } catch {
          // No file, or no WAL.
        }
      }
      const rows: Record<string, number> = {};
      let pool = parts.pools.peek(shardId);
      if (exists) {
        pool = parts.getPool(shardId);
        await pool.withConnection(async (c) => {
          if (remote) {
            // The server's files are its own: the database's size is its pages.
            const pages = await c.get(
              "SELECT page_count * page_size AS n FROM " +
                "pragma_page_count(), pragma_page_size()",
            );
            sizeBytes = Number(pages?.["n"] ?? 0);
          }
          for (const table of tables) {
            // Names come from the map file: quote (and so validate) them again.
            const row = await c.get(
              `SELECT count(*) AS n FROM ${quoteIdentifier(table, "table")}`,
            );
            rows[table] = Number(row?.["n"] ?? 0);
          }
        }).catch((error) => {
          throw parts.remote?.failure(shardId, error) ??
            new ShardOperationError(shardId, path, error);
        });
      }
      return { shardId, path, exists, sizeBytes, rows, pool: pool?.getPoolStats() ?? null };
    }),
  );
}

/**
 * `ShardManager.validateShardFiles()`: whether the persisted map matches the layout and
 * every existing shard file passes `PRAGMA quick_check` with every table of the map.
 */
export async function validateShardFiles(parts: ManagerParts): Promise<boolean> {
  await parts.ready();
  const { dbDir } = parts;
  try {
    const map = parts.remote === null
      ? readShardMap(dbDir)
      : await parts.getPool(0).withConnection((c) => readRemoteMap(c, dbDir));
    if (map === undefined) return false;
    checkLayout(dbDir, map, parts.strategy);
  } catch {
    return false;
  }
  const results = await Promise.all(
    parts.strategy.getAllShardIds().map(async (shardId) => {
      try {
        if (parts.remote === null) await Deno.stat(shardFilePath(dbDir, shardId));
      } catch {
        return true;
      }
      try {
        return await parts.getPool(shardId).withConnection(async (c) => {
          const check = await c.get("PRAGMA quick_check");
          if (check?.["quick_check"] !== "ok") return false;
          // An emptied file checks "ok": it must still hold every table of the map.
          for (const table of parts.tables.tableNames) {
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
