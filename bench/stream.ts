/**
 * `iterate` against `select` for 200k rows over 4 shards, ordered by a column no index
 * covers (each shard sorts, the stream merges): time (median of interleaved rounds), and
 * in separate runs the live heap (a full GC, then `heapUsed`, every 10k rows; garbage
 * not yet collected is not counted).
 *
 *   npx --yes deno@2.9.6 run --allow-read --allow-write --v8-flags=--expose-gc bench/stream.ts
 *
 * Add `native` as an argument for `nativeDriver`.
 */

import { nativeDriver, ShardManager } from "../mod.ts";
import { median } from "./medians.ts";

const native = Deno.args.includes("native");
const dir = Deno.makeTempDirSync({ prefix: "shardlite-stream-" });
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const N = 200_000;
const pad = "x".repeat(100);

await using manager = new ShardManager({
  numShards: 4,
  dbDir: dir,
  pool: native ? { driver: nativeDriver } : {},
});
await manager.createTable("big", { id: "INTEGER PRIMARY KEY", pad: "TEXT", n: "INTEGER" }, {
  shardKey: "id",
});
for (let start = 0; start < N; start += 50_000) {
  await manager.insertMany(
    "big",
    Array.from(
      { length: 50_000 },
      (_, i) => ({ id: start + i + 1, pad, n: (start + i) * 7919 % N }),
    ),
  );
}

const options = { orderBy: "n" };
type Sample = { ms: number; peakMiB: number };

async function viaSelect(measure: boolean): Promise<Sample> {
  gc();
  const before = Deno.memoryUsage().heapUsed;
  const t = performance.now();
  const rows = await manager.select("big", options);
  let sum = 0;
  let peak = 0;
  for (let i = 0; i < rows.length; i++) {
    sum += rows[i]!.n as number;
    if (measure && (i + 1) % 10_000 === 0) {
      gc();
      peak = Math.max(peak, Deno.memoryUsage().heapUsed - before);
    }
  }
  const ms = performance.now() - t;
  if (sum <= 0) throw new Error("no rows");
  return { ms, peakMiB: peak / 2 ** 20 };
}

async function viaIterate(pageSize: number, measure: boolean): Promise<Sample> {
  gc();
  const before = Deno.memoryUsage().heapUsed;
  let peak = 0;
  let count = 0;
  let sum = 0;
  const t = performance.now();
  for await (const row of manager.iterate("big", { ...options, pageSize })) {
    sum += row.n as number;
    if (measure && ++count % 10_000 === 0) {
      gc();
      peak = Math.max(peak, Deno.memoryUsage().heapUsed - before);
    } else if (!measure) count++;
  }
  const ms = performance.now() - t;
  if (count !== N || sum <= 0) throw new Error(`expected ${N} rows, got ${count}`);
  return { ms, peakMiB: peak / 2 ** 20 };
}

const rounds = 7;
const labels = ["select", "iterate (pageSize 256)", "iterate (pageSize 1000)"];
const run = (i: number, measure: boolean) =>
  i === 0 ? viaSelect(measure) : viaIterate(i === 1 ? 256 : 1000, measure);
const times: number[][] = labels.map(() => []);
for (let r = 0; r < rounds; r++) {
  for (let i = 0; i < labels.length; i++) times[i]!.push((await run(i, false)).ms);
}
const memory: number[] = [];
for (let i = 0; i < labels.length; i++) memory.push((await run(i, true)).peakMiB);
const base = median(times[0]!);
console.log(`${N} rows over 4 shards, ordered merge, ${native ? "nativeDriver" : "wasmDriver"}:`);
labels.forEach((label, i) => {
  const ms = median(times[i]!);
  console.log(
    `  ${label}: ${ms.toFixed(0)} ms (${(ms / base).toFixed(2)}x select), ` +
      `live heap at most ${memory[i]!.toFixed(1)} MiB above the start`,
  );
});
await manager.shutdown();
Deno.removeSync(dir, { recursive: true });
