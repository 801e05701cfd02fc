/**
 * Event-loop fairness: the longest stall (bench/stall.ts) and the total time of the big
 * calls of issue 12 on the default driver, 4 shards.
 *
 *   npx --yes deno@2.9.6 run --allow-read --allow-write bench/fairness.ts
 */

import { ShardManager } from "../mod.ts";
import { measureStall } from "./stall.ts";
import { median } from "./medians.ts";

const dir = Deno.makeTempDirSync({ prefix: "shardlite-fairness-" });
const N = 200_000;
const rows = Array.from({ length: N }, (_, i) => ({
  id: i + 1,
  grp: i,
  n: (i * 7919) % N,
  name: `user${i}`,
}));
const SCHEMA = { id: "INTEGER PRIMARY KEY", grp: "INTEGER", n: "INTEGER", name: "TEXT" };

let round = 0;
async function fresh(): Promise<ShardManager> {
  const manager = new ShardManager({ numShards: 4, dbDir: `${dir}/m${round++}` });
  await manager.createTable("t", SCHEMA, { shardKey: "id" });
  return manager;
}

const results: Record<string, { ms: number[]; stall: number[] }> = {};
function record(label: string, r: { ms: number; stallMs: number }) {
  const entry = results[label] ??= { ms: [], stall: [] };
  entry.ms.push(r.ms);
  entry.stall.push(r.stallMs);
}

const rounds = Number(Deno.args[0] ?? 3);
for (let r = 0; r < rounds; r++) {
  const manager = await fresh();
  record(
    "insertMany 100k",
    await measureStall(() => manager.insertMany("t", rows.slice(0, 100_000))),
  );
  await manager.insertMany("t", rows.slice(100_000));
  record("select 200k ordered", await measureStall(() => manager.select("t", { orderBy: "n" })));
  record(
    "aggregateBy 200k groups",
    await measureStall(() => manager.aggregateBy("t", "grp", "COUNT(*)")),
  );
  record("backup", await measureStall(() => manager.backup(`${dir}/backup${r}`)));
  record("reshard 4 -> 5", await measureStall(() => manager.reshard(5)));
  await manager.shutdown();
}
for (const [label, { ms, stall }] of Object.entries(results)) {
  console.log(
    `${label}: ${median(ms).toFixed(0)} ms, longest stall ${median(stall).toFixed(1)} ms ` +
      `(max over rounds ${Math.max(...stall).toFixed(1)} ms)`,
  );
}
Deno.removeSync(dir, { recursive: true });
