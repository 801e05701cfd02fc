/**
 * The messages between the calling thread and a shard worker, and the encodings that
 * make them cheap: requests are collected per microtask into one message (one structured
 * clone and one wake-up per batch, not per call), bulk parameter sets travel as one packed
 * transferable `ArrayBuffer`, and rows come back as column names plus value arrays.
 *
 * @module
 */

import type { Params, SqlInput, SqlValue } from "../types.ts";

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

/** Rows as column names and value arrays: cheaper to clone than one object per row. */
export interface PackedRows {
  /** The keys of the rows' objects, in their order. */
  columns: string[];
  /** Each row's values, in `columns` order. */
  rows: SqlValue[][];
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

/** A message from the host to a worker. */
export interface RequestBatch {
  requests: Request[];
}

/**
 * A message from a worker to the host: answers, or a part of a big result sent ahead of
 * its answer (so that no single message stalls the calling thread long).
 */
export type ReplyMessage =
  | { replies: Reply[] }
  | { part: { id: number; rows: SqlValue[][] } };

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

/** Object rows (all of one statement, so the same keys) as columns and value arrays. */
export function packRows(rows: readonly Record<string, SqlValue>[]): PackedRows {
  const first = rows[0];
  if (first === undefined) return { columns: [], rows: [] };
  const columns = Object.keys(first);
  const width = columns.length;
  const values = new Array<SqlValue[]>(rows.length);
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r] as Record<string, SqlValue>;
    const out = new Array<SqlValue>(width);
    for (let c = 0; c < width; c++) out[c] = row[columns[c] as string] as SqlValue;
    values[r] = out;
  }
  return { columns, rows: values };
}

/** The object rows {@link packRows} packed (same keys, same order). */
export function unpackRows(packed: PackedRows): Record<string, SqlValue>[] {
  const { columns, rows } = packed;
  const width = columns.length;
  const out = new Array<Record<string, SqlValue>>(rows.length);
  for (let r = 0; r < rows.length; r++) {
    const values = rows[r] as SqlValue[];
    const row: Record<string, SqlValue> = {};
    for (let c = 0; c < width; c++) row[columns[c] as string] = values[c] as SqlValue;
    out[r] = row;
  }
  return out;
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
