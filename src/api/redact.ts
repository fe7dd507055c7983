// Secrets are scrubbed here from any text that might echo one (an error message, a response
// body, a log line, a journal row, a report) before it leaves us: the tokens this process has
// used, and the userinfo (`user:password@`) of every URL, whoever wrote it.

const secrets = new Set<string>();
const REDACTED = "[REDACTED]";

/**
 * The userinfo of a URL: after `scheme://`, everything up to the authority's last `@` (a
 * password may hold a raw `@`: URL parsers split at the last one). The authority ends where a
 * parser ends it (`/ ? # \`) or at what a userinfo cannot hold (whitespace, `" < >`), so the
 * text after a URL in JSON or HTML is never taken for userinfo.
 */
const URL_USERINFO = /:\/\/[^\s/?#\\"<>]*@/g;

/** Remember a secret so that `redactSecrets` removes it from anything shown later. */
export function registerSecret(secret: string | undefined): void {
  // Very short strings would redact ordinary words; real tokens are long.
  if (secret && secret.length >= 6) secrets.add(secret);
}

/**
 * A copy of `value` (string, array or plain object, deeply, keys too) with every registered
 * secret and the userinfo of every URL replaced by `[REDACTED]`.
 */
export function redactSecrets<T>(value: T): T {
  return redactValue(value, 0) as T;
}

function redactString(text: string): string {
  let out = text;
  for (const secret of secrets) {
    if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  }
  // The cheap test first: most text (data URIs above all) has no `@` at all.
  if (out.includes("@") && out.includes("://")) out = out.replace(URL_USERINFO, `://${REDACTED}@`);
  return out;
}

function redactValue(value: unknown, depth: number): unknown {
  if (typeof value === "string") return redactString(value);
  if (depth > 20 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1));
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[redactString(k)] = redactValue(v, depth + 1);
  return out;
}
