import assert from "node:assert/strict";
import { tempDir } from "./helpers.ts";
import { startSqld } from "./sqld.ts";

const root = new URL("..", import.meta.url).pathname;
const fixture = new URL("./fixtures/least_privilege.ts", import.meta.url).pathname;

async function runChild(flags: string[], dbDir: string, script = fixture, more: string[] = []) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", `--config=${root}deno.json`, ...flags, script, dbDir, ...more],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code,
    stdout: new TextDecoder().decode(stdout),
    stderr: new TextDecoder().decode(stderr),
  };
}

Deno.test("the library works with read/write scoped to the data directory and node_modules", async () => {
  await using dir = await tempDir();
  const data = `${dir.path}/data`;
  const result = await runChild(
    [`--allow-read=${data},./node_modules`, `--allow-write=${data}`],
    data,
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout.trim(), "OK 30 seven");
});

Deno.test("without write access to the data directory it fails with a clear error", async () => {
  await using dir = await tempDir();
  const data = `${dir.path}/data`;
  const result = await runChild([`--allow-read=${data},./node_modules`], data);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /NotCapable|PermissionDenied|Requires write access/);
  assert.match(result.stderr, new RegExp(data.replaceAll("/", "\\/")));
});

Deno.test("without read access to node_modules the WebAssembly module cannot load", async () => {
  await using dir = await tempDir();
  const data = `${dir.path}/data`;
  const result = await runChild([`--allow-read=${data}`, `--allow-write=${data}`], data);
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /node-sqlite3-wasm/);
});

Deno.test("shards on servers need only --allow-net to them (and the read of node_modules)", async () => {
  await using a = await startSqld();
  await using b = await startSqld();
  const script = new URL("./fixtures/remote_least_privilege.ts", import.meta.url).pathname;
  const result = await runChild(
    ["--allow-read=./node_modules", "--allow-net=127.0.0.1", "--no-prompt"],
    a.url,
    script,
    [b.url],
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout.trim(), "OK 30 seven");
  const denied = await runChild(["--allow-read=./node_modules", "--no-prompt"], a.url, script, [
    b.url,
  ]);
  assert.notEqual(denied.code, 0);
  assert.match(denied.stderr, /NotCapable|Requires net access/);
});
