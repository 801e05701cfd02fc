/**
 * ORDER BY options: their types, and their resolution into validated columns with
 * explicit directions.
 *
 * @module
 */

import { InvalidQueryError } from "../errors.ts";
import { describeKey } from "./describe.ts";
import { validateIdentifier } from "./identifiers.ts";

/** One ORDER BY term. */
export interface OrderTerm {
  /** The column to sort by. */
  readonly column: string;
  /** `"asc"` (the default) or `"desc"`. */
  readonly direction?: "asc" | "desc";
}

/** An ORDER BY term with its direction resolved. */
export interface ResolvedOrderTerm {
  /** The validated column name. */
  readonly column: string;
  /** The direction. */
  readonly direction: "asc" | "desc";
}

/** ORDER BY: one column name, or a list of names and terms, most significant first. */
export type OrderBy = string | readonly (string | OrderTerm)[];

/**
 * Resolves an ORDER BY option into validated terms with explicit directions.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveOrderBy } from "./order.ts";
 * const terms = resolveOrderBy(["name", { column: "age", direction: "desc" }]);
 * assert(terms[0]!.direction === "asc" && terms[1]!.direction === "desc");
 * ```
 */
export function resolveOrderBy(orderBy: OrderBy): ResolvedOrderTerm[] {
  const list = typeof orderBy === "string" ? [orderBy] : orderBy;
  if (!Array.isArray(list)) {
    throw new InvalidQueryError("orderBy", `expected a column name or an array of terms`);
  }
  return list.map((term: unknown, i): ResolvedOrderTerm => {
    if (typeof term === "string") {
      return { column: validateIdentifier(term, "column"), direction: "asc" };
    }
    if (typeof term !== "object" || term === null) {
      throw new InvalidQueryError(
        `orderBy[${i}]`,
        `expected a column name or { column, direction }`,
      );
    }
    const { column, direction } = term as { column?: unknown; direction?: unknown };
    if (direction !== undefined && direction !== "asc" && direction !== "desc") {
      throw new InvalidQueryError(
        `orderBy[${i}].direction`,
        `expected "asc" or "desc", got ${describeKey(direction)}`,
      );
    }
    return { column: validateIdentifier(column, "column"), direction: direction ?? "asc" };
  });
}
