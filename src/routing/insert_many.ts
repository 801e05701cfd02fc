/**
 * The write half of `insertMany`: rows already validated and routed, grouped per shard
 * into runs packed for multi-row INSERTs, written in one transaction per shard and, over
 * several shards, committed atomically (see `atomic.ts`).
 *
 * @module
 */

import { TimeSlice } from "../pool/yield.ts";
import type { Row, SqlInput, SqlValue } from "../types.ts";
import { type AtomicSource, type ShardWrite, writeAtomically } from "./atomic.ts";
import { type BatchLedger, type BatchRun, needsTag } from "./batches.ts";
import { multiRowInsert, rowsPerInsert } from "../sql/dml.ts";
import type { OnConflict } from "../sql/upsert.ts";
import { type TextCheck, toSqlValue } from "../sql/values.ts";

/** What a run's INSERT does on a uniqueness conflict: as a redo record stores it, and as SQL. */
export interface RunConflict {
  /** The conflict target and update, for the redo record. */
  readonly spec: OnConflict;
  /** Its `ON CONFLICT` clause (see `conflictClause`). */
  readonly clause: string;
}

// Rows a run holds at most: one runMany call, then the event loop gets a turn.
const ROWS_PER_RUN = 1_000;
// Calls of one shard's write sent ahead of their answers (see writeRuns): enough that a
// shard worker always has the next ones while this thread encodes the redo record.
const PIPELINE_DEPTH = 64;

/** Rows bound for one shard that share one INSERT, packed for multi-row statements. */
class InsertRun {
  /** The one-row INSERT, without its conflict clause. */
  readonly sql: string;
  readonly conflict: RunConflict | undefined;
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

  constructor(sql: string, columns: readonly string[], conflict: RunConflict | undefined) {
    const width = columns.length;
    this.sql = sql;
    this.conflict = conflict;
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
    return multiRowInsert(this.sql, this.perStatement, this.conflict?.clause);
  }

  /** The one-row INSERT with its conflict clause. */
  get oneSql(): string {
    return this.conflict === undefined ? this.sql : this.sql + this.conflict.clause;
  }

  /** The run as a redo record stores it. */
  part(): BatchRun {
    const run: BatchRun = { columns: [...this.columns], values: this.values() };
    if (this.conflict !== undefined) run.conflict = this.conflict.spec;
    return run;
  }

  /** Converts and appends one row's values (throws `InvalidValueError` on a bad one). */
  add(
    row: Readonly<Record<string, SqlInput>>,
    columns: readonly string[],
    checkText: TextCheck | undefined,
  ): void {
    const pending = this.#pending;
    let at = this.#pendingRows * this.width;
    for (let c = 0; c < columns.length; c++) {
      const name = columns[c] as string;
      const value = toSqlValue(row[name], name, checkText);
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
 * starts when the statement (or its `conflict`) changes or the last run is full.
 */
export function addRow(
  runs: ShardRuns,
  shardId: number,
  sql: string,
  columns: readonly string[],
  row: Readonly<Record<string, SqlInput>>,
  checkText: TextCheck | undefined,
  conflict?: RunConflict,
): void {
  let list = runs[shardId];
  if (list === undefined) runs[shardId] = list = [];
  let run = list[list.length - 1];
  if (run === undefined || run.sql !== sql || run.conflict !== conflict || run.full) {
    run = new InsertRun(sql, columns, conflict);
    list.push(run);
  }
  run.add(row, columns, checkText);
}

/**
 * Writes `runs` (one transaction per shard) and commits them atomically across shards
 * (see `atomic.ts`). Resolves to the rows changed (inserted, or updated on a conflict)
 * and, when a `returning` clause is given, to the rows it returned once every shard has
 * committed (in shard order).
 */
export async function writeRuns(
  source: AtomicSource,
  ledger: BatchLedger,
  table: string,
  runs: ShardRuns,
  returning?: string,
  signal?: AbortSignal,
): Promise<{ changes: number; rows: Row[] }> {
  const writes: ShardWrite[] = [];
  const returned: Row[][] = [];
  // One slice for every shard's writes: they run at once, so each shard keeping its own
  // budget would let the loop wait for all of them (four 10 ms slices in a row).
  const slice = new TimeSlice();
  runs.forEach((list, shardId) => {
    if (list === undefined) return;
    let rows = 0;
    for (const run of list) rows += run.rows;
    writes.push({
      shardId,
      weight: rows,
      async write(conn, allSent) {
        let changes = 0;
        if (returning !== undefined) {
          // A second write (after a failed COMMIT) replaces what the first one returned.
          const out: Row[] = returned[shardId] = [];
          for (const run of list) {
            for (const chunk of run.chunks) {
              out.push(...await conn.all(run.multiSql + returning, chunk));
              await slice.maybePause();
            }
            for (const one of run.rest()) out.push(...await conn.all(run.oneSql + returning, one));
          }
          return out.length;
        }
        // A few calls per run (1,000 rows); the event loop gets a turn every slice. Up to
        // PIPELINE_DEPTH calls are sent before the first answer is awaited: an asynchronous
        // handle (a shard worker) runs one while the next is encoded. One transaction, so a
        // failure rolls back whatever came after it too.
        const sent: Promise<number>[] = [];
        // A call that failed stops the sending (the rest would be rolled back anyway); each
        // is handled at once, so that one failing while this awaits a turn is not unhandled.
        let failed = false;
        const send = (sql: string, sets: SqlValue[][]) => {
          const call = conn.runMany(sql, sets);
          call.catch(() => failed = true);
          sent.push(call);
        };
        try {
          for (const run of list) {
            if (failed) break;
            if (run.chunks.length > 0) send(run.multiSql, run.chunks);
            const rest = run.rest();
            if (rest.length > 0) send(run.oneSql, rest);
            while (sent.length > PIPELINE_DEPTH) changes += await (sent.shift() as Promise<number>);
            await slice.maybePause();
          }
          allSent?.();
          while (sent.length > 0) changes += await (sent.shift() as Promise<number>);
        } catch (error) {
          for (const later of sent) later.catch(() => {}); // reported as the first failure
          throw error;
        }
        return changes;
      },
      part() {
        return {
          part: { shard: shardId, runs: list.map((run) => run.part()) },
          special: list.some((run) => run.special),
        };
      },
    });
  });
  const changes = await writeAtomically(source, ledger, table, writes, signal, slice);
  return { changes, rows: returned.flat() };
}
