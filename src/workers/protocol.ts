/**
 * The messages between the calling thread and a shard worker, and the encodings that
 * make them cheap: requests are collected per microtask into one message (one structured
 * clone and one wake-up per batch, not per call), bulk parameter sets travel as one packed
 * transferable `ArrayBuffer`, and rows come back as column names plus value arrays.
 *
 * @module
 */

import type { Params, RunResult, SqlInput, SqlValue } from "../types.ts";

/** Which built-in driver a worker opens its handles with. */
export type DriverKind = "wasm" | "native";

/** Parameter sets of a `runMany`, packed ({@link encodeParamSets}) or as they are. */
export type ParamSetsPayload =
  | { readonly packed: ArrayBuffer; readonly length: number }
  | { readonly sets: readonly Params[] };

/** One call to a worker. `id` is unique per worker; handle and cursor ids come from the host. */
export type Request =
  | {
    id: number;
    op: "open";
    handle: number;
    path: string;
    driver: DriverKind;
    create: boolean;
    statementCacheSize: number;
  }
  | {
    id: number;
    op: "configure";
    handle: number;
    access: "exclusive" | "shared";
    synchronous: "full" | "normal";
    cacheSizeKiB: number;
  }
  | {
    id: number;
    op: "run" | "all" | "get" | "values";
    handle: number;
    sql: string;
    params?: Params;
  }
  | { id: number; op: "exec"; handle: number; sql: string }
  | { id: number; op: "runMany"; handle: number; sql: string; sets: ParamSetsPayload }
  | { id: number; op: "iterate"; handle: number; cursor: number; sql: string; params?: Params }
  | { id: number; op: "next"; handle: number; cursor: number; max: number }
  | { id: number; op: "closeCursor"; handle: number; cursor: number }
  | { id: number; op: "backup"; handle: number; target: string }
  | { id: number; op: "close"; handle: number }
  /** Answered once every earlier request is done: what shutdown waits for. */
  | { id: number; op: "drain" }
  /** Test only: the worker throws an uncaught error (as a bug in it would). */
  | { id: number; op: "crash" };

/**
 * Rows as column names and one flat array of their values, row after row: far cheaper to
 * clone than an object (or an array) per row.
 */
export interface PackedRows {
  /** The keys of the rows' objects, in their order. */
  columns: string[];
  /** Every row's values in `columns` order, one row after another. */
  values: SqlValue[];
  /** A cursor's page: more rows follow (a page may hold fewer rows than were asked for). */
  more?: boolean;
}

/** How many rows `packed` holds. */
export function rowCount(packed: PackedRows): number {
  const width = packed.columns.length;
  return width === 0 ? 0 : packed.values.length / width;
}

/** A handle's state after a call, so that its synchronous getters stay exact. */
export interface HandleState {
  /** Whether the handle is open. */
  open: boolean;
  /** Whether a transaction is open on it. */
  inTransaction: boolean;
  /** Its cached prepared statements. */
  cachedStatements: number;
}

/** An error as it crosses the thread boundary (custom fields kept, unlike a clone's). */
export interface SerializedError {
  /** The constructor to rebuild it with. */
  kind: "Error" | "TypeError" | "RangeError" | "SyntaxError";
  name: string;
  message: string;
  stack?: string;
  /** Own enumerable fields with primitive values (node:sqlite's `code`, `errcode`, `errstr`). */
  fields: Record<string, string | number | boolean | null>;
  cause?: SerializedError;
}

/** The answer to one request. */
export type Reply =
  | { id: number; ok: true; value: unknown; state?: HandleState }
  | { id: number; ok: false; error: SerializedError; state?: HandleState };

/**
 * A message from a worker to the host: answers ({@link encodeReplies}), or a part of a big
 * result sent ahead of its answer (so that no single message stalls the calling thread
 * long): its rows' values, as {@link PackedRows} has them.
 */
export type ReplyMessage = unknown[] | { part: { id: number; values: SqlValue[] } };

/** Rows per message of a big result (a 20k-row reply stalled the main thread 24–140 ms). */
export const ROWS_PER_PART = 2_000;

// --- errors ---------------------------------------------------------------------------------

const KINDS = new Set(["TypeError", "RangeError", "SyntaxError"]);

/** An error (or any thrown value) in a form that survives `postMessage` intact. */
export function serializeError(error: unknown, depth = 0): SerializedError {
  if (!(error instanceof Error)) {
    return { kind: "Error", name: "Error", message: String(error), fields: {} };
  }
  const ctor = error.constructor?.name ?? "Error";
  const fields: Record<string, string | number | boolean | null> = {};
  for (const key of Object.keys(error)) {
    const value = (error as unknown as Record<string, unknown>)[key];
    if (
      value === null || typeof value === "string" || typeof value === "number" ||
      typeof value === "boolean"
    ) fields[key] = value;
  }
  const serialized: SerializedError = {
    kind: KINDS.has(ctor) ? ctor as SerializedError["kind"] : "Error",
    name: error.name,
    message: error.message,
    fields,
  };
  if (error.stack !== undefined) serialized.stack = error.stack;
  if (error.cause !== undefined && depth < 3) {
    serialized.cause = serializeError(error.cause, depth + 1);
  }
  return serialized;
}

/** The error {@link serializeError} described, rebuilt with its class, name and fields. */
export function deserializeError(serialized: SerializedError): Error {
  const Ctor = serialized.kind === "TypeError"
    ? TypeError
    : serialized.kind === "RangeError"
    ? RangeError
    : serialized.kind === "SyntaxError"
    ? SyntaxError
    : Error;
  const options = serialized.cause === undefined
    ? undefined
    : { cause: deserializeError(serialized.cause) };
  const error = new Ctor(serialized.message, options);
  if (error.name !== serialized.name) error.name = serialized.name;
  Object.assign(error, serialized.fields);
  if (serialized.stack !== undefined) error.stack = serialized.stack;
  return error;
}

// --- rows -----------------------------------------------------------------------------------

/** Object rows (all of one statement, so the same keys) as columns and flat values. */
export function packRows(rows: readonly Record<string, SqlValue>[]): PackedRows {
  const first = rows[0];
  if (first === undefined) return { columns: [], values: [] };
  const columns = Object.keys(first);
  const width = columns.length;
  const values = new Array<SqlValue>(rows.length * width);
  let at = 0;
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r] as Record<string, SqlValue>;
    for (let c = 0; c < width; c++) values[at++] = row[columns[c] as string] as SqlValue;
  }
  return { columns, values };
}

/** The object rows {@link packRows} packed (same keys, same order). */
export function unpackRows(packed: PackedRows): Record<string, SqlValue>[] {
  return unpackRowsInto(packed, 0, rowCount(packed), []);
}

/** Appends rows `from` .. `from + count - 1` of `packed` to `out`, as objects; returns `out`. */
export function unpackRowsInto(
  packed: PackedRows,
  from: number,
  count: number,
  out: Record<string, SqlValue>[],
): Record<string, SqlValue>[] {
  const { columns, values } = packed;
  const width = columns.length;
  let at = from * width;
  for (let r = 0; r < count; r++) {
    const row: Record<string, SqlValue> = {};
    for (let c = 0; c < width; c++) row[columns[c] as string] = values[at++] as SqlValue;
    out.push(row);
  }
  return out;
}

// --- the wire: batches as flat arrays -------------------------------------------------------
//
// A structured clone writes every object's keys anew: a batch of 40 small answers as
// objects cost 2-3 µs an answer to clone, as one flat array of primitives 0.2-0.25 µs.
// So a batch crosses as one flat array: each request is its op's code and fields in a
// fixed order, each answer five slots (id, kind, state, two values). An array that occurs
// twice in one message is cloned once: a worker reuses one column-name array per statement.

const OPS = [
  "open",
  "configure",
  "run",
  "all",
  "get",
  "values",
  "exec",
  "runMany",
  "iterate",
  "next",
  "closeCursor",
  "backup",
  "close",
  "drain",
  "crash",
] as const satisfies readonly Request["op"][];
const OP_CODES = new Map<string, number>(OPS.map((op, code) => [op, code]));

/** Appends `requests` to one flat array (see {@link decodeRequests}). */
export function encodeRequests(requests: readonly Request[]): unknown[] {
  const wire: unknown[] = [];
  for (let i = 0; i < requests.length; i++) {
    const r = requests[i] as Request;
    wire.push(OP_CODES.get(r.op), r.id);
    switch (r.op) {
      case "open":
        wire.push(r.handle, r.path, r.driver, r.create, r.statementCacheSize);
        break;
      case "configure":
        wire.push(r.handle, r.access, r.synchronous, r.cacheSizeKiB);
        break;
      case "run":
      case "all":
      case "get":
      case "values":
        wire.push(r.handle, r.sql, r.params);
        break;
      case "exec":
        wire.push(r.handle, r.sql);
        break;
      case "runMany":
        wire.push(r.handle, r.sql, r.sets);
        break;
      case "iterate":
        wire.push(r.handle, r.cursor, r.sql, r.params);
        break;
      case "next":
        wire.push(r.handle, r.cursor, r.max);
        break;
      case "closeCursor":
        wire.push(r.handle, r.cursor);
        break;
      case "backup":
        wire.push(r.handle, r.target);
        break;
      case "close":
        wire.push(r.handle);
        break;
      case "drain":
      case "crash":
        break;
    }
  }
  return wire;
}

/**
 * The requests {@link encodeRequests} flattened.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeRequests, encodeRequests, type Request } from "./protocol.ts";
 * const requests: Request[] = [
 *   { id: 1, op: "all", handle: 2, sql: "SELECT ?", params: [7] },
 *   { id: 2, op: "next", handle: 2, cursor: 5, max: 256 },
 *   { id: 3, op: "drain" },
 * ];
 * assert.deepEqual(decodeRequests(structuredClone(encodeRequests(requests))), requests);
 * ```
 */
export function decodeRequests(wire: readonly unknown[]): Request[] {
  const requests: Request[] = [];
  let at = 0;
  // deno-lint-ignore no-explicit-any -- the fields' types are the encoder's, slot by slot
  const next = (): any => wire[at++];
  while (at < wire.length) {
    const op = OPS[next() as number];
    const id = next() as number;
    switch (op) {
      case "open":
        requests.push({
          id,
          op,
          handle: next(),
          path: next(),
          driver: next(),
          create: next(),
          statementCacheSize: next(),
        });
        break;
      case "configure":
        requests.push({
          id,
          op,
          handle: next(),
          access: next(),
          synchronous: next(),
          cacheSizeKiB: next(),
        });
        break;
      case "run":
      case "all":
      case "get":
      case "values": {
        const request: Request = { id, op, handle: next(), sql: next() };
        const params = next();
        if (params !== undefined) request.params = params;
        requests.push(request);
        break;
      }
      case "exec":
        requests.push({ id, op, handle: next(), sql: next() });
        break;
      case "runMany":
        requests.push({ id, op, handle: next(), sql: next(), sets: next() });
        break;
      case "iterate": {
        const request: Request = { id, op, handle: next(), cursor: next(), sql: next() };
        const params = next();
        if (params !== undefined) request.params = params;
        requests.push(request);
        break;
      }
      case "next":
        requests.push({ id, op, handle: next(), cursor: next(), max: next() });
        break;
      case "closeCursor":
        requests.push({ id, op, handle: next(), cursor: next() });
        break;
      case "backup":
        requests.push({ id, op, handle: next(), target: next() });
        break;
      case "close":
        requests.push({ id, op, handle: next() });
        break;
      case "drain":
      case "crash":
        requests.push({ id, op });
        break;
      default:
        throw new Error(`corrupt request batch: unknown op at slot ${at - 2}`);
    }
  }
  return requests;
}

// Answer kinds on the wire.
const ERROR = 0;
const VALUE = 1;
const ROWS = 2;
const RUN = 3;
const ROWS_MORE = 4;
// A handle's state in one number: bit 0 open, bit 1 in a transaction, cached statements
// from bit 2; -1 when the request had no handle.
const NO_STATE = -1;

function encodeState(state: HandleState | undefined): number {
  if (state === undefined) return NO_STATE;
  return (state.open ? 1 : 0) | (state.inTransaction ? 2 : 0) | (state.cachedStatements << 2);
}

function decodeState(code: number): HandleState | undefined {
  if (code === NO_STATE) return undefined;
  return { open: (code & 1) !== 0, inTransaction: (code & 2) !== 0, cachedStatements: code >>> 2 };
}

/**
 * Appends `replies` to one flat array (see {@link decodeReplies}). `kinds` says, per
 * reply, how its value is laid out: `"rows"` for {@link PackedRows}, `"run"` for a
 * `RunResult`, else as it is.
 */
export function encodeReplies(replies: readonly Reply[], kinds: readonly ReplyKind[]): unknown[] {
  const wire: unknown[] = new Array(replies.length * 5);
  let at = 0;
  for (let i = 0; i < replies.length; i++) {
    const reply = replies[i] as Reply;
    wire[at++] = reply.id;
    if (!reply.ok) {
      wire[at++] = ERROR;
      wire[at++] = encodeState(reply.state);
      wire[at++] = reply.error;
      wire[at++] = null;
      continue;
    }
    const kind = kinds[i];
    const value = reply.value;
    if (kind === "rows") {
      wire[at++] = (value as PackedRows).more === true ? ROWS_MORE : ROWS;
      wire[at++] = encodeState(reply.state);
      wire[at++] = (value as PackedRows).columns;
      wire[at++] = (value as PackedRows).values;
    } else if (kind === "run") {
      wire[at++] = RUN;
      wire[at++] = encodeState(reply.state);
      wire[at++] = (value as RunResult).changes;
      wire[at++] = (value as RunResult).lastInsertRowid;
    } else {
      wire[at++] = VALUE;
      wire[at++] = encodeState(reply.state);
      wire[at++] = value;
      wire[at++] = null;
    }
  }
  return wire;
}

/** How an answer's value crosses the wire (see {@link encodeReplies}). */
export type ReplyKind = "rows" | "run" | "value";

/**
 * The answers {@link encodeReplies} flattened.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeReplies, encodeReplies, type Reply } from "./protocol.ts";
 * const state = { open: true, inTransaction: false, cachedStatements: 3 };
 * const replies: Reply[] = [
 *   { id: 1, ok: true, value: { columns: ["x"], values: [1, 2] }, state },
 *   { id: 2, ok: true, value: { changes: 1, lastInsertRowid: 9 }, state },
 *   { id: 3, ok: true, value: null },
 * ];
 * const wire = encodeReplies(replies, ["rows", "run", "value"]);
 * assert.deepEqual(decodeReplies(structuredClone(wire)), replies);
 * ```
 */
export function decodeReplies(wire: readonly unknown[]): Reply[] {
  const replies = new Array<Reply>(wire.length / 5);
  let at = 0;
  for (let i = 0; i < replies.length; i++) {
    const id = wire[at] as number;
    const kind = wire[at + 1] as number;
    const state = decodeState(wire[at + 2] as number);
    const a = wire[at + 3];
    const b = wire[at + 4];
    at += 5;
    let reply: Reply;
    if (kind === ERROR) reply = { id, ok: false, error: a as SerializedError };
    else if (kind === ROWS) {
      reply = { id, ok: true, value: { columns: a as string[], values: b as SqlValue[] } };
    } else if (kind === ROWS_MORE) {
      reply = {
        id,
        ok: true,
        value: { columns: a as string[], values: b as SqlValue[], more: true },
      };
    } else if (kind === RUN) {
      reply = {
        id,
        ok: true,
        value: { changes: a as number, lastInsertRowid: b as number | bigint },
      };
    } else reply = { id, ok: true, value: a };
    if (state !== undefined) reply.state = state;
    replies[i] = reply;
  }
  return replies;
}

// --- packed parameter sets ------------------------------------------------------------------

const enum Tag {
  Null = 0,
  Int32 = 1,
  Float64 = 2,
  BigInt64 = 3,
  BigIntText = 4,
  Utf8 = 5,
  Utf16 = 6,
  Blob = 7,
  True = 8,
  False = 9,
  Undefined = 10,
  Ascii = 11,
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

/** A growable output buffer; the hot loop keeps its fields in locals. */
class Writer {
  bytes: Uint8Array;
  view: DataView;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }
  /** Grows to hold at least `needed` bytes, keeping the first `used`. */
  grow(used: number, needed: number): void {
    let size = this.bytes.length * 2;
    while (size < needed) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.bytes.subarray(0, used));
    this.bytes = next;
    this.view = new DataView(next.buffer);
  }
}

/**
 * Packs `runMany` parameter sets into one `ArrayBuffer` (to be transferred, not cloned),
 * keeping every value exact: `-0`, `NaN`, integers beyond 2^53 as numbers, bigints of any
 * size, text with lone surrogates, blobs, booleans. Returns `undefined` when a set is not
 * an array of such values (named parameters, say): those go as they are.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeParamSets, encodeParamSets } from "./protocol.ts";
 * const sets = [[1, "a", null], [-0, 2n ** 70n, new Uint8Array([1, 2])]];
 * const packed = encodeParamSets(sets);
 * assert.ok(packed !== undefined);
 * assert.deepEqual(decodeParamSets(packed.packed, packed.length), sets);
 * assert.equal(encodeParamSets([{ ":a": 1 }]), undefined);
 * ```
 */
export function encodeParamSets(
  sets: readonly Params[],
): { packed: ArrayBuffer; length: number } | undefined {
  const w = new Writer(Math.max(256, sets.length * 64));
  let bytes = w.bytes;
  let view = w.view;
  let at = 0;
  view.setUint32(at, sets.length, true);
  at += 4;
  for (let s = 0; s < sets.length; s++) {
    const set = sets[s];
    if (!Array.isArray(set)) return undefined;
    const values = set as readonly unknown[];
    const width = values.length;
    // Room for the set without its text and blobs (checked as they come).
    let needed = at + 4 + width * 9;
    if (needed > bytes.length) {
      w.grow(at, needed);
      bytes = w.bytes;
      view = w.view;
    }
    view.setUint32(at, width, true);
    at += 4;
    for (let v = 0; v < width; v++) {
      const value = values[v];
      if (typeof value === "number") {
        if ((value | 0) === value && (value !== 0 || 1 / value > 0)) {
          bytes[at] = Tag.Int32;
          view.setInt32(at + 1, value, true);
          at += 5;
        } else {
          bytes[at] = Tag.Float64;
          view.setFloat64(at + 1, value, true);
          at += 9;
        }
      } else if (typeof value === "string") {
        const length = value.length;
        // Worst case 3 bytes a UTF-16 unit, plus what the rest of the set may take.
        needed = at + 5 + 3 * length + (width - v) * 9;
        if (needed > bytes.length) {
          w.grow(at, needed);
          bytes = w.bytes;
          view = w.view;
        }
        let ascii = length <= 64;
        if (ascii) {
          // Short text is mostly ASCII: copied unit by unit, cheaper than an encoder call.
          const base = at + 5;
          for (let i = 0; i < length; i++) {
            const c = value.charCodeAt(i);
            if (c > 0x7f) {
              ascii = false;
              break;
            }
            bytes[base + i] = c;
          }
        }
        if (ascii) {
          bytes[at] = Tag.Ascii;
          view.setUint32(at + 1, length, true);
          at += 5 + length;
        } else if (!value.isWellFormed()) {
          // UTF-8 cannot carry a lone surrogate: the UTF-16 code units as they are.
          bytes[at] = Tag.Utf16;
          view.setUint32(at + 1, length, true);
          at += 5;
          for (let i = 0; i < length; i++) {
            view.setUint16(at, value.charCodeAt(i), true);
            at += 2;
          }
        } else {
          bytes[at] = Tag.Utf8;
          const { written } = utf8Encoder.encodeInto(value, bytes.subarray(at + 5));
          view.setUint32(at + 1, written, true);
          at += 5 + written;
        }
      } else if (value === null) {
        bytes[at++] = Tag.Null;
      } else if (typeof value === "bigint") {
        if (value >= INT64_MIN && value <= INT64_MAX) {
          bytes[at] = Tag.BigInt64;
          view.setBigInt64(at + 1, value, true);
          at += 9;
        } else {
          const text = value.toString();
          needed = at + 5 + text.length + (width - v) * 9;
          if (needed > bytes.length) {
            w.grow(at, needed);
            bytes = w.bytes;
            view = w.view;
          }
          bytes[at] = Tag.BigIntText;
          view.setUint32(at + 1, text.length, true);
          at += 5;
          for (let i = 0; i < text.length; i++) bytes[at++] = text.charCodeAt(i);
        }
      } else if (value instanceof Uint8Array) {
        needed = at + 5 + value.length + (width - v) * 9;
        if (needed > bytes.length) {
          w.grow(at, needed);
          bytes = w.bytes;
          view = w.view;
        }
        bytes[at] = Tag.Blob;
        view.setUint32(at + 1, value.length, true);
        bytes.set(value, at + 5);
        at += 5 + value.length;
      } else if (typeof value === "boolean") {
        bytes[at++] = value ? Tag.True : Tag.False;
      } else if (value === undefined) {
        bytes[at++] = Tag.Undefined;
      } else {
        return undefined;
      }
    }
  }
  return { packed: bytes.buffer as ArrayBuffer, length: at };
}

/** The parameter sets {@link encodeParamSets} packed into the first `length` bytes. */
export function decodeParamSets(buffer: ArrayBuffer, length: number): SqlInput[][] {
  const bytes = new Uint8Array(buffer, 0, length);
  const view = new DataView(buffer, 0, length);
  let at = 0;
  const count = view.getUint32(at, true);
  at += 4;
  const sets = new Array<SqlInput[]>(count);
  for (let s = 0; s < count; s++) {
    const width = view.getUint32(at, true);
    at += 4;
    const set = new Array<SqlInput>(width);
    for (let v = 0; v < width; v++) {
      const tag = bytes[at++] as Tag;
      switch (tag) {
        case Tag.Null:
          set[v] = null;
          break;
        case Tag.Int32:
          set[v] = view.getInt32(at, true);
          at += 4;
          break;
        case Tag.Float64:
          set[v] = view.getFloat64(at, true);
          at += 8;
          break;
        case Tag.BigInt64:
          set[v] = view.getBigInt64(at, true);
          at += 8;
          break;
        case Tag.BigIntText: {
          const n = view.getUint32(at, true);
          at += 4;
          set[v] = BigInt(asciiText(bytes, at, n));
          at += n;
          break;
        }
        case Tag.Ascii: {
          const n = view.getUint32(at, true);
          at += 4;
          set[v] = asciiText(bytes, at, n);
          at += n;
          break;
        }
        case Tag.Utf8: {
          const n = view.getUint32(at, true);
          at += 4;
          set[v] = utf8Decoder.decode(bytes.subarray(at, at + n));
          at += n;
          break;
        }
        case Tag.Utf16: {
          const n = view.getUint32(at, true);
          at += 4;
          let text = "";
          for (let from = 0; from < n; from += 4096) {
            const units = new Array<number>(Math.min(4096, n - from));
            for (let i = 0; i < units.length; i++) {
              units[i] = view.getUint16(at + 2 * (from + i), true);
            }
            text += String.fromCharCode(...units);
          }
          set[v] = text;
          at += 2 * n;
          break;
        }
        case Tag.Blob: {
          const n = view.getUint32(at, true);
          at += 4;
          set[v] = bytes.slice(at, at + n);
          at += n;
          break;
        }
        case Tag.True:
          set[v] = true;
          break;
        case Tag.False:
          set[v] = false;
          break;
        case Tag.Undefined:
          set[v] = undefined as unknown as SqlInput;
          break;
        default:
          throw new Error(`corrupt packed parameters: tag ${tag} at byte ${at - 1}`);
      }
    }
    sets[s] = set;
  }
  return sets;
}

function asciiText(bytes: Uint8Array, at: number, n: number): string {
  if (n <= 64) {
    let text = "";
    for (let i = 0; i < n; i++) text += String.fromCharCode(bytes[at + i] as number);
    return text;
  }
  return utf8Decoder.decode(bytes.subarray(at, at + n));
}
