/**
 * The `shardlite` command: `deno task shardlite <command>`. {@link runCli} dispatches to
 * one file per command (`info.ts`, `check.ts`, `backup.ts`, `restore.ts`,
 * `reshard.ts`); every command is a function of its arguments writing through injected
 * writers, so tests run it in-process. Run `deno task shardlite --help` for the commands.
 *
 * Exit codes: {@link EXIT_OK} (0), {@link EXIT_PROBLEM} (1: a problem was found or the
 * command failed), {@link EXIT_USAGE} (2: unknown command or flag, missing argument).
 *
 * @example
 * ```ts
 * import { runCli } from "./main.ts";
 * const code = await runCli(["info", "--help"], { stdout: () => {}, stderr: () => {} });
 * if (code !== 0) throw new Error("help exits 0");
 * ```
 *
 * @module
 */

import { UsageError } from "./args.ts";
import { backupCommand } from "./backup.ts";
import { checkCommand } from "./check.ts";
import { infoCommand } from "./info.ts";
import { type CliIO, type Command, EXIT_USAGE, printHelp } from "./io.ts";
import { reshardCommand } from "./reshard.ts";
import { restoreCommand } from "./restore.ts";

export { type CliIO, EXIT_OK, EXIT_PROBLEM, EXIT_USAGE } from "./io.ts";

/** What {@link runCliCaptured} returns. */
export interface CliResult {
  /** The exit code. */
  code: number;
  /** Everything written to stdout. */
  stdout: string;
  /** Everything written to stderr. */
  stderr: string;
}

const MAIN_HELP = `shardlite - inspect and maintain a Shardlite shard directory

Usage: deno task shardlite <command> [options]

Commands:
  info <dbDir>                      shard map, rows per table per shard, sizes, skew
  check <dbDir>                     map against files, PRAGMA integrity_check on every shard
  backup <dbDir> <dest>             consistent snapshot of every shard into a new directory
  restore <backup> <dbDir>          verify a backup, then restore it into a directory
  reshard <dbDir> --shards <n>      move every row to a new number of shards

Options:
  -h, --help                        help (also after a command: shardlite info --help)

Exit codes: 0 ok, 1 problem found or command failed, 2 usage error.
`;

const COMMANDS: Record<string, Command> = {
  info: infoCommand,
  check: checkCommand,
  backup: backupCommand,
  restore: restoreCommand,
  reshard: reshardCommand,
};

/**
 * Runs the `shardlite` command line with `argv` (without the program name), writing
 * through `io`; resolves with the exit code.
 *
 * @example
 * ```ts
 * import { runCli } from "./main.ts";
 * let out = "";
 * const code = await runCli(["--help"], { stdout: (t) => out += t, stderr: () => {} });
 * if (code !== 0 || !out.includes("Usage")) throw new Error("help expected");
 * ```
 */
export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === "-h" || command === "--help") return printHelp(io, MAIN_HELP);
    if (command === undefined) throw new UsageError("missing command");
    const found = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (found === undefined) {
      throw new UsageError(
        command.startsWith("-")
          ? `unknown option ${JSON.stringify(command)} (options follow the command)`
          : `unknown command ${JSON.stringify(command)}`,
      );
    }
    return await found.run(rest, io);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    const usage = command !== undefined && Object.hasOwn(COMMANDS, command)
      ? (COMMANDS[command] as Command).help
      : MAIN_HELP;
    io.stderr(`shardlite: ${error.message}\n\n${usage}`);
    return EXIT_USAGE;
  }
}

/**
 * Runs the command line in-process and collects its output: for tests and embedding.
 *
 * @example
 * ```ts
 * import { runCliCaptured } from "./main.ts";
 * const { code, stderr } = await runCliCaptured(["frobnicate"]);
 * if (code !== 2 || !stderr.includes("unknown command")) throw new Error("usage error expected");
 * ```
 */
export async function runCliCaptured(argv: readonly string[]): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  const code = await runCli(argv, {
    stdout: (text) => stdout += text,
    stderr: (text) => stderr += text,
  });
  return { code, stdout, stderr };
}

const encoder = new TextEncoder();

function writeAll(file: typeof Deno.stdout, text: string): void {
  const bytes = encoder.encode(text);
  let written = 0;
  while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
}

/** Writers over the process's stdout and stderr. */
export function processIO(): CliIO {
  return {
    stdout: (text) => writeAll(Deno.stdout, text),
    stderr: (text) => writeAll(Deno.stderr, text),
    stderrIsTerminal: Deno.stderr.isTerminal(),
  };
}

if (import.meta.main) {
  Deno.exitCode = await runCli(Deno.args, processIO());
}
