/**
 * `Router`: sends each operation to the shard its key maps to, and runs cross-shard
 * reads on every shard concurrently, merging the answers as one database would.
 *
 * @module
 */

import {
  ConnectionBrokenError,
  InvalidQueryError,
  InvalidShardKeyError,
  ShardUnavailableError,
  TableNotFoundError,
} from "../errors.ts";
import type { ConnectionPool } from "../pool/pool.ts";
import { isPromise } from "../driver/driver.ts";
import type { PooledConnection } from "../pool/connection.ts";
import type { Params, Row, RunResult, SqlInput, SqlValue } from "../types.ts";
import { describeKey, type ShardKey } from "./keys.ts";
import { routingKey, sameStoredKey, storedKey } from "./key_column.ts";
import { admit } from "./admission.ts";
import { type AbortOption, signalOf } from "./abort.ts";
import { writeAtomically } from "./atomic.ts";
import { BatchLedger, type BatchOp } from "./batches.ts";
import { addRow, type ShardRuns, writeRuns } from "./insert_many.ts";
import {
  collectShards,
  type SplitPlan,
  type StreamPlan,
  type StreamShard,
  streamShards,
} from "./stream.ts";
import { needsSplit, readRanges, rowidCuts, type SplitReason } from "./split.ts";
import { isRetryable, ShardCalls } from "./shard_calls.ts";
import type { ShardSource } from "./source.ts";
import { checkReadFrom, type ReadFromOption } from "./read_from.ts";

/** Rows a cross-shard select reads from a shard at a time. */
const SELECT_PAGE_SIZE = 2_000;
import { checkPageSize } from "../pool/connection.ts";
import { TimeSlice } from "../pool/yield.ts";
import {
  buildGroupedAggregate,
  buildPartialAggregate,
  combineAggregate,
  combineSortedGroups,
  mergeSorted,
  shardLimit,
} from "./merge.ts";
import { parseAggregate } from "../sql/aggregate.ts";
import { buildDelete, buildInsert, buildSelect, buildUpdate, checkCount } from "../sql/dml.ts";
import { quoteIdentifier, validateIdentifier } from "../sql/identifiers.ts";
import { type OrderBy, resolveOrderBy } from "../sql/order.ts";
import { assertSingleStatement, statementEnd } from "../sql/single_statement.ts";
import { type TextCheck, toSqlValue } from "../sql/values.ts";
import { type ColumnFilter, type Where, whereKeyOf } from "../sql/where.ts";
import type { ShardingStrategy } from "./strategies.ts";
import { type ReturningClause, returningClause, returningError } from "../sql/returning.ts";
import {
  checkUpdateColumns,
  columnList,
  conflictClause,
  type OnConflict,
  readPrimaryKey,
  resolveUpsert,
  upsertError,
} from "../sql/upsert.ts";
import type { RunConflict } from "./insert_many.ts";
import type {
  InsertManyOptions,
  InsertRouteOptions,
  NoReturning,
  ReturningOption,
  UpsertOptions,
} from "./write_options.ts";

export type { ShardSource } from "./source.ts";

/** Options of a routed read, update or delete. */
export interface RouteOptions {
  /** Filter (equality AND-ed; `null` is IS NULL; operator objects allowed). */
  where?: Where | undefined;
  /**
   * Route to this key's shard. When the table has a shard-key column, only rows whose
   * shard key equals `key` are affected (AND-ed with a `where` on that column, if any).
   * Present but `undefined` or `null` is refused: leave `key` out to reach every shard.
   */
  key?: ShardKey;
  /** Aborts the call (see {@link AbortOption}). */
  signal?: AbortSignal | undefined;
}

/** Options of a routed read: those of {@link RouteOptions}, and where to read. */
export interface ReadRouteOptions extends RouteOptions, ReadFromOption {}

/** Options of {@link Router.routeSelect}. */
export interface SelectRouteOptions extends ReadRouteOptions {
  /** Columns to return; all when absent. */
  columns?: readonly string[] | undefined;
  /** Sort order: a column, or `{ column, direction }` terms. Merged k-way across shards. */
  orderBy?: OrderBy | undefined;
  /** At most this many rows of the merged result. */
  limit?: number | undefined;
  /** Skip this many rows of the merged result. */
  offset?: number | undefined;
}

/** Options of {@link Router.routeIterate}: those of a select, and the page size. */
export interface IterateRouteOptions extends SelectRouteOptions {
  /** Rows read from each shard at a time (default 256). */
  pageSize?: number | undefined;
}

/** Options of an update or delete: `allShards: true` is needed to touch every row. */
export interface WriteRouteOptions extends RouteOptions {
  /** Allow an update/delete with neither `key` nor `where` (every row of every shard). */
  allShards?: boolean | undefined;
  /**
   * Columns of every row updated or deleted to return (SQL `RETURNING`): the call then
   * resolves to those rows instead of their count. Over several shards the rows of every
   * shard are merged, in no particular order, once every shard has committed.
   */
  returning?: readonly string[] | undefined;
}

/** Options of {@link Router.routeQueryAll}. */
export interface QueryAllOptions extends AbortOption, ReadFromOption {
  /** Sort the merged rows (each shard's rows are sorted by SQLite first). */
  orderBy?: OrderBy | undefined;
  /** At most this many merged rows. */
  limit?: number | undefined;
  /** Skip this many merged rows. */
  offset?: number | undefined;
}

/**
 * Routes operations to shards. A `ShardManager` delegates to its router; a router can
 * also be built over a manager with another strategy of the same shard count.
 *
 * @example
 * ```ts
 * import { Router, ShardManager, HashStrategy } from "../../mod.ts";
 * const dir = await Deno.makeTempDir();
 * await using manager = new ShardManager({ numShards: 2, dbDir: dir });
 * await manager.createTable("users", { id: "INTEGER PRIMARY KEY", name: "TEXT" }, {
 *   shardKey: "id",
 * });
 * const router = new Router(manager, new HashStrategy(2));
 * await router.routeInsert("users", { id: 7, name: "Ada" }, 7);
 * const rows = await router.routeSelect("users", { key: 7 });
 * if (rows[0]?.name !== "Ada") throw new Error("expected Ada");
 * await manager.shutdown();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class Router {
  readonly #source: ShardSource;
  readonly #calls: ShardCalls;
  #strategy: ShardingStrategy;
  readonly #insertSql = new Map<string, string>();
  readonly #keySelectSql = new Map<string, string>();
  /** Per split reason and SQL text: whether the plan shows the reason (see #splitCuts). */
  readonly #plans = new Map<string, boolean>();
  readonly #ledger = new BatchLedger();
  readonly #checkText: TextCheck | undefined;

  /** Creates a router over `source`'s shards using `strategy`. */
  constructor(source: ShardSource, strategy: ShardingStrategy) {
    this.#source = source;
    this.#strategy = strategy;
    this.#checkText = source.checkText;
    this.#calls = new ShardCalls(source);
  }

  /** The strategy that maps keys to shards. */
  get strategy(): ShardingStrategy {
    return this.#strategy;
  }

  /** @internal A manager's router follows its reshard (operations are drained first). */
  setStrategy(strategy: ShardingStrategy): void {
    this.#strategy = strategy;
  }

  /**
   * The shard of `key`: as a key of `table`'s shard-key column when a table is named
   * (`"7"` is the integer 7 in an INTEGER column), else as the key itself. Throws
   * InvalidShardKeyError for a key that cannot be stored or routed.
   */
  getShardId(key: ShardKey, table?: string): number {
    return this.#shardOf(
      storedKey(
        key,
        table === undefined ? undefined : this.#source.getKeyColumn?.(table),
        this.#checkText,
      ),
    );
  }

  /** The shard of a stored key (see `key_column.ts`). */
  #shardOf(stored: ShardKey): number {
    const strategy = this.#strategy;
    return strategy.getShardId(
      routingKey(stored, this.#source.keyForm ?? 1, strategy.keyDomain ?? "any"),
    );
  }

  /** The stored form of `key` in `table`'s shard-key column (the key as is without one). */
  #stored(table: string, key: unknown): ShardKey {
    return storedKey(key, this.#source.getKeyColumn?.(table), this.#checkText);
  }

  #allShards(): number[] {
    return this.strategy.getAllShardIds();
  }

  /** The key's shard, and the where clause with the shard-key filter added. */
  #target(table: string, options: RouteOptions): { shards: number[]; where: Where | undefined } {
    validateIdentifier(table, "table");
    if (options === null || typeof options !== "object") {
      throw new InvalidQueryError("options", `expected an object, got ${describeKey(options)}`);
    }
    if (!Object.hasOwn(options, "key")) return { shards: this.#allShards(), where: options.where };
    const key = this.#stored(table, checkKeyOption(options.key));
    const shardId = this.#shardOf(key);
    const column = this.#source.getShardKeyColumn(table);
    if (column === undefined) return { shards: [shardId], where: options.where };
    return { shards: [shardId], where: this.#withKey(table, column, key, options.where) };
  }

  /**
   * `where` AND "column = key". A condition `where` already puts on the column is kept:
   * an equal value (as stored) is the same filter, a different one matches nothing.
   */
  #withKey(table: string, shardKey: string, key: ShardKey, where: Where | undefined): Where {
    const column = whereKeyOf(shardKey); // a column named `or` or `not` is spelt OR / NOT
    if (where === undefined || !Object.hasOwn(where, column)) return { ...where, [column]: key };
    const given = where[column];
    const isFilter = typeof given === "object" && given !== null && !(given instanceof Uint8Array);
    const filter = isFilter ? { ...(given as ColumnFilter) } : { eq: given as SqlInput };
    if (Object.hasOwn(filter, "eq") && !this.#sameAsKey(table, filter.eq, key)) {
      return { ...where, [column]: { in: [] } }; // two different keys: no row has both
    }
    return { ...where, [column]: { ...filter, eq: key } };
  }

  #sameAsKey(table: string, value: unknown, key: ShardKey): boolean {
    try {
      return sameStoredKey(this.#stored(table, value), key);
    } catch {
      return false; // a value that cannot be a key equals no key
    }
  }

  #insertStatement(
    table: string,
    row: Readonly<Record<string, SqlInput>>,
  ): { sql: string; params: SqlValue[]; columns: string[] } {
    const columns = Object.keys(row);
    const cacheKey = `${table}\0${columns.join("\0")}`;
    let sql = this.#insertSql.get(cacheKey);
    if (sql === undefined) {
      sql = buildInsert(table, row).sql;
      if (this.#insertSql.size < 1024) this.#insertSql.set(cacheKey, sql);
    }
    const params = new Array<SqlValue>(columns.length);
    for (let i = 0; i < columns.length; i++) {
      const column = columns[i] as string;
      params[i] = toSqlValue(row[column], column, this.#checkText);
    }
    return { sql, params, columns };
  }

  /**
   * The stored key of a row to insert (from its shard-key column, or `key`), and the row
   * to write: its shard-key value replaced by the stored form when that differs (so SQLite
   * stores exactly what was routed), or set to `key` when the row lacks the column.
   */
  #keyForRow(
    table: string,
    row: Readonly<Record<string, SqlInput>>,
    key?: ShardKey,
    column: string | undefined = this.#source.getShardKeyColumn(table),
  ): { key: ShardKey; row: Readonly<Record<string, SqlInput>> } {
    if (typeof row !== "object" || row === null || Array.isArray(row)) {
      throw new InvalidQueryError("row", `expected an object of column values`);
    }
    const fromRow = column !== undefined && Object.hasOwn(row, column) ? row[column] : undefined;
    if (key === undefined) {
      if (column === undefined) {
        throw new InvalidShardKeyError(
          "undefined",
          this.#source.hasTable?.(table) === false
            ? `table ${table} is not known to this manager (see TableNotFoundError if it does ` +
              `not exist); pass the key as the third argument, or create it with createTable`
            : `table ${table} has no shard-key column; pass the key as the third argument`,
        );
      }
      if (fromRow === undefined || fromRow === null) {
        throw new InvalidShardKeyError(
          describeKey(fromRow),
          `the row has no ${column} (the shard key of ${table}); set it or pass the key`,
        );
      }
      const stored = this.#stored(table, fromRow);
      return { key: stored, row: stored === fromRow ? row : { ...row, [column]: stored } };
    }
    const stored = this.#stored(table, key);
    if (column === undefined) return { key: stored, row };
    if (fromRow === undefined || fromRow === null) {
      if (fromRow === null) {
        throw new InvalidShardKeyError(
          describeKey(key),
          `the row's ${column} (the shard key) is null; a row is placed by its key, so ` +
            `leave ${column} out (it is set to the key) or set it to the key`,
        );
      }
      return { key: stored, row: { ...row, [column]: stored } };
    }
    if (!this.#sameAsKey(table, fromRow, stored)) {
      throw new InvalidShardKeyError(
        describeKey(key),
        `it differs from the row's ${column} (${describeKey(fromRow)}); the row would ` +
          `land on the wrong shard`,
      );
    }
    return { key: stored, row: stored === fromRow ? row : { ...row, [column]: stored } };
  }

  /** Whether `table` is missing on shard 0 (for the error of an insert that found no key). */
  async #explainMissing(table: string, error: unknown): Promise<never> {
    if (
      error instanceof InvalidShardKeyError && this.#source.getShardKeyColumn(table) === undefined
    ) {
      const found = await this.#calls.onShard(0, (c) =>
        c.get(
          "SELECT 1 AS found FROM sqlite_schema WHERE type = 'table' AND name = ? COLLATE NOCASE",
          [table],
        )).catch(() => ({ found: 1 }));
      if (found === undefined) throw new TableNotFoundError(table, undefined, { cause: error });
    }
    throw error;
  }

  /**
   * Inserts one row on its key's shard (the key may come from the shard-key column).
   * With `options.returning`, resolves to the inserted row's columns (SQL `RETURNING`).
   */
  routeInsert(
    table: string,
    row: Readonly<Record<string, SqlInput>>,
    key: ShardKey | undefined,
    options: InsertRouteOptions & ReturningOption,
  ): Promise<Row[]>;
  /** Inserts one row on its key's shard and resolves to the statement's result. */
  routeInsert(
    table: string,
    row: Readonly<Record<string, SqlInput>>,
    key?: ShardKey,
    options?: InsertRouteOptions & NoReturning,
  ): Promise<RunResult>;
  /** Inserts one row: rows with `returning`, else the statement's result. */
  routeInsert(
    table: string,
    row: Readonly<Record<string, SqlInput>>,
    key?: ShardKey,
    options?: InsertRouteOptions,
  ): Promise<RunResult | Row[]>;
  async routeInsert(
    table: string,
    row: Readonly<Record<string, SqlInput>>,
    key?: ShardKey,
    options: InsertRouteOptions = {},
  ): Promise<RunResult | Row[]> {
    const signal = signalOf(options);
    const entering = this.#calls.enter(signal, table);
    if (entering !== undefined) await entering;
    try {
      validateIdentifier(table, "table");
      if (options === null || typeof options !== "object") {
        throw new InvalidQueryError("options", `expected an object, got ${describeKey(options)}`);
      }
      if (Object.hasOwn(options, "key")) {
        if (key !== undefined) throw new InvalidQueryError("key", "the key is given twice");
        key = checkKeyOption(options.key) as ShardKey;
      }
      const returning = options.returning === undefined
        ? undefined
        : returningClause(options.returning);
      let routed: { key: ShardKey; row: Readonly<Record<string, SqlInput>> };
      try {
        routed = this.#keyForRow(table, row, key);
      } catch (error) {
        return await this.#explainMissing(table, error);
      }
      const shardId = this.#shardOf(routed.key);
      const { sql, params } = this.#insertStatement(table, routed.row);
      if (returning === undefined) {
        return await this.#calls.onShardWrite(shardId, (c) => c.run(sql, params), signal);
      }
      return await this.#calls.onShardWrite(
        shardId,
        (c) => c.all(sql + returning.sql, params),
        signal,
      )
        .catch((error: unknown) => {
          throw returningError(error, table, returning) ?? error;
        });
    } finally {
      this.#source.leave();
    }
  }

  /**
   * Inserts `row` on its key's shard or, when it collides there with a row on
   * `options.conflict` (default: the primary key), updates that row's `options.update`
   * columns (see `ShardManager.upsert`). Resolves to the statement's result, or with
   * `returning` to the row inserted or updated (none when the conflict updates nothing).
   */
  routeUpsert(
    table: string,
    row: Readonly<Record<string, SqlInput>>,
    options: UpsertOptions & ReturningOption,
  ): Promise<Row[]>;
  /** Inserts or updates one row and resolves to the statement's result. */
  routeUpsert(
    table: string,
    row: Readonly<Record<string, SqlInput>>,
    options?: UpsertOptions & NoReturning,
  ): Promise<RunResult>;
  /** Inserts or updates one row: rows with `returning`, else the statement's result. */
  routeUpsert(
    table: string,
    row: Readonly<Record<string, SqlInput>>,
    options?: UpsertOptions,
  ): Promise<RunResult | Row[]>;
  async routeUpsert(
    table: string,
    row: Readonly<Record<string, SqlInput>>,
    options: UpsertOptions = {},
  ): Promise<RunResult | Row[]> {
    const signal = signalOf(options);
    const entering = this.#calls.enter(signal, table);
    if (entering !== undefined) await entering;
    try {
      validateIdentifier(table, "table");
      if (options === null || typeof options !== "object") {
        throw new InvalidQueryError("options", `expected an object, got ${describeKey(options)}`);
      }
      const returning = options.returning === undefined
        ? undefined
        : returningClause(options.returning);
      let routed: { key: ShardKey; row: Readonly<Record<string, SqlInput>> };
      try {
        const key = Object.hasOwn(options, "key") ? checkKeyOption(options.key) : undefined;
        routed = this.#keyForRow(table, row, key as ShardKey | undefined);
      } catch (error) {
        return await this.#explainMissing(table, error);
      }
      const shardId = this.#shardOf(routed.key);
      const { sql, params, columns } = this.#insertStatement(table, routed.row);
      if (columns.length === 0) {
        throw new InvalidQueryError("row", "an upsert needs at least one column");
      }
      // Every option is checked before a shard is touched; a default target is read there.
      const shardKey = this.#source.getShardKeyColumn(table);
      if (options.update !== undefined) checkUpdateColumns(table, options.update, shardKey);
      let conflict: OnConflict | undefined = options.conflict === undefined
        ? undefined
        : resolveUpsert(table, columns, options, undefined, shardKey);
      try {
        return await this.#calls.onShardWrite(shardId, async (conn) => {
          conflict ??= resolveUpsert(
            table,
            columns,
            options,
            await this.#primaryKey(conn, table, shardId),
            shardKey,
          );
          const upsert = sql + conflictClause(conflict);
          if (returning === undefined) return await conn.run(upsert, params);
          return await conn.all(upsert + returning.sql, params);
        }, signal);
      } catch (error) {
        throw (conflict === undefined ? undefined : upsertError(error, table, conflict)) ??
          returningError(error, table, returning) ?? error;
      }
    } finally {
      this.#source.leave();
    }
  }

  /** The primary key of `table` as the schema on `shardId` has it (the default target). */
  async #primaryKey(conn: PooledConnection, table: string, shardId: number): Promise<string[]> {
    const primaryKey = await readPrimaryKey(conn, table);
    if (primaryKey === undefined) throw new TableNotFoundError(table, shardId);
    return primaryKey;
  }

  /**
   * Inserts rows grouped per shard, one transaction per shard, all or nothing across
   * shards (also across a crash; see `ShardManager.insertMany` and `batches.ts`).
   * With `returning`, resolves to the rows inserted (or updated), merged over shards.
   */
  routeInsertMany(
    table: string,
    rows: readonly Readonly<Record<string, SqlInput>>[],
    keys: readonly ShardKey[] | undefined,
    options: Omit<InsertManyOptions, "keys"> & ReturningOption,
  ): Promise<Row[]>;
  /**
   * Inserts rows all or nothing across shards. Resolves to the number of rows inserted,
   * or with `onConflict` to the rows inserted or updated.
   */
  routeInsertMany(
    table: string,
    rows: readonly Readonly<Record<string, SqlInput>>[],
    keys?: readonly ShardKey[],
    options?: Omit<InsertManyOptions, "keys"> & NoReturning,
  ): Promise<number>;
  /** Inserts rows all or nothing across shards: rows with `returning`, else a count. */
  routeInsertMany(
    table: string,
    rows: readonly Readonly<Record<string, SqlInput>>[],
    keys?: readonly ShardKey[],
    options?: Omit<InsertManyOptions, "keys">,
  ): Promise<number | Row[]>;
  async routeInsertMany(
    table: string,
    rows: readonly Readonly<Record<string, SqlInput>>[],
    keys?: readonly ShardKey[],
    options: Omit<InsertManyOptions, "keys"> = {},
  ): Promise<number | Row[]> {
    const signal = signalOf(options);
    const entering = this.#calls.enter(signal, table);
    if (entering !== undefined) await entering;
    try {
      validateIdentifier(table, "table");
      if (!Array.isArray(rows)) throw new InvalidQueryError("rows", "expected an array of rows");
      if (keys !== undefined && keys.length !== rows.length) {
        throw new InvalidQueryError("keys", `expected ${rows.length} keys, got ${keys.length}`);
      }
      const mode = checkConflictMode(options);
      const returning = options.returning === undefined
        ? undefined
        : returningClause(options.returning);
      const shardKey = this.#source.getShardKeyColumn(table);
      if (options.update !== undefined) checkUpdateColumns(table, options.update, shardKey);
      const ignoring: OnConflict | undefined = mode !== "ignore"
        ? undefined
        : options.conflict === undefined
        ? {}
        : { target: columnList(options.conflict, "conflict", false) };
      // The default target of "update" is the primary key, as a shard's schema has it.
      let primaryKey: string[] | undefined;
      if (mode === "update" && options.conflict === undefined && rows.length > 0) {
        const first = this.#allShards()[0] as number;
        primaryKey = await this.#calls.onShard(
          first,
          (c) => this.#primaryKey(c, table, first),
          signal,
        );
      }
      // What errors are explained by: the target, and every column some row updates.
      const explained = { target: ignoring?.target, update: new Set<string>() };
      let conflict: RunConflict | undefined;
      // Validate and route everything before anything is written. Each shard gets runs of
      // consecutive rows sharing one column list. A run packs its rows into multi-row
      // INSERTs (`VALUES (...), (...), ...`), which cost about half as much per row as one
      // statement a row; the few rows left over go one at a time.
      const runs: ShardRuns = [];
      const column = this.#source.getShardKeyColumn(table);
      const keyColumn = this.#source.getKeyColumn?.(table);
      // A safe integer is stored as itself in every column but a TEXT one.
      const integersAsIs = keyColumn === undefined || keyColumn.affinity !== "TEXT";
      const strategy = this.#strategy;
      const form = this.#source.keyForm ?? 1;
      const domain = strategy.keyDomain ?? "any";
      let columns: string[] | undefined;
      let sql = "";
      const slice = new TimeSlice();
      for (let i = 0; i < rows.length; i++) {
        // Routing 100k rows takes tens of ms: the event loop gets a turn every slice.
        if ((i & 1023) === 1023 && slice.due()) await slice.pause();
        let row = rows[i] as Readonly<Record<string, SqlInput>>;
        const given = keys?.[i];
        // The common case, a safe-integer shard key in the row, skips the general checks.
        const fromRow = given === undefined && column !== undefined && typeof row === "object" &&
            row !== null
          ? row[column]
          : undefined;
        let key: ShardKey;
        if (integersAsIs && typeof fromRow === "number" && Number.isSafeInteger(fromRow)) {
          key = fromRow === 0 ? 0 : fromRow;
        } else {
          let routed: { key: ShardKey; row: Readonly<Record<string, SqlInput>> };
          try {
            routed = this.#keyForRow(table, row, given, column);
          } catch (error) {
            return await this.#explainMissing(table, error);
          }
          key = routed.key;
          row = routed.row;
        }
        const shardId = strategy.getShardId(routingKey(key, form, domain));
        // Same columns as the previous row (the usual bulk case): reuse its SQL.
        let same = columns !== undefined;
        if (columns !== undefined) {
          let count = 0;
          for (const name in row) {
            if (columns[count++] !== name) {
              same = false;
              break;
            }
          }
          same &&= count === columns.length;
        }
        if (!same) {
          const statement = this.#insertStatement(table, row);
          columns = statement.columns;
          sql = statement.sql;
          if (mode !== undefined) {
            if (columns.length === 0) {
              throw new InvalidQueryError("rows", `row ${i} has no column to insert`);
            }
            const spec = ignoring ?? resolveUpsert(table, columns, options, primaryKey, shardKey);
            explained.target = spec.target;
            for (const c of spec.update ?? []) explained.update.add(c);
            conflict = { spec, clause: conflictClause(spec) };
          }
        }
        addRow(runs, shardId, sql, columns as string[], row, this.#checkText, conflict);
      }
      let written: { changes: number; rows: Row[] };
      try {
        written = await writeRuns(
          this.#source,
          this.#ledger,
          table,
          runs,
          returning?.sql,
          signal,
        );
      } catch (error) {
        const spec = { target: explained.target, update: [...explained.update] };
        throw upsertError(error, table, spec) ?? returningError(error, table, returning) ?? error;
      }
      if (returning !== undefined) return written.rows;
      return mode === undefined ? rows.length : written.changes;
    } finally {
      this.#source.leave();
    }
  }

  /**
   * Deletes the batch bookkeeping owed by finished cross-shard `insertMany` calls (done
   * lazily inside later ones). A manager calls it before a reshard and at shutdown.
   * `pool` finds a shard's pool; a shard without one is skipped.
   */
  async flushBatches(
    pool: (shardId: number) => ConnectionPool | undefined = (id) => this.#source.getPool(id),
  ): Promise<void> {
    await this.#ledger.flush(async (shardId, fn) => {
      const found = pool(shardId);
      if (found === undefined) return false;
      await found.withConnection(fn);
      return true;
    });
  }

  /**
   * Selects rows: from the key's shard, or from every shard with ORDER BY merged k-way
   * and LIMIT/OFFSET pushed down as `LIMIT limit+offset` per shard, then applied.
   */
  routeSelect(table: string, options: SelectRouteOptions = {}): Promise<Row[]> {
    // The hot case, select({ key }) while ready: no async frame of its own.
    if (this.#source.isReady) {
      let fast: { shardId: number; sql: string; key: ShardKey } | undefined;
      try {
        fast = this.#keyOnlySelect(table, options);
      } catch (error) {
        return Promise.reject(error);
      }
      if (fast !== undefined) {
        const { shardId, sql, key } = fast;
        let pool: ConnectionPool;
        try {
          pool = this.#source.getPool(shardId);
        } catch (error) {
          return Promise.reject(error);
        }
        this.#source.enter();
        let rows: Row[] | Promise<Row[]>;
        try {
          // A synchronous driver answers at once: one settled promise for the whole call.
          rows = pool.allOnce(sql, [key]);
        } catch (error) {
          this.#source.leave();
          return Promise.reject(this.#calls.shardError(shardId, pool, error));
        }
        if (!isPromise(rows)) {
          this.#source.leave();
          return Promise.resolve(rows);
        }
        const done = (found: Row[]) => {
          this.#source.leave();
          return found;
        };
        const failed = (error: unknown) => {
          this.#source.leave();
          throw this.#calls.shardError(shardId, pool, error);
        };
        return rows.then(done, (error: unknown) => {
          // A read its server's connection cut: sent once more.
          if (!isRetryable(this.#calls.shardError(shardId, pool, error))) return failed(error);
          return Promise.resolve().then(() => pool.allOnce(sql, [key])).then(done, failed);
        });
      }
    }
    return this.#routeSelect(table, options);
  }

  /**
   * Streams the rows `routeSelect` would return, in the same order: a shard at a time,
   * or, with `orderBy`, a k-way merge holding one page per shard (see `stream.ts`).
   * Bad options reject the first `next()`.
   */
  routeIterate(table: string, options: IterateRouteOptions = {}): AsyncIterableIterator<Row> {
    return this.#iterate(table, options);
  }

  async *#iterate(
    table: string,
    options: IterateRouteOptions,
  ): AsyncGenerator<Row, void, undefined> {
    if (options === null || typeof options !== "object") {
      throw new InvalidQueryError("options", `expected an object, got ${describeKey(options)}`);
    }
    const pageSize = checkPageSize(options.pageSize);
    const signal = signalOf(options);
    const entering = this.#calls.enter(signal, table);
    if (entering !== undefined) await entering;
    try {
      const { shards, where } = this.#target(table, options);
      yield* streamShards(...this.#scan(table, shards, where, options, pageSize, signal));
    } finally {
      this.#source.leave();
    }
  }

  /**
   * A cross-shard read of `select`'s options: each shard's query (sorted and cut at
   * limit + offset) and how the shards' rows merge.
   */
  #scan(
    table: string,
    shards: readonly number[],
    where: Where | undefined,
    options: SelectRouteOptions,
    pageSize: number,
    signal: AbortSignal | undefined,
  ): [StreamShard[], StreamPlan] {
    const terms = options.orderBy === undefined ? [] : resolveOrderBy(options.orderBy);
    // Order columns missing from `columns` are fetched for the merge, then dropped.
    const hidden = options.columns === undefined
      ? []
      : terms.map((t) => t.column).filter((c) => !options.columns?.includes(c));
    const columns = options.columns === undefined ? undefined : [...options.columns, ...hidden];
    const select = {
      where,
      columns,
      orderBy: terms.length > 0 ? terms : undefined,
      limit: shardLimit(options),
    };
    const statement = buildSelect(table, select, this.#checkText);
    const readFrom = checkReadFrom(options);
    // A shard that SQLite would sort whole runs as rowid ranges sorted one at a time.
    // (Shards on servers sort there, off this thread: splitting would only add round trips.)
    const split: SplitPlan | undefined = terms.length === 0 || this.#source.remote === true
      ? undefined
      : {
        cuts: (conn) => this.#splitCuts(conn, table, statement, "sort"),
        run: (from, to) =>
          buildSelect(table, { ...select, rowidRange: { from, to } }, this.#checkText),
      };
    return [
      shards.map((shardId) => ({ shardId, pool: () => this.#calls.readPool(shardId, readFrom) })),
      {
        sql: statement.sql,
        params: statement.params,
        terms,
        offset: options.offset === undefined ? 0 : checkCount(options.offset, "offset"),
        limit: options.limit === undefined ? Infinity : checkCount(options.limit, "limit"),
        hidden,
        pageSize,
        fail: (shardId, pool, error) => this.#calls.shardError(shardId, pool, error),
        signal,
        split,
        concurrent: this.#source.remote === true,
      },
    ];
  }

  /**
   * Where to split a shard's statement into rowid runs (see `split.ts`): nowhere unless its
   * plan shows `reason` (asked once per SQL text) and the shard's table is a rowid table big
   * enough. Any failure here means no split: the statement itself reports it.
   */
  async #splitCuts(
    conn: PooledConnection,
    table: string,
    statement: { sql: string; params: Params },
    reason: SplitReason,
  ): Promise<readonly number[]> {
    try {
      const key = `${reason}\n${statement.sql}`;
      let shows = this.#plans.get(key);
      if (shows === undefined) {
        shows = await needsSplit(conn, statement.sql, statement.params, reason);
        if (this.#plans.size < 1024) this.#plans.set(key, shows);
      }
      return shows ? await rowidCuts(conn, table) : [];
    } catch {
      return [];
    }
  }

  async #routeSelect(table: string, options: SelectRouteOptions): Promise<Row[]> {
    const signal = signalOf(options);
    const entering = this.#calls.enter(signal, table);
    if (entering !== undefined) await entering;
    try {
      const readFrom = checkReadFrom(options);
      const fast = this.#keyOnlySelect(table, options);
      if (fast !== undefined) {
        const { shardId, sql, key } = fast;
        return await this.#calls.onShardRead(shardId, (c) => c.all(sql, [key]), signal, readFrom);
      }
      const { shards, where } = this.#target(table, options);
      if (shards.length === 1) {
        const statement = buildSelect(table, { ...options, where }, this.#checkText);
        return await this.#calls.onShardRead(
          shards[0] as number,
          (c) => c.all(statement.sql, statement.params),
          signal,
          readFrom,
        );
      }
      // Read a page at a time, merged in slices: a big select never holds the event loop.
      return await collectShards(
        ...this.#scan(table, shards, where, options, SELECT_PAGE_SIZE, signal),
      );
    } finally {
      this.#source.leave();
    }
  }

  /** The hot case `select(table, { key })`: its SQL is built once per table. */
  #keyOnlySelect(
    table: string,
    options: SelectRouteOptions,
  ): { shardId: number; sql: string; key: ShardKey } | undefined {
    if (options === null || typeof options !== "object" || options.key === undefined) {
      return undefined;
    }
    for (const name in options) if (name !== "key") return undefined;
    const column = this.#source.getShardKeyColumn(table);
    if (column === undefined) return undefined;
    let sql = this.#keySelectSql.get(table);
    if (sql === undefined) {
      sql = buildSelect(table, { where: { [whereKeyOf(column)]: 0 } }).sql;
      if (this.#keySelectSql.size < 1024) this.#keySelectSql.set(table, sql);
    }
    const key = this.#stored(table, checkKeyOption(options.key));
    return { shardId: this.#shardOf(key), sql, key };
  }

  #checkWrite(options: WriteRouteOptions, verb: string): void {
    if (options === null || typeof options !== "object") {
      throw new InvalidQueryError("options", `expected an object, got ${describeKey(options)}`);
    }
    const hasWhere = options.where !== undefined && Object.keys(options.where).length > 0;
    if (!Object.hasOwn(options, "key") && !hasWhere && options.allShards !== true) {
      throw new InvalidQueryError(
        "where",
        `${verb} with neither key nor where would change every row of every shard; ` +
          `pass { allShards: true } if that is what you want`,
      );
    }
  }

  /**
   * Updates matching rows; with `returning`, resolves to the updated rows' columns (merged
   * over shards, after every shard committed).
   */
  routeUpdate(
    table: string,
    changes: Readonly<Record<string, SqlInput>>,
    options: WriteRouteOptions & ReturningOption,
  ): Promise<Row[]>;
  /** Updates matching rows; returns the rows changed over all shards touched. */
  routeUpdate(
    table: string,
    changes: Readonly<Record<string, SqlInput>>,
    options?: WriteRouteOptions & NoReturning,
  ): Promise<number>;
  /** Updates matching rows: the rows with `returning`, else their count. */
  routeUpdate(
    table: string,
    changes: Readonly<Record<string, SqlInput>>,
    options?: WriteRouteOptions,
  ): Promise<number | Row[]>;
  async routeUpdate(
    table: string,
    changes: Readonly<Record<string, SqlInput>>,
    options: WriteRouteOptions = {},
  ): Promise<number | Row[]> {
    const signal = signalOf(options);
    const entering = this.#calls.enter(signal, table);
    if (entering !== undefined) await entering;
    try {
      this.#checkWrite(options, "update");
      const returning = options.returning === undefined
        ? undefined
        : returningClause(options.returning);
      const column = this.#source.getShardKeyColumn(table);
      if (
        column !== undefined && typeof changes === "object" && changes !== null && column in changes
      ) {
        throw new InvalidQueryError(
          "changes",
          `${column} is the shard key of ${table}; changing it would leave the row on the ` +
            `wrong shard (delete and insert it instead)`,
        );
      }
      const { shards, where } = this.#target(table, options);
      const statement = buildUpdate(table, changes, where, this.#checkText);
      const op: BatchOp = { op: "update", changes, where };
      return await this.#writeEach(table, shards, statement, op, returning, signal);
    } finally {
      this.#source.leave();
    }
  }

  /**
   * Runs one UPDATE or DELETE on `shards`: on one shard as it is; on several, all or
   * nothing, also across a crash (`writeAtomically`, with `op` as each shard's redo).
   * Returns the rows changed over all shards or, with `returning`, the rows the
   * statements returned, once every shard has committed.
   */
  async #writeEach(
    table: string,
    shards: readonly number[],
    statement: { sql: string; params: SqlValue[] },
    op: BatchOp,
    returning: ReturningClause | undefined,
    signal: AbortSignal | undefined,
  ): Promise<number | Row[]> {
    const { params } = statement;
    const sql = returning === undefined ? statement.sql : statement.sql + returning.sql;
    // A shard's rows; a second write (after a failed COMMIT) replaces the first one's.
    const returned: Row[][] = shards.map(() => []);
    const write = async (conn: PooledConnection, i: number): Promise<number> => {
      if (returning === undefined) return (await conn.run(sql, params)).changes;
      return (returned[i] = await conn.all(sql, params)).length;
    };
    try {
      if (shards.length === 1) {
        const changes = await this.#calls.onShardWrite(
          shards[0] as number,
          (c) => write(c, 0),
          signal,
        );
        return returning === undefined ? changes : returned[0] as Row[];
      }
      const changes = await writeAtomically(
        this.#source,
        this.#ledger,
        table,
        shards.map((shardId, i) => ({
          shardId,
          weight: 0,
          write: (conn) => write(conn, i),
          part: () => ({ part: { shard: shardId, ops: [op] }, special: true }),
        })),
        signal,
      );
      return returning === undefined ? changes : returned.flat();
    } catch (error) {
      throw returningError(error, table, returning) ?? error;
    }
  }

  /**
   * Deletes matching rows; with `returning`, resolves to the deleted rows' columns (merged
   * over shards, after every shard committed).
   */
  routeDelete(table: string, options: WriteRouteOptions & ReturningOption): Promise<Row[]>;
  /** Deletes matching rows; returns the rows deleted over all shards touched. */
  routeDelete(table: string, options?: WriteRouteOptions & NoReturning): Promise<number>;
  /** Deletes matching rows: the rows with `returning`, else their count. */
  routeDelete(table: string, options?: WriteRouteOptions): Promise<number | Row[]>;
  async routeDelete(table: string, options: WriteRouteOptions = {}): Promise<number | Row[]> {
    const signal = signalOf(options);
    const entering = this.#calls.enter(signal, table);
    if (entering !== undefined) await entering;
    try {
      this.#checkWrite(options, "delete");
      const returning = options.returning === undefined
        ? undefined
        : returningClause(options.returning);
      const { shards, where } = this.#target(table, options);
      const statement = buildDelete(table, where, this.#checkText);
      return await this.#writeEach(
        table,
        shards,
        statement,
        { op: "delete", where },
        returning,
        signal,
      );
    } finally {
      this.#source.leave();
    }
  }

  /**
   * Computes COUNT/SUM/AVG/MIN/MAX over every shard (or the key's), combining partials
   * exactly: counts and sums add, AVG is total SUM / total COUNT, MIN/MAX compare.
   * Returns the values keyed by each expression as given.
   */
  async routeAggregate(
    table: string,
    expressions: string | readonly string[],
    options: ReadRouteOptions = {},
  ): Promise<Record<string, SqlValue>> {
    const signal = signalOf(options);
    const entering = this.#calls.enter(signal, table);
    if (entering !== undefined) await entering;
    try {
      const list = typeof expressions === "string" ? [expressions] : [...expressions];
      const parsed = list.map((e) => parseAggregate(e));
      const { shards, where } = this.#target(table, options);
      const statement = buildPartialAggregate(table, parsed, where, this.#checkText);
      // The shards' statements would run back to back (a synchronous driver answers at
      // once): they take turns in one time slice, and a shard whose statement scans the
      // whole table is read as rowid ranges, one partial each, combined like shards'.
      const slice = new TimeSlice();
      const split = this.#source.offThread !== true;
      const perShard = await this.#calls.onShards(
        shards,
        async (c) => {
          await slice.maybePause();
          const cuts = split ? await this.#splitCuts(c, table, statement, "scan") : [];
          if (cuts.length === 0) return [(await c.get(statement.sql, statement.params)) ?? {}];
          return await readRanges(c, cuts, slice, (from, to) => {
            const part = buildPartialAggregate(table, parsed, where, this.#checkText, { from, to });
            return c.get(part.sql, part.params).then((row) => row ?? {});
          });
        },
        signal,
        checkReadFrom(options),
      );
      const partials = perShard.flat();
      const result: Record<string, SqlValue> = {};
      parsed.forEach((aggregate, i) => {
        result[list[i] as string] = combineAggregate(aggregate, partials, `a${i}`);
      });
      return result;
    } finally {
      this.#source.leave();
    }
  }

  /**
   * COUNT/SUM/AVG/MIN/MAX per group of `groupBy` values over every shard (or `key`'s):
   * one row per group, ordered by the group values, holding the group columns and each
   * expression keyed as given. Groups from different shards are merged exactly.
   */
  async routeAggregateBy(
    table: string,
    groupBy: string | readonly string[],
    expressions: string | readonly string[],
    options: ReadRouteOptions = {},
  ): Promise<Row[]> {
    const signal = signalOf(options);
    const entering = this.#calls.enter(signal, table);
    if (entering !== undefined) await entering;
    try {
      const columns = typeof groupBy === "string" ? [groupBy] : [...groupBy];
      const list = typeof expressions === "string" ? [expressions] : [...expressions];
      const parsed = list.map((e) => parseAggregate(e));
      const { shards, where } = this.#target(table, options);
      const statement = buildGroupedAggregate(table, columns, parsed, where, this.#checkText);
      // Each shard sorts its groups by key (BINARY, as they merge here); the shards' pages
      // merge k-way, and equal keys combine a slice at a time.
      const readFrom = checkReadFrom(options);
      const order = ` ORDER BY ${columns.map((_, j) => `"g${j}" COLLATE BINARY`).join(", ")}`;
      const sortedSql = { sql: statement.sql + order, params: statement.params };
      // A shard whose grouping SQLite would do in one step (a sort of every row) runs as
      // rowid ranges grouped one at a time; their groups merge and combine as shards' do.
      const split: SplitPlan | undefined = this.#source.remote === true ? undefined : {
        cuts: (conn) => this.#splitCuts(conn, table, sortedSql, "sort"),
        run: (from, to) => {
          const part = buildGroupedAggregate(table, columns, parsed, where, this.#checkText, {
            from,
            to,
          });
          return { sql: part.sql + order, params: part.params };
        },
      };
      const sorted = await collectShards(
        shards.map((shardId) => ({ shardId, pool: () => this.#calls.readPool(shardId, readFrom) })),
        {
          sql: sortedSql.sql,
          params: statement.params,
          split,
          terms: columns.map((_, j) => ({ column: `g${j}`, direction: "asc" as const })),
          offset: 0,
          limit: Infinity,
          hidden: [],
          pageSize: SELECT_PAGE_SIZE,
          fail: (shardId, pool, error) => this.#calls.shardError(shardId, pool, error),
          signal,
          concurrent: this.#source.remote === true,
        },
      );
      const groups: Row[] = [];
      const slice = new TimeSlice();
      for (let at = 0; at < sorted.length;) {
        at = combineSortedGroups(columns, parsed, list, sorted, at, groups, 2_048);
        await slice.maybePause();
      }
      return groups;
    } finally {
      this.#source.leave();
    }
  }

  /** Runs raw SQL on the shard of `key` and returns its rows. */
  async routeQuery(
    key: ShardKey,
    sql: string,
    params?: Params,
    options?: AbortOption & ReadFromOption,
  ): Promise<Row[]> {
    const signal = signalOf(options);
    const entering = this.#calls.enter(signal);
    if (entering !== undefined) await entering;
    try {
      if (typeof sql !== "string") throw new InvalidQueryError("sql", "expected a string");
      assertSingleStatement(sql, "manager.query()");
      const shardId = this.#shardOf(storedKey(checkKeyOption(key), undefined));
      const readFrom = checkReadFrom(options);
      if (this.#source.guardWrite === undefined || READ_ONLY.test(sql)) {
        return await this.#calls.onShardRead(shardId, (c) => c.all(sql, params), signal, readFrom);
      }
      return await this.#calls.onShardWrite(shardId, (c) => c.all(sql, params), signal);
    } finally {
      this.#source.leave();
    }
  }

  /**
   * Runs raw SQL on every shard and merges the rows (concatenated in shard order, or
   * merged by `orderBy`). Per-shard results are not combined further: GROUP BY,
   * DISTINCT and aggregates come back once per shard — use `routeAggregate` for those.
   */
  async routeQueryAll(sql: string, params?: Params, options: QueryAllOptions = {}): Promise<Row[]> {
    const signal = signalOf(options);
    const entering = this.#calls.enter(signal);
    if (entering !== undefined) await entering;
    try {
      if (typeof sql !== "string") throw new InvalidQueryError("sql", "expected a string");
      // Before the wrapping below, which would hide a second statement inside SELECT * FROM (...)
      assertSingleStatement(sql, "manager.queryAll()");
      const terms = options.orderBy === undefined ? [] : resolveOrderBy(options.orderBy);
      const limit = shardLimit(options);
      let perShard = sql;
      const extra: SqlValue[] = [];
      if (terms.length > 0 || limit !== undefined) {
        // Wrap the statement so each shard sorts and limits before the merge.
        // Up to the statement's own `;` (dropped); the newline closes a trailing -- comment.
        const end = statementEnd(sql);
        const body = sql.slice(0, sql[end - 1] === ";" ? end - 1 : end);
        perShard = `SELECT * FROM (${body}\n)`;
        if (terms.length > 0) {
          perShard += ` ORDER BY ${
            terms.map((t) => `${quoteIdentifier(t.column, "column")} ${t.direction.toUpperCase()}`)
              .join(", ")
          }`;
        }
        if (limit !== undefined) {
          perShard += " LIMIT ?";
          extra.push(limit);
        }
      }
      const bound: Params | undefined = extra.length === 0
        ? params
        : Array.isArray(params) || params === undefined
        ? [...((params ?? []) as readonly SqlInput[]), ...extra]
        : (() => {
          throw new InvalidQueryError(
            "params",
            "named parameters cannot be combined with limit; use positional parameters",
          );
        })();
      const lists = await this.#calls.onShards(
        this.#allShards(),
        (c) => c.all(perShard, bound),
        signal,
        checkReadFrom(options),
      );
      if (terms.length > 0) {
        return mergeSorted(lists, terms, { limit: options.limit, offset: options.offset });
      }
      const offset = options.offset ?? 0;
      return lists.flat().slice(
        offset,
        options.limit === undefined ? undefined : offset + options.limit,
      );
    } finally {
      this.#source.leave();
    }
  }

  /** Runs `fn` in a transaction on the shard of `key` (ACID on that one shard). */
  async routeTransaction<T>(
    key: ShardKey,
    fn: (conn: PooledConnection) => T | Promise<T>,
    options?: AbortOption,
  ): Promise<T> {
    const signal = signalOf(options);
    const entering = this.#calls.enter(signal);
    if (entering !== undefined) await entering;
    try {
      const shardId = this.#shardOf(storedKey(checkKeyOption(key), undefined));
      return await this.#calls.onShardWrite(shardId, (c) => c.transaction(fn), signal).catch(
        (error) => {
          // A transaction its server cut is lost, never retried: say so as such.
          if (
            error instanceof ShardUnavailableError && error.cause instanceof ConnectionBrokenError
          ) {
            throw error.cause;
          }
          throw error;
        },
      );
    } finally {
      this.#source.leave();
    }
  }

  /** Runs `fn` with a lease on every shard concurrently and returns the results in shard order. */
  async routeEachShard<T>(
    fn: (conn: PooledConnection, shardId: number) => Promise<T>,
  ): Promise<T[]> {
    const admitted = admit(this.#source);
    if (admitted !== undefined) await admitted;
    try {
      return await this.#calls.onShards(this.#allShards(), fn);
    } finally {
      this.#source.leave();
    }
  }
}

/** A statement that only reads (`query` runs it without the write check). */
const READ_ONLY = /^\s*(?:SELECT|VALUES|EXPLAIN)\b/i;

/** The `onConflict` of an insertMany, checked with the options it needs or excludes. */
function checkConflictMode(
  options: Omit<InsertManyOptions, "keys">,
): "ignore" | "update" | undefined {
  if (options === null || typeof options !== "object") {
    throw new InvalidQueryError("options", `expected an object, got ${describeKey(options)}`);
  }
  const mode = options.onConflict;
  if (mode !== undefined && mode !== "ignore" && mode !== "update") {
    throw new InvalidQueryError(
      "onConflict",
      `expected "ignore" or "update", got ${describeKey(mode)}`,
    );
  }
  if (mode === undefined && (options.conflict !== undefined || options.update !== undefined)) {
    throw new InvalidQueryError(
      options.conflict !== undefined ? "conflict" : "update",
      `it applies only with onConflict: "ignore" or "update"`,
    );
  }
  if (mode === "ignore" && options.update !== undefined) {
    throw new InvalidQueryError("update", `onConflict "ignore" updates nothing; use "update"`);
  }
  return mode;
}

/** A `key` given as an option or argument: present but undefined or null is refused. */
function checkKeyOption(key: unknown): unknown {
  if (key === undefined || key === null) {
    throw new InvalidQueryError(
      "key",
      `key is ${key}: a call given a key reaches only that key's shard, so a missing value ` +
        `would silently mean something else. Pass the shard key, or leave the key option ` +
        `out to reach every shard`,
    );
  }
  return key;
}
