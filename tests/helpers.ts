/** Shared test helpers: temporary directories and event collectors. */

import { type Driver, type DriverHandle, type PoolEvent, wasmDriver } from "../mod.ts";

/** A temporary directory removed at `await using` scope exit. */
export async function tempDir(prefix = "shardlite-test-"): Promise<
  { path: string; [Symbol.asyncDispose](): Promise<void> }
> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true });
    },
  };
}

/** Collects pool events instead of printing them; `waitFor` resolves on the first of a type. */
export function eventCollector(): {
  events: PoolEvent[];
  onEvent: (e: PoolEvent) => void;
  waitFor: (type: PoolEvent["type"]) => Promise<PoolEvent>;
} {
  const events: PoolEvent[] = [];
  const waiting: { type: PoolEvent["type"]; resolve: (e: PoolEvent) => void }[] = [];
  return {
    events,
    onEvent: (e) => {
      events.push(e);
      for (let i = waiting.length - 1; i >= 0; i--) {
        if (waiting[i]!.type === e.type) waiting.splice(i, 1)[0]!.resolve(e);
      }
    },
    waitFor: (type) => {
      const seen = events.find((e) => e.type === type);
      if (seen !== undefined) return Promise.resolve(seen);
      // The pool's own timers are unref'd; keep the event loop alive while we wait.
      const keepAlive = setInterval(() => {}, 1_000);
      return new Promise<PoolEvent>((resolve) => waiting.push({ type, resolve })).finally(() =>
        clearInterval(keepAlive)
      );
    },
  };
}

/** Whether a promise has settled, without waiting for it. */
export async function settledState(p: Promise<unknown>): Promise<"pending" | "settled"> {
  const marker = Symbol("pending");
  // Race `p` itself: an already-settled `p` is subscribed first and wins the race.
  const result = await Promise.race([p, Promise.resolve(marker)]).catch(() => null);
  return result === marker ? "pending" : "settled";
}

/** Lets queued microtasks and already-due callbacks run. */
export function tick(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** A driver whose opened handles the test can reach (to close them underneath). */
export function closableDriver(): { driver: Driver; handles: DriverHandle[] } {
  const handles: DriverHandle[] = [];
  const driver: Driver = {
    name: "closable",
    open(path, options) {
      const handle = wasmDriver.open(path, options);
      handles.push(handle);
      return handle;
    },
  };
  return { driver, handles };
}
