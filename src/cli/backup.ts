/**
 * `shardlite backup <dbDir> <dest>`: a consistent snapshot of every shard into a new
 * directory, with progress on stderr.
 *
 * @module
 */

import { backupShards } from "../api/backup.ts";
import { parseCommandArgs } from "./args.ts";
import { openManager, requireMap } from "./directory.ts";
import { guarded } from "./failure.ts";
import { formatBytes } from "./format.ts";
import { type CliIO, type Command, EXIT_OK, printHelp } from "./io.ts";

/** The usage of `backup`. */
export const BACKUP_HELP = `Usage: deno task shardlite backup <dbDir> <dest> [--point-in-time]

Writes a consistent snapshot of every shard (VACUUM INTO), the shard map and a
manifest with checksums into <dest>, which must be new or empty. Progress on stderr.

Options:
  --point-in-time   pause writes on every shard at once, so all shards are captured
                    at the same instant (reports how long writes were paused)
  -h, --help        this help
`;

async function run(args: string[], io: CliIO): Promise<number> {
  const parsed = parseCommandArgs("backup", args, { "point-in-time": { type: "boolean" } }, [
    "dbDir",
    "dest",
  ]);
  if (parsed === "help") return printHelp(io, BACKUP_HELP);
  const [dbDir, dest] = parsed.positionals as [string, string];
  return await guarded(io, false, dbDir, async () => {
    const map = requireMap(dbDir);
    await using manager = openManager(dbDir, map);
    const pointInTime = parsed.values["point-in-time"] === true;
    if (pointInTime) io.stderr(`backup: pausing writes on ${map.numShards} shards\n`);
    const report = await backupShards(manager, dest, {
      pointInTime,
      onProgress: (p) =>
        io.stderr(
          `backup: shard ${p.shardId} written (${p.done}/${p.total}, ${formatBytes(p.bytes)})\n`,
        ),
    });
    io.stdout(
      `backed up ${report.numShards} shards of ${dbDir} to ${report.destDir}: ` +
        `${formatBytes(report.bytes)} in ${(report.durationMs / 1000).toFixed(2)} s ` +
        `(${report.megabytesPerSecond.toFixed(1)} MB/s)` +
        (report.pausedMs !== undefined ? `; writes paused ${report.pausedMs.toFixed(1)} ms` : "") +
        "\n",
    );
    return EXIT_OK;
  });
}

/** `shardlite backup`. */
export const backupCommand: Command = { help: BACKUP_HELP, run };
