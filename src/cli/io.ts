/**
 * The contract of a `shardlite` command: the writers it reports through, the exit code it
 * ends with.
 *
 * @module
 */

/** Success. */
export const EXIT_OK = 0;
/** A problem was found, or the command failed (the message says why). */
export const EXIT_PROBLEM = 1;
/** Usage error: unknown command or flag, missing or extra argument. */
export const EXIT_USAGE = 2;

/** Where a command writes. Text is written as given (lines end with `\n`). */
export interface CliIO {
  /** Results: the report, or the one JSON document with `--json`. */
  stdout(text: string): void;
  /** Progress, warnings and errors. */
  stderr(text: string): void;
  /** Whether stderr is a terminal (progress bars redraw in place). Default false. */
  stderrIsTerminal?: boolean;
}

/** One command of the command line. */
export interface Command {
  /** Its usage, printed by `--help` and after a usage error. */
  readonly help: string;
  /** Runs it with the arguments after its name; resolves with the exit code. */
  run(args: string[], io: CliIO): Promise<number>;
}

/** Prints `text` (a command's help) on stdout: exit 0. */
export function printHelp(io: CliIO, text: string): number {
  io.stdout(text);
  return EXIT_OK;
}
