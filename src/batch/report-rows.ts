// Report rows for the manifest lines that never became rows (not JSON, a missing or bad
// field, a duplicate id or name): the report lists every line of the manifest, each with its
// reason, not only the rows that could be run or validated.

import type { ManifestProblem } from "./manifest.js";
import type { ReportRow } from "./report.js";

/** One invalid row per manifest line with problems, with every problem of that line. */
export function problemReportRows(problems: readonly ManifestProblem[]): ReportRow[] {
  const byLine = new Map<number, ManifestProblem[]>();
  for (const problem of problems) {
    const list = byLine.get(problem.line) ?? [];
    list.push(problem);
    byLine.set(problem.line, list);
  }
  return [...byLine].map(([line, list]) => {
    const row = list.find((p) => p.row)?.row;
    return {
      line,
      key: row?.key,
      name: row?.name,
      image: row?.image,
      prompt: row?.prompt,
      frames: undefined,
      seed: undefined,
      status: "invalid",
      requestId: undefined,
      timings: {},
      estimateUsd: undefined,
      costUsd: undefined,
      file: undefined,
      bytes: undefined,
      sha256: undefined,
      error: list.map((p) => ({ field: p.field, message: p.message })),
    };
  });
}
