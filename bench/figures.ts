/**
 * The figures a bench hands to `npm run bench` (bench/all.ts): one JSON line each, appended
 * to the file named by BENCH_FIGURES (nothing happens without it, so every bench still runs
 * alone). A figure is a measured value next to its anchor, measured in the same run, and the
 * issue's goal for it: a maximum ratio value/anchor or a maximum value.
 */
import { appendFileSync } from 'node:fs';

export interface Figure {
  /** What was measured, e.g. "warm start, bwrap, 10 paths". */
  readonly figure: string;
  readonly value: number;
  /** "ms", "MiB", "% of a core". */
  readonly unit: string;
  /** What the value is compared with, e.g. "bwrap with the driver's arguments". */
  readonly anchor: string;
  readonly anchorValue: number;
  /** value/anchor must stay at or below this. */
  readonly maxRatio?: number;
  /** value must stay at or below this (in `unit`). */
  readonly maxValue?: number;
}

export function reportFigure(figure: Figure): void {
  const file = process.env.BENCH_FIGURES;
  if (file !== undefined && file !== '') appendFileSync(file, `${JSON.stringify(figure)}\n`);
}

/** Median of `values` (the upper one of an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}
