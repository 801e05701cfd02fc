// maxOpenShards bounds the shard files (and page caches) a manager keeps open; the
// least recently used idle shards are closed and reopen on their next use.
import assert from "node:assert/strict";
import fc from "fast-check";
import { ShardManager } from "../mod.ts";
import { openShardFiles } from "../src/pool/shard_file.ts";
import { tempDir } from "./helpers.ts";

const USERS = { id: "INTEGER PRIMARY KEY", name: "TEXT" };

function filesOpenUnder(dir: string): number {
  const real = Deno.realPathSync(dir);
  return openShardFiles().filter((f) => Deno.realPathSync(f.path).startsWith(real)).length;
}

Deno.test("maxOpenShards: 12 shards through 3 open files, every answer unchanged", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 12, dbDir: dir.path, maxOpenShards: 3 });
  await manager.createTable("users", USERS, { shardKey: "id" });
  const rows = Array.from({ length: 600 }, (_, i) => ({ id: i + 1, name: `u${i + 1}` }));
  // insertMany holds every shard at once: the bound is exceeded while they are busy, and
  // kept again once the call is done.
  await manager.insertMany("users", rows);
  assert.ok(manager.openShards.open <= 3, `${manager.openShards.open} open after insertMany`);
  for (const { id, name } of rows.slice(0, 120)) {
    assert.deepEqual(await manager.select("users", { key: id }), [{ id, name }]);
    assert.ok(manager.openShards.open <= 3, `${manager.openShards.open} open after key ${id}`);
  }
  assert.ok(manager.openShards.evictions > 0);
  assert.equal(await manager.count("users"), 600);
  assert.equal(await manager.delete("users", { where: { name: "u7" } }), 1);
  assert.equal(await manager.count("users"), 599);
  assert.equal(manager.openShards.max, 3);
  // Closing the idle ones leaves no file of this directory open in the process.
  await manager.closeIdleShards();
  assert.equal(manager.openShards.open, 0);
  assert.equal(filesOpenUnder(dir.path), 0);
  // And they come back on use.
  assert.deepEqual(await manager.select("users", { key: 8 }), [{ id: 8, name: "u8" }]);
  assert.equal(filesOpenUnder(dir.path), 1);
});

Deno.test("property: random operations through 2 open files of 6 agree with a model", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.oneof(
          fc.record({ op: fc.constant("put" as const), id: fc.integer({ min: 1, max: 40 }) }),
          fc.record({ op: fc.constant("del" as const), id: fc.integer({ min: 1, max: 40 }) }),
          fc.record({ op: fc.constant("many" as const), from: fc.integer({ min: 41, max: 400 }) }),
          fc.record({ op: fc.constant("count" as const) }),
        ),
        { maxLength: 40 },
      ),
      async (ops) => {
        await using dir = await tempDir();
        await using manager = new ShardManager({ numShards: 6, dbDir: dir.path, maxOpenShards: 2 });
        await manager.createTable("t", USERS, { shardKey: "id" });
        const model = new Set<number>();
        for (const step of ops) {
          if (step.op === "put" && !model.has(step.id)) {
            await manager.insert("t", { id: step.id, name: "p" });
            model.add(step.id);
          } else if (step.op === "del") {
            assert.equal(
              await manager.delete("t", { key: step.id }),
              model.delete(step.id) ? 1 : 0,
            );
          } else if (step.op === "many") {
            const ids = [step.from, step.from + 400, step.from + 800].filter((id) =>
              !model.has(id)
            );
            await manager.insertMany("t", ids.map((id) => ({ id, name: "m" })));
            for (const id of ids) model.add(id);
          } else if (step.op === "count") {
            assert.equal(await manager.count("t"), model.size);
          }
          assert.ok(manager.openShards.open <= 6);
        }
        const stored = (await manager.select("t", { columns: ["id"], orderBy: "id" }))
          .map((r) => r.id);
        assert.deepEqual(stored, [...model].sort((a, b) => a - b));
      },
    ),
    { numRuns: 20 },
  );
});

Deno.test("cacheSizeKiB sets each handle's page cache; bad bounds are refused", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({
    numShards: 2,
    dbDir: dir.path,
    pool: { cacheSizeKiB: 256 },
  });
  await manager.createTable("users", USERS, { shardKey: "id" });
  const [setting] = await manager.query(1, "PRAGMA cache_size");
  assert.deepEqual(setting, { cache_size: -256 });
  assert.throws(
    () => new ShardManager({ numShards: 2, dbDir: dir.path, pool: { cacheSizeKiB: 0 } }),
    (e: unknown) =>
      e instanceof RangeError && /cacheSizeKiB must be a positive integer/.test(e.message),
  );
  assert.throws(
    () => new ShardManager({ numShards: 2, dbDir: dir.path, maxOpenShards: 0 }),
    (e: unknown) =>
      e instanceof RangeError && /maxOpenShards must be a positive integer/.test(e.message),
  );
});
