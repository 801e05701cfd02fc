/**
 * A `ShardManager` over shards on real libSQL servers (sqld, started by tests/sqld.ts on
 * loopback ports): the same calls as on local files, the shard map on shard 0 shared by
 * every client, the epoch check, typed failures, replicas.
 */

import assert from "node:assert/strict";
import {
  BatchPendingError,
  ConnectionBrokenError,
  ReshardError,
  RestoreTargetError,
  ShardManager,
  ShardMapMismatchError,
  ShardUnavailableError,
} from "../mod.ts";
import { REMOTE_BATCH_AGE_MS, setRemoteBatchAgeForTests } from "../src/api/directory.ts";
import { kids, roles, setParent, setUpTrap } from "./batch_trap.ts";
import { tempDir } from "./helpers.ts";
import { jwtKeys, type SqldServer, startSqld } from "./sqld.ts";

/** `n` servers, stopped at scope exit. */
async function servers(n: number): Promise<SqldServer[] & AsyncDisposable> {
  const list = await Promise.all(Array.from({ length: n }, () => startSqld()));
  return Object.assign(list, {
    async [Symbol.asyncDispose]() {
      await Promise.all(list.map((s) => s[Symbol.asyncDispose]()));
    },
  });
}

const quiet = { onEvent: () => {} };

Deno.test("remote: CRUD, insertMany, cross-shard reads and aggregates match a local manager", async () => {
  await using sqld = await servers(3);
  await using remote = new ShardManager({ shards: sqld.map((s) => s.url), pool: quiet });
  await using dir = await tempDir();
  await using local = new ShardManager({ numShards: 3, dbDir: dir.path, pool: quiet });
  try {
    const rows = Array.from({ length: 500 }, (_, i) => ({
      id: i + 1,
      team: ["red", "blue", "green"][i % 3] as string,
      score: (i * 37) % 101,
      note: i % 7 === 0 ? null : `n${i}`,
    }));
    const counts: number[][] = [];
    for (const m of [remote, local]) {
      await m.createTable("t", {
        id: "INTEGER PRIMARY KEY",
        team: "TEXT",
        score: "INTEGER",
        note: "TEXT",
      }, { shardKey: "id" });
      assert.equal(await m.insertMany("t", rows), 500);
      await m.insert("t", { id: 1000, team: "red", score: 5, note: "x" });
      await m.upsert("t", { id: 1000, team: "red", score: 6, note: "y" }, { update: ["score"] });
      counts.push([
        await m.update("t", { note: "big" }, { where: { score: { gt: 90 } } }),
        await m.delete("t", { key: 2 }),
      ]);
    }
    assert.deepStrictEqual(counts[0], counts[1]);
    assert.equal(counts[0]?.[1], 1);
    assert.equal(remote.numShards, 3);
    for (const shardId of [0, 1, 2]) assert.equal(remote.shardPath(shardId), sqld[shardId]?.url);
    const same = async <T>(f: (m: ShardManager) => Promise<T>) =>
      assert.deepStrictEqual(await f(remote), await f(local));
    await same((m) => m.select("t", { key: 1000 }));
    await same((m) => m.select("t", { orderBy: ["score", "id"], limit: 50, offset: 3 }));
    await same((m) => m.select("t", { where: { team: "blue" }, orderBy: "id" }));
    await same((m) => m.count("t"));
    await same((m) => m.aggregate("t", ["SUM(score)", "AVG(score)", "MIN(note)", "MAX(id)"]));
    await same((m) => m.aggregateBy("t", "team", ["COUNT(*)", "SUM(score)"]));
    await same((m) => m.queryAll("SELECT id FROM t WHERE score = 0", [], { orderBy: "id" }));
    await same(async (m) => {
      const out = [];
      for await (const row of m.iterate("t", { orderBy: "score", pageSize: 17 })) out.push(row.id);
      return out.length;
    });
    await same(async (m) => ({ ...await m.verifyPlacement(), durationMs: 0 }));
    // A transaction on a key's shard commits or rolls back as one.
    for (const m of [remote, local]) {
      await m.transaction(7, async (tx) => {
        await tx.run("UPDATE t SET score = score + 1 WHERE id = 7");
      });
      await assert.rejects(
        m.transaction(7, async (tx) => {
          await tx.run("UPDATE t SET score = 0 WHERE id = 7");
          throw new Error("no");
        }),
        /no/,
      );
    }
    await same((m) => m.select("t", { key: 7 }));
  } finally {
    await local.shutdown();
  }
});

Deno.test("remote: the shard map lives on shard 0; another client with another layout is refused", async () => {
  await using sqld = await servers(3);
  const urls = sqld.map((s) => s.url);
  {
    await using first = new ShardManager({ shards: urls, pool: quiet });
    await first.createTable("users", { id: "TEXT PRIMARY KEY", name: "TEXT" }, {
      shardKey: "id",
    });
    await first.insert("users", { id: "ada", name: "Ada" });
  }
  // A second client (another machine, say) knows the table from the map alone.
  await using second = new ShardManager({ shards: urls, pool: quiet });
  assert.deepStrictEqual(await second.select("users", { key: "ada" }), [{
    id: "ada",
    name: "Ada",
  }]);
  assert.equal(second.getShardKeyColumn("users"), "id");
  // A table the first client creates now is routed by the second at once.
  {
    await using first = new ShardManager({ shards: urls, pool: quiet });
    await first.createTable("orders", { id: "INTEGER PRIMARY KEY", user: "TEXT" }, {
      shardKey: "user",
    });
  }
  await second.insert("orders", { id: 1, user: "ada" });
  assert.equal(second.getShardKeyColumn("orders"), "user");
  assert.deepStrictEqual(await second.select("orders", { key: "ada" }), [{ id: 1, user: "ada" }]);
  // The same servers in another order, or fewer of them: another layout.
  await using swapped = new ShardManager({
    shards: [urls[0] as string, urls[2] as string],
    pool: quiet,
  });
  await assert.rejects(swapped.ready(), ShardMapMismatchError);
});

Deno.test("remote: a write routed by an old layout epoch is refused before it writes", async () => {
  await using sqld = await servers(2);
  const urls = sqld.map((s) => s.url);
  await using a = new ShardManager({ shards: urls, pool: quiet });
  await a.createTable("t", { id: "INTEGER PRIMARY KEY", v: "TEXT" }, { shardKey: "id" });
  await a.insert("t", { id: 1, v: "one" });
  // Another client finished a reshard elsewhere: every shard now records epoch 2.
  await using b = new ShardManager({ shards: urls, pool: quiet });
  await b.ready();
  for (const shardId of [0, 1]) {
    await b.getPool(shardId).withConnection(async (c) => {
      await c.exec("CREATE TABLE IF NOT EXISTS _shardlite_meta (key TEXT PRIMARY KEY, value TEXT)");
      await c.run("INSERT OR REPLACE INTO _shardlite_meta (key, value) VALUES ('epoch', '2')");
    });
  }
  const shard = a.getShardId(2, "t");
  const refused = await a.insert("t", { id: 2, v: "two" }).catch((e) => e);
  assert.ok(refused instanceof ShardMapMismatchError, String(refused));
  assert.match(refused.message, /epoch 2/);
  const single = await b.getPool(shard).withConnection((c) => c.all("SELECT id FROM t"));
  assert.ok(!single.some((r) => r.id === 2), "nothing was written");
  // insertMany across both shards, update, delete, a transaction: all refused, nothing written.
  await assert.rejects(
    a.insertMany("t", [{ id: 10 }, { id: 11 }, { id: 12 }]),
    ShardMapMismatchError,
  );
  await assert.rejects(a.update("t", { v: "x" }, { allShards: true }), ShardMapMismatchError);
  await assert.rejects(a.delete("t", { key: 1 }), ShardMapMismatchError);
  await assert.rejects(a.transaction(1, (tx) => tx.run("DELETE FROM t")), ShardMapMismatchError);
  assert.equal(await b.count("t"), 1);
  // Reads still work.
  assert.deepStrictEqual(await a.select("t", { key: 1 }), [{ id: 1, v: "one" }]);
});

Deno.test("remote: a killed server fails its shard's calls with ShardUnavailableError; the others carry on; it comes back by itself", async () => {
  await using sqld = await servers(3);
  await using m = new ShardManager({
    shards: sqld.map((s) => s.url),
    pool: { ...quiet, timeoutMs: 1_500 },
  });
  await m.createTable("t", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
  const ids = Array.from({ length: 60 }, (_, i) => i);
  await m.insertMany("t", ids.map((id) => ({ id })));
  const down = 1;
  const onDown = ids.filter((id) => m.getShardId(id, "t") === down);
  const onUp = ids.filter((id) => m.getShardId(id, "t") !== down);
  const firstDown = onDown[0] as number;
  let fresh = 1000;
  while (m.getShardId(fresh, "t") !== down) fresh++;
  await (sqld[down] as SqldServer).kill();
  const error = await m.select("t", { key: firstDown }).catch((e) => e);
  assert.ok(error instanceof ShardUnavailableError, String(error));
  assert.equal(error.shardId, down);
  assert.equal(error.url, sqld[down]?.url);
  await assert.rejects(
    m.insert("t", { id: fresh }),
    (e) => e instanceof ShardUnavailableError && e.shardId === down,
  );
  await assert.rejects(m.count("t"), ShardUnavailableError);
  // Other shards answer as usual.
  for (const id of onUp.slice(0, 5)) assert.equal((await m.select("t", { key: id })).length, 1);
  await (sqld[down] as SqldServer).restart();
  assert.equal((await m.select("t", { key: firstDown })).length, 1);
  assert.equal(await m.count("t"), 60, "the refused insert wrote nothing");
});

Deno.test("remote: a transaction cut by its server is reported lost (ConnectionBrokenError), never retried", async () => {
  await using sqld = await servers(2);
  await using m = new ShardManager({ shards: sqld.map((s) => s.url), pool: quiet });
  await m.createTable("t", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
  const shard = m.getShardId(5, "t");
  let calls = 0;
  const error = await m.transaction(5, async (tx) => {
    calls++;
    await tx.run("INSERT INTO t VALUES (5)");
    await (sqld[shard] as SqldServer).kill();
    await tx.run("INSERT INTO t VALUES (6)");
  }).catch((e) => e);
  assert.ok(error instanceof ConnectionBrokenError, String(error));
  assert.equal(calls, 1);
  await (sqld[shard] as SqldServer).restart();
  assert.deepStrictEqual(await m.select("t", { key: 5 }), []);
});

Deno.test("remote: bad shard lists are refused at construction, naming the shard and URL", () => {
  const bad: [unknown, RegExp][] = [
    [[], /at least one/],
    ["ws://x", /list/],
    [["ws://a:1", "nope"], /shards\[1\] is not a URL/],
    [["ftp://a:1"], /shards\[0\] has the scheme "ftp:"/],
    [[{ url: "ws://a:1", authToken: 5 }], /shards\[0\]\.authToken/],
    [[{ url: "ws://a:1", replicas: ["ws://a:1"] }], /same server/],
    [[{ url: "ws://a:1", extra: 1 }], /unknown field "extra"/],
    [["ws://u:p@a:1"], /credentials/],
  ];
  for (const [shards, message] of bad) {
    assert.throws(
      () => new ShardManager({ shards: shards as string[] }),
      (e: unknown) => e instanceof TypeError && message.test(e.message),
      JSON.stringify(shards),
    );
  }
  assert.throws(
    () => new ShardManager({ shards: ["ws://a:1"], dbDir: "./x" }),
    /leave dbDir out/,
  );
  assert.throws(() => new ShardManager({ shards: ["ws://a:1"], numShards: 2 }), RangeError);
});

Deno.test("remote: readFrom replica reads a replica, and falls back to the primary when none answers", async () => {
  await using primary = await startSqld({ grpc: true });
  await using replica = await startSqld({ replicaOf: primary });
  await using other = await startSqld();
  const served: string[] = [];
  await using m = new ShardManager({
    shards: [{ url: primary.url, replicas: [replica.url] }, other.url],
    pool: { ...quiet, timeoutMs: 1_500 },
    onQuery: (e) => served.push(e.path),
  });
  await m.createTable("t", { id: "INTEGER PRIMARY KEY", v: "TEXT" }, { shardKey: "id" });
  const ids = Array.from({ length: 40 }, (_, i) => i);
  await m.insertMany("t", ids.map((id) => ({ id, v: `v${id}` })));
  const key = ids.find((id) => m.getShardId(id, "t") === 0) as number;
  // Replication takes a few ms: wait for the replica to hold shard 0's rows (bounded).
  const started = performance.now();
  let seen = 0;
  while (performance.now() - started < 5_000) {
    served.length = 0;
    seen = await m.count("t", undefined, { readFrom: "replica" }).catch(() => 0);
    if (seen === 40 && served.includes(replica.url)) break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal(seen, 40);
  const reads: [string, () => Promise<unknown>, unknown][] = [
    ["select by key", () => m.select("t", { key, readFrom: "replica" }), [{
      id: key,
      v: `v${key}`,
    }]],
    [
      "ordered select",
      async () => (await m.select("t", { readFrom: "replica", orderBy: "id" })).length,
      40,
    ],
    [
      "aggregateBy",
      async () => (await m.aggregateBy("t", "v", "COUNT(*)", { readFrom: "replica" })).length,
      40,
    ],
    [
      "query",
      async () =>
        (await m.query(key, "SELECT v FROM t WHERE id = ?", [key], { readFrom: "replica" }))[0]?.v,
      `v${key}`,
    ],
    ["iterate", async () => {
      let n = 0;
      for await (const _ of m.iterate("t", { readFrom: "replica" })) n++;
      return n;
    }, 40],
  ];
  for (const [name, read, expected] of reads) {
    served.length = 0;
    assert.deepStrictEqual(await read(), expected, name);
    assert.ok(served.includes(replica.url), `${name} read shard 0 on its replica`);
    assert.ok(!served.includes(primary.url), `${name} did not read shard 0's primary`);
  }
  served.length = 0;
  await m.select("t", { key });
  assert.deepStrictEqual(served, [primary.url], "the default reads the primary");
  // With the replica gone, replica reads fall back to the primary.
  await replica.kill();
  served.length = 0;
  assert.deepStrictEqual(await m.select("t", { key, readFrom: "replica" }), [{
    id: key,
    v: `v${key}`,
  }]);
  assert.ok(served.includes(primary.url));
  assert.equal(await m.count("t", undefined, { readFrom: "replica" }), 40);
  await assert.rejects(
    m.select("t", { key, readFrom: "nearest" as "replica" }),
    /readFrom must be "primary" or "replica"/,
  );
});

Deno.test("remote: backup to a local directory, restore onto other servers; migrations and stats work on servers", async () => {
  await using sqld = await servers(4);
  await using dir = await tempDir();
  const [a, b] = [sqld.slice(0, 2).map((s) => s.url), sqld.slice(2).map((s) => s.url)];
  {
    await using m = new ShardManager({ shards: a, pool: quiet });
    await m.createTable("t", { id: "INTEGER PRIMARY KEY AUTOINCREMENT", v: "BLOB" }, {
      shardKey: "id",
    });
    await m.insertMany(
      "t",
      Array.from({ length: 300 }, (_, i) => ({ id: i + 1, v: new Uint8Array([i % 256]) })),
    );
    const migrated = await m.migrate([{
      id: "add-index",
      up: (conn) => conn.exec("CREATE INDEX t_v ON t (v)"),
    }]);
    assert.equal(migrated.applied, 2, "one migration on each of two shards");
    const stats = await m.getShardStats();
    assert.equal(stats.reduce((n, s) => n + (s.rows["t"] ?? 0), 0), 300);
    assert.deepStrictEqual(stats.map((s) => s.path), a);
    assert.ok(stats.every((s) => s.exists && s.sizeBytes > 0));
    assert.equal(await m.validateShardFiles(), true);
    const report = await m.backup(`${dir.path}/backup`);
    assert.equal(report.numShards, 2);
    assert.equal(report.files.reduce((n, f) => n + (f.rows["t"] ?? 0), 0), 300);
    await assert.rejects(m.backup(`${dir.path}/pit`, { pointInTime: true }), /pointInTime/);
  }
  const restored = await ShardManager.restore(`${dir.path}/backup`, { shards: b });
  assert.equal(restored.numShards, 2);
  await using m2 = new ShardManager({ shards: b, pool: quiet });
  assert.equal(await m2.count("t"), 300);
  assert.deepStrictEqual(await m2.select("t", { key: 42 }), [{ id: 42, v: new Uint8Array([41]) }]);
  assert.equal((await m2.migrationStatus())[0]?.applied.length, 1);
  // Restoring over servers that hold tables needs overwrite; nothing is changed without it.
  const refused = await ShardManager.restore(`${dir.path}/backup`, { shards: b }).catch((e) => e);
  assert.ok(refused instanceof RestoreTargetError, String(refused));
  assert.equal(await m2.count("t"), 300);
  await ShardManager.restore(`${dir.path}/backup`, { shards: b }, { overwrite: true });
  // The restore wrote a new layout epoch: a client from before it is refused its writes.
  await assert.rejects(m2.insert("t", { id: 5000, v: null }), ShardMapMismatchError);
  await using m3 = new ShardManager({ shards: b, pool: quiet });
  await m3.insert("t", { id: 5000, v: null });
  assert.equal(await m3.count("t"), 301);
});

Deno.test("remote: reshard grows onto new servers and shrinks; a client that missed it is refused, reloads the map and follows", async () => {
  await using sqld = await servers(4);
  const urls = sqld.map((s) => s.url);
  await using m = new ShardManager({ shards: urls.slice(0, 2), pool: quiet });
  await m.createTable("t", { id: "INTEGER PRIMARY KEY", v: "TEXT" }, { shardKey: "id" });
  const rows = Array.from({ length: 700 }, (_, i) => ({ id: i + 1, v: `v${i + 1}` }));
  await m.insertMany("t", rows);
  await using stale = new ShardManager({ shards: urls.slice(0, 2), pool: quiet });
  assert.equal(await stale.count("t"), 700);
  // Growing needs the new servers; they must be empty.
  await assert.rejects(
    m.reshard(4),
    (e) => e instanceof ReshardError && /needs their servers/.test(e.message),
  );
  await assert.rejects(
    m.reshard(3, { shards: [urls[1] as string, urls[0] as string, urls[2] as string] }),
    (e) => e instanceof ReshardError && /keeps every current server/.test(e.message),
  );
  // While rows move, other clients' writes are refused.
  const during: Promise<unknown>[] = [];
  const report = await m.reshard(4, {
    shards: urls,
    batchSize: 100,
    onProgress: () => {
      if (during.length === 0) during.push(stale.insert("t", { id: 5000, v: "x" }).catch((e) => e));
    },
  });
  assert.equal(report.scanned, 700);
  const refused = await during[0];
  assert.ok(refused instanceof ShardMapMismatchError, String(refused));
  assert.equal(m.numShards, 4);
  assert.equal(await m.count("t"), 700);
  assert.equal((await m.verifyPlacement()).misplaced, 0);
  for (const shardId of [2, 3]) {
    const n = await m.getPool(shardId).withConnection((c) => c.get("SELECT count(*) AS n FROM t"));
    assert.ok(Number(n?.n) > 0, `shard ${shardId} got rows`);
  }
  // The stale client's next write is refused once, and it then routes by the new map.
  await assert.rejects(stale.insert("t", { id: 5001, v: "y" }), ShardMapMismatchError);
  assert.equal(stale.numShards, 4);
  await stale.insert("t", { id: 5001, v: "y" });
  assert.deepStrictEqual(await m.select("t", { key: 5001 }), [{ id: 5001, v: "y" }]);
  assert.deepStrictEqual(await stale.select("t", { key: 77 }), [{ id: 77, v: "v77" }]);
  // A client starting with the old list is told the layout differs.
  await using late = new ShardManager({ shards: urls.slice(0, 2), pool: quiet });
  await assert.rejects(late.ready(), ShardMapMismatchError);
  // Shrinking: the last server is emptied and left alone.
  const shrunk = await m.reshard(3);
  assert.equal(shrunk.scanned, 701);
  assert.equal(m.numShards, 3);
  assert.equal(await m.count("t"), 701);
  await using four = new ShardManager({ shards: urls, pool: quiet });
  await assert.rejects(four.ready(), ShardMapMismatchError);
  await using three = new ShardManager({ shards: urls.slice(0, 3), pool: quiet });
  assert.equal(await three.count("t"), 701);
});

Deno.test("remote: an interrupted reshard is resumed by another client from the plan on shard 0", async () => {
  await using sqld = await servers(3);
  const urls = sqld.map((s) => s.url);
  {
    await using m = new ShardManager({ shards: urls.slice(0, 2), pool: quiet });
    await m.createTable("t", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
    await m.insertMany("t", Array.from({ length: 600 }, (_, i) => ({ id: i })));
    const stop = new AbortController();
    await assert.rejects(
      m.reshard(3, {
        shards: urls,
        batchSize: 50,
        signal: stop.signal,
        onProgress: (p) => {
          if (p.scanned >= 200) stop.abort();
        },
      }),
    );
  }
  await using other = new ShardManager({ shards: urls, pool: quiet });
  await assert.rejects(other.count("t"), ReshardError);
  assert.equal(other.pendingReshard?.to.numShards, 3);
  const report = await other.reshard(3);
  assert.equal(report.resumed, true);
  assert.equal(await other.count("t"), 600);
  assert.equal((await other.verifyPlacement()).misplaced, 0);
});

Deno.test("remote: abortReshard rolls an interrupted growth back; repairPlacement moves rows written on the wrong server", async () => {
  await using sqld = await servers(3);
  const urls = sqld.map((s) => s.url);
  await using m = new ShardManager({ shards: urls.slice(0, 2), pool: quiet });
  await m.createTable("t", { id: "INTEGER PRIMARY KEY", v: "TEXT" }, { shardKey: "id" });
  await m.insertMany("t", Array.from({ length: 400 }, (_, i) => ({ id: i, v: `v${i}` })));
  const stop = new AbortController();
  await assert.rejects(m.reshard(3, {
    shards: urls,
    batchSize: 40,
    signal: stop.signal,
    onProgress: (p) => {
      if (p.moved > 0) stop.abort();
    },
  }));
  await assert.rejects(m.count("t"), ReshardError, "operations wait for the reshard");
  const back = await m.abortReshard();
  assert.equal(back.to.numShards, 2);
  assert.equal(m.numShards, 2);
  assert.equal(await m.count("t"), 400);
  // Writes work again for every client, under the old layout.
  await using third = new ShardManager({ shards: urls.slice(0, 2), pool: quiet });
  await third.insert("t", { id: 1000, v: "new" });
  assert.equal(await third.count("t"), 401);
  // A row put on the wrong shard by hand is found and moved.
  const id = 2000;
  const wrong = 1 - m.getShardId(id, "t");
  await m.getPool(wrong).withConnection((c) =>
    c.run("INSERT INTO t VALUES (?, 'misplaced')", [id])
  );
  assert.equal((await m.verifyPlacement()).misplaced, 1);
  const repaired = await m.repairPlacement();
  assert.equal(repaired.moved, 1);
  assert.deepStrictEqual(await m.select("t", { key: id }), [{ id, v: "misplaced" }]);
  assert.equal((await m.verifyPlacement()).misplaced, 0);
});

Deno.test("remote: insertMany is all or nothing across servers; a batch cut past its commit point is completed by the next client", async () => {
  await using sqld = await servers(4);
  const urls = sqld.map((s) => s.url);
  const rows = kids(60);
  let victim = -1;
  let missing = 0;
  {
    await using m = new ShardManager({ shards: urls, pool: quiet });
    const { coordinator, smallest, perShard } = roles(m, rows);
    assert.notEqual(coordinator, smallest);
    victim = smallest;
    missing = perShard[victim] as number;
    await setUpTrap(m, victim);
    // Before the commit point (a row refused by a constraint): nothing anywhere.
    await assert.rejects(m.insertMany("kids", [...rows, { id: 1, parent: 1, note: "dup" }]));
    assert.equal(await m.count("kids"), 0);
    // Past it (the victim's COMMIT fails): every other shard has its part; the redo waits.
    const error = await m.insertMany("kids", rows).catch((e) => e);
    assert.ok(error instanceof BatchPendingError, String(error));
    assert.equal(error.shardId, victim);
    assert.equal(await m.count("kids"), rows.length - missing);
    await setParent(m, victim, true);
  }
  {
    // A batch this young may be one a live client is still writing: left alone.
    await using m = new ShardManager({ shards: urls, pool: quiet });
    await m.ready();
    assert.equal(m.batchRecovery?.batches, 0);
    assert.equal(await m.count("kids"), rows.length - missing);
  }
  setRemoteBatchAgeForTests(0);
  try {
    await using m = new ShardManager({ shards: urls, pool: quiet });
    await m.ready();
    assert.deepStrictEqual(m.batchRecovery?.replayed.map((r) => [r.shard, r.rows]), [[
      victim,
      missing,
    ]]);
    const back = await m.select("kids", { orderBy: "id" });
    assert.deepStrictEqual(back.map((r) => ({ ...r })), rows);
  } finally {
    setRemoteBatchAgeForTests(REMOTE_BATCH_AGE_MS);
  }
});

Deno.test("remote: a token the server refuses, and a server that is not sqld, fail the first call with typed errors naming the shard and URL", async () => {
  const keys = await jwtKeys();
  const otherKeys = await jwtKeys();
  await using secured = await startSqld({ auth: keys });
  await using open = await startSqld();
  const good = await keys.token();
  await using ok = new ShardManager({
    shards: [{ url: open.url }, { url: secured.url, authToken: good }],
    pool: quiet,
  });
  await ok.createTable("t", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
  await ok.insertMany("t", Array.from({ length: 20 }, (_, i) => ({ id: i })));
  assert.equal(await ok.count("t"), 20);
  for (const authToken of [await otherKeys.token(), undefined]) {
    await using refused = new ShardManager({
      shards: [open.url, authToken === undefined ? secured.url : { url: secured.url, authToken }],
      pool: { ...quiet, timeoutMs: 2_000 },
    });
    const error = await refused.count("t").catch((e) => e);
    assert.ok(error instanceof ShardUnavailableError, String(error));
    assert.equal(error.shardId, 1);
    assert.equal(error.url, secured.url);
    assert.match(error.message, /authToken/);
  }
  // An HTTP server that is not sqld.
  await using notSqld = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("not here", { status: 404 }),
  );
  const port = notSqld.addr.port;
  for (const url of [`ws://127.0.0.1:${port}`, `http://127.0.0.1:${port}`]) {
    await using wrong = new ShardManager({ shards: [url], pool: { ...quiet, timeoutMs: 2_000 } });
    const error = await wrong.ready().catch((e) => e);
    assert.ok(error instanceof ShardUnavailableError, `${url}: ${error}`);
    assert.equal(error.shardId, 0);
    assert.equal(error.url, url);
    assert.match(error.message, /not as a libSQL server/);
  }
});

Deno.test("remote: a server that stops answering fails its calls with ShardUnavailableError within timeoutMs; others answer", async () => {
  await using sqld = await servers(2);
  await using m = new ShardManager({
    shards: sqld.map((s) => s.url),
    pool: { ...quiet, timeoutMs: 400 },
  });
  await m.createTable("t", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
  await m.insertMany("t", Array.from({ length: 20 }, (_, i) => ({ id: i })));
  const on = (shard: number) =>
    Array.from({ length: 20 }, (_, i) => i).find((id) => m.getShardId(id, "t") === shard) as number;
  await (sqld[1] as SqldServer).pause();
  try {
    const started = performance.now();
    const error = await m.select("t", { key: on(1) }).catch((e) => e);
    const waited = performance.now() - started;
    assert.ok(error instanceof ShardUnavailableError, String(error));
    assert.equal(error.shardId, 1);
    assert.ok(waited < 400 + 600, `waited ${waited} ms`);
    assert.deepStrictEqual(await m.select("t", { key: on(0) }), [{ id: on(0) }]);
  } finally {
    (sqld[1] as SqldServer).resume();
  }
  assert.deepStrictEqual(await m.select("t", { key: on(1) }), [{ id: on(1) }]);
});

Deno.test("remote: SIGKILL of a server under load loses no acknowledged row", async () => {
  await using sqld = await servers(3);
  await using m = new ShardManager({
    shards: sqld.map((s) => s.url),
    pool: { ...quiet, timeoutMs: 2_000, maxConnections: 4 },
  });
  await m.createTable("t", { id: "INTEGER PRIMARY KEY", v: "TEXT" }, { shardKey: "id" });
  const acknowledged: number[] = [];
  let next = 0;
  let killed = false;
  const writer = async () => {
    while (next < 600) {
      const id = next++;
      if (id === 200 && !killed) {
        killed = true;
        await (sqld[1] as SqldServer).kill();
      }
      try {
        await m.insert("t", { id, v: `v${id}` });
        acknowledged.push(id);
      } catch (error) {
        assert.ok(error instanceof ShardUnavailableError, String(error));
        assert.equal(error.shardId, 1);
      }
    }
  };
  await Promise.all([writer(), writer(), writer(), writer()]);
  await (sqld[1] as SqldServer).restart();
  const stored = new Set((await m.select("t", { columns: ["id"] })).map((r) => r.id));
  for (const id of acknowledged) assert.ok(stored.has(id), `acknowledged row ${id} is there`);
  assert.ok(acknowledged.length > 300, `${acknowledged.length} acknowledged`);
  assert.ok(acknowledged.length < 600, "the down shard refused some writes");
});
