/**
 * Splitting a shard's sort: when SQLite must sort a shard's whole result (ORDER BY on a
 * column no index covers), it does so on the first step of the query, one synchronous
 * stretch that grows with the shard. Run as K rowid-range queries instead, each sorting
 * about {@link sortSplit}`.runRows` rows, opened one after another with the event loop
 * given a turn in between, and merged like shards.
 *
 * @module
 */

import type { PooledConnection } from "../pool/connection.ts";
import { quoteIdentifier } from "../sql/identifiers.ts";
import type { Params } from "../types.ts";
import type { TimeSlice } from "../pool/yield.ts";

/** Rows a run sorts, about; internal, so tests can force small runs. */
export const sortSplit = { runRows: 10_000, maxRuns: 64 };

/**
 * What a split waits for in a statement's plan: `"sort"`, a sort of its whole result for
 * its ORDER BY (a select, a GROUP BY); `"scan"`, a read of its whole table (an aggregate; one
 * an index search answers is not split).
 */
export type SplitReason = "sort" | "scan";

/** Whether `plan` (rows of EXPLAIN QUERY PLAN) shows `reason`. */
export function planShows(plan: readonly Record<string, unknown>[], reason: SplitReason): boolean {
  return plan.some((row) => {
    const detail = String(row.detail ?? "");
    return reason === "sort"
      ? detail.includes("USE TEMP B-TREE FOR ORDER BY")
      : detail.startsWith("SCAN ");
  });
}

/** Whether the query `sql` shows `reason` in its plan, asked of SQLite on `conn`. */
export async function needsSplit(
  conn: PooledConnection,
  sql: string,
  params: Params,
  reason: SplitReason,
): Promise<boolean> {
  return planShows(await conn.all(`EXPLAIN QUERY PLAN ${sql}`, params), reason);
}

/**
 * Runs `read` on each rowid range `cuts` make (below the first cut, between cuts, from
 * the last one up), inside one read transaction on `conn` so that the ranges are one
 * snapshot, with a turn of the event loop before a range when `slice` is used up.
 */
export async function readRanges<T>(
  conn: PooledConnection,
  cuts: readonly number[],
  slice: TimeSlice,
  read: (from: number | undefined, to: number | undefined) => Promise<T>,
): Promise<T[]> {
  const out: T[] = [];
  await conn.exec("BEGIN");
  try {
    for (let i = 0; i <= cuts.length; i++) {
      // Checked before each range, and once more after a turn: the shards share the slice,
      // and after a turn they resume one after another, each with a range to run.
      if (slice.due()) {
        await slice.pause();
        if (slice.due()) await slice.pause();
      }
      out.push(await read(cuts[i - 1], cuts[i]));
    }
  } finally {
    await conn.exec("COMMIT").catch(() => conn.exec("ROLLBACK").catch(() => {}));
  }
  return out;
}

/**
 * The rowid cut points that split `table` on `conn` into runs of about `runRows` rows
 * (ascending; the first run is below the first cut, the last from the last cut up), or
 * none: a table too small, not a plain rowid table, with a column that shadows the rowid,
 * or with rowids too large to split exactly.
 */
export async function rowidCuts(
  conn: PooledConnection,
  table: string,
  runRows = sortSplit.runRows,
): Promise<number[]> {
  const name = quoteIdentifier(table, "table");
  const shape = await conn.get<{ ok: unknown; shadows: unknown }>(
    `SELECT (SELECT type = 'table' AND wr = 0 FROM pragma_table_list ` +
      `WHERE schema = 'main' AND name = ?) AS ok, ` +
      `(SELECT count(*) FROM pragma_table_xinfo(?) ` +
      `WHERE lower(name) IN ('rowid', 'oid', '_rowid_')) AS shadows`,
    [table, table],
  );
  if (shape === undefined || Number(shape.ok) !== 1 || Number(shape.shadows) !== 0) return [];
  const bounds = await conn.get<{ lo: unknown; hi: unknown; n: unknown }>(
    `SELECT (SELECT min(rowid) FROM ${name}) AS lo, (SELECT max(rowid) FROM ${name}) AS hi, ` +
      `(SELECT count(*) FROM ${name}) AS n`,
  );
  if (bounds === undefined) return [];
  const { lo, hi, n } = bounds;
  if (typeof lo !== "number" || typeof hi !== "number" || typeof n !== "number") return [];
  const span = hi - lo + 1;
  if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || !Number.isSafeInteger(span)) {
    return [];
  }
  const runs = Math.min(sortSplit.maxRuns, Math.round(n / Math.max(1, runRows)), span);
  if (runs < 2) return [];
  const cuts: number[] = [];
  for (let i = 1; i < runs; i++) {
    const cut = lo + Math.floor((span * i) / runs);
    if (cut > lo && cut <= hi && (cuts.length === 0 || cut > cuts[cuts.length - 1]!)) {
      cuts.push(cut);
    }
  }
  return cuts;
}
