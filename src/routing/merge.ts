/**
 * Combining per-shard results so that the answer equals what one SQLite database
 * holding every row would give: SQLite's value order, a k-way merge for ORDER BY with
 * LIMIT/OFFSET, and aggregates rebuilt from per-shard partials (never an average of
 * averages).
 *
 * @module
 */

import { SourceHeap } from "./source_heap.ts";
import { checkCount } from "../sql/dml.ts";
import { AggregateOverflowError, InvalidQueryError } from "../errors.ts";
import type { Row, SqlValue } from "../types.ts";
import { compareBytes, compareText } from "./keys.ts";
import { type Aggregate, type AggregateFunction, parseAggregate } from "../sql/aggregate.ts";
import type { SqlStatement } from "../sql/dml.ts";
import { quoteIdentifier, validateIdentifier } from "../sql/identifiers.ts";
import { type OrderBy, type ResolvedOrderTerm, resolveOrderBy } from "../sql/order.ts";
import { buildWhere, type Where } from "../sql/where.ts";
import type { TextCheck } from "../sql/values.ts";

function storageRank(value: SqlValue): number {
  if (value === null) return 0;
  switch (typeof value) {
    case "number":
    case "bigint":
      return 1;
    case "string":
      return 2;
    default:
      if (value instanceof Uint8Array) return 3;
      throw new TypeError(`not an SQL value: ${Object.prototype.toString.call(value)}`);
  }
}

/** Compares a bigint with a finite or infinite double exactly, without rounding either. */
function compareBigintNumber(big: bigint, x: number): number {
  if (x === Infinity) return -1;
  if (x === -Infinity) return 1;
  if (Number.isNaN(x)) return 0;
  const floor = Math.floor(x);
  const whole = BigInt(floor);
  if (big < whole) return -1;
  if (big > whole) return 1;
  // big == floor(x): equal when x has no fraction, else x is larger
  return x === floor ? 0 : -1;
}

/**
 * Compares two values in SQLite's order with the BINARY collation: NULL first, then
 * numbers (INTEGER and REAL compared by exact value, so `2n ** 53n + 1n` is greater
 * than `2 ** 53`, and `-0` equals `0`), then TEXT by UTF-8 bytes (code points, not
 * JavaScript's UTF-16 order), then BLOBs by `memcmp` and then length. NaN, which
 * SQLite never returns, compares equal to every number.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compareSqlValues } from "./merge.ts";
 * assert(compareSqlValues(null, -Infinity) < 0);
 * assert(compareSqlValues(2n ** 53n + 1n, 2 ** 53) > 0);
 * assert(compareSqlValues("\u{10000}", "\uffff") > 0);
 * assert(compareSqlValues("z", new Uint8Array()) < 0);
 * ```
 */
export function compareSqlValues(a: SqlValue, b: SqlValue): number {
  const rankA = storageRank(a);
  const rankB = storageRank(b);
  if (rankA !== rankB) return rankA < rankB ? -1 : 1;
  switch (rankA) {
    case 0:
      return 0;
    case 1:
      if (typeof a === "number") {
        if (typeof b === "number") return a < b ? -1 : a > b ? 1 : 0;
        return -compareBigintNumber(b as bigint, a);
      }
      if (typeof b === "number") return compareBigintNumber(a as bigint, b);
      return (a as bigint) < (b as bigint) ? -1 : (a as bigint) > (b as bigint) ? 1 : 0;
    case 2:
      return compareText(a as string, b as string);
    default:
      return compareBytes(a as Uint8Array, b as Uint8Array);
  }
}

/** Options of {@link mergeSorted}: LIMIT and OFFSET applied to the merged rows. */
export interface MergeOptions {
  /** At most this many rows (a non-negative safe integer). */
  readonly limit?: number | undefined;
  /** Skip this many rows first (a non-negative safe integer). */
  readonly offset?: number | undefined;
}

/**
 * The LIMIT each shard must apply so that LIMIT/OFFSET over the merged rows is exact:
 * `limit + offset` (each shard may hold every one of the first rows), or none.
 * Pass the same `limit` and `offset` to {@link mergeSorted}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shardLimit } from "./merge.ts";
 * assert(shardLimit({ limit: 10, offset: 20 }) === 30);
 * assert(shardLimit({ offset: 5 }) === undefined);
 * ```
 */
export function shardLimit(options: MergeOptions): number | undefined {
  if (options.limit === undefined) return undefined;
  return checkCount(options.limit, "limit") + checkCount(options.offset ?? 0, "offset");
}

/**
 * Merges row lists, each already sorted by `orderBy` (as SQLite sorted them on its
 * shard), into one sorted list with a binary heap, then applies `offset` and `limit`.
 * Rows that compare equal keep a deterministic order: by list (shard) index, then by
 * position in their list. For results identical to one database, end `orderBy` with
 * a unique column such as the primary key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mergeSorted } from "./merge.ts";
 * const merged = mergeSorted(
 *   [[{ id: 3, age: 40 }, { id: 1, age: 20 }], [{ id: 2, age: 30 }]],
 *   [{ column: "age", direction: "desc" }],
 *   { limit: 2 },
 * );
 * assert(merged.map((row) => row.id).join() === "3,2");
 * ```
 */
export function mergeSorted(
  lists: readonly (readonly Row[])[],
  orderBy: OrderBy | readonly ResolvedOrderTerm[],
  options: MergeOptions = {},
): Row[] {
  const terms = resolveOrderBy(orderBy as OrderBy);
  const offset = checkCount(options.offset ?? 0, "offset");
  const limit = options.limit === undefined ? Infinity : checkCount(options.limit, "limit");
  const columns = terms.map((t) => t.column);
  const signs = terms.map((t) => (t.direction === "desc" ? -1 : 1));
  for (const list of lists) {
    const first = list[0];
    if (first === undefined) continue;
    for (const column of columns) {
      if (!(column in first)) {
        throw new InvalidQueryError("orderBy", `the rows have no column ${JSON.stringify(column)}`);
      }
    }
  }
  const positions = new Array<number>(lists.length).fill(0);
  // The lists with rows, ordered by each list's current row.
  const heap = new SourceHeap(
    lists.flatMap((list, i) => (list.length > 0 ? [i] : [])),
    rowOrder(columns, signs, (i) => lists[i]![positions[i]!]!),
  );
  const out: Row[] = [];
  let skipped = 0;
  for (let top = heap.top; top !== undefined && out.length < limit; top = heap.top) {
    const row = lists[top]![positions[top]!]!;
    if (skipped < offset) skipped++;
    else out.push(row);
    positions[top]!++;
    if (positions[top]! >= lists[top]!.length) heap.pop();
    else heap.fix();
  }
  return out;
}

/**
 * Whether source `x`'s current row (`rowOf(x)`) sorts before source `y`'s: by `columns`
 * (descending where `signs[t]` is -1), then by source index, so that equal rows merge in
 * source order. The order of a {@link SourceHeap}.
 */
export function rowOrder(
  columns: readonly string[],
  signs: readonly number[],
  rowOf: (source: number) => Row,
): (x: number, y: number) => boolean {
  return (x, y) => {
    const a = rowOf(x);
    const b = rowOf(y);
    for (let t = 0; t < columns.length; t++) {
      const column = columns[t] as string;
      const order = compareSqlValues(a[column] ?? null, b[column] ?? null);
      if (order !== 0) return order * (signs[t] as number) < 0;
    }
    return x < y;
  };
}

function toAggregate(aggregate: Aggregate | string): Aggregate {
  return typeof aggregate === "string" ? parseAggregate(aggregate) : {
    fn: parseAggregate(`${aggregate.fn}(${aggregate.column})`).fn,
    column: aggregate.column === "*" ? "*" : validateIdentifier(aggregate.column, "column"),
  };
}

function checkAlias(alias: string): string {
  return validateIdentifier(alias, "aggregate alias");
}

/**
 * The select-list piece that computes a shard's partial result for an aggregate, with
 * columns named after `alias` (default `"agg"`):
 *
 * | aggregate | partial columns |
 * | --- | --- |
 * | COUNT | `<alias>_count` |
 * | SUM | `<alias>_sum`, `<alias>_type` (`typeof` of the sum: a REAL 3.0 reads back as 3) |
 * | AVG | `<alias>_sum`, `<alias>_type`, `<alias>_count` (non-NULL values) |
 * | MIN, MAX | `<alias>_value` |
 *
 * Give every aggregate of one query its own alias. Combine with {@link combineAggregate}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { partialAggregateSql } from "./merge.ts";
 * assert(partialAggregateSql("AVG(age)") ===
 *   'SUM("age") AS "agg_sum", typeof(SUM("age")) AS "agg_type", COUNT("age") AS "agg_count"');
 * ```
 */
export function partialAggregateSql(aggregate: Aggregate | string, alias = "agg"): string {
  const { fn, column } = toAggregate(aggregate);
  const name = checkAlias(alias);
  const target = column === "*" ? "*" : quoteIdentifier(column, "column");
  const sum = `SUM(${target}) AS "${name}_sum", typeof(SUM(${target})) AS "${name}_type"`;
  switch (fn) {
    case "COUNT":
      return `COUNT(${target}) AS "${name}_count"`;
    case "SUM":
      return sum;
    case "AVG":
      return `${sum}, COUNT(${target}) AS "${name}_count"`;
    default:
      return `${fn}(${target}) AS "${name}_value"`;
  }
}

/**
 * A whole per-shard statement computing the partials of several aggregates over the
 * rows matching `where`; aggregate `i` uses the alias `a<i>`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildPartialAggregate } from "./merge.ts";
 * const { sql, params } = buildPartialAggregate("users", ["COUNT(*)", "MAX(age)"], { team: "red" });
 * assert(sql ===
 *   'SELECT COUNT(*) AS "a0_count", MAX("age") AS "a1_value" FROM "users" WHERE "team" = ?');
 * assert(params[0] === "red");
 * ```
 */
export function buildPartialAggregate(
  table: string,
  aggregates: readonly (Aggregate | string)[],
  where?: Where | undefined,
  checkText?: TextCheck | undefined,
  rowidRange?: { readonly from?: number | undefined; readonly to?: number | undefined },
): SqlStatement {
  if (aggregates.length === 0) throw new InvalidQueryError("aggregates", "none were given");
  const list = aggregates.map((aggregate, i) => partialAggregateSql(aggregate, `a${i}`));
  const filter = buildWhere(where, checkText);
  const sql = `SELECT ${list.join(", ")} FROM ${quoteIdentifier(table, "table")}`;
  return withRowidRange(sql, filter, rowidRange);
}

/** `sql` with `filter` and, for a run of a split read (see split.ts), a rowid range. */
function withRowidRange(
  sql: string,
  filter: SqlStatement,
  rowidRange?: { readonly from?: number | undefined; readonly to?: number | undefined },
): SqlStatement {
  const params = [...filter.params];
  const bounds: string[] = [];
  if (rowidRange?.from !== undefined) {
    bounds.push("rowid >= ?");
    params.push(rowidRange.from);
  }
  if (rowidRange?.to !== undefined) {
    bounds.push("rowid < ?");
    params.push(rowidRange.to);
  }
  if (bounds.length > 0) {
    const rest = filter.sql === "" ? "" : `(${filter.sql.slice("WHERE ".length)}) AND `;
    return { sql: `${sql} WHERE ${rest}${bounds.join(" AND ")}`, params };
  }
  return { sql: filter.sql === "" ? sql : `${sql} ${filter.sql}`, params };
}

function fnOf(aggregate: Aggregate | AggregateFunction | string): Aggregate {
  if (typeof aggregate === "string") {
    const upper = aggregate.trim().toUpperCase();
    if (
      upper === "COUNT" || upper === "SUM" || upper === "AVG" || upper === "MIN" || upper === "MAX"
    ) {
      return { fn: upper, column: "*" };
    }
  }
  return toAggregate(aggregate);
}

function toBigint(value: SqlValue | undefined, at: string): bigint {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isSafeInteger(value)) return BigInt(value);
  throw new InvalidQueryError(at, `expected an integer partial, got ${String(value)}`);
}

function fromBigint(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(value)
    : value;
}

/** Exact integer total plus a compensated (Neumaier) sum of the REAL partials. */
function totalOf(partials: readonly Row[], name: string, label: string) {
  let integer = 0n;
  let real = 0;
  let compensation = 0;
  let isReal = false;
  let any = false;
  for (const row of partials) {
    const value = row[`${name}_sum`];
    const type = row[`${name}_type`];
    if (value === null || type === "null") continue;
    any = true;
    if (type === "integer") {
      integer += toBigint(value, `${label} partial`);
    } else if (type === "real" && typeof value === "number") {
      isReal = true;
      const next = real + value;
      compensation += Math.abs(real) >= Math.abs(value)
        ? (real - next) + value
        : (value - next) + real;
      real = next;
    } else {
      throw new InvalidQueryError(
        `${label} partial`,
        `unexpected sum ${String(value)} (${String(type)})`,
      );
    }
  }
  return { any, isReal, integer, real, compensation };
}

function realTotal(t: { integer: bigint; real: number; compensation: number }): number {
  const result = Number(t.integer) + t.real + t.compensation;
  return Number.isFinite(result) ? result : Number(t.integer) + t.real;
}

/**
 * Combines per-shard partial rows (see {@link partialAggregateSql}) into the value one
 * SQLite database would return:
 *
 * - COUNT: the sum of the counts.
 * - SUM: NULL when no shard saw a non-NULL value; an exact integer (a bigint beyond
 *   2^53) when every partial is an INTEGER, and {@link AggregateOverflowError} when the
 *   exact total leaves int64 (SQLite's "integer overflow"); a REAL as soon as one
 *   partial is REAL. A REAL total may differ from one database in the last bits:
 *   floating-point addition is not associative and SQLite sums in row order.
 * - AVG: total SUM / total COUNT of non-NULL values (never an average of averages);
 *   NULL when the count is 0. Exact for INTEGER columns, last-bit rounding otherwise.
 * - MIN / MAX: the least / greatest non-NULL partial by {@link compareSqlValues};
 *   NULL when all are NULL.
 *
 * A shard whose own integer SUM overflows fails on that shard, as SQLite reports it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { combineAggregate } from "./merge.ts";
 * const avg = combineAggregate("AVG(age)", [
 *   { agg_sum: 30, agg_type: "integer", agg_count: 2 },
 *   { agg_sum: null, agg_type: "null", agg_count: 0 },
 *   { agg_sum: 60, agg_type: "integer", agg_count: 1 },
 * ]);
 * assert(avg === 30);
 * ```
 */
export function combineAggregate(
  aggregate: Aggregate | AggregateFunction | string,
  partials: readonly Row[],
  alias = "agg",
): SqlValue {
  const { fn, column } = fnOf(aggregate);
  const name = checkAlias(alias);
  const label = `${fn}(${column})`;
  switch (fn) {
    case "COUNT": {
      let total = 0n;
      for (const row of partials) total += toBigint(row[`${name}_count`], `${label} partial`);
      return fromBigint(total);
    }
    case "SUM": {
      const total = totalOf(partials, name, label);
      if (!total.any) return null;
      if (total.isReal) return realTotal(total);
      if (total.integer < -(2n ** 63n) || total.integer >= 2n ** 63n) {
        throw new AggregateOverflowError(label, total.integer);
      }
      return fromBigint(total.integer);
    }
    case "AVG": {
      let count = 0n;
      for (const row of partials) count += toBigint(row[`${name}_count`], `${label} partial`);
      if (count === 0n) return null;
      const total = totalOf(partials, name, label);
      return (total.isReal ? realTotal(total) : Number(total.integer)) / Number(count);
    }
    default: {
      let best: SqlValue = null;
      const sign = fn === "MIN" ? 1 : -1;
      for (const row of partials) {
        const value = row[`${name}_value`];
        if (value === undefined) {
          throw new InvalidQueryError(`${label} partial`, `the row has no ${name}_value`);
        }
        if (value === null) continue;
        if (best === null || compareSqlValues(value, best) * sign < 0) best = value;
      }
      return best;
    }
  }
}

/**
 * A per-shard statement computing, for each group of rows with equal `groupBy` values,
 * the partials of `aggregates` (aliases `a<i>`); group values come back as `g<j>`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildGroupedAggregate } from "./merge.ts";
 * const { sql } = buildGroupedAggregate("users", ["team"], ["COUNT(*)"]);
 * assert(sql ===
 *   'SELECT "team" AS "g0", COUNT(*) AS "a0_count" FROM "users" GROUP BY "team"');
 * ```
 */
export function buildGroupedAggregate(
  table: string,
  groupBy: readonly string[],
  aggregates: readonly (Aggregate | string)[],
  where?: Where | undefined,
  checkText?: TextCheck | undefined,
  rowidRange?: { readonly from?: number | undefined; readonly to?: number | undefined },
): SqlStatement {
  if (groupBy.length === 0) throw new InvalidQueryError("groupBy", "name at least one column");
  if (aggregates.length === 0) throw new InvalidQueryError("aggregates", "none were given");
  const columns = groupBy.map((column) => quoteIdentifier(column, "groupBy column"));
  const keys = columns.map((column, j) => `${column} AS "g${j}"`);
  const list = aggregates.map((aggregate, i) => partialAggregateSql(aggregate, `a${i}`));
  const filter = buildWhere(where, checkText);
  const sql = `SELECT ${[...keys, ...list].join(", ")} FROM ${quoteIdentifier(table, "table")}`;
  // A run of a split read: the groups of the rows in a rowid range.
  const ranged = withRowidRange(sql, filter, rowidRange);
  return { sql: `${ranged.sql} GROUP BY ${columns.join(", ")}`, params: ranged.params };
}

/**
 * Combines every shard's groups (rows of {@link buildGroupedAggregate}) into one row per
 * group, ordered by the group values as SQLite orders them (NULL first). Groups from
 * different shards merge when their values compare equal as SQLite compares them with
 * the BINARY collation; each aggregate combines as in {@link combineAggregate}. Each row
 * holds the `groupBy` columns and one entry per aggregate, keyed by `labels[i]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { combineGroups } from "./merge.ts";
 * const rows = combineGroups(["team"], ["COUNT(*)"], ["COUNT(*)"], [
 *   [{ g0: "red", a0_count: 2 }, { g0: "blue", a0_count: 1 }],
 *   [{ g0: "red", a0_count: 3 }],
 * ]);
 * assert.deepEqual(rows, [{ team: "blue", "COUNT(*)": 1 }, { team: "red", "COUNT(*)": 5 }]);
 * ```
 */
export function combineGroups(
  groupBy: readonly string[],
  aggregates: readonly (Aggregate | string)[],
  labels: readonly string[],
  lists: readonly (readonly Row[])[],
): Row[] {
  const compare = groupKeyOrder(groupBy.length);
  const all = lists.flat().sort(compare);
  const result: Row[] = [];
  combineSortedGroups(groupBy, aggregates, labels, all, 0, result, Infinity);
  return result;
}

/** The order of group keys (`g0`, `g1`, ...) in rows of {@link buildGroupedAggregate}. */
export function groupKeyOrder(width: number): (x: Row, y: Row) => number {
  return (x, y) => {
    for (let j = 0; j < width; j++) {
      const order = compareSqlValues(x[`g${j}`] ?? null, y[`g${j}`] ?? null);
      if (order !== 0) return order;
    }
    return 0;
  };
}

/**
 * Combines up to `maxGroups` groups of `sorted` (partial rows sorted by group key, as
 * {@link groupKeyOrder} orders them) from index `start`, pushing one row per group onto
 * `out`; returns the index where the next group starts (`sorted.length` when done). A
 * caller can so combine a large result a slice at a time.
 */
export function combineSortedGroups(
  groupBy: readonly string[],
  aggregates: readonly (Aggregate | string)[],
  labels: readonly string[],
  sorted: readonly Row[],
  start: number,
  out: Row[],
  maxGroups: number,
): number {
  const compare = groupKeyOrder(groupBy.length);
  let at = start;
  for (let made = 0; at < sorted.length && made < maxGroups; made++) {
    let end = at + 1;
    while (end < sorted.length && compare(sorted[at] as Row, sorted[end] as Row) === 0) end++;
    const group = sorted.slice(at, end);
    const first = group[0] as Row;
    const row: Row = {};
    groupBy.forEach((column, j) => row[column] = first[`g${j}`] ?? null);
    aggregates.forEach((aggregate, i) => {
      row[labels[i] as string] = combineAggregate(aggregate, group, `a${i}`);
    });
    out.push(row);
    at = end;
  }
  return at;
}
