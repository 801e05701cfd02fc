/**
 * Runs the tests a module registers against another driver: {@link registerAs} makes that
 * driver the default of every pool in this process and prefixes each test's name with
 * `[<driver>] `, so the same test bodies run once per driver in one `deno test` run.
 *
 * `deno test` gives every test module its own isolate, so the switch never leaks into the
 * default (wasm) run of the same files.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ConnectionPool } from "../../mod.ts";
import {
  driverLeavesLockDirectory,
  type DriverName,
  DRIVERS,
  spawnFixture,
  tempDir,
  testDriver,
  useDriver,
} from "../helpers.ts";

type TestArgs =
  | [Deno.TestDefinition]
  | [string, (t: Deno.TestContext) => void | Promise<void>]
  | [(t: Deno.TestContext) => void | Promise<void>]
  | [
    string,
    Omit<Deno.TestDefinition, "name" | "fn">,
    (t: Deno.TestContext) => void | Promise<void>,
  ]
  | [Omit<Deno.TestDefinition, "fn">, (t: Deno.TestContext) => void | Promise<void>]
  | [Omit<Deno.TestDefinition, "fn" | "name">, (t: Deno.TestContext) => void | Promise<void>];

/** Any call form of `Deno.test` as one definition. */
function definition(args: TestArgs): Deno.TestDefinition {
  const [first, second, third] = args as unknown[];
  if (typeof first === "function") {
    const fn = first as Deno.TestDefinition["fn"];
    return { name: fn.name, fn };
  }
  if (typeof first === "string") {
    if (typeof second === "function") {
      return { name: first, fn: second as Deno.TestDefinition["fn"] };
    }
    return { ...(second as object), name: first, fn: third as Deno.TestDefinition["fn"] };
  }
  const options = first as Partial<Deno.TestDefinition>;
  if (typeof second === "function") {
    const fn = second as Deno.TestDefinition["fn"];
    return { ...options, name: options.name ?? fn.name, fn };
  }
  return options as Deno.TestDefinition;
}

/**
 * Makes `driver` the default driver of this process and wraps `Deno.test` (and its
 * `ignore`/`only` forms) so that every test registered from now on is named
 * `[<driver>] <name>`. Call it in a module imported before the test modules.
 */
export function registerAs(driver: DriverName): void {
  useDriver(driver);
  prefixTests(driver);
  Deno.test(
    `pools that name no driver use ${DRIVERS[driver].name}, here and in children`,
    checkDriver,
  );
}

/**
 * Wraps `Deno.test` (and its `ignore`/`only` forms) so that every test registered from
 * now on is named `[<label>] <name>`.
 */
export function prefixTests(label: string): void {
  const register = Deno.test;
  const renamed = (def: Deno.TestDefinition): Deno.TestDefinition => ({
    ...def,
    name: `[${label}] ${def.name}`,
  });
  const test = ((...args: TestArgs) => register(renamed(definition(args)))) as typeof Deno.test;
  test.ignore =
    ((...args: TestArgs) =>
      register({ ...renamed(definition(args)), ignore: true })) as typeof Deno.test.ignore;
  test.only =
    ((...args: TestArgs) =>
      register({ ...renamed(definition(args)), only: true })) as typeof Deno.test.only;
  Object.assign(Deno, { test }); // `Deno.test` is typed readonly, but it is writable
}

/** What a pool naming no driver runs on: SQLite's source id, and whether it made a lock directory. */
interface Probe {
  sourceId: unknown;
  lockDirectory: boolean;
}

/** The switch took: in this isolate and in a fixture child (spawned like every fixture). */
async function checkDriver(): Promise<void> {
  const expected = testDriver().open(":memory:", { create: true, statementCacheSize: 0 });
  let sourceId: unknown;
  try {
    sourceId = expected.get("SELECT sqlite_source_id() AS id")?.["id"];
  } finally {
    expected.close();
  }
  const want: Probe = { sourceId, lockDirectory: driverLeavesLockDirectory() };
  await using dir = await tempDir();
  const pool = new ConnectionPool(`${dir.path}/here.db`, { onEvent: () => {} });
  try {
    const row = await pool.withConnection((c) => c.get("SELECT sqlite_source_id() AS id"));
    const here: Probe = {
      sourceId: row?.["id"],
      lockDirectory: await Deno.stat(`${dir.path}/here.db.lock`).then(
        (s) => s.isDirectory,
        () => false,
      ),
    };
    assert.deepEqual(here, want, "a pool of this process");
  } finally {
    await pool.closeAll();
  }
  const child = spawnFixture("driver_probe.ts", [`${dir.path}/child.db`]);
  await child.stdin.close();
  const { code, stdout, stderr } = await child.output();
  const decoder = new TextDecoder();
  assert.equal(code, 0, decoder.decode(stderr));
  assert.deepEqual(JSON.parse(decoder.decode(stdout)), want, "a pool of a fixture child");
}
