/**
 * Model-based fault test: `fc.commands` + `fc.asyncModelRun` mix random fault plans
 * (rules added and lifted mid-run, on any phase of the {@link FakeDriver}) with
 * concurrent transactions, autocommit writes, reads and leases held across commands,
 * under `maxConnections: 2`, `timeoutMs: 50`.
 *
 * After every command: active leases within the cap and at least the leases the model
 * holds; after every `Settle`: exactly the held leases active and nobody waiting. At the
 * end of a run (see {@link FaultHarness.finish}): every operation settled before its
 * deadline with a typed error naming the shard when it failed, no lease lost, the pool
 * serves again once the faults stop, closeAll() completes, no real handle leaked, every
 * resolved write on disk and no failed one.
 *
 * Three properties: faults that end (errors, broken handles, BUSY, slow answers), the
 * same with calls that never answer, and the first over node:sqlite with shared access. ~10 s by default; `SHARDLITE_STRESS=1` runs 10x the runs.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import type { PooledConnection } from "../mod.ts";
import { FAULT_PHASES, type FaultKind, type FaultPhase, type FaultRule } from "./fake_driver.ts";
import { assertClean, FaultHarness, type HarnessOptions } from "./fault_harness.ts";
import { nativeDriver } from "../src/driver/native.ts";

const STRESS = Deno.env.get("SHARDLITE_STRESS") === "1";
const RUNS = STRESS ? 400 : 40;

interface Model {
  /** Leases the run holds across commands. */
  held: number;
  /** Rules added so far. */
  rules: number;
}

interface Real {
  h: FaultHarness;
  /** Operations started and not yet settled (each is guarded by the harness deadline). */
  inFlight: Promise<unknown>[];
  /** Leases taken by `Hold` and not yet returned. */
  held: PooledConnection[];
}

type FaultCommand = fc.AsyncCommand<Model, Real, false>;

function checkCounts(m: Model, r: Real, after: string): void {
  const stats = r.h.pool.getPoolStats();
  assert.ok(
    stats.activeConnections <= r.h.max,
    `after ${after}: active ${stats.activeConnections} > max ${r.h.max}`,
  );
  assert.ok(
    stats.activeConnections >= m.held,
    `after ${after}: active ${stats.activeConnections} < ${m.held} held leases`,
  );
  assertClean(r.h.violations, `after ${after}`);
}

class Cmd implements FaultCommand {
  constructor(
    readonly label: string,
    readonly pre: (m: Model) => boolean,
    readonly body: (m: Model, r: Real) => Promise<void> | void,
  ) {}
  check(m: Readonly<Model>): boolean {
    return this.pre(m as Model);
  }
  async run(m: Model, r: Real): Promise<void> {
    await this.body(m, r);
    checkCounts(m, r, this.label);
  }
  toString(): string {
    return this.label;
  }
}

const always = () => true;

/** Waits for every operation in flight; then only held leases are out. */
async function settle(m: Model, r: Real): Promise<void> {
  const inFlight = r.inFlight.splice(0);
  await Promise.all(inFlight);
  r.h.checkOutcomes();
  assertClean(r.h.violations, "at Settle");
  const stats = r.h.pool.getPoolStats();
  assert.equal(stats.activeConnections, m.held, "after Settle: active !== held leases");
  assert.equal(stats.waiting, 0, "after Settle: callers still waiting");
}

function ruleArb(kinds: readonly FaultKind[]): fc.Arbitrary<FaultRule> {
  return fc.record({
    // Weighted towards the phases every transaction meets; a handle opens and closes
    // only when one breaks.
    phase: fc.oneof(
      { arbitrary: fc.constantFrom<FaultPhase>("begin", "statement", "commit"), weight: 6 },
      { arbitrary: fc.constant<FaultPhase>("rollback"), weight: 2 },
      { arbitrary: fc.constantFrom(...FAULT_PHASES), weight: 2 },
    ),
    kind: fc.constantFrom(...kinds),
    when: fc.oneof(
      fc.record({ nth: fc.integer({ min: 1, max: 3 }) }),
      fc.record({ from: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ probability: fc.double({ min: 0.1, max: 0.7, noNaN: true }) }),
    ),
    times: fc.integer({ min: 1, max: 8 }),
    delayMs: fc.integer({ min: 1, max: 30 }),
    timing: fc.constantFrom<"before" | "after">("before", "after"),
  }).map((rule) =>
    // A slow answer may come after the call took effect; a failure or a hang never did
    // (an effect without an answer is ambiguous, and the row checks need a verdict).
    rule.kind === "slow" ? rule : { ...rule, timing: "before" as const }
  );
}

function commandsArb(kinds: readonly FaultKind[]): fc.Arbitrary<Iterable<FaultCommand>> {
  return fc.commands([
    ruleArb(kinds).map((rule) =>
      new Cmd(`Inject(${JSON.stringify(rule)})`, always, (m, r) => {
        r.h.fake.inject(rule);
        m.rules++;
      })
    ),
    fc.integer({ min: 1, max: 3 }).map((rows) =>
      new Cmd(`Tx(${rows})`, always, (_m, r) => {
        r.inFlight.push(r.h.txInsert(rows));
      })
    ),
    fc.array(fc.constantFrom("tx1", "tx3", "auto", "read"), { minLength: 2, maxLength: 6 }).map((
      ops,
    ) =>
      new Cmd(`Burst(${ops.join(",")})`, always, (_m, r) => {
        for (const op of ops) {
          r.inFlight.push(
            op === "tx1"
              ? r.h.txInsert(1)
              : op === "tx3"
              ? r.h.txInsert(3)
              : op === "auto"
              ? r.h.autoInsert()
              : r.h.read(),
          );
        }
      })
    ),
    fc.constant(
      new Cmd("Auto", always, (_m, r) => {
        r.inFlight.push(r.h.autoInsert());
      }),
    ),
    fc.constant(
      new Cmd("Read", always, (_m, r) => {
        r.inFlight.push(r.h.read());
      }),
    ),
    fc.constant(
      new Cmd("Hold", (m) => m.held < 1, async (m, r) => {
        // Taken in turn (awaited), so the model knows how many leases it holds.
        const outcome = await r.h.record(
          "lease",
          "hold",
          [],
          r.h.pool.getConnection().then((conn) => {
            r.h.checkFresh(conn, "hold");
            r.held.push(conn);
            m.held++;
          }),
        );
        void outcome;
      }),
    ),
    fc.boolean().map((close) =>
      new Cmd(close ? "CloseHeld" : "ReturnHeld", (m) => m.held > 0, async (m, r) => {
        const conn = r.held.pop() as PooledConnection;
        m.held--;
        await (close ? r.h.pool.closeConnection(conn) : r.h.pool.returnConnection(conn));
      })
    ),
    fc.constant(
      new Cmd("TxOnHeld", (m) => m.held > 0, async (_m, r) => {
        // Awaited: one lease runs one thing at a time; the others keep running meanwhile.
        const conn = r.held.at(-1) as PooledConnection;
        const ids = r.h.ids(1);
        await r.h.record(
          "tx",
          `held tx [${ids[0]}]`,
          ids,
          conn.transaction((tx) =>
            tx.run("INSERT INTO t (id, v) VALUES (?, 'held')", [ids[0] as number])
          ),
        );
      }),
    ),
    fc.constant(new Cmd("Settle", always, settle)),
    fc.constant(
      new Cmd("ClearFaults", always, (_m, r) => {
        r.h.fake.clearFaults();
      }),
    ),
    fc.constant(
      new Cmd("ReleaseHung", always, (_m, r) => {
        r.h.fake.releaseHung();
      }),
    ),
  ], { maxCommands: 30, size: "large" });
}

async function runModel(
  kinds: readonly FaultKind[],
  options: Omit<HarnessOptions, "rules" | "deadlineMs"> = {},
): Promise<void> {
  await fc.assert(
    fc.asyncProperty(
      fc.array(ruleArb(kinds), { minLength: 2, maxLength: 5 }),
      commandsArb(kinds),
      fc.integer({ min: 1, max: 2 ** 31 - 1 }),
      async (plan, cmds, seed) => {
        const h = await FaultHarness.create({
          ...options,
          rules: plan,
          fake: { ...options.fake, seed },
          deadlineMs: 1_000,
        });
        const real: Real = { h, inFlight: [], held: [] };
        const model: Model = { held: 0, rules: 0 };
        try {
          await fc.asyncModelRun(() => ({ model, real }), cmds);
          // A held lease whose transaction broke is returned like any other.
          await settle(model, real);
          for (const conn of real.held.splice(0)) await h.pool.returnConnection(conn);
          model.held = 0;
          assertClean(await h.finish());
        } finally {
          await h[Symbol.asyncDispose]();
        }
      },
    ),
    {
      numRuns: RUNS,
      // A failing run may wait out deadlines: keep shrinking bounded.
      interruptAfterTimeLimit: STRESS ? 600_000 : 6_000,
      markInterruptAsFailure: false,
    },
  );
}

Deno.test("faults model: random fault plans that end, with concurrent leases and transactions", async () => {
  await runModel(["error", "broken", "busy", "slow"]);
});

Deno.test("faults model: random fault plans including calls that never answer", async () => {
  await runModel(["error", "broken", "busy", "slow", "never"]);
});

Deno.test("faults model: random fault plans that end, native driver with shared access", async () => {
  await runModel(["error", "broken", "busy", "slow"], {
    fake: { inner: nativeDriver },
    pool: { access: "shared" },
  });
});
