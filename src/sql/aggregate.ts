/**
 * Parses the aggregates Shardlite can combine across shards (`COUNT(*)`, `SUM(age)`, ...).
 *
 * @module
 */

import { InvalidQueryError } from "../errors.ts";
import { describeKey } from "./describe.ts";
import { validateIdentifier } from "./identifiers.ts";

/** The aggregate functions Shardlite can combine across shards. */
export type AggregateFunction = "COUNT" | "SUM" | "AVG" | "MIN" | "MAX";

/** A parsed aggregate such as `COUNT(*)` or `SUM(age)`. */
export interface Aggregate {
  /** The function, upper case. */
  readonly fn: AggregateFunction;
  /** The validated column, or `"*"` (COUNT only). */
  readonly column: string;
}

const AGGREGATE = /^\s*([A-Za-z]+)\s*\(\s*(\*|[A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$/;

/**
 * Parses an aggregate such as `"COUNT(*)"`, `"count(age)"` or `" max( age ) "`.
 * Only COUNT, SUM, AVG, MIN and MAX over one column (or `*` for COUNT) are accepted:
 * DISTINCT, expressions and other functions throw {@link InvalidQueryError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseAggregate } from "./aggregate.ts";
 * const { fn, column } = parseAggregate(" max( age ) ");
 * assert(fn === "MAX" && column === "age");
 * ```
 */
export function parseAggregate(expression: string): Aggregate {
  if (typeof expression !== "string") {
    throw new InvalidQueryError("aggregate", `expected a string, got ${describeKey(expression)}`);
  }
  const shown = JSON.stringify(expression.length > 80 ? expression.slice(0, 80) + "…" : expression);
  if (/\bdistinct\b/i.test(expression)) {
    throw new InvalidQueryError(
      "aggregate",
      `${shown}: DISTINCT cannot be combined across shards; fetch the distinct values instead`,
    );
  }
  const match = AGGREGATE.exec(expression);
  if (match === null) {
    throw new InvalidQueryError(
      "aggregate",
      `${shown} is not FN(column) or COUNT(*), with FN one of COUNT, SUM, AVG, MIN, MAX`,
    );
  }
  const fn = match[1]!.toUpperCase();
  if (fn !== "COUNT" && fn !== "SUM" && fn !== "AVG" && fn !== "MIN" && fn !== "MAX") {
    throw new InvalidQueryError(
      "aggregate",
      `${shown}: ${match[1]} is not one of COUNT, SUM, AVG, MIN, MAX`,
    );
  }
  const column = match[2]!;
  if (column === "*") {
    if (fn !== "COUNT") throw new InvalidQueryError("aggregate", `${shown}: only COUNT takes *`);
    return { fn, column };
  }
  return { fn, column: validateIdentifier(column, "column") };
}
