/**
 * The names of the shard files in a shard directory: `shard_<id>.db`, one per shard, beside
 * the shard map. The one place that spells them; code that builds or recognises a shard
 * file's name goes through here, and so does a scan of a directory's entries.
 *
 * @module
 */

// Only canonical decimal ids (no sign, no leading zero), so a name and its id map one to one.
const SHARD_FILE_NAME = /^shard_(0|[1-9][0-9]*)\.db$/;

/**
 * The file name of shard `shardId`, without a directory. Throws `RangeError` unless
 * `shardId` is a non-negative safe integer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shardFileName } from "./layout.ts";
 * assert.equal(shardFileName(3), "shard_3.db");
 * ```
 */
export function shardFileName(shardId: number): string {
  if (!Number.isSafeInteger(shardId) || shardId < 0) {
    throw new RangeError(`a shard id is a non-negative integer, got ${shardId}`);
  }
  return `shard_${shardId}.db`;
}

/**
 * The path of shard `shardId`'s file in `dbDir` (no trailing slash expected).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shardFilePath } from "./layout.ts";
 * assert.equal(shardFilePath("./data", 0), "./data/shard_0.db");
 * ```
 */
export function shardFilePath(dbDir: string, shardId: number): string {
  return `${dbDir}/${shardFileName(shardId)}`;
}

/**
 * The shard id a directory entry's name stands for, or undefined when it is not a shard
 * file (`shard_01.db`, `shard_1.db-wal` and `shard_1.db.lock` are not).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseShardFileName } from "./layout.ts";
 * assert.equal(parseShardFileName("shard_12.db"), 12);
 * assert.equal(parseShardFileName("shard_12.db-wal"), undefined);
 * assert.equal(parseShardFileName("shardlite.json"), undefined);
 * ```
 */
export function parseShardFileName(name: string): number | undefined {
  const match = SHARD_FILE_NAME.exec(name);
  if (match === null) return undefined;
  const id = Number(match[1]);
  return Number.isSafeInteger(id) ? id : undefined;
}

/** The suffix of a file a restore is installing, until it is renamed into place. */
export const RESTORE_TEMP_SUFFIX = ".restore-tmp";

/** What {@link scanLayout} found in a shard directory. */
export interface LayoutScan {
  /** Every entry's name, sorted. */
  names: string[];
  /** The ids of the shard files present. */
  shardIds: Set<number>;
  /** Shard files beyond the map's shard count (no key routes to them), in name order. */
  extra: { name: string; shardId: number }[];
  /** Files an interrupted restore left behind, in name order. */
  leftovers: string[];
}

/**
 * Lists `dbDir` and sorts its entries by what they are to a directory of `numShards`
 * shards. Throws what `Deno.readDirSync` throws (a missing directory, no permission).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { scanLayout } from "./layout.ts";
 * const dir = await Deno.makeTempDir();
 * for (const name of ["shard_0.db", "shard_0.db-wal", "shard_3.db", "x.restore-tmp"]) {
 *   await Deno.writeTextFile(`${dir}/${name}`, "");
 * }
 * const scan = scanLayout(dir, 2);
 * assert.deepEqual([...scan.shardIds], [0, 3]);
 * assert.deepEqual(scan.extra, [{ name: "shard_3.db", shardId: 3 }]);
 * assert.deepEqual(scan.leftovers, ["x.restore-tmp"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function scanLayout(dbDir: string, numShards: number): LayoutScan {
  const names = [...Deno.readDirSync(dbDir)].map((e) => e.name).sort();
  const scan: LayoutScan = { names, shardIds: new Set(), extra: [], leftovers: [] };
  for (const name of names) {
    const shardId = parseShardFileName(name);
    if (shardId !== undefined) {
      scan.shardIds.add(shardId);
      if (shardId >= numShards) scan.extra.push({ name, shardId });
    } else if (name.endsWith(RESTORE_TEMP_SUFFIX)) {
      scan.leftovers.push(name);
    }
  }
  return scan;
}
