/**
 * Crash-safe file ownership: an exclusive OS lock on a sidecar `<db>.owner` file.
 *
 * node-sqlite3-wasm locks a database by creating a `<db>.lock` directory, which a
 * crash leaves behind forever. The OS releases our lock when the process dies, so
 * holding it proves no live process owns the file, and a leftover `<db>.lock`
 * directory can be removed safely.
 *
 * @module
 */

import { ShardLockedError, ShardOpenError } from "../errors.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The sidecar file that carries the OS lock for `dbPath`. */
export function ownerPathFor(dbPath: string): string {
  return `${dbPath}.owner`;
}

/** Reads the pid an owner wrote into its owner file, if any. */
export function readOwnerPid(ownerPath: string): number | undefined {
  try {
    const text = decoder.decode(Deno.readFileSync(ownerPath));
    const parsed = JSON.parse(text) as { pid?: unknown };
    return typeof parsed.pid === "number" ? parsed.pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether a lock on `ownerPath` that could not be taken is held shared (by users with
 * `access: "shared"`): a shared lock can then be taken, and is let go at once.
 */
function heldShared(ownerPath: string): boolean {
  try {
    const probe = Deno.openSync(ownerPath, { read: true });
    try {
      return probe.tryLockSync(false);
    } finally {
      probe.close(); // closing the descriptor drops the probe's lock
    }
  } catch {
    return false;
  }
}

/** An OS lock on a shard file's owner file, held by this process: exclusive or shared. */
export class OwnerLock {
  /** The shard file. */
  readonly dbPath: string;
  /** The owner file. */
  readonly ownerPath: string;
  /** `"exclusive"`: this process alone; `"shared"`: with other shared users. */
  readonly access: "exclusive" | "shared";
  #file: Deno.FsFile | null;
  #inode: number | null;

  private constructor(
    dbPath: string,
    ownerPath: string,
    file: Deno.FsFile,
    inode: number | null,
    access: "exclusive" | "shared",
  ) {
    this.dbPath = dbPath;
    this.ownerPath = ownerPath;
    this.#file = file;
    this.#inode = inode;
    this.access = access;
  }

  /**
   * Takes the lock or fails fast with {@link ShardLockedError} naming the owner's pid.
   * Never waits: a live owner may hold it for hours. With `"shared"`, the lock is
   * shared with every other shared user (isolates and processes alike; OS locks are
   * per open file) and excludes exclusive ones; a shared user writes nothing into the
   * owner file. `sharedBy` lists the shared users for the error an exclusive opener gets.
   */
  static acquire(
    dbPath: string,
    access: "exclusive" | "shared" = "exclusive",
    sharedBy: () => number[] = () => [],
  ): OwnerLock {
    const ownerPath = ownerPathFor(dbPath);
    // A closing owner unlinks the file; retry when we locked an unlinked inode.
    for (let attempt = 0; attempt < 8; attempt++) {
      let file: Deno.FsFile;
      try {
        file = Deno.openSync(ownerPath, { read: true, write: true, create: true, mode: 0o600 });
      } catch (error) {
        throw new ShardOpenError(
          dbPath,
          `cannot create the owner file ${ownerPath} (${(error as Error).message}); ` +
            `the directory must exist and be writable`,
          { cause: error },
        );
      }
      let locked = false;
      try {
        locked = file.tryLockSync(access === "exclusive");
      } catch (error) {
        file.close();
        throw new ShardOpenError(dbPath, `cannot lock ${ownerPath}`, { cause: error });
      }
      if (!locked) {
        file.close();
        const shared = access === "exclusive" && heldShared(ownerPath);
        throw new ShardLockedError({
          path: dbPath,
          ownerPath,
          ownerPid: shared ? undefined : readOwnerPid(ownerPath),
          heldAs: shared ? "shared" : "exclusive",
          sharedBy: shared ? sharedBy() : [],
        });
      }
      const inode = file.statSync().ino;
      let current: number | null | undefined;
      try {
        current = Deno.statSync(ownerPath).ino;
      } catch {
        current = undefined;
      }
      if (current !== inode) {
        file.close();
        continue;
      }
      if (access === "shared") return new OwnerLock(dbPath, ownerPath, file, inode, access);
      try {
        file.truncateSync(0);
        file.writeSync(
          encoder.encode(JSON.stringify({ pid: Deno.pid, since: new Date().toISOString() })),
        );
      } catch (error) {
        // A full disk: leave no locked file and no owner file behind.
        try {
          Deno.removeSync(ownerPath);
        } catch {
          // Nothing to clean.
        }
        file.close();
        throw new ShardOpenError(
          dbPath,
          `cannot write the owner file ${ownerPath} (${(error as Error).message}); free ` +
            `disk space and retry`,
          { cause: error },
        );
      }
      return new OwnerLock(dbPath, ownerPath, file, inode, access);
    }
    throw new ShardOpenError(dbPath, `the owner file ${ownerPath} keeps changing; retry`);
  }

  /** Whether the owner file on disk is still the one we locked. */
  isIntact(): boolean {
    if (this.#file === null) return false;
    try {
      return Deno.statSync(this.ownerPath).ino === this.#inode;
    } catch {
      return false;
    }
  }

  /**
   * Deletes the owner file (when still ours) and releases the lock. Idempotent. A shared
   * user deletes it only when no other user holds it any more.
   */
  release(): void {
    const file = this.#file;
    if (file === null) return;
    if (this.access === "shared") {
      this.#file = null;
      file.close();
      // The last one out cleans up: an exclusive lock now means nobody else holds it.
      try {
        const probe = Deno.openSync(this.ownerPath, { read: true, write: true });
        try {
          if (probe.tryLockSync(true) && probe.statSync().ino === this.#inode) {
            Deno.removeSync(this.ownerPath);
          }
        } finally {
          probe.close();
        }
      } catch {
        // Gone already, or in use: nothing to clean.
      }
      return;
    }
    if (this.isIntact()) {
      try {
        Deno.removeSync(this.ownerPath);
      } catch {
        // Already gone: nothing to clean.
      }
    }
    this.#file = null;
    file.close();
  }
}
