/**
 * The node-sqlite3-wasm driver: SQLite compiled to WebAssembly, file access through
 * Node's `fs` (Deno's Node compatibility layer).
 *
 * Pinned to node-sqlite3-wasm 0.8.60: positional rows use the statement's private
 * `_bind`/`_step`/`_getRow`/`_getColumnNames`/`_reset` (the public API returns objects
 * only, which collapse duplicate column names). {@link assertDriverInternals} checks
 * them at the first open, and a test pins them.
 *
 * @module
 */

import sqlite from "npm:node-sqlite3-wasm@0.8.60";
import type { Params, Row, RunResult, SqlValue } from "../types.ts";
import type { DriverCursor } from "./driver.ts";
import type {
  ConfigureOptions,
  DriverHandle,
  OpenOptions,
  PositionalRows,
  SyncDriver,
  SyncDriverHandle,
} from "./driver.ts";

// The package's named exports type-check but are undefined at run time (DESIGN.md).
const { Database } = sqlite;

type WasmDatabase = InstanceType<typeof Database>;
type WasmStatement = ReturnType<WasmDatabase["prepare"]>;
type BindValues = Parameters<WasmStatement["run"]>[0];

/** The private statement methods this driver relies on (node-sqlite3-wasm 0.8.60). */
interface StatementInternals {
  _bind(values: BindValues): void;
  _step(): boolean;
  _getRow(columns: string[], expand: boolean): Row;
  _getColumnNames(): string[];
  _reset(): boolean;
}

const REQUIRED_INTERNALS = ["_bind", "_step", "_getRow", "_getColumnNames", "_reset"] as const;
let internalsChecked = false;

/** Throws when the installed node-sqlite3-wasm lacks the private methods used here. */
export function assertDriverInternals(statement: object): void {
  if (internalsChecked) return;
  const proto = Object.getPrototypeOf(statement) as Record<string, unknown>;
  const missing = REQUIRED_INTERNALS.filter((name) => typeof proto[name] !== "function");
  if (missing.length > 0) {
    throw new Error(
      `node-sqlite3-wasm lacks ${missing.join(", ")}; Shardlite needs version 0.8.60 ` +
        `(pin "npm:node-sqlite3-wasm@0.8.60" in deno.json imports).`,
    );
  }
  internalsChecked = true;
}

// finalize() rethrows the statement's last step error; that error was reported already.
function finalizeQuietly(statement: WasmStatement): void {
  if (statement.isFinalized) return;
  try {
    statement.finalize();
  } catch {
    // The statement is finalized even when SQLite returns its last error code.
  }
}

function internals(statement: WasmStatement): StatementInternals {
  return statement as unknown as StatementInternals;
}

// Synthetic keys keep every column of a row, even when names repeat or look like integers.
const positionalKeyCache: string[][] = [];
function positionalKeys(count: number): string[] {
  let keys = positionalKeyCache[count];
  if (keys === undefined) {
    keys = Array.from({ length: count }, (_, i) => `c${i}`);
    positionalKeyCache[count] = keys;
  }
  return keys;
}

class WasmHandle implements SyncDriverHandle {
  #db: WasmDatabase;
  #statements = new Map<string, WasmStatement>();
  #cacheSize: number;

  constructor(db: WasmDatabase, cacheSize: number) {
    this.#db = db;
    this.#cacheSize = cacheSize;
  }

  get isOpen(): boolean {
    return this.#db.isOpen;
  }

  get inTransaction(): boolean {
    return this.#db.isOpen && this.#db.inTransaction;
  }

  get cachedStatements(): number {
    return this.#statements.size;
  }

  #prepare(sql: string): WasmStatement {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#db.prepare(sql);
      assertDriverInternals(statement);
      if (this.#statements.size >= this.#cacheSize) {
        // Evict the oldest entry: a bounded cache keeps the shared WASM heap bounded.
        const oldest = this.#statements.keys().next();
        if (!oldest.done) {
          const evicted = this.#statements.get(oldest.value);
          this.#statements.delete(oldest.value);
          if (evicted !== undefined) finalizeQuietly(evicted);
        }
      }
      if (this.#cacheSize > 0) this.#statements.set(sql, statement);
    }
    return statement;
  }

  iterate(sql: string, params?: Params): DriverCursor {
    // A statement of its own: a cached one could be reset under it by another call.
    const statement = this.#db.prepare(sql);
    assertDriverInternals(statement);
    const inner = internals(statement);
    let columns: string[];
    try {
      inner._bind(params as BindValues);
      columns = inner._getColumnNames();
    } catch (error) {
      finalizeQuietly(statement);
      throw error;
    }
    let done = false;
    const finish = () => {
      done = true;
      finalizeQuietly(statement);
    };
    const db = this.#db;
    return {
      next(max: number): Row[] {
        const rows: Row[] = [];
        if (done) return rows;
        // A closed database steps no rows: say so rather than end the stream early.
        if (!db.isOpen || statement.isFinalized) {
          throw new Error("Database is closed: a cursor was open on it");
        }
        try {
          while (rows.length < max && inner._step()) rows.push(inner._getRow(columns, false));
        } catch (error) {
          finish();
          throw error;
        }
        if (rows.length < max) finish();
        return rows;
      },
      close: finish,
    };
  }

  #release(sql: string, statement: WasmStatement): void {
    // A statement the cache does not keep (cache size 0) is finalized at once.
    if (this.#statements.get(sql) !== statement) finalizeQuietly(statement);
  }

  run(sql: string, params?: Params): RunResult {
    const statement = this.#prepare(sql);
    try {
      return statement.run(params as BindValues);
    } catch (error) {
      internals(statement)._reset();
      throw error;
    } finally {
      this.#release(sql, statement);
    }
  }

  runMany(sql: string, paramSets: readonly Params[]): number {
    const statement = this.#prepare(sql);
    let changes = 0;
    try {
      for (let i = 0; i < paramSets.length; i++) {
        changes += statement.run(paramSets[i] as BindValues).changes;
      }
      return changes;
    } catch (error) {
      internals(statement)._reset();
      throw error;
    } finally {
      this.#release(sql, statement);
    }
  }

  all(sql: string, params?: Params): Row[] {
    const statement = this.#prepare(sql);
    const inner = internals(statement);
    try {
      // The public all() goes through a generator; stepping directly is ~0.5 µs cheaper.
      inner._bind(params as BindValues);
      const columns = inner._getColumnNames();
      const rows: Row[] = [];
      while (inner._step()) rows.push(inner._getRow(columns, false));
      // Reset at once: some statements (EXPLAIN ...) keep a table lock until reset.
      inner._reset();
      return rows;
    } catch (error) {
      inner._reset();
      throw error;
    } finally {
      this.#release(sql, statement);
    }
  }

  get(sql: string, params?: Params): Row | undefined {
    const statement = this.#prepare(sql);
    const inner = internals(statement);
    try {
      inner._bind(params as BindValues);
      const columns = inner._getColumnNames();
      const row = inner._step() ? inner._getRow(columns, false) : undefined;
      // Reset now: a half-stepped statement would keep its read snapshot open.
      inner._reset();
      return row;
    } catch (error) {
      inner._reset();
      throw error;
    } finally {
      this.#release(sql, statement);
    }
  }

  values(sql: string, params?: Params): PositionalRows {
    const statement = this.#prepare(sql);
    const inner = internals(statement);
    try {
      const columns = inner._getColumnNames();
      if (columns.length === 0) {
        const { changes, lastInsertRowid } = statement.run(params as BindValues);
        return { columns, rows: [], changes, lastInsertRowid };
      }
      inner._bind(params as BindValues);
      const keys = positionalKeys(columns.length);
      const rows: SqlValue[][] = [];
      while (inner._step()) {
        const object = inner._getRow(keys, false);
        const row = new Array<SqlValue>(keys.length);
        for (let i = 0; i < keys.length; i++) row[i] = object[keys[i] as string] as SqlValue;
        rows.push(row);
      }
      inner._reset();
      return { columns, rows };
    } catch (error) {
      inner._reset();
      throw error;
    } finally {
      this.#release(sql, statement);
    }
  }

  exec(sql: string): void {
    this.#db.exec(sql);
  }

  close(): void {
    if (!this.#db.isOpen) return;
    for (const statement of this.#statements.values()) finalizeQuietly(statement);
    this.#statements.clear();
    this.#db.close();
  }
}

// Messages of errors that mean the handle itself is unusable, not just the statement.
const BROKEN_PATTERN =
  /disk I\/O error|malformed|file is not a database|already closed|Database is closed|unable to open database file|database disk image/i;
const BUSY_PATTERN = /database is locked|SQLITE_BUSY/i;

/**
 * The default driver, over node-sqlite3-wasm. Its VFS locks a file by creating a
 * `<db>.lock` directory and has no shared memory, so a shard handle runs in EXCLUSIVE
 * locking mode (which WAL needs here, and which keeps locking off the hot path), and a
 * file is used by one handle of one process at a time (`canShare: false`).
 *
 * @example Open an in-memory handle
 * ```ts
 * import { wasmDriver } from "./wasm.ts";
 * const handle = wasmDriver.open(":memory:", { create: true, statementCacheSize: 16 });
 * handle.exec("CREATE TABLE t (a, a2)");
 * handle.run("INSERT INTO t VALUES (?, ?)", [1, "x"]);
 * const { rows } = handle.values("SELECT a, a FROM t");
 * if (rows[0]?.length !== 2) throw new Error("duplicate columns must be kept");
 * handle.close();
 * ```
 */
export const wasmDriver: SyncDriver = {
  name: "node-sqlite3-wasm",
  canShare: false,
  open(path: string, options: OpenOptions): SyncDriverHandle {
    const db = new Database(path, { fileMustExist: !options.create });
    return new WasmHandle(db, options.statementCacheSize);
  },
  configure(handle: DriverHandle, options: ConfigureOptions): void {
    if (options.access !== "exclusive") {
      throw new TypeError(`${this.name} cannot share a file (access: "${options.access}")`);
    }
    const sync = handle as SyncDriverHandle;
    // EXCLUSIVE first: WAL silently stays "delete" without it (no shared-memory methods).
    sync.get("PRAGMA locking_mode=EXCLUSIVE");
    const mode = sync.get("PRAGMA journal_mode=WAL")?.["journal_mode"];
    if (mode !== "wal") throw new Error(`journal_mode stayed ${String(mode)}, not wal`);
    sync.exec(
      `PRAGMA foreign_keys=ON; PRAGMA synchronous=${options.synchronous}; ` +
        `PRAGMA cache_size=-${options.cacheSizeKiB}`,
    );
    sync.get("SELECT count(*) FROM sqlite_schema");
  },
  isBrokenHandleError(error: unknown): boolean {
    return error instanceof Error && BROKEN_PATTERN.test(error.message);
  },
  isBusyError(error: unknown): boolean {
    return error instanceof Error && BUSY_PATTERN.test(error.message);
  },
  clearStaleLock(path: string): boolean {
    try {
      Deno.removeSync(`${path}.lock`);
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw new Error(`cannot remove the stale lock directory ${path}.lock`, { cause: error });
    }
  },
  backup(handle: DriverHandle, target: string): void {
    (handle as SyncDriverHandle).run("VACUUM INTO ?", [target]);
  },
  checkText(text: string): string | undefined {
    // It binds text up to the first NUL: "a\0b" would be stored, and match, as "a".
    return text.includes("\0")
      ? "the string contains NUL (U+0000), which node-sqlite3-wasm truncates when it binds " +
        "text; store it as a Uint8Array"
      : undefined;
  },
};
