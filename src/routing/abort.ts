/**
 * The `signal` option of manager calls: checked at the start, handed to every lease the
 * call takes (so lease and transaction waits end at once), and looked at again before a
 * write's commit point. Past the commit point a write completes, whatever the signal says:
 * an aborted call is whole or absent.
 *
 * @module
 */

import { InvalidQueryError } from "../errors.ts";
import { describeKey } from "./keys.ts";

/** The `signal` option of a call that can wait or scan. */
export interface AbortOption {
  /**
   * Aborts the call: it rejects with the signal's reason (an `AbortError` by default) as
   * soon as what it waits for (a lease, a transaction, the next page) ends, returns its
   * leases and writes nothing half.
   */
  signal?: AbortSignal | undefined;
}

/**
 * Checks a `signal` option (undefined or an `AbortSignal`) and throws its reason when it
 * has aborted already.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkSignal } from "./abort.ts";
 * assert.equal(checkSignal(undefined), undefined);
 * assert.throws(() => checkSignal(AbortSignal.abort()), { name: "AbortError" });
 * ```
 */
export function checkSignal(value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof AbortSignal)) {
    throw new InvalidQueryError("signal", `expected an AbortSignal, got ${describeKey(value)}`);
  }
  value.throwIfAborted();
  return value;
}

/** The signal of `options` when it is an object with one (checked), else undefined. */
export function signalOf(options: unknown): AbortSignal | undefined {
  if (options === null || typeof options !== "object" || !("signal" in options)) {
    return undefined;
  }
  return checkSignal((options as AbortOption).signal);
}

/**
 * Settles like `promise`, or rejects with the signal's reason as soon as it aborts; then
 * `late` gets `promise`, still running, to clean up after.
 */
export function raceAbort<T>(
  promise: Promise<T>,
  signal: AbortSignal,
  late: (promise: Promise<T>) => void,
): Promise<T> {
  if (signal.aborted) {
    late(promise);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      late(promise);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then((value) => {
      signal.removeEventListener("abort", onAbort);
      resolve(value);
    }, (error: unknown) => {
      signal.removeEventListener("abort", onAbort);
      reject(error);
    });
  });
}
