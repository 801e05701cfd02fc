/**
 * The connection pool on its own: one pool per shard file, leases, a transaction,
 * positional rows, stats and shutdown, as the original Shardlite's connection module
 * documents them.
 *
 *   npx --yes deno@2.9.6 run --allow-read --allow-write examples/pool_basics.ts
 */

import { ConnectionPool } from "../mod.ts";

const dir = await Deno.makeTempDir({ prefix: "shardlite-pool-" });
console.log(`Working in ${dir}`);

// One pool per shard file.
const pools = new Map<number, ConnectionPool>();
for (let shardId = 0; shardId < 4; shardId++) {
  pools.set(shardId, new ConnectionPool(`${dir}/shard_${shardId}.db`, { maxConnections: 5 }));
}

for (const [shardId, pool] of pools) {
  await using conn = await pool.getConnectionContext();
  await conn.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT)");
  await conn.transaction(async (tx) => {
    for (let i = 0; i <= shardId; i++) {
      await tx.run("INSERT INTO users (name, email) VALUES (?, ?)", [
        `user${i}`,
        `user${i}@example.com`,
      ]);
    }
  });
}

for (const [shardId, pool] of pools) {
  await pool.withConnection(async (conn) => {
    await conn.execute("SELECT COUNT(*) FROM users");
    console.log(`Shard ${shardId}: ${conn.fetchone()?.[0]} users`);
  });
}

const stats = pools.get(0)!.getPoolStats();
console.log(
  `Shard 0 pool: active=${stats.activeConnections} idle=${stats.poolSize} ` +
    `max=${stats.maxConnections} sessions created=${stats.totalConnectionsCreated} ` +
    `journal=wal handle open=${stats.handleOpen}`,
);

for (const pool of pools.values()) await pool.closeAll();
await Deno.remove(dir, { recursive: true });
console.log("All pools closed; files removed.");
