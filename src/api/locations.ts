/**
 * Where a manager's shards live when they are on database servers: the `shards` option
 * (`ShardManagerOptions.shards`), checked at construction, one location per shard in
 * shard-id order, each with the driver that reaches it.
 *
 * @module
 */

import { createLibsqlDriver } from "../driver/libsql.ts";
import type { Driver } from "../driver/driver.ts";

/**
 * One shard's server: a URL (`ws://`, `wss://`, `http://`, `https://`, `libsql://`), or the
 * URL with the token the server wants and the replicas that follow it.
 */
export type ShardLocationInput = string | {
  /** The server's URL. */
  url: string;
  /** The token (JWT) the server asks for (sqld `--auth-jwt-key`). */
  authToken?: string;
  /**
   * Servers replicating this one (sqld started with `--primary-grpc-url`), read from by
   * calls given `readFrom: "replica"`.
   */
  replicas?: readonly string[];
};

/** A checked shard location. */
export interface RemoteShard {
  /** The shard. */
  readonly shardId: number;
  /** The primary's URL, as given (what errors and stats name). */
  readonly url: string;
  /** The replicas' URLs (maybe none). */
  readonly replicas: readonly string[];
  /** The driver reaching the primary and its replicas (with the shard's token). */
  readonly driver: Driver;
}

const SCHEMES = new Set(["ws:", "wss:", "http:", "https:", "libsql:"]);

/** Checks one URL; the error names the shard and what is wrong. */
function checkUrl(value: unknown, at: string): string {
  if (typeof value !== "string" || value.trim() === "") {
    throw new TypeError(`${at} must be a server URL (ws://host:port, ...), got ${describe(value)}`);
  }
  if (value.includes("\0")) throw new TypeError(`${at} must not contain NUL characters`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(
      `${at} is not a URL: ${JSON.stringify(value)}; write it as ws://host:port (or wss://, ` +
        `http://, https://, libsql://)`,
    );
  }
  if (!SCHEMES.has(url.protocol)) {
    throw new TypeError(
      `${at} has the scheme "${url.protocol}" (${value}); a shard server is reached over ` +
        `ws:, wss:, http:, https: or libsql:`,
    );
  }
  if (url.hostname === "") throw new TypeError(`${at} names no host: ${value}`);
  if (url.username !== "" || url.password !== "") {
    throw new TypeError(`${at} carries credentials in the URL; pass { url, authToken } instead`);
  }
  return value;
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null || value === undefined) return String(value);
  return typeof value === "object" ? "an object" : `${typeof value} ${String(value)}`;
}

/** Whether two URLs name one server (scheme family, host and path; not the token). */
export function sameServer(a: string, b: string): boolean {
  return identity(a) === identity(b);
}

/** The server a URL names, for telling two shards on one database apart. */
function identity(url: string): string {
  const parsed = new URL(url);
  const scheme = parsed.protocol === "libsql:"
    ? "ws"
    : parsed.protocol.replace(/s?:$/, "").replace(/^http$/, "ws");
  return `${scheme}//${parsed.host}${parsed.pathname.replace(/\/+$/, "")}`;
}

/**
 * Checks the `shards` option and gives each shard its driver (one per distinct token).
 *
 * @throws {TypeError} naming the shard and its URL: not a list, an empty list, a malformed
 * URL, an unknown scheme, a bad token or replica list, two shards on one server.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseShardLocations } from "./locations.ts";
 * const shards = parseShardLocations([
 *   "ws://127.0.0.1:8081",
 *   { url: "ws://127.0.0.1:8082", replicas: ["ws://127.0.0.1:9082"] },
 * ]);
 * assert.deepEqual(shards.map((s) => s.replicas.length), [0, 1]);
 * assert.throws(() => parseShardLocations(["ftp://x"]), /shards\[0\] has the scheme "ftp:"/);
 * assert.throws(() => parseShardLocations(["ws://a:1", "ws://a:1"]), /same server/);
 * ```
 */
export function parseShardLocations(input: unknown): RemoteShard[] {
  if (!Array.isArray(input)) {
    throw new TypeError(`shards must be a list of server URLs, got ${describe(input)}`);
  }
  if (input.length === 0) throw new TypeError("shards must list at least one server");
  const drivers = new Map<string | undefined, Driver>();
  const seen = new Map<string, number>();
  return input.map((entry: unknown, shardId) => {
    const at = `shards[${shardId}]`;
    const fields = typeof entry === "string"
      ? { url: entry }
      : entry !== null && typeof entry === "object"
      ? entry as Record<string, unknown>
      : (() => {
        throw new TypeError(`${at} must be a URL or { url, authToken?, replicas? }`);
      })();
    for (const name of Object.keys(fields)) {
      if (name !== "url" && name !== "authToken" && name !== "replicas") {
        throw new TypeError(`${at} has an unknown field ${JSON.stringify(name)}`);
      }
    }
    const url = checkUrl(fields.url, typeof entry === "string" ? at : `${at}.url`);
    const token = fields.authToken;
    if (token !== undefined && (typeof token !== "string" || token === "")) {
      throw new TypeError(`${at}.authToken must be a non-empty string (${url})`);
    }
    const replicasIn = fields.replicas ?? [];
    if (!Array.isArray(replicasIn)) {
      throw new TypeError(`${at}.replicas must be a list of URLs (${url})`);
    }
    const replicas = replicasIn.map((r: unknown, i) => checkUrl(r, `${at}.replicas[${i}]`));
    for (const [i, server] of [url, ...replicas].entries()) {
      const key = identity(server);
      const other = seen.get(key);
      if (other !== undefined) {
        throw new TypeError(
          `${at}${i === 0 ? "" : `.replicas[${i - 1}]`} (${server}) is the same server as ` +
            `shards[${other}]; every shard needs a database of its own`,
        );
      }
      seen.set(key, shardId);
    }
    let driver = drivers.get(token as string | undefined);
    if (driver === undefined) {
      driver = createLibsqlDriver(token === undefined ? {} : { authToken: token as string });
      drivers.set(token as string | undefined, driver);
    }
    return { shardId, url, replicas, driver };
  });
}
