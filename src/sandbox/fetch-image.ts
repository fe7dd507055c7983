// Server-side fetching of the input image, as the service does: `data:` URIs are decoded,
// http(s) URLs fetched with a plain unauthenticated GET (loopback allowed: tests serve
// their own images), under a size and a time limit. Anything else is refused.

import { parseDataUri } from "../model/input.js";

export interface ImageFetchLimits {
  /** Largest body accepted, in bytes (default 10 MB; the model's own limit is stricter). */
  maxBytes: number;
  /** Whole fetch, connect to last byte (default 15 s). */
  timeoutMs: number;
}

export const DEFAULT_IMAGE_FETCH_LIMITS: ImageFetchLimits = { maxBytes: 10_000_000, timeoutMs: 15_000 };

export type FetchedImage = { ok: true; bytes: Uint8Array } | { ok: false; reason: string };

export async function fetchImage(url: string, limits: ImageFetchLimits): Promise<FetchedImage> {
  if (/^data:/i.test(url)) return decodeDataUri(url, limits);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { ok: false, reason: "not a valid URL" };
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return { ok: false, reason: `unsupported URL scheme ${parsed.protocol}` };
  }
  try {
    const response = await fetch(parsed, {
      redirect: "follow",
      signal: AbortSignal.timeout(limits.timeoutMs),
    });
    if (!response.ok) {
      await response.body?.cancel();
      const text = response.statusText ? ` ${response.statusText}` : "";
      return {
        ok: false,
        reason: `fetching the image failed: ${parsed.host} answered HTTP ${response.status}${text}`,
      };
    }
    const declared = Number(response.headers.get("content-length") ?? Number.NaN);
    if (declared > limits.maxBytes) {
      await response.body?.cancel();
      return { ok: false, reason: `the image is larger than ${limits.maxBytes} bytes` };
    }
    const chunks: Uint8Array[] = [];
    let total = 0;
    const reader = response.body?.getReader();
    for (;;) {
      const chunk = await reader?.read();
      if (!chunk || chunk.done) break;
      total += chunk.value.byteLength;
      if (total > limits.maxBytes) {
        await reader?.cancel();
        return { ok: false, reason: `the image is larger than ${limits.maxBytes} bytes` };
      }
      chunks.push(chunk.value);
    }
    return { ok: true, bytes: Buffer.concat(chunks) };
  } catch (error) {
    return { ok: false, reason: `fetching the image failed: ${whyFetchFailed(error, parsed, limits)}` };
  }
}

/**
 * The cause of a failed fetch in words a user can act on. fetch() only says "fetch failed";
 * the system error (ECONNREFUSED, ENOTFOUND...) sits in its `cause` chain.
 */
function whyFetchFailed(error: unknown, url: URL, limits: ImageFetchLimits): string {
  const name = error instanceof Error ? error.name : "";
  if (name === "TimeoutError" || name === "AbortError") {
    return `timed out after ${limits.timeoutMs} ms (${url.host})`;
  }
  const { code, message } = innermostCause(error);
  switch (code) {
    case "ECONNREFUSED":
      return `connection refused by ${url.host}`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EAI_NONAME":
    case "EAI_FAIL":
      return `DNS lookup failed for ${url.hostname} (${code})`;
    case "ECONNRESET":
    case "UND_ERR_SOCKET":
      return `the connection to ${url.host} was reset`;
    case "ETIMEDOUT":
    case "UND_ERR_CONNECT_TIMEOUT":
      return `connecting to ${url.host} timed out`;
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `${url.host} is unreachable (${code})`;
    default:
      if (code && /CERT|TLS|SSL|SIGNATURE/.test(code))
        return `TLS with ${url.host} failed: ${message} (${code})`;
      return code ? `${message} (${code})` : message;
  }
}

/** The deepest error with a system code (or the deepest error at all) in a `cause` chain. */
function innermostCause(error: unknown): { code: string | undefined; message: string } {
  let code: string | undefined;
  let coded: string | undefined;
  let deepest = error instanceof Error ? error.message : String(error);
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; depth++) {
    deepest = e.message;
    const own = (e as { code?: unknown }).code;
    if (typeof own === "string") {
      code = own;
      coded = e.message;
    }
    e = e.cause;
  }
  return { code, message: coded ?? deepest };
}

function decodeDataUri(uri: string, limits: ImageFetchLimits): FetchedImage {
  // Base64 grows data by 4/3: refuse before decoding anything absurd.
  if (uri.length > (limits.maxBytes * 4) / 3 + 1024) {
    return { ok: false, reason: `the image is larger than ${limits.maxBytes} bytes` };
  }
  const parsed = parseDataUri(uri);
  if (!parsed) return { ok: false, reason: "malformed data: URI" };
  if (parsed.bytes.byteLength > limits.maxBytes) {
    return { ok: false, reason: `the image is larger than ${limits.maxBytes} bytes` };
  }
  return { ok: true, bytes: parsed.bytes };
}
