/**
 * A small JSON API over a sharded directory, for `deno serve --parallel`: every isolate
 * (one per core) opens the same directory with `access: "shared"` on the native driver.
 *
 *   npx --yes deno@2.9.6 serve --parallel --port 8000 \
 *     --allow-read=./data --allow-write=./data --allow-env=SHARDLITE_DATA \
 *     examples/serve_parallel.ts
 *
 *   curl -X PUT localhost:8000/users/7 -d '{"name":"Ada"}'
 *   curl localhost:8000/users/7
 *   curl localhost:8000/users        # count over every shard
 *
 * The id comes from the URL as a string; Shardlite stores and routes it as the integer
 * the `INTEGER PRIMARY KEY` column holds, so `/users/7` and `/users/007` are one user.
 *
 * @module
 */

import { InvalidShardKeyError, nativeDriver, ShardManager } from "../mod.ts";

const dbDir = Deno.env.get("SHARDLITE_DATA") ?? "./data/serve";

const manager = new ShardManager({
  numShards: 4,
  dbDir,
  access: "shared",
  pool: { driver: nativeDriver, timeoutMs: 5_000 },
});
// Every isolate runs this; createTable is IF NOT EXISTS, and the map is shared.
await manager.createTable("users", { id: "INTEGER PRIMARY KEY", name: "TEXT NOT NULL" }, {
  shardKey: "id",
});

function json(body: unknown, status = 200): Response {
  return Response.json(body, { status });
}

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const [, collection, id] = url.pathname.split("/");
    if (collection !== "users") return json({ error: "not found" }, 404);
    try {
      if (id === undefined || id === "") {
        return json({ users: await manager.count("users"), isolatePid: Deno.pid });
      }
      if (request.method === "PUT") {
        const body = await request.json() as { name?: unknown };
        if (typeof body.name !== "string") return json({ error: "name must be a string" }, 400);
        // Update, or insert when there is no such user yet (another isolate may insert the
        // same id at once: then its row is updated).
        const name = body.name;
        if (await manager.update("users", { name }, { key: id }) === 0) {
          await manager.insert("users", { id, name }).catch(async (error) => {
            if (!/UNIQUE/.test(String(error))) throw error;
            await manager.update("users", { name }, { key: id });
          });
        }
        return json({ ok: true });
      }
      const [user] = await manager.select("users", { key: id });
      return user === undefined ? json({ error: "no such user" }, 404) : json(user);
    } catch (error) {
      if (error instanceof InvalidShardKeyError) return json({ error: error.message }, 400);
      throw error;
    }
  },
} satisfies Deno.ServeDefaultExport;
