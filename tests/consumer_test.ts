/**
 * The library as another project sees it: a script in a directory outside this repo, with
 * no deno.json or package.json, imports mod.ts by file URL and runs with the permissions
 * the README's "Use it in your project" section documents. Also a static check that
 * nothing under src/ relies on this repo's import map.
 */

import assert from "node:assert/strict";

const root = new URL("..", import.meta.url);
const modUrl = new URL("mod.ts", root).href;
/** Outside the repo, so no deno.json is found above it; deno.json's test task may write here. */
const OUTSIDE_PARENT = "/tmp/shardlite-consumer";

const CONSUMER_SCRIPT = `import { ShardManager } from ${JSON.stringify(modUrl)};

const dbDir = Deno.args[0];
if (dbDir === undefined) throw new Error("usage: main.ts <dbDir>");
const manager = new ShardManager({ numShards: 3, dbDir });
await manager.createTable("users", { id: "INTEGER PRIMARY KEY", name: "TEXT" }, {
  shardKey: "id",
});
await manager.insertMany("users", [
  { id: 1, name: "Ada" },
  { id: 2, name: "Bo" },
  { id: 3, name: "Cy" },
  { id: 4, name: "Di" },
]);
await manager.transaction(2, (conn) => conn.run("UPDATE users SET name = 'Bea' WHERE id = 2"));
const rows = await manager.select("users", { orderBy: "id" });
const count = await manager.count("users");
await manager.shutdown();
console.log(JSON.stringify({ rows, count }));
`;

/** The npm cache the child will use: same DENO_DIR, since the child inherits the env. */
async function npmCache(): Promise<string> {
  const { code, stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.equal(code, 0);
  const { npmCache } = JSON.parse(new TextDecoder().decode(stdout)) as { npmCache: string };
  return npmCache;
}

async function outsideDir(): Promise<{ path: string; [Symbol.asyncDispose](): Promise<void> }> {
  await Deno.mkdir(OUTSIDE_PARENT, { recursive: true, mode: 0o700 });
  const path = await Deno.makeTempDir({ dir: OUTSIDE_PARENT, prefix: "run-" });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true });
    },
  };
}

/**
 * Runs the consumer script from `dir` with the given permission flags. Besides those flags:
 * `--no-config` so that no deno.json/package.json on the machine can supply an import map;
 * `--cached-only` and a copy of this repo's lock (without its workspace section, which
 * belongs to this repo's deno.json) so that the run needs no network: on a fresh machine
 * `deno install --frozen` fetches the packages but not the registry metadata of indirect
 * dependencies (tslib), which an unlocked run would ask npm for.
 */
async function runConsumer(dir: string, permissionFlags: string[], data: string) {
  const lock = JSON.parse(await Deno.readTextFile(new URL("deno.lock", root))) as {
    workspace?: unknown;
  };
  delete lock.workspace;
  await Deno.writeTextFile(`${dir}/deno.lock`, JSON.stringify(lock, null, 2));
  await Deno.writeTextFile(`${dir}/main.ts`, CONSUMER_SCRIPT);
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--no-config",
      "--no-prompt",
      "--cached-only",
      `--lock=${dir}/deno.lock`,
      ...permissionFlags,
      "main.ts",
      data,
    ],
    cwd: dir,
    env: { TMPDIR: dir }, // the test task's TMPDIR=.tmp is relative to the repo
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code,
    stdout: new TextDecoder().decode(stdout),
    stderr: new TextDecoder().decode(stderr),
  };
}

Deno.test("a script outside the repo imports mod.ts by URL and runs with the README's flags", async () => {
  await using dir = await outsideDir();
  const data = `${dir.path}/data`;
  const wasm = `${await npmCache()}/registry.npmjs.org/node-sqlite3-wasm`;
  const result = await runConsumer(
    dir.path,
    [`--allow-read=${data},${wasm}`, `--allow-write=${data}`],
    data,
  );
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout), {
    rows: [
      { id: 1, name: "Ada" },
      { id: 2, name: "Bea" },
      { id: 3, name: "Cy" },
      { id: 4, name: "Di" },
    ],
    count: 4,
  });
});

Deno.test("a consumer without read access to the npm cache cannot load the WebAssembly", async () => {
  await using dir = await outsideDir();
  const data = `${dir.path}/data`;
  const result = await runConsumer(
    dir.path,
    [`--allow-read=${data}`, `--allow-write=${data}`],
    data,
  );
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /NotCapable: Requires read access to .*node-sqlite3-wasm\.wasm/);
});

/** Every .ts file under `dir`, recursively. */
async function* sourceFiles(dir: URL): AsyncGenerator<URL> {
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) yield* sourceFiles(url);
    else if (entry.name.endsWith(".ts")) yield url;
  }
}

Deno.test("src/ and mod.ts import only relative, node: and pinned npm: specifiers", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root))) as {
    imports: Record<string, string>;
  };
  const files = [new URL("mod.ts", root)];
  for await (const file of sourceFiles(new URL("src/", root))) files.push(file);
  const problems: string[] = [];
  for (const file of files) {
    const text = await Deno.readTextFile(file);
    const name = file.pathname.slice(root.pathname.length);
    for (const [, specifier] of text.matchAll(/(?:\bfrom|\bimport\(?)\s*["']([^"']+)["']/g)) {
      if (specifier === undefined || /^(\.|node:)/.test(specifier)) continue;
      const npm = /^npm:((?:@[^/@]+\/)?[^/@]+)@(\d+\.\d+\.\d+)(\/.*)?$/.exec(specifier);
      if (npm === null) {
        problems.push(`${name}: "${specifier}" is not a relative, node: or pinned npm: import`);
      } else if (config.imports[npm[1]!] !== `npm:${npm[1]}@${npm[2]}`) {
        problems.push(`${name}: "${specifier}" differs from deno.json's import map`);
      }
    }
  }
  assert.deepEqual(problems, []);
});
