/**
 * The conformance run of `workers: 2` over `nativeDriver`: the manager, insertMany, batch
 * and backup suites with node:sqlite in the workers (its online backup API included), each
 * test named `[native] [workers] ...`. The wasm default gets the longer list in
 * ./workers_test.ts.
 *
 * ./native.ts and ./workers.ts must stay the first imports, in this order.
 */

import "./native.ts";
import "./workers.ts";
import "../manager_test.ts";
import "../insert_many_test.ts";
import "../batch_test.ts";
import "../backup_test.ts";
