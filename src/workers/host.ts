/**
 * The calling thread's side of shard workers (`workers` option of `ShardManager`): a
 * {@link Driver} whose handles live in module Web Workers. The pools stay here —
 * admission, leases, timeouts, transactions' ownership, stats and leak detection in one
 * place, and `transaction(key, fn)`'s `fn` runs here anyway — while each worker owns the
 * real SQLite handles (node-sqlite3-wasm or node:sqlite) of its shards: shard `id` lives
 * in worker `id % workers`. Every handle method becomes a message; the messages to one
 * worker are collected per microtask and sent as one, and so are its answers.
 *
 * A worker that dies (an uncaught error, out of memory, `terminate()`) fails every call in
 * flight on it with {@link WorkerCrashedError}, which the driver reports as a broken
 * handle: the pool drops the handle, and the next call starts a new worker and reopens
 * the shard (its file holds every committed row; the owner lock the pool holds proves the
 * lock directory the dead worker left behind is stale, so it is cleared first).
 *
 * @module
 */

import { setImmediate } from "node:timers";
import type {
  ConfigureOptions,
  Driver,
  DriverCursor,
  DriverHandle,
  OpenOptions,
  PositionalRows,
} from "../driver/driver.ts";
import { WorkerCrashedError } from "../errors.ts";
import type { Params, Row, RunResult, SqlValue } from "../types.ts";
import {
  decodeReplies,
  deserializeError,
  type DriverKind,
  encodeParamSets,
  encodeRequests,
  type HandleState,
  type PackedRows,
  type ParamSetsPayload,
  type Reply,
  type ReplyMessage,
  type Request,
  rowCount,
  unpackRows,
  unpackRowsInto,
} from "./protocol.ts";

/** Distributive `Omit`: a request without its id, each variant kept apart. */
type Unsent<T> = T extends unknown ? Omit<T, "id"> : never;

interface Pending {
  resolve(value: unknown): void;
  reject(error: unknown): void;
  handle: WorkerHandle | undefined;
  path: string;
}

/** Options of a {@link WorkerHost}. */
export interface WorkerHostOptions {
  /** How many workers. */
  workers: number;
  /** The driver the workers open handles with: `wasmDriver` or `nativeDriver`. */
  driver: Driver;
  /** Which built-in driver `driver` is. */
  kind: DriverKind;
  /** The shard id a file path stands for (a shard file), or undefined for any other file. */
  shardIdOf(path: string): number | undefined;
}

/** What a host has done, for tests and stats. */
export interface WorkerHostStats {
  /** Workers started (restarts included). */
  started: number;
  /** Workers that died (terminations by shutdown not counted). */
  died: number;
  /** Messages sent to workers, and calls they carried. */
  messages: number;
  /** Calls sent to workers. */
  calls: number;
}

/**
 * The workers of one manager, started lazily (a worker starts with the first call on one
 * of its shards) and ended by {@link WorkerHost.shutdown}.
 *
 * @example Two workers behind a pool
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConnectionPool, wasmDriver } from "../../mod.ts";
 * import { WorkerHost } from "./host.ts";
 * const dir = await Deno.makeTempDir();
 * const host = new WorkerHost({
 *   workers: 2,
 *   driver: wasmDriver,
 *   kind: "wasm",
 *   shardIdOf: (path) => path.endsWith("shard_1.db") ? 1 : undefined,
 * });
 * const pool = new ConnectionPool(`${dir}/shard_1.db`, { driver: host.driver });
 * await pool.withConnection(async (c) => {
 *   await c.exec("CREATE TABLE t (x)");
 *   await c.run("INSERT INTO t VALUES (?)", [42]);
 *   assert.deepEqual(await c.all("SELECT x FROM t"), [{ x: 42 }]);
 * });
 * await pool.closeAll();
 * await host.shutdown();
 * assert.equal(host.stats.started, 1);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class WorkerHost {
  /** How many workers. */
  readonly size: number;
  /** The driver whose handles live in the workers (what the pools are given). */
  readonly driver: Driver;
  readonly #slots: WorkerSlot[];
  readonly #options: WorkerHostOptions;
  readonly #stats: WorkerHostStats = { started: 0, died: 0, messages: 0, calls: 0 };
  #nextHandle = 1;
  #closed = false;

  /** A host of `options.workers` workers (none started yet). */
  constructor(options: WorkerHostOptions) {
    this.size = options.workers;
    this.#options = options;
    this.#slots = Array.from({ length: options.workers }, (_, i) => new WorkerSlot(i, this));
    this.driver = workerDriver(this, options.driver, options.kind);
  }

  /** Counts since the host was made. */
  get stats(): WorkerHostStats {
    return { ...this.#stats };
  }

  /** @internal The counters, for the slots to update. */
  get counters(): WorkerHostStats {
    return this.#stats;
  }

  /** Whether {@link WorkerHost.shutdown} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** @internal The shard a path stands for, if any. */
  shardIdOf(path: string): number | undefined {
    return this.#options.shardIdOf(path);
  }

  /** The worker index of a file: shard `id` in worker `id % size`; another file by hash. */
  workerIndexOf(path: string): number {
    const shardId = this.#options.shardIdOf(path);
    if (shardId !== undefined) return shardId % this.size;
    let hash = 0x811c9dc5;
    for (let i = 0; i < path.length; i++) hash = Math.imul(hash ^ path.charCodeAt(i), 0x01000193);
    return (hash >>> 0) % this.size;
  }

  /** @internal The worker a new handle on `path` goes to. */
  slotFor(path: string): WorkerSlot {
    return this.#slots[this.workerIndexOf(path)] as WorkerSlot;
  }

  /** @internal A fresh handle id (unique in the host). */
  nextHandleId(): number {
    return this.#nextHandle++;
  }

  /** Whether a live worker has a handle open (or opening) on `path`. */
  hasOpenHandle(path: string): boolean {
    return this.#slots.some((slot) => slot.hasOpenHandle(path));
  }

  /** @internal Clears a stale lock on `path` unless a live worker has a handle on it. */
  clearStaleLock(path: string): boolean {
    if (this.hasOpenHandle(path)) return false;
    try {
      return this.#options.driver.clearStaleLock(path);
    } catch {
      return false; // the open that follows reports the lock
    }
  }

  /** Whether worker `index` is running now. */
  isRunning(index: number): boolean {
    return this.#slots[index]?.running ?? false;
  }

  /**
   * Ends every worker once the calls sent to it are done (the closes and checkpoints of
   * the shards' handles among them), so that nothing keeps the process alive and the
   * files can be deleted. Calls made afterwards fail.
   */
  async shutdown(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#slots.map((slot) => slot.shutdown()));
  }

  /**
   * @internal Test hook: ends worker `index` as a crash would. `"terminate"` calls
   * `worker.terminate()` (as out of memory ends it); `"throw"` makes the worker throw an
   * uncaught error. Resolves once the host has seen it die.
   */
  killForTests(index: number, how: "terminate" | "throw"): Promise<void> {
    const slot = this.#slots[index];
    if (slot === undefined) throw new RangeError(`no worker ${index} (size ${this.size})`);
    return slot.kill(how);
  }
}

/** One worker: its message queue, its calls waiting for answers, its open handles. */
class WorkerSlot {
  readonly index: number;
  readonly #host: WorkerHost;
  #worker: Worker | null = null;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  #queue: Request[] = [];
  #transfer: Transferable[] = [];
  #scheduled = false;
  // Requests sent and not answered yet.
  #inFlight = 0;
  readonly #handles = new Set<WorkerHandle>();
  readonly #parts = new Map<number, SqlValue[][]>();
  // Answers received, settled in order from #backlogAt (see #drain).
  #backlog: Reply[] = [];
  #backlogAt = 0;
  #deferred = false;
  #onDeath: (() => void)[] = [];

  constructor(index: number, host: WorkerHost) {
    this.index = index;
    this.#host = host;
  }

  get running(): boolean {
    return this.#worker !== null;
  }

  hasOpenHandle(path: string): boolean {
    for (const handle of this.#handles) if (handle.path === path) return true;
    return false;
  }

  adopt(handle: WorkerHandle): void {
    this.#handles.add(handle);
  }

  forget(handle: WorkerHandle): void {
    this.#handles.delete(handle);
  }

  /** Sends `request` with the next batch; resolves with its answer's value. */
  call(
    request: Unsent<Request>,
    handle: WorkerHandle | undefined,
    path: string,
    transfer?: Transferable,
  ): Promise<unknown> {
    if (this.#host.closed && request.op !== "drain" && request.op !== "close") {
      return Promise.reject(
        new Error(`the manager was shut down: worker ${this.index} takes no more calls`),
      );
    }
    const id = this.#nextId++;
    const sent = { ...request, id } as Request;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, handle, path });
      this.#queue.push(sent);
      if (transfer !== undefined) this.#transfer.push(transfer);
      // Nothing in flight: sent at the end of this microtask (latency). Calls in flight: the
      // worker is busy, and a message to a busy thread is cheap (4 µs here, against 50-300
      // µs to wake a parked one); collected until the event loop turns (see also #receive).
      if (!this.#scheduled) {
        this.#scheduled = true;
        if (this.#inFlight === 0) queueMicrotask(this.#flushNow);
        else setImmediate(this.#flushNow);
      }
    });
  }

  readonly #flushNow = () => this.#flush();

  #flush(): void {
    this.#scheduled = false;
    const requests = this.#queue;
    const transfer = this.#transfer;
    this.#queue = [];
    this.#transfer = [];
    if (requests.length === 0) return;
    let worker: Worker;
    try {
      worker = this.#start();
    } catch (error) {
      // The worker cannot start: these calls fail.
      for (const request of requests) this.#fail(request, error);
      return;
    }
    this.#inFlight += requests.length;
    try {
      worker.postMessage(encodeRequests(requests), transfer);
      this.#host.counters.messages++;
      this.#host.counters.calls += requests.length;
    } catch {
      // A value that cannot be cloned: sent one by one, so that only its own call fails.
      for (const request of requests) {
        const own = request.op === "runMany" && "packed" in request.sets
          ? [request.sets.packed]
          : [];
        try {
          worker.postMessage(encodeRequests([request]), own);
          this.#host.counters.messages++;
          this.#host.counters.calls++;
        } catch (error) {
          this.#inFlight--;
          this.#fail(request, error);
        }
      }
    }
  }

  #fail(request: Request, error: unknown): void {
    const pending = this.#pending.get(request.id);
    this.#pending.delete(request.id);
    pending?.reject(error);
  }

  #start(): Worker {
    if (this.#worker !== null) return this.#worker;
    const worker = new Worker(new URL("./worker.ts", import.meta.url).href, { type: "module" });
    worker.onmessage = (event: MessageEvent<ReplyMessage>) => this.#receive(event.data);
    worker.onerror = (event: ErrorEvent) => {
      // Handled here: unhandled, the worker's error would be rethrown on this thread.
      event.preventDefault();
      const cause = event.error instanceof Error ? event.error : new Error(event.message);
      this.#die(`an uncaught error in it (${event.message})`, cause);
    };
    worker.onmessageerror = () => {
      this.#die("a message from it could not be read", new Error("messageerror"));
    };
    this.#worker = worker;
    this.#host.counters.started++;
    return worker;
  }

  #receive(message: ReplyMessage): void {
    if (!Array.isArray(message)) {
      const { id, values } = message.part;
      let parts = this.#parts.get(id);
      if (parts === undefined) this.#parts.set(id, parts = []);
      parts.push(values);
      return;
    }
    const replies = decodeReplies(message);
    this.#inFlight -= replies.length;
    for (const reply of replies) this.#backlog.push(reply);
    // What the callers woken by these answers ask next goes as one message once they all
    // have (the event loop's turn), not the first of them alone at once.
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flushNow);
    }
    if (!this.#deferred) this.#drain();
  }

  /**
   * Settles the answers in order. A handle's `inTransaction` is read by whoever awaited a
   * BEGIN or COMMIT once its promise settles, a few microtasks later: an answer that
   * changes the handle's transaction state after others were settled waits for the next
   * turn of the event loop, so every earlier caller reads the state of its own statement.
   */
  #drain(): void {
    this.#deferred = false;
    const backlog = this.#backlog;
    let settled = 0;
    while (this.#backlogAt < backlog.length) {
      const reply = backlog[this.#backlogAt] as Reply;
      const handle = this.#pending.get(reply.id)?.handle;
      if (
        settled > 0 && reply.state !== undefined && handle !== undefined &&
        handle.inTransaction !== reply.state.inTransaction
      ) {
        this.#deferred = true;
        setImmediate(this.#drainLater);
        return;
      }
      this.#backlogAt++;
      settled++;
      this.#settle(reply);
    }
    this.#backlog = [];
    this.#backlogAt = 0;
  }

  readonly #drainLater = () => {
    if (this.#deferred) this.#drain();
  };

  #settle(reply: Reply): void {
    const pending = this.#pending.get(reply.id);
    if (pending === undefined) return;
    this.#pending.delete(reply.id);
    if (reply.state !== undefined) pending.handle?.update(reply.state);
    if (!reply.ok) {
      this.#parts.delete(reply.id);
      pending.reject(deserializeError(reply.error));
      return;
    }
    const parts = this.#parts.get(reply.id);
    if (parts !== undefined) {
      this.#parts.delete(reply.id);
      const last = reply.value as PackedRows;
      parts.push(last.values);
      pending.resolve({ columns: last.columns, values: parts.flat() } satisfies PackedRows);
      return;
    }
    pending.resolve(reply.value);
  }

  /** The worker is gone: every call in flight and every handle on it fails. */
  #die(reason: string, cause: unknown, counted = true): void {
    const worker = this.#worker;
    if (worker === null) return;
    this.#worker = null;
    this.#inFlight = 0;
    worker.terminate();
    if (counted) this.#host.counters.died++;
    const shardIds = [
      ...new Set(
        [...this.#handles].map((h) => this.#host.shardIdOf(h.path)).filter((id) =>
          id !== undefined
        ),
      ),
    ].sort((a, b) => a - b);
    const errorFor = (path: string) =>
      new WorkerCrashedError({ path, workerIndex: this.index, shardIds, reason }, { cause });
    for (const handle of this.#handles) handle.markDead(errorFor(handle.path));
    this.#handles.clear();
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    this.#parts.clear();
    this.#backlog = [];
    this.#backlogAt = 0;
    this.#deferred = false;
    // Queued but not sent yet: failed too (their handles are dead).
    this.#queue = [];
    this.#transfer = [];
    for (const call of pending) call.reject(errorFor(call.path));
    const listeners = this.#onDeath;
    this.#onDeath = [];
    for (const listener of listeners) listener();
  }

  kill(how: "terminate" | "throw"): Promise<void> {
    if (this.#worker === null) return Promise.resolve();
    const died = new Promise<void>((resolve) => this.#onDeath.push(resolve));
    if (how === "terminate") {
      this.#die("it was terminated", new Error("worker.terminate() (test hook)"));
    } else {
      this.call({ op: "crash" }, undefined, "").catch(() => {});
    }
    return died;
  }

  async shutdown(): Promise<void> {
    if (this.#worker === null) return;
    try {
      await this.call({ op: "drain" }, undefined, "");
    } catch {
      // It died meanwhile: nothing left to wait for.
    }
    this.#die("the manager was shut down", new Error("shutdown"), false);
  }
}

/** A handle whose SQLite connection lives in a worker. */
class WorkerHandle implements DriverHandle {
  #id: number;
  readonly path: string;
  readonly #host: WorkerHost;
  readonly #slot: WorkerSlot;
  readonly #openOptions: OpenOptions;
  readonly #kind: DriverKind;
  #configured: ConfigureOptions | null = null;
  #state: HandleState = { open: true, inTransaction: false, cachedStatements: 0 };
  #dead: Error | null = null;
  #diedInTransaction = false;
  #closing: Promise<void> | null = null;

  constructor(
    host: WorkerHost,
    path: string,
    slot: WorkerSlot,
    openOptions: OpenOptions,
    kind: DriverKind,
  ) {
    this.#host = host;
    this.#id = host.nextHandleId();
    this.path = path;
    this.#slot = slot;
    this.#openOptions = openOptions;
    this.#kind = kind;
  }

  /** The handle's id in its worker (a new one after a reopen). */
  get id(): number {
    return this.#id;
  }

  get isOpen(): boolean {
    return this.#dead === null && this.#state.open;
  }

  get inTransaction(): boolean {
    return this.#dead === null && this.#state.inTransaction;
  }

  get cachedStatements(): number {
    return this.#dead === null ? this.#state.cachedStatements : 0;
  }

  update(state: HandleState): void {
    this.#state = state;
  }

  /** Why the handle is dead, or null while it lives. */
  get deadError(): Error | null {
    return this.#dead;
  }

  markDead(error: Error): void {
    this.#dead = error;
    this.#diedInTransaction = this.#state.inTransaction;
  }

  /** @internal Sends the open (the first time, or again in a restarted worker). */
  open(): Promise<unknown> {
    this.#slot.adopt(this);
    return this.#slot.call(
      {
        op: "open",
        handle: this.#id,
        path: this.path,
        driver: this.#kind,
        create: this.#openOptions.create,
        statementCacheSize: this.#openOptions.statementCacheSize,
      },
      this,
      this.path,
    ).catch((error) => {
      this.#slot.forget(this);
      throw error;
    });
  }

  call(request: Unsent<Request>, transfer?: Transferable): Promise<unknown> {
    if (this.#dead !== null) {
      // Died between statements, outside a transaction: reopened in the restarted worker
      // (as a libSQL socket is), so only the calls in flight at the death fail. One that
      // died inside a transaction fails its next call: the transaction is lost.
      if (this.#diedInTransaction || this.#configured === null || this.#closing !== null) {
        return Promise.reject(this.#dead);
      }
      this.#revive();
      request = { ...request, handle: this.#id } as Unsent<Request>;
    }
    return this.#slot.call(request, this, this.path, transfer);
  }

  #revive(): void {
    const configured = this.#configured as ConfigureOptions;
    this.#dead = null;
    this.#state = { open: true, inTransaction: false, cachedStatements: 0 };
    this.#id = this.#host.nextHandleId();
    // The dead worker's lock directory (node-sqlite3-wasm) is stale: the pool holds the
    // file's owner lock, and no live worker has a handle on the file.
    this.#host.clearStaleLock(this.path);
    // Pipelined: open, configure and the call go in one message.
    this.open().catch(() => {});
    this.#slot.call({ op: "configure", handle: this.#id, ...configured }, this, this.path)
      .catch(() => {});
  }

  configure(options: ConfigureOptions): Promise<void> {
    this.#configured = options;
    return this.call({ op: "configure", handle: this.#id, ...options }) as Promise<void>;
  }

  backup(target: string): Promise<void> {
    return this.call({ op: "backup", handle: this.id, target }) as Promise<void>;
  }

  run(sql: string, params?: Params): Promise<RunResult> {
    return this.call(withParams({ op: "run", handle: this.id, sql }, params)) as Promise<
      RunResult
    >;
  }

  runMany(sql: string, paramSets: readonly Params[]): Promise<number> {
    const packed = encodeParamSets(paramSets);
    const sets: ParamSetsPayload = packed ?? { sets: paramSets };
    return this.call(
      { op: "runMany", handle: this.id, sql, sets },
      packed?.packed,
    ) as Promise<number>;
  }

  async all(sql: string, params?: Params): Promise<Row[]> {
    const packed = await this.call(withParams({ op: "all", handle: this.id, sql }, params));
    return unpackRows(packed as PackedRows);
  }

  async get(sql: string, params?: Params): Promise<Row | undefined> {
    const row = await this.call(withParams({ op: "get", handle: this.id, sql }, params));
    return (row ?? undefined) as Row | undefined;
  }

  values(sql: string, params?: Params): Promise<PositionalRows> {
    return this.call(withParams({ op: "values", handle: this.id, sql }, params)) as Promise<
      PositionalRows
    >;
  }

  async exec(sql: string): Promise<void> {
    await this.call({ op: "exec", handle: this.id, sql });
  }

  async iterate(sql: string, params?: Params): Promise<DriverCursor> {
    const cursor = this.#host.nextHandleId(); // unique in the worker, across handles
    await this.call(withParams({ op: "iterate", handle: this.id, cursor, sql }, params));
    return new WorkerCursor(this, cursor);
  }

  close(): Promise<void> {
    // A dead worker took the connection with it: nothing is left to close.
    if (this.#dead !== null) return Promise.resolve();
    this.#closing ??= this.call({ op: "close", handle: this.id }).then(
      () => {
        this.#state = { open: false, inTransaction: false, cachedStatements: 0 };
        this.#slot.forget(this);
      },
      (error) => {
        if (this.#dead !== null) return; // died meanwhile: closed all the same
        this.#closing = null;
        throw error;
      },
    );
    return this.#closing;
  }
}

/**
 * Rows a worker cursor reads at a time at least (see {@link WorkerCursor.next}): with the
 * page read ahead, at most 2 x 2,048 rows a cursor wait here, so a stream stays bounded.
 * Pages of 256 rows made a 200k-row ordered scan five times the messages, each of which
 * may wake a parked thread (50-300 µs here).
 */
const MIN_FETCH = 2048;

/** A query being read in a worker, a page per call. */
class WorkerCursor implements DriverCursor {
  readonly #handle: WorkerHandle;
  readonly #id: number;
  readonly #handleId: number;
  #done = false;

  constructor(handle: WorkerHandle, id: number) {
    this.#handle = handle;
    this.#id = id;
    this.#handleId = handle.id;
  }

  // The next page, asked for as soon as a full page arrived: the worker reads it while
  // this thread works through the one it has (a scan is a stream of round trips otherwise).
  #ahead: { max: number; page: Promise<PackedRows> } | null = null;

  #ask(max: number): Promise<PackedRows> {
    return this.#handle.call({
      op: "next",
      handle: this.#handle.id,
      cursor: this.#id,
      max,
    }) as Promise<PackedRows>;
  }

  // The page being handed out (rows from #at on are left), and whether the worker's
  // cursor has no rows after it. A page's rows become objects only as they are handed out:
  // a 2,048-row page unpacked at once held the event loop several ms.
  #page: PackedRows | null = null;
  #at = 0;
  #ended = false;

  #left(): number {
    return this.#page === null ? 0 : rowCount(this.#page) - this.#at;
  }

  async next(max: number): Promise<Row[]> {
    if (this.#done) return [];
    // Its statement died with its worker: never read a reopened handle as the end of rows.
    const dead = this.#handle.deadError;
    if (dead !== null) throw dead;
    if (this.#handle.id !== this.#handleId) {
      throw new Error("Database is closed: the worker a query was read in was restarted");
    }
    // Small pages (iterate's 256 rows, split into runs) cost a round trip each: the worker
    // is asked for at least MIN_FETCH rows, and the rest is handed out from here.
    const fetch = Math.max(max, MIN_FETCH);
    const rows: Row[] = [];
    while (rows.length < max) {
      if (this.#left() === 0) {
        if (this.#ended) break;
        const ahead = this.#ahead;
        this.#ahead = null;
        const page = await (ahead?.page ?? this.#ask(fetch));
        if (page.more !== true) this.#ended = true;
        this.#page = page;
        this.#at = 0;
        continue;
      }
      const page = this.#page as PackedRows;
      const count = Math.min(max - rows.length, this.#left());
      unpackRowsInto(page, this.#at, count, rows);
      this.#at += count;
    }
    if (rows.length < max) this.#done = true; // ended, nothing left over
    else if (!this.#ended && this.#ahead === null && this.#left() < max) {
      const page = this.#ask(fetch);
      page.catch(() => {}); // seen by the next call to next(), if there is one
      this.#ahead = { max: fetch, page };
    }
    if (this.#left() === 0) this.#page = null;
    return rows;
  }

  async close(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    if (!this.#handle.isOpen || this.#handle.id !== this.#handleId) return;
    await this.#handle.call({ op: "closeCursor", handle: this.#handle.id, cursor: this.#id });
  }
}

function withParams<T extends object>(request: T, params: Params | undefined): T {
  return params === undefined ? request : { ...request, params };
}

/** The driver over `host`'s workers, opening handles with `inner` there. */
function workerDriver(host: WorkerHost, inner: Driver, kind: DriverKind): Driver {
  const driver: Driver = {
    // The inner driver's name: stats and errors read the same as in-thread.
    name: inner.name,
    canShare: false,
    // The worker has the file until its close is done: keep it owned until then.
    closeHoldsFile: true,
    async open(path: string, options: OpenOptions): Promise<DriverHandle> {
      const handle = new WorkerHandle(host, path, host.slotFor(path), options, kind);
      await handle.open();
      return handle;
    },
    configure(handle: DriverHandle, options: ConfigureOptions): Promise<void> {
      return (handle as WorkerHandle).configure(options);
    },
    isBrokenHandleError(error: unknown): boolean {
      return error instanceof WorkerCrashedError || inner.isBrokenHandleError(error);
    },
    isBusyError(error: unknown): boolean {
      return inner.isBusyError(error);
    },
    clearStaleLock(path: string): boolean {
      // A handle still open in a live worker (closing, FIFO before the next open) holds
      // a live lock, not a stale one.
      if (host.hasOpenHandle(path)) return false;
      return inner.clearStaleLock(path);
    },
    backup(handle: DriverHandle, target: string): Promise<void> {
      return (handle as WorkerHandle).backup(target);
    },
  };
  if (inner.checkText !== undefined) {
    const check = inner.checkText.bind(inner);
    driver.checkText = (text: string) => check(text);
  }
  return driver;
}

/**
 * The hosts in use, one per driver and worker count, shared by the managers of the process:
 * two managers on one directory share its files' handles (one registry entry per file), so
 * a handle opened in a worker must outlive the manager that opened it while the other one
 * uses it. A host ends when the last manager using it releases it.
 */
const shared = new Map<string, { host: WorkerHost; users: number }>();

/** @internal The process's host for these options (made on first use), counted as used. */
export function acquireWorkerHost(options: WorkerHostOptions): WorkerHost {
  const key = `${options.kind}/${options.workers}`;
  let entry = shared.get(key);
  if (entry === undefined) {
    entry = { host: new WorkerHost(options), users: 0 };
    shared.set(key, entry);
  }
  entry.users++;
  return entry.host;
}

/** @internal A manager is done with `host`: the last user's release shuts it down. */
export async function releaseWorkerHost(host: WorkerHost): Promise<void> {
  for (const [key, entry] of shared) {
    if (entry.host !== host) continue;
    if (--entry.users > 0) return;
    shared.delete(key);
    break;
  }
  await host.shutdown();
}

const hosts = new WeakMap<object, WorkerHost>();

/** @internal Records `host` as the workers of `owner` (a manager), for the test hook. */
export function registerWorkerHost(owner: object, host: WorkerHost): void {
  hosts.set(owner, host);
}

/**
 * @internal Test hook (not exported from mod.ts): the workers of a manager, or undefined
 * when it runs in-thread.
 */
export function workerHostOf(owner: object): WorkerHost | undefined {
  return hosts.get(owner);
}
