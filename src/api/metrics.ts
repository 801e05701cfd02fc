/**
 * A manager's figures in the Prometheus text exposition format (version 0.0.4): one
 * `# HELP` and `# TYPE` per metric, then one sample per shard, labelled `shard="<id>"`.
 *
 * @module
 */

import type { PoolMetrics } from "../pool/pool.ts";
import { STATEMENT_TIME_BUCKETS, type StatementTimes } from "../pool/query_monitor.ts";

/** What the manager as a whole adds to its shards' figures. */
export interface ManagerFigures {
  /** Shard files open now. */
  openShards: number;
  /** The bound on open shard files (`maxOpenShards`). */
  maxOpenShards: number;
  /** Pools closed to respect the bound. */
  evictions: number;
}

interface PerShard {
  name: string;
  type: "counter" | "gauge";
  help: string;
  value: (shard: PoolMetrics) => number;
}

/** Every per-shard series but the histogram, in output order. */
const PER_SHARD: readonly PerShard[] = [
  {
    name: "shardlite_leases_total",
    type: "counter",
    help: "Leases handed out by the shard's pool.",
    value: (s) => s.leases,
  },
  {
    name: "shardlite_lease_waits_total",
    type: "counter",
    help: "Leases that had to wait for a free slot (maxConnections) before being handed out.",
    value: (s) => s.leaseWaits,
  },
  {
    name: "shardlite_lease_wait_seconds_total",
    type: "counter",
    help: "Time callers spent waiting for the leases they then got, in seconds.",
    value: (s) => s.leaseWaitMs / 1000,
  },
  {
    name: "shardlite_lease_timeouts_total",
    type: "counter",
    help: "Waits for a lease that ended in PoolTimeoutError (timeoutMs ran out).",
    value: (s) => s.leaseTimeouts,
  },
  {
    name: "shardlite_overload_refusals_total",
    type: "counter",
    help: "Lease requests refused at once with PoolOverloadedError (maxWaiting callers waiting).",
    value: (s) => s.overloaded,
  },
  {
    name: "shardlite_statements_total",
    type: "counter",
    help: "Statements run on the shard through leases: the application's, the library's own " +
      "on its behalf, and the BEGIN/COMMIT/ROLLBACK of transactions; not health checks.",
    value: (s) => s.statements,
  },
  {
    name: "shardlite_statement_errors_total",
    type: "counter",
    help: "Statements that failed: SQL errors, timeouts, broken handles.",
    value: (s) => s.statementErrors,
  },
  {
    name: "shardlite_slow_statements_total",
    type: "counter",
    help: "Statements that took at least slowQueryMs (0 while slowQueryMs is not set).",
    value: (s) => s.slowQueries,
  },
  {
    name: "shardlite_handles_replaced_total",
    type: "counter",
    help: "Broken handles on the shard file closed, to be reopened on the next statement.",
    value: (s) => s.handlesReplaced,
  },
  {
    name: "shardlite_leases_active",
    type: "gauge",
    help: "Leases handed out and not yet returned.",
    value: (s) => s.activeLeases,
  },
  {
    name: "shardlite_lease_waiters",
    type: "gauge",
    help: "Callers waiting for a lease now.",
    value: (s) => s.waiting,
  },
];

const HISTOGRAM = "shardlite_statement_duration_seconds";
const HISTOGRAM_HELP = "Time from a statement's call to its answer, in seconds, a wait for " +
  "another session's transaction included. Present when statements are timed (onQuery, " +
  "slowQueryMs or timeStatements).";

/** HELP text with `\` and newlines escaped, as the format asks. */
function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

/** A label value with `\`, `"` and newlines escaped. */
function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

function number(value: number): string {
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return Number.isNaN(value) ? "NaN" : String(value);
}

function header(lines: string[], name: string, type: string, help: string): void {
  lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
}

/**
 * Formats `shards` (figures by shard id) and the manager's own figures as Prometheus
 * text. Shards appear in id order, each once per series; a shard never used has none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatMetrics } from "./metrics.ts";
 * const text = formatMetrics(new Map(), { openShards: 0, maxOpenShards: 256, evictions: 0 });
 * assert.match(text, /^# TYPE shardlite_open_shards gauge\nshardlite_open_shards 0$/m);
 * ```
 */
export function formatMetrics(
  shards: ReadonlyMap<number, PoolMetrics>,
  manager: ManagerFigures,
): string {
  const entries = [...shards].sort(([a], [b]) => a - b);
  const label = (id: number) => `shard="${escapeLabel(String(id))}"`;
  const lines: string[] = [];
  for (const series of PER_SHARD) {
    header(lines, series.name, series.type, series.help);
    for (const [id, shard] of entries) {
      lines.push(`${series.name}{${label(id)}} ${number(series.value(shard))}`);
    }
  }
  const timed = entries.filter(([, shard]) => shard.statementTimes !== null);
  if (timed.length > 0) header(lines, HISTOGRAM, "histogram", HISTOGRAM_HELP);
  for (const [id, shard] of timed) {
    const times = shard.statementTimes as StatementTimes;
    let cumulative = 0;
    STATEMENT_TIME_BUCKETS.forEach((bound, i) => {
      cumulative += times.buckets[i] ?? 0;
      lines.push(`${HISTOGRAM}_bucket{${label(id)},le="${number(bound)}"} ${cumulative}`);
    });
    lines.push(`${HISTOGRAM}_bucket{${label(id)},le="+Inf"} ${times.count}`);
    lines.push(`${HISTOGRAM}_sum{${label(id)}} ${number(times.sumMs / 1000)}`);
    lines.push(`${HISTOGRAM}_count{${label(id)}} ${times.count}`);
  }
  header(lines, "shardlite_open_shards", "gauge", "Shard files open now in this manager.");
  lines.push(`shardlite_open_shards ${manager.openShards}`);
  header(lines, "shardlite_max_open_shards", "gauge", "The bound on open shard files.");
  lines.push(`shardlite_max_open_shards ${manager.maxOpenShards}`);
  header(
    lines,
    "shardlite_shard_evictions_total",
    "counter",
    "Idle shard pools closed to keep at most maxOpenShards shard files open.",
  );
  lines.push(`shardlite_shard_evictions_total ${manager.evictions}`);
  return `${lines.join("\n")}\n`;
}
