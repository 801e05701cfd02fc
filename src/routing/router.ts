/**
 * `Router`: sends each operation to the shard its key maps to, and runs cross-shard
 * reads on every shard concurrently, merging the answers as one database would.
 *
 * @module
 */

import PQueue from "p-queue";
import {
  BatchPendingError,
  InvalidQueryError,
  InvalidShardKeyError,
  ShardliteError,
  ShardOperationError,
} from "../errors.ts";
import type { ConnectionPool } from "../pool/pool.ts";
import type { PooledConnection } from "../pool/connection.ts";
import type { Params, Row, RunResult, SqlInput, SqlValue } from "../types.ts";
import { describeKey, normalizeKey, type ShardKey } from "./keys.ts";
import {
  applyPart,
  BatchLedger,
  type BatchPart,
  CREATE_BATCH_TABLE,
  deleteBatchRows,
  encodeBatch,
  INSERT_BATCH_ROW,
} from "./batches.ts";
import {
  buildGroupedAggregate,
  buildPartialAggregate,
  combineAggregate,
  combineGroups,
  mergeSorted,
  shardLimit,
} from "./merge.ts";
import {
  buildDelete,
  buildInsert,
  buildSelect,
  buildUpdate,
  multiRowInsert,
  type OrderBy,
  parseAggregate,
  quoteIdentifier,
  resolveOrderBy,
  rowsPerInsert,
  toSqlValue,
  validateIdentifier,
  type Where,
} from "./sql.ts";
import type { ShardingStrategy } from "./strategies.ts";

/** What a router needs from the layer that owns the shards (a `ShardManager`). */
export interface ShardSource {
  /** Resolves when the shard map is loaded; rejects when the source is closed. */
  ready(): Promise<void>;
  /** True once `ready()` has resolved, no reshard runs and the source is open. */
  readonly isReady: boolean;
  /** An operation starts (only while `isReady`); a reshard waits for all to leave. */
  enter(): void;
  /** An operation ends. */
  leave(): void;
  /** The pool of shard `shardId`. */
  getPool(shardId: number): ConnectionPool;
  /** The shard-key column recorded for `table`, if any. */
  getShardKeyColumn(table: string): string | undefined;
  /** How many shards run concurrently in a cross-shard operation. */
  readonly maxConcurrentShards: number;
}

/** Options of a routed read, update or delete. */
export interface RouteOptions {
  /** Filter (equality AND-ed; `null` is IS NULL; operator objects allowed). */
  where?: Where | undefined;
  /**
   * Route to this key's shard. When the table has a shard-key column, only rows whose
   * shard key equals `key` are affected.
   */
  key?: ShardKey | undefined;
}

/** Options of {@link Router.routeSelect}. */
export interface SelectRouteOptions extends RouteOptions {
  /** Columns to return; all when absent. */
  columns?: readonly string[] | undefined;
  /** Sort order: a column, or `{ column, direction }` terms. Merged k-way across shards. */
  orderBy?: OrderBy | undefined;
  /** At most this many rows of the merged result. */
  limit?: number | undefined;
  /** Skip this many rows of the merged result. */
  offset?: number | undefined;
}

/** Options of an update or delete: `allShards: true` is needed to touch every row. */
export interface WriteRouteOptions extends RouteOptions {
  /** Allow an update/delete with neither `key` nor `where` (every row of every shard). */
  allShards?: boolean | undefined;
}

/** Options of {@link Router.routeQueryAll}. */
export interface QueryAllOptions {
  /** Sort the merged rows (each shard's rows are sorted by SQLite first). */
  orderBy?: OrderBy | undefined;
  /** At most this many merged rows. */
  limit?: number | undefined;
  /** Skip this many merged rows. */
  offset?: number | undefined;
}

function sameKey(a: ShardKey, b: ShardKey): boolean {
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    if (!(a instanceof Uint8Array && b instanceof Uint8Array) || a.length !== b.length) {
      return false;
    }
    return a.every((v, i) => v === b[i]);
  }
  if (typeof a === "bigint" || typeof b === "bigint") {
    return (typeof a === "number" || typeof a === "bigint") &&
      (typeof b === "number" || typeof b === "bigint") && BigInt(a) === BigInt(b);
  }
  return a === b;
}

// Rows a run holds at most: one runMany call, then the event loop gets a turn.
const ROWS_PER_RUN = 1_000;

/** A cross-shard batch ready to write. */
interface PreparedBatch {
  id: string;
  coordinator: number;
  others: number[];
  parts: BatchPart[];
  payload: Uint8Array;
}

/** Rows bound for one shard that share one INSERT, packed for multi-row statements. */
class InsertRun {
  readonly sql: string;
  readonly columns: readonly string[];
  readonly width: number;
  /** Whether a value is a bigint or bytes (they need tagging in a redo record). */
  special = false;
  /** Rows per statement; 1 when rows cannot be packed (then `multiSql` is `sql`). */
  readonly perStatement: number;
  /** Full multi-row statements' values, ready for `runMany(multiSql, chunks)`. */
  readonly chunks: SqlValue[][] = [];
  readonly #capacity: number;
  #pending: SqlValue[];
  #pendingRows = 0;
  #rows = 0;

  constructor(sql: string, columns: readonly string[]) {
    const width = columns.length;
    this.sql = sql;
    this.columns = columns;
    this.width = width;
    this.perStatement = rowsPerInsert(width);
    this.#capacity = this.perStatement * Math.max(1, Math.floor(ROWS_PER_RUN / this.perStatement));
    this.#pending = new Array<SqlValue>(width * this.perStatement);
  }

  get full(): boolean {
    return this.#rows >= this.#capacity;
  }

  /** Rows added. */
  get rows(): number {
    return this.#rows;
  }

  /** `INSERT ... VALUES (?, ?), (?, ?), ...` with {@link perStatement} tuples. */
  get multiSql(): string {
    return multiRowInsert(this.sql, this.perStatement);
  }

  /** Converts and appends one row's values (throws `InvalidValueError` on a bad one). */
  add(row: Readonly<Record<string, SqlInput>>, columns: readonly string[]): void {
    const pending = this.#pending;
    let at = this.#pendingRows * this.width;
    for (let c = 0; c < columns.length; c++) {
      const name = columns[c] as string;
      const value = toSqlValue(row[name], name);
      if (typeof value === "object" && value !== null || typeof value === "bigint") {
        this.special = true;
      }
      pending[at++] = value;
    }
    this.#rows++;
    if (++this.#pendingRows === this.perStatement) {
      this.chunks.push(pending);
      this.#pending = new Array<SqlValue>(this.width * this.perStatement);
      this.#pendingRows = 0;
    }
  }

  /** Every row's values, for a redo record: the full statements', then the rest. */
  values(): SqlValue[][] {
    if (this.#pendingRows === 0) return this.chunks;
    return [...this.chunks, this.#pending.slice(0, this.#pendingRows * this.width)];
  }

  /** The rows that did not fill a multi-row statement, one parameter list each. */
  rest(): SqlValue[][] {
    const rest = new Array<SqlValue[]>(this.#pendingRows);
    for (let r = 0; r < this.#pendingRows; r++) {
      rest[r] = this.#pending.slice(r * this.width, (r + 1) * this.width);
    }
    return rest;
  }
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
  #strategy: ShardingStrategy;
  readonly #queue: PQueue;
  readonly #insertSql = new Map<string, string>();
  readonly #keySelectSql = new Map<string, string>();
  readonly #ledger = new BatchLedger();

  /** Creates a router over `source`'s shards using `strategy`. */
  constructor(source: ShardSource, strategy: ShardingStrategy) {
    this.#source = source;
    this.#strategy = strategy;
    // p-queue bounds how many shards one process works on at once.
    this.#queue = new PQueue({ concurrency: source.maxConcurrentShards });
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
   * Admits an operation: waits while the source is not ready (opening, resharding), then
   * counts it in flight in the same tick it saw the source ready. Pair with leave().
   */
  #admit(): Promise<void> | undefined {
    if (this.#source.isReady) {
      this.#source.enter();
      return undefined;
    }
    return (async () => {
      while (!this.#source.isReady) await this.#source.ready();
      this.#source.enter();
    })();
  }

  /** The shard of `key`. Throws InvalidShardKeyError for a key of an unusable type. */
  getShardId(key: ShardKey): number {
    return this.strategy.getShardId(key);
  }

  async #onShard<T>(shardId: number, fn: (conn: PooledConnection) => Promise<T>): Promise<T> {
    const pool = this.#source.getPool(shardId);
    try {
      return await pool.withConnection(fn);
    } catch (error) {
      if (error instanceof ShardOperationError) throw error;
      // The caller's own errors (and bad input) pass through; the shard's are wrapped.
      if (!(error instanceof ShardliteError) || !("path" in error)) throw error;
      throw new ShardOperationError(shardId, pool.path, error);
    }
  }

  /** Runs `fn` on every listed shard concurrently; any failure fails the whole call. */
  async #onShards<T>(
    shardIds: readonly number[],
    fn: (conn: PooledConnection, shardId: number) => Promise<T>,
  ): Promise<T[]> {
    const settled = await Promise.allSettled(
      shardIds.map((id) => this.#queue.add(() => this.#onShard(id, (conn) => fn(conn, id)))),
    );
    const results: T[] = [];
    for (const outcome of settled) {
      // No partial result is returned as if complete: the first failing shard is raised.
      if (outcome.status === "rejected") throw outcome.reason;
      results.push(outcome.value as T);
    }
    return results;
  }

  #allShards(): number[] {
    return this.strategy.getAllShardIds();
  }

  /** The key's shard, and the where clause with the shard-key filter added. */
  #target(table: string, options: RouteOptions): { shards: number[]; where: Where | undefined } {
    validateIdentifier(table, "table");
    if (options.key === undefined) return { shards: this.#allShards(), where: options.where };
    const key = normalizeKey(options.key);
    const shardId = this.strategy.getShardId(key);
    const column = this.#source.getShardKeyColumn(table);
    if (column === undefined) return { shards: [shardId], where: options.where };
    if (options.where !== undefined && column in options.where) {
      throw new InvalidQueryError(
        "where",
        `both key and where.${column} given; pass the shard key once, as key`,
      );
    }
    return { shards: [shardId], where: { ...options.where, [column]: key } };
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
      params[i] = toSqlValue(row[column], column);
    }
    return { sql, params, columns };
  }

  #keyForRow(
    table: string,
    row: Readonly<Record<string, SqlInput>>,
    key?: ShardKey,
    column: string | undefined = this.#source.getShardKeyColumn(table),
  ): ShardKey {
    if (typeof row !== "object" || row === null || Array.isArray(row)) {
      throw new InvalidQueryError("row", `expected an object of column values`);
    }
    const fromRow = column !== undefined && column in row ? row[column] : undefined;
    if (key === undefined) {
      if (fromRow === undefined || fromRow === null || typeof fromRow === "boolean") {
        throw new InvalidShardKeyError(
          describeKey(fromRow),
          column === undefined
            ? `table ${table} has no shard-key column; pass the key as the third argument`
            : `the row has no usable ${column} (the shard key); set it or pass the key`,
        );
      }
      return normalizeKey(fromRow);
    }
    const normalized = normalizeKey(key);
    if (fromRow !== undefined && fromRow !== null && typeof fromRow !== "boolean") {
      if (!sameKey(normalizeKey(fromRow), normalized)) {
        throw new InvalidShardKeyError(
          describeKey(key),
          `it differs from the row's ${column} (${describeKey(fromRow)}); the row would ` +
            `land on the wrong shard`,
        );
      }
    }
    return normalized;
  }

  /** Inserts one row on its key's shard (the key may come from the shard-key column). */
  async routeInsert(
    table: string,
    row: Readonly<Record<string, SqlInput>>,
    key?: ShardKey,
  ): Promise<RunResult> {
    const admitted = this.#admit();
    if (admitted !== undefined) await admitted;
    try {
      validateIdentifier(table, "table");
      const shardId = this.strategy.getShardId(this.#keyForRow(table, row, key));
      const { sql, params } = this.#insertStatement(table, row);
      return await this.#onShard(shardId, (conn) => conn.run(sql, params));
    } finally {
      this.#source.leave();
    }
  }

  /**
   * Inserts rows grouped per shard, one transaction per shard, all or nothing across
   * shards (also across a crash; see `ShardManager.insertMany` and `batches.ts`).
   * Returns the number of rows inserted.
   */
  async routeInsertMany(
    table: string,
    rows: readonly Readonly<Record<string, SqlInput>>[],
    keys?: readonly ShardKey[],
  ): Promise<number> {
    const admitted = this.#admit();
    if (admitted !== undefined) await admitted;
    try {
      validateIdentifier(table, "table");
      if (!Array.isArray(rows)) throw new InvalidQueryError("rows", "expected an array of rows");
      if (keys !== undefined && keys.length !== rows.length) {
        throw new InvalidQueryError("keys", `expected ${rows.length} keys, got ${keys.length}`);
      }
      // Validate and route everything before anything is written. Each shard gets runs of
      // consecutive rows sharing one column list. A run packs its rows into multi-row
      // INSERTs (`VALUES (...), (...), ...`), which cost about half as much per row as one
      // statement a row; the few rows left over go one at a time.
      const runs: (InsertRun[] | undefined)[] = [];
      const column = this.#source.getShardKeyColumn(table);
      const strategy = this.#strategy;
      let columns: string[] | undefined;
      let sql = "";
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i] as Readonly<Record<string, SqlInput>>;
        const given = keys?.[i];
        // The common case, a safe-integer shard key in the row, skips the general checks.
        const fromRow = given === undefined && column !== undefined && typeof row === "object" &&
            row !== null
          ? row[column]
          : undefined;
        const key = typeof fromRow === "number" && Number.isSafeInteger(fromRow)
          ? (fromRow === 0 ? 0 : fromRow)
          : this.#keyForRow(table, row, given, column);
        const shardId = strategy.getShardId(key);
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
        }
        let list = runs[shardId];
        if (list === undefined) runs[shardId] = list = [];
        let run = list[list.length - 1];
        if (run === undefined || run.sql !== sql || run.full) {
          run = new InsertRun(sql, columns as string[]);
          list.push(run);
        }
        run.add(row, columns as string[]);
      }
      const shardIds: number[] = [];
      runs.forEach((list, shardId) => {
        if (list !== undefined) shardIds.push(shardId);
      });
      const batch = shardIds.length > 1 ? this.#prepareBatch(table, runs, shardIds) : undefined;
      // Commit order: the coordinator first; its COMMIT is the batch's commit point.
      const commitOrder = shardIds.map((_, i) => i);
      if (batch !== undefined) {
        const rank = (i: number) => (shardIds[i] === batch.coordinator ? -1 : i);
        commitOrder.sort((a, b) => rank(a) - rank(b));
      }
      // Cleanup owed by earlier batches rides along in these transactions.
      const owed = shardIds.map((shardId) => this.#ledger.owed(shardId));
      const leases: PooledConnection[] = [];
      const pools: ConnectionPool[] = [];
      try {
        // Leases, then transactions, are taken one at a time in ascending shard order, as
        // every writer holding several shards does (backup's pointInTime too): two such
        // writers can never each hold what the other waits for.
        for (const shardId of shardIds) {
          const pool = this.#source.getPool(shardId);
          const conn = await pool.getConnection().catch((error) => {
            throw new ShardOperationError(shardId, pool.path, error);
          });
          pools.push(pool);
          leases.push(conn);
        }
        for (const [i, conn] of leases.entries()) {
          await conn.exec("BEGIN IMMEDIATE").catch((error) => {
            throw new ShardOperationError(shardIds[i] as number, conn.path, error);
          });
        }
        await Promise.all(shardIds.map(async (shardId, i) => {
          const conn = leases[i] as PooledConnection;
          const debts = owed[i] as string[];
          try {
            if (batch !== undefined || debts.length > 0) await conn.exec(CREATE_BATCH_TABLE);
            if (debts.length > 0) await deleteBatchRows(conn, debts);
            // A few calls per run; the event loop gets a turn between runs.
            for (const run of runs[shardId] ?? []) {
              if (run.chunks.length > 0) await conn.runMany(run.multiSql, run.chunks);
              const rest = run.rest();
              if (rest.length > 0) await conn.runMany(run.sql, rest);
            }
            if (batch !== undefined) {
              await conn.run(
                INSERT_BATCH_ROW,
                shardId === batch.coordinator
                  ? [batch.id, shardId, JSON.stringify(batch.others), batch.payload]
                  : [batch.id, batch.coordinator, "[]", null],
              );
            }
          } catch (error) {
            throw new ShardOperationError(shardId, conn.path, error);
          }
        }));
        // Before the first COMMIT any failure rolls every shard back.
        const head = commitOrder[0] as number;
        const first = leases[head] as PooledConnection;
        try {
          await first.commit();
        } catch (error) {
          throw new ShardOperationError(shardIds[head] as number, first.path, error);
        }
        this.#ledger.deleted(shardIds[head] as number, owed[head] as string[]);
        // Only a batch has more shards: past its commit point, every part must land.
        let pending: BatchPendingError | undefined;
        for (const i of commitOrder.slice(1)) {
          const conn = leases[i] as PooledConnection;
          const shardId = shardIds[i] as number;
          try {
            await conn.commit();
            this.#ledger.deleted(shardId, owed[i] as string[]);
          } catch {
            const failure = await this.#landPart(conn, table, batch as PreparedBatch, shardId);
            if (failure !== undefined) {
              pending ??= new BatchPendingError(
                (batch as PreparedBatch).id,
                (batch as PreparedBatch).coordinator,
                shardId,
                conn.path,
                failure,
              );
            }
          }
        }
        if (pending !== undefined) throw pending;
        if (batch !== undefined) this.#ledger.finished(batch.id, batch.coordinator, batch.others);
        return rows.length;
      } catch (error) {
        for (const conn of leases) await conn.rollback().catch(() => {});
        throw error;
      } finally {
        for (let i = 0; i < leases.length; i++) {
          await (pools[i] as ConnectionPool).returnConnection(leases[i] as PooledConnection);
        }
      }
    } finally {
      this.#source.leave();
    }
  }

  /**
   * A shard's COMMIT failed past the batch's commit point: tries its part once more, in a
   * new transaction, from the rows in memory. Returns the error if that fails too (then
   * the coordinator's redo record applies it when the directory is next opened).
   */
  async #landPart(
    conn: PooledConnection,
    table: string,
    batch: PreparedBatch,
    shardId: number,
  ): Promise<unknown> {
    await conn.rollback().catch(() => {});
    const part = batch.parts.find((p) => p.shard === shardId) as BatchPart;
    return await conn.transaction(async (tx) => {
      await tx.exec(CREATE_BATCH_TABLE);
      await applyPart(tx, table, part);
      await tx.run(INSERT_BATCH_ROW, [batch.id, batch.coordinator, "[]", null]);
    }).then(() => undefined, (error: unknown) => error);
  }

  /**
   * A batch over several shards: the shard with the most rows coordinates and carries
   * the others' rows in its redo record (see `batches.ts`).
   */
  #prepareBatch(
    table: string,
    runs: readonly (InsertRun[] | undefined)[],
    shardIds: readonly number[],
  ): PreparedBatch {
    let coordinator = shardIds[0] as number;
    let most = -1;
    for (const shardId of shardIds) {
      let count = 0;
      for (const run of runs[shardId] ?? []) count += run.rows;
      if (count > most) {
        most = count;
        coordinator = shardId;
      }
    }
    const others = shardIds.filter((shardId) => shardId !== coordinator);
    let special = false;
    const parts: BatchPart[] = others.map((shard) => ({
      shard,
      runs: (runs[shard] ?? []).map((run) => {
        special ||= run.special;
        return { columns: [...run.columns], values: run.values() };
      }),
    }));
    return {
      id: crypto.randomUUID(),
      coordinator,
      others,
      parts,
      payload: encodeBatch(table, parts, special),
    };
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
  async routeSelect(table: string, options: SelectRouteOptions = {}): Promise<Row[]> {
    const admitted = this.#admit();
    if (admitted !== undefined) await admitted;
    try {
      const fast = this.#keyOnlySelect(table, options);
      if (fast !== undefined) {
        const { shardId, sql, key } = fast;
        return await this.#onShard(shardId, (c) => c.all(sql, [key]));
      }
      const { shards, where } = this.#target(table, options);
      const terms = options.orderBy === undefined ? [] : resolveOrderBy(options.orderBy);
      if (shards.length === 1) {
        const statement = buildSelect(table, { ...options, where });
        return await this.#onShard(
          shards[0] as number,
          (c) => c.all(statement.sql, statement.params),
        );
      }
      // Order columns missing from `columns` are fetched for the merge, then dropped.
      const hidden = options.columns === undefined
        ? []
        : terms.map((t) => t.column).filter((c) => !options.columns?.includes(c));
      const columns = options.columns === undefined ? undefined : [...options.columns, ...hidden];
      const perShard = buildSelect(table, {
        where,
        columns,
        orderBy: terms.length > 0 ? terms : undefined,
        limit: shardLimit(options),
      });
      const lists = await this.#onShards(shards, (c) => c.all(perShard.sql, perShard.params));
      let rows: Row[];
      if (terms.length > 0) {
        rows = mergeSorted(lists, terms, { limit: options.limit, offset: options.offset });
      } else {
        const offset = options.offset ?? 0;
        rows = lists.flat().slice(
          offset,
          options.limit === undefined ? undefined : offset + options.limit,
        );
      }
      if (hidden.length > 0) { for (const row of rows) for (const c of hidden) delete row[c]; }
      return rows;
    } finally {
      this.#source.leave();
    }
  }

  /** The hot case `select(table, { key })`: its SQL is built once per table. */
  #keyOnlySelect(
    table: string,
    options: SelectRouteOptions,
  ): { shardId: number; sql: string; key: ShardKey } | undefined {
    if (options.key === undefined) return undefined;
    for (const name in options) if (name !== "key") return undefined;
    const column = this.#source.getShardKeyColumn(table);
    if (column === undefined) return undefined;
    let sql = this.#keySelectSql.get(table);
    if (sql === undefined) {
      sql = buildSelect(table, { where: { [column]: 0 } }).sql;
      if (this.#keySelectSql.size < 1024) this.#keySelectSql.set(table, sql);
    }
    const key = normalizeKey(options.key);
    return { shardId: this.strategy.getShardId(key), sql, key };
  }

  #checkWrite(options: WriteRouteOptions, verb: string): void {
    const hasWhere = options.where !== undefined && Object.keys(options.where).length > 0;
    if (options.key === undefined && !hasWhere && options.allShards !== true) {
      throw new InvalidQueryError(
        "where",
        `${verb} with neither key nor where would change every row of every shard; ` +
          `pass { allShards: true } if that is what you want`,
      );
    }
  }

  /** Updates matching rows; returns the rows changed over all shards touched. */
  async routeUpdate(
    table: string,
    changes: Readonly<Record<string, SqlInput>>,
    options: WriteRouteOptions = {},
  ): Promise<number> {
    const admitted = this.#admit();
    if (admitted !== undefined) await admitted;
    try {
      this.#checkWrite(options, "update");
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
      const statement = buildUpdate(table, changes, where);
      const counts = await this.#onShards(shards, async (c) => {
        return (await c.run(statement.sql, statement.params)).changes;
      });
      return counts.reduce((a, b) => a + b, 0);
    } finally {
      this.#source.leave();
    }
  }

  /** Deletes matching rows; returns the rows deleted over all shards touched. */
  async routeDelete(table: string, options: WriteRouteOptions = {}): Promise<number> {
    const admitted = this.#admit();
    if (admitted !== undefined) await admitted;
    try {
      this.#checkWrite(options, "delete");
      const { shards, where } = this.#target(table, options);
      const statement = buildDelete(table, where);
      const counts = await this.#onShards(shards, async (c) => {
        return (await c.run(statement.sql, statement.params)).changes;
      });
      return counts.reduce((a, b) => a + b, 0);
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
    options: RouteOptions = {},
  ): Promise<Record<string, SqlValue>> {
    const admitted = this.#admit();
    if (admitted !== undefined) await admitted;
    try {
      const list = typeof expressions === "string" ? [expressions] : [...expressions];
      const parsed = list.map((e) => parseAggregate(e));
      const { shards, where } = this.#target(table, options);
      const statement = buildPartialAggregate(table, parsed, where);
      const partials = await this.#onShards(shards, async (c) => {
        return (await c.get(statement.sql, statement.params)) ?? {};
      });
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
    options: RouteOptions = {},
  ): Promise<Row[]> {
    const admitted = this.#admit();
    if (admitted !== undefined) await admitted;
    try {
      const columns = typeof groupBy === "string" ? [groupBy] : [...groupBy];
      const list = typeof expressions === "string" ? [expressions] : [...expressions];
      const parsed = list.map((e) => parseAggregate(e));
      const { shards, where } = this.#target(table, options);
      const statement = buildGroupedAggregate(table, columns, parsed, where);
      const lists = await this.#onShards(shards, (c) => c.all(statement.sql, statement.params));
      return combineGroups(columns, parsed, list, lists);
    } finally {
      this.#source.leave();
    }
  }

  /** Runs raw SQL on the shard of `key` and returns its rows. */
  async routeQuery(key: ShardKey, sql: string, params?: Params): Promise<Row[]> {
    const admitted = this.#admit();
    if (admitted !== undefined) await admitted;
    try {
      const shardId = this.strategy.getShardId(normalizeKey(key));
      return await this.#onShard(shardId, (c) => c.all(sql, params));
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
    const admitted = this.#admit();
    if (admitted !== undefined) await admitted;
    try {
      if (typeof sql !== "string") throw new InvalidQueryError("sql", "expected a string");
      const terms = options.orderBy === undefined ? [] : resolveOrderBy(options.orderBy);
      const limit = shardLimit(options);
      let perShard = sql;
      const extra: SqlValue[] = [];
      if (terms.length > 0 || limit !== undefined) {
        // Wrap the statement so each shard sorts and limits before the merge.
        const body = sql.trim().replace(/;\s*$/, "");
        perShard = `SELECT * FROM (${body})`;
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
      const lists = await this.#onShards(this.#allShards(), (c) => c.all(perShard, bound));
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
  ): Promise<T> {
    const admitted = this.#admit();
    if (admitted !== undefined) await admitted;
    try {
      const shardId = this.strategy.getShardId(normalizeKey(key));
      return await this.#onShard(shardId, (c) => c.transaction(fn));
    } finally {
      this.#source.leave();
    }
  }

  /** Runs `fn` with a lease on every shard concurrently and returns the results in shard order. */
  async routeEachShard<T>(
    fn: (conn: PooledConnection, shardId: number) => Promise<T>,
  ): Promise<T[]> {
    const admitted = this.#admit();
    if (admitted !== undefined) await admitted;
    try {
      return await this.#onShards(this.#allShards(), fn);
    } finally {
      this.#source.leave();
    }
  }
}
