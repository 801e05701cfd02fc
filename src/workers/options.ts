/**
 * The `workers` option of a `ShardManager`: checked at construction, with the test-only
 * default the conformance suite sets.
 *
 * @module
 */

import type { Driver } from "../driver/driver.ts";
import { nativeDriver } from "../driver/native.ts";
import { wasmDriver } from "../driver/wasm.ts";
import type { DriverKind } from "./protocol.ts";

/** The most workers a manager may have (more than any machine's cores gain anything). */
export const MAX_WORKERS = 64;

/**
 * A pool's `maxConnections` when the manager has workers and the options name none (10
 * in-thread). A lease is a session on its shard's one handle, not a handle, so more of them
 * cost no SQLite memory; what they bound is how many calls are in flight on a shard, and
 * the calls in flight to a worker travel together: a message that wakes a parked thread
 * costs the caller 50-300 µs here, so 256 point reads in flight took 18-20 µs each with
 * 10 leases a shard and 11-12 µs with 64 (bench/workers_ratios.ts).
 */
export const WORKER_MAX_CONNECTIONS = 64;

let defaultWorkers = 0;

/**
 * @internal For tests only: the `workers` of managers whose options name none and whose
 * driver and access can run in workers (0 unless changed). The conformance suite runs
 * whole test files with it set to 2.
 */
export function setDefaultWorkersForTests(workers: number): void {
  defaultWorkers = workers;
}

/** The built-in driver `driver` is, or undefined for any other. */
export function driverKindOf(driver: Driver): DriverKind | undefined {
  return driver === wasmDriver ? "wasm" : driver === nativeDriver ? "native" : undefined;
}

/**
 * Checks the `workers` option against the driver and access; returns how many workers.
 *
 * @throws {RangeError} unless `workers` is an integer from 0 to {@link MAX_WORKERS}.
 * @throws {TypeError} for workers with a remote or custom driver, or shared access.
 */
export function checkWorkers(
  workers: unknown,
  driver: Driver,
  access: "exclusive" | "shared",
): number {
  if (workers === undefined) {
    // The test default applies only where workers can run at all.
    return defaultWorkers > 0 && driverKindOf(driver) !== undefined && access === "exclusive"
      ? defaultWorkers
      : 0;
  }
  if (typeof workers !== "number" || !Number.isSafeInteger(workers) || workers < 0) {
    throw new RangeError(
      `workers must be an integer from 0 (in-thread) to ${MAX_WORKERS}, got ${String(workers)}`,
    );
  }
  if (workers > MAX_WORKERS) {
    throw new RangeError(`workers must be at most ${MAX_WORKERS}, got ${workers}`);
  }
  if (workers === 0) return 0;
  if (driver.remote === true) {
    throw new TypeError(
      `workers (${workers}) needs local shard files, but pool.driver ${driver.name} is ` +
        `remote: its server runs SQLite, there is nothing to move off this thread; leave ` +
        `workers at 0`,
    );
  }
  if (access !== "exclusive") {
    throw new TypeError(
      `workers (${workers}) needs access "exclusive"; with access "shared" run one manager ` +
        `per isolate instead (deno serve --parallel, or a manager in each Worker)`,
    );
  }
  if (driverKindOf(driver) === undefined) {
    throw new TypeError(
      `workers (${workers}) needs pool.driver to be wasmDriver or nativeDriver (a worker ` +
        `opens its handles with a built-in driver), got ${driver.name}`,
    );
  }
  return workers;
}
