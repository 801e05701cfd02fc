/**
 * Transactions, after the original Shardlite's `03_transactions.py`: 4 shards, an
 * accounts table, a money transfer, then a transfer that fails and is rolled back.
 *
 *   npx --yes deno@2.9.6 run --allow-read --allow-write examples/03_transactions.ts
 *
 * Works in a fresh temporary directory that it removes at the end.
 *
 * The original wraps a cross-shard transfer in a two-phase commit. This library has no
 * 2PC: `transaction(key, fn)` is ACID on the one shard `key` maps to. So the example
 * keeps what must change together on one shard (an account and its ledger entries are
 * both sharded by account id), and moves money between shards in two steps, each atomic
 * on its shard, undoing the first if the second fails. (A crash between the two steps
 * would leave only the first: record such transfers durably if that matters.)
 */

import { type PooledConnection, ShardManager } from "../mod.ts";

const money = (value: unknown) => {
  const n = Number(value);
  return `${n < 0 ? "-" : ""}$${Math.abs(n).toFixed(2)}`;
};

class InsufficientFundsError extends Error {
  override name = "InsufficientFundsError";
}

console.log("=== Transactions Example ===\n");
const dbDir = await Deno.makeTempDir({ prefix: "shardlite-transactions-" });

try {
  // The original attached a transaction logger; here the example prints its own steps.
  console.log("1. Initializing Shardlite...");
  await using manager = new ShardManager({ numShards: 4, dbDir });
  console.log(`   4 shards in ${dbDir}\n`);

  console.log("2. Creating 'accounts' and 'ledger' tables...");
  await manager.createTable("accounts", {
    id: "INTEGER PRIMARY KEY",
    name: "TEXT NOT NULL",
    balance: "REAL NOT NULL DEFAULT 0.0",
    email: "TEXT",
  }, { shardKey: "id" });
  await manager.createTable("ledger", {
    entry: "INTEGER PRIMARY KEY",
    account_id: "INTEGER NOT NULL",
    amount: "REAL NOT NULL",
    note: "TEXT",
  }, { shardKey: "account_id" });
  console.log("   accounts sharded by id, ledger by account_id: an account's rows share a shard\n");

  console.log("3. Creating sample accounts...");
  const accounts = [
    { id: 1, name: "Alice", balance: 1000.00, email: "alice@example.com" },
    { id: 2, name: "Bob", balance: 500.00, email: "bob@example.com" },
    { id: 3, name: "Charlie", balance: 750.00, email: "charlie@example.com" },
    { id: 4, name: "Diana", balance: 1200.00, email: "diana@example.com" },
  ];
  await manager.insertMany("accounts", accounts); // committed once every shard has its rows
  for (const a of accounts) {
    console.log(
      `   Created account: ${a.name} (${money(a.balance)}) on shard ${manager.getShardId(a.id)}`,
    );
  }
  console.log();

  const showBalances = async () => {
    for (const a of await manager.select("accounts", { orderBy: "id" })) {
      console.log(`   ${String(a.name).padEnd(8)} ${money(a.balance)}`);
    }
    const entries = await manager.count("ledger");
    const total = await manager.sum("accounts", "balance");
    console.log(`   (total ${money(total)}, ${entries} ledger entries)`);
  };
  console.log("4. Initial account balances:");
  await showBalances();
  console.log();

  // One shard's part of a transfer: the balance and its ledger entry change together.
  // The original expected a negative balance to fail by itself; nothing in its schema
  // did that, so the check is here, inside the transaction.
  const post = async (tx: PooledConnection, id: number, amount: number, note: string) => {
    await tx.run("INSERT INTO ledger (account_id, amount, note) VALUES (?, ?, ?)", [
      id,
      amount,
      note,
    ]);
    const row = await tx.get(
      "UPDATE accounts SET balance = balance + ? WHERE id = ? RETURNING balance",
      [amount, id],
    );
    if (row === undefined) throw new Error(`account ${id} not found`);
    if (Number(row.balance) < 0) {
      throw new InsufficientFundsError(`account ${id} would be left with ${money(row.balance)}`);
    }
  };

  /** Moves `amount` from one account to another: one transaction when they share a shard. */
  const transfer = async (from: number, to: number, amount: number) => {
    const note = `transfer ${from}->${to}`;
    if (manager.getShardId(from) === manager.getShardId(to)) {
      await manager.transaction(from, async (tx) => {
        await post(tx, from, -amount, note);
        await post(tx, to, amount, note);
      });
      console.log(`   One transaction on shard ${manager.getShardId(from)}: committed`);
      return;
    }
    await manager.transaction(from, (tx) => post(tx, from, -amount, note));
    console.log(`   Step 1, debit ${from} on shard ${manager.getShardId(from)}: committed`);
    try {
      await manager.transaction(to, (tx) => post(tx, to, amount, note));
      console.log(`   Step 2, credit ${to} on shard ${manager.getShardId(to)}: committed`);
    } catch (error) {
      // Compensate: give the money back, in another transaction on the first shard.
      await manager.transaction(from, (tx) => post(tx, from, amount, `undo ${note}`));
      console.log(`   Step 2 failed; step 1 undone on shard ${manager.getShardId(from)}`);
      throw error;
    }
  };

  console.log("5. Transferring money...");
  const shardOf = (id: number) => `shard ${manager.getShardId(id)}`;
  const [alice] = await manager.select("accounts", { key: 1 });
  const [bob] = await manager.select("accounts", { key: 2 });
  console.log(`   $200 from Alice (ID 1, ${shardOf(1)}) to Bob (ID 2, ${shardOf(2)})`);
  console.log(`   Before: Alice=${money(alice?.balance)}, Bob=${money(bob?.balance)}`);
  await transfer(1, 2, 200);
  console.log(`   $150 from Diana (ID 4, ${shardOf(4)}) to Charlie (ID 3, ${shardOf(3)})`);
  await transfer(4, 3, 150);
  console.log();

  console.log("6. Verifying transfer results:");
  await showBalances();
  console.log();

  console.log("7. Demonstrating transaction rollback...");
  const [bob2] = await manager.select("accounts", { key: 2 });
  const [charlie] = await manager.select("accounts", { key: 3 });
  const tooMuch = Number(bob2?.balance) + 1000;
  const bobEntries = await manager.count("ledger", { account_id: 2 });
  console.log(`   Before: Bob=${money(bob2?.balance)}, Charlie=${money(charlie?.balance)}`);
  console.log(`   Attempting to transfer ${money(tooMuch)} from Bob (will fail)`);
  try {
    await transfer(2, 3, tooMuch);
    console.log("   Unexpected: the transfer went through");
  } catch (error) {
    // An error your own code throws inside transaction(key, fn) comes back unchanged.
    if (!(error instanceof InsufficientFundsError)) throw error;
    console.log(`   Transaction failed on shard ${manager.getShardId(2)}: ${error.message}`);
    const now = await manager.count("ledger", { account_id: 2 });
    console.log(
      `   Rolled back: Bob's ledger rows ${bobEntries} before, ${now} after (the row ` +
        `written before the check is gone)`,
    );
  }

  // Across shards the first step is already committed when the second fails, so the
  // transfer undoes it with a compensating entry.
  console.log(`   Attempting $100 from Charlie (${shardOf(3)}) to account 99 (${shardOf(99)})`);
  try {
    await transfer(3, 99, 100);
  } catch (error) {
    if (!(error instanceof Error)) throw error;
    console.log(`   Credit failed on shard ${manager.getShardId(99)}: ${error.message}`);
    console.log("   Compensated: Charlie's debit was refunded by an 'undo' ledger entry");
  }
  console.log();

  console.log("8. Verifying the failed transfers changed no balance:");
  await showBalances();
  console.log("   (the ledger keeps the failed cross-shard attempt: Charlie's debit and its undo)");

  console.log("\nTransaction example completed successfully!");
  console.log("Key points:");
  console.log("  - transaction(key, fn) is ACID on the shard of key; throwing in fn rolls back");
  console.log("  - keep rows that change together on one shard (same shard key)");
  console.log("  - across shards there is no 2PC: use steps that are each atomic, and undo them");
  console.log("  - insertMany commits only once every shard has taken its rows");

  console.log("\nCleaning up...");
  await manager.shutdown();
  console.log("Shutdown completed");
} finally {
  await Deno.remove(dbDir, { recursive: true });
}
