/**
 * Memory of many open shards: each open handle keeps a page cache (2 MB by default) in
 * the process's one WebAssembly heap (2 GiB at most). Fills 300 shards with about 2.5 MB
 * each, reads every shard, and prints the resident set size for three settings.
 *
 *   npx --yes deno@2.9.6 run --allow-read --allow-write --allow-run bench/open_shards_memory.ts
 *
 * Each setting runs in a fresh child process, so one heap does not carry into the next.
 */
import { ShardManager, type ShardManagerOptions } from "../mod.ts";

const SHARDS = 300;
const settings: Record<string, Partial<ShardManagerOptions>> = {
  "every shard open (maxOpenShards 300), 2 MB cache": { maxOpenShards: SHARDS },
  "maxOpenShards 32, 2 MB cache": { maxOpenShards: 32 },
  "every shard open, cacheSizeKiB 256": { maxOpenShards: SHARDS, pool: { cacheSizeKiB: 256 } },
};

const [mode, dbDir] = Deno.args;
if (mode === "child") {
  const label = Deno.args[2] as string;
  const options = settings[label] as Partial<ShardManagerOptions>;
  await using manager = new ShardManager({
    numShards: SHARDS,
    dbDir: dbDir as string,
    ...options,
    pool: { fileCheckIntervalMs: 0, ...options.pool },
  });
  const started = performance.now();
  // Read every row of every shard, shard by shard, so each page cache fills.
  for (let shard = 0; shard < SHARDS; shard++) {
    await manager.getPool(shard).withConnection((c) => c.all("SELECT sum(length(pad)) FROM t"));
  }
  const seconds = (performance.now() - started) / 1000;
  const rss = Deno.memoryUsage().rss / 1e6;
  console.log(
    `${label}: RSS ${rss.toFixed(0)} MB, ${manager.openShards.open} open, ` +
      `${manager.openShards.evictions} closed on the way; read in ${seconds.toFixed(1)} s`,
  );
} else {
  const dir = Deno.makeTempDirSync({ prefix: "shardlite-open-shards-" });
  {
    await using manager = new ShardManager({
      numShards: SHARDS,
      dbDir: dir,
      maxOpenShards: 16,
      pool: { fileCheckIntervalMs: 0, cacheSizeKiB: 64 },
    });
    await manager.createTable("t", { id: "INTEGER PRIMARY KEY", pad: "TEXT" }, { shardKey: "id" });
    const pad = "x".repeat(240);
    for (let from = 0; from < SHARDS * 10_000; from += 100_000) {
      await manager.insertMany(
        "t",
        Array.from({ length: 100_000 }, (_, i) => ({ id: from + i, pad })),
      );
    }
  }
  for (const label of Object.keys(settings)) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", "--allow-write", import.meta.filename!, "child", dir, label],
    }).outputSync();
    Deno.stdout.writeSync(child.stdout);
    Deno.stderr.writeSync(child.stderr);
  }
  Deno.removeSync(dir, { recursive: true });
}
