/**
 * The `shardlite` command line: `info`, `check`, `backup`, `restore` and `reshard` over
 * a shard directory. Every command is a function of its arguments writing through
 * injected writers, so tests run it in-process; `main.ts` is the thin entry.
 *
 * Exit codes: {@link EXIT_OK} (0), {@link EXIT_PROBLEM} (1: a problem was found or the
 * command failed), {@link EXIT_USAGE} (2: unknown command or flag, missing argument).
 *
 * @module
 */

import { checkPlacement, type PlacementFindings } from "./check_placement.ts";
import { parseArgs } from "node:util";
import { backupShards, restoreShards } from "../api/backup.ts";
import { parseShardFileName, shardFileName } from "../api/layout.ts";
import { ShardManager } from "../api/manager.ts";
import { describeVersionSpread, readMigrationHistory } from "../api/migrations.ts";
import { RESHARD_PLAN_FILE, type ReshardReport } from "../api/reshard.ts";
import { readShardMap, SHARD_MAP_FILE, type ShardMap } from "../api/shard_map.ts";
import { ShardliteError, ShardLockedError } from "../errors.ts";
import { type StrategyDescriptor, strategyFromDescriptor } from "../routing/strategies.ts";

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

/** What {@link runCliCaptured} returns. */
export interface CliResult {
  /** The exit code. */
  code: number;
  /** Everything written to stdout. */
  stdout: string;
  /** Everything written to stderr. */
  stderr: string;
}

const HOT_SKEW = 1.5;

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

const HELP: Record<string, string> = {
  info: `Usage: deno task shardlite info <dbDir> [--json]

Prints the shard map (shard count, strategy, tables and their shard keys) and, per
shard, rows per table and file size (database + WAL); then the skew of each table
(max rows on one shard / mean rows per shard), flagging a hot shard above ${HOT_SKEW}.

Options:
  --json       one JSON document on stdout, nothing else
  -h, --help   this help
`,
  check: `Usage: deno task shardlite check <dbDir> [--json] [--repair]

Checks the shard map against the files: a shard file not created yet is a warning, a
shard_<n>.db beyond the map's shard count, an unfinished reshard, a shard failing
PRAGMA integrity_check, shards at different migration versions (migrate()) or a row
on a shard its key does not map to is a problem. Exits 1 when a problem is found.

Options:
  --json       one JSON document on stdout, nothing else
  --repair     move misplaced rows to their shard (crash-safe; rows whose key already
               exists there stay and are reported)
  -h, --help   this help
`,
  backup: `Usage: deno task shardlite backup <dbDir> <dest> [--point-in-time]

Writes a consistent snapshot of every shard (VACUUM INTO), the shard map and a
manifest with checksums into <dest>, which must be new or empty. Progress on stderr.

Options:
  --point-in-time   pause writes on every shard at once, so all shards are captured
                    at the same instant (reports how long writes were paused)
  -h, --help        this help
`,
  restore: `Usage: deno task shardlite restore <backup> <dbDir> [--overwrite]

Verifies the backup (manifest, shard map, SHA-256 and integrity of every file) before
touching <dbDir>, then installs the files and writes the shard map last. <dbDir> must
be new or empty unless --overwrite. Progress on stderr.

Options:
  --overwrite   replace the shard files and map of a non-empty <dbDir> (refused while
                any process has it open); shard files beyond the backup's count go
  -h, --help    this help
`,
  reshard: `Usage: deno task shardlite reshard <dbDir> --shards <n>

Moves every row to the shard a ${"`"}hash${"`"} layout of <n> shards assigns it, crash-safe and
resumable (run the same command again after an interruption). A progress bar on stderr.

Options:
  --shards <n>  the new number of shards (required)
  -h, --help    this help
`,
};

/** Bad arguments: printed with the command's usage, exit 2. */
class UsageError extends Error {}

type Values = Record<string, string | boolean | undefined>;

function parse(
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

/** Reads the map of `dbDir` or says why there is none. */
function requireMap(dbDir: string): ShardMap {
  let isDirectory = false;
  try {
    isDirectory = Deno.statSync(dbDir).isDirectory;
  } catch {
    throw new CommandFailure(`${dbDir} does not exist; give the directory of a shard set.`);
  }
  if (!isDirectory) throw new CommandFailure(`${dbDir} is not a directory.`);
  const map = readShardMap(dbDir);
  if (map === undefined) {
    throw new CommandFailure(
      `${dbDir} has no shard map (${SHARD_MAP_FILE}); it is not a Shardlite directory, or a ` +
        `restore into it stopped half way (run the restore again with --overwrite).`,
    );
  }
  return map;
}

/** A failure with a message meant for the operator as is: exit 1. */
class CommandFailure extends Error {}

function openManager(dbDir: string, map: ShardMap): ShardManager {
  return new ShardManager({
    dbDir,
    strategy: strategyFromDescriptor(map.strategy),
    // Quiet pools: the command reports what matters itself.
    pool: { onEvent: () => {} },
  });
}

/** Describes a strategy in a few words. */
export function describeStrategy(descriptor: StrategyDescriptor): string {
  switch (descriptor.type) {
    case "hash":
      return `hash (jump consistent hash, ${descriptor.numShards} shards)`;
    case "modulo":
      return `modulo (|key| % ${descriptor.numShards})`;
    case "range": {
      const shown = descriptor.boundaries.slice(0, 5).map((b) => JSON.stringify(b)).join(", ");
      return `range (boundaries ${shown}${descriptor.boundaries.length > 5 ? ", …" : ""})`;
    }
    case "lookup":
      return `lookup (${descriptor.entries.length} pinned keys; ${
        descriptor.fallback === undefined
          ? "no fallback"
          : `fallback ${describeStrategy(descriptor.fallback)}`
      })`;
  }
}

/** Formats a byte count with decimal units (kB = 1000 B). */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = "B";
  for (const next of units) {
    if (value < 1000) break;
    value /= 1000;
    unit = next;
  }
  return `${value.toFixed(value < 10 ? 2 : 1)} ${unit}`;
}

function table(rows: string[][], rightAligned: (column: number) => boolean): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => widths[i] = Math.max(widths[i] ?? 0, cell.length));
  }
  return rows.map((row) =>
    row.map((cell, i) =>
      rightAligned(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)
    ).join("  ").trimEnd() + "\n"
  ).join("");
}

/** One table's skew across shards, as `info` reports it. */
export interface TableSkew {
  /** Rows over all shards. */
  total: number;
  /** Mean rows per shard (over every shard of the map). */
  mean: number;
  /** Rows on the fullest shard. */
  max: number;
  /** `max / mean`; null for an empty table. */
  skew: number | null;
  /** The fullest shard, when `skew` is above 1.5. */
  hotShard: number | null;
}

function skewOf(counts: number[]): TableSkew {
  const total = counts.reduce((a, b) => a + b, 0);
  const mean = total / Math.max(counts.length, 1);
  const max = Math.max(0, ...counts);
  const skew = mean === 0 ? null : max / mean;
  return {
    total,
    mean,
    max,
    skew,
    hotShard: skew !== null && skew > HOT_SKEW ? counts.indexOf(max) : null,
  };
}

async function info(args: string[], io: CliIO): Promise<number> {
  const parsed = parse("info", args, { json: { type: "boolean" } }, ["dbDir"]);
  if (parsed === "help") return help(io, "info");
  const json = parsed.values.json === true;
  const dbDir = parsed.positionals[0] as string;
  return await guarded(io, json, dbDir, async () => {
    const map = requireMap(dbDir);
    await using manager = openManager(dbDir, map);
    const stats = await manager.getShardStats();
    const tables = Object.keys(map.tables).sort();
    const skew: Record<string, TableSkew> = {};
    for (const name of tables) skew[name] = skewOf(stats.map((s) => s.rows[name] ?? 0));
    const shards = stats.map((s) => ({
      shardId: s.shardId,
      file: shardFileName(s.shardId),
      exists: s.exists,
      sizeBytes: s.sizeBytes,
      rows: s.rows,
    }));
    const hot = tables.flatMap((name) => {
      const s = skew[name] as TableSkew;
      return s.hotShard === null ? [] : [{ table: name, shardId: s.hotShard, skew: s.skew }];
    });
    if (json) {
      io.stdout(
        JSON.stringify(
          {
            ok: true,
            dbDir,
            numShards: map.numShards,
            strategy: map.strategy,
            tables: map.tables,
            shards,
            totalBytes: shards.reduce((a, s) => a + s.sizeBytes, 0),
            skew,
            hot,
          },
          null,
          2,
        ) + "\n",
      );
      return EXIT_OK;
    }
    let out = `${dbDir}\n`;
    out += `  shards:    ${map.numShards}\n`;
    out += `  strategy:  ${describeStrategy(map.strategy)}\n`;
    out += `  tables:    ${
      tables.length === 0 ? "(none)" : tables.map((name) => {
        const key = map.tables[name]?.shardKey;
        return `${name} (${
          key === null || key === undefined ? "no shard key" : `shard key ${key}`
        })`;
      }).join(", ")
    }\n\n`;
    const rows: string[][] = [["shard", "file", "size", ...tables]];
    for (const s of shards) {
      rows.push([
        String(s.shardId),
        s.exists ? s.file : `${s.file} (not created yet)`,
        s.exists ? formatBytes(s.sizeBytes) : "-",
        ...tables.map((name) => s.exists ? String(s.rows[name] ?? 0) : "-"),
      ]);
    }
    rows.push([
      "total",
      "",
      formatBytes(shards.reduce((a, s) => a + s.sizeBytes, 0)),
      ...tables.map((name) => String(skew[name]?.total ?? 0)),
    ]);
    rows.push([
      "skew",
      "",
      "",
      ...tables.map((name) => {
        const value = skew[name]?.skew;
        return value === null || value === undefined ? "-" : value.toFixed(2);
      }),
    ]);
    out += table(rows, (i) => i >= 2);
    if (tables.length > 0) out += `\nskew = rows on the fullest shard / mean rows per shard\n`;
    for (const h of hot) {
      const s = skew[h.table] as TableSkew;
      out += `hot shard: ${h.table} - shard ${h.shardId} holds ${s.max} rows, ${
        (s.skew ?? 0).toFixed(2)
      }x the mean of ${s.mean.toFixed(1)}\n`;
    }
    io.stdout(out);
    return EXIT_OK;
  });
}

/** One finding of `check`. */
export interface CheckFinding {
  /** What kind of finding. */
  kind:
    | "missing-shard"
    | "extra-shard"
    | "integrity"
    | "unfinished-reshard"
    | "missing-table"
    | "leftover-file"
    | "batch-pending"
    | "batch-completed"
    | "migration-versions"
    | "misplaced-rows"
    | "placement-conflicts"
    | "placement-repaired";
  /** The shard concerned, if any. */
  shardId?: number;
  /** What was found and what to do. */
  message: string;
}

async function check(args: string[], io: CliIO): Promise<number> {
  const parsed = parse("check", args, {
    json: { type: "boolean" },
    repair: { type: "boolean" },
  }, ["dbDir"]);
  if (parsed === "help") return help(io, "check");
  const json = parsed.values.json === true;
  const repair = parsed.values.repair === true;
  const dbDir = parsed.positionals[0] as string;
  return await guarded(io, json, dbDir, async () => {
    const map = requireMap(dbDir);
    const problems: CheckFinding[] = [];
    const warnings: CheckFinding[] = [];
    const names = [...Deno.readDirSync(dbDir)].map((e) => e.name).sort();
    const present = new Set<number>();
    for (const name of names) {
      const id = parseShardFileName(name);
      if (id !== undefined) {
        present.add(id);
        if (id >= map.numShards) {
          problems.push({
            kind: "extra-shard",
            shardId: id,
            message: `${name} is beyond the map's ${map.numShards} shards: no key routes to ` +
              `it, so its rows are invisible. Move it away after checking what it holds.`,
          });
        }
      } else if (name.endsWith(".restore-tmp")) {
        warnings.push({
          kind: "leftover-file",
          message: `${name} was left by an interrupted restore; it can be deleted.`,
        });
      }
    }
    const pendingReshard = names.includes(RESHARD_PLAN_FILE);
    if (pendingReshard) {
      let target = "";
      let mode = "reshard";
      try {
        const plan = JSON.parse(Deno.readTextFileSync(`${dbDir}/${RESHARD_PLAN_FILE}`));
        const n = plan?.to?.numShards;
        if (typeof n === "number") target = ` --shards ${n}`;
        if (plan?.mode === "repair") mode = "repair";
      } catch {
        // The command below still names the way out.
      }
      problems.push({
        kind: "unfinished-reshard",
        message: mode === "repair"
          ? `an unfinished placement repair (${RESHARD_PLAN_FILE}) blocks the directory; ` +
            `resume it with manager.repairPlacement() (or reshard ${dbDir}${target}, which ` +
            `finishes it the same way).`
          : `an unfinished reshard (${RESHARD_PLAN_FILE}) blocks the directory; resume ` +
            `it with "deno task shardlite reshard ${dbDir}${target}".`,
      });
    }
    let placement: PlacementFindings | null = null;
    const shards: {
      shardId: number;
      exists: boolean;
      integrity: string[] | null;
      // Applied migrations: how many, and the last one's id (null when not read).
      migrations: { applied: number; version: string | null } | null;
    }[] = [];
    const histories: { shardId: number; applied: { id: string }[] }[] = [];
    for (let id = 0; id < map.numShards; id++) {
      if (!present.has(id)) {
        warnings.push({
          kind: "missing-shard",
          shardId: id,
          message: `${shardFileName(id)} does not exist yet (files are created on first use).`,
        });
      }
      shards.push({ shardId: id, exists: present.has(id), integrity: null, migrations: null });
    }
    if (!pendingReshard) {
      await using manager = openManager(dbDir, map);
      await manager.ready();
      const recovery = manager.batchRecovery;
      for (const part of recovery?.replayed ?? []) {
        warnings.push({
          kind: "batch-completed",
          shardId: part.shard,
          message: `an insertMany cut short by a crash (batch ${part.batch}) was completed ` +
            `on opening: ${part.rows} row(s) written to ${shardFileName(part.shard)}.`,
        });
      }
      for (const part of recovery?.pending ?? []) {
        problems.push({
          kind: "batch-pending",
          shardId: part.shard,
          message: `insertMany batch ${part.batch} committed on shard ${part.coordinator}, ` +
            `but its part for ${shardFileName(part.shard)} cannot be written: ${part.error}. ` +
            `Repair that shard; the next open writes the part.`,
        });
      }
      for (const shard of shards) {
        if (!shard.exists) continue;
        const id = shard.shardId;
        try {
          const { integrity, tables, history } = await manager.getPool(id).withConnection(async (
            c,
          ) => ({
            integrity: (await c.all("PRAGMA integrity_check")).map((r) =>
              String(r["integrity_check"])
            ),
            tables: new Set(
              (await c.all("SELECT name FROM sqlite_schema WHERE type = 'table'")).map((r) =>
                String(r["name"])
              ),
            ),
            history: await readMigrationHistory(c),
          }));
          shard.integrity = integrity;
          shard.migrations = { applied: history.length, version: history.at(-1)?.id ?? null };
          histories.push({ shardId: id, applied: history });
          if (integrity.length !== 1 || integrity[0] !== "ok") {
            problems.push({
              kind: "integrity",
              shardId: id,
              message: `${shardFileName(id)} fails PRAGMA integrity_check: ${
                integrity.slice(0, 3).join("; ")
              }. Restore it from a backup.`,
            });
          }
          for (const name of Object.keys(map.tables).sort()) {
            if (!tables.has(name)) {
              warnings.push({
                kind: "missing-table",
                shardId: id,
                message: `table ${name} is in the map but not in ${shardFileName(id)}; ` +
                  `createTable() creates it on every shard again.`,
              });
            }
          }
        } catch (error) {
          if (error instanceof ShardLockedError) throw error;
          shard.integrity = [(error as Error).message];
          problems.push({
            kind: "integrity",
            shardId: id,
            message: `${shardFileName(id)} cannot be opened or checked: ${
              (error as Error).message
            }. Restore it from a backup.`,
          });
        }
      }
      // A shard file not created yet has no migrations either.
      const spread = describeVersionSpread(
        shards.filter((s) => !s.exists || s.migrations !== null).map((s) => ({
          shardId: s.shardId,
          applied: histories.find((h) => h.shardId === s.shardId)?.applied ?? [],
        })),
      );
      if (spread !== undefined) {
        problems.push({
          kind: "migration-versions",
          message: `the shards are at different migration versions: ${spread}. A migration ` +
            `failed on some of them; fix its cause and call migrate() again with the same list.`,
        });
      }
      if (!problems.some((p) => p.kind === "integrity" || p.kind === "batch-pending")) {
        placement = await checkPlacement(manager, repair, problems, warnings);
      }
    }
    const ok = problems.length === 0;
    if (json) {
      io.stdout(
        JSON.stringify(
          {
            ok,
            dbDir,
            numShards: map.numShards,
            strategy: map.strategy,
            problems,
            warnings,
            shards,
            placement,
          },
          null,
          2,
        ) + "\n",
      );
    } else {
      let out = "";
      for (const p of problems) out += `problem: ${p.message}\n`;
      for (const w of warnings) out += `warning: ${w.message}\n`;
      const checked = shards.filter((s) => s.integrity !== null).length;
      out += ok
        ? `ok: ${dbDir} - ${map.numShards} shards, ${checked} checked${
          warnings.length > 0 ? `, ${warnings.length} warning(s)` : ""
        }\n`
        : `${problems.length} problem(s) in ${dbDir}\n`;
      io.stdout(out);
    }
    return ok ? EXIT_OK : EXIT_PROBLEM;
  });
}

async function backup(args: string[], io: CliIO): Promise<number> {
  const parsed = parse("backup", args, { "point-in-time": { type: "boolean" } }, [
    "dbDir",
    "dest",
  ]);
  if (parsed === "help") return help(io, "backup");
  const [dbDir, dest] = parsed.positionals as [string, string];
  return await guarded(io, false, dbDir, async () => {
    const map = requireMap(dbDir);
    await using manager = openManager(dbDir, map);
    const pointInTime = parsed.values["point-in-time"] === true;
    if (pointInTime) io.stderr(`backup: pausing writes on ${map.numShards} shards\n`);
    const report = await backupShards(manager, dest, {
      pointInTime,
      onProgress: (p) =>
        io.stderr(
          `backup: shard ${p.shardId} written (${p.done}/${p.total}, ${formatBytes(p.bytes)})\n`,
        ),
    });
    io.stdout(
      `backed up ${report.numShards} shards of ${dbDir} to ${report.destDir}: ` +
        `${formatBytes(report.bytes)} in ${(report.durationMs / 1000).toFixed(2)} s ` +
        `(${report.megabytesPerSecond.toFixed(1)} MB/s)` +
        (report.pausedMs !== undefined ? `; writes paused ${report.pausedMs.toFixed(1)} ms` : "") +
        "\n",
    );
    return EXIT_OK;
  });
}

async function restore(args: string[], io: CliIO): Promise<number> {
  const parsed = parse("restore", args, { overwrite: { type: "boolean" } }, ["backup", "dbDir"]);
  if (parsed === "help") return help(io, "restore");
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

/** The reshard method as this command calls it (provided by ShardManager when built in). */

/** A progress bar drawer: redraws in place on a terminal, prints every 10% otherwise. */
export function progressBar(io: CliIO, label: string): {
  update(done: number, total: number, detail: string): void;
  finish(): void;
} {
  let lastDecile = -1;
  let drawn = false;
  return {
    update(done, total, detail) {
      const fraction = total > 0 ? Math.min(done / total, 1) : 0;
      const width = 30;
      const filled = Math.round(fraction * width);
      const bar = `${label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${
        (fraction * 100).toFixed(0).padStart(3)
      }% ${detail}`;
      if (io.stderrIsTerminal === true) {
        io.stderr(`\r\x1b[2K${bar}`);
        drawn = true;
      } else {
        const decile = Math.floor(fraction * 10);
        if (decile !== lastDecile) {
          lastDecile = decile;
          io.stderr(`${bar}\n`);
        }
      }
    },
    finish() {
      if (drawn) io.stderr("\n");
      drawn = false;
    },
  };
}

async function reshard(args: string[], io: CliIO): Promise<number> {
  const parsed = parse("reshard", args, { shards: { type: "string" } }, ["dbDir"]);
  if (parsed === "help") return help(io, "reshard");
  const text = parsed.values.shards;
  if (text === undefined) throw new UsageError("reshard: missing --shards <n>");
  const shards = Number(text);
  if (!/^[1-9][0-9]*$/.test(String(text)) || !Number.isSafeInteger(shards)) {
    throw new UsageError(
      `reshard: --shards must be a positive integer, got ${JSON.stringify(text)}`,
    );
  }
  const dbDir = parsed.positionals[0] as string;
  return await guarded(io, false, dbDir, async () => {
    const map = requireMap(dbDir);
    await using manager = openManager(dbDir, map);
    const bar = progressBar(io, "reshard");
    let report: ReshardReport;
    try {
      report = await manager.reshard(shards, {
        onProgress: (p) =>
          bar.update(
            p.scanned,
            p.totalRows,
            `${p.scanned}/${p.totalRows} rows scanned, ${p.moved} moved (${p.table}, shard ${p.shardId})`,
          ),
      });
    } finally {
      bar.finish();
    }
    io.stdout(
      `resharded ${dbDir}: ${map.numShards} -> ${manager.numShards} shards` +
        `${report.resumed ? " (resumed)" : ""}, ${report.scanned} rows scanned, ` +
        `${report.moved} moved in ${(report.durationMs / 1000).toFixed(2)} s` +
        (report.removedFiles.length > 0 ? `; removed ${report.removedFiles.join(", ")}` : "") +
        "\n",
    );
    return EXIT_OK;
  });
}

function help(io: CliIO, command?: string): number {
  io.stdout(command === undefined ? MAIN_HELP : HELP[command] ?? MAIN_HELP);
  return EXIT_OK;
}

/** Runs `fn`, turning expected failures into a message (or a JSON document) and exit 1. */
async function guarded(
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

const COMMANDS: Record<string, (args: string[], io: CliIO) => Promise<number>> = {
  info,
  check,
  backup,
  restore,
  reshard,
};

/**
 * Runs the `shardlite` command line with `argv` (without the program name), writing
 * through `io`; resolves with the exit code.
 *
 * @example
 * ```ts
 * import { runCli } from "./commands.ts";
 * let out = "";
 * const code = await runCli(["--help"], { stdout: (t) => out += t, stderr: () => {} });
 * if (code !== 0 || !out.includes("Usage")) throw new Error("help expected");
 * ```
 */
export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === "-h" || command === "--help") return help(io);
    if (command === undefined) throw new UsageError("missing command");
    const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (run === undefined) {
      throw new UsageError(
        command.startsWith("-")
          ? `unknown option ${JSON.stringify(command)} (options follow the command)`
          : `unknown command ${JSON.stringify(command)}`,
      );
    }
    return await run(rest, io);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    const usage = command !== undefined && Object.hasOwn(HELP, command)
      ? HELP[command] as string
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
 * import { runCliCaptured } from "./commands.ts";
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
