/** Splitting SQL scripts into statements, and finding transaction control in them. */

import assert from "node:assert/strict";
import { findTransactionControl, splitStatements } from "../src/sql/statements.ts";

Deno.test("splitStatements: strings, names, comments and trigger bodies do not split", () => {
  const sql = "CREATE TABLE [a;b] (\"c;d\" TEXT DEFAULT 'e;''f'); -- g; h\n" +
    '/* i; j */ CREATE TRIGGER k AFTER INSERT ON "a;b" BEGIN ' +
    "UPDATE x SET y = CASE WHEN 1 THEN 'end;' ELSE 2 END; DELETE FROM z; END;;\n" +
    "  insert into t values (1)";
  const statements = splitStatements(sql);
  assert.deepEqual(statements.map((s) => s.keyword), ["CREATE", "CREATE", "INSERT"]);
  assert.equal(statements[0]?.text, "CREATE TABLE [a;b] (\"c;d\" TEXT DEFAULT 'e;''f')");
  assert.match(statements[1]?.text ?? "", /^CREATE TRIGGER k .* DELETE FROM z; END$/);
  assert.equal(statements[2]?.offset, sql.indexOf("insert"));
  assert.deepEqual(splitStatements(" ;; -- nothing\n /* at all */"), []);
});

Deno.test("findTransactionControl: BEGIN, COMMIT, END, ROLLBACK; not savepoints or triggers", () => {
  for (
    const [sql, keyword] of [
      ["BEGIN IMMEDIATE; CREATE TABLE t (x)", "BEGIN"],
      ["CREATE TABLE t (x); commit", "COMMIT"],
      ["CREATE TABLE t (x);\n  -- done\n END TRANSACTION;", "END"],
      ["CREATE TABLE t (x); ROLLBACK", "ROLLBACK"],
      ["CREATE TABLE t (x); ROLLBACK TRANSACTION", "ROLLBACK"],
    ] as const
  ) {
    assert.equal(findTransactionControl(sql)?.keyword, keyword, sql);
  }
  for (
    const sql of [
      "SAVEPOINT s; CREATE TABLE t (x); ROLLBACK TO s; ROLLBACK TRANSACTION TO SAVEPOINT s; RELEASE s",
      "CREATE TEMP TRIGGER g AFTER INSERT ON t BEGIN SELECT 1; END",
      "INSERT INTO t VALUES ('COMMIT; BEGIN') -- ; COMMIT",
      'CREATE TABLE "begin" (x); SELECT [commit] FROM "begin"',
    ]
  ) {
    assert.equal(findTransactionControl(sql), undefined, sql);
  }
  assert.equal(findTransactionControl("CREATE TABLE t (x); /* c */ COMMIT")?.offset, 28);
});
