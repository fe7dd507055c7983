// The ergonomic way to build the model's input from whatever the user has: a local path,
// bytes, a Blob, a data URI or a URL. Local images become data URIs (the API has no upload
// endpoint); URLs stay URLs. The image is checked once (checkImage: header, rules, full
// decode of a local image) and its verdict feeds the report, so nothing is read or decoded
// twice: a damaged file is refused here, not paid for and failed by the service.

import { checkImageFacts, type ImageFacts } from "../model/image-facts.js";
import { type DreaminaInput, type Frames, withDefaults } from "../model/input.js";
import { validate } from "../model/validate.js";
import type { ValidationReport, Violation } from "../model/violation.js";
import { type CheckedImage, checkedImage, checkImage } from "./check.js";
import { checkDecodes, decodeViolation } from "./decode-check.js";
import type { FitOptions, FitResult } from "./fit.js";
import { loadImageBytes } from "./load.js";
import type { ProbeOptions, ProbeResult } from "./probe.js";

export { loadImageBytes };

export interface PrepareInputParams {
  prompt: string;
  /** A local path, an http(s) URL, a data URI, bytes or a Blob. */
  image: string | Uint8Array | Blob;
  seed?: number;
  frames?: Frames;
}

export interface PrepareInputOptions extends ProbeOptions {
  /**
   * Fix an image that breaks the rules (see fitImage) instead of only reporting it. A URL
   * that needs fixing is downloaded and sent as a data URI.
   */
  fit?: boolean | FitOptions;
}

export interface PreparedInput {
  /** Ready to submit when `report.valid`; defaults applied. */
  input: Required<DreaminaInput>;
  /** Facts about the image as given (before any fit). */
  image: ProbeResult;
  /** The image as given, checked (facts, rules, decode verdict). */
  checked: CheckedImage;
  report: ValidationReport;
  /** Present when the image was fitted (and `changed` says whether that changed anything). */
  fitted?: FitResult;
}

/** `data:image/jpeg;base64,...` or `data:image/png;base64,...`, the forms the API documents. */
export function toDataUri(bytes: Uint8Array, format: "jpeg" | "png" | string): string {
  const base64 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
  return `data:image/${format};base64,${base64}`;
}

export async function prepareInput(
  params: PrepareInputParams,
  options: PrepareInputOptions = {},
): Promise<PreparedInput> {
  const fitOptions = options.fit === true ? {} : options.fit || undefined;
  // With a fit asked for, a local image is decoded whatever the rules say: it is fitted, or
  // sent as it is once it complies (both need it whole).
  let checked = await checkImage(params.image, {
    ...options,
    decode: fitOptions ? "always" : "if-valid",
    keepBytes: true,
  });
  const probe = checked.probe;
  const needsFit =
    fitOptions !== undefined &&
    (checked.rules.violations.length > 0 ||
      (fitOptions.format !== undefined && fitOptions.format !== probe.format));
  if (needsFit && checked.kind === "url") {
    // Downloaded only to be fitted; decoded first, as a local image is.
    const bytes = await loadImageBytes(params.image, probe, options);
    const decoded = await checkDecodes(bytes, probe.header);
    checked = checkedImage(probe, checked.facts, checked.rules, decoded, bytes, params.image);
  }
  return buildPrepared(params, checked, needsFit ? fitOptions : undefined);
}

/**
 * The input and report for an image already checked: the data URI (or URL) to send, fitted
 * first when `fit` is given. The image rules are not applied again: `checked` carries them.
 */
async function buildPrepared(
  params: Omit<PrepareInputParams, "image">,
  checked: CheckedImage,
  fit?: FitOptions,
): Promise<PreparedInput> {
  let imageUrl: string;
  let facts: ImageFacts = checked.facts;
  let fitted: FitResult | undefined;
  const content: Violation[] = [...checked.decodeViolations];
  if (checked.url !== undefined && checked.bytes === undefined) {
    imageUrl = checked.url;
  } else {
    const bytes = checked.bytes;
    if (!bytes) throw new TypeError("a checked local image must carry its bytes (checkImage keepBytes)");
    if (fit && content.length === 0) {
      const { fitImage } = await import("./fit.js");
      fitted = await fitImage(bytes, fit, { header: checked.probe.header, decode: checked.decode });
      imageUrl = toDataUri(fitted.bytes, fitted.format);
      facts = {
        format: fitted.format,
        width: fitted.width,
        height: fitted.height,
        sizeBytes: fitted.bytes.length,
        source: checked.source,
      };
    } else {
      imageUrl = toDataUri(bytes, checked.facts.format);
    }
  }

  const input = withDefaults({
    prompt: params.prompt,
    image_urls: [imageUrl],
    ...(params.seed === undefined ? {} : { seed: params.seed }),
    ...(params.frames === undefined ? {} : { frames: params.frames }),
  });
  // The fitted image is a new one: its rules are checked here, once.
  const report = validate(input, { image: facts, imageReport: fitted ? undefined : checked.rules });
  report.violations.push(...content);
  report.valid = report.violations.length === 0;
  report.warnings.push(...checked.probeWarnings);
  if (fitted?.changed) {
    report.warnings.push({
      path: "image_urls[0]",
      rule: "fitted",
      message: `the image was changed to comply: ${fitted.changes.join("; ")}`,
    });
  }
  const image = checked.probe;
  return fitted ? { input, image, checked, report, fitted } : { input, image, checked, report };
}

/**
 * What the header cannot tell, for a check that does not build the input (`dreamina validate`):
 * whether a local image (a file, bytes, a Blob, a data URI) decodes in full, as prepareInput
 * will insist before sending it. A URL is not downloaded for this: only its header is probed.
 * An image the rules refuse anyway is not decoded. Empty when it decodes.
 */
export async function checkImageContent(
  image: PrepareInputParams["image"],
  probe: ProbeResult,
  options: ProbeOptions = {},
): Promise<Violation[]> {
  if (probe.kind === "url" || !checkImageFacts(probe).valid) return [];
  const decoded = await checkDecodes(await loadImageBytes(image, probe, options), probe.header);
  return decoded.ok ? [] : [decodeViolation(decoded)];
}
