/**
 * The WebSocket the libsql driver talks to sqld over, with one change: a message between
 * 1 KiB and 64 KiB is padded to 64 KiB before it is sent.
 *
 * Why: Deno's WebSocket client sends such a message about 44 ms late. Measured here (Deno
 * 2.9.6, loopback): a Deno client to a Deno or sqld server answers a 1,000-byte message in
 * 0.1 ms, every size from 1,100 to 65,000 bytes in 43.8–44.9 ms, and 65,536 bytes and more
 * in 0.1–0.7 ms again. That is the signature of a frame written in two parts under Nagle's
 * algorithm meeting the peer's delayed ACK. A 500-row INSERT (about 20 KB) took 46–50 ms;
 * padded, 6–8 ms. The padding costs bandwidth only for those sizes (at most 64 KiB a
 * message, about 0.5 ms on a 1 Gbit/s link), far less than the stall it removes.
 *
 * How: hrana's protobuf messages get an unknown field (number 15, bytes), which protobuf
 * decoders skip; its JSON messages get trailing whitespace.
 *
 * @module
 */

import * as hrana from "npm:@libsql/hrana-client@0.10.0";

/** Sizes (bytes) that are sent late, and the size they are padded to. */
const SLOW_ABOVE = 1_024;
const PADDED = 65_536;
// Field 15, wire type 2 (length-delimited): an unknown field sqld's decoder skips.
const FILLER_TAG = (15 << 3) | 2;

function varint(value: number): number[] {
  const bytes: number[] = [];
  while (value > 0x7f) {
    bytes.push((value & 0x7f) | 0x80);
    value >>>= 7;
  }
  bytes.push(value);
  return bytes;
}

/**
 * `message` padded to {@link PADDED} bytes when its size is one Deno sends late;
 * otherwise `message` itself.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { padMessage } from "./libsql_socket.ts";
 * assert.equal((padMessage(new Uint8Array(5_000)) as Uint8Array).length, 65_536);
 * assert.equal((padMessage("x".repeat(2_000)) as string).length, 65_536);
 * const small = new Uint8Array(100);
 * assert.equal(padMessage(small), small);
 * ```
 */
export function padMessage(message: unknown): unknown {
  if (typeof message === "string") {
    // JSON: whitespace after the value. (Characters, not bytes: near enough for the sizes.)
    return message.length > SLOW_ABOVE && message.length < PADDED
      ? message + " ".repeat(PADDED - message.length)
      : message;
  }
  if (!(message instanceof Uint8Array) || message.length <= SLOW_ABOVE) return message;
  if (message.length >= PADDED) return message;
  // The field's own tag and length take a few bytes of the filler.
  let fill = PADDED - message.length - 4;
  let head = [FILLER_TAG, ...varint(fill)];
  fill = PADDED - message.length - head.length;
  head = [FILLER_TAG, ...varint(fill)];
  const padded = new Uint8Array(message.length + head.length + fill);
  padded.set(message);
  padded.set(head, message.length);
  return padded;
}

/** A hrana client over a WebSocket to `url` whose medium-sized messages are padded. */
export function openPaddedWs(url: string, authToken: string | undefined): hrana.WsClient {
  const socket = new WebSocket(url, ["hrana3-protobuf", "hrana3"]);
  const send = socket.send.bind(socket);
  socket.send = (data) => send(padMessage(data) as typeof data);
  return new hrana.WsClient(
    socket as unknown as ConstructorParameters<typeof hrana.WsClient>[0],
    authToken,
  );
}
