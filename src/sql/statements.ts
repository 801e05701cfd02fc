/**
 * The statements of a `;`-separated SQL script, split the way SQLite reads it (by
 * {@link statementEnd}: strings, quoted names, comments and trigger bodies do not end a
 * statement). Used to refuse transaction control inside a script that must run as one
 * transaction.
 *
 * @module
 */

import { statementEnd } from "./single_statement.ts";

/** One statement of a script. */
export interface ScriptStatement {
  /** The statement's first keyword, upper-cased (`CREATE`, `INSERT`, `COMMIT`, …). */
  keyword: string;
  /** Offset of the statement's first token in the script. */
  offset: number;
  /** The statement's text, without its terminating `;`. */
  text: string;
}

// Whitespace, comments and lone `;` between statements (an open comment runs to the end).
const BLANK = /(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?(?:\*\/|$)|;)*/y;
const WORDS = /(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?(?:\*\/|$))*([A-Za-z_]+)/y;

function skipBlank(sql: string, from: number): number {
  BLANK.lastIndex = from;
  BLANK.exec(sql);
  return BLANK.lastIndex;
}

/** The first `count` words of `text` (fewer when a non-word token comes first), upper-cased. */
function leadingWords(text: string, count: number): string[] {
  const words: string[] = [];
  WORDS.lastIndex = 0;
  while (words.length < count) {
    const match = WORDS.exec(text);
    if (match === null) break;
    words.push((match[1] as string).toUpperCase());
  }
  return words;
}

/**
 * The statements of `sql`, in order; empty ones (a lone `;`, only comments) are left out.
 *
 * @example
 * ```ts
 * import { splitStatements } from "./statements.ts";
 * const statements = splitStatements(
 *   "CREATE TABLE t (x); -- a comment; with a semicolon\n INSERT INTO t VALUES (';')",
 * );
 * if (statements.map((s) => s.keyword).join() !== "CREATE,INSERT") throw new Error("two");
 * ```
 */
export function splitStatements(sql: string): ScriptStatement[] {
  const statements: ScriptStatement[] = [];
  for (let at = skipBlank(sql, 0); at < sql.length; at = skipBlank(sql, at)) {
    const end = statementEnd(sql, at);
    const text = sql.slice(at, end).replace(/;$/, "").trimEnd();
    statements.push({ keyword: leadingWords(text, 1)[0] ?? "", offset: at, text });
    at = end;
  }
  return statements;
}

/**
 * The first statement of `sql` that begins, commits or rolls back a transaction (`BEGIN`,
 * `COMMIT`, `END`, `ROLLBACK` without `TO`), or undefined. Savepoints (`SAVEPOINT`,
 * `RELEASE`, `ROLLBACK TO`) nest inside a transaction and are not reported.
 *
 * @example
 * ```ts
 * import { findTransactionControl } from "./statements.ts";
 * if (findTransactionControl("CREATE TABLE t (x); COMMIT")?.keyword !== "COMMIT") {
 *   throw new Error("COMMIT expected");
 * }
 * if (findTransactionControl("CREATE TRIGGER g AFTER INSERT ON t BEGIN SELECT 1; END") !== undefined) {
 *   throw new Error("a trigger body is not a transaction");
 * }
 * ```
 */
export function findTransactionControl(sql: string): ScriptStatement | undefined {
  return splitStatements(sql).find((statement) => {
    switch (statement.keyword) {
      case "BEGIN":
      case "COMMIT":
      case "END":
        return true;
      case "ROLLBACK": {
        const [, second, third] = leadingWords(statement.text, 3);
        return second !== "TO" && !(second === "TRANSACTION" && third === "TO");
      }
      default:
        return false;
    }
  });
}
