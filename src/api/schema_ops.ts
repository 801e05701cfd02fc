/**
 * DDL on every shard of a manager, kept in step with the tables its shard map records
 * (a table's shard-key column is recorded with the storage SQLite gave it).
 *
 * @module
 */

import { InvalidQueryError } from "../errors.ts";
import { buildCreateTable, buildDropTable, type CreateTableOptions } from "../sql/schema.ts";
import { validateIdentifier } from "../sql/identifiers.ts";
import { findTransactionControl } from "../sql/statements.ts";
import { ensureKeyIndex, readKeySchema } from "./key_schema.ts";
import type { ManagerParts } from "./parts.ts";

/** `ShardManager.createTable()`: on every shard, then recorded in the map. */
export async function createTable(
  parts: ManagerParts,
  table: string,
  columns: Readonly<Record<string, string>>,
  options: CreateTableOptions & { shardKey?: string },
): Promise<void> {
  const { shardKey, ...createOptions } = options;
  const statement = buildCreateTable(table, columns, { ifNotExists: true, ...createOptions });
  if (shardKey !== undefined) {
    validateIdentifier(shardKey, "shard key column");
    if (!Object.hasOwn(columns, shardKey)) {
      throw new InvalidQueryError(
        "shardKey",
        `${shardKey} is not a column of ${table}; name one of: ${Object.keys(columns).join(", ")}`,
      );
    }
  }
  await parts.ready();
  const recorded = parts.tables.recordedName(table);
  if (recorded !== undefined) {
    // Changing a table's shard key would route new rows differently from existing ones.
    const existing = parts.tables.current?.tables[recorded]?.shardKey ?? null;
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
  const schemas = await parts.router.routeEachShard(async (c) => {
    await c.exec(statement.sql);
    if (shardKey === undefined) return undefined;
    const schema = await readKeySchema(c, recorded ?? table, shardKey);
    if (schema !== undefined) await ensureKeyIndex(c, recorded ?? table, schema);
    return schema;
  });
  const schema = schemas.find((found) => found !== undefined);
  await parts.ready();
  await parts.tables.update((tables) => {
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

/** `ShardManager.applySchema()`: one transaction per shard. */
export async function applySchema(parts: ManagerParts, sql: string): Promise<void> {
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
  await parts.router.routeEachShard((c) => c.transaction((tx) => tx.exec(sql)));
}

/** `ShardManager.dropTable()`: on every shard, then forgotten in the map. */
export async function dropTable(
  parts: ManagerParts,
  table: string,
  options: { ifExists?: boolean },
): Promise<void> {
  const statement = buildDropTable(table, { ifExists: options.ifExists ?? true });
  await parts.router.routeEachShard((c) => c.exec(statement.sql));
  await parts.ready();
  await parts.tables.update((tables) => {
    delete tables[parts.tables.recordedName(table) ?? table];
  });
}
