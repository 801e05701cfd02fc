/**
 * What an `onQuery` listener (and `timeStatements`) costs a point read, as medians of 15
 * interleaved rounds (no listener, then the variant, back to back).
 *
 *   npx --yes deno@2.9.6 run --allow-read --allow-write bench/observability_ratios.ts
 */

import { shutdown } from "../mod.ts";
import { report } from "./medians.ts";
import { heldReads, routedReads, ROWS, VARIANTS } from "./observed.ts";

const dir = Deno.makeTempDirSync({ prefix: "shardlite-observability-ratios-" });
const N = 20_000;
// The first variant (no listener) is every comparison's baseline.
const [, ...others] = Object.entries(VARIANTS);

const plainManager = await routedReads(`${dir}/plain`, {});
const plain = await heldReads(`${dir}/plain.db`, {});
const timeRouted = (manager: Awaited<ReturnType<typeof routedReads>>) => async () => {
  const t = performance.now();
  for (let i = 0; i < N; i++) await manager.select("users", { key: (i % ROWS) + 1 });
  return (performance.now() - t) * 1000 / N;
};
const timeHeld = (get: Awaited<ReturnType<typeof heldReads>>["get"]) => async () => {
  const t = performance.now();
  for (let i = 0; i < N; i++) await get((i % ROWS) + 1);
  return (performance.now() - t) * 1000 / N;
};

let n = 0;
for (const [name, extra] of others) {
  const manager = await routedReads(`${dir}/m${n}`, extra);
  const held = await heldReads(`${dir}/p${n++}.db`, extra);
  await report(
    `select({ key }), µs: no listener vs ${name}`,
    timeRouted(plainManager),
    timeRouted(manager),
    "the listener's cost",
  );
  await report(
    `held-lease get, µs: no listener vs ${name}`,
    timeHeld(plain.get),
    timeHeld(held.get),
    "the listener's cost",
  );
  await held.close();
}
await plain.close();
await shutdown();
await Deno.remove(dir, { recursive: true });
