/**
 * Deadlines for many short waits with one timer: an asynchronous driver's every answer is
 * bounded by the lease's timeout, and a timer per statement (created and cleared within
 * tens of µs) cost more than the statement itself through a shard worker. Deadlines of one
 * duration expire in the order they were set, so each duration keeps a FIFO, and one timer
 * is armed for the earliest head.
 *
 * @module
 */

/** A pending deadline; {@link Deadline.cancel} it once the wait is over. */
export interface Deadline {
  /** Stops the deadline (idempotent); its callback will not run. */
  cancel(): void;
}

class Entry implements Deadline {
  readonly at: number;
  fire: (() => void) | null;
  constructor(at: number, fire: () => void) {
    this.at = at;
    this.fire = fire;
  }
  cancel(): void {
    this.fire = null;
  }
}

const queues = new Map<number, { entries: Entry[]; head: number }>();
let timer: ReturnType<typeof setTimeout> | null = null;
let armedAt = Infinity;

/**
 * Runs `fire` after `ms` unless cancelled first. A pending deadline keeps the process
 * alive, as its own timer would; the shared timer is cleared once no deadline is pending.
 *
 * @example
 * ```ts
 * import { setDeadline } from "./deadlines.ts";
 * let fired = false;
 * const deadline = setDeadline(10_000, () => fired = true);
 * deadline.cancel();
 * await new Promise<void>((resolve) => setDeadline(1, resolve));
 * if (fired) throw new Error("a cancelled deadline never fires");
 * ```
 */
export function setDeadline(ms: number, fire: () => void): Deadline {
  const entry = new Entry(performance.now() + ms, fire);
  let queue = queues.get(ms);
  if (queue === undefined) queues.set(ms, queue = { entries: [], head: 0 });
  queue.entries.push(entry);
  if (entry.at < armedAt) arm(entry.at);
  return entry;
}

function arm(at: number): void {
  if (timer !== null) clearTimeout(timer);
  armedAt = at;
  // Rounded up: never before a timer of the same length set earlier (waits keep their order).
  timer = setTimeout(expire, Math.max(0, Math.ceil(at - performance.now())));
}

function expire(): void {
  timer = null;
  armedAt = Infinity;
  const now = performance.now();
  const due: (() => void)[] = [];
  let next = Infinity;
  for (const [ms, queue] of queues) {
    const { entries } = queue;
    while (queue.head < entries.length) {
      const entry = entries[queue.head] as Entry;
      // Timers fire on whole milliseconds: what is due within one fires now.
      if (entry.fire !== null && entry.at > now + 1) break;
      if (entry.fire !== null) due.push(entry.fire);
      queue.head++;
    }
    if (queue.head === entries.length) queues.delete(ms);
    else {
      if (queue.head > 1024) {
        entries.splice(0, queue.head);
        queue.head = 0;
      }
      next = Math.min(next, (entries[queue.head] as Entry).at);
    }
  }
  if (next !== Infinity) arm(next);
  for (const fire of due) fire();
}

/** Drops cancelled entries at the heads of the queues (called as waits end, cheaply). */
export function trimDeadlines(): void {
  for (const [ms, queue] of queues) {
    const { entries } = queue;
    while (queue.head < entries.length && (entries[queue.head] as Entry).fire === null) {
      queue.head++;
    }
    if (queue.head === entries.length) {
      queues.delete(ms);
    } else if (queue.head > 1024) {
      entries.splice(0, queue.head);
      queue.head = 0;
    }
  }
  if (queues.size === 0 && timer !== null) {
    clearTimeout(timer);
    timer = null;
    armedAt = Infinity;
  }
}
