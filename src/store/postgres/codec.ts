// What goes into a stored row, and what comes out: the same rules as the SQLite journal's
// (data URIs as digest and size, secrets and URL passwords removed, canonical input digests),
// so a row means the same in either backend and an import copies it unchanged.

import { createHash } from "node:crypto";
import { redactSecrets } from "../../api/redact.js";
import { redactDataUris } from "../journal.js";

export function redactStored(value: unknown): unknown {
  return redactSecrets(redactDataUris(toPlain(value)));
}

export function redactText(text: string): string {
  return redactSecrets(text);
}

export function storeJson(value: unknown): string {
  return redactText(JSON.stringify(redactStored(value)) ?? "null");
}

export function storeError(error: unknown): string | null {
  if (error === undefined) return null;
  return storeJson(error);
}

/** Errors and class instances as plain data (redactSecrets only walks plain objects). */
export function toPlain(value: unknown, depth = 0): unknown {
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

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

export type TimeInput = Date | number | string;

export function toMillis(at: TimeInput | undefined, now: () => number): number {
  if (at === undefined) return now();
  const ms = at instanceof Date ? at.getTime() : typeof at === "number" ? at : Date.parse(at);
  if (!Number.isFinite(ms)) throw new TypeError(`not a time: ${String(at)}`);
  return ms;
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export function optIso(ms: number | null): string | undefined {
  return ms === null ? undefined : iso(ms);
}
