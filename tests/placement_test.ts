/**
 * Directories written before keys were routed by their stored value: they keep their
 * key form, their misplaced rows are found and moved, and a reshard moves them to form 2.
 */

import assert from "node:assert/strict";
import { HashStrategy, ReshardError, ShardManager } from "../mod.ts";
import { tempDir } from "./helpers.ts";

const OLD = new HashStrategy(4);

/** Keys whose old routing (by JavaScript type) put the decimal string elsewhere. */
const SPLIT = Array.from({ length: 200 }, (_, i) => i + 1).filter((k) =>
  OLD.getShardId(k) !== OLD.getShardId(String(k))
);

/**
 * Builds a directory as the previous version left it: a map without `keyForm` or key
 * types, and rows placed by JavaScript type — `id` 7 as a number on hash(7), and rows
 * inserted as strings on hash("8"), where SQLite stored the integer 8.
 */
async function legacyDirectory(dir: string) {
  const [asNumber, asString, twice] = SPLIT as [number, number, number];
  const setup = new ShardManager({ numShards: 4, dbDir: dir });
  await setup.createTable("users", { id: "INTEGER PRIMARY KEY", name: "TEXT" }, {
    shardKey: "id",
  });
  const put = (shard: number, id: number, name: string) =>
    setup.getPool(shard).withConnection((c) =>
      c.run("INSERT INTO users (id, name) VALUES (?, ?)", [id, name])
    );
  await put(OLD.getShardId(asNumber), asNumber, "number");
  await put(OLD.getShardId(String(asString)), asString, "string");
  // The same primary key twice: once inserted as a number, once as its string.
  await put(OLD.getShardId(twice), twice, "twice-number");
  await put(OLD.getShardId(String(twice)), twice, "twice-string");
  await setup.shutdown();
  const mapPath = `${dir}/shardlite.json`;
  const map = JSON.parse(Deno.readTextFileSync(mapPath));
  delete map.keyForm;
  delete map.tables.users.keyType;
  Deno.writeTextFileSync(mapPath, JSON.stringify(map));
  return { asNumber, asString, twice };
}

Deno.test("an old directory keeps key form 1 and its rows where they are", async () => {
  await using dir = await tempDir();
  const { asNumber } = await legacyDirectory(dir.path);
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  assert.deepEqual(await manager.select("users", { key: asNumber }), [
    { id: asNumber, name: "number" },
  ]);
  assert.equal(manager.keyForm, 1);
  const map = JSON.parse(Deno.readTextFileSync(`${dir.path}/shardlite.json`));
  assert.equal(map.keyForm, undefined);
  assert.deepEqual(map.tables.users.keyType, {
    declaredType: "INTEGER",
    rowidAlias: true,
    strictTable: false,
  });
  // A new directory records form 2.
  await using fresh = await tempDir();
  await using other = new ShardManager({ numShards: 4, dbDir: fresh.path });
  await other.ready();
  assert.equal(other.keyForm, 2);
});

Deno.test("verifyPlacement finds rows on the wrong shard, and keys duplicated across shards", async () => {
  await using dir = await tempDir();
  const { asString, twice } = await legacyDirectory(dir.path);
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  const report = await manager.verifyPlacement();
  assert.equal(report.scanned, 4);
  assert.equal(report.misplaced, 2);
  assert.equal(report.truncated, false);
  assert.deepEqual(report.tables.users, { scanned: 4, misplaced: 2, unroutable: 0 });
  const byKey = new Map(report.rows.map((r) => [r.key, r]));
  assert.deepEqual(
    { ...byKey.get(asString), rowid: 0 },
    {
      table: "users",
      shard: OLD.getShardId(String(asString)),
      expectedShard: OLD.getShardId(asString),
      key: asString,
      rowid: 0,
      duplicate: false,
    },
  );
  assert.equal(byKey.get(twice)?.duplicate, true);
  assert.equal(byKey.get(twice)?.expectedShard, OLD.getShardId(twice));
  assert.equal((await manager.verifyPlacement({ maxRows: 1 })).rows.length, 1);
});

Deno.test("repairPlacement moves misplaced rows and leaves conflicts where they are", async () => {
  await using dir = await tempDir();
  const { asString, twice } = await legacyDirectory(dir.path);
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  const report = await manager.repairPlacement();
  assert.equal(report.moved, 1);
  assert.equal(report.conflicts.length, 1);
  const [conflict] = report.conflicts;
  assert.equal(conflict?.key, twice);
  assert.equal(conflict?.shard, OLD.getShardId(String(twice)));
  assert.equal(conflict?.expectedShard, OLD.getShardId(twice));
  assert.match(conflict?.error ?? "", /UNIQUE constraint failed: users\.id/);
  assert.deepEqual(await manager.select("users", { key: asString }), [
    { id: asString, name: "string" },
  ]);
  // Nothing dropped: the conflicting row is still on its shard, next to nothing else.
  assert.equal(await manager.count("users"), 4);
  const after = await manager.verifyPlacement();
  assert.equal(after.misplaced, 1);
  assert.equal(after.rows[0]?.key, twice);
  // The map is unchanged, and so is its key form.
  assert.equal(manager.keyForm, 1);
  assert.equal(manager.pendingReshard, null);
});

Deno.test("a repair cut short is resumable: operations are refused until it completes", async () => {
  await using dir = await tempDir();
  const { asString } = await legacyDirectory(dir.path);
  const controller = new AbortController();
  {
    await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
    await assert.rejects(
      manager.repairPlacement({
        batchSize: 1,
        signal: controller.signal,
        onProgress: () => controller.abort(),
      }),
    );
    assert.equal(manager.pendingReshard?.mode, "repair");
  }
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  const refused = await manager.count("users").then(() => null, (e: unknown) => e);
  assert.ok(refused instanceof ReshardError);
  assert.match(refused.message, /unfinished placement repair.*repairPlacement\(\)/);
  const report = await manager.repairPlacement();
  assert.equal(report.resumed, true);
  assert.equal(report.conflicts.length, 1);
  assert.deepEqual(await manager.select("users", { key: String(asString) }), [
    { id: asString, name: "string" },
  ]);
  assert.equal(await manager.count("users"), 4);
});

Deno.test("a reshard moves an old directory to key form 2", async () => {
  await using dir = await tempDir();
  // TEXT keys that look like integers: form 1 hashed them as text, form 2 as integers.
  const setup = new ShardManager({ numShards: 3, dbDir: dir.path });
  await setup.createTable("docs", { slug: "TEXT PRIMARY KEY" }, { shardKey: "slug" });
  await setup.shutdown();
  const mapPath = `${dir.path}/shardlite.json`;
  const map = JSON.parse(Deno.readTextFileSync(mapPath));
  delete map.keyForm;
  Deno.writeTextFileSync(mapPath, JSON.stringify(map));
  await using manager = new ShardManager({ numShards: 3, dbDir: dir.path });
  const slugs = Array.from({ length: 60 }, (_, i) => String(i * 7));
  await manager.insertMany("docs", slugs.map((slug) => ({ slug })));
  assert.equal(manager.keyForm, 1);
  assert.equal((await manager.verifyPlacement()).misplaced, 0);
  const report = await manager.reshard(3); // same layout: only the key form changes
  assert.ok(report.moved > 0);
  assert.equal(manager.keyForm, 2);
  assert.equal(JSON.parse(Deno.readTextFileSync(mapPath)).keyForm, 2);
  assert.equal((await manager.verifyPlacement()).misplaced, 0);
  for (const slug of slugs) {
    assert.deepEqual(await manager.select("docs", { key: Number(slug) }), [{ slug }]);
  }
  assert.equal((await manager.reshard(3)).moved, 0); // nothing left to do
});

Deno.test("rows whose key routes nowhere: listed, left by a repair, refused by a reshard up front", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 3, dbDir: dir.path });
  await manager.createTable("t", { k: "TEXT", v: "TEXT" }, { shardKey: "k" });
  await manager.insertMany("t", [{ k: "a", v: "1" }, { k: "b", v: "2" }]);
  await manager.getPool(1).withConnection((c) =>
    c.run("INSERT INTO t (k, v) VALUES (NULL, 'raw')")
  );
  const report = await manager.verifyPlacement();
  assert.equal(report.unroutable.length, 1);
  assert.equal(report.unroutable[0]?.shard, 1);
  assert.match(report.unroutable[0]?.reason ?? "", /cannot be NULL/);
  const repaired = await manager.repairPlacement();
  assert.equal(repaired.unroutable.length, 1);
  assert.equal(repaired.moved, 0);
  const refused = await manager.reshard(4).then(() => null, (e: unknown) => e);
  assert.ok(refused instanceof ReshardError);
  assert.match(refused.message, /routes nowhere .*Nothing was moved/);
  // No plan was left behind: the directory keeps working on its old layout.
  assert.equal(manager.pendingReshard, null);
  assert.equal(manager.numShards, 3);
  assert.equal(await manager.count("t"), 3);
});
