// The model input for one row, built at submit time (not during validation, so a 10,000-row
// batch never holds 10,000 data URIs): prepareInput turns a local image into a data URI and
// re-checks every rule against what will actually be sent.

import type { Frames } from "../model/input.js";
import { prepareInput } from "../node/image-input.js";
import { PreflightError } from "../run/errors.js";
import type { ManifestRow } from "./manifest.js";

export async function prepareRowInput(row: ManifestRow, options: { signal?: AbortSignal | undefined } = {}) {
  const prepared = await prepareInput(
    {
      prompt: row.prompt,
      image: row.imageSource,
      ...(row.seed === undefined ? {} : { seed: row.seed }),
      ...(row.frames === undefined ? {} : { frames: row.frames as Frames }),
    },
    options.signal ? { signal: options.signal } : {},
  );
  // The image may have changed since validation: nothing invalid is ever sent.
  if (!prepared.report.valid) throw new PreflightError(prepared.report);
  return prepared.input;
}
