/**
 * Gives the event loop a turn: timers, I/O and other requests run before the caller goes
 * on. A `setTimeout(0)` costs about 2 ms here (nested timers are clamped); `setImmediate`
 * about 8 µs, and timers that are due still fire in between.
 *
 * @module
 */

import { setImmediate } from "node:timers";

/** Resolves after the event loop has had a turn. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** How long a library call may hold the event loop before it gives it a turn, ms. */
export const SLICE_MS = 10;

/** @internal The slice new {@link TimeSlice}s get: tests set 0 to make every check a turn. */
export const sliceSettings = { ms: SLICE_MS };

/**
 * A budget of event-loop time for one long call: `due()` says when the call has held the
 * loop for `sliceMs` since its last turn (a clock read: call it every few hundred rows, not
 * every row), and `pause()` gives the loop a turn and starts a new slice.
 *
 * @example
 * ```ts
 * import { TimeSlice } from "./yield.ts";
 * const slice = new TimeSlice();
 * let sum = 0;
 * for (let i = 0; i < 1_000_000; i++) {
 *   sum += i;
 *   if ((i & 1023) === 0 && slice.due()) await slice.pause();
 * }
 * if (sum !== 499_999_500_000) throw new Error("every number once");
 * ```
 */
export class TimeSlice {
  readonly #sliceMs: number;
  #started = performance.now();
  #turn: Promise<void> | null = null;
  /** Turns given so far. */
  pauses = 0;

  constructor(sliceMs = sliceSettings.ms) {
    this.#sliceMs = sliceMs;
  }

  /** Whether the slice is used up. */
  due(): boolean {
    return performance.now() - this.#started >= this.#sliceMs;
  }

  /**
   * Gives the event loop a turn; the next slice starts when it comes back. Callers that
   * share a slice (the shards of one call, running at once) and pause in the same turn
   * wait for the same turn: the slice is one budget for all of them, not one each.
   */
  pause(): Promise<void> {
    this.pauses++;
    this.#turn ??= yieldToEventLoop().then(() => {
      this.#turn = null;
      this.#started = performance.now();
    });
    return this.#turn;
  }

  /** `pause()` when the slice is used up, else nothing (an already-settled promise). */
  maybePause(): Promise<void> | undefined {
    return this.due() ? this.pause() : undefined;
  }
}
