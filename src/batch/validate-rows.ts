// Validating a whole manifest before anything is submitted: every row is checked against
// every rule of the model (src/model's `validate`, fed with the image's checked verdict),
// images checked with bounded parallelism. A local file is checked as the data URI it will be
// sent as, and decoded in full, as prepareInput will insist before sending it; a URL is probed
// over the network (Range requests). Each distinct image is checked once (checkImage, through
// the batch's ImageCache), however many rows send it, and the verdict is kept for the submits.

import type { CheckedImage } from "../image/check.js";
import { ImageProbeError } from "../image/probe.js";
import type { ImageFacts } from "../model/image-facts.js";
import { MODEL_ID } from "../model/input.js";
import { validate } from "../model/validate.js";
import type { Violation } from "../model/violation.js";
import { ImageCache } from "./image-cache.js";
import type { ManifestRow } from "./manifest.js";

export { MODEL_ID };

export interface RowValidation {
  row: ManifestRow;
  valid: boolean;
  violations: Violation[];
  warnings: Violation[];
  /** What the probe learnt (undefined when the image could not be read). */
  image: ImageFacts | undefined;
}

export interface ValidateRowsOptions {
  /** Images probed at once. Default 16. */
  concurrency?: number | undefined;
  signal?: AbortSignal | undefined;
  /** Per-URL probe timeout. Default 20 s. */
  probeTimeoutMs?: number | undefined;
  /** Called as each row is settled (in completion order). */
  onRow?: ((result: RowValidation) => void) | undefined;
  fetch?: typeof fetch | undefined;
  /** The batch's image cache (kept for the submits); a fresh one by default. */
  images?: ImageCache | undefined;
}

/** The model input a row stands for; a local image as the data URI kind it will become. */
export function rowInput(row: ManifestRow, imageUrl: string): Record<string, unknown> {
  const input: Record<string, unknown> = { prompt: row.prompt, image_urls: [imageUrl] };
  if (row.seed !== undefined) input.seed = row.seed;
  if (row.frames !== undefined) input.frames = row.frames;
  return input;
}

export async function validateRow(
  row: ManifestRow,
  options: ValidateRowsOptions = {},
): Promise<RowValidation> {
  return validateRowWith(row, options, options.images ?? new ImageCache());
}

/** The image's verdict, or why it could not be read (an abort is thrown: it says nothing). */
async function checkRowImage(
  row: ManifestRow,
  options: ValidateRowsOptions,
  images: ImageCache,
): Promise<{ checked?: CheckedImage; error?: unknown }> {
  try {
    const checked = await images.check(row.imageSource, {
      signal: options.signal,
      timeoutMs: options.probeTimeoutMs,
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
    return { checked };
  } catch (error) {
    if (options.signal?.aborted) throw error;
    return { error };
  }
}

async function validateRowWith(
  row: ManifestRow,
  options: ValidateRowsOptions,
  images: ImageCache,
): Promise<RowValidation> {
  const { checked, error } = await checkRowImage(row, options, images);
  let facts: ImageFacts | undefined;
  const imageViolations: Violation[] = [];
  const probeWarnings: Violation[] = [];
  if (checked) {
    facts = { ...checked.facts, source: row.image };
    probeWarnings.push(...checked.probeWarnings);
    imageViolations.push(...checked.decodeViolations);
  } else {
    const code = error instanceof ImageProbeError ? error.code : "unreadable";
    imageViolations.push({
      path: "image_urls[0]",
      rule: `image:${code}`,
      actual: row.image,
      message: `image ${row.image}: ${error instanceof Error ? error.message : String(error)}`,
    });
  }
  // Local files are sent as data URIs; the placeholder keeps the URL-format rule honest.
  const url = row.imageIsUrl
    ? row.imageSource
    : `data:image/${facts?.format === "png" ? "png" : "jpeg"};base64,`;
  const report = validate(rowInput(row, url), facts ? { image: facts, imageReport: checked?.rules } : {});
  // Without facts the image was reported above: whatever the empty placeholder gives is noise
  // (it would read as a second, wrong "truncated: 0 bytes").
  const own = (v: Violation) => facts !== undefined || row.imageIsUrl || v.path !== "image_urls[0]";
  const violations = [...imageViolations, ...report.violations.filter(own)];
  const warnings = [
    ...probeWarnings,
    // "not inspected" is never true here: the image was probed (or why not is reported).
    ...report.warnings.filter((w) => own(w) && w.rule !== "not_inspected"),
  ];
  return { row, valid: violations.length === 0, violations, warnings, image: facts };
}

/** Validates every row; results come back in manifest order. */
export async function validateRows(
  rows: readonly ManifestRow[],
  options: ValidateRowsOptions = {},
): Promise<RowValidation[]> {
  const results = new Array<RowValidation>(rows.length);
  await validateEach(rows, options, (result, index) => {
    results[index] = result;
  });
  return results;
}

/**
 * Validates every row, handing each result to `onRow` (and `options.onRow`) and keeping none:
 * a batch takes what it needs of each verdict, so 10,000 verdicts are never alive at once.
 */
export async function validateEach(
  rows: readonly ManifestRow[],
  options: ValidateRowsOptions,
  onRow: (result: RowValidation, index: number) => void = () => {},
): Promise<void> {
  const images = options.images ?? new ImageCache();
  let next = 0;
  const worker = async () => {
    while (next < rows.length) {
      const index = next++;
      const result = await validateRowWith(rows[index]!, options, images);
      onRow(result, index);
      options.onRow?.(result);
    }
  };
  const n = Math.max(1, Math.min(options.concurrency ?? 16, rows.length));
  await Promise.all(Array.from({ length: n }, worker));
}
