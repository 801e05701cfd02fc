/**
 * Parsing a command's arguments: its flags, then exactly its positional arguments; a
 * mistake is a {@link UsageError}.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** Bad arguments: printed with the command's usage, exit 2. */
export class UsageError extends Error {}

/** Flag values by name. */
export type Values = Record<string, string | boolean | undefined>;

/**
 * Parses `args` of `command`: the flags in `options` (plus `-h`/`--help`, which gives
 * `"help"`), then exactly the `positionals` named.
 *
 * @throws {UsageError} for an unknown flag, a missing or an extra argument.
 */
export function parseCommandArgs(
  command: string,
  args: string[],
  options: Record<string, { type: "boolean" | "string"; short?: string }>,
  positionals: string[],
): { values: Values; positionals: string[] } | "help" {
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({
      args,
      options: { help: { type: "boolean", short: "h" }, ...options },
      allowPositionals: true,
      strict: true,
    }) as { values: Values; positionals: string[] };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS")) {
      throw new UsageError(`${command}: ${(error as Error).message}`);
    }
    throw error;
  }
  if (parsed.values.help === true) return "help";
  if (parsed.positionals.length < positionals.length) {
    const missing = positionals.slice(parsed.positionals.length).map((p) => `<${p}>`);
    throw new UsageError(`${command}: missing ${missing.join(" ")}`);
  }
  if (parsed.positionals.length > positionals.length) {
    const extra = parsed.positionals.slice(positionals.length).map((p) => JSON.stringify(p));
    throw new UsageError(`${command}: unexpected argument ${extra.join(" ")}`);
  }
  return parsed;
}
