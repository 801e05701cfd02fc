/**
 * The native driver: Deno's built-in `node:sqlite` (SQLite compiled into the runtime).
 * No npm package, no download, no `--allow-ffi`: `--allow-read` and `--allow-write` on
 * the database files are enough.
 *
 * It behaves like the node-sqlite3-wasm driver wherever the layers above can tell:
 *
 * - integral safe numbers and booleans bind as INTEGER (node:sqlite binds every number
 *   as REAL and refuses booleans), other numbers as REAL;
 * - integers read back as numbers, beyond 2^53 as bigints (node:sqlite offers all or
 *   none), and `run()` reports `changes`/`lastInsertRowid` the same way;
 * - rows are plain objects (node:sqlite's have a null prototype), built from array rows
 *   so duplicate column names survive in {@link DriverHandle.values};
 * - named parameters need their prefix (`{ ":id": 1 }`), as with node-sqlite3-wasm;
 * - no busy timeout (node:sqlite waits 5 s by default, blocking the thread), temporary
 *   tables in memory (node-sqlite3-wasm is built that way);
 * - errors from `exec()` get the `errcode`/`errstr` node:sqlite gives every other call,
 *   so "database is locked" is recognisable as SQLITE_BUSY (5) everywhere;
 * - a closed handle throws "Database already closed".
 *
 * @module
 */

import { bindLikeWasm } from "./bind.ts";
import { backup, DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import type { Params, Row, RunResult, SqlValue } from "../types.ts";
import type {
  ConfigureOptions,
  DriverCursor,
  DriverHandle,
  OpenOptions,
  PositionalRows,
  SyncDriver,
  SyncDriverHandle,
} from "./driver.ts";

// --- values in: what node-sqlite3-wasm binds, in node:sqlite's terms -----------------------

/** A parameter value as node:sqlite takes it. */
type NativeInput = SQLInputValue;

/** One value, bound the way node-sqlite3-wasm binds it. */
function bindValue(value: unknown): NativeInput {
  return bindLikeWasm(value);
}

/** Positional parameters as the argument list of a node:sqlite call. */
function bindPositional(params: readonly unknown[]): NativeInput[] {
  const args = new Array<NativeInput>(params.length);
  for (let i = 0; i < params.length; i++) args[i] = bindValue(params[i]);
  return args;
}

/** Named parameters; keys keep their prefix (`:name`, `$name`, `@name`). */
function bindNamed(params: Readonly<Record<string, unknown>>): Record<string, NativeInput> {
  const named = Object.create(null) as Record<string, NativeInput>;
  for (const key of Object.keys(params)) named[key] = bindValue(params[key]);
  return named;
}

const NO_ARGS: NativeInput[] = [];

/** The argument list of a node:sqlite call for `params`. */
function bindArgs(params: Params | undefined): NativeInput[] {
  if (params === undefined) return NO_ARGS;
  if (Array.isArray(params)) return bindPositional(params);
  // A one-element list holding the object: node:sqlite's named form.
  return [bindNamed(params as Readonly<Record<string, unknown>>)] as unknown as NativeInput[];
}

// --- values out ----------------------------------------------------------------------------

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A bigint as node-sqlite3-wasm returns it: a number when it is safe. */
function narrow(value: bigint): number | bigint {
  return value >= MIN_SAFE && value <= MAX_SAFE ? Number(value) : value;
}

/** An array row (bigints on) as a plain object keyed by column name; later names win. */
function toRow(values: readonly unknown[], names: readonly string[]): Row {
  const row: Row = {};
  for (let i = 0; i < names.length; i++) {
    const value = values[i];
    row[names[i] as string] = (typeof value === "bigint" ? narrow(value) : value) as SqlValue;
  }
  return row;
}

/** An array row with its bigints narrowed, in place. */
function narrowRow(values: unknown[]): SqlValue[] {
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (typeof value === "bigint") values[i] = narrow(value);
  }
  return values as SqlValue[];
}

/** node:sqlite's run() result (bigints on) as node-sqlite3-wasm reports it. */
function toRunResult(
  result: { changes: number | bigint; lastInsertRowid: number | bigint },
): RunResult {
  const rowid = result.lastInsertRowid;
  return {
    changes: Number(result.changes),
    lastInsertRowid: typeof rowid === "bigint" ? narrow(rowid) : rowid,
  };
}

// --- errors --------------------------------------------------------------------------------

/** A SQLite error as node:sqlite raises it. */
interface NativeSqliteError extends Error {
  code?: string;
  errcode?: number;
  errstr?: string;
}

// exec() errors carry only a message; these are SQLite's own texts for the primary codes.
const MESSAGE_CODES: readonly (readonly [RegExp, number, string])[] = [
  [/^database is locked/, 5, "database is locked"],
  [/^database table is locked/, 6, "database table is locked"],
  [/^out of memory/, 7, "out of memory"],
  [/^attempt to write a readonly database/, 8, "attempt to write a readonly database"],
  [/^interrupted/, 9, "interrupted"],
  [/^disk I\/O error/, 10, "disk I/O error"],
  [/^database disk image is malformed/, 11, "database disk image is malformed"],
  [/^database or disk is full/, 13, "database or disk is full"],
  [/^unable to open database file/, 14, "unable to open database file"],
  [/^database schema has changed/, 17, "database schema has changed"],
  [/constraint failed/, 19, "constraint failed"],
  [/^datatype mismatch/, 20, "datatype mismatch"],
  [/^file is not a database/, 26, "file is not a database"],
];

/** The primary SQLite result code a message stands for (1, SQLITE_ERROR, when none). */
function codeOfMessage(message: string): readonly [number, string] {
  for (const [pattern, code, text] of MESSAGE_CODES) {
    if (pattern.test(message)) return [code, text];
  }
  return [1, "SQL logic error"];
}

/** Gives a node:sqlite error the SQLite code it lacks (errors from `exec()`). */
function withErrorCode(error: unknown): unknown {
  const e = error as NativeSqliteError;
  if (e instanceof Error && e.code === "ERR_SQLITE_ERROR" && e.errcode === undefined) {
    const [code, text] = codeOfMessage(e.message);
    e.errcode = code;
    e.errstr = text;
  }
  return error;
}

/** The error a closed handle throws: the text node-sqlite3-wasm uses, so pools see it broke. */
function closedError(cause?: unknown): Error {
  return new Error("Database already closed", cause === undefined ? undefined : { cause });
}

function isClosedError(error: unknown): boolean {
  const e = error as NativeSqliteError;
  return e instanceof Error && e.code === "ERR_INVALID_STATE" &&
    /database is not open|statement has been finalized/.test(e.message);
}

/** Whether node:sqlite failed because the SQL held no statement (only space or comments). */
function isEmptyStatementError(error: unknown): boolean {
  const e = error as NativeSqliteError;
  return e instanceof Error && e.errcode === 21 && e.message === "not an error";
}

/**
 * Whether `sql` holds no statement: only white space, comments and semicolons. SQLite
 * prepares nothing then; node-sqlite3-wasm refuses it, node:sqlite only fails when it runs.
 */
function isEmptySql(sql: string): boolean {
  let i = 0;
  while (i < sql.length) {
    const c = sql.charCodeAt(i);
    if (c === 0x20 || c === 0x3b || (c >= 0x09 && c <= 0x0d)) i++; // space, ';', \t-\r
    else if (c === 0x2d && sql.charCodeAt(i + 1) === 0x2d) { // -- to the end of the line
      const end = sql.indexOf("\n", i + 2);
      i = end < 0 ? sql.length : end + 1;
    } else if (c === 0x2f && sql.charCodeAt(i + 1) === 0x2a) { // /* to */, or to the end
      const end = sql.indexOf("*/", i + 2);
      i = end < 0 ? sql.length : end + 2;
    } else return false;
  }
  return true;
}

function sqliteError(message: string, errcode: number, errstr: string): NativeSqliteError {
  const error: NativeSqliteError = new Error(message);
  error.code = "ERR_SQLITE_ERROR";
  error.errcode = errcode;
  error.errstr = errstr;
  return error;
}

function nothingToPrepare(): NativeSqliteError {
  return sqliteError("Nothing to prepare", 21, "bad parameter or other API misuse");
}

// --- the handle ----------------------------------------------------------------------------

/** A prepared statement and the column names of its rows. */
interface CachedStatement {
  readonly statement: StatementSync;
  /** Column names, in order, duplicates kept. */
  columns: readonly string[];
  /** The schema epoch `columns` are known to be current for (-1: read them again). */
  columnsEpoch: number;
  /** The schema epoch of the statement's last execution (or its preparation). */
  ranEpoch: number;
  /** Whether running it may change the schema (anything but plain DML and queries). */
  readonly mayChangeSchema: boolean;
  /** Whether it is a SELECT: one that succeeds leaves the transaction state as it was. */
  readonly isSelect: boolean;
}

// Statements that cannot change a table's columns; anything else (DDL, ROLLBACK, PRAGMA...)
// makes cached statements re-read their column names.
const DATA_STATEMENT = /^\s*(?:SELECT|INSERT|UPDATE|DELETE|REPLACE|VALUES|WITH)\b/i;
const SELECT_STATEMENT = /^\s*SELECT\b/i;

const NOT_READ: readonly string[] = [];

class NativeHandle implements SyncDriverHandle {
  #db: DatabaseSync | null;
  readonly #statements = new Map<string, CachedStatement>();
  readonly #cacheSize: number;
  // Bumped by statements that may change the schema: `SELECT *` re-prepares with new columns.
  #epoch = 0;
  // db.isTransaction as last read (undefined: read it again). The pool asks after every
  // statement, and the native call costs about as much as the handle's own work on a point
  // read, so it is kept across SELECTs that succeed: those never begin or end a transaction
  // (a failing statement may roll one back, so any error forgets it).
  #inTransaction: boolean | undefined = undefined;

  constructor(db: DatabaseSync, cacheSize: number) {
    this.#db = db;
    this.#cacheSize = cacheSize;
  }

  /** The database of a native handle, for {@link nativeBackup}. */
  static database(handle: DriverHandle): DatabaseSync {
    if (!(handle instanceof NativeHandle)) {
      throw new TypeError("not a handle of the native (node:sqlite) driver");
    }
    return handle.#open();
  }

  get isOpen(): boolean {
    const db = this.#db;
    return db !== null && db.isOpen;
  }

  get inTransaction(): boolean {
    const known = this.#inTransaction;
    if (known !== undefined) return known;
    const db = this.#db;
    if (db === null) return false;
    try {
      return (this.#inTransaction = db.isTransaction);
    } catch {
      return false; // Closed underneath: no transaction.
    }
  }

  get cachedStatements(): number {
    return this.#statements.size;
  }

  #open(): DatabaseSync {
    const db = this.#db;
    if (db === null) throw closedError();
    return db;
  }

  #prepare(sql: string): CachedStatement {
    const cached = this.#statements.get(sql);
    if (cached !== undefined) return cached;
    const db = this.#open();
    if (isEmptySql(sql)) throw nothingToPrepare();
    let statement: StatementSync;
    try {
      statement = db.prepare(sql);
    } catch (error) {
      throw this.#failure(error, sql);
    }
    statement.setReadBigInts(true);
    // Deno 2.9.6 implements it; its node:sqlite types do not declare it yet.
    (statement as StatementSync & { setReturnArrays(enabled: boolean): void })
      .setReturnArrays(true);
    statement.setAllowBareNamedParameters(false);
    const entry: CachedStatement = {
      statement,
      columns: NOT_READ,
      columnsEpoch: -1,
      ranEpoch: this.#epoch,
      mayChangeSchema: !DATA_STATEMENT.test(sql),
      isSelect: SELECT_STATEMENT.test(sql),
    };
    if (this.#cacheSize > 0) {
      if (this.#statements.size >= this.#cacheSize) {
        // Oldest first, as the wasm driver evicts; node:sqlite has no finalize, so the
        // statement is freed by the garbage collector (or by close()).
        const oldest = this.#statements.keys().next();
        if (!oldest.done) this.#statements.delete(oldest.value);
      }
      this.#statements.set(sql, entry);
    }
    return entry;
  }

  /**
   * The statement's column names, read before it runs, as node-sqlite3-wasm reads them.
   * SQLite re-prepares a statement on its first step after a schema change, so names read
   * before that step may be the old plan's (and so are the row's width): read them again
   * next time.
   */
  #columns(entry: CachedStatement): readonly string[] {
    if (entry.columnsEpoch !== this.#epoch) {
      entry.columns = entry.statement.columns().map((column) => column.name);
      entry.columnsEpoch = entry.ranEpoch === this.#epoch ? this.#epoch : -1;
    }
    return entry.columns;
  }

  /**
   * The names for rows `width` wide. Only a schema change by another connection (shared
   * WAL mode) can make them differ: read the statement's names again, as it now stands.
   */
  #columnsFor(
    entry: CachedStatement,
    columns: readonly string[],
    width: number,
  ): readonly string[] {
    if (width === columns.length) return columns;
    entry.columnsEpoch = -1;
    return this.#columns(entry);
  }

  #ran(entry: CachedStatement): void {
    entry.ranEpoch = this.#epoch;
    if (!entry.isSelect) this.#inTransaction = undefined;
    if (entry.mayChangeSchema) this.#epoch++;
  }

  #failure(error: unknown, sql: string): unknown {
    this.#inTransaction = undefined;
    if (this.#db === null || isClosedError(error)) return closedError(error);
    if (isEmptyStatementError(error)) {
      // isEmptySql() missed it: still never keep it, as node-sqlite3-wasm never does.
      this.#statements.delete(sql);
      return nothingToPrepare();
    }
    return withErrorCode(error);
  }

  run(sql: string, params?: Params): RunResult {
    const entry = this.#prepare(sql);
    try {
      return toRunResult(entry.statement.run(...bindArgs(params)));
    } catch (error) {
      throw this.#failure(error, sql);
    } finally {
      this.#ran(entry);
    }
  }

  runMany(sql: string, paramSets: readonly Params[]): number {
    const entry = this.#prepare(sql);
    const statement = entry.statement;
    let changes = 0;
    try {
      for (let i = 0; i < paramSets.length; i++) {
        changes += Number(statement.run(...bindArgs(paramSets[i])).changes);
      }
      return changes;
    } catch (error) {
      throw this.#failure(error, sql);
    } finally {
      this.#ran(entry);
    }
  }

  all(sql: string, params?: Params): Row[] {
    const entry = this.#prepare(sql);
    let arrays: unknown[][];
    let columns: readonly string[];
    try {
      columns = this.#columns(entry);
      arrays = entry.statement.all(...bindArgs(params)) as unknown as unknown[][];
    } catch (error) {
      throw this.#failure(error, sql);
    } finally {
      this.#ran(entry);
    }
    const rows = new Array<Row>(arrays.length);
    if (arrays.length === 0) return rows;
    columns = this.#columnsFor(entry, columns, (arrays[0] as unknown[]).length);
    for (let i = 0; i < arrays.length; i++) rows[i] = toRow(arrays[i] as unknown[], columns);
    return rows;
  }

  get(sql: string, params?: Params): Row | undefined {
    const entry = this.#prepare(sql);
    let values: unknown[] | undefined;
    let columns: readonly string[];
    try {
      columns = this.#columns(entry);
      values = entry.statement.get(...bindArgs(params)) as unknown as unknown[] | undefined;
    } catch (error) {
      throw this.#failure(error, sql);
    } finally {
      this.#ran(entry);
    }
    if (values === undefined) return undefined;
    return toRow(values, this.#columnsFor(entry, columns, values.length));
  }

  values(sql: string, params?: Params): PositionalRows {
    const entry = this.#prepare(sql);
    const statement = entry.statement;
    try {
      const columns = this.#columns(entry);
      // A statement without result columns never gains any: report its changes instead.
      if (columns.length === 0) {
        const { changes, lastInsertRowid } = toRunResult(statement.run(...bindArgs(params)));
        return { columns: [], rows: [], changes, lastInsertRowid };
      }
      const arrays = statement.all(...bindArgs(params)) as unknown as unknown[][];
      for (let i = 0; i < arrays.length; i++) narrowRow(arrays[i] as unknown[]);
      const width = arrays.length === 0 ? columns.length : (arrays[0] as unknown[]).length;
      return {
        columns: this.#columnsFor(entry, columns, width).slice(),
        rows: arrays as SqlValue[][],
      };
    } catch (error) {
      throw this.#failure(error, sql);
    } finally {
      this.#ran(entry);
    }
  }

  iterate(sql: string, params?: Params): DriverCursor {
    const db = this.#open();
    if (isEmptySql(sql)) throw nothingToPrepare();
    // A statement of its own: a cached one could be reset under it by another call.
    let statement: StatementSync;
    let rows: Iterator<unknown>;
    let columns: readonly string[];
    try {
      statement = db.prepare(sql);
      statement.setReadBigInts(true);
      (statement as StatementSync & { setReturnArrays(enabled: boolean): void })
        .setReturnArrays(true);
      statement.setAllowBareNamedParameters(false);
      columns = statement.columns().map((column) => column.name);
      rows = statement.iterate(...bindArgs(params));
    } catch (error) {
      throw this.#failure(error, sql);
    }
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      try {
        rows.return?.();
      } catch {
        // Resetting a statement reports its last error again; it was reported already.
      }
    };
    return {
      next: (max: number): Row[] => {
        const page: Row[] = [];
        if (done) return page;
        // node:sqlite's iterator just ends on a closed database: say so instead.
        if (!this.isOpen) throw closedError();
        try {
          while (page.length < max) {
            const step = rows.next();
            if (step.done) break;
            const values = step.value as unknown[];
            if (values.length !== columns.length) {
              columns = statement.columns().map((column) => column.name);
            }
            page.push(toRow(values, columns));
          }
        } catch (error) {
          finish();
          throw this.#failure(error, sql);
        }
        if (page.length < max) finish();
        return page;
      },
      close: finish,
    };
  }

  exec(sql: string): void {
    const db = this.#open();
    try {
      db.exec(sql);
    } catch (error) {
      throw this.#failure(error, sql);
    } finally {
      this.#epoch++;
      this.#inTransaction = undefined;
    }
  }

  close(): void {
    const db = this.#db;
    if (db === null) return;
    this.#db = null;
    this.#inTransaction = undefined;
    this.#statements.clear();
    // close() finalizes every statement node:sqlite prepared on the handle.
    if (db.isOpen) db.close();
  }
}

/** Whether `path` names an in-memory or temporary database, or a URI (nothing to stat). */
function isMemoryPath(path: string): boolean {
  return path === "" || path === ":memory:" || path.startsWith("file:");
}

function fileExists(path: string): boolean {
  try {
    Deno.statSync(path); // a directory exists too: SQLite then says why it cannot open it
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

// How long a shared handle's setup retries SQLITE_BUSY (another user switching to WAL).
const SHARED_SETUP_MS = 5_000;

/**
 * The driver over Deno's built-in `node:sqlite`.
 *
 * @example Open an in-memory handle
 * ```ts
 * import { nativeDriver } from "./native.ts";
 * const handle = nativeDriver.open(":memory:", { create: true, statementCacheSize: 16 });
 * handle.exec("CREATE TABLE t (a)");
 * handle.run("INSERT INTO t VALUES (?)", [1]);
 * const row = handle.get("SELECT typeof(a) AS type FROM t");
 * if (row?.["type"] !== "integer") throw new Error("integers must bind as INTEGER");
 * if (handle.values("SELECT a, a FROM t").rows[0]?.length !== 2) throw new Error("keep both");
 * handle.close();
 * ```
 */
export const nativeDriver: SyncDriver = {
  name: "node:sqlite",
  canShare: true,
  open(path: string, options: OpenOptions): SyncDriverHandle {
    // node:sqlite has no "must exist" flag, and a `file:?mode=rw` URI needs --allow-write
    // on the URI text itself.
    if (!options.create && !isMemoryPath(path) && !fileExists(path)) {
      throw sqliteError(
        `unable to open database file: ${path} does not exist`,
        14,
        "unable to open database file",
      );
    }
    let db: DatabaseSync;
    try {
      // timeout 0: a busy wait would block the event loop (node:sqlite waits 5 s by default).
      db = new DatabaseSync(path, { timeout: 0 });
    } catch (error) {
      throw withErrorCode(error);
    }
    try {
      // node-sqlite3-wasm is built with SQLITE_TEMP_STORE=3: temporary tables in memory.
      db.exec("PRAGMA temp_store=MEMORY");
    } catch (error) {
      db.close();
      throw withErrorCode(error);
    }
    return new NativeHandle(db, options.statementCacheSize);
  },
  configure(handle: DriverHandle, options: ConfigureOptions): void | Promise<void> {
    const sync = handle as SyncDriverHandle;
    const steps = () => {
      // Exclusive: the lock is held for the handle's life (the fastest reads, no -shm
      // file). Shared: normal locking, WAL with shared memory, so other handles and
      // processes read while one writes.
      if (options.access === "exclusive") sync.get("PRAGMA locking_mode=EXCLUSIVE");
      const mode = sync.get("PRAGMA journal_mode=WAL")?.["journal_mode"];
      if (mode !== "wal") throw new Error(`journal_mode stayed ${String(mode)}, not wal`);
      sync.exec(
        `PRAGMA foreign_keys=ON; PRAGMA synchronous=${options.synchronous}; ` +
          `PRAGMA cache_size=-${options.cacheSizeKiB}`,
      );
      sync.get("SELECT count(*) FROM sqlite_schema");
    };
    if (options.access === "exclusive") return steps();
    // Shared: another isolate or process may be switching the file to WAL, or recovering
    // it, right now (SQLITE_BUSY): retry asynchronously, never sleeping on the thread.
    return (async () => {
      const started = performance.now();
      for (let delay = 1;; delay = Math.min(delay * 2, 50)) {
        try {
          return steps();
        } catch (error) {
          if (!this.isBusyError(error) || performance.now() - started > SHARED_SETUP_MS) {
            throw error;
          }
        }
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    })();
  },
  isBrokenHandleError(error: unknown): boolean {
    if (!(error instanceof Error)) return false;
    const code = (error as NativeSqliteError).errcode;
    // IOERR, CORRUPT, CANTOPEN, NOTADB (extended codes keep the primary in the low byte)
    if (typeof code === "number" && [10, 11, 14, 26].includes(code & 0xff)) return true;
    return /already closed|database is not open/i.test(error.message);
  },
  isBusyError(error: unknown): boolean {
    if (!(error instanceof Error)) return false;
    const code = (error as NativeSqliteError).errcode;
    return (typeof code === "number" && (code & 0xff) === 5) ||
      /database is locked/i.test(error.message);
  },
  clearStaleLock(): boolean {
    return false; // POSIX locks die with their process: nothing is left behind
  },
  backup(handle: DriverHandle, target: string): Promise<void> {
    return nativeBackup(handle, target).then(() => {});
  },
  checkText(text: string): string | undefined {
    // It stores "a\0b" whole but reads text back only up to the first NUL ("a").
    return text.includes("\0")
      ? "the string contains NUL (U+0000), which node:sqlite stores but reads back cut at " +
        "the NUL; store it as a Uint8Array"
      : undefined;
  },
};

/**
 * Copies the database of a {@link nativeDriver} handle to `target` with SQLite's online
 * backup (node:sqlite's `backup()`), WAL content included. Unlike `VACUUM INTO` it works
 * with only `--allow-read`/`--allow-write` (on the source and on `target`), and on the
 * handle's own EXCLUSIVE lock. `target` must be missing, empty or an SQLite database (it
 * is overwritten); its directory must exist. Resolves to the number of pages copied.
 *
 * It runs to the end synchronously (the event loop is blocked for the whole copy), and it
 * is refused while the handle has a transaction open: node:sqlite spins forever backing up
 * a connection with an open write transaction.
 *
 * @example Back up an in-memory database
 * ```ts
 * import { nativeBackup, nativeDriver } from "./native.ts";
 * const dir = Deno.makeTempDirSync();
 * const handle = nativeDriver.open(":memory:", { create: true, statementCacheSize: 4 });
 * handle.exec("CREATE TABLE t (a); INSERT INTO t VALUES (1)");
 * const pages = await nativeBackup(handle, `${dir}/copy.db`);
 * if (pages < 1) throw new Error("nothing copied");
 * handle.close();
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export function nativeBackup(handle: DriverHandle, target: string): Promise<number> {
  try {
    const db = NativeHandle.database(handle);
    if (handle.inTransaction) {
      throw new Error(
        "cannot back up a handle with an open transaction (node:sqlite would never finish); " +
          "commit or roll back first",
      );
    }
    // Typed as Promise<void>; Deno resolves it to the page count, as Node does.
    const copying = backup(db, target) as unknown as Promise<number>;
    return copying.catch((error: unknown): never => {
      throw withErrorCode(error);
    });
  } catch (error) {
    return Promise.reject(withErrorCode(error));
  }
}
