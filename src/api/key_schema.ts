/**
 * Reads how a table's shard-key column stores values from the shard's own schema, and
 * keeps that column indexed. The shard map records the answer (`TableEntry.keyType`), so
 * routing can tell, without a query, what SQLite stores for a key.
 *
 * @module
 */

import type { PooledConnection } from "../pool/connection.ts";
import { type KeyColumn, keyColumnOf } from "../routing/key_column.ts";
import { quoteIdentifier } from "../sql/identifiers.ts";
import type { KeyTypeEntry, TableEntry } from "./shard_map.ts";

/** The schema facts about a shard-key column, and whether it leads the primary key. */
export interface KeySchema extends KeyTypeEntry {
  /** The column as the schema spells it. */
  column: string;
  /** The column is the first column of the primary key (so it is indexed already). */
  leadsPrimaryKey: boolean;
}

/**
 * Reads the key column's declared type, rowid aliasing and the table's STRICT flag on
 * one shard; undefined when the table or the column is missing there.
 */
export async function readKeySchema(
  conn: PooledConnection,
  table: string,
  column: string,
): Promise<KeySchema | undefined> {
  const quoted = quoteIdentifier(table, "table");
  const listed = await conn.get(`PRAGMA table_list(${quoted})`);
  if (listed === undefined) return undefined;
  const columns = await conn.all(`PRAGMA table_xinfo(${quoted})`);
  const wanted = column.toLowerCase();
  const info = columns.find((c) => String(c.name).toLowerCase() === wanted);
  if (info === undefined) return undefined;
  const primaryKey = columns.filter((c) => Number(c.pk) > 0).length;
  const declaredType = String(info.type ?? "");
  const withoutRowid = Number(listed.wr) === 1;
  return {
    column: String(info.name),
    declaredType,
    rowidAlias: !withoutRowid && primaryKey === 1 && Number(info.pk) === 1 &&
      declaredType.trim().toUpperCase() === "INTEGER",
    strictTable: Number(listed.strict) === 1,
    leadsPrimaryKey: Number(info.pk) === 1,
  };
}

/** The name of the index Shardlite keeps on a shard-key column that is not the primary key. */
export function keyIndexName(table: string): string {
  // Not `_shardlite_…`: a reshard copies the schema to new shards except those names.
  return `shardlite_key_${table}`;
}

/**
 * Creates the shard-key index on this shard when the key does not lead the primary key
 * (key-restricted statements and placement scans search by it).
 */
export async function ensureKeyIndex(
  conn: PooledConnection,
  table: string,
  schema: KeySchema,
): Promise<void> {
  if (schema.leadsPrimaryKey) return;
  // Both names are validated identifiers; the index name is derived from one.
  const index = `"${keyIndexName(table).replaceAll('"', '""')}"`;
  await conn.exec(
    `CREATE INDEX IF NOT EXISTS ${index} ON ${quoteIdentifier(table, "table")} (${
      quoteIdentifier(schema.column, "column")
    })`,
  );
}

/** The key column a map entry describes, or undefined when it has no shard key or type. */
export function keyColumnFromEntry(
  table: string,
  entry: TableEntry | undefined,
): KeyColumn | undefined {
  if (entry?.shardKey == null || entry.keyType === undefined) return undefined;
  return keyColumnOf(table, entry.shardKey, entry.keyType.declaredType, entry.keyType);
}
