/**
 * A FIFO of callers waiting for a lease, with O(1) removal of a waiter that timed out
 * or was aborted (it is marked and skipped, and never receives a lease).
 *
 * @module
 */

/** One caller waiting for a value. */
export interface Waiter<T> {
  /** When the wait began (performance.now()). */
  readonly started: number;
  /** The lease timeout the caller asked for. */
  readonly timeoutMs: number;
  /** Settles the caller's promise with a value. */
  readonly resolve: (value: T) => void;
  /** Settles the caller's promise with an error. */
  readonly reject: (reason: unknown) => void;
  /** The caller's timeout timer. */
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Detaches the caller's abort listener. */
  cleanup: (() => void) | undefined;
}

interface Slot<T> {
  waiter: Waiter<T>;
  live: boolean;
}

/** FIFO wait line; `size` counts live waiters only. */
export class WaitQueue<T> {
  #slots: Slot<T>[] = [];
  #head = 0;
  #size = 0;
  #index = new WeakMap<Waiter<T>, Slot<T>>();

  /** Live waiters. */
  get size(): number {
    return this.#size;
  }

  /** Appends a waiter and returns it. */
  push(waiter: Waiter<T>): Waiter<T> {
    const slot = { waiter, live: true };
    this.#slots.push(slot);
    this.#index.set(waiter, slot);
    this.#size++;
    return waiter;
  }

  /** Removes and returns the oldest live waiter. */
  shift(): Waiter<T> | undefined {
    while (this.#head < this.#slots.length) {
      const slot = this.#slots[this.#head++] as Slot<T>;
      if (slot.live) {
        slot.live = false;
        this.#size--;
        this.#compact();
        return slot.waiter;
      }
    }
    this.#compact();
    return undefined;
  }

  /** Removes a waiter wherever it stands; false when it already left the queue. */
  remove(waiter: Waiter<T>): boolean {
    const slot = this.#index.get(waiter);
    if (slot === undefined || !slot.live) return false;
    slot.live = false;
    this.#size--;
    if (this.#size === 0) this.#compact();
    return true;
  }

  #compact(): void {
    if (this.#size === 0) {
      this.#slots = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#slots.length) {
      this.#slots = this.#slots.slice(this.#head);
      this.#head = 0;
    }
  }
}
