import assert from "node:assert/strict";
import fc from "fast-check";
import { ConnectionPool, ShardLockedError } from "../mod.ts";
import { tempDir } from "./helpers.ts";

const config = new URL("../deno.json", import.meta.url).pathname;
const fixture = (name: string) => new URL(`./fixtures/${name}`, import.meta.url).pathname;

function spawnChild(script: string, args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      `--config=${config}`,
      "--allow-read",
      "--allow-write",
      fixture(script),
      ...args,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
}

/** Reads stdout lines, calling `onLine` until it returns true. */
async function readUntil(
  reader: ReadableStreamDefaultReader<string>,
  onLine: (line: string) => boolean,
): Promise<void> {
  let buffer = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the child exited early");
    buffer += value;
    let newline: number;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (onLine(line)) return;
    }
  }
}

Deno.test("kill -9 a writer under load: every acknowledged row survives, locks recover", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/crash.db`;
  const acked = new Map<number, number>(); // group id -> rows
  // Seeded, so a failure can be replayed: the kill point of each cycle.
  const killAfter = fc.sample(fc.integer({ min: 5, max: 120 }), { numRuns: 3, seed: 42 });
  let nextId = 1;
  for (const [cycle, ackTarget] of killAfter.entries()) {
    const child = spawnChild("crash_writer.ts", [path, String(nextId)]);
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let acks = 0;
    await readUntil(reader, (line) => {
      const [, id, rows] = line.split(" ");
      acked.set(Number(id), Number(rows));
      nextId = Number(id) + Number(rows);
      return ++acks >= ackTarget;
    });
    child.kill("SIGKILL");
    const status = await child.status;
    assert.equal(status.signal, "SIGKILL", `cycle ${cycle}`);
    await reader.cancel();
    await child.stdin.close().catch(() => {});
    // The driver's lock directory is left behind by the crash.
    assert.ok(Deno.statSync(`${path}.lock`).isDirectory, "stale <db>.lock expected");

    const pool = new ConnectionPool(path);
    try {
      await pool.withConnection(async (c) => {
        assert.deepEqual(await c.get("PRAGMA integrity_check"), { integrity_check: "ok" });
        for (const [group, rows] of acked) {
          const found = await c.get("SELECT count(*) AS n FROM t WHERE grp = ?", [group]);
          assert.equal(
            found?.n,
            rows,
            `group ${group} (${rows} rows) acknowledged, cycle ${cycle}`,
          );
        }
        // No half of a transaction is visible: every group is whole.
        const partial = await c.all(
          "SELECT grp, count(*) AS n FROM t GROUP BY grp HAVING n NOT IN (1, 3)",
        );
        assert.deepEqual(partial, []);
        const max = await c.get("SELECT max(id) AS m FROM t");
        nextId = Math.max(nextId, Number(max?.m ?? 0) + 1);
      });
      assert.equal(pool.getPoolStats().staleLocksCleared, 1);
    } finally {
      await pool.closeAll();
    }
  }
  assert.ok(acked.size >= 3);
});

for (const ending of ["exits cleanly", "is killed"] as const) {
  Deno.test(`a second process gets ShardLockedError naming the owner; then the owner ${ending}`, async () => {
    await using dir = await tempDir();
    const path = `${dir.path}/owned.db`;
    const child = spawnChild("hold_owner.ts", [path]);
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let pid = 0;
    await readUntil(reader, (line) => {
      pid = Number(line.split(" ")[1]);
      return line.startsWith("READY");
    });
    assert.equal(pid, child.pid);
    const rival = new ConnectionPool(path);
    const error = await rival.getConnection().then(() => null, (e: unknown) => e);
    assert.ok(error instanceof ShardLockedError, String(error));
    assert.equal(error.ownerPid, child.pid);
    assert.match(error.message, new RegExp(`pid ${child.pid}`));
    await rival.closeAll();

    if (ending === "exits cleanly") {
      await child.stdin.close();
      assert.equal((await child.status).code, 0);
    } else {
      child.kill("SIGKILL");
      await child.status;
      await child.stdin.close().catch(() => {});
    }
    await reader.cancel();
    const after = new ConnectionPool(path);
    try {
      const rows = await after.withConnection((c) => c.all("SELECT who FROM t"));
      assert.deepEqual(rows, [{ who: "child" }]);
    } finally {
      await after.closeAll();
    }
  });
}
