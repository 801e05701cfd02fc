/**
 * Typed errors of Shardlite. Every error extends {@link ShardliteError} and carries
 * the fields an operator needs to act (path, shard, counts, timings) as read-only
 * properties, besides a message that says what was wrong and what to do.
 *
 * @module
 */

/** Counts of a pool at the moment an error was raised. */
export interface PoolCounts {
  /** Leases handed out and not yet returned. */
  readonly active: number;
  /** Idle sessions kept for reuse. */
  readonly idle: number;
  /** Callers waiting for a lease. */
  readonly waiting: number;
  /** The pool's hard cap on active leases. */
  readonly max: number;
}

/**
 * The base class of every error Shardlite raises on purpose.
 *
 * @example Catch any Shardlite error
 * ```ts
 * import { ShardliteError } from "./errors.ts";
 * try {
 *   throw new ShardliteError("something went wrong");
 * } catch (e) {
 *   if (!(e instanceof ShardliteError)) throw e;
 * }
 * ```
 */
export class ShardliteError extends Error {
  /** Creates an error with a message and an optional cause. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

function countsText(c: PoolCounts): string {
  return `active=${c.active}, idle=${c.idle}, waiting=${c.waiting}, max=${c.max}`;
}

/** A caller waited longer than its timeout for a lease, or for a sibling's transaction. */
export class PoolTimeoutError extends ShardliteError {
  /** The shard file the pool serves. */
  readonly path: string;
  /** The timeout that ran out, in milliseconds. */
  readonly timeoutMs: number;
  /** How long the caller actually waited, in milliseconds. */
  readonly waitedMs: number;
  /** The pool's counts when the timeout fired. */
  readonly counts: PoolCounts;
  /**
   * What the caller was waiting for: a lease, a sibling session's transaction, or (shared
   * access) SQLite's write lock, held by another connection or process.
   */
  readonly waitingFor: "lease" | "transaction" | "write-lock" | "driver";
  /** Creates the error; the message is built from the fields. */
  constructor(
    fields: {
      path: string;
      timeoutMs: number;
      waitedMs: number;
      counts: PoolCounts;
      waitingFor: "lease" | "transaction" | "write-lock" | "driver";
      detail?: string;
    },
    options?: ErrorOptions,
  ) {
    const what = fields.waitingFor === "lease"
      ? "a lease"
      : fields.waitingFor === "transaction"
      ? "another session's transaction to end"
      : fields.waitingFor === "write-lock"
      ? "SQLite's write lock (another connection or process is writing)"
      : "the driver's answer (the handle was dropped; its transaction, if any, is lost)";
    super(
      `${fields.path} - timed out after ${Math.round(fields.waitedMs)} ms ` +
        `(timeoutMs=${fields.timeoutMs}) waiting for ${what} ` +
        `(${countsText(fields.counts)})` +
        (fields.detail ? `; ${fields.detail}` : "") +
        `. Return leases sooner, keep transactions short, or raise maxConnections/timeoutMs.`,
      options,
    );
    this.path = fields.path;
    this.timeoutMs = fields.timeoutMs;
    this.waitedMs = fields.waitedMs;
    this.counts = fields.counts;
    this.waitingFor = fields.waitingFor;
  }
}

/** The wait line of a pool is full (`maxWaiting`): the request is refused at once. */
export class PoolOverloadedError extends ShardliteError {
  /** The shard file the pool serves. */
  readonly path: string;
  /** The pool's bound on waiting callers. */
  readonly maxWaiting: number;
  /** The pool's counts when the request was refused. */
  readonly counts: PoolCounts;
  /** Creates the error; the message is built from the fields. */
  constructor(fields: { path: string; maxWaiting: number; counts: PoolCounts }) {
    super(
      `${fields.path} - overloaded: ${fields.counts.waiting} callers already wait ` +
        `(maxWaiting=${fields.maxWaiting}; ${countsText(fields.counts)}). ` +
        `Shed load, retry later, or raise maxWaiting.`,
    );
    this.path = fields.path;
    this.maxWaiting = fields.maxWaiting;
    this.counts = fields.counts;
  }
}

/** The pool (or manager) was closed: no new leases are handed out. */
export class PoolClosedError extends ShardliteError {
  /** The shard file the pool served. */
  readonly path: string;
  /** Creates the error for a closed pool on `path`. */
  constructor(path: string, detail = "the pool is closed") {
    super(`${path} - ${detail}; create a new pool to use this file again.`);
    this.path = path;
  }
}

/** Another live process owns the shard file (an OS lock on its owner file). */
export class ShardLockedError extends ShardliteError {
  /** The shard file. */
  readonly path: string;
  /** The sidecar file whose OS lock is held. */
  readonly ownerPath: string;
  /** The pid written by the owner, when it could be read. */
  readonly ownerPid: number | undefined;
  /**
   * How the file is held by others: `"exclusive"` (one owner) or `"shared"` (users with
   * `access: "shared"`, whose pids are in `sharedBy` when known).
   */
  readonly heldAs: "exclusive" | "shared";
  /** Pids of the live shared users, when they could be listed. */
  readonly sharedBy: number[];
  /** Creates the error; the message names the owner's pid (or the shared users'). */
  constructor(fields: {
    path: string;
    ownerPath: string;
    ownerPid: number | undefined;
    heldAs?: "exclusive" | "shared";
    sharedBy?: number[];
  }) {
    const heldAs = fields.heldAs ?? "exclusive";
    const sharedBy = fields.sharedBy ?? [];
    super(
      heldAs === "exclusive"
        ? `${fields.path} is owned by another live process` +
          (fields.ownerPid !== undefined ? ` (pid ${fields.ownerPid})` : "") +
          ` holding the lock on ${fields.ownerPath}. Stop that process or use another ` +
          `directory; the lock is released when it closes the file or exits.` +
          ` (A user opening it with access "shared" needs every user to share it.)`
        : `${fields.path} is in use with access "shared" by ${
          sharedBy.length === 0
            ? "other live processes or isolates"
            : `live process(es) pid ${sharedBy.join(", ")}`
        } (lock on ${fields.ownerPath}). Open it with access "shared" too (nativeDriver), or ` +
          `stop them first: exclusive access needs the file alone.`,
    );
    this.heldAs = heldAs;
    this.sharedBy = sharedBy;
    this.path = fields.path;
    this.ownerPath = fields.ownerPath;
    this.ownerPid = fields.ownerPid;
  }
}

/** A lease was used after it was returned or closed. */
export class LeaseReleasedError extends ShardliteError {
  /** The shard file the lease belonged to. */
  readonly path: string;
  /** The lease's id within its pool. */
  readonly leaseId: number;
  /** Creates the error for lease `leaseId` of the pool on `path`. */
  constructor(path: string, leaseId: number) {
    super(
      `${path} - lease #${leaseId} was already returned; take a new one with getConnection().`,
    );
    this.path = path;
    this.leaseId = leaseId;
  }
}

/** A lease was handed to a pool that did not give it out. */
export class ForeignLeaseError extends ShardliteError {
  /** The path of the pool the lease was handed to. */
  readonly path: string;
  /** The path of the pool that owns the lease. */
  readonly leasePath: string;
  /** Creates the error. */
  constructor(path: string, leasePath: string) {
    super(
      `${path} - this lease belongs to another pool (on ${leasePath}); return it to that pool.`,
    );
    this.path = path;
    this.leasePath = leasePath;
  }
}

/** The shard file was deleted or replaced under a live pool. Nothing is recreated. */
export class ShardFileMissingError extends ShardliteError {
  /** The shard file. */
  readonly path: string;
  /**
   * `deleted` when the path no longer exists, `replaced` when it is another file now,
   * `truncated` when it lost its SQLite header (emptied or overwritten).
   */
  readonly reason: "deleted" | "replaced" | "truncated";
  /** Creates the error. */
  constructor(
    path: string,
    reason: "deleted" | "replaced" | "truncated",
    options?: ErrorOptions,
  ) {
    super(
      `${path} was ${reason} while the pool had it open; writes since then may be lost ` +
        `and no empty database was created in its place. Restore the file (or close the ` +
        `pool) and retry.`,
      options,
    );
    this.path = path;
    this.reason = reason;
  }
}

/**
 * The handle under a session broke (I/O error, corruption, closed underneath) and
 * the work in flight on it, such as an open transaction, was lost.
 */
export class ConnectionBrokenError extends ShardliteError {
  /** The shard file. */
  readonly path: string;
  /** Creates the error. */
  constructor(path: string, detail: string, options?: ErrorOptions) {
    super(`${path} - ${detail}`, options);
    this.path = path;
  }
}

/**
 * A shard worker (`workers` option) died — an uncaught error in it, out of memory, or it
 * was terminated — while calls on its shards were in flight: each such call fails with
 * this error. What was committed is on disk; a transaction open on those shards was
 * rolled back by SQLite. The handle counts as broken: the pool replaces it, the worker is
 * started again on the next call and its shards reopen (a stale lock the dead worker left
 * is cleared first). Retry the call (a transaction: from its start).
 *
 * @example Retry once when a worker died
 * ```ts
 * import { WorkerCrashedError } from "./errors.ts";
 * async function withRetry<T>(call: () => Promise<T>): Promise<T> {
 *   try {
 *     return await call();
 *   } catch (error) {
 *     if (!(error instanceof WorkerCrashedError)) throw error;
 *     return await call();
 *   }
 * }
 * if (await withRetry(() => Promise.resolve(1)) !== 1) throw new Error("unexpected");
 * ```
 */
export class WorkerCrashedError extends ConnectionBrokenError {
  /** The worker's index (shard `id` lives in worker `id % workers`). */
  readonly workerIndex: number;
  /** The shards whose handles were open in the worker when it died, in ascending order. */
  readonly shardIds: readonly number[];
  /** Creates the error for a call on `path`; `cause` says why the worker died. */
  constructor(
    fields: { path: string; workerIndex: number; shardIds: readonly number[]; reason: string },
    options?: ErrorOptions,
  ) {
    const shards = fields.shardIds.length === 0
      ? "no shard open"
      : `shard${fields.shardIds.length === 1 ? "" : "s"} ${fields.shardIds.join(", ")}`;
    super(
      fields.path,
      `worker ${fields.workerIndex} (${shards}) died: ${fields.reason}. The calls in flight on ` +
        `its shards failed (an open transaction was rolled back; committed rows are kept). ` +
        `The worker restarts and its shards reopen on the next call: retry it`,
      options,
    );
    this.workerIndex = fields.workerIndex;
    this.shardIds = fields.shardIds;
  }
}

/** Opening or configuring a shard file failed. */
export class ShardOpenError extends ShardliteError {
  /** The shard file. */
  readonly path: string;
  /** Creates the error. */
  constructor(path: string, detail: string, options?: ErrorOptions) {
    super(`${path} - ${detail}`, options);
    this.path = path;
  }
}

/** An SQL statement failed; carries the shard file and the statement. */
export class QueryError extends ShardliteError {
  /** The shard file. */
  readonly path: string;
  /** The SQL text that failed. */
  readonly sql: string;
  /** Creates the error; the driver's error is the cause. */
  constructor(path: string, sql: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`${path} - ${reason} (in: ${sql.length > 200 ? sql.slice(0, 200) + "…" : sql})`, {
      cause,
    });
    this.path = path;
    this.sql = sql;
  }
}

/**
 * SQL handed to a call that runs one statement (`run`, `all`, `get`, `execute`, ...)
 * holds more than one. Nothing ran: run scripts with `exec()`.
 */
export class MultipleStatementsError extends ShardliteError {
  /** The call that refused the SQL, such as `conn.all()`. */
  readonly call: string;
  /** Where the first statement ends (just past its `;`): the rest of the SQL starts here. */
  readonly offset: number;
  /** The text of the second statement, without its `;`. */
  readonly next: string;
  /** Creates the error; the message is built from the fields. */
  constructor(fields: { call: string; offset: number; next: string }) {
    const shown = fields.next.length > 60 ? fields.next.slice(0, 60) + "…" : fields.next;
    super(
      `${fields.call} runs one statement, but the SQL has more after offset ${fields.offset} ` +
        `(${JSON.stringify(shown)}); run scripts with exec(). Nothing ran.`,
    );
    this.call = fields.call;
    this.offset = fields.offset;
    this.next = fields.next;
  }
}

/** A table, column or other identifier is not a safe SQL identifier. Nothing ran. */
export class InvalidIdentifierError extends ShardliteError {
  /** The identifier as given (possibly truncated in the message). */
  readonly identifier: string;
  /** What the identifier was meant to name: "table", "column", ... */
  readonly kind: string;
  /** Creates the error. */
  constructor(identifier: string, kind: string, why: string) {
    const shown = JSON.stringify(
      identifier.length > 80 ? identifier.slice(0, 80) + "…" : identifier,
    );
    super(
      `invalid ${kind} name ${shown}: ${why}. Use letters, digits and underscores, ` +
        `starting with a letter or underscore (at most 128 characters).`,
    );
    this.identifier = identifier;
    this.kind = kind;
  }
}

/** The persisted shard map of a directory differs from the layout asked for. */
export class ShardMapMismatchError extends ShardliteError {
  /** The directory holding the shard map. */
  readonly dbDir: string;
  /** Creates the error. */
  constructor(dbDir: string, detail: string) {
    super(
      `${dbDir} - the persisted shard map does not match: ${detail}. Open the directory ` +
        `with its recorded layout, or reshard it.`,
    );
    this.dbDir = dbDir;
  }
}

/** An operation on one shard failed during a routed or cross-shard operation. */
export class ShardOperationError extends ShardliteError {
  /** The shard that failed. */
  readonly shardId: number;
  /** The shard file. */
  readonly path: string;
  /** Creates the error; the shard's error is the cause. */
  constructor(shardId: number, path: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`shard ${shardId} (${path}) failed: ${reason}`, { cause });
    this.shardId = shardId;
    this.path = path;
  }
}

/**
 * A shard on a database server (`ShardManagerOptions.shards`) cannot be reached: the
 * server is down, killed, unreachable, or gave no answer within the call's `timeoutMs`.
 * Only that shard's calls fail; the others carry on, and the shard is reached again by
 * itself once its server answers (nothing to reopen). A write that failed this way was
 * not acknowledged; one inside a transaction was rolled back by the server.
 */
export class ShardUnavailableError extends ShardOperationError {
  /** The shard's server, as configured (without its auth token). */
  readonly url: string;
  /** Creates the error; what the connection reported is the cause. */
  constructor(shardId: number, url: string, cause: unknown) {
    super(shardId, url, cause);
    const reason = cause instanceof Error ? cause.message : String(cause);
    let root: unknown = cause;
    while (root instanceof Error && root.cause !== undefined) root = root.cause;
    const why = root instanceof Error ? root.message : String(root);
    const hint = /auth|jwt|unauthori[sz]ed|forbidden|\b40[13]\b/i.test(why)
      ? "the server refused the credentials: check this shard's authToken"
      : /\b(404|400|405)\b|speaks hrana|unexpected (server )?response|invalid status/i.test(why)
      ? "something answers at that address, but not as a libSQL server (sqld 0.22 or later): " +
        "check the URL"
      : "check that the server runs and is reachable from here";
    this.message = `shard ${shardId} (${url}) is unavailable: ${reason}` +
      (why !== reason && !reason.includes(why) ? ` (${why})` : "") +
      `. Calls on the other shards carry on; this one is tried again on its next use ` +
      `(${hint}).`;
    this.url = url;
  }
}

/**
 * A cross-shard `insertMany` passed its commit point (the coordinator shard committed,
 * holding a redo record of every row), but another shard could not commit its part, even
 * on a second try. The batch is not lost: its missing part is applied when the directory
 * is next opened by a `ShardManager`. Until then that shard lacks the batch's rows.
 */
export class BatchPendingError extends ShardOperationError {
  /** The batch id (the redo record's key in `_shardlite_batches`). */
  readonly batchId: string;
  /** The coordinator shard, which committed and holds the redo record. */
  readonly coordinator: number;
  /** Creates the error for the first shard that failed; its error is the cause. */
  constructor(batchId: string, coordinator: number, shardId: number, path: string, cause: unknown) {
    super(shardId, path, cause);
    const reason = cause instanceof Error ? cause.message : String(cause);
    this.message = `insertMany batch ${batchId} committed on shard ${coordinator} (its ` +
      `commit point), but shard ${shardId} (${path}) could not commit its part: ${reason}. ` +
      `Nothing is lost: the part is kept in shard ${coordinator}'s redo record and is applied ` +
      `when the directory is next opened (shut the manager down and open it again).`;
    this.batchId = batchId;
    this.coordinator = coordinator;
  }
}

function shorten(text: string, max = 80): string {
  return text.length > max ? text.slice(0, max) + "…" : text;
}

/** A shard key cannot be routed: wrong type, not an exact integer, out of range, or bad text. */
export class InvalidShardKeyError extends ShardliteError {
  /** A printable description of the key as given, such as `number 1.5` or `boolean true`. */
  readonly key: string;
  /** Why the key was refused. */
  readonly reason: string;
  /** The table whose shard-key column the key was checked against, when there was one. */
  readonly table: string | undefined;
  /** That shard-key column, when there was one. */
  readonly column: string | undefined;
  /**
   * Creates the error from a description of the key and the reason it was refused;
   * `target` names the table and shard-key column (with its declared type) it was meant for.
   */
  constructor(
    key: string,
    reason: string,
    target?: { table: string; column: string; declaredType: string },
  ) {
    super(
      target === undefined
        ? `invalid shard key ${shorten(key)}: ${reason}. A shard key is an integer (a ` +
          `safe-integer number or a bigint within int64), a well-formed string or a Uint8Array.`
        : `invalid shard key ${shorten(key)} for ${target.table}.${target.column} (${
          target.declaredType === "" ? "declared without a type" : target.declaredType
        }): ${reason}. ` +
          `Nothing was written.`,
    );
    this.key = key;
    this.reason = reason;
    this.table = target?.table;
    this.column = target?.column;
  }
}

/** A lookup strategy has no entry for a key and no fallback strategy to ask. */
export class ShardKeyNotMappedError extends ShardliteError {
  /** A printable description of the key. */
  readonly key: string;
  /** Creates the error for the key described by `key`. */
  constructor(key: string) {
    super(
      `shard key ${shorten(key)} is not in the lookup map and the LookupStrategy has no ` +
        `fallback. Add the key to the map, or give the strategy a fallback strategy.`,
    );
    this.key = key;
  }
}

/** A persisted or hand-written strategy descriptor is malformed. Nothing was routed. */
export class InvalidStrategyDescriptorError extends ShardliteError {
  /** Where in the descriptor the problem is, such as `fallback.entries[2][1]`. */
  readonly at: string;
  /** What is wrong there. */
  readonly reason: string;
  /** Creates the error for the part `at` of a descriptor. */
  constructor(at: string, reason: string) {
    super(
      `invalid sharding strategy descriptor at ${at}: ${reason}. The shard map may be ` +
        `corrupt or written by another version; restore it or rebuild it with describe().`,
    );
    this.at = at;
    this.reason = reason;
  }
}

/** A value given for a column cannot be bound faithfully (NaN, an object, undefined, ...). */
export class InvalidValueError extends ShardliteError {
  /** The column the value was meant for. */
  readonly column: string;
  /** Why the value was refused. */
  readonly reason: string;
  /** Creates the error for `column`. */
  constructor(column: string, reason: string) {
    super(
      `invalid value for column ${JSON.stringify(shorten(column))}: ${reason}. Pass a number, ` +
        `bigint, string, Uint8Array, boolean or null.`,
    );
    this.column = column;
    this.reason = reason;
  }
}

/** A column definition for createTable is outside the grammar Shardlite accepts. */
export class InvalidSchemaError extends ShardliteError {
  /** The column whose definition was refused, when known. */
  readonly column: string | undefined;
  /** The definition as given. */
  readonly definition: string;
  /** Why it was refused. */
  readonly reason: string;
  /** Creates the error. */
  constructor(column: string | undefined, definition: string, reason: string) {
    super(
      `invalid column definition ${JSON.stringify(shorten(definition))}` +
        (column !== undefined ? ` for column ${JSON.stringify(shorten(column))}` : "") +
        `: ${reason}. Use a type name and simple constraints (PRIMARY KEY, NOT NULL, UNIQUE, ` +
        `DEFAULT <literal>, COLLATE, REFERENCES table(column)); create anything richer with raw SQL.`,
    );
    this.column = column;
    this.definition = definition;
    this.reason = reason;
  }
}

/** A query option (limit, offset, orderBy, a filter operator, an aggregate) is malformed. */
export class InvalidQueryError extends ShardliteError {
  /** The option that was refused, such as `limit` or `where.age`. */
  readonly option: string;
  /** Why it was refused. */
  readonly reason: string;
  /** Creates the error for `option`; `options.cause` is SQLite's refusal, when it refused. */
  constructor(option: string, reason: string, options?: ErrorOptions) {
    super(`invalid query option ${option}: ${reason}.`, options);
    this.option = option;
    this.reason = reason;
  }
}

/** An integer SUM across shards does not fit in 64 bits; SQLite reports "integer overflow". */
export class AggregateOverflowError extends ShardliteError {
  /** The aggregate, such as `SUM(amount)`. */
  readonly aggregate: string;
  /** The exact total that overflowed. */
  readonly total: bigint;
  /** Creates the error. */
  constructor(aggregate: string, total: bigint) {
    super(
      `${aggregate} across shards is ${total}, outside the 64-bit integer range (SQLite: ` +
        `"integer overflow"). Sum fewer rows, or cast the column to REAL to get an approximation.`,
    );
    this.aggregate = aggregate;
    this.total = total;
  }
}

/** A backup destination cannot be used: it is not empty, or not a directory. Nothing was written. */
export class BackupDestinationError extends ShardliteError {
  /** The destination directory as given. */
  readonly path: string;
  /** Why it was refused. */
  readonly reason: "not-empty" | "not-a-directory";
  /** Up to 5 entries found in it, for `not-empty`. */
  readonly entries: readonly string[];
  /** Creates the error. */
  constructor(
    path: string,
    reason: "not-empty" | "not-a-directory",
    entries: readonly string[] = [],
  ) {
    super(
      reason === "not-empty"
        ? `backup destination ${path} is not empty (it holds ${
          entries.map((e) => JSON.stringify(e)).join(", ")
        }${entries.length >= 5 ? ", …" : ""}); a backup never overwrites files. Choose a new ` +
          `or empty directory.`
        : `backup destination ${path} exists and is not a directory. Choose a new or empty directory.`,
    );
    this.path = path;
    this.reason = reason;
    this.entries = entries;
  }
}

/** A backup failed verification before anything was restored: the target was not touched. */
export class BackupVerificationError extends ShardliteError {
  /** The backup directory. */
  readonly backupDir: string;
  /** The file that failed (manifest, shard map or shard file). */
  readonly path: string;
  /** What failed: the manifest, the shard map, a missing file, a checksum, an integrity check. */
  readonly problem: "manifest" | "shard-map" | "missing-file" | "checksum" | "integrity";
  /** Creates the error. */
  constructor(
    fields: {
      backupDir: string;
      path: string;
      problem: "manifest" | "shard-map" | "missing-file" | "checksum" | "integrity";
      detail: string;
    },
    options?: ErrorOptions,
  ) {
    super(
      `backup ${fields.backupDir} failed verification (${fields.problem}): ${fields.path} - ` +
        `${fields.detail}. Nothing was restored. Use another backup, or recopy this one from ` +
        `its source.`,
      options,
    );
    this.backupDir = fields.backupDir;
    this.path = fields.path;
    this.problem = fields.problem;
  }
}

/** A restore target cannot be used: it is not empty (and overwrite was not asked), or unusable. */
export class RestoreTargetError extends ShardliteError {
  /** The target directory as given. */
  readonly dbDir: string;
  /** Why it was refused. */
  readonly reason: "not-empty" | "not-a-directory" | "is-backup";
  /** Up to 5 entries found in it, for `not-empty`. */
  readonly entries: readonly string[];
  /** Creates the error. */
  constructor(
    dbDir: string,
    reason: "not-empty" | "not-a-directory" | "is-backup",
    entries: readonly string[] = [],
  ) {
    const what = reason === "not-empty"
      ? `is not empty (it holds ${entries.map((e) => JSON.stringify(e)).join(", ")}${
        entries.length >= 5 ? ", …" : ""
      }). Restore into a new or empty directory, or pass overwrite: true (CLI: --overwrite) ` +
        `to replace its shard files and shard map`
      : reason === "not-a-directory"
      ? `exists and is not a directory. Restore into a new or empty directory`
      : `is the backup directory itself. Restore into another directory`;
    super(`restore target ${dbDir} ${what}; nothing was changed.`);
    this.dbDir = dbDir;
    this.reason = reason;
    this.entries = entries;
  }
}

/** A reshard cannot proceed (missing shard key, collision, pending plan ...). */
export class ReshardError extends ShardliteError {
  /** The data directory. */
  readonly dbDir: string;
  /** The table concerned, if any. */
  readonly table: string | undefined;
  /** Creates the error. */
  constructor(dbDir: string, detail: string, table?: string, options?: ErrorOptions) {
    super(`${dbDir} - reshard: ${detail}`, options);
    this.dbDir = dbDir;
    this.table = table;
  }
}

/** A routed call names a table that does not exist (on the shard it was sent to). */
export class TableNotFoundError extends ShardliteError {
  /** The table as named in the call. */
  readonly table: string;
  /** The shard that was asked, when one was. */
  readonly shardId: number | undefined;
  /** Creates the error for `table`; `shardId` is the shard that lacks it, if known. */
  constructor(table: string, shardId?: number, options?: ErrorOptions) {
    super(
      `table ${table} does not exist${
        shardId === undefined ? "" : ` on shard ${shardId}`
      }. Create it on every shard first: manager.createTable(${
        JSON.stringify(table)
      }, { id: "INTEGER PRIMARY KEY", ... }, { shardKey: "id" }) (or applySchema(), and then ` +
        `pass each row's shard key).`,
      options,
    );
    this.table = table;
    this.shardId = shardId;
  }
}

/** A migration list handed to `migrate()` is malformed. Nothing was applied or written. */
export class InvalidMigrationError extends ShardliteError {
  /** Where in the list the problem is, such as `migrations[2].up`. */
  readonly at: string;
  /** What is wrong there. */
  readonly reason: string;
  /** Creates the error for the part `at` of the list. */
  constructor(at: string, reason: string) {
    super(
      `invalid migration list at ${at}: ${reason}. Each migration is { id: string; up: ` +
        `string | ((conn) => Promise<void>) } with a unique, non-empty id. Nothing was applied.`,
    );
    this.at = at;
    this.reason = reason;
  }
}

/**
 * A shard's applied migrations disagree with the list given: one was removed, reordered or
 * renamed, the list lacks one the shard applied, or an applied migration's SQL changed.
 * Checked on every shard before anything runs: nothing was applied.
 */
export class MigrationHistoryError extends ShardliteError {
  /** The first shard whose history disagrees. */
  readonly shardId: number;
  /** Its file. */
  readonly path: string;
  /** The 1-based position of the first disagreement. */
  readonly position: number;
  /** The id the shard applied at that position. */
  readonly appliedId: string;
  /** The id the list has at that position (undefined when the list is shorter). */
  readonly givenId: string | undefined;
  /** `order`: another id at that position; `missing`: the list ends earlier; `changed`: the SQL text differs. */
  readonly reason: "order" | "missing" | "changed";
  /** Creates the error; the message is built from the fields. */
  constructor(fields: {
    shardId: number;
    path: string;
    position: number;
    appliedId: string;
    givenId: string | undefined;
    reason: "order" | "missing" | "changed";
  }) {
    const where = `shard ${fields.shardId} (${fields.path})`;
    const applied = JSON.stringify(fields.appliedId);
    super(
      fields.reason === "order"
        ? `${where} applied migration ${applied} as number ${fields.position}, but the list ` +
          `has ${JSON.stringify(fields.givenId)} there: a migration was removed, reordered or ` +
          `renamed. Keep applied migrations first, in the order applied, and append new ones ` +
          `at the end. Nothing was applied.`
        : fields.reason === "missing"
        ? `${where} applied migration ${applied} as number ${fields.position}, but the list ` +
          `holds only ${fields.position - 1}: pass every applied migration, in order (is this ` +
          `an older version of the code?). Nothing was applied.`
        : `the SQL of migration ${applied} (number ${fields.position}) differs from the text ` +
          `${where} applied (its SHA-256 checksum changed). Applied migrations must not be ` +
          `edited: add a new migration instead, or pass { verifyChecksums: false } if the ` +
          `change is only cosmetic. Nothing was applied.`,
    );
    this.shardId = fields.shardId;
    this.path = fields.path;
    this.position = fields.position;
    this.appliedId = fields.appliedId;
    this.givenId = fields.givenId;
    this.reason = fields.reason;
  }
}

/**
 * A migration failed on a shard. Its transaction there was rolled back, so that shard stays
 * at its previous version; shards where it succeeded are ahead. No later migration was
 * started. Fix the cause and call `migrate()` again: it applies only what each shard lacks.
 */
export class MigrationError extends ShardliteError {
  /** The migration that failed. */
  readonly migrationId: string;
  /** The first shard (lowest id) it failed on; its error is the cause. */
  readonly shardId: number;
  /** That shard's file. */
  readonly path: string;
  /** The last migration that shard still has (null: none). */
  readonly shardVersion: string | null;
  /** Every shard the migration failed on, in order (`shardId` first). */
  readonly failedShards: readonly number[];
  /** Shards at this migration now (applied by this call or before). */
  readonly migratedShards: readonly number[];
  /** Creates the error; the first failing shard's error is the cause. */
  constructor(
    fields: {
      migrationId: string;
      shardId: number;
      path: string;
      shardVersion: string | null;
      failedShards: readonly number[];
      migratedShards: readonly number[];
    },
    cause: unknown,
  ) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    const id = JSON.stringify(fields.migrationId);
    const others = fields.failedShards.filter((s) => s !== fields.shardId);
    super(
      `migration ${id} failed on shard ${fields.shardId} (${fields.path}): ${reason}. ` +
        `Shard ${fields.shardId} stays at ${
          fields.shardVersion === null ? "no migration" : JSON.stringify(fields.shardVersion)
        } (its transaction was rolled back)` +
        (others.length > 0 ? `; it failed on shards ${others.join(", ")} too` : "") +
        `; ${
          fields.migratedShards.length === 0
            ? "no shard is"
            : `shard${fields.migratedShards.length === 1 ? "" : "s"} ${
              fields.migratedShards.join(", ")
            } ${fields.migratedShards.length === 1 ? "is" : "are"}`
        } already at ${id}. Fix the cause and call migrate() again: it applies only what ` +
        `each shard lacks.`,
      { cause },
    );
    this.migrationId = fields.migrationId;
    this.shardId = fields.shardId;
    this.path = fields.path;
    this.shardVersion = fields.shardVersion;
    this.failedShards = fields.failedShards;
    this.migratedShards = fields.migratedShards;
  }
}
