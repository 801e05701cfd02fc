import assert from "node:assert/strict";
import fc from "fast-check";
import { parseShardFileName, scanLayout, shardFileName, shardFilePath } from "../src/api/layout.ts";

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

Deno.test("scanLayout sorts a directory's entries by what they are", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const names = [
      "shard_10.db",
      "shard_2.db",
      "shard_0.db",
      "shard_0.db-wal",
      "shard_01.db",
      "shard_1.db.lock",
      "shardlite.json",
      "reshard.json",
      "shard_1.db.restore-tmp",
    ];
    for (const name of names) await Deno.writeTextFile(`${dir}/${name}`, "");
    const scan = scanLayout(dir, 3);
    assert.deepEqual(scan.names, [...names].sort());
    assert.deepEqual([...scan.shardIds].sort((a, b) => a - b), [0, 2, 10]);
    assert.deepEqual(scan.extra, [{ name: "shard_10.db", shardId: 10 }]);
    assert.deepEqual(scan.leftovers, ["shard_1.db.restore-tmp"]);
    assert.throws(() => scanLayout(`${dir}/missing`, 3), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
