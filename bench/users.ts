/**
 * The `users` table the benchmarks share, and the raw-driver ways of filling it that
 * Shardlite is measured against. Not a benchmark itself.
 */

import sqlite from "node-sqlite3-wasm";

const { Database } = sqlite;

/** The column definitions, for `ShardManager.createTable`. */
export const USERS = { id: "INTEGER PRIMARY KEY", name: "TEXT", age: "INTEGER" };

/** One row of `users` (a type alias, so it passes as a row record). */
export type User = { id: number; name: string; age: number };

/** A raw handle on `path` configured as Shardlite configures shards, with `users`. */
export function rawUsersDb(path: string): InstanceType<typeof Database> {
  const db = new Database(path);
  db.get("PRAGMA locking_mode=EXCLUSIVE");
  db.get("PRAGMA journal_mode=WAL");
  db.exec("CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)");
  return db;
}

/** Inserts `rows` one prepared statement a row, in one transaction. */
export function insertOneByOne(db: InstanceType<typeof Database>, rows: readonly User[]): void {
  const insert = db.prepare("INSERT INTO users VALUES (?, ?, ?)");
  try {
    db.exec("BEGIN");
    for (const r of rows) insert.run([r.id, r.name, r.age]);
    db.exec("COMMIT");
  } finally {
    insert.finalize();
  }
}

/**
 * Inserts `rows` 100 at a time through a prepared 100-row INSERT, in one transaction:
 * the packing `insertMany` does, by hand (`rows.length` must be a multiple of 100).
 */
export function insertPacked(db: InstanceType<typeof Database>, rows: readonly User[]): void {
  const insert = db.prepare(`INSERT INTO users VALUES ${Array(100).fill("(?, ?, ?)").join(", ")}`);
  const values = new Array<string | number>(300);
  try {
    db.exec("BEGIN");
    for (let i = 0; i < rows.length; i += 100) {
      for (let j = 0; j < 100; j++) {
        const r = rows[i + j] as User;
        values[j * 3] = r.id;
        values[j * 3 + 1] = r.name;
        values[j * 3 + 2] = r.age;
      }
      insert.run(values);
    }
    db.exec("COMMIT");
  } finally {
    insert.finalize();
  }
}
