/**
 * How much routing costs per call: HashStrategy.getShardId against a bare `key % n`.
 * Keys cycle through a prepared array so each call sees a different key.
 *
 * @module
 */

import { HashStrategy, ModuloStrategy, RangeStrategy } from "../src/routing/strategies.ts";

const SHARDS = 16;
const integers = Array.from({ length: 1024 }, (_, i) => i * 2_654_435_761 % 1_000_000_007);
const strings = integers.map((n) => `user-${n}`);
const hash = new HashStrategy(SHARDS);
const modulo = new ModuloStrategy(SHARDS);
const range = new RangeStrategy(Array.from({ length: SHARDS - 1 }, (_, i) => (i + 1) * 62_500_000));
let sink = 0;
let i = 0;

Deno.bench({
  group: "integer key",
  name: "baseline: key % n",
  baseline: true,
  fn() {
    sink ^= integers[i++ & 1023]! % SHARDS;
  },
});

Deno.bench({
  group: "integer key",
  name: "HashStrategy.getShardId",
  fn() {
    sink ^= hash.getShardId(integers[i++ & 1023]!);
  },
});

Deno.bench({
  group: "integer key",
  name: "ModuloStrategy.getShardId",
  fn() {
    sink ^= modulo.getShardId(integers[i++ & 1023]!);
  },
});

Deno.bench({
  group: "integer key",
  name: "RangeStrategy.getShardId",
  fn() {
    sink ^= range.getShardId(integers[i++ & 1023]!);
  },
});

Deno.bench({
  group: "integer key",
  name: "HashStrategy.getShardId (bigint key)",
  fn() {
    sink ^= hash.getShardId(BigInt(integers[i++ & 1023]!) + 2n ** 60n);
  },
});

Deno.bench({
  group: "short string key",
  name: "baseline: length % n",
  baseline: true,
  fn() {
    sink ^= strings[i++ & 1023]!.length % SHARDS;
  },
});

Deno.bench({
  group: "short string key",
  name: "HashStrategy.getShardId",
  fn() {
    sink ^= hash.getShardId(strings[i++ & 1023]!);
  },
});

globalThis.addEventListener("unload", () => {
  if (sink === 0.5) console.log(sink);
});
