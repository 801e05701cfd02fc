/**
 * How a command's failure reaches the operator: one message on stderr (with `--json`, a
 * JSON document on stdout too), exit 1.
 *
 * @module
 */

import { ShardliteError, ShardLockedError } from "../errors.ts";
import { type CliIO, EXIT_PROBLEM } from "./io.ts";

/** A failure with a message meant for the operator as is: exit 1. */
export class CommandFailure extends Error {}

/** Runs `fn`, turning expected failures into a message (or a JSON document) and exit 1. */
export async function guarded(
  io: CliIO,
  json: boolean,
  dbDir: string,
  fn: () => Promise<number>,
): Promise<number> {
  try {
    return await fn();
  } catch (error) {
    let message: string;
    let ownerPid: number | undefined;
    if (error instanceof ShardLockedError) {
      ownerPid = error.ownerPid;
      message = `${dbDir} is in use by another process (${
        ownerPid === undefined ? "its pid could not be read" : `pid ${ownerPid}`
      }). Stop that process, or wait for it to close the directory, and try again.`;
    } else if (error instanceof CommandFailure || error instanceof ShardliteError) {
      message = error.message;
    } else {
      message = `unexpected error: ${
        error instanceof Error ? (error.stack ?? error.message) : String(error)
      }`;
    }
    io.stderr(`shardlite: ${message}\n`);
    if (json) {
      const name = error instanceof Error && !(error instanceof CommandFailure)
        ? error.name
        : "Error";
      io.stdout(
        JSON.stringify(
          { ok: false, error: { name, message, ...(ownerPid !== undefined ? { ownerPid } : {}) } },
          null,
          2,
        ) + "\n",
      );
    }
    return EXIT_PROBLEM;
  }
}
