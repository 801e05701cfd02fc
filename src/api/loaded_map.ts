/**
 * The shard map a manager routes by, as loaded in memory: its tables looked up the way
 * SQLite names them (ignoring ASCII case), with each shard-key column's type cached.
 *
 * @module
 */

import { CURRENT_KEY_FORM, type KeyColumn, type KeyForm } from "../routing/key_column.ts";
import { keyColumnFromEntry } from "./key_schema.ts";
import {
  readShardMap,
  SHARD_MAP_FILE,
  type ShardMap,
  withMapLock,
  writeShardMap,
} from "./shard_map.ts";

/**
 * The loaded map of one directory; null until the directory is opened.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LoadedMap } from "./loaded_map.ts";
 * const map = new LoadedMap("./data");
 * map.load({
 *   format: 1,
 *   numShards: 2,
 *   strategy: { type: "hash", numShards: 2 },
 *   tables: { Users: { shardKey: "id" } },
 * });
 * assert.equal(map.recordedName("users"), "Users");
 * assert.equal(map.shardKeyColumn("USERS"), "id");
 * assert.equal(map.keyForm, 1);
 * ```
 */
export class LoadedMap {
  readonly #dbDir: string;
  #map: ShardMap | null = null;
  // Key columns derived from the map, by recorded table name; cleared when the map changes.
  readonly #keyColumns = new Map<string, KeyColumn>();
  /**
   * Shared access: other users change the map too (createTable in another process), so
   * a table not found is looked for again on disk, and changes are merged under a lock.
   */
  shared = false;
  /**
   * Shards on servers: changes the map where it lives (shard 0), in one transaction, and
   * resolves to the map as changed; null for a directory's map file.
   */
  remoteStore: ((change: (map: ShardMap) => ShardMap) => Promise<ShardMap>) | null = null;
  #loadedAt: number | null = null;

  /** The map of `dbDir` (where {@link update} writes it). */
  constructor(dbDir: string) {
    this.#dbDir = dbDir;
  }

  /** The map, or null before the directory is opened. */
  get current(): ShardMap | null {
    return this.#map;
  }

  /** Takes `map` as read when the directory opens (the key-column cache is kept). */
  load(map: ShardMap): void {
    this.#map = map;
    this.#loadedAt = this.remoteStore === null ? this.#mtime() : null;
  }

  #mtime(): number | null {
    try {
      return Deno.statSync(`${this.#dbDir}/${SHARD_MAP_FILE}`).mtime?.getTime() ?? null;
    } catch {
      return null;
    }
  }

  /** Shared access: reloads the map when another user has written it since. */
  #refresh(): boolean {
    if (!this.shared || this.#map === null || this.remoteStore !== null) return false;
    const mtime = this.#mtime();
    if (mtime === this.#loadedAt) return false;
    const fresh = readShardMap(this.#dbDir);
    if (fresh === undefined) return false;
    this.replace(fresh);
    this.#loadedAt = mtime;
    return true;
  }

  /** Takes `map` in place of the current one (a change already written, or about to be). */
  replace(map: ShardMap): void {
    this.#map = map;
    this.#keyColumns.clear();
  }

  /**
   * Changes the map's tables: writes the changed map atomically, then takes it. Under
   * shared access the change is applied to the map as on disk, under a lock, so that two
   * users' changes never overwrite each other.
   */
  update(change: (tables: ShardMap["tables"]) => void): void | Promise<void> {
    const remote = this.remoteStore;
    if (remote !== null) {
      return remote((map) => {
        const next: ShardMap = { ...map, tables: { ...map.tables } };
        change(next.tables);
        return next;
      }).then((next) => this.replace(next));
    }
    if (!this.shared) {
      const map = this.#map as ShardMap;
      const next: ShardMap = { ...map, tables: { ...map.tables } };
      change(next.tables);
      writeShardMap(this.#dbDir, next);
      this.replace(next);
      return;
    }
    withMapLock(this.#dbDir, () => {
      const map = readShardMap(this.#dbDir) ?? (this.#map as ShardMap);
      const next: ShardMap = { ...map, tables: { ...map.tables } };
      change(next.tables);
      writeShardMap(this.#dbDir, next);
      this.replace(next);
      this.#loadedAt = this.#mtime();
    });
  }

  /** The names of the recorded tables (none before the directory is opened). */
  get tableNames(): string[] {
    return Object.keys(this.#map?.tables ?? {});
  }

  /** The name the map records for `table`: SQLite table names ignore ASCII case. */
  recordedName(table: string): string | undefined {
    const tables = this.#map?.tables ?? {};
    if (Object.hasOwn(tables, table)) return table;
    const lower = table.toLowerCase();
    const found = Object.keys(tables).find((name) => name.toLowerCase() === lower);
    if (found === undefined && this.#refresh()) return this.recordedName(table);
    return found;
  }

  /** The shard-key column recorded for `table`, if any. */
  shardKeyColumn(table: string): string | undefined {
    if (this.#map === null) return undefined;
    const direct = this.#map.tables[table];
    if (direct !== undefined) return direct.shardKey ?? undefined;
    const name = this.recordedName(table); // may reload the map (shared access)
    return name === undefined ? undefined : this.#map.tables[name]?.shardKey ?? undefined;
  }

  /** The shard-key column of `table` with its type (the router's view). */
  keyColumn(table: string): KeyColumn | undefined {
    const name = this.recordedName(table);
    if (name === undefined) return undefined;
    let column = this.#keyColumns.get(name);
    if (column === undefined) {
      column = keyColumnFromEntry(name, this.#map?.tables[name]);
      if (column !== undefined) this.#keyColumns.set(name, column);
    }
    return column;
  }

  /** How the directory hashes keys: the current form before it is opened. */
  get keyForm(): KeyForm {
    return this.#map === null ? CURRENT_KEY_FORM : this.#map.keyForm ?? 1;
  }
}
