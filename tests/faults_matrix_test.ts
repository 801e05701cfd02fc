/**
 * The driver fault matrix: a {@link FakeDriver} makes open, configure, BEGIN, a
 * statement, COMMIT and close fail (a generic error, a broken handle, SQLITE_BUSY), stall
 * (an asynchronous answer after a delay) or never answer — each phase alone, once and on
 * every call, then the combinations where two faults meet — under tiny timeouts
 * (`maxConnections: 2`, `timeoutMs: 50`) and more callers than slots.
 *
 * Every case checks the same invariants (see {@link FaultHarness.finish}): every lease
 * and transaction settles before a test-owned deadline, with a typed error naming the
 * shard when it fails; active leases never exceed the cap (sampled at every driver call
 * and pool event); no lease is lost and closeAll() completes; at most one real handle is
 * open on the shard and none is left open; every row whose transaction resolved is on
 * disk (read back with node:sqlite), no row of a failed one is, and no transaction is
 * half written.
 */

import assert from "node:assert/strict";
import {
  ConnectionBrokenError,
  PoolTimeoutError,
  QueryError,
  type ShardliteError,
  ShardOpenError,
} from "../mod.ts";
import {
  FakeDriver,
  type FakeHandle,
  FAULT_KINDS,
  type FaultKind,
  type FaultPhase,
  type FaultRule,
  type FaultWhen,
  HungCallReleased,
  InjectedFault,
} from "./fake_driver.ts";
import { assertClean, FaultHarness, type HarnessOptions } from "./fault_harness.ts";
import { nativeDriver } from "../src/driver/native.ts";

const SLOW_MS = 15;

/** The phases of the matrix, and the call of each a single fault should hit. */
const MATRIX_PHASES: readonly { phase: FaultPhase; once: FaultWhen }[] = [
  { phase: "open", once: { nth: 1 } },
  { phase: "configure", once: { nth: 1 } },
  // The second transaction's BEGIN, statement and COMMIT: the first one went through.
  { phase: "begin", once: { nth: 2 } },
  { phase: "statement", once: { nth: 2 } },
  { phase: "commit", once: { nth: 2 } },
  { phase: "close", once: { nth: 1 } },
];

/** The error a caller must see for a fault of `kind` in `phase`, when it cannot be hidden. */
function expectedError(
  phase: FaultPhase,
  kind: FaultKind,
): (abstract new (...args: never[]) => ShardliteError) | undefined {
  // BUSY may be retried and slowness waited out; a close failure reaches closeAll() only.
  if (kind === "busy" || kind === "slow" || kind === "never" || phase === "close") {
    return undefined;
  }
  if (phase === "open" || phase === "configure") return ShardOpenError;
  return kind === "broken" ? ConnectionBrokenError : QueryError;
}

/** The drivers under the fake, and how much of the matrix each runs. */
const SETUPS: readonly {
  name: string;
  options: Omit<HarnessOptions, "rules">;
  modes: readonly ("once" | "every call")[];
}[] = [
  { name: "wasm", options: {}, modes: ["once", "every call"] },
  { name: "native", options: { fake: { inner: nativeDriver } }, modes: ["once"] },
  {
    name: "native shared",
    options: { fake: { inner: nativeDriver }, pool: { access: "shared" } },
    modes: ["once"],
  },
];

async function runCase(
  rule: FaultRule,
  options: Omit<HarnessOptions, "rules"> = {},
): Promise<FaultHarness> {
  const h = await FaultHarness.create({ ...options, rules: [rule] });
  try {
    await h.storm(4, 1);
    const violations = await h.finish();
    assert.ok(
      h.fake.counters[rule.phase].faults > 0,
      `the ${rule.kind} fault in ${rule.phase} never fired (calls: ${
        h.fake.counters[rule.phase].calls
      })`,
    );
    assertClean(violations, `${rule.phase} × ${rule.kind}`);
    return h;
  } finally {
    await h[Symbol.asyncDispose]();
  }
}

for (const setup of SETUPS) {
  for (const { phase, once } of MATRIX_PHASES) {
    for (const kind of FAULT_KINDS) {
      for (const mode of setup.modes) {
        Deno.test(`faults matrix (${setup.name}): ${phase} × ${kind}, ${mode}`, async () => {
          const rule: FaultRule = {
            phase,
            kind,
            when: mode === "once" ? once : "every",
            delayMs: SLOW_MS,
          };
          const h = await runCase(rule, setup.options);
          const expected = expectedError(phase, kind);
          if (expected !== undefined) {
            assert.ok(
              h.failures(expected).length > 0,
              `no caller saw a ${expected.name}: ${
                h.outcomes.map((o) => `${o.label} ${o.status} ${(o.error as Error)?.name ?? ""}`)
                  .join("; ")
              }`,
            );
          }
          if (kind === "never" && mode === "every call" && phase !== "close") {
            // No transaction can finish: each must have been failed, in time.
            const txs = h.outcomes.filter((o) =>
              o.kind === "tx" && !o.label.startsWith("recovery")
            );
            assert.ok(
              txs.every((o) => o.status === "rejected"),
              txs.map((o) => `${o.label} ${o.status}`).join("; "),
            );
          }
        });
      }
    }
  }
}

// --- the extra phases: ROLLBACK, and the pool's own probes and checkpoints ------------

for (const setup of SETUPS) {
  for (const kind of FAULT_KINDS) {
    Deno.test(`faults matrix (${setup.name}): rollback × ${kind}, after a statement error`, async () => {
      const h = await FaultHarness.create({
        ...setup.options,
        rules: [
          { phase: "statement", kind: "error", when: { nth: 2 } },
          { phase: "rollback", kind, delayMs: SLOW_MS },
        ],
      });
      try {
        await h.storm(3, 1);
        const violations = await h.finish();
        assert.ok(h.fake.counters.rollback.faults > 0, "no ROLLBACK was sent");
        assertClean(violations, `rollback × ${kind}`);
      } finally {
        await h[Symbol.asyncDispose]();
      }
    });
  }
}

for (const kind of FAULT_KINDS) {
  Deno.test(`faults matrix (wasm): checkpoint × ${kind}, at closeAll()`, async () => {
    const h = await FaultHarness.create({
      rules: [{ phase: "internal", kind, sql: /wal_checkpoint/i, delayMs: SLOW_MS }],
    });
    try {
      await h.storm(2, 1);
      const violations = await h.finish();
      assert.ok(h.fake.counters.internal.faults > 0, "no checkpoint was sent");
      assertClean(violations, `checkpoint × ${kind}`);
    } finally {
      await h[Symbol.asyncDispose]();
    }
  });
}

// --- combinations -----------------------------------------------------------------------

Deno.test("faults combination: configure fails and closing the half-open handle fails too", async () => {
  for (const kind of ["error", "broken", "never"] as const) {
    const h = await FaultHarness.create({
      rules: [
        { phase: "configure", kind: "error", when: { nth: 1 } },
        { phase: "close", kind, when: { nth: 1 } },
      ],
    });
    try {
      const first = await h.read("first");
      assert.equal(first.status, "rejected");
      assert.ok(first.error instanceof ShardOpenError, `${kind}: ${String(first.error)}`);
      await h.storm(3, 1);
      assertClean(await h.finish(), `configure error + close ${kind}`);
    } finally {
      await h[Symbol.asyncDispose]();
    }
  }
});

Deno.test("faults combination: a broken statement in a transaction, then closing the broken handle fails", async () => {
  for (const kind of ["error", "broken", "slow", "never"] as const) {
    const h = await FaultHarness.create({
      rules: [
        { phase: "statement", kind: "broken", sql: /'doomed'/ },
        { phase: "close", kind, when: { nth: 1 }, delayMs: SLOW_MS },
      ],
    });
    try {
      // Rows committed on the handle that is about to break (in its WAL, not checkpointed).
      assert.equal((await h.autoInsert("before")).status, "fulfilled");
      assert.equal((await h.txInsert(2, "before")).status, "fulfilled");
      const ids = h.ids(1);
      const broken = await h.record(
        "tx",
        `broken [${ids[0]}]`,
        ids,
        h.pool.withConnection((conn) =>
          conn.transaction((tx) =>
            tx.run("INSERT INTO t (id, v) VALUES (?, 'doomed')", [ids[0] as number])
          )
        ),
      );
      assert.equal(broken.status, "rejected");
      assert.ok(broken.error instanceof ConnectionBrokenError, `${kind}: ${String(broken.error)}`);
      await h.storm(3, 1);
      if (kind === "never") {
        // Its close never answers: no second handle may race a handle that could still be
        // open (a late checkpoint of its view would undo the new one's commits). Once the
        // close is let through, the file is used again.
        assert.equal(h.fake.handles.length, 1, "a new handle raced one still closing");
        h.fake.releaseHung({ perform: true });
        await h.storm(3, 1);
      }
      assert.ok(h.fake.handles.length >= 2, `${kind}: the broken handle was not replaced`);
      assertClean(await h.finish(), `broken statement + close ${kind}`);
    } finally {
      await h[Symbol.asyncDispose]();
    }
  }
});

Deno.test("faults combination: the handle breaks, then reopening it fails", async () => {
  for (const kind of ["error", "broken", "busy", "never"] as const) {
    const h = await FaultHarness.create({
      rules: [
        { phase: "statement", kind: "broken", when: { nth: 1 }, sql: /INSERT/ },
        { phase: "open", kind, when: { nth: 2 } },
      ],
    });
    try {
      const broken = await h.txInsert(1, "broken");
      assert.ok(broken.error instanceof ConnectionBrokenError, `${kind}: ${String(broken.error)}`);
      const reopen = await h.autoInsert("reopen");
      assert.equal(reopen.status, kind === "busy" ? reopen.status : "rejected", kind);
      await h.storm(3, 1);
      assertClean(await h.finish(), `broken + reopen ${kind}`);
    } finally {
      await h[Symbol.asyncDispose]();
    }
  }
});

Deno.test("faults combination: a sibling's statement never slips into a transaction whose BEGIN is still answering", async () => {
  // The real BEGIN runs at once; its answer comes 15 ms later (an asynchronous driver).
  const h = await FaultHarness.create({
    rules: [
      { phase: "begin", kind: "slow", timing: "after", when: { nth: 1 }, delayMs: SLOW_MS },
      // The transaction then fails, so whatever ran inside it is rolled back.
      { phase: "statement", kind: "error", sql: /'doomed'/ },
    ],
    pool: { timeoutMs: 500 },
  });
  try {
    const ids = h.ids(1);
    const doomed = h.record(
      "tx",
      `doomed [${ids[0]}]`,
      ids,
      h.pool.withConnection((conn) =>
        conn.transaction(async (tx) => {
          await tx.run("INSERT INTO t (id, v) VALUES (?, 'doomed')", [ids[0] as number]);
        })
      ),
    );
    // Started while the BEGIN is in flight: must run before or after the transaction.
    const sibling = h.autoInsert("sibling");
    const [d, s] = await Promise.all([doomed, sibling]);
    assert.equal(d.status, "rejected");
    assert.ok(d.error instanceof QueryError, String(d.error));
    assert.equal(s.status, "fulfilled", String(s.error));
    assertClean(await h.finish());
  } finally {
    await h[Symbol.asyncDispose]();
  }
});

Deno.test("faults combination: a COMMIT whose answer never comes (it did commit)", async () => {
  const h = await FaultHarness.create({
    rules: [{ phase: "commit", kind: "never", timing: "after", when: { nth: 1 } }],
    ambiguousFailures: true,
  });
  try {
    await h.storm(3, 1);
    assert.ok(h.outcomes.some((o) => o.status === "rejected"), "the unanswered COMMIT must fail");
    assertClean(await h.finish());
  } finally {
    await h[Symbol.asyncDispose]();
  }
});

Deno.test("faults combination: a slow open meets many callers at once: one handle, capped leases", async () => {
  for (const delayMs of [SLOW_MS, 120]) {
    const h = await FaultHarness.create({
      rules: [{ phase: "open", kind: "slow", delayMs, when: { nth: 1 } }],
    });
    try {
      await Promise.all([h.storm(6, 1), h.read("a"), h.read("b")]);
      assert.equal(h.fake.counters.open.calls >= 1, true);
      assertClean(await h.finish(), `open slow ${delayMs} ms`);
      assert.equal(h.fake.maxOpenHandles.get(h.path) ?? 0, 1);
    } finally {
      await h[Symbol.asyncDispose]();
    }
  }
});

Deno.test("faults combination: an open that never answers, then answers late with a handle", async () => {
  const h = await FaultHarness.create({
    rules: [{ phase: "open", kind: "never", timing: "after", when: { nth: 1 } }],
  });
  try {
    const first = await h.read("first");
    assert.equal(first.status, "rejected", "a lease must not wait forever for an open");
    // The open answers now, with a real handle: the pool must use it or close it.
    assert.equal(h.fake.releaseHung({ perform: true }), 1);
    await h.fake.settled();
    await h.storm(3, 1);
    assertClean(await h.finish());
    assert.ok(
      h.fake.handles.every((handle) => !handle.inner.isOpen || handle.closeCalled),
      "the late handle was leaked",
    );
  } finally {
    await h[Symbol.asyncDispose]();
  }
});

Deno.test("faults combination: a statement that never answers inside a transaction, a sibling waiting", async () => {
  const h = await FaultHarness.create({
    rules: [{ phase: "statement", kind: "never", sql: /'stuck'/ }],
  });
  try {
    const ids = h.ids(1);
    const stuck = h.record(
      "tx",
      `stuck [${ids[0]}]`,
      ids,
      h.pool.withConnection((conn) =>
        conn.transaction((tx) =>
          tx.run("INSERT INTO t (id, v) VALUES (?, 'stuck')", [ids[0] as number])
        )
      ),
    );
    const sibling = h.autoInsert("sibling");
    const [st, sb] = await Promise.all([stuck, sibling]);
    assert.equal(st.status, "rejected", "the stuck statement must time out");
    assert.equal(sb.status, "rejected", "the sibling waits for the transaction and times out");
    assert.ok(sb.error instanceof PoolTimeoutError, String(sb.error));
    assertClean(await h.finish());
  } finally {
    await h[Symbol.asyncDispose]();
  }
});

Deno.test("faults combination: a slow statement outlasts the timeout; its late effect never lands in a failed transaction", async () => {
  // 120 ms > timeoutMs: if the pool gives up on the call, the call still runs afterwards.
  const h = await FaultHarness.create({
    rules: [{ phase: "statement", kind: "slow", delayMs: 120, sql: /'late'/ }],
  });
  try {
    const ids = h.ids(1);
    const late = h.record(
      "tx",
      `late [${ids[0]}]`,
      ids,
      h.pool.withConnection((conn) =>
        conn.transaction((tx) =>
          tx.run("INSERT INTO t (id, v) VALUES (?, 'late')", [ids[0] as number])
        )
      ),
    );
    await Promise.all([late, h.storm(3, 1)]);
    assertClean(await h.finish());
  } finally {
    await h[Symbol.asyncDispose]();
  }
});

Deno.test("faults combination: closeAll() while a statement never answers", async () => {
  const h = await FaultHarness.create({
    rules: [{ phase: "statement", kind: "never", sql: /'stuck'/ }],
    pool: { timeoutMs: 5_000 },
  });
  try {
    const ids = h.ids(1);
    const stuck = h.record(
      "auto",
      `stuck [${ids[0]}]`,
      ids,
      h.pool.withConnection((conn) =>
        conn.run("INSERT INTO t (id, v) VALUES (?, 'stuck')", [ids[0] as number])
      ),
    );
    const closed = await h.record("lease", "closeAll", [], h.pool.closeAll({ graceMs: 20 }));
    assert.notEqual(closed.status, "hung", "closeAll() must not wait for a hung statement");
    const s = await stuck;
    assert.notEqual(s.status, "hung", "the stuck caller must be failed when the pool closes");
    assertClean(await h.finish({ recover: false }));
  } finally {
    await h[Symbol.asyncDispose]();
  }
});

Deno.test("faults combination: every call answers asynchronously, with random faults everywhere", async () => {
  for (const seed of [1, 2, 3]) {
    const rules: FaultRule[] = (["begin", "statement", "commit", "rollback"] as const).flatMap((
      phase,
    ) => [
      { phase, kind: "error" as const, when: { probability: 0.1 } },
      { phase, kind: "slow" as const, when: { probability: 0.2 }, delayMs: 5 },
    ]);
    const h = await FaultHarness.create({ rules, fake: { asyncAnswers: true, seed } });
    try {
      await h.storm(4, 2);
      assertClean(await h.finish(), `seed ${seed}`);
    } finally {
      await h[Symbol.asyncDispose]();
    }
  }
});

Deno.test("fake driver: counts calls per phase and fires on the nth call only", async () => {
  const h = await FaultHarness.create({
    rules: [{ phase: "commit", kind: "error", when: { nth: 2 } }],
  });
  try {
    for (let i = 0; i < 3; i++) await h.txInsert(1);
    assert.deepEqual(h.outcomes.map((o) => o.status), ["fulfilled", "rejected", "fulfilled"]);
    assert.equal(h.fake.counters.open.calls, 1);
    assert.equal(h.fake.counters.configure.calls, 1);
    assert.equal(h.fake.counters.begin.calls, 3);
    assert.equal(h.fake.counters.statement.calls, 3);
    assert.equal(h.fake.counters.commit.calls, 3);
    assert.equal(h.fake.counters.commit.faults, 1);
    assert.equal(h.fake.counters.rollback.calls, 1);
    assertClean(await h.finish({ recover: false }));
    assert.equal(h.fake.counters.close.calls, 1);
  } finally {
    await h[Symbol.asyncDispose]();
  }
});

for (const setup of SETUPS) {
  Deno.test(`faults combination (${setup.name}): the lease after a failed transaction whose ROLLBACK answers late keeps its writes`, async () => {
    // An asynchronous driver: ROLLBACK answers 15 ms after it is sent.
    const h = await FaultHarness.create({
      ...setup.options,
      rules: [
        { phase: "statement", kind: "error", sql: /'doomed'/ },
        { phase: "rollback", kind: "slow", delayMs: SLOW_MS },
      ],
    });
    try {
      const ids = h.ids(1);
      const doomed = await h.record(
        "tx",
        `doomed [${ids[0]}]`,
        ids,
        h.pool.withConnection((conn) =>
          conn.transaction((tx) =>
            tx.run("INSERT INTO t (id, v) VALUES (?, 'doomed')", [ids[0] as number])
          )
        ),
      );
      assert.ok(doomed.error instanceof QueryError, String(doomed.error));
      // The next lease: its insert resolves, so it must be on disk afterwards.
      const next = await h.autoInsert("next");
      assert.equal(next.status, "fulfilled", String(next.error));
      const tx = await h.txInsert(1, "next tx");
      assert.equal(tx.status, "fulfilled", String(tx.error));
      assertClean(await h.finish());
    } finally {
      await h[Symbol.asyncDispose]();
    }
  });
}

// Reduced from a faults_model_test counterexample. The first handle breaks at COMMIT
// with a transaction open and its close fails (error) or answers late (slow, 60 ms):
// it may still be open when the pool opens the next handle on the file.
for (const kind of ["error", "slow"] as const) {
  Deno.test(`faults combination: the broken handle's close ${kind === "error" ? "fails" : "lags"} inside its transaction, then its replacement breaks too`, async () => {
    const h = await FaultHarness.create({
      rules: [
        { phase: "commit", kind: "broken", when: { nth: 1 } },
        { phase: "close", kind, when: { nth: 1 }, delayMs: 60 },
        { phase: "begin", kind: "broken", when: { nth: 2 } },
      ],
    });
    try {
      assert.equal((await h.autoInsert("committed first")).status, "fulfilled");
      const first = await h.txInsert(1, "commit breaks");
      assert.ok(first.error instanceof ConnectionBrokenError, `${kind}: ${String(first.error)}`);
      const second = await h.txInsert(1, "begin breaks");
      // The old handle is still closing (slow: 60 ms, past the 50 ms timeout): no new handle
      // races it, so the caller times out waiting instead — then the replacement breaks.
      if (kind === "slow") {
        // The old handle is still closing (60 ms, past the 50 ms timeout): no new handle races
        // it, so this caller times out waiting; the next one gets the replacement, whose
        // BEGIN breaks.
        assert.ok(
          second.error instanceof PoolTimeoutError && second.error.waitingFor === "driver",
          `${kind}: ${String(second.error)}`,
        );
        const third = await h.txInsert(1, "begin breaks, later");
        assert.ok(third.error instanceof ConnectionBrokenError, `${kind}: ${String(third.error)}`);
      } else {
        assert.ok(
          second.error instanceof ConnectionBrokenError,
          `${kind}: ${String(second.error)}`,
        );
      }
      assert.equal((await h.txInsert(1, "committed last")).status, "fulfilled");
      assertClean(await h.finish(), `close ${kind}`);
    } finally {
      await h[Symbol.asyncDispose]();
    }
  });
}

Deno.test("fake driver: seeded probabilities repeat, hung calls release, late answers deliver", async () => {
  const firings = (seed: number) => {
    const fake = new FakeDriver({
      seed,
      rules: [{ phase: "statement", kind: "error", when: { probability: 0.5 } }],
    });
    const handle = fake.open(":memory:", { create: true, statementCacheSize: 4 }) as FakeHandle;
    const fired: boolean[] = [];
    for (let i = 0; i < 32; i++) {
      try {
        handle.get("SELECT 1");
        fired.push(false);
      } catch (error) {
        assert.ok(error instanceof InjectedFault);
        fired.push(true);
      }
    }
    handle.close();
    return fired;
  };
  assert.deepEqual(firings(7), firings(7));
  assert.notDeepEqual(firings(7), firings(8));

  await using fake = new FakeDriver({
    rules: [
      { phase: "begin", kind: "never", timing: "after", when: { nth: 1 } },
      { phase: "statement", kind: "never", sql: /INSERT/, when: { nth: 1 } },
    ],
  });
  const handle = fake.open(":memory:", { create: true, statementCacheSize: 4 }) as FakeHandle;
  await handle.exec("CREATE TABLE t (x)");
  const begin = handle.exec("BEGIN");
  // The BEGIN ran (its answer is what hangs).
  assert.equal(handle.inTransaction, true);
  assert.equal(fake.hungCalls, 1);
  assert.equal(fake.releaseHung({ perform: true }), 1);
  await begin;
  const insert = handle.run("INSERT INTO t VALUES (1)");
  assert.equal(fake.releaseHung(), 1);
  await assert.rejects(Promise.resolve(insert), HungCallReleased);
  assert.deepEqual(await handle.get("SELECT count(*) AS n FROM t"), { n: 0 });
  assert.deepEqual(fake.counters.begin, { calls: 1, faults: 1, succeeded: 1, failed: 0 });
  await handle.exec("ROLLBACK");
  await handle.close();
});
