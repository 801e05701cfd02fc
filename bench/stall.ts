/**
 * A stall probe: a 1 ms interval timer that records how late each tick fires. The longest
 * lateness while something runs is the longest time the event loop was held: what every
 * other request of a server waits at worst.
 *
 *   const probe = startStallProbe();
 *   await somethingBig();
 *   const { maxMs, ticks } = probe.stop();
 *
 * @module
 */

/** What a probe saw. */
export interface StallReport {
  /** The longest gap between ticks beyond the interval, ms. */
  maxMs: number;
  /** Ticks that fired. */
  ticks: number;
}

/** A running probe. */
export interface StallProbe {
  /** Stops the probe and reports. */
  stop(): StallReport;
}

/** Starts a probe ticking every `intervalMs` (default 1). */
export function startStallProbe(intervalMs = 1): StallProbe {
  let last = performance.now();
  let maxMs = 0;
  let ticks = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxMs = Math.max(maxMs, now - last - intervalMs);
    last = now;
    ticks++;
  }, intervalMs);
  return {
    stop(): StallReport {
      clearInterval(timer);
      // The stretch since the last tick counts too.
      maxMs = Math.max(maxMs, performance.now() - last - intervalMs);
      return { maxMs: Math.max(0, maxMs), ticks };
    },
  };
}

/** Runs `fn` under a probe; returns its result, its duration and the longest stall. */
export async function measureStall<T>(
  fn: () => Promise<T>,
): Promise<{ value: T; ms: number; stallMs: number }> {
  // Let the probe's first tick happen before the work starts.
  await new Promise((resolve) => setTimeout(resolve, 2));
  const probe = startStallProbe();
  const started = performance.now();
  const value = await fn();
  const ms = performance.now() - started;
  return { value, ms, stallMs: probe.stop().maxMs };
}
