/**
 * Basic CRUD, after the original Shardlite's `01_basic_crud.py`: open 2 shards, create
 * a products table, insert, query (all rows, by key, by filter), update, delete, shut
 * down.
 *
 *   npx --yes deno@2.9.6 run --allow-read --allow-write examples/01_basic_crud.ts
 *
 * Works in a fresh temporary directory that it removes at the end.
 */

import { InvalidIdentifierError, InvalidQueryError, type Row, ShardManager } from "../mod.ts";

const price = (row: Row | undefined) => `$${Number(row?.price).toFixed(2)}`;

console.log("=== Basic CRUD Operations Example ===\n");
const dbDir = await Deno.makeTempDir({ prefix: "shardlite-crud-" });

try {
  // Step 1: open the shards. Nothing touches the disk before the first operation, which
  // creates dbDir, takes ownership of it and writes the shard map (shardlite.json).
  console.log("1. Initializing Shardlite...");
  await using manager = new ShardManager({ numShards: 2, dbDir });
  await manager.ready();
  console.log(`   2 shards in ${dbDir}\n`);

  // Step 2: the table exists on every shard; shardKey says which column routes a row.
  console.log("2. Creating 'products' table...");
  await manager.createTable("products", {
    id: "INTEGER PRIMARY KEY",
    name: "TEXT NOT NULL",
    price: "REAL",
    category: "TEXT",
  }, { shardKey: "id" });
  console.log("   Table created on all shards, sharded by id");

  // Table and column names are validated and quoted, never spliced into SQL as given.
  try {
    await manager.createTable("products; DROP TABLE products", { id: "INTEGER" });
  } catch (error) {
    if (!(error instanceof InvalidIdentifierError)) throw error;
    console.log(`   Refused a hostile table name: ${error.name}: ${error.message}\n`);
  }

  // Step 3: insert. The original passed the key beside a row without id, so each shard
  // numbered its rows from 1; here the key is the row's id column, unique across shards.
  console.log("3. Inserting products...");
  const products = [
    { name: "Laptop", price: 999.99, category: "electronics" },
    { name: "Mouse", price: 29.99, category: "electronics" },
    { name: "Book", price: 19.99, category: "books" },
    { name: "Coffee Mug", price: 12.99, category: "kitchen" },
  ];
  for (const [i, product] of products.entries()) {
    const id = i + 1;
    await manager.insert("products", { id, ...product });
    console.log(`   Inserted: ${product.name} (ID: ${id}) on shard ${manager.getShardId(id)}`);
  }
  console.log();

  // Step 4: query.
  console.log("4. Querying data...");
  // Across shards rows come in shard order unless orderBy asks for one (merged k-way).
  const all = await manager.select("products", { orderBy: "id" });
  console.log(`   Total products: ${all.length}`);
  for (const p of all) console.log(`     - ${p.name} (${price(p)})`);

  const [laptop] = await manager.select("products", { key: 1 }); // one shard only
  console.log(`   Product with ID 1: ${JSON.stringify(laptop)}`);

  const electronics = await manager.select("products", {
    where: { category: "electronics" },
    orderBy: "id",
  });
  console.log(`   Electronics products: ${electronics.length} found`);
  for (const p of electronics) console.log(`     - ${p.name}`);
  console.log();

  // Step 5: update. `key` already filters on the shard-key column: the original's
  // where={"id": 1} plus key=1 is refused here as giving the key twice.
  console.log("5. Updating data...");
  const updated = await manager.update("products", { price: 899.99 }, { key: 1 });
  console.log(`   Updated ${updated} product(s)`);
  const [after] = await manager.select("products", { key: 1 });
  console.log(`   Updated laptop price: ${price(after)}\n`);

  // Step 6: delete.
  console.log("6. Deleting data...");
  const deleted = await manager.delete("products", { key: 4 });
  console.log(`   Deleted ${deleted} product(s)`);
  console.log(`   Remaining products: ${await manager.count("products")}`);

  // An update or delete with neither key nor where would touch every row of every
  // shard, so it is refused unless { allShards: true } says that is meant.
  try {
    await manager.delete("products");
  } catch (error) {
    if (!(error instanceof InvalidQueryError)) throw error;
    console.log(`   delete("products") refused: ${error.name}: ${error.message}`);
  }
  console.log();

  console.log("Basic CRUD operations completed successfully!");
  console.log("\nCleaning up...");
  await manager.shutdown(); // also done by `await using` at the end of this block
  console.log("Shutdown completed: pools closed, files released");
} finally {
  await Deno.remove(dbDir, { recursive: true });
}
