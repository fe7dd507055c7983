// What a store writes instead of what it is given: data URIs as digest and size (never their
// bytes), secrets redacted, errors and class instances as plain data. Every backend stores the
// same text, so a row moved from one backend to another keeps its input digest.

import { createHash } from "node:crypto";
import { redactSecrets } from "../api/redact.js";
import type { RedactedDataUri } from "./types.js";

const DATA_URI = /^data:([^,]*?),/i;
/** A base64 data URI inside a longer text (an error message quoting the input, say). */
const EMBEDDED_DATA_URI = /data:[\w.+-]*\/?[\w.+-]*(?:;[\w.+-]+(?:=[\w.+-]+)?)*;base64,[A-Za-z0-9+/_-]*=*/gi;

/**
 * `value` (deeply) with every `data:` URI string replaced by a {@link RedactedDataUri}, and
 * base64 data URIs quoted inside other strings replaced by a short description.
 */
export function redactDataUris(value: unknown, depth = 0): unknown {
  if (typeof value === "string") {
    if (DATA_URI.test(value.trimStart())) return describeDataUri(value);
    return value.replace(EMBEDDED_DATA_URI, (uri) => {
      const d = describeDataUri(uri);
      return `[data URI ${d.mime}, ${d.bytes} bytes, sha256 ${d.sha256}]`;
    });
  }
  if (depth > 40 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => redactDataUris(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = redactDataUris(v, depth + 1);
  return out;
}

/**
 * Descriptions of recently seen data URIs, by the URI itself. A batch sends the same few images
 * in many rows (often the very same string), and decoding and hashing every one of them again
 * was a large part of the journal's cost. Bounded in entries and in characters held.
 */
const describedUris = new Map<string, RedactedDataUri>();
const DESCRIBED_MAX_ENTRIES = 16;
const DESCRIBED_MAX_CHARS = 16 * 1024 * 1024;
let describedChars = 0;

function describeDataUri(uri: string): RedactedDataUri {
  const cached = describedUris.get(uri);
  if (cached) {
    // Most recently used last: the oldest entry is the first one evicted.
    describedUris.delete(uri);
    describedUris.set(uri, cached);
    return { ...cached };
  }
  const described = describeDataUriUncached(uri);
  if (uri.length <= DESCRIBED_MAX_CHARS / 4) {
    describedUris.set(uri, described);
    describedChars += uri.length;
    for (const [key] of describedUris) {
      if (describedUris.size <= DESCRIBED_MAX_ENTRIES && describedChars <= DESCRIBED_MAX_CHARS) break;
      describedUris.delete(key);
      describedChars -= key.length;
    }
  }
  return { ...described };
}

function describeDataUriUncached(uri: string): RedactedDataUri {
  const text = uri.trimStart();
  const match = DATA_URI.exec(text)!;
  const meta = match[1] ?? "";
  const payload = text.slice(match[0].length);
  const parts = meta.split(";").map((p) => p.trim());
  const base64 = parts.slice(1).some((p) => p.toLowerCase() === "base64");
  const mime = parts[0] ? parts[0].toLowerCase() : "text/plain";
  let bytes: Buffer;
  try {
    bytes = base64 ? Buffer.from(payload, "base64") : Buffer.from(decodeURIComponent(payload), "utf8");
  } catch {
    bytes = Buffer.from(payload, "utf8");
  }
  return {
    dataUri: true,
    mime,
    sha256: createHash("sha256").update(bytes).digest("hex"),
    bytes: bytes.length,
  };
}

/** A value as it may be stored: plain data, data URIs described, secrets redacted. */
export function redactStored(value: unknown): unknown {
  return redactSecrets(redactDataUris(toPlain(value)));
}

export function redactText(text: string): string {
  return redactSecrets(text);
}

export function storeJson(value: unknown): string {
  return redactText(JSON.stringify(redactStored(value)) ?? "null");
}

/** An error as stored text; null for none. */
export function storeError(error: unknown): string | null {
  if (error === undefined) return null;
  return storeJson(error);
}

/** Errors and class instances as plain data (redactSecrets only walks plain objects). */
function toPlain(value: unknown, depth = 0): unknown {
  if (depth > 20 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => toPlain(v, depth + 1));
  const withJson = value as { toJSON?: () => unknown };
  if (value instanceof Error) {
    const base: Record<string, unknown> =
      typeof withJson.toJSON === "function"
        ? (toPlain(withJson.toJSON(), depth + 1) as Record<string, unknown>)
        : { name: value.name, message: value.message };
    for (const [k, v] of Object.entries(value)) {
      // SubmissionUnknownError carries the input: it is stored on the row already.
      if (!(k in base) && k !== "input") base[k] = toPlain(v, depth + 1);
    }
    const code = (value as { code?: unknown }).code;
    if (code !== undefined && base.code === undefined) base.code = code;
    if (value.cause !== undefined && base.cause === undefined) base.cause = toPlain(value.cause, depth + 1);
    return base;
  }
  if (typeof withJson.toJSON === "function") return toPlain(withJson.toJSON(), depth + 1);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = toPlain(v, depth + 1);
  return out;
}

/** sha256 of the redacted input in canonical form (sorted keys): equal inputs, equal digests. */
export function inputDigest(redacted: unknown): string {
  return createHash("sha256").update(canonicalJson(redacted)).digest("hex");
}

function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const entries = Object.entries(value)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

/** Stored JSON back to a value; text that is not JSON comes back as it is. */
export function parseStoredJson(text: string | null): unknown {
  if (text === null) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** What an intent row stores of its input: the redacted JSON, its digest, and the columns. */
export interface StoredInput {
  json: string;
  digest: string;
  prompt: string | null;
  frames: number | null;
  seed: number | null;
}

export function storedInput(input: unknown): StoredInput {
  const redacted = redactStored(input);
  const fields = (
    input !== null && typeof input === "object" && !Array.isArray(input) ? input : {}
  ) as Record<string, unknown>;
  return {
    json: redactText(JSON.stringify(redacted ?? null)),
    digest: inputDigest(redacted),
    prompt: typeof fields.prompt === "string" ? redactText(fields.prompt) : null,
    frames: Number.isInteger(fields.frames) ? (fields.frames as number) : null,
    seed: Number.isInteger(fields.seed) ? (fields.seed as number) : null,
  };
}
