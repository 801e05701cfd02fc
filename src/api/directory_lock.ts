/**
 * Who holds a shard directory: an OS lock on `shardlite.json.owner`, exclusive (one
 * process) or shared (any number of isolates and processes with `access: "shared"`).
 * Shared users also register in `shardlite.users/`, one locked file each, so that an
 * exclusive opener can name them and a recovery can tell a live user's batches from a
 * crashed one's.
 *
 * @module
 */

import { ShardLockedError } from "../errors.ts";
import { OwnerLock } from "../pool/ownership.ts";
import { SHARD_MAP_FILE } from "./shard_map.ts";

/** The folder of shared users' registration files inside a directory. */
export const USERS_DIR = "shardlite.users";
const USER_SUFFIX = ".user";

interface DirectoryEntry {
  lock: OwnerLock;
  users: number;
  access: "exclusive" | "shared";
  /** Shared access: this isolate's registration (kept open and locked while held). */
  registration: { id: string; file: Deno.FsFile; path: string } | null;
}

const directories = new Map<string, DirectoryEntry>();

/** A directory held by this isolate. */
export interface DirectoryHold {
  /** How it is held. */
  readonly access: "exclusive" | "shared";
  /** Shared access: this user's id (its batches carry it); undefined when exclusive. */
  readonly userId: string | undefined;
  /** Lets go (the last manager of the isolate releases the lock). Idempotent. */
  release(): void;
}

/** How many managers of this isolate hold `dbDir` now (0 when none). */
export function directoryUsers(dbDir: string): number {
  try {
    return directories.get(Deno.realPathSync(dbDir))?.users ?? 0;
  } catch {
    return 0;
  }
}

/**
 * The live shared users of `dbDir` (their pids, one per user; an isolate is a user),
 * removing the registrations that crashed users left.
 */
export function liveSharedUsers(dbDir: string): { id: string; pid: number }[] {
  const folder = `${dbDir}/${USERS_DIR}`;
  const live: { id: string; pid: number }[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(folder)];
  } catch {
    return live;
  }
  for (const entry of entries) {
    if (!entry.isFile || !entry.name.endsWith(USER_SUFFIX)) continue;
    const id = entry.name.slice(0, -USER_SUFFIX.length);
    if (isLiveUser(dbDir, id)) live.push({ id, pid: Number(id.split("-")[0]) });
  }
  return live;
}

/**
 * Whether the shared user `id` of `dbDir` is alive: its registration is locked. A dead
 * one's registration is removed.
 */
export function isLiveUser(dbDir: string, id: string): boolean {
  const path = `${dbDir}/${USERS_DIR}/${id}${USER_SUFFIX}`;
  let probe: Deno.FsFile;
  try {
    probe = Deno.openSync(path, { read: true, write: true });
  } catch {
    return false;
  }
  try {
    if (!probe.tryLockSync(true)) return true;
    try {
      Deno.removeSync(path); // its user is gone: no live process holds the lock
    } catch {
      // Removed already.
    }
    return false;
  } finally {
    probe.close();
  }
}

/**
 * Takes (or shares, within this isolate) `dbDir`. Exclusive: a second live user of any
 * kind gets ShardLockedError naming the owner's pid, or the shared users'. Shared: an
 * exclusive owner is refused likewise; shared users coexist.
 */
export function acquireDirectory(
  dbDir: string,
  access: "exclusive" | "shared" = "exclusive",
): DirectoryHold {
  const key = Deno.realPathSync(dbDir);
  let entry = directories.get(key);
  if (entry !== undefined && entry.access !== access) {
    throw new ShardLockedError({
      path: dbDir,
      ownerPath: `${dbDir}/${SHARD_MAP_FILE}.owner`,
      ownerPid: entry.access === "exclusive" ? Deno.pid : undefined,
      heldAs: entry.access,
      sharedBy: entry.access === "shared" ? [Deno.pid] : [],
    });
  }
  if (entry === undefined) {
    const lock = OwnerLock.acquire(
      `${dbDir}/${SHARD_MAP_FILE}`,
      access,
      () => liveSharedUsers(dbDir).map((u) => u.pid),
    );
    let registration: DirectoryEntry["registration"] = null;
    if (access === "shared") {
      try {
        registration = register(dbDir);
      } catch (error) {
        lock.release();
        throw error;
      }
    }
    entry = { lock, users: 0, access, registration };
    directories.set(key, entry);
  }
  entry.users++;
  let released = false;
  const held = entry;
  return {
    access,
    userId: held.registration?.id,
    release() {
      if (released) return;
      released = true;
      if (--held.users === 0) {
        directories.delete(key);
        if (held.registration !== null) {
          try {
            Deno.removeSync(held.registration.path);
          } catch {
            // Gone already.
          }
          held.registration.file.close();
        }
        held.lock.release();
      }
    },
  };
}

/** Registers this isolate as a shared user: a new file, locked for as long as it holds. */
function register(dbDir: string): { id: string; file: Deno.FsFile; path: string } {
  const folder = `${dbDir}/${USERS_DIR}`;
  Deno.mkdirSync(folder, { recursive: true, mode: 0o700 });
  const id = `${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const path = `${folder}/${id}${USER_SUFFIX}`;
  const file = Deno.openSync(path, { read: true, write: true, createNew: true, mode: 0o600 });
  if (!file.tryLockSync(true)) {
    file.close();
    throw new Error(`cannot lock the new registration ${path}`);
  }
  return { id, file, path };
}

/**
 * Runs `fn` holding the directory's recovery lock (`shardlite.json.recovery`, exclusive,
 * waited for asynchronously): shared users opening at once recover one after the other.
 */
export async function withRecoveryLock<T>(dbDir: string, fn: () => Promise<T>): Promise<T> {
  const file = await Deno.open(`${dbDir}/${SHARD_MAP_FILE}.recovery`, {
    read: true,
    write: true,
    create: true,
    mode: 0o600,
  });
  try {
    await file.lock(true);
    return await fn();
  } finally {
    file.close(); // closing drops the lock
  }
}
