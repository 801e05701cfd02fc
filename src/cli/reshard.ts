/**
 * `shardlite reshard <dbDir> --shards <n>`: every row moved to a hash layout of `n`
 * shards, resumable, with a progress bar on stderr.
 *
 * @module
 */

import type { ReshardReport } from "../api/reshard.ts";
import { parseCommandArgs, UsageError } from "./args.ts";
import { openManager, requireMap } from "./directory.ts";
import { guarded } from "./failure.ts";
import { progressBar } from "./format.ts";
import { type CliIO, type Command, EXIT_OK, printHelp } from "./io.ts";

/** The usage of `reshard`. */
export const RESHARD_HELP = `Usage: deno task shardlite reshard <dbDir> --shards <n>

Moves every row to the shard a ${"`"}hash${"`"} layout of <n> shards assigns it, crash-safe and
resumable (run the same command again after an interruption). A progress bar on stderr.

Options:
  --shards <n>  the new number of shards (required)
  -h, --help    this help
`;

async function run(args: string[], io: CliIO): Promise<number> {
  const parsed = parseCommandArgs("reshard", args, { shards: { type: "string" } }, ["dbDir"]);
  if (parsed === "help") return printHelp(io, RESHARD_HELP);
  const text = parsed.values.shards;
  if (text === undefined) throw new UsageError("reshard: missing --shards <n>");
  const shards = Number(text);
  if (!/^[1-9][0-9]*$/.test(String(text)) || !Number.isSafeInteger(shards)) {
    throw new UsageError(
      `reshard: --shards must be a positive integer, got ${JSON.stringify(text)}`,
    );
  }
  const dbDir = parsed.positionals[0] as string;
  return await guarded(io, false, dbDir, async () => {
    const map = requireMap(dbDir);
    await using manager = openManager(dbDir, map);
    const bar = progressBar(io, "reshard");
    let report: ReshardReport;
    try {
      report = await manager.reshard(shards, {
        onProgress: (p) =>
          bar.update(
            p.scanned,
            p.totalRows,
            `${p.scanned}/${p.totalRows} rows scanned, ${p.moved} moved (${p.table}, shard ${p.shardId})`,
          ),
      });
    } finally {
      bar.finish();
    }
    io.stdout(
      `resharded ${dbDir}: ${map.numShards} -> ${manager.numShards} shards` +
        `${report.resumed ? " (resumed)" : ""}, ${report.scanned} rows scanned, ` +
        `${report.moved} moved in ${(report.durationMs / 1000).toFixed(2)} s` +
        (report.removedFiles.length > 0 ? `; removed ${report.removedFiles.join(", ")}` : "") +
        "\n",
    );
    return EXIT_OK;
  });
}

/** `shardlite reshard`. */
export const reshardCommand: Command = { help: RESHARD_HELP, run };
