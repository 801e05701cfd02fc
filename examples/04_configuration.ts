/**
 * Configuration, after the original Shardlite's `04_configuration.py`: options given
 * directly, from an object, from a file; validation; inspection. Then what the original
 * has no counterpart for: choosing a sharding strategy, and the persisted shard map that
 * refuses to reopen a directory with another layout.
 *
 *   npx --yes deno@2.9.6 run --allow-read --allow-write examples/04_configuration.ts
 *
 * Works in a fresh temporary directory that it removes at the end.
 *
 * The original's options map onto these:
 *
 *   num_shards                 numShards (or a strategy, which knows its shard count)
 *   db_dir                     dbDir
 *   connection_timeout (s)     pool.timeoutMs (ms)
 *   max_connections_per_shard  pool.maxConnections
 *   auto_create_dirs           always: dbDir is created by the first operation
 */

import {
  HashStrategy,
  LookupStrategy,
  ModuloStrategy,
  RangeStrategy,
  ShardManager,
  type ShardManagerOptions,
  ShardMapMismatchError,
  shutdown,
} from "../mod.ts";

console.log("=== Configuration Examples ===\n");
const base = await Deno.makeTempDir({ prefix: "shardlite-config-" });
const exists = async (path: string) => await Deno.stat(path).then(() => true, () => false);

try {
  console.log("1. Basic configuration with parameters:");
  {
    const dbDir = `${base}/basic/nested`; // does not exist yet
    await using manager = new ShardManager({ numShards: 2, dbDir, pool: { timeoutMs: 20_000 } });
    await manager.ready(); // the first operation creates dbDir and writes the shard map
    console.log(`   Initialized: 2 shards, directory created: ${await exists(dbDir)}`);
  } // `await using` shuts the manager down here
  console.log();

  console.log("2. Configuration from an object:");
  {
    const config: ShardManagerOptions = {
      numShards: 3,
      dbDir: `${base}/object`,
      pool: { timeoutMs: 25_000, maxConnections: 8 },
    };
    await using manager = new ShardManager(config);
    await manager.ready();
    console.log(`   Initialized: ${manager.numShards} shards in ${manager.dbDir}`);
  }
  console.log();

  // JSON rather than YAML, so the example needs no parser; the keys are the original's.
  console.log("3. Configuration from a file:");
  {
    const file = `${base}/shardlite.config.json`;
    await Deno.writeTextFile(
      file,
      JSON.stringify({
        num_shards: 4,
        db_dir: `${base}/from_file`,
        connection_timeout: 30,
        max_connections_per_shard: 5,
      }),
    );
    const raw = JSON.parse(await Deno.readTextFile(file));
    await using manager = new ShardManager({
      numShards: raw.num_shards,
      dbDir: raw.db_dir,
      pool: {
        timeoutMs: raw.connection_timeout * 1000,
        maxConnections: raw.max_connections_per_shard,
      },
    });
    await manager.ready();
    console.log(`   Initialized from ${file}: ${manager.numShards} shards`);
    await Deno.remove(file);
  }
  console.log();

  // Bad options throw at construction (TypeError or RangeError naming the option),
  // before anything touches the disk.
  console.log("4. Configuration validation:");
  const attempts: [string, () => ShardManager][] = [
    ["numShards: 4", () => new ShardManager({ numShards: 4, dbDir: `${base}/valid` })],
    ["numShards: 0", () => new ShardManager({ numShards: 0, dbDir: `${base}/invalid` })],
    ["numShards: 2.5", () => new ShardManager({ numShards: 2.5, dbDir: `${base}/invalid` })],
    ['dbDir: ""', () => new ShardManager({ numShards: 2, dbDir: "" })],
    [
      "pool.maxConnections: 0",
      () =>
        new ShardManager({ numShards: 2, dbDir: `${base}/invalid`, pool: { maxConnections: 0 } }),
    ],
    [
      "numShards: 3 with a 4-shard strategy",
      () => new ShardManager({ numShards: 3, strategy: new HashStrategy(4), dbDir: `${base}/x` }),
    ],
  ];
  for (const [label, make] of attempts) {
    try {
      const manager = make();
      console.log(`   ${label}: valid`);
      await manager.shutdown(); // never used, so nothing was created
    } catch (error) {
      if (!(error instanceof TypeError || error instanceof RangeError)) throw error;
      console.log(`   ${label}: ${error.name}: ${error.message}`);
    }
  }
  console.log(`   Nothing was created for them: ${!(await exists(`${base}/invalid`))}`);
  console.log();

  console.log("5. Configuration inspection:");
  {
    await using manager = new ShardManager({
      numShards: 4,
      dbDir: `${base}/inspect`,
      pool: { timeoutMs: 30_000, maxConnections: 10 },
    });
    await manager.createTable("users", { id: "INTEGER PRIMARY KEY", name: "TEXT" }, {
      shardKey: "id",
    });
    const info = manager.getShardInfo();
    console.log(`   Number of shards:   ${info.numShards}`);
    console.log(`   Database directory: ${info.dbDir}`);
    console.log(`   Strategy:           ${JSON.stringify(info.strategy)}`);
    // Pool settings show in each shard's pool stats once the pool has been used.
    const [stats] = await manager.getShardStats();
    console.log(`   Connection timeout: ${stats?.pool?.timeoutMs} ms`);
    console.log(`   Max connections:    ${stats?.pool?.maxConnections} per shard`);
    console.log("   Shard file paths:");
    for (const shard of info.shards) console.log(`     Shard ${shard.shardId}: ${shard.path}`);
    // The layout is plain JSON: the counterpart of the original's to_dict().
    console.log(`   As JSON: ${JSON.stringify({ ...info, shards: info.shards.length })}`);
  }
  console.log();

  // The original has one (hash) strategy; these four are interchangeable here.
  console.log("6. Sharding strategies:");
  const strategies = [
    ["HashStrategy(4)", new HashStrategy(4)],
    ["ModuloStrategy(4)", new ModuloStrategy(4)],
    ["RangeStrategy([100, 200, 300])", new RangeStrategy([100, 200, 300])],
    // Pin key 1000 (a big tenant, say) to a shard of its own; hash the others.
    [
      "LookupStrategy({1000: 4}, hash(4))",
      new LookupStrategy(new Map([[1000, 4]]), new HashStrategy(4)),
    ],
  ] as const;
  const keys = [5, 10, 20, 150, 250, 1000];
  console.log(
    `   ${"key ->".padEnd(34)} ${keys.map((k) => String(k).padStart(5)).join("")}  shards`,
  );
  for (const [label, strategy] of strategies) {
    const ids = keys.map((k) => String(strategy.getShardId(k)).padStart(5)).join("");
    console.log(`   ${label.padEnd(34)} ${ids}  ${strategy.numShards}`);
  }
  {
    const dbDir = `${base}/range`;
    await using manager = new ShardManager({ strategy: new RangeStrategy([100, 200]), dbDir });
    await manager.createTable("events", { id: "INTEGER PRIMARY KEY", kind: "TEXT" }, {
      shardKey: "id",
    });
    await manager.insertMany("events", [5, 50, 150, 250, 2500].map((id) => ({ id, kind: "x" })));
    const rows = (await manager.getShardStats()).map((s) => `shard ${s.shardId}: ${s.rows.events}`);
    console.log(`   A RangeStrategy manager put ids 5, 50, 150, 250, 2500 as ${rows.join(", ")}`);
  }
  console.log();

  // dbDir records its layout in shardlite.json; another layout would misroute every key.
  console.log("7. Reopening a directory:");
  const dbDir = `${base}/inspect`;
  for (
    const [label, options] of [
      ["with 8 shards", { numShards: 8, dbDir }],
      ["with ModuloStrategy(4)", { strategy: new ModuloStrategy(4), dbDir }],
    ] as const
  ) {
    await using manager = new ShardManager(options);
    try {
      await manager.ready();
      console.log(`   ${label}: opened (unexpected)`);
    } catch (error) {
      if (!(error instanceof ShardMapMismatchError)) throw error;
      console.log(`   ${label}: ${error.name}: ${error.message}`);
    }
  }
  const reopened = new ShardManager({ numShards: 4, dbDir });
  console.log(
    `   with its own layout: files valid=${await reopened.validateShardFiles()}, ` +
      `tables=${JSON.stringify(reopened.getShardInfo().tables)}`,
  );
  console.log();

  // Like the original's module-level shutdown(): every manager and pool still open.
  console.log("8. Shutting down everything still open (module-level shutdown())...");
  await shutdown();
  console.log(
    `   reopened manager closed: ${await reopened.ready().then(() => false, () => true)}`,
  );

  console.log("\nConfiguration examples completed successfully!");
  console.log("Key points:");
  console.log("  - options are checked at construction; nothing is created for bad ones");
  console.log("  - pool options apply to every shard's connection pool");
  console.log("  - the shard map keeps a directory from being opened with another layout");
} finally {
  await Deno.remove(base, { recursive: true });
}
