// The model input for one row, built at submit time (not during validation, so a 10,000-row
// batch never holds 10,000 data URIs). The image comes from the batch's ImageCache: checked
// once (at validation, by the same cache) while its file is unchanged, its data URI one string
// shared by every row that sends it. The row's own fields are validated against the image's
// known verdict before anything is sent; the image rules are not applied again.

import type { CheckedImage } from "../image/check.js";
import { type Frames, withDefaults } from "../model/input.js";
import { validate } from "../model/validate.js";
import { PreflightError } from "../run/errors.js";
import { ImageCache } from "./image-cache.js";
import type { ManifestRow } from "./manifest.js";

export { ImageCache };

/** The name this cache had when it held data URIs only; the batch's image cache now. */
export const RowInputCache = ImageCache;
export type RowInputCache = ImageCache;

export async function prepareRowInput(
  row: ManifestRow,
  options: { signal?: AbortSignal | undefined; cache?: ImageCache | undefined } = {},
) {
  const cache = options.cache ?? new ImageCache();
  const probeOptions = options.signal ? { signal: options.signal } : {};
  const checked = await cache.check(row.imageSource, probeOptions);
  const fields = {
    prompt: row.prompt,
    ...(row.seed === undefined ? {} : { seed: row.seed }),
    ...(row.frames === undefined ? {} : { frames: row.frames as Frames }),
  };
  if (!checked.valid) {
    // Refused (it may have changed since validation): the report prepareInput would give.
    throw new PreflightError(
      report(withDefaults({ ...fields, image_urls: [placeholder(checked)] }), checked),
    );
  }
  const { checked: sent, url } = await cache.imageUrl(row.imageSource, probeOptions);
  const input = withDefaults({ ...fields, image_urls: [url] });
  const verdict = report(input, sent);
  // The row's own fields (a prompt edited since validation...): nothing invalid is ever sent.
  if (!verdict.valid) throw new PreflightError(verdict);
  return input;
}

/** The row's report with the image's known verdict, in prepareInput's order. */
function report(input: Record<string, unknown>, checked: CheckedImage) {
  const result = validate(input, { image: checked.facts, imageReport: checked.rules });
  result.violations.push(...checked.decodeViolations);
  result.valid = result.violations.length === 0;
  result.warnings.push(...checked.probeWarnings);
  return result;
}

/** What stands for a refused local image in its report (its data URI is never built). */
function placeholder(checked: CheckedImage): string {
  return checked.url ?? `data:image/${checked.facts.format === "png" ? "png" : "jpeg"};base64,`;
}
