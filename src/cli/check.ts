/**
 * `shardlite check <dbDir>`: the shard map against the files, the integrity of every
 * shard, migration versions, batch recovery, row placement (`--repair` moves misplaced
 * rows); a problem found means exit 1.
 *
 * @module
 */

import { scanLayout, shardFileName } from "../api/layout.ts";
import { describeVersionSpread, readMigrationHistory } from "../api/migrations.ts";
import { RESHARD_PLAN_FILE } from "../api/reshard.ts";
import { ShardLockedError } from "../errors.ts";
import { parseCommandArgs } from "./args.ts";
import { checkPlacement, type PlacementFindings } from "./check_placement.ts";
import { openManager, requireMap } from "./directory.ts";
import { guarded } from "./failure.ts";
import { type CliIO, type Command, EXIT_OK, EXIT_PROBLEM, printHelp } from "./io.ts";

/** The usage of `check`. */
export const CHECK_HELP = `Usage: deno task shardlite check <dbDir> [--json] [--repair]

Checks the shard map against the files: a shard file not created yet is a warning, a
shard_<n>.db beyond the map's shard count, an unfinished reshard, a shard failing
PRAGMA integrity_check, shards at different migration versions (migrate()) or a row
on a shard its key does not map to is a problem. Exits 1 when a problem is found.

Options:
  --json       one JSON document on stdout, nothing else
  --repair     move misplaced rows to their shard (crash-safe; rows whose key already
               exists there stay and are reported)
  -h, --help   this help
`;

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

async function run(args: string[], io: CliIO): Promise<number> {
  const parsed = parseCommandArgs("check", args, {
    json: { type: "boolean" },
    repair: { type: "boolean" },
  }, ["dbDir"]);
  if (parsed === "help") return printHelp(io, CHECK_HELP);
  const json = parsed.values.json === true;
  const repair = parsed.values.repair === true;
  const dbDir = parsed.positionals[0] as string;
  return await guarded(io, json, dbDir, async () => {
    const map = requireMap(dbDir);
    const problems: CheckFinding[] = [];
    const warnings: CheckFinding[] = [];
    const { names, shardIds: present, extra, leftovers } = scanLayout(dbDir, map.numShards);
    for (const { name, shardId } of extra) {
      problems.push({
        kind: "extra-shard",
        shardId,
        message: `${name} is beyond the map's ${map.numShards} shards: no key routes to ` +
          `it, so its rows are invisible. Move it away after checking what it holds.`,
      });
    }
    for (const name of leftovers) {
      warnings.push({
        kind: "leftover-file",
        message: `${name} was left by an interrupted restore; it can be deleted.`,
      });
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

/** `shardlite check`. */
export const checkCommand: Command = { help: CHECK_HELP, run };
