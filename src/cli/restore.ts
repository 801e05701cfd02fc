/**
 * `shardlite restore <backup> <dbDir>`: a backup verified, then installed into a
 * directory, with progress on stderr.
 *
 * @module
 */

import { restoreShards } from "../api/backup.ts";
import { parseCommandArgs } from "./args.ts";
import { guarded } from "./failure.ts";
import { formatBytes } from "./format.ts";
import { type CliIO, type Command, EXIT_OK, printHelp } from "./io.ts";

/** The usage of `restore`. */
export const RESTORE_HELP = `Usage: deno task shardlite restore <backup> <dbDir> [--overwrite]

Verifies the backup (manifest, shard map, SHA-256 and integrity of every file) before
touching <dbDir>, then installs the files and writes the shard map last. <dbDir> must
be new or empty unless --overwrite. Progress on stderr.

Options:
  --overwrite   replace the shard files and map of a non-empty <dbDir> (refused while
                any process has it open); shard files beyond the backup's count go
  -h, --help    this help
`;

async function run(args: string[], io: CliIO): Promise<number> {
  const parsed = parseCommandArgs("restore", args, { overwrite: { type: "boolean" } }, [
    "backup",
    "dbDir",
  ]);
  if (parsed === "help") return printHelp(io, RESTORE_HELP);
  const [backupDir, dbDir] = parsed.positionals as [string, string];
  return await guarded(io, false, dbDir, async () => {
    const report = await restoreShards(backupDir, dbDir, {
      overwrite: parsed.values.overwrite === true,
      onProgress: (p) =>
        io.stderr(
          p.phase === "verify"
            ? `restore: shard ${p.shardId} verified (${p.done}/${p.total})\n`
            : `restore: shard ${p.shardId} installed (${p.done}/${p.total})\n`,
        ),
    });
    io.stdout(
      `restored ${report.numShards} shards (${formatBytes(report.bytes)}) from ` +
        `${report.backupDir} into ${report.dbDir} in ${(report.durationMs / 1000).toFixed(2)} s` +
        (report.removed.length > 0 ? `; removed ${report.removed.join(", ")}` : "") + "\n",
    );
    return EXIT_OK;
  });
}

/** `shardlite restore`. */
export const restoreCommand: Command = { help: RESTORE_HELP, run };
