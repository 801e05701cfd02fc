/**
 * Side effect: managers of this process that name no `workers` run their shards in 2
 * module Workers (with the driver under test in them), and every test registered from now
 * on is named `[workers] ...`. Imported first by tests/conformance/workers_test.ts (after
 * ./native.ts in workers_native_test.ts). Managers with a custom driver (the fault
 * harness's fake drivers) or shared access stay in-thread: workers cannot host them.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ShardManager } from "../../mod.ts";
import { setDefaultWorkersForTests } from "../../src/workers/options.ts";
import { tempDir, testDriver } from "../helpers.ts";
import { prefixTests } from "./as_driver.ts";

setDefaultWorkersForTests(2);
prefixTests("workers");

Deno.test("managers that name no workers run their shards in 2 workers", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 4, dbDir: dir.path });
  assert.equal(manager.workers, 2);
  assert.equal(manager.driver, testDriver());
  await manager.createTable("t", { id: "INTEGER PRIMARY KEY" }, { shardKey: "id" });
  assert.equal(manager.workerStats?.started, 2);
});
