/**
 * A fault-injecting {@link Driver} for tests: it wraps a real driver (node-sqlite3-wasm
 * by default) and, following a programmable plan, makes chosen calls fail, stall or
 * never finish.
 *
 * Phases are recognised from the call: `open` (`Driver.open`), `configure`
 * (`Driver.configure`, or a setup PRAGMA sent through the handle), `begin`, `commit`,
 * `rollback` (by SQL text), `close` (`DriverHandle.close`), `internal` (the pool's own
 * probes and checkpoints: `SELECT count(*) FROM sqlite_schema`, other PRAGMAs) and
 * `statement` (everything else, SAVEPOINT included).
 *
 * Fault kinds:
 * - `error`: a generic error (the pool reports it as a QueryError / ShardOpenError);
 * - `broken`: "disk I/O error", which means a broken handle; the handle stays broken
 *   (every later call on it fails the same way) unless the rule says `sticky: false`;
 * - `busy`: "database is locked" (SQLITE_BUSY, errcode 5);
 * - `slow`: the call answers through a promise after `delayMs` (an async handle);
 * - `never`: the call answers through a promise that settles only when the test calls
 *   {@link FakeDriver.releaseHung} (or disposes the driver).
 *
 * `timing: "before"` (the default) fails or stalls before the real call runs, so it has
 * no effect; `timing: "after"` runs the real call first and then loses or delays its
 * answer (a COMMIT that committed but whose reply never came).
 *
 * Calls on one handle run in the order they are made, as on one connection: a call
 * stalled before it runs holds up the calls made after it on that handle (close()
 * excepted: it never waits), while a call whose answer is what stalls does not.
 *
 * @example Fail the second COMMIT
 * ```ts
 * import { FakeDriver } from "./fake_driver.ts";
 * const fake = new FakeDriver();
 * fake.inject({ phase: "commit", kind: "error", when: { nth: 2 } });
 * // new ConnectionPool(path, { driver: fake, ... })
 * ```
 *
 * @module
 */

import type {
  ConfigureOptions,
  Driver,
  DriverHandle,
  OpenOptions,
  PositionalRows,
} from "../src/driver/driver.ts";
import { wasmDriver } from "../src/driver/wasm.ts";
import type { Params, Row, RunResult } from "../src/types.ts";
import { prng } from "./helpers.ts";

/** Where a fault can be injected. */
export type FaultPhase =
  | "open"
  | "configure"
  | "begin"
  | "statement"
  | "commit"
  | "rollback"
  | "close"
  | "internal";

/** Every phase, in the order a handle's life meets them. */
export const FAULT_PHASES: readonly FaultPhase[] = [
  "open",
  "configure",
  "begin",
  "statement",
  "commit",
  "rollback",
  "close",
  "internal",
];

/** What an injected fault does. */
export type FaultKind = "error" | "broken" | "busy" | "slow" | "never";

/** Every fault kind. */
export const FAULT_KINDS: readonly FaultKind[] = ["error", "broken", "busy", "slow", "never"];

/**
 * When a rule fires, counted over the calls it matches (1-based): every call, the nth
 * call only, every call from the nth on, or each call with a probability drawn from the
 * driver's seeded generator.
 */
export type FaultWhen =
  | "every"
  | { nth: number }
  | { from: number }
  | { probability: number };

/** One rule of a fault plan. */
export interface FaultRule {
  /** The phase the rule watches. */
  phase: FaultPhase;
  /** What happens when it fires. */
  kind: FaultKind;
  /** When it fires among the calls it matches. Default `"every"`. */
  when?: FaultWhen;
  /** Only calls whose SQL matches (handle calls only). */
  sql?: RegExp;
  /** Only calls on this path (open, configure and handle calls). */
  path?: string;
  /** Fire at most this many times. Default unbounded. */
  times?: number;
  /** For `slow`: the delay, in ms. Default 20. */
  delayMs?: number;
  /** Fail or stall before the real call (no effect) or after it (effect, answer lost). */
  timing?: "before" | "after";
  /** For `broken`: whether the handle stays broken afterwards. Default true. */
  sticky?: boolean;
}

/** The error an injected fault throws; its message is what a real driver would say. */
export class InjectedFault extends Error {
  /** The kind of fault. */
  readonly kind: FaultKind;
  /** The phase it was injected in. */
  readonly phase: FaultPhase;
  /** SQLite's primary result code, as drivers expose it. */
  readonly errcode: number | undefined;
  /** SQLite's code name, as drivers expose it. */
  readonly code: string | undefined;
  /** Creates the error for a fault of `kind` in `phase`. */
  constructor(kind: FaultKind, phase: FaultPhase, detail: string) {
    const message = kind === "broken"
      ? "disk I/O error"
      : kind === "busy"
      ? "database is locked"
      : `fake driver: injected ${kind} in ${phase} (${detail})`;
    super(message);
    this.name = "InjectedFault";
    this.kind = kind;
    this.phase = phase;
    this.errcode = kind === "broken" ? 10 : kind === "busy" ? 5 : undefined;
    this.code = kind === "broken" ? "SQLITE_IOERR" : kind === "busy" ? "SQLITE_BUSY" : undefined;
  }
}

/** What a hung call (`never`) got when the test released it. */
export class HungCallReleased extends Error {
  /** The phase the call was in. */
  readonly phase: FaultPhase;
  /** Creates the error. */
  constructor(phase: FaultPhase) {
    super(`fake driver: a hung ${phase} call was released by the test`);
    this.name = "HungCallReleased";
    this.phase = phase;
  }
}

/** Counters of one phase. */
export interface PhaseCounters {
  /** Calls seen. */
  calls: number;
  /** Faults injected (of any kind). */
  faults: number;
  /** Calls that returned or resolved. */
  succeeded: number;
  /** Calls that threw or rejected. */
  failed: number;
}

/** A call in one phase, as {@link FakeDriverOptions.onCall} sees it. */
export interface CallInfo {
  /** The call's phase. */
  phase: FaultPhase;
  /** The shard file. */
  path: string;
  /** The SQL, for handle calls. */
  sql: string | undefined;
  /** The fault injected, if any. */
  fault: FaultKind | undefined;
}

/** Options of a {@link FakeDriver}. */
export interface FakeDriverOptions {
  /** The real driver underneath. Default: node-sqlite3-wasm. */
  inner?: Driver;
  /** Seed of the generator behind `{ probability }` rules. Default 1. */
  seed?: number;
  /** Rules to start with. */
  rules?: readonly FaultRule[];
  /** Called at the start of every call (to sample invariants mid-storm). */
  onCall?: (call: CallInfo) => void;
  /**
   * Answer every call through a promise (an asynchronous driver), faults or not; errors
   * then arrive as rejections. Default false: calls without a delaying fault answer
   * synchronously and throw synchronously.
   */
  asyncAnswers?: boolean;
}

// The pool's setup statements, when a driver without a configure hook sends them.
const CONFIGURE_PRAGMA =
  /^\s*PRAGMA\s+(locking_mode|journal_mode|foreign_keys|synchronous|cache_size|busy_timeout)\s*=/i;

/** The phase a handle call belongs to, from its SQL. */
export function phaseOfSql(sql: string): FaultPhase {
  const head = sql.trimStart().slice(0, 32).toUpperCase();
  if (head.startsWith("BEGIN")) return "begin";
  if (head.startsWith("COMMIT") || /^END\b/.test(head)) return "commit";
  if (/^ROLLBACK\s*(TRANSACTION\s*)?(;|$)/.test(head)) return "rollback";
  if (CONFIGURE_PRAGMA.test(sql)) return "configure";
  if (head.startsWith("PRAGMA")) return "internal";
  if (/^\s*SELECT\s+count\(\*\)\s+FROM\s+sqlite_(schema|master)\s*$/i.test(sql)) return "internal";
  return "statement";
}

interface LiveRule {
  rule: FaultRule;
  seen: number;
  fired: number;
}

interface HungCall {
  phase: FaultPhase;
  /** Settles the call: runs (or, after the fact, delivers) the real call, or rejects. */
  settle(perform: boolean): void;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

/** A handle of the {@link FakeDriver}: every call goes through the plan. */
export class FakeHandle implements DriverHandle {
  /** The real handle underneath. */
  readonly inner: DriverHandle;
  /** The shard file. */
  readonly path: string;
  /** The handle's number (1, 2, ... in opening order). */
  readonly id: number;
  /** Set once a sticky `broken` fault hit: every later call fails with it. */
  brokenBy: InjectedFault | null = null;
  /** Whether open() answered the caller with this handle (a lost answer leaves it ours). */
  delivered = false;
  /** Whether close() was called (whatever it answered). */
  closeCalled = false;
  /** @internal Settles when the calls made so far have run: the next call's turn. */
  busy: Promise<void> | null = null;
  /** Calls in flight on this handle now (async answers not yet delivered). */
  inFlight = 0;
  /** The most calls in flight on this handle at once. */
  maxInFlight = 0;
  readonly #driver: FakeDriver;

  /** @internal Made by {@link FakeDriver.open}. */
  constructor(driver: FakeDriver, inner: DriverHandle, path: string, id: number) {
    this.#driver = driver;
    this.inner = inner;
    this.path = path;
    this.id = id;
  }

  get isOpen(): boolean {
    return this.inner.isOpen;
  }

  get inTransaction(): boolean {
    return this.inner.inTransaction;
  }

  get cachedStatements(): number {
    return this.inner.cachedStatements;
  }

  #call<T>(sql: string, real: () => T | Promise<T>): T | Promise<T> {
    const phase = phaseOfSql(sql);
    return this.#driver.intercept(phase, this.path, sql, this, real);
  }

  run(sql: string, params?: Params): RunResult | Promise<RunResult> {
    return this.#call(sql, () => this.inner.run(sql, params));
  }

  runMany(sql: string, paramSets: readonly Params[]): number | Promise<number> {
    return this.#call(sql, () => this.inner.runMany(sql, paramSets));
  }

  all(sql: string, params?: Params): Row[] | Promise<Row[]> {
    return this.#call(sql, () => this.inner.all(sql, params));
  }

  get(sql: string, params?: Params): Row | undefined | Promise<Row | undefined> {
    return this.#call(sql, () => this.inner.get(sql, params));
  }

  values(sql: string, params?: Params): PositionalRows | Promise<PositionalRows> {
    return this.#call(sql, () => this.inner.values(sql, params));
  }

  exec(sql: string): void | Promise<void> {
    return this.#call(sql, () => this.inner.exec(sql));
  }

  close(): void | Promise<void> {
    this.closeCalled = true;
    return this.#driver.intercept("close", this.path, undefined, this, () => this.inner.close());
  }
}

/**
 * The fault-injecting driver. Counters per phase are in {@link counters}; handles it
 * opened (in order) in {@link handles}. Dispose it (`await using`) to release hung calls
 * and close any real handle the code under test left open.
 */
export class FakeDriver implements Driver {
  /** A short name for stats and errors. */
  readonly name: string;
  /** The real driver underneath. */
  readonly inner: Driver;
  /** Counters per phase. */
  readonly counters: Record<FaultPhase, PhaseCounters>;
  /** Every handle opened, in order. */
  readonly handles: FakeHandle[] = [];
  /** The most real handles open at once (see {@link openHandles}), per path. */
  readonly maxOpenHandles: Map<string, number> = new Map();
  /** Called at the start of every call. */
  onCall: ((call: CallInfo) => void) | undefined;
  /** Whether every call answers through a promise. */
  asyncAnswers: boolean;
  #rules: LiveRule[] = [];
  #random: () => number;
  readonly #hung = new Set<HungCall>();
  readonly #pending = new Set<Promise<unknown>>();
  #nextHandleId = 1;

  /** Creates a driver over `options.inner` (default node-sqlite3-wasm). */
  constructor(options: FakeDriverOptions = {}) {
    this.inner = options.inner ?? wasmDriver;
    this.name = `fake(${this.inner.name})`;
    this.#random = prng(options.seed ?? 1);
    this.onCall = options.onCall;
    this.asyncAnswers = options.asyncAnswers ?? false;
    this.counters = Object.fromEntries(
      FAULT_PHASES.map((phase) => [phase, { calls: 0, faults: 0, succeeded: 0, failed: 0 }]),
    ) as Record<FaultPhase, PhaseCounters>;
    for (const rule of options.rules ?? []) this.inject(rule);
  }

  /** Whether handles can share a file (the inner driver's answer). */
  get canShare(): boolean {
    return this.inner.canShare;
  }

  /** Adds a rule; returns a function that removes it. */
  inject(rule: FaultRule): () => void {
    const live: LiveRule = { rule, seen: 0, fired: 0 };
    this.#rules.push(live);
    return () => {
      this.#rules = this.#rules.filter((r) => r !== live);
    };
  }

  /** Removes every rule, or those of `phases` (hung calls stay hung until released). */
  clearFaults(phases?: readonly FaultPhase[]): void {
    this.#rules = phases === undefined
      ? []
      : this.#rules.filter((live) => !phases.includes(live.rule.phase));
  }

  /**
   * Lifts the rules of `phases` for a while; the returned function puts them back (with
   * what they had left to fire).
   */
  suspendFaults(phases: readonly FaultPhase[]): () => void {
    const suspended = this.#rules.filter((live) => phases.includes(live.rule.phase));
    this.#rules = this.#rules.filter((live) => !phases.includes(live.rule.phase));
    return () => {
      this.#rules.push(...suspended);
    };
  }

  /** Reseeds the generator behind `{ probability }` rules. */
  reseed(seed: number): void {
    this.#random = prng(seed);
  }

  /** Calls hung now (`never` faults not yet released). */
  get hungCalls(): number {
    return this.#hung.size;
  }

  /** Calls whose answer is still on its way (slow or hung). */
  get pendingCalls(): number {
    return this.#pending.size;
  }

  /**
   * Real handles open now on `path` (every path when omitted) that the caller received
   * and has not asked to close: a handle whose open answer was lost, or whose close()
   * failed or hangs, is the fake's doing, not the caller's.
   */
  openHandles(path?: string): number {
    return this.handles.filter((h) =>
      h.inner.isOpen && h.delivered && !h.closeCalled && (path === undefined || h.path === path)
    ).length;
  }

  /**
   * Settles every hung call: by default they reject with {@link HungCallReleased}
   * (a `before` call never ran); with `perform`, a `before` call runs now and a
   * `after` call delivers its real answer. Returns how many were released.
   */
  releaseHung(options: { perform?: boolean } = {}): number {
    const hung = [...this.#hung];
    this.#hung.clear();
    for (const call of hung) call.settle(options.perform ?? false);
    return hung.length;
  }

  /** Resolves when every slow or hung answer has been delivered (release hung ones first). */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) {
      await Promise.allSettled([...this.#pending]);
    }
  }

  /** Opens a handle through the plan. */
  open(path: string, options: OpenOptions): DriverHandle | Promise<DriverHandle> {
    const answer = this.intercept(
      "open",
      path,
      undefined,
      undefined,
      (): FakeHandle | Promise<FakeHandle> => {
        const opened = this.inner.open(path, options);
        return isThenable(opened)
          ? Promise.resolve(opened).then((inner) => this.#wrap(inner, path))
          : this.#wrap(opened, path);
      },
    );
    // Only a handle that reached the caller is the caller's to close.
    const delivered = (handle: FakeHandle): FakeHandle => {
      handle.delivered = true;
      const open = this.openHandles(path);
      if (open > (this.maxOpenHandles.get(path) ?? 0)) this.maxOpenHandles.set(path, open);
      return handle;
    };
    return isThenable(answer) ? answer.then(delivered) : delivered(answer);
  }

  /** Configures a handle through the plan; the inner driver configures the real one. */
  configure(handle: DriverHandle, options: ConfigureOptions): void | Promise<void> {
    const fake = handle instanceof FakeHandle ? handle : undefined;
    return this.intercept(
      "configure",
      fake?.path ?? "",
      undefined,
      fake,
      () => this.inner.configure(fake?.inner ?? handle, options),
    );
  }

  /** Injected broken faults, and whatever the inner driver calls broken. */
  isBrokenHandleError(error: unknown): boolean {
    if (error instanceof InjectedFault) return error.kind === "broken";
    return this.inner.isBrokenHandleError(error);
  }

  /** Injected busy faults, and whatever the inner driver calls busy. */
  isBusyError(error: unknown): boolean {
    if (error instanceof InjectedFault) return error.kind === "busy";
    return this.inner.isBusyError(error);
  }

  /** The inner driver's cleanup after a crash. */
  clearStaleLock(path: string): boolean {
    return this.inner.clearStaleLock(path);
  }

  /** The inner driver's backup, on the real handle. */
  backup(handle: DriverHandle, target: string): void | Promise<void> {
    return this.inner.backup(handle instanceof FakeHandle ? handle.inner : handle, target);
  }

  /** Releases hung calls, waits for pending answers, closes real handles left open. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.clearFaults();
    this.releaseHung();
    await this.settled();
    for (const handle of this.handles) {
      try {
        if (handle.inner.isOpen) await handle.inner.close();
      } catch {
        // Best effort: the test is over.
      }
    }
  }

  #wrap(inner: DriverHandle, path: string): FakeHandle {
    const handle = new FakeHandle(this, inner, path, this.#nextHandleId++);
    this.handles.push(handle);
    return handle;
  }

  #pick(phase: FaultPhase, path: string, sql: string | undefined): FaultRule | undefined {
    let chosen: FaultRule | undefined;
    for (const live of this.#rules) {
      const { rule } = live;
      if (rule.phase !== phase) continue;
      if (rule.path !== undefined && rule.path !== path) continue;
      if (rule.sql !== undefined && (sql === undefined || !rule.sql.test(sql))) continue;
      if (rule.times !== undefined && live.fired >= rule.times) continue;
      live.seen++;
      const when = rule.when ?? "every";
      let fires: boolean;
      if (when === "every") fires = true;
      else if ("nth" in when) fires = live.seen === when.nth;
      else if ("from" in when) fires = live.seen >= when.from;
      else fires = this.#random() < when.probability;
      // Every matching rule counts the call; the first that fires wins.
      if (fires && chosen === undefined) {
        live.fired++;
        chosen = rule;
      }
    }
    return chosen;
  }

  /**
   * @internal Runs `real` for a call in `phase`, through the plan. Calls on one handle
   * run in the order they were made (one connection): a call that holds the handle
   * (`slow` or `never` before the real call) makes the later ones wait their turn,
   * except close(), which never waits.
   */
  intercept<T>(
    phase: FaultPhase,
    path: string,
    sql: string | undefined,
    handle: FakeHandle | undefined,
    real: () => T | Promise<T>,
  ): T | Promise<T> {
    if (handle === undefined || phase === "close") {
      return this.#answer(phase, path, sql, handle, real, () => {});
    }
    const prior = handle.busy;
    let free!: () => void;
    const gate = new Promise<void>((resolve) => (free = resolve));
    handle.busy = gate;
    let freed = false;
    const executed = () => {
      if (freed) return;
      freed = true;
      free();
      if (handle.busy === gate) handle.busy = null;
    };
    if (prior === null) return this.#answer(phase, path, sql, handle, real, executed);
    return this.#track(
      handle,
      prior.then(() => this.#answer(phase, path, sql, handle, real, executed)),
    );
  }

  #answer<T>(
    phase: FaultPhase,
    path: string,
    sql: string | undefined,
    handle: FakeHandle | undefined,
    real: () => T | Promise<T>,
    executed: () => void,
  ): T | Promise<T> {
    if (!this.asyncAnswers) return this.#intercept(phase, path, sql, handle, real, executed);
    let answer: T | Promise<T>;
    try {
      answer = this.#intercept(phase, path, sql, handle, real, executed);
    } catch (error) {
      return this.#track(handle, Promise.reject(error));
    }
    return isThenable(answer) ? answer : this.#track(handle, Promise.resolve(answer));
  }

  // `executed` is called once the real call has run (or is known never to run): the
  // handle's next call may go then.
  #intercept<T>(
    phase: FaultPhase,
    path: string,
    sql: string | undefined,
    handle: FakeHandle | undefined,
    real: () => T | Promise<T>,
    executed: () => void,
  ): T | Promise<T> {
    const counters = this.counters[phase];
    counters.calls++;
    // A broken handle stays broken; closing it still works.
    if (handle?.brokenBy != null && phase !== "close") {
      counters.failed++;
      executed();
      this.onCall?.({ phase, path, sql, fault: "broken" });
      throw handle.brokenBy;
    }
    const rule = this.#pick(phase, path, sql);
    if (rule !== undefined) counters.faults++;
    this.onCall?.({ phase, path, sql, fault: rule?.kind });
    const detail = `${path}${sql === undefined ? "" : `: ${sql.slice(0, 60)}`}`;
    const timing = rule?.timing ?? "before";

    const succeed = <V>(value: V): V => {
      counters.succeeded++;
      return value;
    };
    const fail = (error: unknown): never => {
      counters.failed++;
      throw error;
    };
    const runReal = (): T | Promise<T> => {
      let result: T | Promise<T>;
      try {
        result = real();
      } catch (error) {
        return fail(error);
      } finally {
        executed();
      }
      return isThenable(result) ? Promise.resolve(result).then(succeed, fail) : succeed(result);
    };
    // The real call now, its outcome kept for later.
    const runNow = (): { ok: true; value: T | Promise<T> } | { ok: false; error: unknown } => {
      try {
        return { ok: true, value: real() };
      } catch (error) {
        return { ok: false, error };
      } finally {
        executed();
      }
    };

    if (rule === undefined) return runReal();

    switch (rule.kind) {
      case "error":
      case "busy":
      case "broken": {
        const fault = new InjectedFault(rule.kind, phase, detail);
        if (rule.kind === "broken" && (rule.sticky ?? true) && handle !== undefined) {
          handle.brokenBy = fault;
        }
        if (timing === "after") {
          const outcome = runNow();
          // An async real call: deliver the fault once it has run.
          if (outcome.ok && isThenable(outcome.value)) {
            return this.#track(
              handle,
              Promise.resolve(outcome.value).then(() => fail(fault), () => fail(fault)),
            );
          }
        } else {
          executed();
        }
        return fail(fault);
      }
      case "slow": {
        const delayMs = rule.delayMs ?? 20;
        const wait = () => new Promise<void>((resolve) => setTimeout(resolve, delayMs));
        if (timing === "before") {
          return this.#track(handle, wait().then(runReal));
        }
        const outcome = runNow();
        return this.#track(
          handle,
          wait().then(async () => {
            if (!outcome.ok) return fail(outcome.error);
            try {
              return succeed(await outcome.value);
            } catch (error) {
              return fail(error);
            }
          }),
        );
      }
      case "never": {
        let outcome: { ok: true; value: T | Promise<T> } | { ok: false; error: unknown } | null =
          null;
        if (timing === "after") outcome = runNow();
        const promise = new Promise<T>((resolve, reject) => {
          this.#hung.add({
            phase,
            settle: (perform) => {
              if (!perform) {
                executed();
                reject(new HungCallReleased(phase));
                return;
              }
              outcome ??= runNow();
              if (outcome.ok) resolve(outcome.value);
              else reject(outcome.error);
            },
          });
        }).then(succeed, fail);
        return this.#track(handle, promise);
      }
    }
  }

  #track<V>(handle: FakeHandle | undefined, promise: Promise<V>): Promise<V> {
    if (handle !== undefined) {
      handle.inFlight++;
      if (handle.inFlight > handle.maxInFlight) handle.maxInFlight = handle.inFlight;
    }
    const done = promise.finally(() => {
      if (handle !== undefined) handle.inFlight--;
      this.#pending.delete(done);
    });
    // The caller gets `promise`; `done` is only for settled(), never left unhandled.
    done.catch(() => {});
    this.#pending.add(done);
    return promise;
  }
}

/** A fake over node-sqlite3-wasm (the default) with `rules`. */
export function fakeDriver(options: FakeDriverOptions = {}): FakeDriver {
  return new FakeDriver(options);
}
