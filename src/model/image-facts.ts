// What is known about the input image (its format, size, dimensions), and its verdict under the
// schema's image rules: from facts a caller has, or from the bytes of a data URI.

import { formatName, type ImageFormat, sniffImage } from "./image-header.js";
import { compareFractions, decimalFraction, type Metric, parseValidationRule } from "./image-rules.js";
import { parseDataUri } from "./input.js";
import { imageValidations, inputSchema } from "./schema.js";
import type { ValidationReport, Violation } from "./violation.js";

/** What is known about the input image (from a probe, a data URI, or the caller). */
export interface ImageFacts {
  format: ImageFormat;
  /** Stored width in pixels (before EXIF orientation). */
  width?: number | undefined;
  height?: number | undefined;
  /** Size of the encoded file (for a data URI: the decoded bytes). */
  sizeBytes?: number | undefined;
  /** EXIF orientation 1..8. */
  orientation?: number | undefined;
  /** Where the image came from (a path, a URL...), for messages. */
  source?: string | undefined;
}

/** Where the image's problems are reported (the schema allows exactly one image). */
export const IMAGE_PATH = "image_urls[0]";
const ACCEPTED_FORMATS: readonly ImageFormat[] = ["jpeg", "png"];
const ACCEPTED_MIME = new Set(["image/jpeg", "image/png"]);

/** A data URI's image: decoded and sniffed here, since nothing else has looked at its bytes. */
export function checkDataUri(uri: string, violations: Violation[], warnings: Violation[]): void {
  const data = parseDataUri(uri);
  if (!data) {
    violations.push({
      path: IMAGE_PATH,
      rule: "format",
      limit: "image_uri",
      actual: "malformed data URI",
      message: `${IMAGE_PATH} is not a well-formed data URI (expected data:image/jpeg;base64,... or data:image/png;base64,...)`,
    });
    return;
  }
  const header = sniffImage(data.bytes, { final: true });
  if (!data.base64) {
    warnings.push({
      path: IMAGE_PATH,
      rule: "base64",
      message: `${IMAGE_PATH} is a data URI without ;base64`,
    });
  }
  if (ACCEPTED_FORMATS.includes(header.format) && !ACCEPTED_MIME.has(data.mime)) {
    warnings.push({
      path: IMAGE_PATH,
      rule: "mime",
      limit: [...ACCEPTED_MIME],
      actual: data.mime || "none",
      message: `${IMAGE_PATH} declares ${data.mime || "no media type"} but holds a ${formatName(header.format)} image`,
    });
  } else if (ACCEPTED_FORMATS.includes(header.format) && data.mime !== `image/${header.format}`) {
    warnings.push({
      path: IMAGE_PATH,
      rule: "mime",
      limit: `image/${header.format}`,
      actual: data.mime,
      message: `${IMAGE_PATH} declares ${data.mime} but holds a ${formatName(header.format)} image`,
    });
  }
  if (header.status === "truncated" || header.status === "corrupt") {
    violations.push({
      path: IMAGE_PATH,
      rule: header.status,
      actual: header.problem,
      message: `${IMAGE_PATH}: the image data is ${header.status}: ${header.problem ?? "unreadable"}`,
    });
    return;
  }
  const report = checkImageFacts({
    format: header.format,
    width: header.width,
    height: header.height,
    orientation: header.orientation,
    sizeBytes: data.bytes.length,
    source: "data URI",
  });
  violations.push(...report.violations);
  warnings.push(...report.warnings);
}

/** A metric as an exact fraction (numerator, denominator), so "4.7 MB" and "0.33" compare without float error. */
function metricValue(metric: Metric, facts: ImageFacts): [bigint, bigint] | undefined {
  const int = (n: number | undefined) =>
    typeof n === "number" && Number.isSafeInteger(n) && n >= 0 ? BigInt(n) : undefined;
  const size = int(facts.sizeBytes);
  const width = int(facts.width);
  const height = int(facts.height);
  switch (metric) {
    case "file_size_mb":
      return size === undefined ? undefined : [size, 1_000_000n]; // MB as 10^6 bytes: the stricter reading
    case "file_size_kb":
      return size === undefined ? undefined : [size, 1_000n];
    case "file_size_bytes":
      return size === undefined ? undefined : [size, 1n];
    case "width_pixels":
      return width === undefined ? undefined : [width, 1n];
    case "height_pixels":
      return height === undefined ? undefined : [height, 1n];
    case "width/height":
      return width === undefined || height === undefined || height === 0n ? undefined : [width, height];
    case "height/width":
      return width === undefined || height === undefined || width === 0n ? undefined : [height, width];
  }
}

/** The metric as a plain number, for the report's `actual`. */
function actualFor(metric: Metric, facts: ImageFacts): number | undefined {
  switch (metric) {
    case "file_size_mb":
      return facts.sizeBytes === undefined ? undefined : facts.sizeBytes / 1_000_000;
    case "file_size_kb":
      return facts.sizeBytes === undefined ? undefined : facts.sizeBytes / 1_000;
    case "file_size_bytes":
      return facts.sizeBytes;
    case "width_pixels":
      return facts.width;
    case "height_pixels":
      return facts.height;
    case "width/height":
      return facts.width !== undefined && facts.height ? facts.width / facts.height : undefined;
    case "height/width":
      return facts.width && facts.height !== undefined ? facts.height / facts.width : undefined;
  }
}

/** The image rules alone: format (magic bytes), then every rule of the schema's `validations`. */
export function checkImageFacts(facts: ImageFacts, path = IMAGE_PATH): ValidationReport {
  const violations: Violation[] = [];
  const warnings: Violation[] = [];
  const format: unknown = facts?.format;
  if (!ACCEPTED_FORMATS.includes(format as ImageFormat)) {
    const name = typeof format === "string" ? (formatName(format as ImageFormat) ?? format) : "unknown";
    violations.push({
      path,
      rule: "format",
      limit: [...ACCEPTED_FORMATS],
      actual: typeof format === "string" ? format : "unknown",
      message: `${inputSchema.properties.image_urls.description} (this image is ${name})`,
    });
    // Size and dimensions still matter: a converted image keeps them (unless it is not an image at all).
    if (format === "html" || format === "text" || format === "unknown" || typeof format !== "string") {
      return { valid: false, violations, warnings };
    }
  }
  for (const rule of imageValidations) {
    const parsed = parseValidationRule(rule.validation_rule);
    const limit = decimalFraction(rule.validation_value);
    if (!parsed || !limit) {
      warnings.push({
        path,
        rule: rule.validation_rule,
        limit: rule.validation_value,
        message: `schema rule "${rule.validation_rule} ${rule.validation_value}" is not understood, so it was not checked (${rule.validation_error})`,
      });
      continue;
    }
    const actual = metricValue(parsed.metric, facts);
    if (!actual) {
      // Unknown size or dimensions (a server that hides Content-Length, a HEIC...): say so once per metric.
      const known = ACCEPTED_FORMATS.includes(format as ImageFormat);
      if (known && !warnings.some((w) => w.rule === "not_checked" && w.limit === parsed.metric)) {
        warnings.push({
          path,
          rule: "not_checked",
          limit: parsed.metric,
          message: `${parsed.metric.replace("_", " ")} is unknown, so "${rule.validation_error}" was not checked`,
        });
      }
      continue;
    }
    if (!compareFractions(actual, parsed.operator, limit)) {
      violations.push({
        path,
        rule: rule.validation_rule,
        limit: rule.validation_value,
        actual: actualFor(parsed.metric, facts),
        message: rule.validation_error,
      });
    }
  }
  const orientation = facts?.orientation;
  if (typeof orientation === "number" && orientation >= 5 && orientation <= 8) {
    const dims = facts.width !== undefined && facts.height !== undefined;
    warnings.push({
      path,
      rule: "exif_orientation",
      actual: orientation,
      message: dims
        ? `EXIF orientation ${orientation}: the image is shown rotated as ${facts.height}x${facts.width}; the stored ${facts.width}x${facts.height} is what was checked`
        : `EXIF orientation ${orientation}: the image is shown rotated by 90°; the stored dimensions are what count`,
    });
  }
  return { valid: violations.length === 0, violations, warnings };
}
