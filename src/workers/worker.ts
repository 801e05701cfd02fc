/**
 * The entry of a shard worker: it owns the real SQLite handles of its shards (opened with
 * the built-in driver the host names) and runs the calls the host sends, in the order
 * sent, answering a batch at a time. It keeps no state beyond its handles and cursors:
 * a worker that dies takes nothing with it that the files do not have.
 *
 * @module
 */

/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />

import { type Driver, type DriverCursor, type DriverHandle, isPromise } from "../driver/driver.ts";
import type { Params, Row } from "../types.ts";
import {
  decodeParamSets,
  decodeRequests,
  type DriverKind,
  encodeReplies,
  type HandleState,
  type PackedRows,
  packRows,
  type Reply,
  type ReplyKind,
  type ReplyMessage,
  type Request,
  ROWS_PER_PART,
  serializeError,
} from "./protocol.ts";

const handles = new Map<number, DriverHandle>();
const cursors = new Map<number, DriverCursor>();
const drivers = new Map<DriverKind, Driver>();

async function loadDriver(kind: DriverKind): Promise<Driver> {
  let driver = drivers.get(kind);
  if (driver === undefined) {
    // Loaded on demand: a native-driver worker never instantiates the WebAssembly build.
    driver = kind === "wasm"
      ? (await import("../driver/wasm.ts")).wasmDriver
      : (await import("../driver/native.ts")).nativeDriver;
    drivers.set(kind, driver);
  }
  return driver;
}

function handleOf(id: number): DriverHandle {
  const handle = handles.get(id);
  if (handle === undefined) throw new Error(`Database is closed (worker handle ${id} is gone)`);
  return handle;
}

function stateOf(id: number): HandleState {
  const handle = handles.get(id);
  if (handle === undefined) return { open: false, inTransaction: false, cachedStatements: 0 };
  try {
    return {
      open: handle.isOpen,
      inTransaction: handle.isOpen && handle.inTransaction,
      cachedStatements: handle.cachedStatements,
    };
  } catch {
    return { open: false, inTransaction: false, cachedStatements: 0 };
  }
}

let outbox: Reply[] = [];
let kinds: ReplyKind[] = [];
let lastFlush = performance.now();

function flush(): void {
  lastFlush = performance.now();
  if (outbox.length === 0) return;
  const message: ReplyMessage = encodeReplies(outbox, kinds);
  outbox = [];
  kinds = [];
  self.postMessage(message);
}

// One column-name array per statement, so that the answers of one message that share it
// clone it once (a structured clone keeps repeated references as one).
const columnsBySql = new Map<string, string[]>();
const MAX_SHARED_COLUMNS = 256;

function sharedColumns(sql: string, columns: string[]): string[] {
  const known = columnsBySql.get(sql);
  if (
    known !== undefined && known.length === columns.length &&
    known.every((name, i) => name === columns[i])
  ) return known;
  if (columnsBySql.size >= MAX_SHARED_COLUMNS) columnsBySql.clear();
  columnsBySql.set(sql, columns);
  return columns;
}

function pack(sql: string, rows: Row[]): PackedRows {
  const packed = packRows(rows);
  if (packed.columns.length > 0) packed.columns = sharedColumns(sql, packed.columns);
  return packed;
}

/** Big results go ahead of their answer in parts: no one message stalls the host long. */
function sendRows(id: number, sql: string, rows: Row[]): PackedRows {
  const packed = pack(sql, rows);
  const width = packed.columns.length;
  if (rows.length <= ROWS_PER_PART) return packed;
  flush();
  const all = packed.values;
  const step = ROWS_PER_PART * width;
  let at = 0;
  for (; at + step < all.length; at += step) {
    const part: ReplyMessage = { part: { id, values: all.slice(at, at + step) } };
    self.postMessage(part);
  }
  return { columns: packed.columns, values: all.slice(at) };
}

// A cursor's page holds at most this many bytes of values (about): the host keeps a page
// and the one read ahead per cursor, so wide rows come in fewer rows a page.
const PAGE_BYTES = 128 * 1024;
// Rows read from the driver's cursor at a time while a page fills.
const PAGE_STEP = 256;

/** About how many bytes a row's values take (for {@link PAGE_BYTES}). */
function rowBytes(row: Row): number {
  let bytes = 0;
  for (const key in row) {
    const value = row[key];
    if (typeof value === "string") bytes += 16 + 2 * value.length;
    else if (value instanceof Uint8Array) bytes += 16 + value.byteLength;
    else bytes += 8;
  }
  return bytes;
}

/**
 * Up to `max` rows of a cursor, fewer once they pass {@link PAGE_BYTES} (then the page
 * says `more`). Synchronous when the driver's cursor is (a promise only when it is not).
 */
function readPage(id: number, cursor: DriverCursor, max: number): PackedRows | Promise<PackedRows> {
  const rows: Row[] = [];
  let bytes = 0;
  const finish = (ended: boolean): PackedRows => {
    if (ended) cursors.delete(id);
    const packed = packRows(rows);
    if (!ended) packed.more = true;
    return packed;
  };
  // Adds a step's rows; true when the cursor has no more.
  const take = (step: Row[], want: number): boolean => {
    for (const row of step) {
      rows.push(row);
      bytes += rowBytes(row);
    }
    return step.length < want;
  };
  const loop = (): PackedRows | Promise<PackedRows> => {
    while (rows.length < max && bytes < PAGE_BYTES) {
      const want = Math.min(PAGE_STEP, max - rows.length);
      const got = cursor.next(want);
      if (isPromise(got)) return got.then((step) => take(step, want) ? finish(true) : loop());
      if (take(got, want)) return finish(true);
    }
    return finish(false);
  };
  return loop();
}

function execute(request: Request): unknown {
  switch (request.op) {
    case "open":
      return loadDriver(request.driver).then((driver) => {
        const opened = driver.open(request.path, {
          create: request.create,
          statementCacheSize: request.statementCacheSize,
        });
        const register = (handle: DriverHandle) => {
          handles.set(request.handle, handle);
          return null;
        };
        return isPromise(opened) ? opened.then(register) : register(opened);
      });
    case "configure": {
      const handle = handleOf(request.handle);
      const driver = driverOfHandle(request.handle);
      return driver.configure(handle, {
        access: request.access,
        synchronous: request.synchronous,
        cacheSizeKiB: request.cacheSizeKiB,
      });
    }
    case "run":
      return handleOf(request.handle).run(request.sql, request.params);
    case "all": {
      const rows = handleOf(request.handle).all(request.sql, request.params);
      return isPromise(rows)
        ? rows.then((r) => sendRows(request.id, request.sql, r))
        : sendRows(request.id, request.sql, rows);
    }
    case "get":
      return handleOf(request.handle).get(request.sql, request.params) ?? null;
    case "values":
      return handleOf(request.handle).values(request.sql, request.params);
    case "exec":
      return handleOf(request.handle).exec(request.sql) ?? null;
    case "runMany": {
      const sets = "packed" in request.sets
        ? decodeParamSets(request.sets.packed, request.sets.length) as Params[]
        : request.sets.sets;
      return handleOf(request.handle).runMany(request.sql, sets);
    }
    case "iterate": {
      const handle = handleOf(request.handle);
      if (handle.iterate === undefined) throw new Error("the driver has no cursors");
      const opened = handle.iterate(request.sql, request.params);
      const register = (cursor: DriverCursor) => {
        cursors.set(request.cursor, cursor);
        return null;
      };
      return isPromise(opened) ? opened.then(register) : register(opened);
    }
    case "next": {
      const cursor = cursors.get(request.cursor);
      if (cursor === undefined) throw new Error("Database is closed: the query's cursor is gone");
      return readPage(request.cursor, cursor, request.max);
    }
    case "closeCursor": {
      const cursor = cursors.get(request.cursor);
      cursors.delete(request.cursor);
      return cursor?.close() ?? null;
    }
    case "backup":
      return driverOfHandle(request.handle).backup(handleOf(request.handle), request.target);
    case "close": {
      const handle = handles.get(request.handle);
      if (handle === undefined) return null;
      const closed = handle.close();
      const forget = () => {
        handles.delete(request.handle);
        handleDrivers.delete(request.handle);
        return null;
      };
      return isPromise(closed) ? closed.then(forget) : forget();
    }
    case "drain":
      return null;
    case "crash":
      // An uncaught error outside any call, as a bug in the worker would raise.
      setTimeout(() => {
        throw new Error("injected worker crash (test hook)");
      });
      return null;
  }
}

// Which driver opened each handle (a worker may host both kinds, for different managers).
const handleDrivers = new Map<number, Driver>();

function driverOfHandle(id: number): Driver {
  const driver = handleDrivers.get(id);
  if (driver === undefined) throw new Error(`Database is closed (worker handle ${id} is gone)`);
  return driver;
}

function handleIdOf(request: Request): number | undefined {
  return "handle" in request ? request.handle : undefined;
}

const inbox: Request[] = [];
let running = false;

async function run(): Promise<void> {
  running = true;
  try {
    for (let i = 0; i < inbox.length; i++) {
      const request = inbox[i] as Request;
      let reply: Reply;
      try {
        let value = execute(request);
        if (isPromise(value)) {
          flush(); // answered so far: not held back by a slow call
          value = await value;
        }
        if (request.op === "open") handleDrivers.set(request.handle, drivers.get(request.driver)!);
        reply = { id: request.id, ok: true, value: value ?? null };
      } catch (error) {
        reply = { id: request.id, ok: false, error: serializeError(error) };
      }
      const handle = handleIdOf(request);
      if (handle !== undefined) reply.state = stateOf(handle);
      outbox.push(reply);
      kinds.push(
        request.op === "run"
          ? "run"
          : request.op === "all" || request.op === "next"
          ? "rows"
          : "value",
      );
      // A long batch answers as it goes (every few ms), not only at its end.
      if (performance.now() - lastFlush > 2) flush();
    }
  } finally {
    inbox.length = 0;
    running = false;
    flush();
  }
}

self.onmessage = (event: MessageEvent<unknown[]>) => {
  const requests = decodeRequests(event.data);
  for (let i = 0; i < requests.length; i++) inbox.push(requests[i] as Request);
  if (!running) void run();
};
