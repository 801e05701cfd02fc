/**
 * Subprocess tests of a shard's durability and ownership:
 * - a writer killed with SIGKILL loses no acknowledged commit and no transaction is
 *   half-applied; the next process opens the file without help (the wasm driver's stale
 *   `<db>.lock` directory cleared; node:sqlite's locks leave nothing behind);
 * - a live owner in another process makes getConnection() fail fast with
 *   ShardLockedError naming its pid; after it exits (cleanly or killed) the file opens;
 * - a clean closeAll() leaves only the database file, which can be renamed and deleted.
 *
 * Children run tests/fixtures/*.ts through `Deno.execPath()` with narrow permissions.
 */

import assert from "node:assert/strict";
import { ConnectionPool, ShardLockedError } from "../mod.ts";
import { driverFlags, driverLeavesLockDirectory, prng, tempDir } from "./helpers.ts";

const ROOT = decodeURIComponent(new URL("..", import.meta.url).pathname);
const CONFIG = `${ROOT}deno.json`;
const FIXTURES = `${ROOT}tests/fixtures/`;

/** Whether `p` is still pending; an already-settled `p` wins the race (subscribed first). */
async function isPending(p: Promise<unknown>): Promise<boolean> {
  const marker = Symbol("pending");
  const winner = await Promise.race([p, Promise.resolve(marker)]).catch(() => null);
  return winner === marker;
}

/** A fixture child whose stdout is read line by line. */
class Child {
  readonly process: Deno.ChildProcess;
  readonly #lines: ReadableStreamDefaultReader<string>;
  #buffer = "";
  #done = false;
  readonly stderr: Promise<string>;

  constructor(fixture: string, dbPath: string, stdin: "piped" | "null") {
    this.process = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--config",
        CONFIG,
        "--allow-read",
        "--allow-write",
        "--allow-env=SHARDLITE_TEST_CHILD",
        ...driverFlags(),
        `${FIXTURES}${fixture}`,
        dbPath,
      ],
      cwd: ROOT,
      env: { SHARDLITE_TEST_CHILD: "1" },
      stdin,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#lines = this.process.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.stderr = new Response(this.process.stderr).text();
  }

  get pid(): number {
    return this.process.pid;
  }

  /** The next line of stdout, or null at its end. */
  async line(): Promise<string | null> {
    for (;;) {
      const newline = this.#buffer.indexOf("\n");
      if (newline >= 0) {
        const line = this.#buffer.slice(0, newline);
        this.#buffer = this.#buffer.slice(newline + 1);
        return line;
      }
      if (this.#done) {
        const rest = this.#buffer;
        this.#buffer = "";
        return rest === "" ? null : rest;
      }
      const { value, done } = await this.#lines.read();
      if (done) this.#done = true;
      else this.#buffer += value;
    }
  }

  /** The next line, failing with the child's stderr when stdout ended instead. */
  async expectLine(): Promise<string> {
    const line = await this.line();
    if (line === null) {
      const status = await this.process.status;
      throw new Error(`child exited (code ${status.code}) early; stderr:\n${await this.stderr}`);
    }
    return line;
  }

  /** Every remaining stdout line (until the child closes it). */
  async rest(): Promise<string[]> {
    const lines: string[] = [];
    for (let line = await this.line(); line !== null; line = await this.line()) lines.push(line);
    return lines;
  }
}

async function listDir(path: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(path)) names.push(entry.name);
  return names.sort();
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function parseAck(line: string): { grp: number; size: number } {
  const match = /^ACK (\d+) (\d+)$/.exec(line);
  assert.ok(match, `unexpected line from the writer: ${JSON.stringify(line)}`);
  return { grp: Number(match[1]), size: Number(match[2]) };
}

Deno.test("crash: SIGKILL mid-writes loses no ACKed commit and leaves no half transaction", async () => {
  await using dir = await tempDir("shardlite-crash-");
  const path = `${dir.path}/crash.db`;
  const seed = 0x5eed_2026;
  const random = prng(seed);
  const acked = new Map<number, number>(); // grp -> size, over every cycle
  for (let cycle = 0; cycle < 3; cycle++) {
    const where = `cycle ${cycle} (seed ${seed})`;
    const killAfter = 1 + Math.floor(random() * 40);
    const child = new Child("crash_writer.ts", path, "null");
    assert.equal(await child.expectLine(), `READY ${child.pid}`, where);
    let seen = 0;
    while (seen < killAfter) {
      const { grp, size } = parseAck(await child.expectLine());
      acked.set(grp, size);
      seen++;
    }
    child.process.kill("SIGKILL");
    const status = await child.process.status;
    assert.equal(status.success, false, where);
    assert.equal(status.signal, "SIGKILL", where);
    // ACKs already in the pipe were printed after their commits: they count too.
    for (const line of await child.rest()) {
      const { grp, size } = parseAck(line);
      acked.set(grp, size);
    }
    await child.stderr;
    // node-sqlite3-wasm's lock directory outlives the process that made it; node:sqlite's
    // locks died with it and left nothing.
    assert.equal(
      await isDirectory(`${path}.lock`),
      driverLeavesLockDirectory(),
      `${where}: is ${path}.lock left behind?`,
    );

    const pool = new ConnectionPool(path, { onEvent: () => {} });
    try {
      await pool.withConnection(async (conn) => {
        assert.equal(
          pool.getPoolStats().staleLocksCleared,
          driverLeavesLockDirectory() ? 1 : 0,
          `${where}: stale lock cleared`,
        );
        assert.deepEqual(await conn.all("PRAGMA integrity_check"), [{ integrity_check: "ok" }]);
        const groups = await conn.all(
          "SELECT grp, min(grp_size) AS lo, max(grp_size) AS hi, count(*) AS n, " +
            "min(id) AS first, max(id) AS last FROM rows GROUP BY grp ORDER BY grp",
        );
        const present = new Map<number, number>();
        for (const g of groups) {
          assert.equal(g.lo, g.hi, `${where}: group ${g.grp} has mixed sizes`);
          assert.equal(g.n, g.lo, `${where}: group ${g.grp} is half-applied (${g.n}/${g.lo})`);
          assert.equal(g.first, g.grp, `${where}: group ${g.grp} starts at ${g.first}`);
          assert.equal(Number(g.last) - Number(g.first) + 1, g.n, `${where}: group ${g.grp} gaps`);
          present.set(Number(g.grp), Number(g.n));
        }
        for (const [grp, size] of acked) {
          assert.equal(present.get(grp), size, `${where}: ACKed group ${grp} (${size} rows) lost`);
        }
        // Writes are sequential: what survived is a prefix, with no gap.
        const total = await conn.get(
          "SELECT count(*) AS n, coalesce(max(id), 0) AS last FROM rows",
        );
        assert.equal(total?.n, total?.last, `${where}: ids have gaps`);
      });
    } finally {
      await pool.closeAll();
    }
    assert.deepEqual(await listDir(dir.path), ["crash.db"], `${where}: leftovers after close`);
  }
  assert.ok(acked.size >= 3, "every cycle ACKed at least one write");
});

Deno.test("ownership: a live owner in another process makes getConnection fail fast", async (t) => {
  await using dir = await tempDir("shardlite-owner-");

  for (const ending of ["clean exit", "SIGKILL"] as const) {
    await t.step(`then the owner ends by ${ending}`, async () => {
      const path = `${dir.path}/${ending === "SIGKILL" ? "killed" : "clean"}.db`;
      const child = new Child("hold_owner.ts", path, "piped");
      let stdinOpen = true;
      const closeStdin = async () => {
        if (!stdinOpen) return;
        stdinOpen = false;
        await child.process.stdin.close().catch(() => {});
      };
      // The pool that is refused while the owner lives; it must work once the owner is gone.
      const intruder = new ConnectionPool(path, { onEvent: () => {} });
      try {
        assert.equal(await child.expectLine(), `READY ${child.pid}`);

        const attempt = intruder.getConnection();
        assert.equal(await isPending(attempt), false, "must fail at once, not wait");
        const error = await attempt.then(() => null, (e: unknown) => e);
        assert.ok(error instanceof ShardLockedError, `expected ShardLockedError, got ${error}`);
        assert.equal(error.ownerPid, child.pid);
        assert.match(error.message, new RegExp(`\\bpid ${child.pid}\\b`));
        assert.equal(error.path, path);
        assert.equal(intruder.getPoolStats().handleOpen, false);

        if (ending === "clean exit") {
          await closeStdin();
          const status = await child.process.status;
          assert.equal(status.success, true, `owner failed:\n${await child.stderr}`);
          assert.deepEqual(await child.rest(), ["BYE"]);
          const names = await listDir(dir.path);
          assert.deepEqual(names.filter((n) => n.startsWith("clean.")), ["clean.db"]);
        } else {
          child.process.kill("SIGKILL");
          const status = await child.process.status;
          assert.equal(status.signal, "SIGKILL");
          assert.deepEqual(await child.rest(), []);
          assert.equal(
            await isDirectory(`${path}.lock`),
            driverLeavesLockDirectory(),
            "is the killed owner's lock directory left behind?",
          );
        }
        await child.stderr;

        const rows = await intruder.withConnection((c) => c.all("SELECT who FROM held"));
        assert.deepEqual(rows, [{ who: `pid ${child.pid}` }]);
        const stats = intruder.getPoolStats();
        assert.equal(
          stats.staleLocksCleared,
          ending === "SIGKILL" && driverLeavesLockDirectory() ? 1 : 0,
        );
      } finally {
        await intruder.closeAll();
        await closeStdin();
        await child.process.status;
      }
    });
  }
});

Deno.test("a clean closeAll leaves only the .db file, which can be renamed and deleted", async () => {
  await using dir = await tempDir("shardlite-clean-");
  const path = `${dir.path}/clean.db`;
  const pool = new ConnectionPool(path, { onEvent: () => {} });
  try {
    await pool.withConnection(async (conn) => {
      await conn.exec("CREATE TABLE t (x INTEGER)");
      await conn.transaction(async (tx) => {
        for (let i = 0; i < 100; i++) await tx.run("INSERT INTO t VALUES (?)", [i]);
      });
    });
    // While open: the WAL, the wasm driver's lock directory and our owner file exist.
    assert.deepEqual(await listDir(dir.path), [
      "clean.db",
      "clean.db-wal",
      ...(driverLeavesLockDirectory() ? ["clean.db.lock"] : []),
      "clean.db.owner",
    ]);
  } finally {
    await pool.closeAll();
  }
  assert.deepEqual(await listDir(dir.path), ["clean.db"]);

  // Everything is in the main file: renamed, it opens with every row.
  const moved = `${dir.path}/moved.db`;
  await Deno.rename(path, moved);
  const again = new ConnectionPool(moved, { onEvent: () => {} });
  try {
    const row = await again.withConnection((c) => c.get("SELECT count(*) AS n FROM t"));
    assert.deepEqual(row, { n: 100 });
  } finally {
    await again.closeAll();
  }
  assert.deepEqual(await listDir(dir.path), ["moved.db"]);
  await Deno.remove(moved);
  assert.deepEqual(await listDir(dir.path), []);
});
