/**
 * Point reads on a local sqld: through a ConnectionPool with libsqlDriver against the raw
 * `@libsql/client` call on the same server and transport, and (WebSocket) against a raw
 * hrana stream kept open, the protocol's floor. Medians over interleaved rounds, ms per
 * read, one read in flight at a time.
 *
 *   npx --yes deno@2.9.6 run --allow-read --allow-write --allow-run --allow-net=127.0.0.1 \
 *     bench/libsql_ratios.ts
 */

import { createClient } from "npm:@libsql/client@0.18.0/web";
import * as hrana from "npm:@libsql/hrana-client@0.10.0";
import { libsqlDriver } from "../src/driver/libsql.ts";
import { ConnectionPool } from "../src/pool/pool.ts";
import { startSqld } from "../tests/sqld.ts";
import { report } from "./medians.ts";

await using server = await startSqld();
const ROWS = 1_000;
const N = 400;
const sql = "SELECT * FROM users WHERE id = ?";

const setup = createClient({ url: server.url });
await setup.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)");
await setup.batch(
  Array.from({ length: ROWS }, (_, i) => ({
    sql: "INSERT INTO users VALUES (?, ?, ?)",
    args: [i + 1, `user${i + 1}`, 18 + (i % 60)],
  })),
  "write",
);
setup.close();

for (const [transport, url] of [["ws", server.url], ["http", server.httpUrl]] as const) {
  const client = createClient({ url, intMode: "bigint" });
  await using pool = new ConnectionPool(url, { driver: libsqlDriver, fileCheckIntervalMs: 0 });
  const lease = await pool.getConnection();
  const raw = async () => {
    const t = performance.now();
    for (let i = 0; i < N; i++) await client.execute({ sql, args: [(i % ROWS) + 1] });
    return (performance.now() - t) / N;
  };
  await report(
    `${transport}: point read through a held lease vs client.execute, ms`,
    raw,
    async () => {
      const t = performance.now();
      for (let i = 0; i < N; i++) await lease.get(sql, [(i % ROWS) + 1]);
      return (performance.now() - t) / N;
    },
    "within 1.2x",
    9,
  );
  await report(
    `${transport}: point read, a lease per read (withConnection), ms`,
    raw,
    async () => {
      const t = performance.now();
      for (let i = 0; i < N; i++) await pool.withConnection((c) => c.get(sql, [(i % ROWS) + 1]));
      return (performance.now() - t) / N;
    },
    "within 1.2x",
    9,
  );
  // The floor: one hrana stream kept open, as the driver keeps it (one connection on the
  // server; client.execute opens and closes a stream, a server connection, per call).
  const stream = hrana.openWs(server.url, undefined, 3);
  await stream.getVersion();
  const kept = stream.openStream();
  if (transport === "ws") {
    await report(
      `ws: point read through a held lease vs a raw kept hrana stream, ms`,
      async () => {
        const t = performance.now();
        for (let i = 0; i < N; i++) await kept.query([sql, [BigInt((i % ROWS) + 1)]]);
        return (performance.now() - t) / N;
      },
      async () => {
        const t = performance.now();
        for (let i = 0; i < N; i++) await lease.get(sql, [(i % ROWS) + 1]);
        return (performance.now() - t) / N;
      },
      "overhead of the pool and driver",
      9,
    );
  }
  stream.close();
  await lease.release();
  client.close();
}
