/**
 * Finds where the first statement of an SQL text ends, as SQLite reads it, so that calls
 * running one statement can refuse SQL holding more (SQLite would run the first and
 * silently ignore the rest). Semicolons inside '...' strings, "...", `...` and [...]
 * names, comments and `CREATE TRIGGER ... BEGIN ... END` bodies do not end a statement.
 *
 * @module
 */

import { MultipleStatementsError } from "../errors.ts";

const SEMICOLON = 0x3b;
const SINGLE_QUOTE = 0x27;
const DOUBLE_QUOTE = 0x22;
const BACKTICK = 0x60;
const OPEN_BRACKET = 0x5b;
const DASH = 0x2d;
const SLASH = 0x2f;
const STAR = 0x2a;

// The ASCII characters that can end a statement or hide a `;`: `;`, quotes, `[`, and the
// first characters of comments.
const SPECIAL = new Uint8Array(0x80);
for (const c of [SEMICOLON, SINGLE_QUOTE, DOUBLE_QUOTE, BACKTICK, OPEN_BRACKET, DASH, SLASH]) {
  SPECIAL[c] = 1;
}

// Where a statement is, for trigger bodies (after sqlite3_complete's states): a `;` ends
// the statement unless it is inside a trigger, where only `; END ;` does.
const START = 0; // before the first token
const NORMAL = 1; // any statement that is not a trigger
const EXPLAIN = 2; // after a leading EXPLAIN
const CREATE = 3; // after CREATE [TEMP | TEMPORARY]
const TRIGGER = 4; // inside CREATE TRIGGER
const SEMI = 5; // inside a trigger, right after a `;`
const END = 6; // inside a trigger, right after `; END`

function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

// SQLite's identifier characters: letters, digits, `_`, `$` and everything beyond ASCII.
function isWordChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) ||
    c === 0x5f || c === 0x24 || c >= 0x80;
}

/** Index past whitespace and comments from `i`; an unterminated comment runs to the end. */
function skipBlank(sql: string, i: number): number {
  const n = sql.length;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (isSpace(c)) {
      i++;
    } else if (c === DASH && sql.charCodeAt(i + 1) === DASH) {
      const end = sql.indexOf("\n", i + 2);
      i = end < 0 ? n : end + 1;
    } else if (c === SLASH && sql.charCodeAt(i + 1) === STAR) {
      const end = sql.indexOf("*/", i + 2);
      i = end < 0 ? n : end + 2;
    } else {
      break;
    }
  }
  return i;
}

/** Index past whitespace, comments and empty statements (lone `;`) from `i`. */
function skipSeparators(sql: string, i: number): number {
  for (;;) {
    i = skipBlank(sql, i);
    if (sql.charCodeAt(i) !== SEMICOLON) return i;
    i++;
  }
}

/**
 * Index past the quoted token opening at `i`. Quotes inside are doubled (`''`), except
 * in [...] which cannot hold `]`. An unterminated one runs to the end: SQLite reports it.
 */
function skipQuoted(sql: string, i: number, open: number): number {
  const close = open === OPEN_BRACKET ? "]" : sql[i]!;
  let from = i + 1;
  for (;;) {
    const at = sql.indexOf(close, from);
    if (at < 0) return sql.length;
    if (open !== OPEN_BRACKET && sql.charCodeAt(at + 1) === open) {
      from = at + 2;
      continue;
    }
    return at + 1;
  }
}

function isKeyword(sql: string, start: number, end: number, upper: string): boolean {
  return end - start === upper.length && sql.slice(start, end).toUpperCase() === upper;
}

/**
 * The index just past the `;` that ends the statement starting at `from`, or the text's
 * length when no `;` ends it. `from` should be the statement's first token (see
 * {@link findSecondStatement}, which skips what comes before).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { statementEnd } from "./single_statement.ts";
 * assert.equal(statementEnd("SELECT ';' -- ;\n; SELECT 2"), 17);
 * const trigger = "CREATE TRIGGER g AFTER INSERT ON t BEGIN DELETE FROM u; END; SELECT 1";
 * assert.equal(statementEnd(trigger), trigger.indexOf("END;") + 4);
 * ```
 */
export function statementEnd(sql: string, from = 0): number {
  const n = sql.length;
  let state = START;
  let i = from;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c < 0x80 && SPECIAL[c] === 1) {
      if (c === SEMICOLON) {
        i++;
        if (state !== TRIGGER && state !== SEMI) return i;
        state = SEMI;
        continue;
      }
      if (c === DASH || c === SLASH) {
        const comment = skipBlank(sql, i);
        if (comment > i) {
          i = comment;
          continue;
        }
        // A lone `-` or `/` is punctuation, below.
      } else {
        i = skipQuoted(sql, i, c);
        state = state < TRIGGER ? NORMAL : TRIGGER;
        continue;
      }
    }
    // Inside a statement, nothing but the characters above matters.
    if (state === NORMAL || state === TRIGGER) {
      i++;
      continue;
    }
    if (isSpace(c)) {
      i++;
      continue;
    }
    if (!isWordChar(c)) {
      i++;
      state = state < TRIGGER ? NORMAL : TRIGGER;
      continue;
    }
    const start = i;
    i++;
    while (i < n && isWordChar(sql.charCodeAt(i))) i++;
    // Only the first words of a statement, and a word right after a `;` in a trigger, matter.
    switch (state) {
      case START:
        state = isKeyword(sql, start, i, "CREATE")
          ? CREATE
          : isKeyword(sql, start, i, "EXPLAIN")
          ? EXPLAIN
          : NORMAL;
        break;
      case EXPLAIN:
        state = isKeyword(sql, start, i, "CREATE") ? CREATE : NORMAL;
        break;
      case CREATE:
        state = isKeyword(sql, start, i, "TRIGGER")
          ? TRIGGER
          : isKeyword(sql, start, i, "TEMP") || isKeyword(sql, start, i, "TEMPORARY")
          ? CREATE
          : NORMAL;
        break;
      case SEMI:
        state = isKeyword(sql, start, i, "END") ? END : TRIGGER;
        break;
      case END:
        state = TRIGGER;
        break;
    }
  }
  return n;
}

/**
 * Where the rest of `sql` begins when it holds more than one statement: the index just
 * past the first statement's `;`. -1 when it holds one statement or none; whitespace,
 * comments and empty statements (`;;`) before or after it do not count.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { findSecondStatement } from "./single_statement.ts";
 * assert.equal(findSecondStatement("SELECT 1; DROP TABLE users"), 9);
 * assert.equal(findSecondStatement("SELECT 1;; -- done\n"), -1);
 * assert.equal(findSecondStatement(`SELECT 'a;b' AS [x;y], 1 AS "p;q" -- ;`), -1);
 * ```
 */
export function findSecondStatement(sql: string): number {
  const first = skipSeparators(sql, 0);
  if (first >= sql.length) return -1;
  const end = statementEnd(sql, first);
  return skipSeparators(sql, end) >= sql.length ? -1 : end;
}

// Verdicts of recent SQL texts holding a `;` (statements repeat): -1 or the offset.
const verdicts = new Map<string, number>();
const VERDICTS_KEPT = 256;
// Longer texts are scanned every time rather than kept alive by the cache.
const LONGEST_KEPT = 2048;

function verdict(sql: string): number {
  let offset = verdicts.get(sql);
  if (offset === undefined) {
    offset = findSecondStatement(sql);
    if (sql.length <= LONGEST_KEPT) {
      if (verdicts.size >= VERDICTS_KEPT) verdicts.delete(verdicts.keys().next().value!);
      verdicts.set(sql, offset);
    }
  }
  return offset;
}

/**
 * Throws {@link MultipleStatementsError} when `sql` holds more than one statement;
 * `call` names the caller for the message (`conn.all()`). Cheap on the hot path: SQL
 * without a `;` is accepted at once, and verdicts on recent texts are cached.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MultipleStatementsError } from "../errors.ts";
 * import { assertSingleStatement } from "./single_statement.ts";
 * assertSingleStatement("SELECT 1; -- trailing comment", "conn.all()");
 * assert.throws(
 *   () => assertSingleStatement("SELECT 1; DROP TABLE users", "conn.all()"),
 *   MultipleStatementsError,
 * );
 * ```
 */
export function assertSingleStatement(sql: string, call: string): void {
  // No `;`, no second statement: SQLite needs one between two statements.
  if (sql.indexOf(";") < 0) return;
  const offset = verdict(sql);
  if (offset < 0) return;
  const next = skipSeparators(sql, offset);
  const text = sql.slice(next, statementEnd(sql, next)).replace(/[\s;]+$/, "");
  throw new MultipleStatementsError({ call, offset, next: text });
}
