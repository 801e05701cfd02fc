/**
 * What a reshard of shards on servers does besides moving rows (which `reshard.ts` does
 * for every kind of shard): it reaches the servers of the new layout, fences every shard
 * so that no client writes while rows move (each shard's epoch marked "resharding", which
 * every write checks), completes crashed batches, keeps its plan on shard 0 so that any
 * client can resume it, and at the commit point writes the new map with the next epoch.
 *
 * Other clients keep reading during the move; a read may then miss a row in transit or
 * see it twice. Their writes are refused with `ShardMapMismatchError` until the reshard
 * ends, and after it until they route by the new map (they reload it on that refusal).
 *
 * @module
 */

import { ReshardError } from "../errors.ts";
import type { PooledConnection } from "../pool/connection.ts";
import type { ShardingStrategy } from "../routing/strategies.ts";
import { parseShardLocations, type RemoteShard, sameServer } from "./locations.ts";
import type { ManagerParts } from "./parts.ts";
import type { ReshardContext, ReshardOptions, ReshardPlan } from "./reshard.ts";
import { epochOf, writeRemoteMap, writeRemotePlan, writeShardEpoch } from "./remote_map.ts";
import type { ShardMap } from "./shard_map.ts";
import type { RemoteShards } from "./remote.ts";

/** A remote reshard's context for `runReshard`, and how to lift its fence on failure. */
export interface RemoteReshard {
  /** What `runReshard` calls to persist the plan and commit the map. */
  context: Pick<ReshardContext, "writePlan" | "deletePlan" | "commitMap" | "removeShard">;
  /** Lifts the fence and routes by the old servers again (the run failed before moving). */
  undo(): Promise<void>;
}

/**
 * Reaches the servers of `plan`'s span, records them in the plan, fences every shard of
 * the span, and checks that new servers hold no tables.
 */
export async function prepareRemoteReshard(
  parts: ManagerParts,
  remote: RemoteShards,
  plan: ReshardPlan,
  to: ShardingStrategy,
  options: ReshardOptions,
): Promise<RemoteReshard> {
  const { dbDir } = parts;
  const before = remote.servers;
  const target = targetServers(dbDir, before, plan, to, options);
  const span: RemoteShard[] = [];
  for (let id = 0; id < plan.span; id++) {
    const server = target[id] ?? before[id];
    if (server === undefined) {
      throw new ReshardError(dbDir, `shard ${id} of the reshard has no server`);
    }
    span.push({ ...server, shardId: id });
  }
  const urls = span.map((s) => s.url);
  if (
    plan.servers !== undefined && !plan.servers.every((url, i) => sameServer(url, urls[i] ?? ""))
  ) {
    throw new ReshardError(
      dbDir,
      `the unfinished reshard runs over ${plan.servers.join(", ")}; pass those servers ` +
        `(shards) to resume it`,
    );
  }
  plan.servers = urls;
  await remote.setServers(span);
  const epoch = epochOf(parts.tables.current as ShardMap);
  const on = <T>(id: number, fn: (c: PooledConnection) => Promise<T>): Promise<T> =>
    parts.getPool(id).withConnection(fn).catch((error) => {
      throw remote.failure(id, error) ?? error;
    });
  const stamp = async (resharding: boolean, ids: readonly number[], value = epoch) => {
    // In shard order, one transaction each: it waits for writes in flight there to end.
    for (const id of ids) {
      await on(id, (c) => c.transaction((tx) => writeShardEpoch(tx, { epoch: value, resharding })));
    }
  };
  const all = span.map((_, id) => id);
  const undo = async () => {
    await stamp(false, all).catch(() => {});
    await remote.setServers(before);
  };
  try {
    if (plan.state === "moving" && plan.progress.table === 0 && plan.progress.shard === 0) {
      // A fresh run: new servers must be empty, or their rows would be taken for shards'.
      for (let id = before.length; id < plan.span; id++) {
        const tables = await on(id, (c) =>
          c.all(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE " +
              "'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_shardlite\\_%' ESCAPE '\\'",
          ));
        if (tables.length > 0) {
          throw new ReshardError(
            dbDir,
            `the server for new shard ${id} (${urls[id]}) holds tables (${
              tables.slice(0, 5).map((t) => t["name"]).join(", ")
            }); give each new shard an empty database. Nothing was moved.`,
          );
        }
      }
    }
    await stamp(true, all);
  } catch (error) {
    await undo();
    throw error;
  }
  return {
    undo,
    context: {
      writePlan: (next) => on(0, (c) => writeRemotePlan(c, next)),
      deletePlan: () => on(0, (c) => writeRemotePlan(c, null)),
      commitMap: async (map) => {
        const next: ShardMap = {
          ...map,
          epoch: epoch + 1,
          servers: urls.slice(0, to.numShards),
        };
        // Shard 0 first: the map and its epoch in one transaction (the commit point).
        await on(0, (c) =>
          c.transaction(async (tx) => {
            await writeRemoteMap(tx, next);
            await writeShardEpoch(tx, { epoch: epoch + 1, resharding: false });
          }));
        await stamp(false, all.slice(1), epoch + 1);
        parts.tables.replace(next);
        parts.useStrategy(to);
      },
      removeShard: async (id) => {
        // The server stays (its tables empty); clients routing by the old layout are
        // refused there by its epoch.
        await parts.pools.remove(id);
        return [];
      },
    },
  };
}

/** The servers of the layout being reached, checked against the current ones. */
function targetServers(
  dbDir: string,
  before: readonly RemoteShard[],
  plan: ReshardPlan,
  to: ShardingStrategy,
  options: ReshardOptions,
): RemoteShard[] {
  let target: RemoteShard[];
  if (options.shards !== undefined) {
    target = parseShardLocations(options.shards);
  } else if (plan.servers !== undefined) {
    // A resumed run: the servers it recorded, reached as shard 0 is (same token).
    const driver = (before[0] as RemoteShard).driver;
    target = plan.servers.slice(0, to.numShards).map((url, shardId) => ({
      shardId,
      url,
      replicas: before[shardId]?.url === url ? before[shardId]?.replicas ?? [] : [],
      driver: before[shardId]?.url === url ? before[shardId]?.driver ?? driver : driver,
    }));
  } else {
    target = before.slice(0, to.numShards) as RemoteShard[];
  }
  if (target.length !== to.numShards) {
    throw new ReshardError(
      dbDir,
      to.numShards > before.length && options.shards === undefined
        ? `growing to ${to.numShards} shards needs their servers: pass shards (every ` +
          `server of the new layout, the current ${before.length} first)`
        : `the new layout has ${to.numShards} shards, shards lists ${target.length} servers`,
    );
  }
  for (let id = 0; id < Math.min(before.length, target.length); id++) {
    if (!sameServer((before[id] as RemoteShard).url, (target[id] as RemoteShard).url)) {
      throw new ReshardError(
        dbDir,
        `shards[${id}] is ${target[id]?.url}, but shard ${id} is on ${before[id]?.url}; a ` +
          `reshard keeps every current server at its place (new servers go at the end)`,
      );
    }
  }
  return target;
}
