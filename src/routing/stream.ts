/**
 * Streams a query's rows from several shards: shard after shard when no order is asked
 * for, else an ordered k-way merge that holds one page per shard. Memory stays bounded by
 * shards x pageSize however many rows there are, and the event loop gets a turn between
 * pages. Ending the stream early (or an error) ends every shard's query and returns every
 * lease at once.
 *
 * @module
 */

import { InvalidQueryError } from "../errors.ts";
import { leaseInternals, type PooledConnection } from "../pool/connection.ts";
import type { ConnectionPool } from "../pool/pool.ts";
import type { ShardCursor } from "../pool/shard_file.ts";
import { TimeSlice, yieldToEventLoop } from "../pool/yield.ts";
import type { ResolvedOrderTerm } from "../sql/order.ts";
import type { Params, Row } from "../types.ts";
import { rowOrder } from "./merge.ts";
import { SourceHeap } from "./source_heap.ts";

/** One shard's part of a stream. */
export interface StreamShard {
  readonly shardId: number;
  /** The shard's pool, asked for when the shard is opened (a pool cache may close idle ones). */
  readonly pool: () => ConnectionPool;
}

/** What to stream and how. */
export interface StreamPlan {
  /** The query every shard runs (sorted by `terms` and cut at limit + offset already). */
  readonly sql: string;
  readonly params: Params;
  /** The merge order; empty for shard after shard. */
  readonly terms: readonly ResolvedOrderTerm[];
  readonly offset: number;
  /** Rows to yield at most (Infinity for all). */
  readonly limit: number;
  /** Columns fetched only to merge by, dropped from the rows yielded. */
  readonly hidden: readonly string[];
  readonly pageSize: number;
  /** What a shard's failure is reported as. */
  readonly fail: (shardId: number, pool: ConnectionPool, error: unknown) => unknown;
  /** Aborts the stream: the leases keep it, so their waits and next pages reject. */
  readonly signal?: AbortSignal | undefined;
  /** Ordered only: how a shard's query splits into rowid runs; absent, never. */
  readonly split?: SplitPlan | undefined;
  /**
   * Ordered only: open every shard's query at once (shards on servers, which sort in
   * parallel). Leases are still taken one at a time in shard order. Absent: one shard
   * after another, the event loop given a turn between them (local shards sort on this
   * thread).
   */
  readonly concurrent?: boolean | undefined;
}

/**
 * How an ordered shard's query may run as rowid-range runs, each sorted by SQLite on its
 * own cursor of the shard's one lease (see `split.ts`).
 */
export interface SplitPlan {
  /** The rowid cut points of the shard's runs, asked on its lease; none: one query as is. */
  readonly cuts: (conn: PooledConnection) => Promise<readonly number[]>;
  /** The query of the run `from <= rowid < to` (a side open when undefined). */
  readonly run: (
    from: number | undefined,
    to: number | undefined,
  ) => { readonly sql: string; readonly params: Params };
}

/** One shard's lease, held while its opener or any of its runs' queries needs it. */
class ShardLease {
  readonly shard: StreamShard;
  readonly #plan: StreamPlan;
  #pool: ConnectionPool | null = null;
  conn: PooledConnection | null = null;
  #holds = 0;

  constructor(shard: StreamShard, plan: StreamPlan) {
    this.shard = shard;
    this.#plan = plan;
  }

  /** Takes the lease, held once for the caller (see {@link release}). */
  async acquire(): Promise<PooledConnection> {
    const pool = this.#pool = this.shard.pool();
    try {
      const signal = this.#plan.signal;
      this.conn = await pool.getConnection(signal === undefined ? undefined : { signal });
    } catch (error) {
      throw this.fail(error);
    }
    this.#holds = 1;
    return this.conn;
  }

  hold(): void {
    this.#holds++;
  }

  /** Whether the lease holds the read transaction of a shard read in runs. */
  inTransaction = false;

  /** Drops one hold; the last ends the read transaction, if any, and returns the lease. */
  release(): void {
    if (this.#holds === 0 || --this.#holds > 0) return;
    const conn = this.conn;
    if (conn === null) return;
    this.conn = null;
    const pool = this.#pool as ConnectionPool;
    const ended = this.inTransaction ? conn.rollback().catch(() => {}) : Promise.resolve();
    this.inTransaction = false;
    void ended.then(() => pool.returnConnection(conn)).catch(() => {});
  }

  fail(error: unknown): unknown {
    return this.#plan.fail(this.shard.shardId, this.#pool ?? this.shard.pool(), error);
  }
}

/** One query on a shard's lease (the shard's, or one run of it): a page of rows, read from `at`. */
class ShardReader {
  #lease: ShardLease | null = null;
  #cursor: ShardCursor | null = null;
  readonly #pageSize: number;
  page: Row[] = [];
  at = 0;
  done = false;

  constructor(pageSize: number) {
    this.#pageSize = pageSize;
  }

  get current(): Row | undefined {
    return this.page[this.at];
  }

  /** Opens `sql` on the lease (holding it until the query ends) and reads the first page. */
  async open(lease: ShardLease, sql: string, params: Params): Promise<void> {
    lease.hold();
    this.#lease = lease;
    try {
      this.#cursor = await leaseInternals(lease.conn as PooledConnection).openStream(sql, params);
    } catch (error) {
      this.close();
      throw lease.fail(error);
    }
    await this.fill();
  }

  /** Reads the next page (marks the reader done when the query has no more rows). */
  async fill(): Promise<void> {
    const lease = this.#lease;
    const cursor = this.#cursor;
    this.page = [];
    this.at = 0;
    if (lease === null || cursor === null) {
      this.done = true;
      return;
    }
    const max = this.#pageSize;
    try {
      this.page = await leaseInternals(lease.conn as PooledConnection).readPage(cursor, max);
    } catch (error) {
      throw lease.fail(error);
    }
    if (this.page.length < max) this.#finish();
    if (this.page.length === 0) this.done = true;
  }

  /** Ends the query (the page read stays) and drops its hold on the lease. */
  #finish(): void {
    const lease = this.#lease;
    if (lease === null) return;
    if (this.#cursor !== null && lease.conn !== null) {
      leaseInternals(lease.conn).closeStream(this.#cursor);
    }
    this.#cursor = null;
    this.#lease = null;
    lease.release();
  }

  close(): void {
    this.#finish();
    this.done = true;
    this.page = [];
  }
}

/**
 * Opens a shard: its lease and its query, or (ordered, with a split plan that finds cut
 * points) one query per rowid run, opened one after another with the event loop given a
 * turn after each. The readers go into `readers` as they open, so the caller closes them
 * whatever happens.
 */
async function openShard(
  shard: StreamShard,
  plan: StreamPlan,
  split: SplitPlan | undefined,
  readers: ShardReader[],
  snapshot = false,
): Promise<void> {
  const lease = new ShardLease(shard, plan);
  await openOn(lease, await lease.acquire(), plan, split, readers, snapshot);
}

/** {@link openShard} on a lease already taken; releases the opener's hold. */
async function openOn(
  lease: ShardLease,
  conn: PooledConnection,
  plan: StreamPlan,
  split: SplitPlan | undefined,
  readers: ShardReader[],
  snapshot: boolean,
): Promise<void> {
  try {
    const cuts = split === undefined ? [] : await split.cuts(conn);
    if (cuts.length === 0 || split === undefined) {
      const reader = new ShardReader(plan.pageSize);
      readers.push(reader);
      await reader.open(lease, plan.sql, plan.params);
      return;
    }
    if (snapshot) {
      // The runs are statements of their own: a read transaction makes them one snapshot
      // (writers of this shard wait for it, as they waited for one whole statement).
      await conn.exec("BEGIN").catch((error) => {
        throw lease.fail(error);
      });
      lease.inTransaction = true;
    }
    // The shard's rows stay about a page in all: each run reads its share.
    const pageSize = Math.max(1, Math.ceil(plan.pageSize / (cuts.length + 1)));
    for (let i = 0; i <= cuts.length; i++) {
      const { sql, params } = split.run(cuts[i - 1], cuts[i]);
      const reader = new ShardReader(pageSize);
      readers.push(reader);
      await reader.open(lease, sql, params);
      if (i < cuts.length) await yieldToEventLoop();
    }
  } finally {
    lease.release();
  }
}

/**
 * Opens every shard's query at once, after taking their leases one at a time in shard
 * order (so that two such calls never each hold a lease the other waits for). The readers
 * go into `readers` in shard order.
 */
async function openAll(
  shards: readonly StreamShard[],
  plan: StreamPlan,
  readers: ShardReader[],
  snapshot: boolean,
): Promise<void> {
  const leases: { lease: ShardLease; conn: PooledConnection }[] = [];
  try {
    for (const shard of shards) {
      const lease = new ShardLease(shard, plan);
      leases.push({ lease, conn: await lease.acquire() });
    }
  } catch (error) {
    for (const { lease } of leases) lease.release();
    throw error;
  }
  const perShard = leases.map((): ShardReader[] => []);
  const opened = await Promise.allSettled(
    leases.map(({ lease, conn }, i) =>
      openOn(lease, conn, plan, plan.split, perShard[i] as ShardReader[], snapshot)
    ),
  );
  for (const list of perShard) readers.push(...list);
  const failed = opened.find((o) => o.status === "rejected");
  if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
}

function strip(row: Row, hidden: readonly string[]): Row {
  if (hidden.length === 0) return row;
  const out: Row = {};
  for (const name in row) if (!hidden.includes(name)) out[name] = row[name] as Row[string];
  return out;
}

/**
 * Yields the rows of `plan` over `shards` (in shard-id order when unordered; merged by
 * `plan.terms`, ties by shard order, when ordered), applying offset and limit.
 */
export async function* streamShards(
  shards: readonly StreamShard[],
  plan: StreamPlan,
): AsyncGenerator<Row, void, undefined> {
  for await (const batch of streamBatches(shards, plan)) {
    for (let i = 0; i < batch.length; i++) yield batch[i] as Row;
  }
}

/**
 * Every row of `plan` over `shards`, as {@link streamShards} orders them, read a page at
 * a time with the event loop given a turn between pages and every slice of merging: the
 * big `select` that never holds the loop for long.
 */
export async function collectShards(
  shards: readonly StreamShard[],
  plan: StreamPlan,
): Promise<Row[]> {
  const rows: Row[] = [];
  // A shard read as several runs reads them in one read transaction: one snapshot per
  // shard, as one statement would have read it.
  for await (const batch of streamBatches(shards, plan, true)) {
    for (let i = 0; i < batch.length; i++) rows.push(batch[i] as Row);
  }
  return rows;
}

/** The rows in batches of about a page: what the two above share. */
async function* streamBatches(
  shards: readonly StreamShard[],
  plan: StreamPlan,
  snapshot = false,
): AsyncGenerator<Row[], void, undefined> {
  let skip = plan.offset;
  let left = plan.limit;
  if (left <= 0) return;
  const slice = new TimeSlice();
  if (plan.terms.length === 0) {
    for (const shard of shards) {
      const opened: ShardReader[] = [];
      try {
        await openShard(shard, plan, undefined, opened);
        const reader = opened[0] as ShardReader;
        while (!reader.done) {
          let page = reader.page;
          if (skip > 0) {
            const skipped = Math.min(skip, page.length);
            skip -= skipped;
            page = page.slice(skipped);
          }
          if (page.length > left) page = page.slice(0, left);
          left -= page.length;
          if (page.length > 0) {
            yield plan.hidden.length === 0 ? page : page.map((row) => strip(row, plan.hidden));
          }
          if (left === 0) return;
          await yieldToEventLoop();
          await reader.fill();
        }
      } finally {
        for (const reader of opened) reader.close();
      }
    }
    return;
  }
  // Ordered: every shard open at once (leases taken in shard-id order), one page per
  // query; a shard split into runs has a query per run, in rowid order. Ties merge in
  // reader order: shard order, then run order.
  const readers: ShardReader[] = [];
  try {
    if (plan.concurrent === true) await openAll(shards, plan, readers, snapshot);
    else {
      for (const shard of shards) {
        // A query's first page is its whole sort: the loop gets a turn after each.
        await openShard(shard, plan, plan.split, readers, snapshot);
        await yieldToEventLoop();
      }
    }
    const columns = plan.terms.map((t) => t.column);
    for (const reader of readers) {
      // SQLite sorts by rowid (or an alias) it does not return: nothing to merge by.
      const first = reader.current;
      const missing = first === undefined ? undefined : columns.find((c) => !(c in first));
      if (missing !== undefined) {
        throw new InvalidQueryError(
          "orderBy",
          `the rows have no column ${JSON.stringify(missing)}`,
        );
      }
    }
    const signs = plan.terms.map((t) => (t.direction === "desc" ? -1 : 1));
    const heap = new SourceHeap(
      readers.flatMap((reader, r) => (reader.current === undefined ? [] : [r])),
      rowOrder(columns, signs, (r) => readers[r]!.current!),
    );
    let batch: Row[] = [];
    for (let r = heap.top; r !== undefined; r = heap.top) {
      const reader = readers[r]!;
      const row = reader.current as Row;
      reader.at++;
      if (reader.current === undefined && !reader.done) {
        // A page ran out: hand out what is merged, then read that shard's next page.
        if (batch.length > 0) {
          yield batch;
          batch = [];
        }
        await yieldToEventLoop();
        await reader.fill();
      }
      if (reader.current === undefined) heap.pop();
      else heap.fix();
      if (skip > 0) {
        skip--;
        continue;
      }
      batch.push(strip(row, plan.hidden));
      if (--left === 0) break;
      if (batch.length >= plan.pageSize) {
        yield batch;
        batch = [];
        await slice.maybePause();
      }
    }
    if (batch.length > 0) yield batch;
  } finally {
    for (const reader of readers) reader.close();
  }
}
