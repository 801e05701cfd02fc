/**
 * Medians over interleaved rounds: each round times the baseline and the contender back
 * to back, so the noise of a shared machine hits both alike. `deno bench` gives averages
 * and percentiles but no median; the ratio scripts use this.
 *
 * @module
 */

/** The median of `values`. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/** Times `baseline` and `contender` in `rounds` interleaved rounds; prints the medians. */
export async function report(
  label: string,
  baseline: () => Promise<number> | number,
  contender: () => Promise<number> | number,
  goal: string,
  rounds = 15,
): Promise<void> {
  const base: number[] = [];
  const ours: number[] = [];
  for (let r = 0; r < rounds; r++) {
    base.push(await baseline());
    ours.push(await contender());
  }
  const b = median(base);
  const o = median(ours);
  console.log(
    `${label}: baseline ${b.toFixed(3)}, shardlite ${o.toFixed(3)} -> ${
      (o / b).toFixed(2)
    }x time (${(b / o).toFixed(2)}x rate); goal ${goal}`,
  );
}
