/**
 * A FIFO of callers waiting for a lease, with O(1) removal of a waiter that timed out
 * or was aborted (it is marked and skipped, and never receives a lease).
 *
 * Deadlines share one timer, armed for the earliest deadline: a timer per waiter costs
 * about 2 µs to set and clear, more than the rest of a contended lease.
 *
 * @module
 */

/** One caller waiting for a value. */
export interface Waiter<T> {
  /** When the wait began (performance.now()). */
  readonly started: number;
  /** When the wait times out (performance.now() clock). */
  readonly deadline: number;
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
}

/** FIFO wait line; `size` counts live waiters only. */
export class WaitQueue<T> {
  #items: Waiter<T>[] = [];
  #head = 0;
  #size = 0;
  #timer: ReturnType<typeof setTimeout> | undefined = undefined;
  #timerDeadline = Number.POSITIVE_INFINITY;
  readonly #onExpire: (waiter: Waiter<T>, now: number) => void;

  /** `onExpire` is called for each waiter whose deadline passed (already removed). */
  constructor(onExpire: (waiter: Waiter<T>, now: number) => void) {
    this.#onExpire = onExpire;
  }

  /** Live waiters. */
  get size(): number {
    return this.#size;
  }

  /** Appends a waiter. */
  push(waiter: Waiter<T>): void {
    this.#items.push(waiter);
    this.#size++;
    if (waiter.deadline < this.#timerDeadline) this.#arm(waiter.deadline);
  }

  /** Removes and returns the oldest live waiter. */
  shift(): Waiter<T> | undefined {
    const items = this.#items;
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
      this.#head = 0;
      this.#disarm();
    } else if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
  }

  #arm(deadline: number): void {
    this.#disarm();
    this.#timerDeadline = deadline;
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, deadline - performance.now()));
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerDeadline = Number.POSITIVE_INFINITY;
  }

  #expire(): void {
    this.#timer = undefined;
    this.#timerDeadline = Number.POSITIVE_INFINITY;
    const now = performance.now();
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
    if (next !== Number.POSITIVE_INFINITY && this.#size > 0) this.#arm(next);
    for (const waiter of expired) this.#onExpire(waiter, now);
  }

  /** Removes every waiter (oldest first) and stops the timer. */
  drain(): Waiter<T>[] {
    const all: Waiter<T>[] = [];
    for (let w = this.shift(); w !== undefined; w = this.shift()) all.push(w);
    this.#disarm();
    return all;
  }
}
