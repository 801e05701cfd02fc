/**
 * Shardlite in one minute: 4 shards, 100,000 users, point lookups by key, cross-shard
 * aggregates and a top-10, per-shard statistics, shutdown.
 *
 *   npx --yes deno@2.9.6 task demo
 *
 * It needs only `--allow-read=./data,./node_modules --allow-write=./data`. Pass a directory
 * under ./data to keep the files (`... task demo ./data/mine`); by default
 * ./data/demo-<time> is used and removed at the end.
 */

import { ShardManager } from "../mod.ts";

const keep = Deno.args[0];
const dbDir = keep ?? `./data/demo-${Date.now()}`;
const USERS = 100_000;
const BATCH = 10_000;
const started = performance.now();
const ms = (t0: number) => `${Math.round(performance.now() - t0)} ms`;

console.log(`Shardlite demo: ${USERS.toLocaleString("en-US")} users over 4 shards in ${dbDir}`);
const manager = new ShardManager({ numShards: 4, dbDir });

await manager.createTable(
  "users",
  { id: "INTEGER PRIMARY KEY", name: "TEXT NOT NULL", city: "TEXT", age: "INTEGER" },
  { shardKey: "id" },
);
console.log("Created table users on every shard, sharded by id (hash of the key).");

const cities = ["Lisbon", "Osaka", "Nairobi", "Lima", "Oslo", "Pune", "Quito", "Turin"];
const t0 = performance.now();
for (let from = 1; from <= USERS; from += BATCH) {
  const rows = [];
  for (let id = from; id < from + BATCH; id++) {
    rows.push({
      id,
      name: `user${id}`,
      city: cities[id % cities.length] as string,
      age: 18 + ((id * 7919) % 60),
    });
  }
  await manager.insertMany("users", rows);
  const done = from + BATCH - 1;
  const bar = "#".repeat(Math.round((done / USERS) * 20)).padEnd(20, ".");
  await Deno.stdout.write(
    new TextEncoder().encode(`\r  inserting [${bar}] ${done.toLocaleString("en-US")} rows`),
  );
}
console.log(
  `\nInserted ${USERS.toLocaleString("en-US")} users in ${
    ms(t0)
  } (one transaction per shard per batch).`,
);

const t1 = performance.now();
for (const id of [1, 42, 77_777, 100_000]) {
  const [user] = await manager.select("users", { key: id });
  console.log(
    `  user ${id} lives on shard ${
      manager.getShardId(id)
    }: ${user?.name}, ${user?.city}, ${user?.age}`,
  );
}
console.log(`Point lookups by key, each on one shard (${ms(t1)}).`);

const t2 = performance.now();
const count = await manager.count("users");
const avgAge = await manager.avg("users", "age");
const inOslo = await manager.count("users", { city: "Oslo" });
console.log(
  `Across all shards: ${count.toLocaleString("en-US")} users, average age ${
    Number(avgAge).toFixed(2)
  }, ${inOslo.toLocaleString("en-US")} in Oslo (${ms(t2)}).`,
);

const t3 = performance.now();
const top = await manager.select("users", {
  columns: ["id", "name", "age"],
  orderBy: [{ column: "age", direction: "desc" }, { column: "id", direction: "asc" }],
  limit: 10,
});
console.log(`Top 10 by age (k-way merge of each shard's top 10, ${ms(t3)}):`);
for (const u of top) console.log(`  #${u.id} ${u.name} (${u.age})`);

const stats = await manager.getShardStats();
console.log("\nshard | rows   | file size | leases | sessions");
for (const s of stats) {
  console.log(
    `${String(s.shardId).padStart(5)} | ${String(s.rows.users).padEnd(6)} | ${
      (s.sizeBytes / 1024 / 1024).toFixed(2).padStart(6)
    } MB | ${String(s.pool?.totalLeases ?? 0).padStart(6)} | ${
      s.pool?.totalConnectionsCreated ?? 0
    }`,
  );
}

await manager.shutdown();
console.log(`\nShut down: every pool drained and closed, WAL checkpointed, files released.`);
if (keep === undefined) {
  await Deno.remove(dbDir, { recursive: true });
  console.log(`Removed ${dbDir}.`);
}
console.log(`Done in ${ms(started)}.`);
