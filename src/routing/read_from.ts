/**
 * Where a read goes on a shard with replicas: the `readFrom` option.
 *
 * @module
 */

/** Where a read goes: the shard's primary (default), or one of its replicas. */
export type ReadFrom = "primary" | "replica";

/** The `readFrom` option of reads (`select`, `iterate`, `query`, `queryAll`, the aggregates). */
export interface ReadFromOption {
  /**
   * `"replica"`: read from one of the shard's replicas (`shards: [{ url, replicas }]`),
   * falling back to the primary when none answers; a replica may lag its primary (by a
   * few milliseconds on a local network), so a read there may miss the latest writes.
   * `"primary"` (default): the primary. Shards without replicas, and local shard files,
   * always read their one database.
   */
  readFrom?: ReadFrom | undefined;
}

/** Checks a `readFrom` option; throws TypeError naming the bad value. */
export function checkReadFrom(options: ReadFromOption | undefined): ReadFrom {
  const value = options?.readFrom;
  if (value === undefined || value === "primary") return "primary";
  if (value === "replica") return "replica";
  throw new TypeError(
    `readFrom must be "primary" or "replica", got ${JSON.stringify(value) ?? String(value)}`,
  );
}
