/**
 * How the commands lay out what they print: strategies in words, byte counts, aligned
 * columns, progress bars.
 *
 * @module
 */

import type { StrategyDescriptor } from "../routing/strategies.ts";
import type { CliIO } from "./io.ts";

/** Describes a strategy in a few words. */
export function describeStrategy(descriptor: StrategyDescriptor): string {
  switch (descriptor.type) {
    case "hash":
      return `hash (jump consistent hash, ${descriptor.numShards} shards)`;
    case "modulo":
      return `modulo (|key| % ${descriptor.numShards})`;
    case "range": {
      const shown = descriptor.boundaries.slice(0, 5).map((b) => JSON.stringify(b)).join(", ");
      return `range (boundaries ${shown}${descriptor.boundaries.length > 5 ? ", …" : ""})`;
    }
    case "lookup":
      return `lookup (${descriptor.entries.length} pinned keys; ${
        descriptor.fallback === undefined
          ? "no fallback"
          : `fallback ${describeStrategy(descriptor.fallback)}`
      })`;
  }
}

/** Formats a byte count with decimal units (kB = 1000 B). */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = "B";
  for (const next of units) {
    if (value < 1000) break;
    value /= 1000;
    unit = next;
  }
  return `${value.toFixed(value < 10 ? 2 : 1)} ${unit}`;
}

/** Lays `rows` out in columns two spaces apart, right-aligning the columns so marked. */
export function formatTable(rows: string[][], rightAligned: (column: number) => boolean): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => widths[i] = Math.max(widths[i] ?? 0, cell.length));
  }
  return rows.map((row) =>
    row.map((cell, i) =>
      rightAligned(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)
    ).join("  ").trimEnd() + "\n"
  ).join("");
}

/** A progress bar drawer: redraws in place on a terminal, prints every 10% otherwise. */
export function progressBar(io: CliIO, label: string): {
  update(done: number, total: number, detail: string): void;
  finish(): void;
} {
  let lastDecile = -1;
  let drawn = false;
  return {
    update(done, total, detail) {
      const fraction = total > 0 ? Math.min(done / total, 1) : 0;
      const width = 30;
      const filled = Math.round(fraction * width);
      const bar = `${label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${
        (fraction * 100).toFixed(0).padStart(3)
      }% ${detail}`;
      if (io.stderrIsTerminal === true) {
        io.stderr(`\r\x1b[2K${bar}`);
        drawn = true;
      } else {
        const decile = Math.floor(fraction * 10);
        if (decile !== lastDecile) {
          lastDecile = decile;
          io.stderr(`${bar}\n`);
        }
      }
    },
    finish() {
      if (drawn) io.stderr("\n");
      drawn = false;
    },
  };
}
