// The batch's reports, written into --out: `report.json` (every row: status, request_id,
// timings, cost, file, sha256, error) and `report.html` (report-html.ts). Both are written row by
// row to a temporary name, flushed and renamed into place (report-file.ts): a report of any size
// is never held whole in memory.

import { readFile } from "node:fs/promises";
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

export interface HtmlReportOptions {
  /** Thumbnail box, px. Default 160. */
  thumbSize?: number;
  /** Thumbnails made at once. Default 8. */
  concurrency?: number;
  /** Skip thumbnails (sharp missing, or not wanted). */
  thumbnails?: boolean;
}

/**
 * Thumbnails as JPEG data URIs, keyed like `images` (row key → local path or data URI).
 * Rows sharing an image share one thumbnail. Failures leave the row without one.
 */
export async function makeThumbnails(
  images: ReadonlyMap<string, string>,
  options: HtmlReportOptions = {},
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let sharp: typeof import("sharp");
  try {
    sharp = (await import("sharp")).default;
  } catch {
    return out;
  }
  const size = options.thumbSize ?? 160;
  const bySource = new Map<string, string[]>();
  for (const [key, source] of images) {
    if (/^https?:/i.test(source)) continue; // never fetched for a report: stays self-contained
    const list = bySource.get(source) ?? [];
    list.push(key);
    bySource.set(source, list);
  }
  const sources = [...bySource.keys()];
  let next = 0;
  const worker = async () => {
    while (next < sources.length) {
      const source = sources[next++]!;
      try {
        const input = source.startsWith("data:")
          ? Buffer.from(source.slice(source.indexOf(",") + 1), "base64")
          : await readFile(source);
        const jpeg = await sharp(input, { failOn: "none" })
          .rotate()
          .resize(size, size, { fit: "inside", withoutEnlargement: true })
          .jpeg({ quality: 60, mozjpeg: true })
          .toBuffer();
        const uri = `data:image/jpeg;base64,${jpeg.toString("base64")}`;
        for (const key of bySource.get(source) ?? []) out.set(key, uri);
      } catch {
        // No thumbnail for this one.
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 8) }, worker));
  return out;
}
