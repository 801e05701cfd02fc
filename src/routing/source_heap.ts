/**
 * The k-way merge's heap: the indexes of the sources being merged (shards' lists,
 * cursors, rowid runs), ordered by each source's current row under ORDER BY terms, ties by
 * source index (see `rowOrder` in `merge.ts`), so that equal rows come out in source
 * order. `merge.ts` and `stream.ts` merge through it.
 *
 * @module
 */

/**
 * A binary min-heap of source indexes under `less`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SourceHeap } from "./source_heap.ts";
 * const keys = [5, 1, 3];
 * const heap = new SourceHeap([0, 1, 2], (x, y) => keys[x]! < keys[y]!);
 * assert.equal(heap.top, 1);
 * keys[1] = 9; // source 1 moved on to a bigger row
 * heap.fix();
 * assert.equal(heap.top, 2);
 * heap.pop();
 * assert.equal(heap.top, 0);
 * ```
 */
export class SourceHeap {
  readonly #items: number[];
  readonly #less: (x: number, y: number) => boolean;

  /** A heap of `sources` (heapified at once). */
  constructor(sources: readonly number[], less: (x: number, y: number) => boolean) {
    this.#items = [...sources];
    this.#less = less;
    for (let i = (this.#items.length >>> 1) - 1; i >= 0; i--) this.#siftDown(i);
  }

  /** How many sources are left. */
  get size(): number {
    return this.#items.length;
  }

  /** The source whose current row comes first (undefined when empty). */
  get top(): number | undefined {
    return this.#items[0];
  }

  /** The top source moved on to its next row: restores the order. */
  fix(): void {
    this.#siftDown(0);
  }

  /** Removes the top source (it has no rows left). */
  pop(): void {
    const items = this.#items;
    const last = items.pop();
    if (last === undefined || items.length === 0) return;
    items[0] = last;
    this.#siftDown(0);
  }

  #siftDown(start: number): void {
    const items = this.#items;
    const less = this.#less;
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= items.length) return;
      const right = left + 1;
      const child = right < items.length && less(items[right]!, items[left]!) ? right : left;
      if (!less(items[child]!, items[i]!)) return;
      [items[i], items[child]] = [items[child]!, items[i]!];
      i = child;
    }
  }
}
