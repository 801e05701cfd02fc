/**
 * Side effect: managers of this process that name no `workers` run their shards in 2
 * module Workers (node-sqlite3-wasm in them, the default driver), and every test
 * registered from now on is named `[workers] ...`. Imported first by
 * tests/conformance/workers_test.ts. Managers with a custom driver (the fault harness's
 * fake drivers) or shared access stay in-thread: workers cannot host them.
 *
 * @module
 */

import { setDefaultWorkersForTests } from "../../src/workers/options.ts";
import { prefixTests } from "./as_driver.ts";

setDefaultWorkersForTests(2);
prefixTests("workers");
