/**
 * What observability costs on the statement hot path: a routed point read and a held-lease
 * point read, each without a listener (the baseline: statements are only counted), with a
 * no-op `onQuery` listener, and with `timeStatements` (the histogram, no listener).
 * Medians of interleaved rounds: `bench/observability_ratios.ts`.
 *
 *   npx --yes deno@2.9.6 bench --allow-read --allow-write bench/observability_bench.ts
 */

import { heldReads, routedReads, ROWS, VARIANTS } from "./observed.ts";

const dir = Deno.makeTempDirSync({ prefix: "shardlite-observability-bench-" });
let k = 0;
const nextId = () => (k = (k % ROWS) + 1);

let n = 0;
for (const [name, extra] of Object.entries(VARIANTS)) {
  const manager = await routedReads(`${dir}/m${n}`, extra);
  const { get } = await heldReads(`${dir}/p${n}.db`, extra);
  const baseline = n++ === 0;
  Deno.bench({
    group: "select({ key }) over 4 shards",
    name,
    baseline,
    async fn() {
      await manager.select("users", { key: nextId() });
    },
  });
  Deno.bench({
    group: "held-lease point get",
    name,
    baseline,
    async fn() {
      await get(nextId());
    },
  });
}
