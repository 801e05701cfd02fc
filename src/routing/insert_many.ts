/**
 * The write half of `insertMany`: rows already validated and routed, grouped per shard
 * into runs packed for multi-row INSERTs, written in one transaction per shard and, over
 * several shards, committed atomically (see `batches.ts`).
 *
 * @module
 */

import { BatchPendingError, ShardOperationError } from "../errors.ts";
import type { PooledConnection } from "../pool/connection.ts";
import type { ConnectionPool } from "../pool/pool.ts";
import type { SqlInput, SqlValue } from "../types.ts";
import {
  applyPart,
  type BatchLedger,
  type BatchPart,
  CREATE_BATCH_TABLE,
  deleteBatchRows,
  encodeBatch,
  INSERT_BATCH_ROW,
  needsTag,
} from "./batches.ts";
import { multiRowInsert, rowsPerInsert, toSqlValue } from "./sql.ts";

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
  /** Whether a value needs a tag in a redo record (a bigint, bytes, an infinity). */
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
      if (needsTag(value)) this.special = true;
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

/** Each shard's runs, indexed by shard id. */
export type ShardRuns = (InsertRun[] | undefined)[];

/**
 * Appends `row` (validated values converted on the way) to `shardId`'s runs; a new run
 * starts when the statement changes or the last run is full.
 */
export function addRow(
  runs: ShardRuns,
  shardId: number,
  sql: string,
  columns: readonly string[],
  row: Readonly<Record<string, SqlInput>>,
): void {
  let list = runs[shardId];
  if (list === undefined) runs[shardId] = list = [];
  let run = list[list.length - 1];
  if (run === undefined || run.sql !== sql || run.full) {
    run = new InsertRun(sql, columns);
    list.push(run);
  }
  run.add(row, columns);
}

/**
 * Writes `runs` (one transaction per shard) and commits them: the coordinator first when
 * there are several shards. Throws `ShardOperationError` naming the shard when anything
 * fails before the commit point (every shard rolled back), `BatchPendingError` when a
 * shard cannot commit its part after it.
 */
export async function writeRuns(
  source: { getPool(shardId: number): ConnectionPool },
  ledger: BatchLedger,
  table: string,
  runs: ShardRuns,
): Promise<void> {
  const shardIds: number[] = [];
  runs.forEach((list, shardId) => {
    if (list !== undefined) shardIds.push(shardId);
  });
  if (shardIds.length === 0) return; // no rows: nothing to write
  const batch = shardIds.length > 1 ? prepareBatch(table, runs, shardIds) : undefined;
  // Commit order: the coordinator first; its COMMIT is the batch's commit point.
  const commitOrder = shardIds.map((_, i) => i);
  if (batch !== undefined) {
    const rank = (i: number) => (shardIds[i] === batch.coordinator ? -1 : i);
    commitOrder.sort((a, b) => rank(a) - rank(b));
  }
  // Cleanup owed by earlier batches rides along in these transactions.
  const owed = shardIds.map((shardId) => ledger.owed(shardId));
  const leases: PooledConnection[] = [];
  const pools: ConnectionPool[] = [];
  try {
    // Leases, then transactions, are taken one at a time in ascending shard order, as
    // every writer holding several shards does (backup's pointInTime too): two such
    // writers can never each hold what the other waits for.
    for (const shardId of shardIds) {
      const pool = source.getPool(shardId);
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
    ledger.deleted(shardIds[head] as number, owed[head] as string[]);
    // Only a batch has more shards: past its commit point, every part must land.
    let pending: BatchPendingError | undefined;
    for (const i of commitOrder.slice(1)) {
      const conn = leases[i] as PooledConnection;
      const shardId = shardIds[i] as number;
      try {
        await conn.commit();
        ledger.deleted(shardId, owed[i] as string[]);
      } catch {
        const failure = await landPart(conn, table, batch as PreparedBatch, shardId);
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
    if (batch !== undefined) ledger.finished(batch.id, batch.coordinator, batch.others);
  } catch (error) {
    for (const conn of leases) await conn.rollback().catch(() => {});
    throw error;
  } finally {
    for (let i = 0; i < leases.length; i++) {
      await (pools[i] as ConnectionPool).returnConnection(leases[i] as PooledConnection);
    }
  }
}

/**
 * A shard's COMMIT failed past the batch's commit point: tries its part once more, in a
 * new transaction, from the rows in memory. Returns the error if that fails too (then
 * the coordinator's redo record applies it when the directory is next opened).
 */
async function landPart(
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
function prepareBatch(
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
