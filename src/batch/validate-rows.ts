// Validating a whole manifest before anything is submitted: every row is checked against
// every rule of the model (src/model's `validate`, fed with the facts `probeImage` reads
// from the image's header), images probed with bounded parallelism. A local file is checked
// as the data URI it will be sent as, and decoded in full (checkImageContent), as prepareInput
// will insist before sending it; a URL is probed over the network (Range requests). Each
// distinct image is probed and decoded once per validation, however many rows send it.

import { checkImageContent } from "../image/prepare-input.js";
import { ImageProbeError, type ProbeResult, probeImage } from "../image/probe.js";
import { MODEL_ID } from "../model/input.js";
import { type ImageFacts, type Violation, validate } from "../model/validate.js";
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
  return validateRowWith(row, options, new Map());
}

/**
 * What one image source gave: its header facts, probe warnings and decode findings, or why it
 * could not be read. Facts only: the bytes read are not kept (a batch may name thousands).
 */
interface ImageCheck {
  probe?: Pick<ProbeResult, "format" | "width" | "height" | "sizeBytes" | "orientation" | "warnings">;
  content: Violation[];
  error?: unknown;
}

async function checkImage(row: ManifestRow, options: ValidateRowsOptions): Promise<ImageCheck> {
  const probeOptions = {
    signal: options.signal,
    timeoutMs: options.probeTimeoutMs,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  };
  try {
    const probe = await probeImage(row.imageSource, probeOptions);
    const content = await checkImageContent(row.imageSource, probe, probeOptions);
    const { format, width, height, sizeBytes, orientation, warnings } = probe;
    return { probe: { format, width, height, sizeBytes, orientation, warnings }, content };
  } catch (error) {
    if (options.signal?.aborted) throw error;
    return { content: [], error };
  }
}

async function validateRowWith(
  row: ManifestRow,
  options: ValidateRowsOptions,
  images: Map<string, Promise<ImageCheck>>,
): Promise<RowValidation> {
  let checked = images.get(row.imageSource);
  if (!checked) {
    checked = checkImage(row, options);
    images.set(row.imageSource, checked);
  }
  const { probe, content, error } = await checked;
  let facts: ImageFacts | undefined;
  const imageViolations: Violation[] = [];
  const probeWarnings: Violation[] = [];
  if (probe) {
    facts = {
      format: probe.format,
      width: probe.width,
      height: probe.height,
      sizeBytes: probe.sizeBytes,
      orientation: probe.orientation,
      source: row.image,
    };
    for (const w of probe.warnings) probeWarnings.push({ path: "image_urls[0]", rule: "probe", message: w });
    imageViolations.push(...content);
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
  const report = validate(rowInput(row, url), facts ? { image: facts } : {});
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
  const images = new Map<string, Promise<ImageCheck>>();
  let next = 0;
  const worker = async () => {
    while (next < rows.length) {
      const index = next++;
      const result = await validateRowWith(rows[index]!, options, images);
      results[index] = result;
      options.onRow?.(result);
    }
  };
  const n = Math.max(1, Math.min(options.concurrency ?? 16, rows.length));
  await Promise.all(Array.from({ length: n }, worker));
  return results;
}
