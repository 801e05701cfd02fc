/**
 * Typed rows: the row type a caller names flows through every row-returning call, and a
 * wrong use fails to compile. `deno test` type-checks this file: each `@ts-expect-error`
 * below is itself an error if the line under it compiles, so an `any` in disguise (or a
 * generic that is dropped) fails the suite.
 */
import assert from "node:assert/strict";
import { ConnectionPool, type Row, ShardManager } from "../mod.ts";
import { tempDir } from "./helpers.ts";

interface User {
  id: number;
  name: string;
}

Deno.test("rows are typed as the caller names them, and Row by default", async () => {
  await using dir = await tempDir();
  await using manager = new ShardManager({ numShards: 2, dbDir: `${dir.path}/m` });
  await manager.createTable("users", { id: "INTEGER PRIMARY KEY", name: "TEXT" }, {
    shardKey: "id",
  });
  await manager.insertMany("users", [{ id: 1, name: "Ada" }, { id: 2, name: "Bo" }]);

  const users = await manager.select<User>("users", { orderBy: "id" });
  const name: string = users[0]!.name;
  assert.equal(name, "Ada");
  // @ts-expect-error: name is a string, not a number
  const wrong: number = users[0]!.name;
  assert.equal(typeof wrong, "string");
  // @ts-expect-error: User has no such field
  users[0]!.email;

  const byKey = await manager.query<User>(2, "SELECT * FROM users WHERE id = ?", [2]);
  // @ts-expect-error: id is a number
  const idText: string = byKey[0]!.id;
  assert.equal(idText, 2);
  const everywhere = await manager.queryAll<User>("SELECT * FROM users", [], { orderBy: "id" });
  assert.deepEqual(everywhere.map((u) => u.name), ["Ada", "Bo"]);
  const groups = await manager.aggregateBy<{ name: string; "COUNT(*)": number }>(
    "users",
    "name",
    "COUNT(*)",
  );
  const n: number = groups[0]!["COUNT(*)"];
  assert.equal(n, 1);

  // The default stays Row: values are SqlValue, not any.
  const plain = await manager.select("users");
  const row: Row = plain[0]!;
  // @ts-expect-error: a SqlValue is not known to be a string
  const text: string = row.name;
  assert.ok(text !== undefined);

  await using pool = new ConnectionPool(`${dir.path}/p.db`);
  await pool.withConnection(async (conn) => {
    await conn.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)");
    await conn.run("INSERT INTO users (name) VALUES (?)", ["Cy"]);
    const all = await conn.all<User>("SELECT * FROM users");
    const one = await conn.get<User>("SELECT * FROM users");
    // @ts-expect-error: get may find no row
    const sure: User = one;
    assert.equal(sure?.name, all[0]!.name);
  });
});
