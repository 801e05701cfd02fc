/**
 * A table whose rows a shard refuses at COMMIT (not before): `kids.parent` is a deferred
 * foreign key to `parents`, a per-shard table. A shard without parent 1 accepts kids'
 * INSERTs and then fails their COMMIT, which puts an insertMany past its commit point
 * (the coordinator committed) with one shard's part refused.
 */
import type { ShardManager } from "../mod.ts";

export const KIDS = { id: "INTEGER PRIMARY KEY", parent: "INTEGER", note: "TEXT" };

/** Creates `parents` and `kids` on every shard, parent 1 on every shard but `trapped`. */
export async function setUpTrap(manager: ShardManager, trapped: number): Promise<void> {
  await manager.applySchema(
    "CREATE TABLE IF NOT EXISTS parents (id INTEGER PRIMARY KEY); " +
      "CREATE TABLE IF NOT EXISTS kids (id INTEGER PRIMARY KEY, " +
      "parent INTEGER REFERENCES parents(id) DEFERRABLE INITIALLY DEFERRED, note TEXT)",
  );
  // Records the shard key; the table exists already.
  await manager.createTable("kids", KIDS, { shardKey: "id" });
  for (let shard = 0; shard < manager.numShards; shard++) {
    if (shard !== trapped) await setParent(manager, shard, true);
  }
}

/** Adds or removes parent 1 on `shard`. */
export async function setParent(manager: ShardManager, shard: number, present: boolean) {
  await manager.getPool(shard).withConnection((c) =>
    c.run(present ? "INSERT OR IGNORE INTO parents (id) VALUES (1)" : "DELETE FROM parents")
  );
}

/** `count` kids, ids 1..count, all of parent 1. */
export function kids(count: number): { id: number; parent: number; note: string }[] {
  return Array.from({ length: count }, (_, i) => ({ id: i + 1, parent: 1, note: `kid ${i + 1}` }));
}

/**
 * The coordinator insertMany will pick for `rows` (the shard with the most rows, the
 * lowest id on a tie) and the shard with the fewest rows, with rows per shard.
 */
export function roles(
  manager: ShardManager,
  rows: readonly { id: number }[],
): { coordinator: number; smallest: number; perShard: number[] } {
  const perShard = new Array<number>(manager.numShards).fill(0);
  for (const row of rows) perShard[manager.getShardId(row.id)]!++;
  const used = perShard.map((n, shard) => ({ n, shard })).filter((s) => s.n > 0);
  const coordinator = used.reduce((a, b) => (b.n > a.n ? b : a)).shard;
  const smallest = used.reduce((a, b) => (b.n < a.n ? b : a)).shard;
  return { coordinator, smallest, perShard };
}
