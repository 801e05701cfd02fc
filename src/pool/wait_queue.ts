/**
 * A FIFO of callers waiting for a lease, with O(1) removal of a waiter that timed out
 * or was aborted (it is marked and skipped, and never receives a lease).
 *
 * Clocks and timers are the dearest part of a contended hand-off (a `performance.now()`
 * costs 110-145 ns here, a timer about 2 µs to set and clear), so:
 *
 * - Deadlines share one timer, armed for the earliest deadline.
 * - A waiter's start is stamped from the next clock read the queue makes rather than from
 *   a read of its own: the first waiter after a quiet spell reads the clock, and for
 *   {@link STAMP_SLACK_MS} after that, newcomers are stamped by the next hand-off or by
 *   the timer, which is armed to fire within that slack. A stamp is never earlier than
 *   the real start, so no wait ever times out early; it may time out up to the slack
 *   late (more when the event loop is blocked meanwhile), and a wait-time figure may be
 *   short by as much.
 *
 * @module
 */

/** How late (ms) a waiter's start may be stamped, at most. */
export const STAMP_SLACK_MS = 2;

/** One caller waiting for a value. */
export interface Waiter<T> {
  /** When the wait began (performance.now() clock; NaN until the queue stamps it). */
  started: number;
  /** When the wait times out (performance.now() clock; NaN until stamped). */
  deadline: number;
  /** The lease timeout the caller asked for. */
  readonly timeoutMs: number;
  /** Settles the caller's promise with a value. */
  readonly resolve: (value: T) => void;
  /** Settles the caller's promise with an error. */
  readonly reject: (reason: unknown) => void;
  /** Detaches the caller's abort listener. */
  cleanup: (() => void) | undefined;
  /** Whether the waiter is still in the queue. */
  live: boolean;
  /** The caller's abort signal, which the lease keeps (see `GetConnectionOptions.signal`). */
  readonly signal?: AbortSignal | undefined;
}

/** FIFO wait line; `size` counts live waiters only. */
export class WaitQueue<T> {
  #items: Waiter<T>[] = [];
  #head = 0;
  /** Waiters from this index on are not stamped yet. */
  #unstamped = 0;
  #size = 0;
  #timer: ReturnType<typeof setTimeout> | undefined = undefined;
  #timerDue = Number.POSITIVE_INFINITY;
  /** While finite, newcomers are left unstamped; the timer fires by then. */
  #stampBy = Number.POSITIVE_INFINITY;
  readonly #onExpire: (waiter: Waiter<T>, now: number) => void;

  /** `onExpire` is called for each waiter whose deadline passed (already removed). */
  constructor(onExpire: (waiter: Waiter<T>, now: number) => void) {
    this.#onExpire = onExpire;
  }

  /** Live waiters. */
  get size(): number {
    return this.#size;
  }

  /** Appends a waiter (its `started` and `deadline` are set by the queue). */
  push(waiter: Waiter<T>): void {
    this.#items.push(waiter);
    this.#size++;
    if (this.#stampBy !== Number.POSITIVE_INFINITY) {
      waiter.started = waiter.deadline = Number.NaN;
      return;
    }
    const now = performance.now();
    this.#stamp(now);
    this.#stampBy = now + STAMP_SLACK_MS;
    this.#armBy(Math.min(waiter.deadline, this.#stampBy));
  }

  /** Stamps every waiter not stamped yet with `now` (no earlier than their real start). */
  #stamp(now: number): void {
    const items = this.#items;
    for (let i = this.#unstamped; i < items.length; i++) {
      const waiter = items[i] as Waiter<T>;
      waiter.started = now;
      waiter.deadline = now + waiter.timeoutMs;
    }
    this.#unstamped = items.length;
  }

  /**
   * Removes and returns the oldest live waiter; `now` is a fresh clock read, used to
   * stamp waiters that came since the last one (pass the same read to several calls).
   */
  shift(now: number): Waiter<T> | undefined {
    const items = this.#items;
    if (this.#unstamped < items.length) this.#stamp(now);
    while (this.#head < items.length) {
      const waiter = items[this.#head++] as Waiter<T>;
      if (waiter.live) {
        waiter.live = false;
        this.#size--;
        this.#afterRemoval();
        return waiter;
      }
    }
    this.#afterRemoval();
    return undefined;
  }

  /** Removes a waiter wherever it stands; false when it already left the queue. */
  remove(waiter: Waiter<T>): boolean {
    if (!waiter.live) return false;
    waiter.live = false;
    this.#size--;
    this.#afterRemoval();
    return true;
  }

  #afterRemoval(): void {
    if (this.#size === 0) {
      this.#items = [];
      this.#head = this.#unstamped = 0;
      this.#disarm();
    } else if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#unstamped -= this.#head;
      this.#head = 0;
    }
  }

  /** Makes the timer fire no later than `due`. */
  #armBy(due: number): void {
    if (due >= this.#timerDue) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerDue = due;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, due - performance.now()));
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerDue = this.#stampBy = Number.POSITIVE_INFINITY;
  }

  #fire(): void {
    this.#timer = undefined;
    this.#timerDue = this.#stampBy = Number.POSITIVE_INFINITY;
    const now = performance.now();
    this.#stamp(now);
    const expired: Waiter<T>[] = [];
    let next = Number.POSITIVE_INFINITY;
    for (let i = this.#head; i < this.#items.length; i++) {
      const waiter = this.#items[i] as Waiter<T>;
      if (!waiter.live) continue;
      // 1 ms of slack: timers may fire a little early.
      if (waiter.deadline <= now + 1) expired.push(waiter);
      else if (waiter.deadline < next) next = waiter.deadline;
    }
    for (const waiter of expired) {
      waiter.live = false;
      this.#size--;
    }
    this.#afterRemoval();
    if (next !== Number.POSITIVE_INFINITY && this.#size > 0) this.#armBy(next);
    for (const waiter of expired) this.#onExpire(waiter, now);
  }

  /** Removes every waiter (oldest first) and stops the timer. */
  drain(): Waiter<T>[] {
    const all: Waiter<T>[] = [];
    const now = performance.now();
    for (let w = this.shift(now); w !== undefined; w = this.shift(now)) all.push(w);
    this.#disarm();
    return all;
  }
}
