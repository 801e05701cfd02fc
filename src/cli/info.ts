/**
 * `shardlite info <dbDir>`: the shard map, rows per table per shard, file sizes, each
 * table's skew across shards.
 *
 * @module
 */

import { shardFileName } from "../api/layout.ts";
import { parseCommandArgs } from "./args.ts";
import { openManager, requireMap } from "./directory.ts";
import { guarded } from "./failure.ts";
import { describeStrategy, formatBytes, formatTable } from "./format.ts";
import { type CliIO, type Command, EXIT_OK, printHelp } from "./io.ts";

const HOT_SKEW = 1.5;

/** The usage of `info`. */
export const INFO_HELP = `Usage: deno task shardlite info <dbDir> [--json]

Prints the shard map (shard count, strategy, tables and their shard keys) and, per
shard, rows per table and file size (database + WAL); then the skew of each table
(max rows on one shard / mean rows per shard), flagging a hot shard above ${HOT_SKEW}.

Options:
  --json       one JSON document on stdout, nothing else
  -h, --help   this help
`;

/** One table's skew across shards, as `info` reports it. */
export interface TableSkew {
  /** Rows over all shards. */
  total: number;
  /** Mean rows per shard (over every shard of the map). */
  mean: number;
  /** Rows on the fullest shard. */
  max: number;
  /** `max / mean`; null for an empty table. */
  skew: number | null;
  /** The fullest shard, when `skew` is above 1.5. */
  hotShard: number | null;
}

function skewOf(counts: number[]): TableSkew {
  const total = counts.reduce((a, b) => a + b, 0);
  const mean = total / Math.max(counts.length, 1);
  const max = Math.max(0, ...counts);
  const skew = mean === 0 ? null : max / mean;
  return {
    total,
    mean,
    max,
    skew,
    hotShard: skew !== null && skew > HOT_SKEW ? counts.indexOf(max) : null,
  };
}

async function run(args: string[], io: CliIO): Promise<number> {
  const parsed = parseCommandArgs("info", args, { json: { type: "boolean" } }, ["dbDir"]);
  if (parsed === "help") return printHelp(io, INFO_HELP);
  const json = parsed.values.json === true;
  const dbDir = parsed.positionals[0] as string;
  return await guarded(io, json, dbDir, async () => {
    const map = requireMap(dbDir);
    await using manager = openManager(dbDir, map);
    const stats = await manager.getShardStats();
    const tables = Object.keys(map.tables).sort();
    const skew: Record<string, TableSkew> = {};
    for (const name of tables) skew[name] = skewOf(stats.map((s) => s.rows[name] ?? 0));
    const shards = stats.map((s) => ({
      shardId: s.shardId,
      file: shardFileName(s.shardId),
      exists: s.exists,
      sizeBytes: s.sizeBytes,
      rows: s.rows,
    }));
    const hot = tables.flatMap((name) => {
      const s = skew[name] as TableSkew;
      return s.hotShard === null ? [] : [{ table: name, shardId: s.hotShard, skew: s.skew }];
    });
    if (json) {
      io.stdout(
        JSON.stringify(
          {
            ok: true,
            dbDir,
            numShards: map.numShards,
            strategy: map.strategy,
            tables: map.tables,
            shards,
            totalBytes: shards.reduce((a, s) => a + s.sizeBytes, 0),
            skew,
            hot,
          },
          null,
          2,
        ) + "\n",
      );
      return EXIT_OK;
    }
    let out = `${dbDir}\n`;
    out += `  shards:    ${map.numShards}\n`;
    out += `  strategy:  ${describeStrategy(map.strategy)}\n`;
    out += `  tables:    ${
      tables.length === 0 ? "(none)" : tables.map((name) => {
        const key = map.tables[name]?.shardKey;
        return `${name} (${
          key === null || key === undefined ? "no shard key" : `shard key ${key}`
        })`;
      }).join(", ")
    }\n\n`;
    const rows: string[][] = [["shard", "file", "size", ...tables]];
    for (const s of shards) {
      rows.push([
        String(s.shardId),
        s.exists ? s.file : `${s.file} (not created yet)`,
        s.exists ? formatBytes(s.sizeBytes) : "-",
        ...tables.map((name) => s.exists ? String(s.rows[name] ?? 0) : "-"),
      ]);
    }
    rows.push([
      "total",
      "",
      formatBytes(shards.reduce((a, s) => a + s.sizeBytes, 0)),
      ...tables.map((name) => String(skew[name]?.total ?? 0)),
    ]);
    rows.push([
      "skew",
      "",
      "",
      ...tables.map((name) => {
        const value = skew[name]?.skew;
        return value === null || value === undefined ? "-" : value.toFixed(2);
      }),
    ]);
    out += formatTable(rows, (i) => i >= 2);
    if (tables.length > 0) out += `\nskew = rows on the fullest shard / mean rows per shard\n`;
    for (const h of hot) {
      const s = skew[h.table] as TableSkew;
      out += `hot shard: ${h.table} - shard ${h.shardId} holds ${s.max} rows, ${
        (s.skew ?? 0).toFixed(2)
      }x the mean of ${s.mean.toFixed(1)}\n`;
    }
    io.stdout(out);
    return EXIT_OK;
  });
}

/** `shardlite info`. */
export const infoCommand: Command = { help: INFO_HELP, run };
