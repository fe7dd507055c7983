// The model's input rules, checked before anything is sent (and by the sandbox, which
// answers with the same rules). Every problem is reported at once, and `validate` never
// throws, whatever value it is given: it is the first thing to see user input.

import { formatName, type ImageFormat, sniffImage } from "./image-header.js";
import { parseDataUri } from "./input.js";
import { imageValidations, inputSchema } from "./schema.js";

export interface Violation {
  /** Where: `prompt`, `image_urls`, `image_urls[0]`, `seed`, `frames`, `input`, or an unknown key. */
  path: string;
  /** Which rule: a JSON-schema keyword (`required`, `type`, `maxLength`, `enum`...) or the schema's `validation_rule`. */
  rule: string;
  limit?: unknown;
  actual?: unknown;
  message: string;
}

export interface ValidationReport {
  valid: boolean;
  violations: Violation[];
  warnings: Violation[];
}

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

export interface ValidateOptions {
  /** Facts about `image_urls[0]`; without them (and for a URL) the image rules are not checked. */
  image?: ImageFacts | undefined;
  /**
   * The image rules' verdict on `image`, when the caller already has it (a checked image):
   * used as is, so the same facts are not checked twice.
   */
  imageReport?: Pick<ValidationReport, "violations" | "warnings"> | undefined;
}

const IMAGE_PATH = "image_urls[0]";
const props = inputSchema.properties;
const KNOWN_FIELDS = new Set(Object.keys(props));
const REQUIRED: readonly string[] = inputSchema.required;
const ACCEPTED_FORMATS: readonly ImageFormat[] = ["jpeg", "png"];
const ACCEPTED_MIME = new Set(["image/jpeg", "image/png"]);

export function validate(input: unknown, options: ValidateOptions = {}): ValidationReport {
  const violations: Violation[] = [];
  const warnings: Violation[] = [];
  try {
    checkInput(input, options, violations, warnings);
  } catch (error) {
    // Unreachable by design; the promise not to throw is kept even if a rule has a bug.
    violations.push({
      path: "input",
      rule: "internal",
      message: `the input could not be checked: ${error instanceof Error ? error.message : "unknown error"}`,
    });
  }
  return { valid: violations.length === 0, violations, warnings };
}

function checkInput(
  input: unknown,
  options: ValidateOptions,
  violations: Violation[],
  warnings: Violation[],
): void {
  if (!isPlainRecord(input)) {
    violations.push({
      path: "input",
      rule: "type",
      limit: "object",
      actual: typeName(input),
      message: `the input must be a JSON object (got ${typeName(input)})`,
    });
    return;
  }
  const has = (key: string) => Object.hasOwn(input, key);

  for (const key of REQUIRED) {
    if (!has(key)) violations.push({ path: key, rule: "required", message: `${key} is required` });
  }
  for (const key of Object.keys(input)) {
    if (!KNOWN_FIELDS.has(key)) {
      warnings.push({
        path: key,
        rule: "additionalProperties",
        actual: key,
        message: `unknown field ${JSON.stringify(key)}: not in the model's schema (the service may ignore or reject it)`,
      });
    }
  }

  if (has("prompt")) checkPrompt(input.prompt, violations);
  let imageUrl: string | undefined;
  if (has("image_urls")) imageUrl = checkImageUrls(input.image_urls, violations, warnings);
  if (has("seed")) checkSeed(input.seed, violations);
  if (has("frames")) checkFrames(input.frames, violations);

  if (options.image) {
    const report = options.imageReport ?? checkImageFacts(options.image);
    violations.push(...report.violations);
    warnings.push(...report.warnings);
  } else if (imageUrl !== undefined && /^data:/i.test(imageUrl.trim())) {
    checkDataUri(imageUrl.trim(), violations, warnings);
  } else if (imageUrl !== undefined) {
    warnings.push({
      path: IMAGE_PATH,
      rule: "not_inspected",
      message:
        "the image was not inspected: its format, file size and dimensions were not checked (probe it with probeImage/prepareInput or `dreamina validate`)",
    });
  }
}

/** JSON Schema's maxLength counts characters as code points, not UTF-16 units. */
export function codePointLength(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

function checkPrompt(prompt: unknown, violations: Violation[]): void {
  if (typeof prompt !== "string") {
    violations.push({
      path: "prompt",
      rule: "type",
      limit: "string",
      actual: typeName(prompt),
      message: `prompt must be a string (got ${typeName(prompt)})`,
    });
    return;
  }
  const max = props.prompt.maxLength;
  const length = codePointLength(prompt);
  if (length > max) {
    violations.push({
      path: "prompt",
      rule: "maxLength",
      limit: max,
      actual: length,
      message: `prompt is ${length} characters long; the limit is ${max}`,
    });
  }
  // The schema sets no minimum, but a prompt of nothing or only whitespace is never what was
  // meant: one rule for every path (SDK, CLI, batch, sandbox), checked before anything is paid.
  if (prompt.trim() === "") {
    violations.push({
      path: "prompt",
      rule: "blank",
      actual: prompt,
      message: `prompt must contain at least one non-whitespace character (got ${prompt === "" ? "an empty string" : `only whitespace: ${JSON.stringify(prompt.length > 20 ? `${prompt.slice(0, 20)}…` : prompt)}`})`,
    });
  }
}

/** Returns the single URL when the array shape is right, for the image checks. */
function checkImageUrls(value: unknown, violations: Violation[], warnings: Violation[]): string | undefined {
  if (!Array.isArray(value)) {
    const hint = typeof value === "string" ? " (put the URL in a one-element array)" : "";
    violations.push({
      path: "image_urls",
      rule: "type",
      limit: "array",
      actual: typeName(value),
      message: `image_urls must be an array of one image URL (got ${typeName(value)})${hint}`,
    });
    return undefined;
  }
  const { minItems, maxItems } = props.image_urls;
  if (value.length < minItems) {
    violations.push({
      path: "image_urls",
      rule: "minItems",
      limit: minItems,
      actual: value.length,
      message: `image_urls must hold exactly ${minItems} image URL (got none)`,
    });
  } else if (value.length > maxItems) {
    violations.push({
      path: "image_urls",
      rule: "maxItems",
      limit: maxItems,
      actual: value.length,
      message: `image_urls must hold exactly ${maxItems} image URL (got ${value.length})`,
    });
  }
  let first: string | undefined;
  for (let i = 0; i < value.length; i++) {
    const item: unknown = value[i];
    const path = `image_urls[${i}]`;
    if (typeof item !== "string") {
      violations.push({
        path,
        rule: "type",
        limit: "string",
        actual: typeName(item),
        message: `${path} must be a string URL (got ${typeName(item)})`,
      });
      continue;
    }
    if (checkImageUri(item, path, violations, warnings) && i === 0 && value.length === 1) first = item;
  }
  return first;
}

const PRIVATE_HOST =
  /^(localhost|.*\.localhost|.*\.local|127\.\d+\.\d+\.\d+|10\.\d+\.\d+\.\d+|192\.168\.\d+\.\d+|172\.(1[6-9]|2\d|3[01])\.\d+\.\d+|169\.254\.\d+\.\d+|0\.0\.0\.0|\[::1?\]|\[f[cd][0-9a-f:]*\])$/i;

/** The schema's `image_uri` format: a URL the service can fetch, or a data URI. */
function checkImageUri(uri: string, path: string, violations: Violation[], warnings: Violation[]): boolean {
  const trimmed = uri.trim();
  if (trimmed !== uri) {
    warnings.push({ path, rule: "whitespace", message: `${path} has leading or trailing whitespace` });
  }
  if (/^data:/i.test(trimmed)) return true;
  let url: URL | undefined;
  try {
    url = new URL(trimmed);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== "https:" && url.protocol !== "http:")) {
    const local = !url || url.protocol === "file:";
    violations.push({
      path,
      rule: "format",
      limit: "image_uri",
      actual: url ? url.protocol : "not a URL",
      message: local
        ? `${path} must be an http(s) URL or a data: URI; a local file has to be sent as a data URI (prepareInput and the CLI do that)`
        : `${path} must be an http(s) URL or a data: URI (got a ${url?.protocol} URL)`,
    });
    return false;
  }
  if (url.protocol === "http:") {
    warnings.push({
      path,
      rule: "https",
      message: `${path} is plain http: the service expects a public HTTPS URL and may refuse it`,
    });
  }
  if (PRIVATE_HOST.test(url.hostname)) {
    warnings.push({
      path,
      rule: "public_url",
      actual: url.hostname,
      message: `${path} points at ${url.hostname}, which the service (fetching from the internet) cannot reach`,
    });
  }
  if (url.username || url.password) {
    warnings.push({
      path,
      rule: "public_url",
      message: `${path} carries credentials in the URL; the service fetches without login, use a pre-signed URL`,
    });
  }
  return true;
}

function checkSeed(seed: unknown, violations: Violation[]): void {
  if (typeof seed !== "number" || !Number.isInteger(seed)) {
    const hint = typeof seed === "string" && /^-?\d+$/.test(seed.trim()) ? " (a number, not a string)" : "";
    violations.push({
      path: "seed",
      rule: "type",
      limit: "integer",
      actual: typeof seed === "number" ? seed : typeName(seed),
      message: `seed must be an integer${hint}; -1 asks for a random seed`,
    });
    return;
  }
  if (!Number.isSafeInteger(seed)) {
    violations.push({
      path: "seed",
      rule: "safeInteger",
      limit: Number.MAX_SAFE_INTEGER,
      actual: seed,
      message: `seed ${seed} is beyond ±2^53-1: JSON parsers round it, so the seed sent would not be the seed used`,
    });
  }
}

function checkFrames(frames: unknown, violations: Violation[]): void {
  const allowed: readonly number[] = props.frames.enum;
  if (typeof frames === "number" && allowed.includes(frames)) return;
  const hint =
    typeof frames === "string" && allowed.includes(Number(frames)) ? " (a number, not a string)" : "";
  violations.push({
    path: "frames",
    rule: "enum",
    limit: [...allowed],
    actual: typeof frames === "number" ? frames : typeName(frames),
    message: `frames must be ${allowed.join(" or ")} (${props.frames.description})${hint}`,
  });
}

function checkDataUri(uri: string, violations: Violation[], warnings: Violation[]): void {
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

// The schema's image rules: `validation_rule` is a metric followed by a comparison.
const RULE =
  /^\s*(file_size_mb|file_size_kb|file_size_bytes|width_pixels|height_pixels|width\/height|height\/width)\s*(<=|>=|==|!=|<|>|=)\s*$/;

type Metric =
  | "file_size_mb"
  | "file_size_kb"
  | "file_size_bytes"
  | "width_pixels"
  | "height_pixels"
  | "width/height"
  | "height/width";
type Operator = "<" | "<=" | ">" | ">=" | "=" | "==" | "!=";

export interface ParsedRule {
  metric: Metric;
  operator: Operator;
}

export function parseValidationRule(rule: string): ParsedRule | undefined {
  const match = RULE.exec(rule);
  return match ? { metric: match[1] as Metric, operator: match[2] as Operator } : undefined;
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

/** A finite decimal limit (4.7, 0.33, 4096) as an exact fraction. */
export function decimalFraction(value: number): [bigint, bigint] | undefined {
  if (!Number.isFinite(value)) return undefined;
  const text = String(value);
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text);
  if (!match) {
    // Exponent notation (1e-7, 1e21): the binary value is exact, if not what a person typed.
    const scale = 10n ** 30n;
    return [BigInt(Math.round(value * 1e30)), scale];
  }
  const decimals = match[3] ?? "";
  const numerator = BigInt(`${match[1]}${match[2]}${decimals}`);
  return [numerator, 10n ** BigInt(decimals.length)];
}

function compare(actual: [bigint, bigint], operator: Operator, limit: [bigint, bigint]): boolean {
  // Denominators are positive, so cross-multiplying keeps the order.
  const left = actual[0] * limit[1];
  const right = limit[0] * actual[1];
  switch (operator) {
    case "<":
      return left < right;
    case "<=":
      return left <= right;
    case ">":
      return left > right;
    case ">=":
      return left >= right;
    case "=":
    case "==":
      return left === right;
    case "!=":
      return left !== right;
  }
}

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
      message: `${props.image_urls.description} (this image is ${name})`,
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
    if (!compare(actual, parsed.operator, limit)) {
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

/** The numeric image limits, read from the schema (for code that has to produce a compliant image). */
export interface ImageLimits {
  /** Largest allowed file size in bytes (inclusive). */
  maxBytes: number;
  /** Largest allowed width and height (inclusive). */
  maxWidth: number;
  maxHeight: number;
  /** Smallest allowed width and height (inclusive). */
  minWidth: number;
  minHeight: number;
  /** Exclusive bounds of width/height (`< maxRatio`, `> minRatio`), as exact fractions [numerator, denominator]. */
  maxRatio: [bigint, bigint];
  minRatio: [bigint, bigint];
}

export function imageLimits(): ImageLimits {
  const limits: ImageLimits = {
    maxBytes: Number.MAX_SAFE_INTEGER,
    maxWidth: Number.MAX_SAFE_INTEGER,
    maxHeight: Number.MAX_SAFE_INTEGER,
    minWidth: 1,
    minHeight: 1,
    maxRatio: [BigInt(Number.MAX_SAFE_INTEGER), 1n],
    minRatio: [0n, 1n],
  };
  for (const rule of imageValidations) {
    const parsed = parseValidationRule(rule.validation_rule);
    const fraction = decimalFraction(rule.validation_value);
    if (!parsed || !fraction) continue;
    const strict = parsed.operator === "<" || parsed.operator === ">";
    const upper = parsed.operator === "<" || parsed.operator === "<=";
    const lower = parsed.operator === ">" || parsed.operator === ">=";
    const scale =
      parsed.metric === "file_size_mb" ? 1_000_000n : parsed.metric === "file_size_kb" ? 1_000n : 1n;
    // The largest (smallest) integer that passes: exact, from the fraction.
    const [num, den] = [fraction[0] * scale, fraction[1]];
    const largest = Number(strict ? ceilDiv(num, den) - 1n : num / den);
    const smallest = Number(strict ? num / den + 1n : ceilDiv(num, den));
    switch (parsed.metric) {
      case "file_size_mb":
      case "file_size_kb":
      case "file_size_bytes":
        if (upper) limits.maxBytes = Math.min(limits.maxBytes, largest);
        break;
      case "width_pixels":
        if (upper) limits.maxWidth = Math.min(limits.maxWidth, largest);
        if (lower) limits.minWidth = Math.max(limits.minWidth, smallest);
        break;
      case "height_pixels":
        if (upper) limits.maxHeight = Math.min(limits.maxHeight, largest);
        if (lower) limits.minHeight = Math.max(limits.minHeight, smallest);
        break;
      case "width/height":
        if (upper) limits.maxRatio = fraction;
        if (lower) limits.minRatio = fraction;
        break;
      default:
        break;
    }
  }
  return limits;
}

function ceilDiv(a: bigint, b: bigint): bigint {
  return (a + b - 1n) / b;
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}
