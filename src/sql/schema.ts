/**
 * Builds CREATE TABLE and DROP TABLE, checking each column definition against a small
 * whitelist grammar.
 *
 * @module
 */

import { InvalidIdentifierError, InvalidQueryError, InvalidSchemaError } from "../errors.ts";
import { describeKey } from "./describe.ts";
import type { SqlStatement } from "./dml.ts";
import { quoteIdentifier, validateIdentifier } from "./identifiers.ts";

/** Options of {@link buildCreateTable}. */
export interface CreateTableOptions {
  /** Add `IF NOT EXISTS`. */
  readonly ifNotExists?: boolean | undefined;
  /** A composite primary key, as a table constraint. */
  readonly primaryKey?: readonly string[] | undefined;
}

/**
 * Builds a CREATE TABLE from column names and definitions; each definition is checked
 * and normalised by {@link validateColumnDefinition}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildCreateTable } from "./schema.ts";
 * const { sql } = buildCreateTable("users", {
 *   id: "integer primary key",
 *   name: "TEXT NOT NULL DEFAULT 'anon'",
 * }, { ifNotExists: true });
 * assert(
 *   sql ===
 *     `CREATE TABLE IF NOT EXISTS "users" ("id" INTEGER PRIMARY KEY, "name" TEXT NOT NULL DEFAULT 'anon')`,
 * );
 * ```
 */
export function buildCreateTable(
  table: string,
  columns: Readonly<Record<string, string>>,
  options: CreateTableOptions = {},
): SqlStatement {
  const target = quoteIdentifier(table, "table");
  if (typeof columns !== "object" || columns === null || Array.isArray(columns)) {
    throw new InvalidSchemaError(undefined, describeKey(columns), "expected an object of columns");
  }
  const definitions = Object.entries(columns).map(([name, definition]) => {
    const column = validateIdentifier(name, "column");
    const normal = validateColumnDefinition(definition, column);
    return normal === "" ? `"${column}"` : `"${column}" ${normal}`;
  });
  if (definitions.length === 0) {
    throw new InvalidSchemaError(undefined, "", `table ${table} needs at least one column`);
  }
  if (options.primaryKey !== undefined) {
    if (!Array.isArray(options.primaryKey) || options.primaryKey.length === 0) {
      throw new InvalidQueryError("primaryKey", "expected a non-empty array of column names");
    }
    definitions.push(
      `PRIMARY KEY (${options.primaryKey.map((c) => quoteIdentifier(c, "column")).join(", ")})`,
    );
  }
  return {
    sql: `CREATE TABLE ${options.ifNotExists ? "IF NOT EXISTS " : ""}${target} (${
      definitions.join(", ")
    })`,
    params: [],
  };
}

/**
 * Builds a DROP TABLE.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildDropTable } from "./schema.ts";
 * assert(buildDropTable("users", { ifExists: true }).sql === 'DROP TABLE IF EXISTS "users"');
 * ```
 */
export function buildDropTable(
  table: string,
  options: { readonly ifExists?: boolean | undefined } = {},
): SqlStatement {
  return {
    sql: `DROP TABLE ${options.ifExists ? "IF EXISTS " : ""}${quoteIdentifier(table, "table")}`,
    params: [],
  };
}

type Token =
  | { readonly kind: "word"; readonly text: string; readonly upper: string }
  | { readonly kind: "number"; readonly text: string }
  | { readonly kind: "string"; readonly text: string }
  | { readonly kind: "punct"; readonly text: string };

function tokenize(definition: string, fail: (why: string) => never): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < definition.length) {
    const rest = definition.slice(i);
    const space = /^[ \t\r\n]+/.exec(rest);
    if (space) {
      i += space[0].length;
      continue;
    }
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest);
    if (word) {
      tokens.push({ kind: "word", text: word[0], upper: word[0].toUpperCase() });
      i += word[0].length;
      continue;
    }
    const number = /^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?(?![A-Za-z0-9_.])/.exec(
      rest,
    );
    if (number) {
      tokens.push({ kind: "number", text: number[0] });
      i += number[0].length;
      continue;
    }
    const string = /^'((?:[^']|'')*)'/.exec(rest);
    if (string) {
      tokens.push({ kind: "string", text: string[1]!.replaceAll("''", "'") });
      i += string[0].length;
      continue;
    }
    if (rest[0] === "'") fail(`unterminated string at offset ${i}`);
    // Any other character becomes a token the grammar refuses, so the message names the construct
    const char = String.fromCodePoint(rest.codePointAt(0)!);
    tokens.push({ kind: "punct", text: char });
    i += char.length;
  }
  return tokens;
}

const CONSTRAINT_WORDS = new Set([
  "PRIMARY",
  "NOT",
  "NULL",
  "UNIQUE",
  "DEFAULT",
  "COLLATE",
  "REFERENCES",
  "CHECK",
  "CONSTRAINT",
  "GENERATED",
  "AS",
  "ON",
  "KEY",
]);

/**
 * Checks a column definition for createTable against a small whitelist grammar and
 * returns it normalised (keywords upper case, single spaces, identifiers quoted):
 *
 * ```text
 * [type words (n[, m])]
 * ( PRIMARY KEY [ASC|DESC] [AUTOINCREMENT] | NOT NULL | NULL | UNIQUE
 * | DEFAULT (signed number | 'text' | NULL | TRUE | FALSE
 *            | CURRENT_TIMESTAMP | CURRENT_DATE | CURRENT_TIME)
 * | COLLATE (BINARY | NOCASE | RTRIM)
 * | REFERENCES table [(column)]
 *     [ON (DELETE | UPDATE) (CASCADE | SET NULL | SET DEFAULT | RESTRICT | NO ACTION)]... )...
 * ```
 *
 * Anything else (CHECK, GENERATED, expressions, comments, `;`) throws
 * {@link InvalidSchemaError}, a distinct error from identifiers since the fix differs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { validateColumnDefinition } from "./schema.ts";
 * assert(validateColumnDefinition("text  not null default 'it''s'") ===
 *   "TEXT NOT NULL DEFAULT 'it''s'");
 * assert(validateColumnDefinition("integer references users(id) on delete cascade") ===
 *   'INTEGER REFERENCES "users"("id") ON DELETE CASCADE');
 * ```
 */
export function validateColumnDefinition(definition: unknown, column?: string): string {
  const shown = typeof definition === "string" ? definition : describeKey(definition);
  const fail = (why: string): never => {
    throw new InvalidSchemaError(column, shown, why);
  };
  if (typeof definition !== "string") return fail("expected a string");
  if (definition.length > 1000) fail("it is longer than 1000 characters");
  const tokens = tokenize(definition, fail);
  let position = 0;
  const peek = (): Token | undefined => tokens[position];
  const peekWord = (): string | undefined => {
    const token = tokens[position];
    return token?.kind === "word" ? token.upper : undefined;
  };
  const takeWord = (...expected: string[]): string => {
    const word = peekWord();
    if (word === undefined || !expected.includes(word)) {
      const token = peek();
      fail(
        `expected ${expected.join(" or ")} ${
          token === undefined ? "at the end" : `instead of ${JSON.stringify(token.text)}`
        }`,
      );
    }
    position++;
    return word!;
  };
  const takePunct = (text: string): void => {
    const token = peek();
    if (token?.kind !== "punct" || token.text !== text) {
      fail(
        `expected "${text}" ${
          token === undefined ? "at the end" : `instead of ${JSON.stringify(token.text)}`
        }`,
      );
    }
    position++;
  };
  const takeSignedNumber = (): string => {
    let sign = "";
    const first = peek();
    if (first?.kind === "punct" && (first.text === "-" || first.text === "+")) {
      sign = first.text === "-" ? "-" : "";
      position++;
    }
    const token = peek();
    if (token?.kind !== "number") {
      return fail(
        `expected a number ${
          token === undefined ? "at the end" : `instead of ${JSON.stringify(token.text)}`
        }`,
      );
    }
    position++;
    return sign + token.text;
  };
  const referenced = (name: string, kind: string): string => {
    try {
      return quoteIdentifier(name, `referenced ${kind}`);
    } catch (error) {
      if (!(error instanceof InvalidIdentifierError)) throw error;
      return fail(`the referenced ${kind} name ${JSON.stringify(name)} is not allowed`);
    }
  };
  const out: string[] = [];

  const typeWords: string[] = [];
  while (peekWord() !== undefined && !CONSTRAINT_WORDS.has(peekWord()!)) {
    typeWords.push(peekWord()!);
    position++;
  }
  if (typeWords.length > 4) fail("the type name has more than 4 words");
  if (typeWords.length > 0) {
    let type = typeWords.join(" ");
    if (peek()?.kind === "punct" && peek()!.text === "(") {
      position++;
      type += `(${takeSignedNumber()}`;
      if (peek()?.kind === "punct" && peek()!.text === ",") {
        position++;
        type += `, ${takeSignedNumber()}`;
      }
      takePunct(")");
      type += ")";
    }
    out.push(type);
  }

  while (position < tokens.length) {
    const word = peekWord();
    if (word === undefined) fail(`unexpected ${JSON.stringify(peek()!.text)}`);
    position++;
    switch (word) {
      case "PRIMARY": {
        takeWord("KEY");
        let text = "PRIMARY KEY";
        if (peekWord() === "ASC" || peekWord() === "DESC") text += ` ${takeWord("ASC", "DESC")}`;
        if (peekWord() === "AUTOINCREMENT") text += ` ${takeWord("AUTOINCREMENT")}`;
        out.push(text);
        break;
      }
      case "NOT":
        takeWord("NULL");
        out.push("NOT NULL");
        break;
      case "NULL":
      case "UNIQUE":
        out.push(word);
        break;
      case "DEFAULT": {
        const token = peek();
        if (token?.kind === "string") {
          if (token.text.includes("\0")) fail("the default text contains a NUL character");
          position++;
          out.push(`DEFAULT '${token.text.replaceAll("'", "''")}'`);
        } else if (token?.kind === "word") {
          out.push(
            `DEFAULT ${
              takeWord("NULL", "TRUE", "FALSE", "CURRENT_TIMESTAMP", "CURRENT_DATE", "CURRENT_TIME")
            }`,
          );
        } else if (token?.kind === "number" || token?.text === "-" || token?.text === "+") {
          out.push(`DEFAULT ${takeSignedNumber()}`);
        } else {
          fail(
            `DEFAULT takes a number, a 'quoted string', NULL, TRUE, FALSE or CURRENT_TIMESTAMP, ` +
              `not ${token === undefined ? "nothing" : JSON.stringify(token.text)}`,
          );
        }
        break;
      }
      case "COLLATE":
        out.push(`COLLATE ${takeWord("BINARY", "NOCASE", "RTRIM")}`);
        break;
      case "REFERENCES": {
        const token = peek();
        if (token?.kind !== "word") return fail("REFERENCES needs a table name");
        position++;
        let text = `REFERENCES ${referenced(token.text, "table")}`;
        if (peek()?.kind === "punct" && peek()!.text === "(") {
          position++;
          const target = peek();
          if (target?.kind !== "word") return fail("REFERENCES table( needs a column name");
          position++;
          takePunct(")");
          text += `(${referenced(target.text, "column")})`;
        }
        while (peekWord() === "ON") {
          position++;
          const event = takeWord("DELETE", "UPDATE");
          const action = takeWord("CASCADE", "SET", "RESTRICT", "NO");
          const full = action === "SET"
            ? `SET ${takeWord("NULL", "DEFAULT")}`
            : action === "NO"
            ? `NO ${takeWord("ACTION")}`
            : action;
          text += ` ON ${event} ${full}`;
        }
        out.push(text);
        break;
      }
      default:
        fail(`${word} is not supported here`);
    }
  }
  return out.join(" ");
}
