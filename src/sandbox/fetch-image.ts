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
      return { ok: false, reason: `fetching the image failed: HTTP ${response.status}` };
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
    const timedOut = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
    return {
      ok: false,
      reason: timedOut
        ? `fetching the image took longer than ${limits.timeoutMs} ms`
        : `fetching the image failed: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
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
