// The whole image behind a probe result, reusing the bytes the probe already read: the rest
// of a local file, or a URL downloaded in full (without credentials, bounded in size).

import { open } from "node:fs/promises";
import { formatName } from "../model/image-header.js";
import { ImageProbeError, type ProbeOptions, type ProbeResult } from "./probe.js";
import { identityFromStat } from "./probe-core.js";
import { countImage } from "./stats.js";

/** The largest local image turned into a data URI (a guard against a wrong path to a huge file). */
const MAX_INLINE_BYTES = 256 * 1024 * 1024;

/**
 * The whole image behind a probe result, reusing the bytes the probe already read (a URL is
 * downloaded, without credentials). For fitting, or for turning a local file into a data URI.
 */
export async function loadImageBytes(
  image: string | Uint8Array | Blob,
  probe: ProbeResult,
  options: ProbeOptions = {},
): Promise<Uint8Array> {
  countImage("wholeReads");
  return probe.kind === "url" ? download(probe, options) : allBytes(image, probe);
}

async function allBytes(image: string | Uint8Array | Blob, probe: ProbeResult): Promise<Uint8Array> {
  const size = probe.sizeBytes ?? probe.bytes.length;
  if (probe.bytes.length >= size) return probe.bytes.subarray(0, size);
  if (size > MAX_INLINE_BYTES) {
    throw new ImageProbeError(
      "unreadable",
      `${probe.source} is ${size} bytes; images are limited to ${formatName(probe.format)} files under 4.7 MB`,
      { source: probe.source },
    );
  }
  if (image instanceof Blob) return new Uint8Array(await image.arrayBuffer());
  if (typeof image !== "string") return image;
  const out = new Uint8Array(size);
  out.set(probe.bytes);
  const handle = await open(image.trim().startsWith("file:") ? new URL(image.trim()) : image, "r");
  try {
    // Opened again by name: it must be the file the probe read, or its facts are not this one's.
    if (probe.fileIdentity !== undefined) {
      const now = identityFromStat(await handle.stat({ bigint: true }));
      if (now !== probe.fileIdentity) {
        throw new ImageProbeError("truncated", `${probe.source} changed while it was being read`, {
          source: probe.source,
        });
      }
    }
    let at = probe.bytes.length;
    while (at < size) {
      const { bytesRead } = await handle.read(out, at, size - at, at);
      if (bytesRead === 0) break;
      at += bytesRead;
    }
    if (at !== size) {
      throw new ImageProbeError("truncated", `${probe.source} changed while it was being read`, {
        source: probe.source,
      });
    }
  } finally {
    await handle.close();
  }
  return out;
}

/** Downloads a URL image in full (only to fit it), without credentials, bounded in size. */
async function download(probe: ProbeResult, options: ProbeOptions): Promise<Uint8Array> {
  const url = probe.finalUrl ?? probe.source;
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 60_000);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  let response: Response;
  try {
    response = await fetchImpl(url, {
      signal,
      redirect: "follow",
      headers: { "accept-encoding": "identity" },
    });
  } catch (error) {
    const code = timeout.aborted ? "timeout" : options.signal?.aborted ? "aborted" : "network";
    throw new ImageProbeError(code, `${url}: download failed (${(error as Error).message})`, {
      source: url,
      cause: error,
    });
  }
  if (!response.ok || !response.body) {
    void response.body?.cancel().catch(() => {});
    throw new ImageProbeError("http_error", `${url}: HTTP ${response.status}`, {
      source: url,
      status: response.status,
    });
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.length;
    if (total > MAX_INLINE_BYTES) {
      throw new ImageProbeError("unreadable", `${url} is larger than ${MAX_INLINE_BYTES} bytes`, {
        source: url,
      });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
