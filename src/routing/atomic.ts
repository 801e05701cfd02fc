/**
 * Writes on several shards, all or nothing, also across a crash: one transaction per
 * shard, committed coordinator first with a redo record of the others' writes (the
 * protocol is described in `batches.ts`). `insertMany` and `update`/`delete` without a
 * key use it.
 *
 * @module
 */

import { BatchPendingError, ShardOperationError } from "../errors.ts";
import { raceAbort } from "./abort.ts";
import { TimeSlice } from "../pool/yield.ts";
import type { PooledConnection } from "../pool/connection.ts";
import type { ConnectionPool } from "../pool/pool.ts";
import {
  BATCH_OWNER_SEPARATOR,
  type BatchLedger,
  type BatchPart,
  CREATE_BATCH_TABLE,
  deleteBatchRows,
  encodeBatchInSlices,
  INSERT_BATCH_ROW,
} from "./batches.ts";

/** One shard's share of an atomic write. */
export interface ShardWrite {
  readonly shardId: number;
  /** How much it writes: the heaviest share coordinates (and stores the others' redo). */
  readonly weight: number;
  /**
   * Writes inside the shard's open transaction; returns the rows changed. Calls `sent`
   * (if given) once every statement is on its way, before their answers: the redo record
   * is encoded then, while asynchronous handles (shard workers) write.
   */
  write(conn: PooledConnection, sent?: () => void): Promise<number>;
  /** The share as a redo record replays it; `special` when a value needs a tag. */
  part(): { part: BatchPart; special: boolean };
}

/** A batch over several shards, ready to write. */
interface PreparedBatch {
  id: string;
  coordinator: number;
  others: number[];
  parts: BatchPart[];
  /**
   * The redo record, encoded on first call (memoized): once every share's statements are
   * sent, so that its encoding on this thread does not hold back the shards' writes.
   */
  payload(): Promise<Uint8Array>;
}

/** What {@link writeAtomically} needs of its router's source. */
export interface AtomicSource {
  /** The pool of a shard. */
  getPool(shardId: number): ConnectionPool;
  /** The owner part of batch ids (shared access), if any. */
  readonly batchOwner?: string | undefined;
  /** The check made first in each shard's transaction (shards on servers), if any. */
  readonly guardWrite?: ((conn: PooledConnection, shardId: number) => Promise<void>) | undefined;
}

export async function writeAtomically(
  source: AtomicSource,
  ledger: BatchLedger,
  table: string,
  shares: readonly ShardWrite[],
  signal?: AbortSignal,
  slice: TimeSlice = new TimeSlice(),
): Promise<number> {
  const writes = [...shares].sort((a, b) => a.shardId - b.shardId);
  const shardIds = writes.map((w) => w.shardId);
  if (shardIds.length === 0) return 0; // nothing to write
  const batch = shardIds.length > 1
    ? prepareBatch(table, writes, source.batchOwner, slice)
    : undefined;
  // Commit order: the coordinator first; its COMMIT is the batch's commit point.
  const commitOrder = shardIds.map((_, i) => i);
  if (batch !== undefined) {
    const rank = (i: number) => (shardIds[i] === batch.coordinator ? -1 : i);
    commitOrder.sort((a, b) => rank(a) - rank(b));
  }
  // Cleanup owed by earlier batches rides along in these transactions.
  const owed = shardIds.map((shardId) => ledger.owed(shardId));
  const changes = shardIds.map(() => 0);
  const leases: PooledConnection[] = [];
  const pools: ConnectionPool[] = [];
  try {
    // Leases, then transactions, are taken one at a time in ascending shard order, as
    // every writer holding several shards does (backup's pointInTime too): two such
    // writers can never each hold what the other waits for.
    for (const shardId of shardIds) {
      const pool = source.getPool(shardId);
      // An abort ends the wait for a lease (a lease granted late goes straight back). The
      // leases do not keep the signal: past the commit point every COMMIT must be sent.
      const leasing = pool.getConnection();
      const conn = await (signal === undefined ? leasing : raceAbort(leasing, signal, (late) => {
        late.then((c) => pool.returnConnection(c), () => {});
      })).catch((error) => {
        throw error === signal?.reason ? error : new ShardOperationError(shardId, pool.path, error);
      });
      pools.push(pool);
      leases.push(conn);
    }
    for (const [i, conn] of leases.entries()) {
      signal?.throwIfAborted();
      await conn.exec("BEGIN IMMEDIATE").catch((error) => {
        throw new ShardOperationError(shardIds[i] as number, conn.path, error);
      });
      // Shards on servers: the layout epoch is checked before anything is written.
      if (source.guardWrite !== undefined) await source.guardWrite(conn, shardIds[i] as number);
    }
    // The redo record is encoded once every share's statements are sent (each share
    // reports it, or its end), and goes in as the coordinator's batch row.
    let unsent = shardIds.length;
    let allSent!: () => void;
    const sentAll = new Promise<void>((resolve) => allSent = resolve);
    // Every share settles before anything is rolled back: a share still writing when
    // another failed would go on in autocommit mode after its ROLLBACK, and keep its rows.
    const written = await Promise.allSettled(shardIds.map(async (shardId, i) => {
      const conn = leases[i] as PooledConnection;
      const debts = owed[i] as string[];
      let reported = false;
      const sent = () => {
        if (reported) return;
        reported = true;
        if (--unsent === 0) allSent();
      };
      try {
        if (batch !== undefined || debts.length > 0) await conn.exec(CREATE_BATCH_TABLE);
        if (debts.length > 0) await deleteBatchRows(conn, debts);
        // One transaction: where the batch row goes among the share's rows does not matter.
        const batchRow = batch === undefined
          ? undefined
          : shardId === batch.coordinator
          ? sentAll.then(() => batch.payload()).then((payload) =>
            conn.run(INSERT_BATCH_ROW, [batch.id, shardId, JSON.stringify(batch.others), payload])
          )
          : conn.run(INSERT_BATCH_ROW, [batch.id, batch.coordinator, "[]", null]);
        batchRow?.catch(() => {}); // awaited below unless the share's write fails first
        try {
          changes[i] = await (writes[i] as ShardWrite).write(conn, sent);
        } finally {
          sent(); // failed, or never reported: the coordinator's batch row must not wait
        }
        await batchRow;
      } catch (error) {
        sent();
        throw new ShardOperationError(shardId, conn.path, error);
      }
    }));
    const failed = written.find((outcome) => outcome.status === "rejected");
    if (failed !== undefined) throw failed.reason;
    // Before the first COMMIT any failure (or an abort) rolls every shard back.
    signal?.throwIfAborted();
    const head = commitOrder[0] as number;
    const first = leases[head] as PooledConnection;
    try {
      await first.commit();
    } catch (error) {
      throw new ShardOperationError(shardIds[head] as number, first.path, error);
    }
    ledger.deleted(shardIds[head] as number, owed[head] as string[]);
    // Only a batch has more shards: past its commit point, every part must land. The
    // other shards commit at once (shards in workers fsync in parallel), each on its own.
    let pending: BatchPendingError | undefined;
    await Promise.all(
      commitOrder.slice(1).map(async (i) => {
        const conn = leases[i] as PooledConnection;
        const shardId = shardIds[i] as number;
        // A local COMMIT is an fsync on this thread: the loop gets a turn between them.
        await slice.maybePause();
        try {
          await conn.commit();
          ledger.deleted(shardId, owed[i] as string[]);
        } catch {
          const landed = await landPart(conn, writes[i] as ShardWrite, batch as PreparedBatch);
          if (typeof landed === "number") changes[i] = landed;
          const failure = typeof landed === "number" ? undefined : landed.error;
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
      }),
    );
    if (pending !== undefined) throw pending;
    if (batch !== undefined) ledger.finished(batch.id, batch.coordinator, batch.others);
    return changes.reduce((a, b) => a + b, 0);
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
 * A shard's COMMIT failed past the batch's commit point: writes its share once more (the
 * statements its redo part holds), in a new transaction. Resolves to the rows changed,
 * or to the error if that fails too (then the coordinator's redo record applies the part
 * when the directory is next opened). Writing the share itself, not replaying the part,
 * lets a write that collects RETURNING rows collect those of the committed try.
 */
async function landPart(
  conn: PooledConnection,
  share: ShardWrite,
  batch: PreparedBatch,
): Promise<number | { error: unknown }> {
  await conn.rollback().catch(() => {});
  return await conn.transaction(async (tx) => {
    await tx.exec(CREATE_BATCH_TABLE);
    const changed = await share.write(tx);
    await tx.run(INSERT_BATCH_ROW, [batch.id, batch.coordinator, "[]", null]);
    return changed;
  }).then((changed) => changed, (error: unknown) => ({ error }));
}

/**
 * A batch over several shards: the heaviest share coordinates and carries the others'
 * writes in its redo record.
 */
function prepareBatch(
  table: string,
  writes: readonly ShardWrite[],
  owner: string | undefined,
  slice: TimeSlice,
): PreparedBatch {
  let coordinator = (writes[0] as ShardWrite).shardId;
  let most = -1;
  for (const w of writes) {
    if (w.weight > most) {
      most = w.weight;
      coordinator = w.shardId;
    }
  }
  const others = writes.filter((w) => w.shardId !== coordinator);
  let special = false;
  const parts = others.map((w) => {
    const share = w.part();
    special ||= share.special;
    return share.part;
  });
  // Encoded a slice at a time while the shards write (with shards in workers, this thread
  // is mostly waiting then), in the writes' own slice: one budget for all of this call's
  // work on this thread. A failure is seen where the payload is awaited.
  let payload: Promise<Uint8Array> | undefined;
  return {
    // A live owner's batches are its own to finish: recovery elsewhere leaves them alone.
    id: owner === undefined
      ? crypto.randomUUID()
      : `${owner}${BATCH_OWNER_SEPARATOR}${crypto.randomUUID()}`,
    coordinator,
    others: others.map((w) => w.shardId),
    parts,
    payload: () => payload ??= encodeBatchInSlices(table, parts, special, slice),
  };
}
