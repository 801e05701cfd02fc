/**
 * The conformance run of `workers: 2`: the manager, insertMany, batch, reshard, backup and
 * fault suites run again, the same bodies, with every manager that names no `workers`
 * running its shards in two module Workers, each test named `[workers] ...`.
 *
 * ./workers.ts must stay the first import: it sets the default before the test modules
 * below are evaluated (and register their tests).
 */

import "./workers.ts";
import "../manager_test.ts";
import "../insert_many_test.ts";
import "../batch_test.ts";
import "../reshard_test.ts";
import "../backup_test.ts";
import "../faults_test.ts";
import "../upsert_test.ts";
import "../group_by_test.ts";
import "../iterate_test.ts";
import "../migrations_test.ts";
import "../open_shards_test.ts";
import "../abort_test.ts";
import "../fairness_test.ts";
import "../keys_test.ts";
