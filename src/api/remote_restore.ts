/**
 * Restoring a backup (`ShardManager.backup`) onto servers: every file is verified first
 * (manifest, checksums, `integrity_check`, map), then each shard's database is copied
 * into its server (schema, then rows, in one transaction per shard), and the shard map is
 * written on shard 0 with a new layout epoch, so that a client still routing by the old
 * layout has its writes refused.
 *
 * @module
 */

import { RestoreTargetError, ShardUnavailableError } from "../errors.ts";
import type { DriverHandle } from "../driver/driver.ts";
import { nativeDriver } from "../driver/native.ts";
import type { PooledConnection } from "../pool/connection.ts";
import { ConnectionPool } from "../pool/pool.ts";
import { packInsert } from "../sql/dml.ts";
import type { SqlValue } from "../types.ts";
import {
  checkPath,
  readBackup,
  type RestoreOptions,
  type RestoreReport,
  trimSlashes,
  verifyFile,
  withFileHandle,
} from "./backup.ts";
import { parseShardLocations, type RemoteShard, type ShardLocationInput } from "./locations.ts";
import { isUnavailable } from "./remote.ts";
import {
  CREATE_META_TABLE,
  epochOf,
  META_TABLE,
  readShardEpoch,
  writeShardEpoch,
} from "./remote_map.ts";

/** Where a backup is restored to when its shards go to servers. */
export interface RemoteRestoreTarget {
  /** One server per shard of the backup, in shard-id order (see `ShardManagerOptions.shards`). */
  shards: readonly ShardLocationInput[];
}

// Rows sent per round of multi-row INSERTs.
const ROWS_PER_READ = 2_000;

function quoteName(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** The user's schema objects on a server (none of SQLite's own). */
async function schemaOf(conn: PooledConnection): Promise<{ type: string; name: string }[]> {
  return (await conn.all(
    "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' " +
      "AND sql IS NOT NULL ORDER BY type = 'table'",
  )).map((row) => ({ type: String(row["type"]), name: String(row["name"]) }));
}

/**
 * Restores `backupDir` onto the servers of `target.shards` (as many as the backup has
 * shards). A server holding tables is refused (`RestoreTargetError`, nothing changed)
 * unless `overwrite: true`, which drops what it holds first.
 */
export async function restoreOntoServers(
  backupDir: string,
  target: RemoteRestoreTarget,
  options: RestoreOptions = {},
): Promise<RestoreReport> {
  checkPath(backupDir, "backupDir");
  const started = performance.now();
  const source = trimSlashes(backupDir);
  if (target === null || typeof target !== "object") {
    throw new TypeError("the restore target must be a directory or { shards: [urls] }");
  }
  const shards = parseShardLocations(target.shards);
  const { manifest, map } = readBackup(source);
  if (shards.length !== manifest.numShards) {
    throw new RangeError(
      `the backup has ${manifest.numShards} shards, the target lists ${shards.length} servers`,
    );
  }
  const total = manifest.numShards;
  const staging = await Deno.makeTempDir({ prefix: "shardlite-restore-" });
  const pools = shards.map((shard) =>
    new ConnectionPool(shard.url, {
      driver: shard.driver,
      access: "shared",
      name: `restore shard ${shard.shardId}`,
      onEvent: () => {},
    })
  );
  const on = <T>(shard: RemoteShard, fn: (conn: PooledConnection) => Promise<T>): Promise<T> =>
    (pools[shard.shardId] as ConnectionPool).withConnection(fn).catch((error) => {
      throw error instanceof RestoreTargetError
        ? error
        : isUnavailable(error)
        ? new ShardUnavailableError(shard.shardId, shard.url, error)
        : error;
    });
  try {
    const verified: string[] = [];
    for (const entry of manifest.files) {
      verified.push(await verifyFile(source, entry, staging, nativeDriver));
      options.onProgress?.({
        phase: "verify",
        shardId: entry.shardId,
        done: verified.length,
        total,
      });
    }
    // Every server is checked before any is changed; the highest epoch found fences the rest.
    let epoch = epochOf(map);
    for (const shard of shards) {
      const found = await on(shard, async (conn) => {
        const objects = await schemaOf(conn);
        const tables = objects.filter((o) => o.type === "table" && o.name !== META_TABLE);
        if (tables.length > 0 && options.overwrite !== true) {
          throw new RestoreTargetError(
            shard.url,
            "not-empty",
            tables.slice(0, 5).map((t) => t.name),
          );
        }
        return (await readShardEpoch(conn)).epoch;
      });
      epoch = Math.max(epoch, found);
    }
    epoch += 1;
    let bytes = 0;
    const removed: string[] = [];
    for (const [i, shard] of shards.entries()) {
      await on(shard, (conn) =>
        conn.transaction(async (tx) => {
          for (const object of await schemaOf(tx)) {
            if (object.type !== "table") continue; // indexes and triggers go with their table
            if (!object.name.startsWith("_shardlite_")) {
              removed.push(`${shard.url}: ${object.name}`);
            }
            await tx.exec(`DROP TABLE IF EXISTS ${quoteName(object.name)}`);
          }
          for (const object of await schemaOf(tx)) {
            await tx.exec(`DROP ${object.type.toUpperCase()} IF EXISTS ${quoteName(object.name)}`);
          }
          await withFileHandle(nativeDriver, verified[i] as string, (local) => copyInto(local, tx));
          await tx.exec(CREATE_META_TABLE);
          await writeShardEpoch(tx, { epoch, resharding: false });
          if (shard.shardId === 0) {
            await tx.run(
              `INSERT INTO ${META_TABLE} (key, value) VALUES ('map', ?) ` +
                `ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
              [JSON.stringify({ ...map, epoch })],
            );
          }
        }));
      bytes += manifest.files[i]?.sizeBytes ?? 0;
      options.onProgress?.({ phase: "install", shardId: shard.shardId, done: i + 1, total });
    }
    return {
      backupDir: source,
      dbDir: (shards[0] as RemoteShard).url,
      numShards: manifest.numShards,
      bytes,
      removed,
      durationMs: performance.now() - started,
    };
  } finally {
    await Promise.all(pools.map((pool) => pool.closeAll()));
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
}

/**
 * Copies a local database into the server's open transaction: tables with their rows
 * (each table read whole, sent in multi-row INSERTs), then indexes, triggers and views.
 * The reserved map table is written by the caller.
 */
async function copyInto(local: DriverHandle, tx: PooledConnection): Promise<void> {
  const objects = await local.all(
    "SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE " +
      "'sqlite\\_%' ESCAPE '\\' ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END, rowid",
  );
  for (const object of objects) {
    const name = String(object["name"]);
    if (name === META_TABLE) continue;
    await tx.exec(String(object["sql"]));
    if (object["type"] !== "table") continue;
    const rows = await local.values(`SELECT * FROM ${quoteName(name)}`);
    if (rows.rows.length === 0) continue;
    const insert = `INSERT INTO ${quoteName(name)} (${rows.columns.map(quoteName).join(", ")}) ` +
      `VALUES (${rows.columns.map(() => "?").join(", ")})`;
    for (let at = 0; at < rows.rows.length; at += ROWS_PER_READ) {
      const chunk = rows.rows.slice(at, at + ROWS_PER_READ) as SqlValue[][];
      for (const part of packInsert(insert, chunk)) await tx.runMany(part.sql, part.params);
    }
  }
  const sequences = await local.all(
    "SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_sequence'",
  );
  if (sequences.length > 0) {
    for (const row of await local.all("SELECT name, seq FROM sqlite_sequence")) {
      await tx.run("UPDATE sqlite_sequence SET seq = ? WHERE name = ?", [
        row["seq"] ?? null,
        row["name"] ?? null,
      ]);
    }
  }
}
