// Tokens this process has used are remembered here so that any text that might echo one
// (an error message, a response body, a log line) can be scrubbed before it leaves us.

const secrets = new Set<string>();
const REDACTED = "[REDACTED]";

/** Remember a secret so that `redactSecrets` removes it from anything shown later. */
export function registerSecret(secret: string | undefined): void {
  // Very short strings would redact ordinary words; real tokens are long.
  if (secret && secret.length >= 6) secrets.add(secret);
}

/** A copy of `value` (string, array or plain object, deeply, keys too) with every registered secret replaced. */
export function redactSecrets<T>(value: T): T {
  if (secrets.size === 0) return value;
  return redactValue(value, 0) as T;
}

function redactString(text: string): string {
  let out = text;
  for (const secret of secrets) {
    if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  }
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
