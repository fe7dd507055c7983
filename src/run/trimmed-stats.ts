// The run-time estimate's statistics: the same for a store's history and a batch's own samples.

import type { RunTimePrior } from "./schedule.js";

/** Mean and standard deviation after dropping the top and bottom 10 % (when there are ≥ 5 values). */
export function trimmedStats(values: readonly number[]): RunTimePrior | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const cut = sorted.length >= 5 ? Math.floor(sorted.length * 0.1) : 0;
  const kept = sorted.slice(cut, sorted.length - cut);
  const mean = kept.reduce((s, v) => s + v, 0) / kept.length;
  const variance = kept.length > 1 ? kept.reduce((s, v) => s + (v - mean) ** 2, 0) / (kept.length - 1) : 0;
  return { meanMs: mean, stdMs: Math.sqrt(variance), samples: values.length };
}
