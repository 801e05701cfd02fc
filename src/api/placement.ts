/**
 * Placement checks: is every row of every sharded table on the shard its key maps to?
 * Rows can sit elsewhere when they were written before keys were routed by their stored
 * value (the text `"7"` and the integer `7` went to different shards), or by hand.
 * {@link verifyPlacement} finds them; a repair moves them with the reshard mover.
 *
 * @module
 */

import type { ConnectionPool } from "../pool/pool.ts";
import { type KeyForm, keyFromRow, shardOfStored, storedKey } from "../routing/key_column.ts";
import type { ShardingStrategy } from "../routing/strategies.ts";
import { quoteIdentifier } from "../sql/identifiers.ts";
import type { Row, SqlValue } from "../types.ts";
import { keyColumnFromEntry } from "./key_schema.ts";
import type { PlacementConflict, UnroutableRow } from "./reshard.ts";
import { keyFormOf, type ShardMap } from "./shard_map.ts";

/** A row found on a shard its key does not map to. */
export interface MisplacedRow {
  /** The table. */
  table: string;
  /** The shard the row is on. */
  shard: number;
  /** The shard its key maps to. */
  expectedShard: number;
  /** The row's shard-key value, as stored. */
  key: SqlValue;
  /** Its rowid on `shard` (as text when beyond 2^53). */
  rowid: number | string;
  /**
   * True when `expectedShard` already holds a row with the same key: the key is
   * duplicated across shards, and a repair will report this row as a conflict.
   */
  duplicate: boolean;
}

/** What {@link verifyPlacement} found. */
export interface PlacementReport {
  /** Rows scanned, all tables. */
  scanned: number;
  /** Rows on a shard their key does not map to. */
  misplaced: number;
  /** The misplaced rows, the first `maxRows` of them. */
  rows: MisplacedRow[];
  /** True when more rows are misplaced than `rows` lists. */
  truncated: boolean;
  /** Rows whose key cannot be routed at all (NULL, a fractional REAL, ...). */
  unroutable: UnroutableRow[];
  /** Per table: rows scanned, misplaced and unroutable. */
  tables: Record<string, { scanned: number; misplaced: number; unroutable: number }>;
  /** The key form the directory routes by. */
  keyForm: KeyForm;
  /** Wall time, ms. */
  durationMs: number;
}

/** What a placement repair did. */
export interface RepairReport {
  /** Rows scanned, all tables. */
  scanned: number;
  /** Rows moved to the shard their key maps to. */
  moved: number;
  /** Misplaced rows left where they are: their shard already holds a colliding row. */
  conflicts: PlacementConflict[];
  /** Rows whose key cannot be routed, left where they are. */
  unroutable: UnroutableRow[];
  /** Whether this call resumed a repair a crash interrupted. */
  resumed: boolean;
  /** Wall time, ms. */
  durationMs: number;
}

/** Options of {@link verifyPlacement}. */
export interface VerifyPlacementOptions {
  /** How many misplaced rows the report lists (all are counted). Default 1,000. */
  maxRows?: number;
  /** Rows read per query. Default 1,000. */
  batchSize?: number;
  /** Stops between batches. */
  signal?: AbortSignal;
}

/** What a placement check needs from its manager. */
export interface PlacementContext {
  /** The persisted map. */
  map: ShardMap;
  /** The layout. */
  strategy: ShardingStrategy;
  /** Whether shard `shardId`'s file exists (missing files hold no rows). */
  exists(shardId: number): boolean;
  /** The pool of a shard. */
  pool(shardId: number): ConnectionPool;
}

function rowidText(value: SqlValue | undefined): number | string {
  return typeof value === "bigint" ? value.toString() : Number(value);
}

function positive(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer, got ${String(value)}`);
  }
  return value;
}

/**
 * Scans every sharded table on every shard and reports the rows that are not on the
 * shard their stored key maps to. Reads only; the manager runs it as one operation.
 */
export async function verifyPlacement(
  context: PlacementContext,
  options: VerifyPlacementOptions = {},
): Promise<PlacementReport> {
  const started = performance.now();
  const maxRows = positive(options.maxRows, "maxRows", 1_000);
  const batchSize = Math.max(1, positive(options.batchSize, "batchSize", 1_000));
  const form = keyFormOf(context.map);
  const report: PlacementReport = {
    scanned: 0,
    misplaced: 0,
    rows: [],
    truncated: false,
    unroutable: [],
    tables: {},
    keyForm: form,
    durationMs: 0,
  };
  for (const [table, entry] of Object.entries(context.map.tables).sort()) {
    if (entry.shardKey === null) continue;
    const typed = keyColumnFromEntry(table, entry);
    const counts = report.tables[table] = { scanned: 0, misplaced: 0, unroutable: 0 };
    const quotedTable = quoteIdentifier(table, "table");
    const quotedKey = quoteIdentifier(entry.shardKey, "column");
    for (const shard of context.strategy.getAllShardIds()) {
      if (!context.exists(shard)) continue;
      let last: SqlValue | null = null;
      for (;;) {
        options.signal?.throwIfAborted();
        const rows: Row[] = await context.pool(shard).withConnection((c) =>
          last === null
            ? c.all(
              `SELECT rowid AS r, ${quotedKey} AS k FROM ${quotedTable} ORDER BY rowid LIMIT ?`,
              [batchSize],
            )
            : c.all(
              `SELECT rowid AS r, ${quotedKey} AS k FROM ${quotedTable} WHERE rowid > ? ` +
                `ORDER BY rowid LIMIT ?`,
              [last, batchSize],
            )
        ).catch((error) => {
          if (/no such table/.test(String(error))) return [] as Row[];
          throw error;
        });
        if (rows.length === 0) break;
        for (const row of rows) {
          const key = row.k ?? null;
          let expected: number;
          try {
            expected = shardOfStored(context.strategy, storedKey(keyFromRow(key), typed), form);
          } catch (error) {
            counts.unroutable++;
            report.unroutable.push({
              table,
              shard,
              key,
              rowid: rowidText(row.r),
              reason: error instanceof Error ? error.message : String(error),
            });
            continue;
          }
          if (expected === shard) continue;
          counts.misplaced++;
          report.misplaced++;
          if (report.rows.length >= maxRows) {
            report.truncated = true;
            continue;
          }
          report.rows.push({
            table,
            shard,
            expectedShard: expected,
            key,
            rowid: rowidText(row.r),
            duplicate: false,
          });
        }
        counts.scanned += rows.length;
        report.scanned += rows.length;
        last = rows[rows.length - 1]?.r ?? null;
        if (rows.length < batchSize) break;
      }
    }
  }
  // Which listed rows have a twin on their own shard (a repair cannot move those).
  for (const row of report.rows) {
    const entry = context.map.tables[row.table];
    if (entry?.shardKey == null || !context.exists(row.expectedShard)) continue;
    const found = await context.pool(row.expectedShard).withConnection((c) =>
      c.get(
        `SELECT 1 AS x FROM ${quoteIdentifier(row.table, "table")} WHERE ${
          quoteIdentifier(entry.shardKey as string, "column")
        } = ? LIMIT 1`,
        [row.key],
      )
    ).catch(() => undefined);
    row.duplicate = found !== undefined;
  }
  report.durationMs = performance.now() - started;
  return report;
}
