/**
 * Resharding throughput (grow 4 -> 5 hash shards holding 1,000,000 rows) and backup
 * throughput (VACUUM INTO of 4 shards holding 1,000,000 rows).
 *
 *   npx --yes deno@2.9.6 bench --allow-read --allow-write bench/reshard_bench.ts
 */

import { ShardManager } from "../mod.ts";

const ROWS = 1_000_000;
const dir = Deno.makeTempDirSync({ prefix: "shardlite-reshard-bench-" });
const pool = { fileCheckIntervalMs: 0 };
let round = 0;
let lastReport = "";

/** Creates `users` with a shard key and inserts ROWS rows in batches of 100k. */
async function fillUsers(manager: ShardManager): Promise<void> {
  await manager.createTable("users", { id: "INTEGER PRIMARY KEY", name: "TEXT", age: "INTEGER" }, {
    shardKey: "id",
  });
  for (let from = 1; from <= ROWS; from += 100_000) {
    await manager.insertMany(
      "users",
      Array.from(
        { length: 100_000 },
        (_, i) => ({ id: from + i, name: `user${from + i}`, age: (from + i) % 80 }),
      ),
    );
  }
}

Deno.bench({
  group: "reshard 4 -> 5, 1M rows",
  name: "ShardManager.reshard(5)",
  n: 2,
  warmup: 0,
  async fn(b) {
    const dbDir = `${dir}/r${round++}`;
    await using manager = new ShardManager({ numShards: 4, dbDir, pool });
    await fillUsers(manager);
    b.start();
    const report = await manager.reshard(5, { batchSize: 5_000 });
    b.end();
    const seconds = report.durationMs / 1000;
    lastReport = `reshard 4 -> 5: scanned ${report.scanned}, moved ${report.moved} rows in ${
      seconds.toFixed(2)
    } s = ${Math.round(report.moved / seconds).toLocaleString("en-US")} rows moved/s, ${
      Math.round(report.scanned / seconds).toLocaleString("en-US")
    } rows scanned/s`;
    await manager.shutdown();
    await Deno.remove(dbDir, { recursive: true });
  },
});

const backupSource = new ShardManager({ numShards: 4, dbDir: `${dir}/backup-source`, pool });
await fillUsers(backupSource);
let lastBackup = "";
Deno.bench({
  group: "backup 4 shards, 1M rows",
  name: "ShardManager.backup",
  n: 3,
  warmup: 1,
  async fn(b) {
    const dest = `${dir}/backup-${round++}`;
    b.start();
    const report = await backupSource.backup(dest);
    b.end();
    lastBackup = `backup: ${(report.bytes / 1e6).toFixed(1)} MB in ${
      (report.durationMs / 1000).toFixed(2)
    } s = ${report.megabytesPerSecond.toFixed(1)} MB/s`;
    await Deno.remove(dest, { recursive: true });
  },
});

globalThis.addEventListener("unload", () => {
  console.log(lastReport);
  console.log(lastBackup);
  Deno.removeSync(dir, { recursive: true });
});
