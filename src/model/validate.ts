// The model's input rules, checked before anything is sent (and by the sandbox, which
// answers with the same rules). Every problem is reported at once, and `validate` never
// throws, whatever value it is given: it is the first thing to see user input. The image rules
// are in image-facts.ts (and the schema's rules read in image-rules.ts).

import { checkDataUri, checkImageFacts, IMAGE_PATH, type ImageFacts } from "./image-facts.js";
import { inputSchema } from "./schema.js";
import type { ValidationReport, Violation } from "./violation.js";

export interface ValidateOptions {
  /** Facts about `image_urls[0]`; without them (and for a URL) the image rules are not checked. */
  image?: ImageFacts | undefined;
  /**
   * The image rules' verdict on `image`, when the caller already has it (a checked image):
   * used as is, so the same facts are not checked twice.
   */
  imageReport?: Pick<ValidationReport, "violations" | "warnings"> | undefined;
}

const props = inputSchema.properties;
const KNOWN_FIELDS = new Set(Object.keys(props));
const REQUIRED: readonly string[] = inputSchema.required;

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
