/**
 * Versioned schema migrations over every shard.
 *
 * A migration is `{ id, up }`. The list is applied in order; on each shard, each
 * migration runs in one transaction (`BEGIN IMMEDIATE` … `up` … bookkeeping row …
 * `COMMIT`), and the shard records it in its `_shardlite_migrations` table. So a shard
 * is always exactly at some prefix of the list: a failing migration rolls back on its
 * shard, which stays at its previous version.
 *
 * Order of work: migration by migration. Migration k runs on every shard that lacks it
 * (at most `maxConcurrentShards` at once), and all of them finish before migration k+1
 * starts on any shard. When k fails on some shard, the other shards still finish k (they
 * are ahead by one), nothing later starts, and the call rejects with
 * {@link MigrationError}. Calling `migrate()` again applies only what each shard lacks.
 *
 * @module
 */

import {
  InvalidMigrationError,
  MigrationError,
  MigrationHistoryError,
  ReshardError,
  ShardOperationError,
} from "../errors.ts";
import type { PooledConnection } from "../pool/connection.ts";
import type { ConnectionPool } from "../pool/pool.ts";
import { findTransactionControl, splitStatements } from "../sql/statements.ts";
import type { ReshardPlan } from "./reshard.ts";

/** The bookkeeping table every shard keeps its applied migrations in. */
export const MIGRATIONS_TABLE = "_shardlite_migrations";

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (` +
  `id TEXT PRIMARY KEY NOT NULL, position INTEGER NOT NULL UNIQUE, checksum TEXT, ` +
  `applied_at TEXT NOT NULL)`;

/**
 * One versioned schema change. `up` is SQL (one or more `;`-separated statements, run as
 * one transaction: it must not hold BEGIN, COMMIT, END or ROLLBACK), or a function that
 * does the work on `conn`, which is already inside the migration's transaction on shard
 * `shardId`. The function must use only `conn` (another lease on the same shard would
 * wait for this transaction forever) and must not commit or roll back.
 */
export interface Migration {
  /** A unique, non-empty id, such as `"0003_add_email"`. Recorded on every shard. */
  readonly id: string;
  /** The change: SQL text, or a function run inside the migration's transaction. */
  readonly up: string | ((conn: PooledConnection, shardId: number) => Promise<void> | void);
}

/** Options of {@link ShardManager.migrate}. */
export interface MigrateOptions {
  /**
   * Refuse when the SQL of an applied migration differs from the text the shard applied
   * (its SHA-256 is recorded). Default true. Function migrations have no checksum.
   */
  verifyChecksums?: boolean;
  /** Stops before the next migration starts; migrations committed so far stay. */
  signal?: AbortSignal;
}

/** What {@link ShardManager.migrate} did. */
export interface MigrateReport {
  /** The last migration of the list, which every shard is at now (null for an empty list). */
  version: string | null;
  /** Every shard, in order, with the ids this call applied there (often none). */
  shards: { shardId: number; path: string; applied: string[] }[];
  /** Migration transactions this call committed, over every shard. */
  applied: number;
  /** Wall time of the call, ms. */
  durationMs: number;
}

/** One row of a shard's `_shardlite_migrations` table. */
export interface AppliedMigration {
  /** The migration's id. */
  id: string;
  /** Its 1-based position in the list when it was applied. */
  position: number;
  /** SHA-256 (hex) of its SQL text; null for a function migration. */
  checksum: string | null;
  /** When the shard committed it (ISO 8601, UTC). */
  appliedAt: string;
}

/** One shard's migrations, from {@link ShardManager.migrationStatus}. */
export interface ShardMigrationStatus {
  /** The shard. */
  shardId: number;
  /** Its file. */
  path: string;
  /** The last migration applied (null: none). */
  version: string | null;
  /** Every migration applied, in order. */
  applied: AppliedMigration[];
}

/** What migrations need from the manager (a {@link ShardManager} is one). */
export interface MigrationTarget {
  /** The current layout's shards. */
  readonly strategy: { getAllShardIds(): number[] };
  /** The pool of a shard. */
  getPool(shardId: number): ConnectionPool;
  /** How many shards work at once. */
  readonly maxConcurrentShards: number;
}

/** A validated migration with the checksum of its SQL. */
export interface PreparedMigration {
  /** The id. */
  readonly id: string;
  /** The change. */
  readonly up: Migration["up"];
  /** SHA-256 (hex) of the SQL text, or null for a function. */
  readonly checksum: string | null;
}

/**
 * Validates a migration list and computes the checksums of its SQL. Throws
 * {@link InvalidMigrationError} on the first problem; touches no shard.
 */
export async function prepareMigrations(migrations: unknown): Promise<PreparedMigration[]> {
  if (!Array.isArray(migrations)) {
    throw new InvalidMigrationError(
      "migrations",
      `expected an array of migrations, got ${describe(migrations)}`,
    );
  }
  const seen = new Map<string, number>();
  const prepared: PreparedMigration[] = [];
  for (let i = 0; i < migrations.length; i++) {
    const at = `migrations[${i}]`;
    const migration: unknown = migrations[i];
    if (migration === null || typeof migration !== "object" || Array.isArray(migration)) {
      throw new InvalidMigrationError(
        at,
        `expected an object { id, up }, got ${describe(migration)}`,
      );
    }
    const { id, up } = migration as { id?: unknown; up?: unknown };
    if (typeof id !== "string" || id.trim() === "") {
      throw new InvalidMigrationError(
        `${at}.id`,
        `expected a non-empty string, got ${describe(id)}`,
      );
    }
    const earlier = seen.get(id);
    if (earlier !== undefined) {
      throw new InvalidMigrationError(
        `${at}.id`,
        `${JSON.stringify(id)} is also the id of migrations[${earlier}]; ids must be unique`,
      );
    }
    seen.set(id, i);
    if (typeof up === "function") {
      prepared.push({ id, up: up as Migration["up"], checksum: null });
      continue;
    }
    if (typeof up !== "string") {
      throw new InvalidMigrationError(
        `${at}.up`,
        `expected SQL text or a function (conn) => Promise<void>, got ${describe(up)}`,
      );
    }
    if (splitStatements(up).length === 0) {
      throw new InvalidMigrationError(`${at}.up`, "the SQL text holds no statement");
    }
    const control = findTransactionControl(up);
    if (control !== undefined) {
      throw new InvalidMigrationError(
        `${at}.up`,
        `migration ${JSON.stringify(id)} holds a ${control.keyword} statement at offset ` +
          `${control.offset}; each migration already runs as one transaction per shard, so ` +
          `leave out BEGIN/COMMIT/END/ROLLBACK (SAVEPOINT and RELEASE are fine)`,
      );
    }
    prepared.push({ id, up, checksum: await sha256(up) });
  }
  return prepared;
}

/** The migrations applied on the shard of `conn`, in order; empty when it has none. */
export async function readMigrationHistory(conn: PooledConnection): Promise<AppliedMigration[]> {
  const table = await conn.get(
    "SELECT 1 AS x FROM sqlite_schema WHERE type = 'table' AND name = ?",
    [MIGRATIONS_TABLE],
  );
  if (table === undefined) return [];
  const rows = await conn.all(
    `SELECT id, position, checksum, applied_at FROM ${MIGRATIONS_TABLE} ORDER BY position`,
  );
  return rows.map((row) => ({
    id: String(row["id"]),
    position: Number(row["position"]),
    checksum: row["checksum"] === null ? null : String(row["checksum"]),
    appliedAt: String(row["applied_at"]),
  }));
}

/**
 * Gives the shard of `conn` the migration history `rows` (a copy of another shard's),
 * in one transaction, unless it already has a history table. A reshard calls this for
 * the shards it creates with shard 0's schema, so they count as migrated as far as the
 * schema they got. Returns whether it wrote anything.
 */
export async function seedMigrationHistory(
  conn: PooledConnection,
  rows: readonly AppliedMigration[],
): Promise<boolean> {
  if (rows.length === 0) return false;
  return await conn.transaction(async (tx) => {
    const table = await tx.get(
      "SELECT 1 AS x FROM sqlite_schema WHERE type = 'table' AND name = ?",
      [MIGRATIONS_TABLE],
    );
    if (table !== undefined) return false;
    await tx.exec(CREATE_TABLE);
    await tx.runMany(
      `INSERT INTO ${MIGRATIONS_TABLE} (id, position, checksum, applied_at) VALUES (?, ?, ?, ?)`,
      rows.map((row) => [row.id, row.position, row.checksum, row.appliedAt]),
    );
    return true;
  });
}

/** Every shard's applied migrations, in shard order. */
export async function migrationStatus(target: MigrationTarget): Promise<ShardMigrationStatus[]> {
  const ids = target.strategy.getAllShardIds();
  return await boundedAll(ids, target.maxConcurrentShards, async (shardId) => {
    const pool = target.getPool(shardId);
    const applied = await pool.withConnection(readMigrationHistory).catch((error) => {
      throw new ShardOperationError(shardId, pool.path, error);
    });
    return { shardId, path: pool.path, version: applied.at(-1)?.id ?? null, applied };
  });
}

/**
 * Applies `migrations` (from {@link prepareMigrations}) on every shard of `target`. The
 * caller keeps reshards off while this runs.
 */
export async function runMigrations(
  target: MigrationTarget,
  migrations: readonly PreparedMigration[],
  options: MigrateOptions = {},
): Promise<MigrateReport> {
  const started = performance.now();
  options.signal?.throwIfAborted();
  const statuses = await migrationStatus(target);
  // Every shard's history must be a prefix of the list before anything runs.
  for (const status of statuses) checkHistory(status, migrations, options);
  const done = new Map(statuses.map((s) => [s.shardId, [] as string[]]));
  const at = new Map(statuses.map((s) => [s.shardId, s.applied.length]));
  let applied = 0;
  for (let index = 0; index < migrations.length; index++) {
    const migration = migrations[index] as PreparedMigration;
    const lacking = statuses.filter((s) => (at.get(s.shardId) ?? 0) <= index);
    if (lacking.length === 0) continue;
    options.signal?.throwIfAborted();
    const outcomes = await boundedSettled(
      lacking,
      target.maxConcurrentShards,
      (status) => applyOne(target.getPool(status.shardId), status.shardId, migration, index),
    );
    const failed: { shardId: number; path: string; error: unknown }[] = [];
    outcomes.forEach((outcome, i) => {
      const status = lacking[i] as ShardMigrationStatus;
      if (outcome.status === "rejected") {
        failed.push({ shardId: status.shardId, path: status.path, error: outcome.reason });
        return;
      }
      at.set(status.shardId, index + 1);
      if (outcome.value) {
        done.get(status.shardId)?.push(migration.id);
        applied++;
      }
    });
    const first = failed[0];
    if (first !== undefined) {
      const previous = index === 0 ? null : (migrations[index - 1] as PreparedMigration).id;
      throw new MigrationError(
        {
          migrationId: migration.id,
          shardId: first.shardId,
          path: first.path,
          shardVersion: previous,
          failedShards: failed.map((f) => f.shardId),
          migratedShards: statuses.map((s) => s.shardId).filter((id) => (at.get(id) ?? 0) > index),
        },
        first.error,
      );
    }
  }
  return {
    version: migrations.at(-1)?.id ?? null,
    shards: statuses.map((s) => ({
      shardId: s.shardId,
      path: s.path,
      applied: done.get(s.shardId) ?? [],
    })),
    applied,
    durationMs: performance.now() - started,
  };
}

/**
 * The refusal of `migrate()` while `plan` is unfinished: schema changes must not run
 * while rows are between layouts (a reshard copies shard 0's schema to new shards).
 */
export function pendingReshardRefusal(
  dbDir: string,
  plan: ReshardPlan,
  cause?: unknown,
): ReshardError {
  return new ReshardError(
    dbDir,
    `migrate() refuses to run while the reshard from ${JSON.stringify(plan.from)} to ` +
      `${JSON.stringify(plan.to)} is unfinished: resume it with manager.reshard(${
        plan.to.type === "hash" ? plan.to.numShards : "<the same strategy>"
      }) or roll it back with abortReshard(), then call migrate() again. Nothing was applied.`,
    undefined,
    cause === undefined ? undefined : { cause },
  );
}

/** Throws {@link MigrationHistoryError} unless the shard's history is a prefix of the list. */
function checkHistory(
  status: ShardMigrationStatus,
  migrations: readonly PreparedMigration[],
  options: MigrateOptions,
): void {
  for (let k = 0; k < status.applied.length; k++) {
    const applied = status.applied[k] as AppliedMigration;
    const given = migrations[k];
    const reason = given === undefined
      ? "missing"
      : given.id !== applied.id
      ? "order"
      : options.verifyChecksums !== false && applied.checksum !== null &&
          given.checksum !== null && applied.checksum !== given.checksum
      ? "changed"
      : undefined;
    if (reason !== undefined) {
      throw new MigrationHistoryError({
        shardId: status.shardId,
        path: status.path,
        position: k + 1,
        appliedId: applied.id,
        givenId: given?.id,
        reason,
      });
    }
  }
}

/**
 * Applies one migration on one shard in one transaction. Returns false when the shard
 * had it already (another `migrate()` got there first).
 */
async function applyOne(
  pool: ConnectionPool,
  shardId: number,
  migration: PreparedMigration,
  index: number,
): Promise<boolean> {
  return await pool.withConnection((conn) =>
    conn.transaction(async (tx) => {
      // Created inside the first migration's transaction: a failure leaves no trace.
      await tx.exec(CREATE_TABLE);
      const row = await tx.get(
        `SELECT count(*) AS n, max(id = ?) AS here FROM ${MIGRATIONS_TABLE}`,
        [migration.id],
      );
      if (Number(row?.["here"] ?? 0) === 1) return false;
      if (Number(row?.["n"] ?? 0) !== index) {
        throw new Error(
          `the shard's migration history changed while migrate() ran (it holds ` +
            `${String(row?.["n"])} migrations, expected ${index})`,
        );
      }
      if (typeof migration.up === "string") await tx.exec(migration.up);
      else await migration.up(tx, shardId);
      // A COMMIT or ROLLBACK inside `up` would have ended the transaction early.
      if (!tx.inTransaction) {
        throw new Error(
          `migration ${JSON.stringify(migration.id)} ended its own transaction (a COMMIT or ` +
            `ROLLBACK inside up); what it did before that stays, unrecorded: undo it by hand`,
        );
      }
      await tx.run(
        `INSERT INTO ${MIGRATIONS_TABLE} (id, position, checksum, applied_at) VALUES (?, ?, ?, ?)`,
        [migration.id, index + 1, migration.checksum, new Date().toISOString()],
      );
      return true;
    })
  );
}

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return `the string ${JSON.stringify(value.slice(0, 40))}`;
  return typeof value;
}

/** `fn` over `items`, at most `limit` at once, settled in item order. */
async function boundedSettled<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<PromiseSettledResult<R>[]> {
  const results = new Array<PromiseSettledResult<R>>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        results[i] = { status: "fulfilled", value: await fn(items[i] as T) };
      } catch (reason) {
        results[i] = { status: "rejected", reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Like {@link boundedSettled}, rejecting with the first failure (in item order). */
async function boundedAll<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const settled = await boundedSettled(items, limit, fn);
  return settled.map((outcome) => {
    if (outcome.status === "rejected") throw outcome.reason;
    return outcome.value;
  });
}

/**
 * When shards hold different migration histories, a description grouping shards by
 * version (`shards 0, 2 at "0002_email" (2 applied); shard 1 at "0001_users" (1
 * applied)`); undefined when they all agree.
 */
export function describeVersionSpread(
  shards: readonly { shardId: number; applied: readonly { id: string }[] }[],
): string | undefined {
  const groups = new Map<string, { label: string; shardIds: number[] }>();
  for (const shard of shards) {
    const key = shard.applied.map((m) => m.id).join("\0");
    let group = groups.get(key);
    if (group === undefined) {
      const last = shard.applied.at(-1);
      const label = last === undefined
        ? "no migration"
        : `${JSON.stringify(last.id)} (${shard.applied.length} applied)`;
      groups.set(key, group = { label, shardIds: [] });
    }
    group.shardIds.push(shard.shardId);
  }
  if (groups.size <= 1) return undefined;
  return [...groups.values()].map((g) =>
    `shard${g.shardIds.length === 1 ? "" : "s"} ${g.shardIds.join(", ")} at ${g.label}`
  ).join("; ");
}
