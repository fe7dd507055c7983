// The ergonomic way to build the model's input from whatever the user has: a local path,
// bytes, a Blob, a data URI or a URL. Local images become data URIs (the API has no upload
// endpoint); URLs stay URLs. The probe's facts feed the validation, so nothing is read twice,
// and a local image is decoded in full before it may be sent (checkImageContent): a damaged
// file is refused here, not paid for and failed by the service.

import { open } from "node:fs/promises";
import { formatName } from "../model/image-header.js";
import { type DreaminaInput, type Frames, withDefaults } from "../model/input.js";
import {
  checkImageFacts,
  type ImageFacts,
  type ValidationReport,
  type Violation,
  validate,
} from "../model/validate.js";
import { checkDecodes, decodeViolation } from "./decode-check.js";
import type { FitOptions, FitResult } from "./fit.js";
import { ImageProbeError, type ProbeOptions, type ProbeResult, probeImage } from "./probe.js";

export interface PrepareInputParams {
  prompt: string;
  /** A local path, an http(s) URL, a data URI, bytes or a Blob. */
  image: string | Uint8Array | Blob;
  seed?: number;
  frames?: Frames;
}

export interface PrepareInputOptions extends ProbeOptions {
  /**
   * Fix an image that breaks the rules (see fitImage) instead of only reporting it. A URL
   * that needs fixing is downloaded and sent as a data URI.
   */
  fit?: boolean | FitOptions;
}

export interface PreparedInput {
  /** Ready to submit when `report.valid`; defaults applied. */
  input: Required<DreaminaInput>;
  /** Facts about the image as given (before any fit). */
  image: ProbeResult;
  report: ValidationReport;
  /** Present when the image was fitted (and `changed` says whether that changed anything). */
  fitted?: FitResult;
}

/** The largest local image turned into a data URI (a guard against a wrong path to a huge file). */
const MAX_INLINE_BYTES = 256 * 1024 * 1024;

/** `data:image/jpeg;base64,...` or `data:image/png;base64,...`, the forms the API documents. */
export function toDataUri(bytes: Uint8Array, format: "jpeg" | "png" | string): string {
  const base64 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
  return `data:image/${format};base64,${base64}`;
}

export async function prepareInput(
  params: PrepareInputParams,
  options: PrepareInputOptions = {},
): Promise<PreparedInput> {
  const probe = await probeImage(params.image, options);
  let imageUrl: string;
  let facts: ImageFacts = probe;
  let fitted: FitResult | undefined;

  const fitOptions = options.fit === true ? {} : options.fit || undefined;
  const needsFit =
    fitOptions !== undefined &&
    (!checkImageFacts(probe).valid ||
      (fitOptions.format !== undefined && fitOptions.format !== probe.format));
  const content: Violation[] = [];
  if (probe.kind === "url" && !needsFit) {
    imageUrl = typeof params.image === "string" ? params.image.trim() : probe.source;
  } else {
    const bytes = await loadImageBytes(params.image, probe, options);
    // Decoded before it is sent or fitted; not when the rules refuse it anyway (no fit asked).
    const decoded = needsFit || checkImageFacts(probe).valid ? await checkDecodes(bytes) : undefined;
    if (decoded && !decoded.ok) content.push(decodeViolation(decoded));
    if (needsFit && content.length === 0) {
      const { fitImage } = await import("./fit.js");
      fitted = await fitImage(bytes, fitOptions);
      imageUrl = toDataUri(fitted.bytes, fitted.format);
      facts = {
        format: fitted.format,
        width: fitted.width,
        height: fitted.height,
        sizeBytes: fitted.bytes.length,
        source: probe.source,
      };
    } else {
      imageUrl = toDataUri(bytes, probe.format);
    }
  }

  const input = withDefaults({
    prompt: params.prompt,
    image_urls: [imageUrl],
    ...(params.seed === undefined ? {} : { seed: params.seed }),
    ...(params.frames === undefined ? {} : { frames: params.frames }),
  });
  const report = validate(input, { image: facts });
  report.violations.push(...content);
  report.valid = report.violations.length === 0;
  for (const warning of probe.warnings) {
    report.warnings.push({ path: "image_urls[0]", rule: "probe", message: warning });
  }
  if (fitted?.changed) {
    report.warnings.push({
      path: "image_urls[0]",
      rule: "fitted",
      message: `the image was changed to comply: ${fitted.changes.join("; ")}`,
    });
  }
  return fitted ? { input, image: probe, report, fitted } : { input, image: probe, report };
}

/**
 * What the header cannot tell, for a check that does not build the input (`dreamina validate`,
 * batch validation): whether a local image (a file, bytes, a Blob, a data URI) decodes in
 * full, as prepareInput will insist before sending it. A URL is not downloaded for this: only
 * its header is probed. An image the rules refuse anyway is not decoded. Empty when it decodes.
 */
export async function checkImageContent(
  image: PrepareInputParams["image"],
  probe: ProbeResult,
  options: ProbeOptions = {},
): Promise<Violation[]> {
  if (probe.kind === "url" || !checkImageFacts(probe).valid) return [];
  const decoded = await checkDecodes(await loadImageBytes(image, probe, options));
  return decoded.ok ? [] : [decodeViolation(decoded)];
}

/**
 * The whole image behind a probe result, reusing the bytes the probe already read (a URL is
 * downloaded, without credentials). For fitting, or for turning a local file into a data URI.
 */
export async function loadImageBytes(
  image: PrepareInputParams["image"],
  probe: ProbeResult,
  options: ProbeOptions = {},
): Promise<Uint8Array> {
  return probe.kind === "url" ? download(probe, options) : allBytes(image, probe);
}

async function allBytes(image: PrepareInputParams["image"], probe: ProbeResult): Promise<Uint8Array> {
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
