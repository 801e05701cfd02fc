/**
 * The conformance run of `nativeDriver`: the pool, manager, crash and fault tests (every
 * test file that builds pools or managers) run again, the same bodies, with node:sqlite as
 * the default driver, each named `[native] ...`. The files themselves run against the
 * default driver (node-sqlite3-wasm) as usual.
 *
 * ./native.ts must stay the first import: it switches the driver before the test modules
 * below are evaluated (and register their tests).
 */

import "./native.ts";
import "../pool_test.ts";
import "../pool_model_test.ts";
import "../pool_crash_test.ts";
import "../manager_test.ts";
import "../insert_many_test.ts";
import "../upsert_test.ts";
import "../batch_test.ts";
import "../reshard_test.ts";
import "../faults_test.ts";
import "../reliability_crash_test.ts";
import "../overload_test.ts";
import "../open_shards_test.ts";
import "../group_by_test.ts";
import "../keys_test.ts";
import "../keys_property_test.ts";
import "../placement_test.ts";
import "../migrations_test.ts";
import "../backup_test.ts";
import "../single_statement_test.ts";
import "../fuzz_values_test.ts";
import "../cli_test.ts";
import "../iterate_test.ts";
import "../abort_test.ts";
import "../fairness_test.ts";
