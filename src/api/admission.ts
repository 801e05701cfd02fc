/**
 * A manager's admission gate: operations run only once the directory is open, never after
 * shutdown, never while a reshard holds the gate or waits unfinished; a reshard in turn
 * waits for the operations in flight to leave. (Each operation passes it through
 * `admit()` in `routing/admission.ts`.)
 *
 * @module
 */

import { PoolClosedError, ReshardError } from "../errors.ts";
import type { ReshardPlan } from "./reshard.ts";

/**
 * The gate of one manager's directory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Admission } from "./admission.ts";
 * let admission: Admission;
 * admission = new Admission("./data", () => {
 *   admission.markOpen();
 *   return Promise.resolve();
 * });
 * assert.equal(admission.isReady, false);
 * await admission.ready();
 * assert.equal(admission.isReady, true);
 * admission.enter();
 * const release = admission.hold();
 * const drained = admission.drain();
 * assert.equal(admission.isReady, false);
 * admission.leave();
 * await drained;
 * release();
 * assert.equal(admission.isReady, true);
 * ```
 */
export class Admission {
  readonly #dbDir: string;
  readonly #open: () => Promise<void>;
  #opening: Promise<void> | null = null;
  #isOpen = false;
  #closed = false;
  // Resharding: the plan under way or left unfinished, the gate that holds operations off
  // while one runs, and the operations in flight it waits for.
  #pending: ReshardPlan | null = null;
  #held: Promise<void> | null = null;
  #inFlight = 0;
  #drained: (() => void) | null = null;

  /** A gate over `dbDir`, which `open` opens (calling {@link markOpen} once it has). */
  constructor(dbDir: string, open: () => Promise<void>) {
    this.#dbDir = dbDir;
    this.#open = open;
  }

  /** True once the directory is open, while it is not shut down and no reshard runs or waits. */
  get isReady(): boolean {
    return this.#isOpen && !this.#closed && this.#held === null && this.#pending === null;
  }

  /**
   * Resolves once the directory is open and no reshard is running. Rejects after shutdown,
   * and while an unfinished reshard waits to be resumed.
   */
  ready(): Promise<void> {
    if (this.#closed) return Promise.reject(this.closedError());
    const opening = this.startOpening();
    if (this.#held !== null) return this.#held;
    return opening.then(() => {
      if (this.#pending !== null && this.#held === null) throw this.#pendingError(this.#pending);
    });
  }

  /** Starts opening once; a failed open (a live rival owner, a bad map) is retried next time. */
  startOpening(): Promise<void> {
    if (this.#opening === null) {
      const opening = this.#open();
      this.#opening = opening;
      opening.catch(() => {
        if (this.#opening === opening) this.#opening = null;
      });
    }
    return this.#opening;
  }

  /** The directory is open: owned, its map loaded, its batches recovered. */
  markOpen(): void {
    this.#isOpen = true;
  }

  /** Shutdown has begun: nothing is admitted any more. */
  close(): void {
    this.#closed = true;
  }

  /** Whether shutdown has begun. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** The error of a call after shutdown. */
  closedError(): PoolClosedError {
    return new PoolClosedError(this.#dbDir, "the shard manager was shut down");
  }

  /** The reshard plan under way or left unfinished, if any; operations wait while one is. */
  get pending(): ReshardPlan | null {
    return this.#pending;
  }

  set pending(plan: ReshardPlan | null) {
    this.#pending = plan;
  }

  /** An operation enters (only while {@link isReady}). */
  enter(): void {
    this.#inFlight++;
  }

  /** An operation leaves. */
  leave(): void {
    if (--this.#inFlight === 0) this.#drained?.();
  }

  /** Whether a reshard holds the gate. */
  get isHeld(): boolean {
    return this.#held !== null;
  }

  /** Holds new operations off (a reshard starts); returns the function that lets them in. */
  hold(): () => void {
    let open!: () => void;
    this.#held = new Promise<void>((resolve) => open = resolve);
    return () => {
      this.#held = null;
      open();
    };
  }

  /**
   * Undefined when no operation is in flight, else a promise that resolves once the last
   * one has left (while the gate is held, no new one enters).
   */
  drain(): Promise<void> | undefined {
    if (this.#inFlight === 0) return undefined;
    return new Promise<void>((resolve) =>
      this.#drained = () => {
        this.#drained = null;
        resolve();
      }
    );
  }

  #pendingError(plan: ReshardPlan): ReshardError {
    if (plan.mode === "repair") {
      return new ReshardError(
        this.#dbDir,
        `an unfinished placement repair was found; resume it with manager.repairPlacement() ` +
          `(or "deno task shardlite check --repair"). No operation is routed until then.`,
      );
    }
    return new ReshardError(
      this.#dbDir,
      `an unfinished reshard from ${JSON.stringify(plan.from)} to ${JSON.stringify(plan.to)} ` +
        `was found; resume it with manager.reshard(${
          plan.to.type === "hash" ? plan.to.numShards : "<the same strategy>"
        }) (or "deno task shardlite reshard"), or roll it back with abortReshard(). No ` +
        `operation is routed until then.`,
    );
  }
}
