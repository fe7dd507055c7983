// The batch's reports, written into --out: `report.json` (every row: status, request_id,
// timings, cost, file, sha256, error) and `report.html` (report-html.ts). Both are written row by
// row to a temporary name, flushed and renamed into place (report-file.ts): a report of any size
// is never held whole in memory.

import { join } from "node:path";
import { redactSecrets } from "../api/redact.js";
import { writeAtomically } from "./report-file.js";

export type ReportRowStatus =
  | "done"
  | "failed"
  | "invalid"
  | "unknown"
  | "pending"
  | "interrupted"
  | "budget"
  /** Not submitted, or its video not saved, because the disk under --out is full. */
  | "disk-full"
  | "skipped";

/**
 * One line of the manifest. Every line that holds a row appears, valid or not: a line that
 * never became a row (not JSON, a missing field, a duplicate) has status "invalid", its
 * problems in `error`, and whatever of key, name, image and prompt could be read.
 */
export interface ReportRow {
  line: number;
  key: string | undefined;
  name: string | undefined;
  image: string | undefined;
  prompt: string | undefined;
  frames: number | undefined;
  seed: number | undefined;
  status: ReportRowStatus;
  requestId: string | undefined;
  /** ISO timestamps as this client saw them. */
  timings: {
    createdAt?: string | undefined;
    submittedAt?: string | undefined;
    startedAt?: string | undefined;
    finishedAt?: string | undefined;
    downloadedAt?: string | undefined;
    /** finishedAt − submittedAt, ms. */
    durationMs?: number | undefined;
  };
  estimateUsd: number | undefined;
  costUsd: number | undefined;
  /** Path relative to the output directory. */
  file: string | undefined;
  bytes: number | undefined;
  sha256: string | undefined;
  error: unknown;
}

export interface BatchReport {
  batchId: string;
  manifest: string | undefined;
  manifestDigest: string | undefined;
  outDir: string;
  generatedAt: string;
  interrupted: boolean;
  budget: { limitUsd: number | undefined; stopped: boolean };
  price: { basePriceUsd: number; priceUnit: string; source: string };
  totals: {
    rows: number;
    done: number;
    failed: number;
    invalid: number;
    unknown: number;
    notRun: number;
    estimatedUsd: number;
    costUsd: number;
  };
  rows: ReportRow[];
}

/** Absent values are written as null, so every row has every field. */
const nullForUndefined = (_key: string, value: unknown) => (value === undefined ? null : value);

/** `value` as JSON.stringify with an indent of 2 writes it at this depth (`indent` before each line). */
function jsonAt(value: unknown, indent: string): string {
  // A JSON text holds no raw newline inside a string: each one starts a line of structure.
  return JSON.stringify(value, nullForUndefined, 2).replaceAll("\n", `\n${indent}`);
}

/**
 * Writes report.json from `report`, whose `rows` may be any (async) iterable, one row at a time:
 * the bytes `JSON.stringify(report, nullForUndefined, 2)` would give for the same rows as an
 * array, and the other keys in their order. Redacted like every other output: no token, no URL
 * password (`user:pass@`) in a report.
 */
export async function writeJsonRows(
  outDir: string,
  report: Omit<BatchReport, "rows"> & { rows: Iterable<ReportRow> | AsyncIterable<ReportRow> },
): Promise<string> {
  const path = join(outDir, "report.json");
  await writeAtomically(path, async (write) => {
    const put = (text: string) => write(redactSecrets(text));
    let key = 0;
    for (const [name, value] of Object.entries(report)) {
      await put(`${key++ === 0 ? "{\n" : ",\n"}  ${JSON.stringify(name)}: `);
      if (name !== "rows") {
        await put(jsonAt(value, "  "));
        continue;
      }
      let count = 0;
      for await (const row of report.rows) {
        await put(`${count++ === 0 ? "[\n    " : ",\n    "}${jsonAt(row, "    ")}`);
      }
      await put(count === 0 ? "[]" : "\n  ]");
    }
    await put("\n}\n");
  });
  return path;
}

export async function writeJsonReport(outDir: string, report: BatchReport): Promise<string> {
  return await writeJsonRows(outDir, report);
}
