/**
 * The sqld harness itself: real servers start, take writes over HTTP (hrana's pipeline
 * endpoint, no client library), survive SIGKILL with every acknowledged row, and a
 * replica follows its primary.
 */

import assert from "node:assert/strict";
import { startSqld } from "./sqld.ts";

type HranaValue = { type: "null" } | { type: "integer"; value: string } | {
  type: "text";
  value: string;
};

/** One statement through `POST /v2/pipeline`; resolves to its rows' first column. */
async function pipeline(httpUrl: string, sql: string, args: HranaValue[] = []): Promise<unknown[]> {
  const response = await fetch(`${httpUrl}/v2/pipeline`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      requests: [{ type: "execute", stmt: { sql, args } }, { type: "close" }],
    }),
  });
  const body = await response.json() as {
    results: { type: string; response?: { result: { rows: { value?: unknown }[][] } } }[];
  };
  assert.equal(response.status, 200, JSON.stringify(body));
  const first = body.results[0];
  assert.equal(first?.type, "ok", JSON.stringify(first));
  return first!.response!.result.rows.map((row) => row[0]?.value);
}

const integer = (n: number): HranaValue => ({ type: "integer", value: String(n) });

Deno.test("sqld harness: two servers, SIGKILL and restart keep every acknowledged row", async () => {
  await using a = await startSqld();
  await using b = await startSqld();
  assert.notEqual(a.port, b.port);
  assert.match(a.url, /^ws:\/\/127\.0\.0\.1:\d+$/);
  for (const server of [a, b]) {
    await pipeline(server.httpUrl, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
  }
  const acknowledged: number[] = [];
  // Writes to a, one acknowledged at a time, while it is killed partway through.
  const writer = (async () => {
    for (let id = 1; id <= 400; id++) {
      try {
        await pipeline(a.httpUrl, "INSERT INTO t (id, v) VALUES (?, ?)", [integer(id), {
          type: "text",
          value: `row ${id}`,
        }]);
        acknowledged.push(id);
      } catch {
        return; // the server is gone: nothing after this was acknowledged
      }
    }
  })();
  while (acknowledged.length < 50) await new Promise((resolve) => setTimeout(resolve, 2));
  await a.kill();
  assert.equal(a.running, false);
  await writer;
  await pipeline(b.httpUrl, "INSERT INTO t (id, v) VALUES (1, 'b')");

  await a.restart();
  assert.equal(a.running, true);
  const ids = (await pipeline(a.httpUrl, "SELECT id FROM t ORDER BY id")).map(Number);
  for (const id of acknowledged) assert.ok(ids.includes(id), `acknowledged row ${id} lost`);
  assert.ok(ids.length >= acknowledged.length);
  assert.deepEqual(await pipeline(b.httpUrl, "SELECT count(*) FROM t"), ["1"]);
  // After a clean stop too.
  await a.stop();
  assert.equal(a.running, false);
  await a.restart();
  assert.equal((await pipeline(a.httpUrl, "SELECT count(*) FROM t"))[0], String(ids.length));
});

Deno.test("sqld harness: a replica follows its primary", async () => {
  await using primary = await startSqld({ grpc: true });
  await using replica = await startSqld({ replicaOf: primary });
  await pipeline(primary.httpUrl, "CREATE TABLE r (id INTEGER PRIMARY KEY)");
  await pipeline(primary.httpUrl, "INSERT INTO r VALUES (1), (2), (3)");
  // Replication lag is a few ms (DESIGN.md); wait for it, bounded.
  const started = performance.now();
  let count: unknown = undefined;
  while (performance.now() - started < 5_000) {
    try {
      count = (await pipeline(replica.httpUrl, "SELECT count(*) FROM r"))[0];
      if (count === "3") break;
    } catch {
      // The table has not arrived yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal(count, "3");
});

Deno.test("sqld harness: a replica needs a primary started with grpc", async () => {
  await using primary = await startSqld();
  await assert.rejects(() => startSqld({ replicaOf: primary }), /grpc: true/);
});
