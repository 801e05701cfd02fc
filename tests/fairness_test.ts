/**
 * Event-loop fairness: big cross-shard calls give the event loop turns while they run, so
 * a timer due during the call fires before the call resolves. (Before, each such call was
 * one synchronous stretch: no timer could fire until it was done.)
 */
import assert from "node:assert/strict";
import { ShardManager } from "../mod.ts";
import { tempDir } from "./helpers.ts";
import { sliceSettings } from "../src/pool/yield.ts";

async function timerFiresDuring(call: () => Promise<unknown>): Promise<number> {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  try {
    // The interval is armed before the call starts; the call's own turns let it fire.
    await new Promise((resolve) => setTimeout(resolve, 2));
    ticks = 0;
    await call();
    return ticks;
  } finally {
    clearInterval(timer);
  }
}

Deno.test("a big cross-shard select, stream and insertMany let timers fire while they run", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  await manager.createTable("t", { id: "INTEGER PRIMARY KEY", n: "INTEGER", s: "TEXT" }, {
    shardKey: "id",
  });
  const N = 60_000;
  const rows = Array.from({ length: N }, (_, i) => ({ id: i + 1, n: (i * 7919) % N, s: `r${i}` }));
  const inserting = await timerFiresDuring(() => manager.insertMany("t", rows));
  assert.ok(inserting > 0, "no timer fired during insertMany");
  assert.equal(await manager.count("t"), N);

  let selected: unknown[] = [];
  const ordered = await timerFiresDuring(async () => {
    selected = await manager.select("t", { orderBy: "n" });
  });
  assert.ok(ordered > 0, "no timer fired during an ordered select");
  assert.equal(selected.length, N);
  const unordered = await timerFiresDuring(() => manager.select("t"));
  assert.ok(unordered > 0, "no timer fired during an unordered select");
  const streamed = await timerFiresDuring(async () => {
    for await (const _ of manager.iterate("t", { orderBy: "s" })) { /* drain */ }
  });
  assert.ok(streamed > 0, "no timer fired during a stream");
});

Deno.test("an aggregate takes turns between shards and between a big shard's rowid ranges", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  await manager.createTable("t", { id: "INTEGER PRIMARY KEY", n: "INTEGER", s: "TEXT" }, {
    shardKey: "id",
  });
  const N = 60_000;
  await manager.insertMany(
    "t",
    Array.from({ length: N }, (_, i) => ({ id: i + 1, n: (i * 7919) % N, s: `r${i}` })),
  );
  // Every check of a slice gives a turn (a fast machine may finish a 10 ms slice's work
  // before it is due): on the old code, four statements back to back, no timer fired.
  const saved = sliceSettings.ms;
  sliceSettings.ms = 0;
  try {
    let totals: Record<string, unknown> = {};
    const aggregating = await timerFiresDuring(async () => {
      totals = await manager.aggregate("t", ["SUM(n)", "MAX(s)", "MIN(s)", "AVG(n)", "COUNT(s)"]);
    });
    assert.ok(aggregating > 0, "no timer fired during an aggregate");
    assert.equal(totals["COUNT(s)"], N);
    assert.equal(totals["SUM(n)"], (N * (N - 1)) / 2);
  } finally {
    sliceSettings.ms = saved;
  }
});
