// One image, checked once: its header read (probeImage), the model's image rules applied to
// the facts, and, for an image held locally, a full decode (sharp). The result travels with
// the image from validation to submit, so nothing downstream sniffs, decodes or re-applies the
// image rules to the same bytes. Callers compose the parts into their own reports (the order
// of violations differs between `prepareInput` and batch validation, and is kept as it was).

import { checkImageFacts, type ImageFacts } from "../model/image-facts.js";
import type { ValidationReport, Violation } from "../model/violation.js";
import { checkDecodes, type DecodeCheck, decodeViolation } from "./decode-check.js";
import { loadImageBytes } from "./load.js";
import { type ProbeKind, type ProbeOptions, type ProbeResult, probeImage } from "./probe.js";
import { countImage } from "./stats.js";

export type ImageSource = string | Uint8Array | Blob;

export interface CheckImageOptions extends ProbeOptions {
  /**
   * When to decode a local image in full: only when the rules accept it (default: an image
   * refused anyway is not worth decoding), always (before fitting it), or never. A URL is
   * never downloaded to be decoded.
   */
  decode?: "if-valid" | "always" | "never";
  /**
   * Keep a local image's bytes on the result (to send it as a data URI or fit it), or only
   * when the rules accept it (a refused file, maybe huge, is never read whole). A URL is not
   * downloaded.
   */
  keepBytes?: boolean | "if-valid";
}

/** An image whose facts are known and whose rules were applied: pass it on, never re-check it. */
export interface CheckedImage {
  kind: ProbeKind;
  /** The path, URL or abbreviated data URI, for messages. */
  source: string;
  /** For a URL: the URL to send, as given (trimmed). */
  url: string | undefined;
  /** Format, stored size, file size, orientation: what the rules were applied to. */
  facts: ImageFacts;
  /** width / height, when both are known. */
  ratio: number | undefined;
  /** The full decode's verdict; undefined when not decoded (a URL, or refused by the rules). */
  decode: DecodeCheck | undefined;
  /** The image rules' verdict on `facts` (checkImageFacts), for `validate`'s `imageReport`. */
  rules: Pick<ValidationReport, "violations" | "warnings">;
  /** The decode's violation, when the image does not decode. */
  decodeViolations: Violation[];
  /** What the probe noticed that breaks no rule (truncation hints, redirects...), as warnings. */
  probeWarnings: Violation[];
  /** Every rule and the decode passed. */
  valid: boolean;
  /** The header read: everything the parser learnt. */
  probe: ProbeResult;
  /** The whole image, when asked for with `keepBytes` (not enumerable: results serialise as facts). */
  readonly bytes: Uint8Array | undefined;
}

const IMAGE_PATH = "image_urls[0]";

/**
 * Reads the image's header, applies the image rules and (for a local image) decodes it once.
 * Throws ImageProbeError when no facts can be had (a missing file, an HTML page, a truncated
 * header): the caller decides whether that is a row's violation or an error.
 */
export async function checkImage(
  source: ImageSource,
  options: CheckImageOptions = {},
): Promise<CheckedImage> {
  countImage("checks");
  const probe = await probeImage(source, options);
  const facts: ImageFacts = {
    format: probe.format,
    width: probe.width,
    height: probe.height,
    sizeBytes: probe.sizeBytes,
    orientation: probe.orientation,
    source: probe.source,
  };
  const rules = checkImageFacts(facts);
  const mode = options.decode ?? "if-valid";
  const wantDecode = probe.kind !== "url" && (mode === "always" || (mode === "if-valid" && rules.valid));
  let bytes: Uint8Array | undefined;
  const keep = options.keepBytes === true || (options.keepBytes === "if-valid" && rules.valid);
  if (probe.kind !== "url" && (wantDecode || keep)) {
    bytes = await loadImageBytes(source, probe, options);
  }
  const decode = wantDecode && bytes ? await checkDecodes(bytes, probe.header) : undefined;
  return checkedImage(probe, facts, rules, decode, keep ? bytes : undefined, source);
}

/** A CheckedImage for bytes checked elsewhere (a URL downloaded to be fitted). */
export function checkedImage(
  probe: ProbeResult,
  facts: ImageFacts,
  rules: Pick<ValidationReport, "violations" | "warnings">,
  decode: DecodeCheck | undefined,
  bytes: Uint8Array | undefined,
  source: ImageSource,
): CheckedImage {
  const decodeViolations = decode && !decode.ok ? [decodeViolation(decode)] : [];
  const result: Omit<CheckedImage, "bytes"> = {
    kind: probe.kind,
    source: probe.source,
    url: probe.kind === "url" ? (typeof source === "string" ? source.trim() : probe.source) : undefined,
    facts,
    ratio: facts.width !== undefined && facts.height ? facts.width / facts.height : undefined,
    decode,
    rules: { violations: rules.violations, warnings: rules.warnings },
    decodeViolations,
    probeWarnings: probe.warnings.map((message) => ({ path: IMAGE_PATH, rule: "probe", message })),
    valid: rules.violations.length === 0 && decodeViolations.length === 0,
    probe,
  };
  Object.defineProperty(result, "bytes", { value: bytes, enumerable: false });
  return result as CheckedImage;
}

/**
 * The same verdict without any image bytes (neither the whole image nor the probe's prefix):
 * what a cache of thousands of checked images can afford to hold.
 */
export function withoutBytes(image: CheckedImage): CheckedImage {
  if (image.bytes === undefined && image.probe.bytes.length === 0) return image;
  const probe = { ...image.probe } as ProbeResult;
  Object.defineProperty(probe, "bytes", { value: new Uint8Array(0), enumerable: false });
  const slim = { ...image, probe } as Omit<CheckedImage, "bytes">;
  Object.defineProperty(slim, "bytes", { value: undefined, enumerable: false });
  return slim as CheckedImage;
}
