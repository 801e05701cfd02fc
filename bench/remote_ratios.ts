/**
 * A ShardManager over four local sqld servers (WebSocket) against raw `@libsql/client`
 * calls on the same servers, baselines measured in the same run, interleaved rounds:
 *
 * - a point read by key through the manager vs `client.execute()` (and vs a hrana stream
 *   kept open, the protocol's floor);
 * - `insertMany` of 100k rows (and 2k) over the 4 servers vs one raw `client.batch()` of
 *   the same rows into one server (over HTTP: sqld resets a WebSocket sent 100k statements
 *   in one message);
 * - a cross-shard `count` and `aggregate` over the 4 servers vs the slowest of the four
 *   servers' own answers to the same per-shard query, sent at once;
 * - how long a replica takes to show a row its primary acknowledged.
 *
 *   npx --yes deno@2.9.6 run --allow-read --allow-write --allow-run --allow-net=127.0.0.1 \
 *     bench/remote_ratios.ts
 */

import { createClient } from "npm:@libsql/client@0.18.0/web";
import * as hrana from "npm:@libsql/hrana-client@0.10.0";
import { ShardManager } from "../mod.ts";
import { type SqldServer, startSqld } from "../tests/sqld.ts";
import { report } from "./medians.ts";

const servers: SqldServer[] = await Promise.all([0, 1, 2, 3].map(() => startSqld()));
const urls = servers.map((s) => s.url);
const TABLE = { id: "INTEGER PRIMARY KEY", name: "TEXT", age: "INTEGER" };
const rowsOf = (from: number, n: number) =>
  Array.from(
    { length: n },
    (_, i) => ({ id: from + i, name: `user${from + i}`, age: 18 + (i % 60) }),
  );

try {
  const manager = new ShardManager({ shards: urls, pool: { onEvent: () => {} } });
  await manager.createTable("users", TABLE, { shardKey: "id" });
  await manager.insertMany("users", rowsOf(1, 20_000));

  // --- point reads --------------------------------------------------------------------
  const N = 400;
  const shard0 = manager.getShardId(1, "users");
  const client = createClient({ url: urls[shard0] as string, intMode: "bigint" });
  const idsOnShard = rowsOf(1, 20_000).map((r) => r.id).filter((id) =>
    manager.getShardId(id, "users") === shard0
  ).slice(0, N);
  const sql = "SELECT * FROM users WHERE id = ?";
  const viaManager = async () => {
    const t = performance.now();
    for (const id of idsOnShard) await manager.select("users", { key: id });
    return (performance.now() - t) / idsOnShard.length;
  };
  await report(
    "point read by key: manager.select vs client.execute (ws, same server), ms",
    async () => {
      const t = performance.now();
      for (const id of idsOnShard) await client.execute({ sql, args: [id] });
      return (performance.now() - t) / idsOnShard.length;
    },
    viaManager,
    "within 1.2x",
    9,
  );
  const socket = hrana.openWs(urls[shard0] as string, undefined, 3);
  await socket.getVersion();
  const kept = socket.openStream();
  await report(
    "point read by key: manager.select vs a raw hrana stream kept open, ms",
    async () => {
      const t = performance.now();
      for (const id of idsOnShard) await kept.query([sql, [BigInt(id)]]);
      return (performance.now() - t) / idsOnShard.length;
    },
    viaManager,
    "(the protocol's floor)",
    9,
  );
  // A write by key runs in a transaction that checks the layout epoch first.
  let nextId = 100_000;
  await report(
    "insert by key: manager.insert (epoch-checked transaction) vs client.execute, ms",
    async () => {
      const t = performance.now();
      for (let i = 0; i < 100; i++) {
        let id = nextId++;
        while (manager.getShardId(id, "users") !== shard0) id = nextId++;
        await client.execute({ sql: "INSERT INTO users VALUES (?, ?, ?)", args: [id, "n", 1] });
      }
      return (performance.now() - t) / 100;
    },
    async () => {
      const t = performance.now();
      for (let i = 0; i < 100; i++) {
        let id = nextId++;
        while (manager.getShardId(id, "users") !== shard0) id = nextId++;
        await manager.insert("users", { id, name: "n", age: 1 });
      }
      return (performance.now() - t) / 100;
    },
    "(reported)",
    7,
  );
  socket.close();
  client.close();

  // --- insertMany vs one raw batch ------------------------------------------------------
  // Over HTTP: a 100k-statement batch is one request; over WebSocket sqld resets the
  // connection at that size (one message).
  const raw = createClient({ url: servers[0]?.httpUrl as string });
  await raw.execute(
    "CREATE TABLE IF NOT EXISTS bulk (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)",
  );
  await manager.createTable("bulk", TABLE, { shardKey: "id" });
  let next = 1_000_000;
  for (const size of [100_000, 2_000]) {
    const rounds = size >= 100_000 ? 3 : 9;
    await report(
      `insertMany ${size} rows over 4 servers vs one client.batch into one server, ms`,
      async () => {
        const rows = rowsOf(next, size);
        next += size;
        const t = performance.now();
        await raw.batch(
          rows.map((r) => ({
            sql: "INSERT INTO bulk VALUES (?, ?, ?)",
            args: [r.id, r.name, r.age],
          })),
          "write",
        );
        return performance.now() - t;
      },
      async () => {
        const rows = rowsOf(next, size);
        next += size;
        const t = performance.now();
        await manager.insertMany("bulk", rows);
        return performance.now() - t;
      },
      "at least 1.5x the rate",
      rounds,
    );
  }
  raw.close();

  // --- fan-out aggregates vs the slowest server ------------------------------------------
  const clients = urls.map((url) => createClient({ url }));
  const slowest = async (sqlText: string) => {
    const t = performance.now();
    const times = await Promise.all(clients.map(async (c) => {
      await c.execute(sqlText);
      return performance.now() - t;
    }));
    return Math.max(...times);
  };
  for (
    const [label, perShard, call] of [
      ["count", "SELECT count(*) FROM bulk", () => manager.count("bulk")],
      [
        "aggregate SUM/AVG/MAX",
        "SELECT sum(age), count(age), max(id) FROM bulk",
        () => manager.aggregate("bulk", ["SUM(age)", "AVG(age)", "MAX(id)"]),
      ],
    ] as const
  ) {
    await report(
      `cross-shard ${label} over 4 servers vs the slowest server's own answer, ms`,
      () => slowest(perShard),
      async () => {
        const t = performance.now();
        await call();
        return performance.now() - t;
      },
      "within 1.5x",
      15,
    );
  }
  for (const c of clients) c.close();
  await manager.shutdown();

  // --- replica lag ------------------------------------------------------------------------
  // A row written on the primary, then read from its replica until it is there.
  const primary = await startSqld({ grpc: true });
  const replica = await startSqld({ replicaOf: primary });
  servers.push(primary, replica);
  const replicated = new ShardManager({
    shards: [{ url: primary.url, replicas: [replica.url] }],
    pool: { onEvent: () => {} },
  });
  await replicated.createTable("lag", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
  const lags: number[] = [];
  for (let id = 1; id <= 60; id++) {
    await replicated.insert("lag", { id });
    const t = performance.now();
    while ((await replicated.select("lag", { key: id, readFrom: "replica" })).length === 0) {
      if (performance.now() - t > 5_000) throw new Error("the replica did not catch up in 5 s");
    }
    lags.push(performance.now() - t);
  }
  lags.sort((a, b) => a - b);
  console.log(
    `replica lag (insert on the primary acknowledged -> visible on the replica), 60 writes: ` +
      `median ${lags[30]?.toFixed(2)} ms, max ${lags[59]?.toFixed(2)} ms`,
  );
  await replicated.shutdown();
} finally {
  await Promise.all(servers.map((s) => s[Symbol.asyncDispose]()));
}
