/**
 * Resharding: move every row of every sharded table to the shard a new layout assigns
 * it, crash-safe and resumable.
 *
 * How it stays exactly-once: rows move in batches. A batch is copied into its target
 * shard together with a marker row `(run, table, source shard, source rowid)` in the
 * same transaction, then deleted from its source, then the progress is written to
 * `reshard.json`. After a crash anywhere in that sequence, the batch is read again: a
 * row whose marker exists on its target is only deleted from its source, never copied
 * twice. The new shard map is written only when every row is in place (the commit
 * point); until then the directory's map still names the old layout, and a manager
 * refuses ordinary operations while the plan is unfinished.
 *
 * @module
 */

import { TimeSlice, yieldToEventLoop } from "../pool/yield.ts";
import { InvalidQueryError, ReshardError } from "../errors.ts";
import type { PooledConnection } from "../pool/connection.ts";
import type { ConnectionPool } from "../pool/pool.ts";
import {
  CURRENT_KEY_FORM,
  type KeyForm,
  keyFromRow,
  shardOfStored,
  storedKey,
} from "../routing/key_column.ts";
import { packInsert } from "../sql/dml.ts";
import type { ShardingStrategy, StrategyDescriptor } from "../routing/strategies.ts";
import type { Row, SqlValue } from "../types.ts";
import { keyFormOf, type ShardMap } from "./shard_map.ts";
import type { ShardLocationInput } from "./locations.ts";
import { keyColumnFromEntry } from "./key_schema.ts";
import { describeVersionSpread, readMigrationHistory, seedMigrationHistory } from "./migrations.ts";

/** The plan file's name inside `dbDir`. */
export const RESHARD_PLAN_FILE = "reshard.json";
const MARKERS = "_shardlite_moved";
// How often a running reshard records its progress (and always between shards and tables).
const PLAN_WRITE_MS = 250;

/** Progress of a running reshard. */
export interface ReshardProgress {
  /** The table being moved. */
  table: string;
  /** The shard being scanned. */
  shardId: number;
  /** Rows scanned so far, all tables. */
  scanned: number;
  /** Rows moved so far, all tables. */
  moved: number;
  /** Rows in all sharded tables when the run started (for a progress bar). */
  totalRows: number;
}

/** Options of {@link ShardManager.reshard}. */
export interface ReshardOptions {
  /** Called after every batch. */
  onProgress?: (progress: ReshardProgress) => void;
  /** Rows read per batch (default 1,000). */
  batchSize?: number;
  /** Stops between batches; the plan stays resumable. */
  signal?: AbortSignal;
  /**
   * Shards on servers: the servers of the layout being reached, in shard-id order, as in
   * `ShardManagerOptions.shards`. Its first entries are the current servers; growing adds
   * servers (each empty of tables), shrinking lists fewer (the others are left empty).
   * Needed to grow; when absent, the current servers are kept.
   */
  shards?: readonly ShardLocationInput[];
}

/** What a reshard did. */
export interface ReshardReport {
  /** The layout before. */
  from: StrategyDescriptor;
  /** The layout after. */
  to: StrategyDescriptor;
  /** Rows scanned and moved per table (over every run of this plan, resumes included). */
  tables: Record<string, { scanned: number; moved: number }>;
  /** Rows scanned, all tables. */
  scanned: number;
  /** Rows moved, all tables. */
  moved: number;
  /** Whether this call resumed an unfinished plan. */
  resumed: boolean;
  /** Shard files deleted after shrinking. */
  removedFiles: string[];
  /** Wall time of this call, ms. */
  durationMs: number;
}

/** The durable plan of a reshard, in `<dbDir>/reshard.json`. */
export interface ReshardPlan {
  /** Format version. */
  format: 1;
  /** A random id: markers of an earlier, abandoned plan never count. */
  run: string;
  /** The layout being left. */
  from: StrategyDescriptor;
  /** The layout being reached. */
  to: StrategyDescriptor;
  /** Shard files involved: max(from, to) shard counts. */
  span: number;
  /** Shards scanned for rows: the old ones (new shards start empty); all of them to roll back. */
  scan: number;
  /** `moving` until every row is placed; `committed` once the new map is written. */
  state: "moving" | "committed";
  /** Sharded tables in the order they move. */
  tables: string[];
  /** Where the scan stands: table index, shard, last rowid done (null: from the start). */
  progress: { table: number; shard: number; lastRowid: number | string | null };
  /** Counts so far. */
  counts: Record<string, { scanned: number; moved: number }>;
  /**
   * `"repair"` (from `repairPlacement`): the layout stays, misplaced rows move to their
   * shard, and a row that collides there stays put and is listed in `conflicts`.
   * Absent: a reshard.
   */
  mode?: "reshard" | "repair";
  /** Key form of the layout being left (absent in older plans: 1). */
  fromKeyForm?: KeyForm;
  /** Key form of the layout being reached (absent in older plans: 1). */
  toKeyForm?: KeyForm;
  /** Repair: rows left where they are because their key already exists on their shard. */
  conflicts?: PlacementConflict[];
  /** Repair: rows whose key cannot be routed at all (NULL, fractional ...), left in place. */
  unroutable?: UnroutableRow[];
  /**
   * Shards on servers: every server of the span, in shard-id order (URLs, no tokens), so
   * that a resumed run reaches the same ones.
   */
  servers?: string[];
}

/** A misplaced row a repair could not move: its shard already holds a row that collides. */
export interface PlacementConflict {
  /** The table. */
  table: string;
  /** The shard the row is on. */
  shard: number;
  /** The shard its key maps to. */
  expectedShard: number;
  /** The row's shard key. */
  key: SqlValue;
  /** Its rowid on `shard` (as text when beyond 2^53). */
  rowid: number | string;
  /** What SQLite said (the UNIQUE constraint that failed). */
  error: string;
}

/** A row whose shard key cannot be routed (NULL, a fractional REAL, ...). */
export interface UnroutableRow {
  /** The table. */
  table: string;
  /** The shard the row is on. */
  shard: number;
  /** The row's shard-key value. */
  key: SqlValue;
  /** Its rowid (as text when beyond 2^53). */
  rowid: number | string;
  /** Why it cannot be routed. */
  reason: string;
}

/** What the reshard needs from its manager. */
export interface ReshardContext {
  /** The data directory. */
  dbDir: string;
  /** The persisted map (old layout). */
  map: ShardMap;
  /** A pool for any shard id in the span. */
  pool(shardId: number): ConnectionPool;
  /** Writes the plan atomically. */
  writePlan(plan: ReshardPlan): void | Promise<void>;
  /** Removes the plan file. */
  deletePlan(): void | Promise<void>;
  /** Writes the new map atomically (the commit point). */
  commitMap(map: ShardMap): void | Promise<void>;
  /** Closes and deletes the files of a shard that no longer exists. */
  removeShard(shardId: number): Promise<string[]>;
}

function quoteName(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function rowidText(value: SqlValue | undefined): number | string {
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number") return value;
  throw new InvalidQueryError("rowid", `unexpected rowid ${String(value)}`);
}

function rowidValue(value: number | string): number | bigint {
  return typeof value === "string" ? BigInt(value) : value;
}

/**
 * Starts a new plan from `from` to `to`. A reshard moves the directory to the current key
 * form; a repair (`mode: "repair"`, same layout) keeps the map's.
 */
export function newPlan(
  map: ShardMap,
  from: ShardingStrategy,
  to: ShardingStrategy,
  mode: "reshard" | "repair" = "reshard",
): ReshardPlan {
  return {
    format: 1,
    mode,
    fromKeyForm: keyFormOf(map),
    toKeyForm: mode === "repair" ? keyFormOf(map) : CURRENT_KEY_FORM,
    run: crypto.randomUUID(),
    from: from.describe(),
    to: to.describe(),
    span: Math.max(from.numShards, to.numShards),
    scan: from.numShards,
    state: "moving",
    tables: Object.keys(map.tables).sort(),
    progress: { table: 0, shard: 0, lastRowid: null },
    counts: {},
  };
}

/** Checks every table can move before anything does. */
async function preflight(context: ReshardContext, plan: ReshardPlan, fromCount: number) {
  for (const table of plan.tables) {
    const entry = context.map.tables[table];
    if (entry === undefined || entry.shardKey === null) {
      throw new ReshardError(
        context.dbDir,
        `table ${table} has no shard-key column, so its rows cannot be placed; give it one ` +
          `(createTable with shardKey) or drop it before resharding. Nothing was moved.`,
        table,
      );
    }
    for (let shard = 0; shard < fromCount; shard++) {
      // A shard's checks read its whole table: the loop gets a turn between shards.
      await yieldToEventLoop();
      await context.pool(shard).withConnection(async (c) => {
        const exists = await c.get(
          "SELECT 1 AS x FROM sqlite_schema WHERE type = 'table' AND name = ?",
          [table],
        );
        if (exists === undefined) return;
        try {
          await c.get(`SELECT rowid FROM ${quoteName(table)} LIMIT 0`);
        } catch (error) {
          throw new ReshardError(
            context.dbDir,
            `table ${table} has no rowid (WITHOUT ROWID tables cannot be resharded)`,
            table,
            { cause: error },
          );
        }
        // A row whose key routes nowhere would stop the move half-way: refuse it first.
        // (A repair leaves such rows where they are.)
        if (plan.mode === "repair") return;
        const key = quoteName(entry.shardKey as string);
        const suspect = await c.get(
          `SELECT rowid AS r, ${key} AS k FROM ${quoteName(table)} WHERE ${key} IS NULL OR ` +
            `(typeof(${key}) = 'real' AND (${key} <> CAST(${key} AS INTEGER) OR ` +
            `abs(${key}) > 9007199254740992)) LIMIT 1`,
        );
        if (suspect === undefined) return;
        try {
          storedKey(keyFromRow(suspect.k), keyColumnFromEntry(table, entry));
        } catch (error) {
          throw new ReshardError(
            context.dbDir,
            `a row of ${table} (rowid ${String(suspect.r)} on shard ${shard}) has a shard key ` +
              `that routes nowhere (${String(suspect.k)}); fix or delete it through ` +
              `manager.getPool(${shard}), then reshard again. Nothing was moved.`,
            table,
            { cause: error },
          );
        }
      });
    }
  }
  // New shards get shard 0's schema: the old ones must all be at its migration version.
  const histories: { shardId: number; applied: { id: string }[] }[] = [];
  for (let shard = 0; shard < fromCount; shard++) {
    histories.push({
      shardId: shard,
      applied: await context.pool(shard).withConnection(readMigrationHistory),
    });
  }
  const spread = describeVersionSpread(histories);
  if (spread !== undefined) {
    throw new ReshardError(
      context.dbDir,
      `the shards are at different migration versions (${spread}); a reshard copies shard ` +
        `0's schema to new shards and moves rows between shards, so finish the migration ` +
        `first (fix its cause and call migrate() again). Nothing was moved.`,
    );
  }
}

/** Creates the schema of shard 0 (tables, indexes) on shards that lack it. */
async function copySchema(context: ReshardContext, span: number): Promise<void> {
  const schema = await context.pool(0).withConnection((c) =>
    c.all(
      `SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'
       AND name NOT LIKE '\\_shardlite\\_%' ESCAPE '\\' ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END, rowid`,
    )
  );
  // A shard given shard 0's schema is as migrated as shard 0 (preflight checked that
  // every old shard is): it gets shard 0's history, or migrate() would run it all again.
  const history = await context.pool(0).withConnection(readMigrationHistory);
  for (let shard = 1; shard < span; shard++) {
    await yieldToEventLoop();
    await context.pool(shard).withConnection(async (c) => {
      for (const item of schema) {
        const found = await c.get("SELECT 1 AS x FROM sqlite_schema WHERE name = ?", [
          item.name as string,
        ]);
        if (found === undefined) await c.exec(item.sql as string);
      }
      await seedMigrationHistory(c, history);
    });
  }
}

async function countRows(context: ReshardContext, plan: ReshardPlan): Promise<number> {
  let total = 0;
  for (let shard = 0; shard < plan.span; shard++) {
    await yieldToEventLoop();
    await context.pool(shard).withConnection(async (c) => {
      for (const table of plan.tables) {
        const row = await c.get(`SELECT count(*) AS n FROM ${quoteName(table)}`);
        total += Number(row?.n ?? 0);
      }
    });
  }
  return total;
}

/**
 * Runs (or resumes) `plan` to completion. The caller has drained the manager's
 * operations and holds them off until this resolves.
 */
export async function runReshard(
  context: ReshardContext,
  plan: ReshardPlan,
  target: ShardingStrategy,
  fromCount: number,
  options: ReshardOptions,
  resumed: boolean,
): Promise<ReshardReport> {
  const started = performance.now();
  const batchSize = options.batchSize ?? 1_000;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  }
  if (plan.state === "moving") {
    await preflight(context, plan, fromCount);
    // Durable before the first file is created or row moved.
    await context.writePlan(plan);
    await copySchema(context, plan.span);
    for (let shard = 0; shard < plan.span; shard++) {
      await yieldToEventLoop();
      await context.pool(shard).withConnection((c) =>
        c.exec(
          `CREATE TABLE IF NOT EXISTS ${MARKERS} (run TEXT, tbl TEXT, src INTEGER, rid INTEGER, ` +
            `PRIMARY KEY (run, tbl, src, rid)) WITHOUT ROWID`,
        )
      );
    }
    const totalRows = await countRows(context, plan);
    let planWritten = performance.now();
    let scannedAll = Object.values(plan.counts).reduce((n, c) => n + c.scanned, 0);
    let movedAll = Object.values(plan.counts).reduce((n, c) => n + c.moved, 0);
    for (let t = plan.progress.table; t < plan.tables.length; t++) {
      const table = plan.tables[t] as string;
      const keyColumn = context.map.tables[table]?.shardKey as string;
      // Rows route by the value SQLite stores in the key column, in the target's key form.
      const typed = keyColumnFromEntry(table, context.map.tables[table]);
      const toForm = plan.toKeyForm ?? 1;
      const repair = plan.mode === "repair";
      const counts = plan.counts[table] ??= { scanned: 0, moved: 0 };
      const firstShard = t === plan.progress.table ? plan.progress.shard : 0;
      const slice = new TimeSlice();
      for (let source = firstShard; source < plan.scan; source++) {
        // Rowids may be 0 or negative: null means "from the first row".
        let last: number | string | null =
          t === plan.progress.table && source === plan.progress.shard
            ? plan.progress.lastRowid
            : null;
        for (;;) {
          if (options.signal?.aborted) {
            // Stopped between batches: the progress so far is recorded first.
            await context.writePlan(plan);
            options.signal.throwIfAborted();
          }
          // A batch takes a few ms: the event loop gets a turn every slice.
          await slice.maybePause();
          const rows = await context.pool(source).withConnection((c) =>
            last === null
              ? c.all(
                `SELECT rowid AS "__shardlite_rowid", * FROM ${quoteName(table)} ` +
                  `ORDER BY rowid LIMIT ?`,
                [batchSize],
              )
              : c.all(
                `SELECT rowid AS "__shardlite_rowid", * FROM ${quoteName(table)} ` +
                  `WHERE rowid > ? ORDER BY rowid LIMIT ?`,
                [rowidValue(last), batchSize],
              )
          ).catch((error) => {
            // A shard without the table (created lazily, never written) has nothing to move.
            if (/no such table/.test(String(error))) return [] as Row[];
            throw error;
          });
          if (rows.length === 0) break;
          const moving = new Map<number, Row[]>();
          for (const row of rows) {
            const key = row[keyColumn];
            let destination: number;
            try {
              destination = shardOfStored(target, storedKey(keyFromRow(key), typed), toForm);
            } catch (error) {
              if (repair) {
                // Nowhere to put it: a repair leaves it and says so.
                const rowid = rowidText(row.__shardlite_rowid);
                const unroutable = plan.unroutable ??= [];
                if (
                  !unroutable.some((u) =>
                    u.table === table && u.shard === source && u.rowid === rowid
                  )
                ) {
                  unroutable.push({
                    table,
                    shard: source,
                    key: key ?? null,
                    rowid,
                    reason: error instanceof Error ? error.message : String(error),
                  });
                }
                continue;
              }
              throw new ReshardError(
                context.dbDir,
                `a row of ${table} (rowid ${String(row.__shardlite_rowid)} on shard ${source}) ` +
                  `has an unusable shard key ${String(key)}`,
                table,
                { cause: error },
              );
            }
            if (destination === source) continue;
            let list = moving.get(destination);
            if (list === undefined) moving.set(destination, list = []);
            list.push(row);
          }
          let movedHere = 0;
          const ids: (number | bigint)[] = [];
          for (const [destination, list] of moving) {
            const copied = await copyRows(
              context,
              plan,
              table,
              keyColumn,
              source,
              destination,
              list,
            );
            movedHere += copied.length;
            for (const row of copied) ids.push(row.__shardlite_rowid as number | bigint);
            // Each copy ends with a COMMIT (an fsync): the loop gets a turn between them.
            await slice.maybePause();
          }
          if (movedHere > 0) {
            await context.pool(source).withConnection((c) =>
              c.transaction(async (tx) => {
                for (let i = 0; i < ids.length; i += 500) {
                  const chunk = ids.slice(i, i + 500);
                  await tx.run(
                    `DELETE FROM ${quoteName(table)} WHERE rowid IN (${
                      chunk.map(() => "?").join(",")
                    })`,
                    chunk,
                  );
                }
              })
            );
            await slice.maybePause();
          }
          last = rowidText(rows[rows.length - 1]?.__shardlite_rowid);
          counts.scanned += rows.length;
          counts.moved += movedHere;
          scannedAll += rows.length;
          movedAll += movedHere;
          plan.progress = { table: t, shard: source, lastRowid: last };
          // The progress is written every PLAN_WRITE_MS, not every batch: a run resumed
          // from an older progress reads those batches again, and their markers keep any
          // row from being copied twice (an fsync a batch cost a tenth of the run).
          if (performance.now() - planWritten >= PLAN_WRITE_MS) {
            await context.writePlan(plan);
            planWritten = performance.now();
          }
          options.onProgress?.({
            table,
            shardId: source,
            scanned: scannedAll,
            moved: movedAll,
            totalRows,
          });
        }
        plan.progress = { table: t, shard: source + 1, lastRowid: null };
        await context.writePlan(plan);
      }
      plan.progress = { table: t + 1, shard: 0, lastRowid: null };
      await context.writePlan(plan);
    }
    // The commit point: from here the directory's layout is the new one.
    await context.commitMap({
      ...context.map,
      numShards: target.numShards,
      strategy: target.describe(),
      keyForm: plan.toKeyForm ?? 1,
    });
    plan.state = "committed";
    await context.writePlan(plan);
  }
  for (let shard = 0; shard < target.numShards; shard++) {
    await context.pool(shard).withConnection((c) => c.exec(`DROP TABLE IF EXISTS ${MARKERS}`));
  }
  const removedFiles: string[] = [];
  for (let shard = target.numShards; shard < plan.span; shard++) {
    removedFiles.push(...await context.removeShard(shard));
  }
  await context.deletePlan();
  const tables = structuredClone(plan.counts);
  for (const table of plan.tables) tables[table] ??= { scanned: 0, moved: 0 };
  return {
    from: plan.from,
    to: plan.to,
    tables,
    scanned: Object.values(tables).reduce((n, c) => n + c.scanned, 0),
    moved: Object.values(tables).reduce((n, c) => n + c.moved, 0),
    resumed,
    removedFiles,
    durationMs: performance.now() - started,
  };
}

/**
 * Copies rows into `destination` with their markers, in one transaction; skips rows
 * already copied (a batch re-read after a crash). Rows and markers go in multi-row INSERTs.
 * Returns the rows now on `destination` (to delete from `source`): all of them, or in a
 * repair all but those that collide there, which are added to the plan's conflicts.
 */
async function copyRows(
  context: ReshardContext,
  plan: ReshardPlan,
  table: string,
  keyColumn: string,
  source: number,
  destination: number,
  rows: Row[],
): Promise<Row[]> {
  const first = rows[0];
  if (first === undefined) return [];
  // SELECT rowid, * gives every row of a batch the same columns.
  const columns = Object.keys(first).filter((c) => c !== "__shardlite_rowid");
  const insertSql = `INSERT INTO ${quoteName(table)} (${
    columns.map(quoteName).join(", ")
  }) VALUES (${columns.map(() => "?").join(", ")})`;
  const rowid = (row: Row) => row.__shardlite_rowid as number | bigint;
  let collided = new Set<Row>();
  await context.pool(destination).withConnection((c) =>
    c.transaction(async (tx) => {
      // Rows come in rowid order: one range query finds the markers of this batch.
      const copied = new Set(
        (await tx.all(
          `SELECT rid FROM ${MARKERS} WHERE run = ? AND tbl = ? AND src = ? ` +
            `AND rid BETWEEN ? AND ?`,
          [plan.run, table, source, rowid(first), rowid(rows[rows.length - 1] as Row)],
        )).map((m) => String(m.rid)),
      );
      let todo = copied.size === 0 ? rows : rows.filter((r) => !copied.has(String(rowid(r))));
      if (todo.length === 0) return;
      collided = new Set();
      try {
        // A savepoint, so a collision can be traced to its row below.
        await tx.transaction(async (sp) => {
          const values = todo.map((row) => columns.map((column) => row[column] as SqlValue));
          for (const part of packInsert(insertSql, values)) await sp.runMany(part.sql, part.params);
        });
      } catch (error) {
        if (!/UNIQUE constraint failed/.test(String(error))) throw error;
        if (plan.mode === "repair") {
          collided = await insertEach(tx, insertSql, columns, todo, (row, cause) => {
            const conflicts = plan.conflicts ??= [];
            const id = rowidText(rowid(row));
            if (!conflicts.some((x) => x.table === table && x.shard === source && x.rowid === id)) {
              conflicts.push({
                table,
                shard: source,
                expectedShard: destination,
                key: row[keyColumn] ?? null,
                rowid: id,
                error: cause instanceof Error ? cause.message : String(cause),
              });
            }
          });
          todo = todo.filter((row) => !collided.has(row));
          if (todo.length === 0) return;
        } else {
          throw await collision(context, tx, insertSql, columns, todo, {
            table,
            keyColumn,
            source,
            destination,
          }, error);
        }
      }
      const markers = todo.map((row) => [plan.run, table, source, rowid(row)] as SqlValue[]);
      for (
        const part of packInsert(
          `INSERT INTO ${MARKERS} (run, tbl, src, rid) VALUES (?, ?, ?, ?)`,
          markers,
        )
      ) {
        await tx.runMany(part.sql, part.params);
      }
    })
  );
  return collided.size === 0 ? rows : rows.filter((row) => !collided.has(row));
}

/**
 * Inserts rows one at a time, each in its own savepoint, and returns those that hit a
 * UNIQUE constraint (reported through `onConflict`); any other failure is thrown.
 */
async function insertEach(
  tx: PooledConnection,
  insertSql: string,
  columns: string[],
  rows: Row[],
  onConflict: (row: Row, cause: unknown) => void,
): Promise<Set<Row>> {
  const collided = new Set<Row>();
  for (const row of rows) {
    try {
      await tx.transaction((sp) => sp.run(insertSql, columns.map((c) => row[c] as SqlValue)));
    } catch (error) {
      if (!/UNIQUE constraint failed/.test(String(error))) throw error;
      collided.add(row);
      onConflict(row, error);
    }
  }
  return collided;
}

/** Finds the row whose copy collides (one at a time, in a savepoint) and names it. */
async function collision(
  context: ReshardContext,
  tx: PooledConnection,
  insertSql: string,
  columns: string[],
  rows: Row[],
  where: { table: string; keyColumn: string; source: number; destination: number },
  packedError: unknown,
): Promise<ReshardError> {
  const { table, keyColumn, source, destination } = where;
  let culprit: Row | undefined;
  let cause = packedError;
  await tx.transaction(async (sp) => {
    for (const row of rows) {
      try {
        await sp.run(insertSql, columns.map((column) => row[column] as SqlValue));
      } catch (error) {
        culprit = row;
        cause = error;
        break;
      }
    }
    throw new Error("undo the probe"); // rolls the savepoint back
  }).catch(() => {});
  const key = culprit === undefined ? "(not found again)" : String(culprit[keyColumn]);
  return new ReshardError(
    context.dbDir,
    `row with ${keyColumn} = ${key} of table ${table} collides ` +
      `with a row already on shard ${destination} (a unique key that is not the ` +
      `shard key repeats across shards). Nothing was lost: the row is still on ` +
      `shard ${source}. Resolve the duplicate, then resume the reshard.`,
    table,
    { cause },
  );
}
