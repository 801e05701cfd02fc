/**
 * The placement part of `shardlite check`: rows on a shard their key does not map to
 * are a problem; with `--repair` they are moved, and what could not move is reported.
 *
 * @module
 */

import type { ShardManager } from "../api/manager.ts";
import type { CheckFinding } from "./check.ts";

/** What `check` reports about placement (in `--json` output). */
export interface PlacementFindings {
  /** Rows scanned. */
  scanned: number;
  /** Rows found on the wrong shard (before any repair). */
  misplaced: number;
  /** Rows moved by `--repair`. */
  moved: number;
  /** Misplaced rows left in place because their key already exists on their shard. */
  conflicts: number;
  /** Rows whose key cannot be routed at all. */
  unroutable: number;
}

function describeRow(row: { table: string; shard: number; key: unknown }): string {
  const key = typeof row.key === "bigint" ? `${row.key}` : JSON.stringify(row.key);
  return `${row.table} key ${key} on shard ${row.shard}`;
}

/** Verifies placement (and repairs it when asked), adding findings; returns the figures. */
export async function checkPlacement(
  manager: ShardManager,
  repair: boolean,
  problems: CheckFinding[],
  warnings: CheckFinding[],
): Promise<PlacementFindings> {
  const report = await manager.verifyPlacement({ maxRows: 5 });
  const findings: PlacementFindings = {
    scanned: report.scanned,
    misplaced: report.misplaced,
    moved: 0,
    conflicts: 0,
    unroutable: report.unroutable.length,
  };
  if (report.unroutable.length > 0) {
    warnings.push({
      kind: "misplaced-rows",
      message: `${report.unroutable.length} row(s) have a shard key that routes nowhere (e.g. ` +
        `${describeRow(report.unroutable[0]!)}: ${report.unroutable[0]!.reason}); no key-based ` +
        `call reaches them. Fix or delete them by hand.`,
    });
  }
  if (report.misplaced === 0) return findings;
  if (!repair) {
    const examples = report.rows.map((r) => `${describeRow(r)} belongs on ${r.expectedShard}`);
    const twins = report.rows.filter((r) => r.duplicate).length;
    problems.push({
      kind: "misplaced-rows",
      message: `${report.misplaced} row(s) are on a shard their key does not map to (${
        examples.join("; ")
      }${report.truncated ? "; ..." : ""}): key-based calls do not find them${
        twins > 0 ? `, and ${twins} of those listed duplicate a key on its own shard` : ""
      }. Run "deno task shardlite check <dbDir> --repair" to move them.`,
    });
    return findings;
  }
  const repaired = await manager.repairPlacement();
  findings.moved = repaired.moved;
  findings.conflicts = repaired.conflicts.length;
  warnings.push({
    kind: "placement-repaired",
    message: `moved ${repaired.moved} misplaced row(s) to their shard.`,
  });
  if (repaired.conflicts.length > 0) {
    const first = repaired.conflicts[0]!;
    problems.push({
      kind: "placement-conflicts",
      shardId: first.shard,
      message: `${repaired.conflicts.length} misplaced row(s) could not move because their ` +
        `shard already holds a row with the same unique value (e.g. ${
          describeRow(first)
        }, rowid ${first.rowid}, belongs on ${first.expectedShard}: ${first.error}). They are ` +
        `still where they were; merge or delete the duplicates by hand, then run check again.`,
    });
  }
  return findings;
}
