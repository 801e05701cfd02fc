/**
 * Admission of an operation into a shard source: it waits while the source is not ready
 * (opening, resharding), then counts as in flight from the very tick it saw the source
 * ready, so a reshard waiting for operations to leave never misses one.
 *
 * @module
 */

/** What admission needs of a source (a `ShardSource`, such as a `ShardManager`, is one). */
export interface AdmissionSource {
  /** True while operations may enter without waiting. */
  readonly isReady: boolean;
  /** Resolves when the source may be ready; rejects when it is closed or blocked. */
  ready(): Promise<void>;
  /** An operation starts (only while `isReady`). */
  enter(): void;
  /** An operation ends. */
  leave(): void;
}

/**
 * Admits an operation into `source`; pair it with `source.leave()`. Returns undefined,
 * having entered, when the source is ready (the hot path: no promise, no await), else a
 * promise that resolves once it has entered.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { admit } from "./admission.ts";
 * let inFlight = 0;
 * const source = {
 *   isReady: true,
 *   ready: () => Promise.resolve(),
 *   enter() {
 *     inFlight++;
 *   },
 *   leave() {
 *     inFlight--;
 *   },
 * };
 * assert.equal(admit(source), undefined);
 * assert.equal(inFlight, 1);
 * source.leave();
 * ```
 */
export function admit(source: AdmissionSource): Promise<void> | undefined {
  if (source.isReady) {
    source.enter();
    return undefined;
  }
  return admitWhenReady(source);
}

async function admitWhenReady(source: AdmissionSource): Promise<void> {
  while (!source.isReady) await source.ready();
  source.enter();
}

/** Runs `fn` as one admitted operation of `source`: it leaves when `fn` settles. */
export async function admitted<T>(source: AdmissionSource, fn: () => Promise<T>): Promise<T> {
  const waiting = admit(source);
  if (waiting !== undefined) await waiting;
  try {
    return await fn();
  } finally {
    source.leave();
  }
}
