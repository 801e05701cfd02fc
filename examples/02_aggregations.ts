/**
 * Aggregations across shards, after the original Shardlite's `02_aggregations.py`: 3
 * shards, a sales table, COUNT / SUM / AVG / MAX / MIN over every shard, then how the
 * rows are spread over the shard files.
 *
 *   npx --yes deno@2.9.6 run --allow-read --allow-write examples/02_aggregations.ts
 *
 * Works in a fresh temporary directory that it removes at the end.
 */

import { InvalidQueryError, ShardManager, type SqlValue } from "../mod.ts";

const money = (value: SqlValue | undefined) => `$${Number(value).toFixed(2)}`;

console.log("=== Aggregations Example ===\n");
const dbDir = await Deno.makeTempDir({ prefix: "shardlite-aggregations-" });

try {
  console.log("1. Initializing Shardlite...");
  await using manager = new ShardManager({ numShards: 3, dbDir });
  console.log(`   3 shards in ${dbDir}\n`);

  console.log("2. Creating 'sales' table...");
  await manager.createTable("sales", {
    id: "INTEGER PRIMARY KEY",
    product: "TEXT NOT NULL",
    amount: "REAL NOT NULL",
    region: "TEXT",
    date: "TEXT",
  }, { shardKey: "id" });
  console.log("   Table created, sharded by id\n");

  console.log("3. Inserting sales data...");
  const sales = [
    { product: "Laptop", amount: 1200.00, region: "North", date: "2024-01-15" },
    { product: "Mouse", amount: 25.50, region: "South", date: "2024-01-16" },
    { product: "Keyboard", amount: 89.99, region: "North", date: "2024-01-17" },
    { product: "Monitor", amount: 299.99, region: "East", date: "2024-01-18" },
    { product: "Headphones", amount: 149.99, region: "West", date: "2024-01-19" },
    { product: "Webcam", amount: 79.99, region: "North", date: "2024-01-20" },
    { product: "Microphone", amount: 199.99, region: "South", date: "2024-01-21" },
    { product: "Tablet", amount: 399.99, region: "East", date: "2024-01-22" },
    { product: "Speaker", amount: 129.99, region: "West", date: "2024-01-23" },
    { product: "Printer", amount: 249.99, region: "North", date: "2024-01-24" },
  ].map((sale, i) => ({ id: i + 1, ...sale }));
  // One call instead of ten: rows are grouped per shard, one transaction per shard,
  // and nothing is committed until every shard has taken its rows.
  const inserted = await manager.insertMany("sales", sales);
  for (const sale of sales) {
    console.log(
      `   Inserted: ${sale.product} (${money(sale.amount)}) on shard ${
        manager.getShardId(sale.id)
      }`,
    );
  }
  console.log(`   ${inserted} rows in one call\n`);

  console.log("4. Performing aggregations...");
  // As in the original: aggregate() answers keyed by the expression as written.
  const total = await manager.aggregate("sales", "COUNT(*)");
  console.log(`   Total sales:   ${total["COUNT(*)"]}`);
  const revenue = await manager.aggregate("sales", "SUM(amount)");
  console.log(`   Total revenue: ${money(revenue["SUM(amount)"])}`);
  const average = await manager.aggregate("sales", "AVG(amount)");
  console.log(`   Average sale:  ${money(average["AVG(amount)"])}`);
  const highest = await manager.aggregate("sales", "MAX(amount)");
  console.log(`   Highest sale:  ${money(highest["MAX(amount)"])}`);
  const lowest = await manager.aggregate("sales", "MIN(amount)");
  console.log(`   Lowest sale:   ${money(lowest["MIN(amount)"])}`);

  // Several expressions in one pass over the shards, with a filter.
  const north = await manager.aggregate(
    "sales",
    ["COUNT(*)", "SUM(amount)", "AVG(amount)"],
    { where: { region: "North" } },
  );
  console.log(
    `   North region:  ${north["COUNT(*)"]} sales, ${money(north["SUM(amount)"])} revenue, ` +
      `${money(north["AVG(amount)"])} average`,
  );

  // The shorthand methods do the same.
  console.log(
    `   Shorthands:    count=${await manager.count("sales")}, ` +
      `sum=${money(await manager.sum("sales", "amount"))}, ` +
      `avg=${money(await manager.avg("sales", "amount"))}, ` +
      `over $200=${await manager.count("sales", { amount: { gt: 200 } })}`,
  );

  // AVG is total SUM / total COUNT: averaging each shard's AVG would weigh a shard of 2
  // rows like a shard of 5. queryAll runs SQL on each shard and does not combine.
  const perShard = await manager.queryAll(
    "SELECT AVG(amount) AS avg, COUNT(*) AS n FROM sales",
  );
  const naive = perShard.reduce((s, r) => s + Number(r.avg), 0) / perShard.length;
  console.log(
    `   Per-shard averages ${
      perShard.map((r) => `${money(r.avg)} (${r.n} rows)`).join(", ")
    } average to ${money(naive)}, not ${money(average["AVG(amount)"])}`,
  );

  // ORDER BY and LIMIT across shards: each shard sends its top 3, merged k-way.
  const top = await manager.select("sales", {
    columns: ["product", "amount"],
    orderBy: [{ column: "amount", direction: "desc" }],
    limit: 3,
  });
  console.log(`   Top 3 sales:   ${top.map((s) => `${s.product} ${money(s.amount)}`).join(", ")}`);

  // GROUP BY across shards: each shard groups its rows, the groups are combined exactly.
  const byRegion = await manager.aggregateBy("sales", "region", ["COUNT(*)", "SUM(amount)"]);
  for (const r of byRegion) {
    console.log(
      `   ${String(r.region).padEnd(6)} ${r["COUNT(*)"]} sales, ${money(r["SUM(amount)"])}`,
    );
  }

  // Only COUNT/SUM/AVG/MIN/MAX of a column can be combined exactly; others are refused.
  try {
    await manager.aggregate("sales", "COUNT(DISTINCT region)");
  } catch (error) {
    if (!(error instanceof InvalidQueryError)) throw error;
    console.log(`   Refused: ${error.message}`);
  }
  console.log();

  console.log("5. Shard distribution...");
  const info = manager.getShardInfo();
  console.log(`   Strategy: ${JSON.stringify(info.strategy)}`);
  for (const shard of await manager.getShardStats()) {
    console.log(
      `   Shard ${shard.shardId}: ${shard.path} (${shard.rows.sales} rows, ${shard.sizeBytes} bytes)`,
    );
  }
  console.log("\nAggregations completed successfully!");
  console.log("Note: these aggregations combine every shard's partial results exactly.");

  console.log("\nCleaning up...");
  await manager.shutdown();
  console.log("Shutdown completed");
} finally {
  await Deno.remove(dbDir, { recursive: true });
}
