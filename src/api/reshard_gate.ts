/**
 * A reshard (or placement repair) run as an exclusive operation of its manager: the
 * admission gate held, the operations in flight drained, every batch settled, then the
 * move itself (`reshard.ts`), the manager switching to the new layout at its commit.
 *
 * @module
 */

import { ReshardError } from "../errors.ts";
import type { BatchRecovery } from "../routing/batches.ts";
import { CURRENT_KEY_FORM } from "../routing/key_column.ts";
import {
  sameLayout,
  type ShardingStrategy,
  strategyFromDescriptor,
} from "../routing/strategies.ts";
import { fileExists } from "./directory.ts";
import { shardFilePath } from "./layout.ts";
import type { ManagerParts } from "./parts.ts";
import type { RepairReport } from "./placement.ts";
import {
  newPlan,
  RESHARD_PLAN_FILE,
  type ReshardOptions,
  type ReshardPlan,
  type ReshardReport,
  runReshard,
} from "./reshard.ts";
import { type ShardMap, writeJsonAtomicAsync, writeShardMap } from "./shard_map.ts";
import { prepareRemoteReshard, type RemoteReshard } from "./remote_reshard.ts";
import { directoryUsers, liveSharedUsers } from "./directory_lock.ts";

/** Opens the directory if needed; refuses after shutdown and while a reshard runs. */
async function exclusive(parts: ManagerParts): Promise<void> {
  if (parts.admission.isClosed) throw parts.admission.closedError();
  await parts.admission.startOpening();
  if (parts.admission.isHeld) {
    throw new ReshardError(parts.dbDir, "a reshard is already running");
  }
}

/** `ShardManager.reshard(to)`: starts a reshard to `to`, or resumes the pending one. */
export async function reshard(
  parts: ManagerParts,
  to: ShardingStrategy,
  options: ReshardOptions,
): Promise<ReshardReport> {
  await exclusive(parts);
  const pending = parts.admission.pending;
  if (pending !== null && !sameLayout(pending.to, to.describe())) {
    throw new ReshardError(
      parts.dbDir,
      `an unfinished reshard to ${JSON.stringify(pending.to)} must be resumed (or rolled ` +
        `back with abortReshard()) before another one starts`,
    );
  }
  if (
    pending === null && sameLayout(parts.strategy.describe(), to.describe()) &&
    parts.tables.keyForm === CURRENT_KEY_FORM
  ) {
    const empty: Record<string, { scanned: number; moved: number }> = {};
    for (const table of parts.tables.tableNames) empty[table] = { scanned: 0, moved: 0 };
    return {
      from: to.describe(),
      to: to.describe(),
      tables: empty,
      scanned: 0,
      moved: 0,
      resumed: false,
      removedFiles: [],
      durationMs: 0,
    };
  }
  return await runGated(
    parts,
    pending ?? newPlan(parts.tables.current as ShardMap, parts.strategy, to),
    to,
    options,
    pending !== null,
  );
}

/** `ShardManager.abortReshard()`: rolls the pending reshard back (or finishes a committed one). */
export async function abortReshard(
  parts: ManagerParts,
  options: ReshardOptions,
  resume: (to: ShardingStrategy) => Promise<ReshardReport>,
): Promise<ReshardReport> {
  await parts.admission.startOpening();
  const pending = parts.admission.pending;
  if (pending === null) throw new ReshardError(parts.dbDir, "there is no unfinished reshard");
  if (pending.state === "committed") return await resume(strategyFromDescriptor(pending.to));
  const back = strategyFromDescriptor(pending.from);
  const plan = newPlan(
    parts.tables.current as ShardMap,
    parts.strategy,
    back,
    pending.mode ?? "reshard",
  );
  plan.toKeyForm = pending.fromKeyForm ?? 1;
  plan.span = Math.max(plan.span, pending.span);
  plan.scan = plan.span;
  return await runGated(parts, plan, back, options, false);
}

/** `ShardManager.repairPlacement()`: a reshard to the same layout, or the pending repair. */
export async function repairPlacement(
  parts: ManagerParts,
  options: ReshardOptions,
): Promise<RepairReport> {
  await exclusive(parts);
  const pending = parts.admission.pending;
  if (pending !== null && pending.mode !== "repair") {
    throw new ReshardError(
      parts.dbDir,
      `an unfinished reshard to ${JSON.stringify(pending.to)} must be resumed (or rolled ` +
        `back with abortReshard()) before placement can be repaired`,
    );
  }
  const strategy = parts.strategy;
  const plan = pending ??
    newPlan(parts.tables.current as ShardMap, strategy, strategy, "repair");
  const report = await runGated(parts, plan, strategy, options, pending !== null);
  return {
    scanned: report.scanned,
    moved: report.moved,
    conflicts: plan.conflicts ?? [],
    unroutable: plan.unroutable ?? [],
    resumed: report.resumed,
    durationMs: report.durationMs,
  };
}

/** Runs `plan` with the gate held: operations wait, then see the new layout. */
async function runGated(
  parts: ManagerParts,
  plan: ReshardPlan,
  to: ShardingStrategy,
  options: ReshardOptions,
  resumed: boolean,
): Promise<ReshardReport> {
  const { dbDir, admission } = parts;
  const release = admission.hold();
  admission.pending = plan;
  // Whether the plan is durable (resumable) yet; a resumed one always is.
  let persisted = resumed;
  let remoteRun: RemoteReshard | undefined;
  try {
    // Let operations already admitted finish; new ones wait at the gate.
    const draining = admission.drain();
    if (draining !== undefined) await draining;
    // Shards on servers: other clients cannot be counted, so they are fenced instead.
    const remote = parts.remote === null
      ? undefined
      : await prepareRemoteReshard(parts, parts.remote, plan, to, options);
    remoteRun = remote;
    // Another manager of this process on the directory would keep routing by the old
    // layout, and its batches in flight are not for recovery to touch.
    if (remote === undefined && directoryUsers(dbDir) > 1) {
      throw new ReshardError(
        dbDir,
        `another ShardManager in this process has the directory open; shut it down ` +
          `first (it would keep routing by the old layout)`,
      );
    }
    // Under shared access, other isolates and processes would keep routing by the old
    // layout: a reshard or repair needs the directory alone.
    if (remote === undefined && parts.access === "shared") {
      const others = liveSharedUsers(dbDir).filter((u) => u.id !== parts.directory.userId);
      if (others.length > 0) {
        throw new ReshardError(
          dbDir,
          `the directory is shared with ${others.length} other live user(s) (pid ${
            [...new Set(others.map((u) => u.pid))].join(", ")
          }); stop them first: moving rows needs the directory alone. Nothing was moved.`,
        );
      }
    }
    // No batch bookkeeping may outlive the layout it names: with nothing in flight,
    // finish or clear every batch (of any router over this manager) first.
    await parts.router.flushBatches();
    await parts.directory.recoverBatches();
    const waiting = parts.directory.batchRecovery?.pending ?? [];
    if (waiting.length > 0) {
      if (!persisted) await remote?.undo();
      const first = waiting[0] as BatchRecovery["pending"][number];
      throw new ReshardError(
        dbDir,
        `${waiting.length} insertMany batch part(s) cannot be completed (batch ` +
          `${first.batch}, shard ${first.shard}: ${first.error}); a reshard would route ` +
          `them by the wrong layout. Repair shard ${first.shard} (see ` +
          `manager.batchRecovery), then reshard again.`,
      );
    }
    const fromCount = parts.strategy.numShards;
    const local: RemoteReshard["context"] = {
      // Asynchronous file operations: the fsync after every batch stays off the event loop.
      writePlan: (p) => writeJsonAtomicAsync(`${dbDir}/${RESHARD_PLAN_FILE}`, p),
      deletePlan: () => Deno.remove(`${dbDir}/${RESHARD_PLAN_FILE}`),
      commitMap: (map) => {
        writeShardMap(dbDir, map);
        parts.tables.replace(map);
        parts.useStrategy(to);
      },
      removeShard: async (id) => {
        await parts.pools.remove(id);
        const removed: string[] = [];
        for (const path of [shardFilePath(dbDir, id), `${shardFilePath(dbDir, id)}-wal`]) {
          try {
            await Deno.remove(path);
            removed.push(path);
          } catch (error) {
            if (!(error instanceof Deno.errors.NotFound)) throw error;
          }
        }
        return removed;
      },
    };
    const steps = remote?.context ?? local;
    const report = await runReshard(
      {
        dbDir,
        map: parts.tables.current as ShardMap,
        pool: (id) => parts.getPool(id),
        writePlan: async (p) => {
          await steps.writePlan(p);
          persisted = true;
        },
        deletePlan: () => steps.deletePlan(),
        commitMap: (map) => steps.commitMap(map),
        removeShard: (id) => steps.removeShard(id),
      },
      plan,
      to,
      fromCount,
      options,
      resumed,
    );
    admission.pending = null;
    return report;
  } catch (error) {
    // Failed before its plan was recorded: nothing moved, so the fence comes down.
    if (!persisted) await remoteRun?.undo();
    throw error;
  } finally {
    // A failed or aborted run leaves its plan pending (resumable); ops stay refused.
    const recorded = parts.remote === null
      ? fileExists(`${dbDir}/${RESHARD_PLAN_FILE}`)
      : persisted;
    if (admission.pending !== null && !recorded) admission.pending = null;
    release();
  }
}
