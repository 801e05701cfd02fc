/**
 * Crash atomicity for writes across shards (`insertMany`, and `update`/`delete` without a
 * key): a redo record on a coordinator shard.
 *
 * A batch that writes on several shards names a coordinator (the shard with the most
 * rows). Every shard writes in its own transaction; the coordinator's transaction also
 * stores a redo record holding what the other shards write (their rows, or their UPDATE
 * or DELETE), and each other shard's transaction stores a marker with the batch id. The coordinator commits first:
 * that COMMIT is the batch's commit point. Then the other shards commit.
 *
 * After a crash, {@link recoverBatches} (run when a `ShardManager` opens its directory)
 * finds every redo record and replays the part of each shard that has no marker, so a
 * batch is either absent everywhere (the coordinator never committed) or present
 * everywhere. Once every shard has committed, the redo record is deleted first, then the
 * markers; {@link BatchLedger} does both lazily, inside later transactions.
 *
 * @module
 */

import { type TimeSlice, yieldToEventLoop } from "../pool/yield.ts";
import { Buffer } from "node:buffer";
import type { PooledConnection } from "../pool/connection.ts";
import type { Row, SqlInput, SqlValue } from "../types.ts";
import { buildDelete, buildInsert, buildUpdate, packInsert } from "../sql/dml.ts";
import { conflictClause, type OnConflict } from "../sql/upsert.ts";
import type { Where } from "../sql/where.ts";

/**
 * Separates a batch id's owner (the shared-access user that wrote it) from its random
 * part: `<owner>~<uuid>`. Batches of exclusive owners have no owner part.
 */
export const BATCH_OWNER_SEPARATOR = "~";

/** The owner part of a batch id, if any. */
export function batchOwnerOf(id: string): string | undefined {
  const at = id.lastIndexOf(BATCH_OWNER_SEPARATOR);
  return at < 0 ? undefined : id.slice(0, at);
}

/** The table holding redo records (coordinator) and markers (other shards). */
export const BATCH_TABLE = "_shardlite_batches";

/** Creates {@link BATCH_TABLE} when missing (inside a batch's transaction). */
export const CREATE_BATCH_TABLE = `CREATE TABLE IF NOT EXISTS ${BATCH_TABLE} (` +
  `id TEXT PRIMARY KEY, coordinator INTEGER NOT NULL, participants TEXT NOT NULL, payload BLOB)`;

/** Stores the coordinator's redo record, or (payload NULL) another shard's marker. */
export const INSERT_BATCH_ROW = `INSERT INTO ${BATCH_TABLE} ` +
  `(id, coordinator, participants, payload) VALUES (?, ?, ?, ?)`;

/** One run of rows sharing a column list, as stored in a redo record. */
export interface BatchRun {
  /** Column names (validated again on replay). */
  columns: string[];
  /** Values, row after row; several rows may share one array. */
  values: SqlValue[][];
  /**
   * What the INSERT does on a uniqueness conflict (`insertMany`'s `onConflict`), so a
   * replay does the same; absent: a plain INSERT (and in every record of format 1).
   */
  conflict?: OnConflict;
}

/** An UPDATE or DELETE as stored in a redo record (rebuilt and validated on replay). */
export type BatchOp =
  | { op: "update"; changes: Readonly<Record<string, SqlInput>>; where?: Where | undefined }
  | { op: "delete"; where?: Where | undefined };

/** What one shard writes in a batch, as a redo record replays it. */
export interface BatchPart {
  shard: number;
  /** Rows to insert. */
  runs?: BatchRun[];
  /** Statements to run. */
  ops?: BatchOp[];
}

interface Payload {
  /** 1, or 2 when a run has a `conflict` (older readers then refuse the record, not misread it). */
  format: 1 | 2;
  table: string;
  parts: BatchPart[];
}

// JSON cannot carry bigints, bytes or infinities: they travel as {"$b": "123"},
// {"$u": "<base64>"} and {"$f": "-Infinity"}.
function replacer(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return { $b: value.toString() };
  if (value instanceof Uint8Array) return { $u: Buffer.from(value).toString("base64") };
  if (typeof value === "number" && !Number.isFinite(value)) return { $f: String(value) };
  return value;
}

function reviver(_key: string, value: unknown): unknown {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const tagged = value as { $b?: unknown; $u?: unknown; $f?: unknown };
    if (typeof tagged.$b === "string") return BigInt(tagged.$b);
    if (typeof tagged.$u === "string") return new Uint8Array(Buffer.from(tagged.$u, "base64"));
    if (tagged.$f === "Infinity" || tagged.$f === "-Infinity") return Number(tagged.$f);
  }
  return value;
}

/** Whether `value` needs a tag in a redo record (see {@link encodeBatch}). */
export function needsTag(value: SqlValue): boolean {
  return typeof value === "object" && value !== null || typeof value === "bigint" ||
    typeof value === "number" && !Number.isFinite(value);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Serializes the rows of `parts` for a redo record: JSON as UTF-8 bytes (a blob binds
 * with one copy; a long string goes through a slow JS UTF-8 loop in the driver).
 * `special` says whether any value {@link needsTag} (JSON is faster without a replacer).
 */
export function encodeBatch(table: string, parts: BatchPart[], special: boolean): Uint8Array {
  const conflicts = parts.some((p) => p.runs?.some((r) => r.conflict !== undefined) === true);
  const payload: Payload = { format: conflicts ? 2 : 1, table, parts };
  return encoder.encode(special ? JSON.stringify(payload, replacer) : JSON.stringify(payload));
}

/**
 * {@link encodeBatch}, a run at a time: the same record (keys in another order at most),
 * with the event loop given a turn whenever `slice` is used up. The other shards' rows
 * of a 100k-row batch take tens of ms to encode at once.
 */
export async function encodeBatchInSlices(
  table: string,
  parts: BatchPart[],
  special: boolean,
  slice: TimeSlice,
): Promise<Uint8Array> {
  const conflicts = parts.some((p) => p.runs?.some((r) => r.conflict !== undefined) === true);
  const json = special
    ? (value: unknown) => JSON.stringify(value, replacer)
    : (value: unknown) => JSON.stringify(value);
  const pieces = [`{"format":${conflicts ? 2 : 1},"table":${JSON.stringify(table)},"parts":[`];
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) pieces.push(",");
    const { runs, ...rest } = parts[i] as BatchPart;
    if (runs === undefined) {
      pieces.push(json(rest));
      continue;
    }
    const head = json(rest); // {"shard":1,...}
    pieces.push(`${head.slice(0, -1)}${head === "{}" ? "" : ","}"runs":[`);
    for (let r = 0; r < runs.length; r++) {
      if (r > 0) pieces.push(",");
      pieces.push(json(runs[r]));
      await slice.maybePause();
    }
    pieces.push("]}");
  }
  pieces.push("]}");
  return encoder.encode(pieces.join(""));
}

/** Parses a redo record's payload. */
export function decodeBatch(bytes: Uint8Array): { table: string; parts: BatchPart[] } {
  const payload = JSON.parse(decoder.decode(bytes), reviver) as Payload;
  if (
    (payload?.format !== 1 && payload?.format !== 2) || typeof payload.table !== "string" ||
    !Array.isArray(payload.parts)
  ) {
    throw new Error(`${BATCH_TABLE}: a redo record has an unknown format`);
  }
  return payload;
}

/** Inserts one shard's part of a batch through `conn` (inside its transaction). */
export async function applyPart(
  conn: PooledConnection,
  table: string,
  part: BatchPart,
): Promise<number> {
  let changes = 0;
  for (const run of part.runs ?? []) {
    const width = run.columns.length;
    const row = Object.fromEntries(run.columns.map((c) => [c, null]));
    const sql = buildInsert(table, row).sql; // validates the table and the columns again
    // The same conflict handling as the write it replays (its columns validated again too).
    const suffix = run.conflict === undefined ? "" : conflictClause(run.conflict);
    const rows: SqlValue[][] = [];
    for (const values of run.values) {
      if (width === 0) rows.push([]); // a DEFAULT VALUES row
      for (let at = 0; width > 0 && at < values.length; at += width) {
        rows.push(values.slice(at, at + width));
      }
    }
    for (const packed of packInsert(sql, rows, suffix)) {
      changes += await conn.runMany(packed.sql, packed.params);
    }
  }
  for (const op of part.ops ?? []) {
    const statement = op.op === "update"
      ? buildUpdate(table, op.changes, op.where)
      : buildDelete(table, op.where);
    changes += (await conn.run(statement.sql, statement.params)).changes;
  }
  return changes;
}

/**
 * Cleanup owed after finished batches, done inside later transactions: a redo record is
 * deleted on its coordinator first; only once that deletion has committed are the batch's
 * markers on the other shards deleted (a marker gone before its redo record would make
 * recovery replay rows that are already there).
 */
export class BatchLedger {
  // shard -> ids whose redo record on that shard may go.
  readonly #redo = new Map<number, Set<string>>();
  // shard -> ids whose marker on that shard may go.
  readonly #markers = new Map<number, Set<string>>();
  // id -> the shards holding its markers.
  readonly #others = new Map<string, number[]>();

  /** Every shard of `batch` committed: its redo record on `coordinator` may go. */
  finished(batch: string, coordinator: number, others: number[]): void {
    add(this.#redo, coordinator, batch);
    this.#others.set(batch, others);
  }

  /** The ids owed on `shard` now, to delete inside a transaction there. */
  owed(shard: number): string[] {
    return [...this.#redo.get(shard) ?? [], ...this.#markers.get(shard) ?? []];
  }

  /** A transaction on `shard` that deleted `ids` has committed. */
  deleted(shard: number, ids: readonly string[]): void {
    const redo = this.#redo.get(shard);
    const markers = this.#markers.get(shard);
    for (const id of ids) {
      if (redo?.delete(id)) {
        for (const other of this.#others.get(id) ?? []) add(this.#markers, other, id);
        this.#others.delete(id);
      } else {
        markers?.delete(id);
      }
    }
    if (redo?.size === 0) this.#redo.delete(shard);
    if (markers?.size === 0) this.#markers.delete(shard);
  }

  /**
   * Pays everything owed: redo records first, then markers. `run(shard, fn)` runs `fn` on
   * a connection of `shard` and resolves true, or resolves false when it cannot reach the
   * shard now (a pool already closed): then those debts stay, and so do the markers of a
   * redo record left in place. What is left is cleaned when the directory is next opened.
   */
  async flush(
    run: (shard: number, fn: (c: PooledConnection) => Promise<void>) => Promise<boolean>,
  ): Promise<void> {
    for (const phase of [this.#redo, this.#markers]) {
      for (const shard of [...phase.keys()]) {
        await yieldToEventLoop(); // a DELETE and its COMMIT a shard: the loop gets a turn
        const ids = [...phase.get(shard) ?? []];
        if (ids.length > 0 && await run(shard, (c) => deleteBatchRows(c, ids))) {
          this.deleted(shard, ids);
        }
      }
    }
  }
}

function add(map: Map<number, Set<string>>, shard: number, id: string): void {
  let ids = map.get(shard);
  if (ids === undefined) map.set(shard, ids = new Set());
  ids.add(id);
}

/** Deletes batch rows by id, 500 ids a statement. */
export async function deleteBatchRows(conn: PooledConnection, ids: readonly string[]) {
  for (let i = 0; i < ids.length; i += 500) {
    const chunk = ids.slice(i, i + 500);
    await conn.run(
      `DELETE FROM ${BATCH_TABLE} WHERE id IN (${chunk.map(() => "?").join(", ")})`,
      chunk,
    );
  }
}

/** What {@link recoverBatches} did. */
export interface BatchRecovery {
  /** Redo records found (batches whose coordinator committed before the last stop). */
  batches: number;
  /**
   * Shard parts replayed: committed on the coordinator, missing on their shard; `rows`
   * counts the rows the replay inserted, updated or deleted.
   */
  replayed: { batch: string; shard: number; rows: number }[];
  /**
   * Batches still incomplete: a part could not be replayed (its shard cannot be opened,
   * or its rows are refused). They are retried at the next open; until then their
   * other shards hold their rows and resharding is refused.
   */
  pending: { batch: string; coordinator: number; shard: number; error: string }[];
  /** Shards that could not be read; batch rows there are left for a later open. */
  unreadable: { shard: number; error: string }[];
}

/**
 * Completes every batch whose coordinator committed, then clears the bookkeeping that no
 * incomplete batch needs. Runs while nothing else uses the shards (a manager opening its
 * directory). A shard that cannot be opened does not stop the others: what it would
 * need is kept for the next open. `shards` are the shards whose files exist; `use` runs
 * `fn` on a shard's connection.
 */
export async function recoverBatches(
  shards: readonly number[],
  use: <T>(shard: number, fn: (c: PooledConnection) => Promise<T>) => Promise<T>,
  ownerIsLive: (owner: string) => boolean = () => false,
): Promise<BatchRecovery> {
  // Under shared access other users run batches right now: theirs are left alone.
  const live = new Map<string, boolean>();
  const someoneLive = (id: string): boolean => {
    const owner = batchOwnerOf(id);
    if (owner === undefined) return false;
    let answer = live.get(owner);
    if (answer === undefined) live.set(owner, answer = ownerIsLive(owner));
    return answer;
  };
  const markers = new Map<number, Set<string>>();
  const redo: { shard: number; id: string }[] = [];
  const holding: number[] = [];
  const report: BatchRecovery = { batches: 0, replayed: [], pending: [], unreadable: [] };
  for (const shard of shards) {
    await yieldToEventLoop(); // a shard's reads: the loop gets a turn between them
    let rows: Row[] | undefined;
    try {
      rows = await use(shard, async (c) => {
        const exists = await c.get(
          "SELECT 1 AS x FROM sqlite_schema WHERE type = 'table' AND name = ?",
          [BATCH_TABLE],
        );
        if (exists === undefined) return undefined;
        return await c.all(`SELECT id, payload IS NOT NULL AS redo FROM ${BATCH_TABLE}`);
      });
    } catch (error) {
      report.unreadable.push({ shard, error: message(error) });
      continue;
    }
    if (rows === undefined) continue;
    holding.push(shard);
    for (const row of rows) {
      const id = String(row.id);
      if (someoneLive(id)) continue;
      if (row.redo === 1) redo.push({ shard, id });
      else add(markers, shard, id);
    }
  }
  report.batches = redo.length;
  const keep = new Set<string>();
  for (const { shard, id } of redo) {
    try {
      const bytes = await use(shard, async (c) => {
        const row = await c.get(`SELECT payload FROM ${BATCH_TABLE} WHERE id = ?`, [id]);
        if (!(row?.payload instanceof Uint8Array)) {
          throw new Error(`${BATCH_TABLE}: the redo record of batch ${id} has no payload`);
        }
        return row.payload;
      });
      const { table, parts } = decodeBatch(bytes);
      let complete = true;
      for (const part of parts) {
        if (markers.get(part.shard)?.has(id)) continue;
        try {
          const rows = await use(part.shard, (c) =>
            c.transaction(async (tx) => {
              await tx.exec(CREATE_BATCH_TABLE);
              // Another process recovering at once may have landed it: once, never twice.
              if (await tx.get(`SELECT 1 AS x FROM ${BATCH_TABLE} WHERE id = ?`, [id])) return 0;
              const changed = await applyPart(tx, table, part);
              await tx.run(INSERT_BATCH_ROW, [id, shard, "[]", null]);
              return changed;
            }));
          add(markers, part.shard, id);
          if (!holding.includes(part.shard)) holding.push(part.shard);
          report.replayed.push({ batch: id, shard: part.shard, rows });
        } catch (error) {
          complete = false;
          report.pending.push({
            batch: id,
            coordinator: shard,
            shard: part.shard,
            error: message(error),
          });
        }
      }
      // Every part is in place: the redo record goes first, then (below) the markers.
      if (complete) await use(shard, (c) => deleteBatchRows(c, [id]));
      else keep.add(id);
    } catch (error) {
      keep.add(id);
      report.pending.push({ batch: id, coordinator: shard, shard, error: message(error) });
    }
  }
  // Markers of finished batches go; those of incomplete batches, or whose coordinator
  // could not be read (its redo record may still be there), stay.
  const blind = report.unreadable.map((u) => u.shard);
  for (const shard of holding) {
    try {
      await use(shard, async (c) => {
        const stale = (await c.all(
          `SELECT id, coordinator FROM ${BATCH_TABLE} WHERE payload IS NULL`,
        )).filter((m) =>
          !keep.has(String(m.id)) && !blind.includes(Number(m.coordinator)) &&
          !someoneLive(String(m.id))
        )
          .map((m) => String(m.id));
        await deleteBatchRows(c, stale);
      });
    } catch (error) {
      report.unreadable.push({ shard, error: message(error) });
    }
  }
  return report;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
