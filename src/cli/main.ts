/**
 * The `shardlite` command: `deno task shardlite <command>`. A thin entry over
 * {@link runCli}; run `deno task shardlite --help` for the commands.
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

import { type CliIO, runCli } from "./commands.ts";

export {
  type CliIO,
  type CliResult,
  EXIT_OK,
  EXIT_PROBLEM,
  EXIT_USAGE,
  runCli,
  runCliCaptured,
} from "./commands.ts";

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
