import assert from "node:assert/strict";
import fc from "fast-check";
import { parseShardFileName, shardFileName, shardFilePath } from "../src/api/layout.ts";

Deno.test("a shard file's name and its id map one to one", () => {
  fc.assert(
    fc.property(fc.nat(), (id) => {
      assert.equal(parseShardFileName(shardFileName(id)), id);
    }),
  );
  assert.equal(shardFilePath("/data", 7), "/data/shard_7.db");
});

Deno.test("only shard files parse to an id", () => {
  for (
    const name of [
      "shard_01.db",
      "shard_-1.db",
      "shard_1.db-wal",
      "shard_1.db.lock",
      "shard_.db",
      "shard_1.5.db",
      "shardlite.json",
      "reshard.json",
      "shard_99999999999999999999.db",
    ]
  ) {
    assert.equal(parseShardFileName(name), undefined, name);
  }
});

Deno.test("shardFileName refuses what is not a shard id", () => {
  for (const id of [-1, 1.5, Number.NaN, Infinity, 2 ** 53]) {
    assert.throws(() => shardFileName(id), RangeError, String(id));
  }
});
