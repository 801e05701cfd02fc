/** Shared test helpers: temporary directories and event collectors. */

import sqlite from "node-sqlite3-wasm";
import {
  type Driver,
  type DriverHandle,
  nativeDriver,
  type PoolEvent,
  wasmDriver,
} from "../mod.ts";
import { setDefaultDriverForTests } from "../src/pool/pool.ts";

/**
 * The drivers every pool, manager, crash and fault test runs against, by the name that
 * prefixes their titles in the conformance runs (`[native] ...`, see tests/conformance/).
 */
export const DRIVERS = { wasm: wasmDriver, native: nativeDriver } as const;

/** The name of a driver in {@link DRIVERS}. */
export type DriverName = keyof typeof DRIVERS;

let driverUnderTest: DriverName = "wasm";

/** The driver this process tests: pools and managers that name no driver use it. */
export function testDriver(): typeof wasmDriver {
  return DRIVERS[driverUnderTest];
}

/**
 * Makes `name` the driver of every pool (and so every manager) of this process that names
 * none: a test file's isolate, or a fixture child preloaded with tests/conformance/<name>.ts.
 */
export function useDriver(name: DriverName): void {
  driverUnderTest = name;
  setDefaultDriverForTests(DRIVERS[name]);
}

/**
 * `deno run` flags that make a child process test the same driver as this one: nothing
 * for the default (wasm), else `--preload` of tests/conformance/<name>.ts.
 */
export function driverFlags(): string[] {
  if (driverUnderTest === "wasm") return [];
  return [`--preload=${new URL(`./conformance/${driverUnderTest}.ts`, import.meta.url).pathname}`];
}

/**
 * Whether the driver under test locks a file with a `<db>.lock` directory beside it
 * (node-sqlite3-wasm's VFS): a killed process leaves it behind, and the next owner removes
 * it (`staleLocksCleared`). node:sqlite takes POSIX locks, which die with the process and
 * leave nothing on disk.
 */
export function driverLeavesLockDirectory(): boolean {
  return driverUnderTest === "wasm";
}

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

/** The driver under test, with its opened handles in reach (to close them underneath). */
export function closableDriver(): { driver: Driver; handles: DriverHandle[] } {
  const base = testDriver();
  const handles: DriverHandle[] = [];
  const driver: Driver = {
    ...base,
    name: "closable",
    open(path, options) {
      const handle = base.open(path, options);
      handles.push(handle);
      return handle;
    },
  };
  return { driver, handles };
}

/** A small deterministic PRNG (mulberry32): the same seed gives the same sequence. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** An in-memory node-sqlite3-wasm database. */
export type MemoryDb = InstanceType<typeof sqlite.Database>;

/** Runs `fn` with an in-memory database, closed afterwards. */
export function withMemoryDb<T>(fn: (db: MemoryDb) => T): T {
  const db = new sqlite.Database();
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

const CONFIG = new URL("../deno.json", import.meta.url).pathname;

/**
 * Spawns `deno run` on `tests/fixtures/<script>` with the project's config, piped
 * stdin/stdout/stderr, `--allow-read --allow-write`, the driver under test
 * ({@link driverFlags}) plus `extraFlags`.
 */
export function spawnFixture(
  script: string,
  args: readonly string[],
  options: { extraFlags?: readonly string[]; env?: Record<string, string> } = {},
): Deno.ChildProcess {
  const path = new URL(`./fixtures/${script}`, import.meta.url).pathname;
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      `--config=${CONFIG}`,
      "--allow-read",
      "--allow-write",
      ...driverFlags(),
      ...(options.extraFlags ?? []),
      path,
      ...args,
    ],
    ...(options.env === undefined ? {} : { env: options.env }),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}
