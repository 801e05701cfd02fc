/**
 * The libSQL server driver: each handle is one database connection on a sqld server
 * (a hrana *stream*), reached over WebSocket (`ws://`, `wss://`, `libsql://`) or HTTP
 * (`http://`, `https://`). No native code: `--allow-net=<host>` is the only permission.
 *
 * Why a stream per handle, and not `@libsql/client`'s `execute()`: the pool sends
 * `BEGIN`, `SAVEPOINT`, `COMMIT`, `ROLLBACK` as statements of their own, through one
 * handle, and reads `inTransaction` after each. `@libsql/client` runs every `execute()`
 * on a fresh stream (a fresh server connection), so a `BEGIN` sent that way would end
 * with its stream; its `transaction()` object sends its own `BEGIN` and refuses
 * statements once SQL has ended the transaction. A hrana stream is what a local handle
 * is: one SQLite connection on the server, whose statements run in the order sent. So
 * this driver uses `@libsql/hrana-client` (the protocol client `@libsql/client` 0.18.0
 * is built on, same version) directly:
 *
 * - **WebSocket**: one socket and one stream per handle, kept open; requests pipeline
 *   (no round trip waits for the previous answer), and SQLite's own state is the
 *   authority: after any statement that may open or close a transaction (or any
 *   statement inside one), the handle asks the server (`get_autocommit`, pipelined, so
 *   no extra round trip), so `inTransaction` is exact.
 * - **HTTP**: a stream lives only as long as a transaction (sqld expires idle HTTP
 *   streams); outside one, each statement opens its stream and closes it in the same
 *   request.
 * - A socket that died while the handle was outside a transaction is reopened on the
 *   next statement, so a restarted server is reached again without an error; one that
 *   died inside a transaction fails that statement as a broken handle (the server rolled
 *   the transaction back; it is never retried).
 *
 * Values are those of the local drivers: safe integers bind as INTEGER (hrana sends
 * every JavaScript number as REAL), booleans as 0/1; integers read back as numbers,
 * beyond 2^53 as bigints; blobs as `Uint8Array`; text keeps NUL characters. Known
 * differences: `NaN` and `±Infinity` cannot be bound (hrana refuses them); a statement
 * mixing named and `?` parameters is refused by sqld; sqld parses SQL itself first and
 * refuses some statements SQLite accepts (`PRAGMA wal_checkpoint`, for one); an open
 * write transaction idle for 5 s while another writer waits is rolled back by sqld
 * ("Transaction timed out").
 *
 * @example A pool over one sqld database
 * ```ts ignore
 * import { ConnectionPool } from "../../mod.ts";
 * import { libsqlDriver } from "./libsql.ts";
 * await using pool = new ConnectionPool("ws://127.0.0.1:8080", { driver: libsqlDriver });
 * await pool.withConnection((conn) => conn.all("SELECT 1 AS one"));
 * ```
 *
 * @module
 */

import { bindLikeWasm } from "./bind.ts";
import * as hrana from "npm:@libsql/hrana-client@0.10.0";
import type { Params, Row, RunResult, SqlValue } from "../types.ts";
import type {
  ConfigureOptions,
  Driver,
  DriverHandle,
  OpenOptions,
  PositionalRows,
} from "./driver.ts";
import { nativeDriver } from "./native.ts";
import { openPaddedWs } from "./libsql_socket.ts";

/** Options of {@link createLibsqlDriver}. */
export interface LibsqlDriverOptions {
  /** The token (JWT) sent to every server this driver connects to (sqld `--auth-jwt-key`). */
  authToken?: string;
  /** The driver's name in stats and errors. Default `"libsql"`. */
  name?: string;
}

/** How a handle reaches its server. */
interface Target {
  readonly url: string;
  readonly transport: "ws" | "http";
  readonly authToken: string | undefined;
}

/**
 * A connection-level failure: the socket closed, the server went away, a stream expired.
 * The handle is broken ({@link Driver.isBrokenHandleError}); the pool replaces it.
 */
class LibsqlConnectionError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "LibsqlConnectionError";
  }
}

/** Parses a server location; throws TypeError naming what is wrong. */
function parseTarget(location: string, authToken: string | undefined): Target {
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    throw new TypeError(`not a URL: ${JSON.stringify(location)} (expected ws://, wss://, ...)`);
  }
  let scheme = url.protocol.slice(0, -1);
  if (scheme === "libsql") {
    // libsql:// is TLS unless ?tls=0; over WebSocket, as DESIGN.md measured it faster.
    scheme = url.searchParams.get("tls") === "0" ? "ws" : "wss";
    url.searchParams.delete("tls");
  }
  const transport = scheme === "ws" || scheme === "wss"
    ? "ws"
    : scheme === "http" || scheme === "https"
    ? "http"
    : null;
  if (transport === null) {
    throw new TypeError(
      `unsupported URL scheme "${url.protocol}" in ${location}: use ws:, wss:, http:, https: ` +
        `or libsql:`,
    );
  }
  const rest = url.href.slice(url.protocol.length);
  return { url: `${scheme}:${rest}`, transport, authToken };
}

// --- values --------------------------------------------------------------------------------

/** One value, bound the way node-sqlite3-wasm binds it. */
function bindValue(value: unknown): hrana.InValue {
  return bindLikeWasm(value);
}

/** The parameters a statement takes: how many slots, and its named ones. */
interface ParameterInfo {
  /** The highest parameter index (`?`, `?NNN` and names each take one). */
  readonly count: number;
  /** Named parameters with their prefix (`:a`, `$b`, `@c`). */
  readonly names: ReadonlySet<string>;
}

const NAME_CHAR = /[\w\u0080-\uffff$]/y;

/**
 * Finds a statement's parameters as SQLite numbers them, skipping literals, quoted names
 * and comments. SQLite binds NULL to a parameter given no value; sqld refuses the
 * statement, so the handle fills the gaps itself.
 */
function parameterInfo(sql: string): ParameterInfo {
  const names = new Set<string>();
  let count = 0;
  let i = 0;
  const skipTo = (end: string, from: number) => {
    const at = sql.indexOf(end, from);
    return at < 0 ? sql.length : at + end.length;
  };
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === "'" || c === '"' || c === "`") {
      // Doubled quotes inside are two literals back to back: the same skip.
      i = skipTo(c, i + 1);
    } else if (c === "[") i = skipTo("]", i + 1);
    else if (c === "-" && sql[i + 1] === "-") i = skipTo("\n", i + 2);
    else if (c === "/" && sql[i + 1] === "*") i = skipTo("*/", i + 2);
    else if (c === "?") {
      let j = i + 1;
      while (j < sql.length && sql[j]! >= "0" && sql[j]! <= "9") j++;
      count = j > i + 1 ? Math.max(count, Number(sql.slice(i + 1, j))) : count + 1;
      i = j;
    } else if (c === ":" || c === "@" || c === "$") {
      let j = i + 1;
      NAME_CHAR.lastIndex = j;
      while (j < sql.length && NAME_CHAR.test(sql)) NAME_CHAR.lastIndex = ++j;
      if (j > i + 1) {
        const name = sql.slice(i, j);
        if (!names.has(name)) {
          names.add(name);
          count++;
        }
      }
      i = j;
    } else i++;
  }
  return { count, names };
}

/** A statement with its parameters bound (missing ones as NULL, as SQLite does). */
function statement(sql: string, params: Params | undefined, info: ParameterInfo): hrana.Stmt {
  const stmt = new hrana.Stmt(sql);
  if (params === undefined) {
    // sqld takes named or positional values, never both in one statement.
    if (info.names.size > 0) { for (const name of info.names) stmt.bindName(name, null); }
    else if (info.count > 0) stmt.bindIndexes(new Array<null>(info.count).fill(null));
    return stmt;
  }
  if (Array.isArray(params)) {
    const values = new Array<hrana.InValue>(Math.max(params.length, info.count));
    for (let i = 0; i < params.length; i++) values[i] = bindValue(params[i]);
    for (let i = params.length; i < values.length; i++) values[i] = null;
    stmt.bindIndexes(values);
    return stmt;
  }
  const given = params as Readonly<Record<string, unknown>>;
  for (const name of Object.keys(given)) {
    // As the local drivers: a name needs its prefix and must be one the statement uses
    // (sqld would bind a bare name, and ignore an unknown one).
    if (!info.names.has(name)) {
      throw new RangeError(`Invalid parameter name: ${name} (not in the statement)`);
    }
  }
  for (const name of info.names) {
    stmt.bindName(name, Object.hasOwn(given, name) ? bindValue(given[name]) : null);
  }
  return stmt;
}

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A value read back, as the local drivers return it. */
function readValue(value: unknown): SqlValue {
  if (typeof value === "bigint") {
    return value >= MIN_SAFE && value <= MAX_SAFE ? Number(value) : value;
  }
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  return value as SqlValue;
}

/** hrana's row (values at indexes 0..n-1) as a plain object; later names win. */
function toRow(values: hrana.Row, names: readonly string[]): Row {
  const row: Row = {};
  for (let i = 0; i < names.length; i++) row[names[i] as string] = readValue(values[i]);
  return row;
}

function toArray(values: hrana.Row, width: number): SqlValue[] {
  const row = new Array<SqlValue>(width);
  for (let i = 0; i < width; i++) row[i] = readValue(values[i]);
  return row;
}

function columnsOf(result: hrana.StmtResult): string[] {
  return result.columnNames.map((name) => name ?? "");
}

// --- the handle ----------------------------------------------------------------------------

// Statements that can neither open nor close a transaction when they succeed outside one.
const DATA_STATEMENT = /^\s*(?:SELECT|INSERT|UPDATE|DELETE|REPLACE|VALUES|WITH)\b/i;
const EMPTY_SQL = /^(?:\s|;|--[^\n]*(?:\n|$)|\/\*[\s\S]*?(?:\*\/|$))*$/;

function openClient(target: Target): hrana.Client {
  // Protocol 3: get_autocommit, which keeps inTransaction exact.
  const client = target.transport === "ws"
    ? openPaddedWs(target.url, target.authToken)
    : hrana.openHttp(target.url, target.authToken, undefined, undefined, 3);
  client.intMode = "bigint";
  return client;
}

/** Connects and checks the protocol version; closes the client when that fails. */
async function connect(target: Target): Promise<hrana.Client> {
  const client = openClient(target);
  try {
    const version = await client.getVersion();
    if (version < 3) {
      throw new Error(
        `${target.url} speaks hrana ${version}; this driver needs version 3 (sqld 0.22 or later)`,
      );
    }
    return client;
  } catch (error) {
    client.close();
    throw error;
  }
}

class LibsqlHandle implements DriverHandle {
  readonly #target: Target;
  #client: hrana.Client;
  // The connection's (ws) or the open transaction's (http) stream; null: none yet.
  #stream: hrana.Stream | null = null;
  // A reconnect under way: statements queue behind it, in the order they were sent.
  #ready: Promise<void> | null = null;
  #autocommit = true;
  #closed = false;
  #lastInsertRowid: number | bigint = 0;
  // Run first on every new stream (connection settings such as foreign_keys).
  #setup: readonly string[] = [];
  // The parameters of recent statements (the statements themselves live on the server).
  readonly #parameterCache = new Map<string, ParameterInfo>();
  readonly #cacheSize: number;

  constructor(target: Target, client: hrana.Client, cacheSize: number) {
    this.#target = target;
    this.#client = client;
    this.#cacheSize = cacheSize;
  }

  #parameters(sql: string): ParameterInfo {
    let info = this.#parameterCache.get(sql);
    if (info === undefined) {
      info = parameterInfo(sql);
      if (this.#cacheSize > 0) {
        if (this.#parameterCache.size >= this.#cacheSize) {
          const oldest = this.#parameterCache.keys().next();
          if (!oldest.done) this.#parameterCache.delete(oldest.value);
        }
        this.#parameterCache.set(sql, info);
      }
    }
    return info;
  }

  get isOpen(): boolean {
    return !this.#closed;
  }

  get inTransaction(): boolean {
    return !this.#closed && !this.#autocommit;
  }

  get cachedStatements(): number {
    return this.#parameterCache.size;
  }

  /** Sets the statements every new stream runs first, and runs them now. */
  async setUp(statements: readonly string[]): Promise<void> {
    this.#setup = statements;
    if (this.#stream !== null) {
      for (const sql of statements) await this.#stream.run(sql);
    }
  }

  /** The stream to send on now (opening one, with its setup, when there is none). */
  #streamNow(): hrana.Stream {
    if (this.#stream !== null && !this.#stream.closed) return this.#stream;
    if (!this.#autocommit) {
      this.#autocommit = true;
      throw new LibsqlConnectionError(
        `the stream of an open transaction on ${this.#target.url} closed; the server rolled ` +
          `the transaction back`,
      );
    }
    const stream = this.#client.openStream();
    stream.intMode = "bigint";
    for (const sql of this.#setup) stream.run(sql).catch(() => {}); // the next answer says
    this.#stream = stream;
    this.#lastInsertRowid = 0;
    return stream;
  }

  /**
   * Sends one request on the handle's stream, in order with every other, and keeps
   * `inTransaction` exact: the server's autocommit state is asked for (pipelined) unless
   * the statement cannot have changed it.
   */
  #send<T>(sql: string, request: (stream: hrana.Stream) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(closedError(this.#target));
    const ready = this.#ready ?? this.#reconnectIfDead();
    if (ready !== null) return ready.then(() => this.#send(sql, request));
    let stream: hrana.Stream;
    try {
      stream = this.#streamNow();
    } catch (error) {
      return Promise.reject(error);
    }
    const asksState = !this.#autocommit || !DATA_STATEMENT.test(sql);
    let answer: Promise<T>;
    try {
      answer = request(stream);
    } catch (error) {
      return Promise.reject(error); // a value that cannot be bound: nothing was sent
    }
    const http = this.#target.transport === "http";
    if (!asksState) {
      if (http) this.#endStream(stream); // closed in the same request
      return answer.catch((error: unknown) => {
        throw this.#classify(error);
      });
    }
    const state = stream.getAutocommit();
    return settle(answer, state).then(([value, autocommit]) => {
      if (autocommit.ok) this.#autocommit = autocommit.value as boolean;
      else if (!(autocommit.error instanceof hrana.ResponseError)) this.#autocommit = true;
      if (http && this.#autocommit) this.#endStream(stream);
      if (value.ok) return value.value as T;
      throw this.#classify(value.error);
    });
  }

  #endStream(stream: hrana.Stream): void {
    stream.closeGracefully();
    if (this.#stream === stream) this.#stream = null;
  }

  /** When the socket died outside a transaction: a new one (statements wait for it). */
  #reconnectIfDead(): Promise<void> | null {
    if (!this.#client.closed || !this.#autocommit) return null;
    this.#stream = null;
    const ready = connect(this.#target).then((client) => {
      this.#client = client;
    }, (error: unknown) => {
      throw new LibsqlConnectionError(
        `cannot reconnect to ${this.#target.url}: ${(error as Error).message}`,
        { cause: error },
      );
    }).finally(() => {
      if (this.#ready === ready) this.#ready = null;
    });
    this.#ready = ready;
    return ready;
  }

  #classify(error: unknown): unknown {
    if (error instanceof hrana.ResponseError) return error;
    if (error instanceof hrana.ClientError) {
      return new LibsqlConnectionError(
        `${this.#target.url}: ${error.message}`,
        { cause: error },
      );
    }
    return error;
  }

  run(sql: string, params?: Params): Promise<RunResult> {
    return this.#send(sql, (stream) => stream.run(statement(sql, params, this.#parameters(sql))))
      .then((result) => {
        if (result.lastInsertRowid !== undefined) {
          this.#lastInsertRowid = readValue(result.lastInsertRowid) as number | bigint;
        }
        return { changes: result.affectedRowCount, lastInsertRowid: this.#lastInsertRowid };
      });
  }

  runMany(sql: string, paramSets: readonly Params[]): Promise<number> {
    if (paramSets.length === 0) return Promise.resolve(0);
    const packed = packRows(sql, paramSets);
    return this.#send(sql, async (stream) => {
      if (packed === undefined) return await this.#batch(stream, paramSets.map((p) => [sql, p]));
      let changes = 0;
      let done = 0; // packed statements that succeeded
      try {
        return await this.#batch(stream, packed.statements, (n) => {
          changes += n;
          done++;
        });
      } catch (error) {
        if (!(error instanceof hrana.ResponseError)) throw error;
        // A packed statement failed as a whole: its rows go again one at a time, so that
        // those before the failing row are applied and the failure is that row's, as on a
        // local handle.
        const rows = paramSets.slice(done * packed.per, (done + 1) * packed.per);
        return changes + await this.#batch(stream, rows.map((p) => [sql, p]));
      }
    });
  }

  /**
   * One batch on the handle's stream (inside its transaction, if one is open): each step
   * runs only if the one before succeeded, so a failure stops it, as locally. Resolves to
   * the rows changed; `progress` hears each step's changes as they are counted.
   */
  async #batch(
    stream: hrana.Stream,
    statements: readonly (readonly [string, Params])[],
    progress?: (changes: number) => void,
  ): Promise<number> {
    const batch = stream.batch(false);
    const steps: Promise<hrana.StmtResult | undefined>[] = [];
    let previous: hrana.BatchStep | undefined;
    for (const [text, params] of statements) {
      const step = batch.step();
      if (previous !== undefined) step.condition(hrana.BatchCond.ok(previous));
      const result = step.run(statement(text, params, this.#parameters(text)));
      result.catch(() => {});
      steps.push(result);
      previous = step;
    }
    await batch.execute();
    let changes = 0;
    for (const step of steps) {
      const result = await step; // the first failure throws
      if (result === undefined) break;
      changes += result.affectedRowCount;
      progress?.(result.affectedRowCount);
      if (result.lastInsertRowid !== undefined) {
        this.#lastInsertRowid = readValue(result.lastInsertRowid) as number | bigint;
      }
    }
    return changes;
  }

  all(sql: string, params?: Params): Promise<Row[]> {
    return this.#send(sql, (stream) => stream.query(statement(sql, params, this.#parameters(sql))))
      .then((result) => {
        const names = columnsOf(result);
        const rows = new Array<Row>(result.rows.length);
        for (let i = 0; i < rows.length; i++) rows[i] = toRow(result.rows[i] as hrana.Row, names);
        return rows;
      });
  }

  get(sql: string, params?: Params): Promise<Row | undefined> {
    return this.#send(sql, (stream) => stream.query(statement(sql, params, this.#parameters(sql))))
      .then((result) => {
        const first = result.rows[0];
        return first === undefined ? undefined : toRow(first, columnsOf(result));
      });
  }

  values(sql: string, params?: Params): Promise<PositionalRows> {
    return this.#send(sql, (stream) => stream.query(statement(sql, params, this.#parameters(sql))))
      .then((result) => {
        const columns = columnsOf(result);
        if (columns.length === 0) {
          if (result.lastInsertRowid !== undefined) {
            this.#lastInsertRowid = readValue(result.lastInsertRowid) as number | bigint;
          }
          return {
            columns,
            rows: [],
            changes: result.affectedRowCount,
            lastInsertRowid: this.#lastInsertRowid,
          };
        }
        const rows = result.rows.map((row) => toArray(row, columns.length));
        return { columns, rows };
      });
  }

  exec(sql: string): Promise<void> {
    // An empty script does nothing locally; sqld calls it an error.
    if (EMPTY_SQL.test(sql)) {
      return this.#closed ? Promise.reject(closedError(this.#target)) : Promise.resolve();
    }
    return this.#send(sql, (stream) => stream.sequence(sql));
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#autocommit = true;
    this.#parameterCache.clear();
    // Closing the connection ends its stream; the server rolls an open transaction back.
    this.#stream = null;
    const client = this.#client;
    const ready = this.#ready ?? Promise.resolve();
    return ready.catch(() => {}).then(() => {
      // A reconnect may have replaced the client meanwhile.
      this.#client.close();
      if (client !== this.#client) client.close();
    });
  }
}

// A one-row INSERT of positional parameters only: the part before the values tuple, the
// tuple, and a clause after it (ON CONFLICT ...) that takes no parameters.
const ONE_ROW_INSERT =
  /^(\s*(?:INSERT|REPLACE)\b[\s\S]*?\bVALUES\s*)(\((?:\s*\?\s*,)*\s*\?\s*\))([^?;]*)$/i;
// Rows per packed statement: SQLite's parameter limit, and a size sqld parses quickly.
const PACKED_ROWS = 500;
const PACKED_VALUES = 32_766;

/**
 * A `runMany` of a one-row INSERT over many rows, as multi-row INSERTs: each statement is
 * a step of its own on the server (about 0.2 ms each, measured on sqld 0.24), so rows
 * packed 500 to a statement cost a fraction of a statement each. Undefined when the
 * statement or its parameters do not have that form (then each set is a step). A row
 * that fails fails its whole statement, and the rows of earlier statements stay applied,
 * as earlier rows do on a local handle: callers run it inside a transaction.
 */
function packRows(
  sql: string,
  paramSets: readonly Params[],
): { statements: [string, SqlValue[]][]; per: number } | undefined {
  if (paramSets.length < 2) return undefined;
  const match = ONE_ROW_INSERT.exec(sql);
  if (match === null) return undefined;
  const [, head, tuple, tail] = match as unknown as [string, string, string, string];
  const width = tuple.split("?").length - 1;
  for (const params of paramSets) {
    if (!Array.isArray(params) || params.length !== width) return undefined;
  }
  const per = Math.max(1, Math.min(PACKED_ROWS, Math.floor(PACKED_VALUES / width)));
  const statements: [string, SqlValue[]][] = [];
  for (let at = 0; at < paramSets.length; at += per) {
    const rows = paramSets.slice(at, at + per) as readonly (readonly SqlValue[])[];
    statements.push([
      head + new Array<string>(rows.length).fill(tuple).join(", ") + tail,
      rows.flat() as SqlValue[],
    ]);
  }
  return { statements, per };
}

type Settled = { ok: true; value: unknown } | { ok: false; error: unknown };

/** Both answers, each as a result or an error (neither left unhandled). */
function settle(
  first: Promise<unknown>,
  second: Promise<unknown>,
): Promise<[Settled, Settled]> {
  const wrap = (promise: Promise<unknown>): Promise<Settled> =>
    promise.then((value) => ({ ok: true, value }), (error) => ({ ok: false, error }));
  return Promise.all([wrap(first), wrap(second)]);
}

function closedError(target: Target): LibsqlConnectionError {
  return new LibsqlConnectionError(`the handle on ${target.url} is closed (Client is closed)`);
}

// --- backup --------------------------------------------------------------------------------

function quoteName(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Copies the database into a new local SQLite file (with node:sqlite): every table's
 * schema and rows, read in one read transaction (a consistent snapshot), then indexes,
 * triggers and views. Each table is read whole into memory; virtual tables are refused.
 */
async function backupToFile(handle: LibsqlHandle, target: string): Promise<void> {
  await handle.run("BEGIN");
  let schema: Row[];
  const tables: { name: string; sql: string; columns: string[]; rows: SqlValue[][] }[] = [];
  let sequences: Row[] = [];
  try {
    schema = await handle.all(
      "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY rowid",
    );
    for (const entry of schema) {
      const name = entry["name"] as string;
      const sql = entry["sql"] as string;
      if (entry["type"] !== "table" || name.startsWith("sqlite_")) continue;
      if (/^\s*CREATE\s+VIRTUAL\b/i.test(sql)) {
        throw new Error(`backup of a libSQL database: virtual table ${name} is not supported`);
      }
      // Stored columns only: generated ones are computed again by the copy.
      const columns = (await handle.all(
        "SELECT name FROM pragma_table_xinfo(?) WHERE hidden = 0 ORDER BY cid",
        [name],
      )).map((column) => column["name"] as string);
      const list = columns.map(quoteName).join(", ");
      const read = await handle.values(`SELECT ${list} FROM ${quoteName(name)}`);
      tables.push({ name, sql, columns, rows: read.rows });
    }
    if (schema.some((entry) => entry["name"] === "sqlite_sequence")) {
      sequences = await handle.all("SELECT name, seq FROM sqlite_sequence");
    }
  } finally {
    await handle.run("ROLLBACK").catch(() => {});
  }
  const copy = nativeDriver.open(target, { create: true, statementCacheSize: 16 });
  try {
    copy.exec("BEGIN");
    for (const table of tables) {
      copy.exec(table.sql);
      if (table.rows.length === 0) continue;
      const marks = table.columns.map(() => "?").join(", ");
      copy.runMany(
        `INSERT INTO ${quoteName(table.name)} (${table.columns.map(quoteName).join(", ")}) ` +
          `VALUES (${marks})`,
        table.rows,
      );
    }
    // Inserting the rows set the copy's sequences to their highest ids: take the source's.
    if (sequences.length > 0) copy.exec("DELETE FROM sqlite_sequence");
    for (const row of sequences) {
      copy.run("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", [
        row["name"]!,
        row["seq"]!,
      ]);
    }
    for (const entry of schema) {
      if (entry["type"] === "table" || (entry["name"] as string).startsWith("sqlite_")) continue;
      copy.exec(entry["sql"] as string);
    }
    copy.exec("COMMIT");
  } finally {
    copy.close();
  }
}

// --- the driver ----------------------------------------------------------------------------

// Codes and messages of a connection (not a statement) gone bad.
const BROKEN_CODES = new Set(["STREAM_EXPIRED", "STREAM_NOT_FOUND", "HRANA_WEBSOCKET_ERROR"]);
const BROKEN_MESSAGE =
  /fetch failed|error sending request|connection (?:refused|reset|closed)|ECONNREFUSED|ECONNRESET|invalid baton|client is closed|stream (?:is|was) closed|websocket/i;

/**
 * A {@link Driver} over libSQL servers, with options (an auth token). See
 * {@link libsqlDriver} for the driver without any.
 *
 * @example
 * ```ts ignore
 * const driver = createLibsqlDriver({ authToken: Deno.env.get("SQLD_TOKEN") });
 * await using pool = new ConnectionPool("wss://db.example.com", { driver });
 * ```
 */
export function createLibsqlDriver(options: LibsqlDriverOptions = {}): Driver {
  if (options === null || typeof options !== "object") {
    throw new TypeError("options must be an object");
  }
  const authToken = options.authToken;
  if (authToken !== undefined && (typeof authToken !== "string" || authToken === "")) {
    throw new TypeError("authToken must be a non-empty string");
  }
  return {
    name: options.name ?? "libsql",
    canShare: true,
    remote: true,
    async open(path: string, options: OpenOptions): Promise<DriverHandle> {
      const target = parseTarget(path, authToken);
      return new LibsqlHandle(target, await connect(target), options.statementCacheSize);
    },
    async configure(handle: DriverHandle, _options: ConfigureOptions): Promise<void> {
      if (!(handle instanceof LibsqlHandle)) {
        throw new TypeError("not a handle of the libsql driver");
      }
      // Per connection on the server, so every new stream runs it first. Locking, journal
      // and cache are the server's business.
      await handle.setUp(["PRAGMA foreign_keys=ON"]);
      await handle.get("SELECT 1");
    },
    isBrokenHandleError(error: unknown): boolean {
      if (error instanceof LibsqlConnectionError) return true;
      if (error instanceof hrana.ResponseError) {
        return error.code !== undefined && BROKEN_CODES.has(error.code) ||
          /invalid baton|stream expired/i.test(error.message);
      }
      if (error instanceof hrana.ClientError) return true;
      if (error instanceof Deno.errors.ConnectionRefused) return true;
      if (error instanceof Deno.errors.ConnectionReset) return true;
      return error instanceof TypeError && BROKEN_MESSAGE.test(error.message);
    },
    isBusyError(error: unknown): boolean {
      if (!(error instanceof Error)) return false;
      const code = (error as { code?: unknown }).code;
      return (typeof code === "string" && code.startsWith("SQLITE_BUSY")) ||
        /database is locked/i.test(error.message);
    },
    clearStaleLock(): boolean {
      return false; // the server owns its files
    },
    backup(handle: DriverHandle, target: string): Promise<void> {
      if (!(handle instanceof LibsqlHandle)) {
        return Promise.reject(new TypeError("not a handle of the libsql driver"));
      }
      return backupToFile(handle, target);
    },
    // Text with NUL characters travels and is stored whole: no checkText.
  };
}

/**
 * The driver over libSQL servers (sqld): `open(url)` with `ws://`, `wss://`, `http://`,
 * `https://` or `libsql://`. For an auth token, use {@link createLibsqlDriver}.
 *
 * @example
 * ```ts ignore
 * await using pool = new ConnectionPool("ws://127.0.0.1:8080", { driver: libsqlDriver });
 * ```
 */
export const libsqlDriver: Driver = createLibsqlDriver();
