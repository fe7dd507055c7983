// Image facts (format, stored size, file size) from as few bytes as possible: a local file
// is read only up to its header (seeking past long JPEG metadata segments), a URL is asked
// for its first 64 KiB with a Range request (see probe-url.ts), a data URI is decoded
// locally. Image hosts never get an Authorization header: nothing here ever holds a token.
// These are facts from the header only; whether a local image decodes in full is checked
// by checkImage (check.ts) before it is sent.

import { open } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { sniffImage } from "../model/image-header.js";
import { parseDataUri } from "../model/input.js";
import {
  DEFAULT_CHUNK,
  describeSource,
  finish,
  ImageProbeError,
  identityFromStat,
  type ProbeKind,
  type ProbeOptions,
  type ProbeResult,
  readHeader,
  tailWarnings,
} from "./probe-core.js";
import { probeUrl } from "./probe-url.js";
import { countImage } from "./stats.js";

export {
  describeSource,
  ImageProbeError,
  type ImageProbeErrorCode,
  type ProbeKind,
  type ProbeOptions,
  type ProbeResult,
} from "./probe-core.js";

export async function probeImage(
  source: string | Uint8Array | Blob,
  options: ProbeOptions = {},
): Promise<ProbeResult> {
  countImage("headerReads");
  if (source instanceof Uint8Array) return probeBytes(source, "bytes", "bytes", source.length);
  if (typeof Blob !== "undefined" && source instanceof Blob) return probeBlob(source, options);
  if (typeof source !== "string") {
    throw new ImageProbeError("bad_source", "an image must be a path, a URL, a data URI, bytes or a Blob", {
      source: String(source),
    });
  }
  const text = source.trim();
  if (/^data:/i.test(text)) return probeDataUri(text);
  if (/^https?:\/\//i.test(text)) return probeUrl(text, options);
  if (/^file:/i.test(text)) return probeFile(fileURLToPath(text), options);
  // Any other scheme (ftp:, s3:, gs:...) but not a Windows drive letter (C:\).
  if (/^[a-z][a-z0-9+.-]+:\/\//i.test(text)) {
    throw new ImageProbeError(
      "bad_source",
      `${text.split(":")[0]}: URLs cannot be fetched by the service; use an https URL (pre-signed for private storage) or a local file`,
      { source: text },
    );
  }
  if (text === "") throw new ImageProbeError("bad_source", "the image path is empty", { source });
  return probeFile(source, options);
}

function probeBytes(bytes: Uint8Array, kind: ProbeKind, source: string, sizeBytes: number): ProbeResult {
  const header = sniffImage(bytes, { final: true });
  const warnings = tailWarnings(header, bytes.subarray(Math.max(0, bytes.length - 12)));
  return finish(header, { kind, source, sizeBytes, bytesRead: bytes.length, warnings, bytes });
}

function probeDataUri(uri: string): ProbeResult {
  const data = parseDataUri(uri);
  const source = describeSource(uri);
  if (!data) {
    throw new ImageProbeError("bad_source", `${source} is not a well-formed data URI`, { source });
  }
  return probeBytes(data.bytes, "data", source, data.bytes.length);
}

async function probeFile(path: string, options: ProbeOptions): Promise<ProbeResult> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch (error) {
    throw fileError(error, path);
  }
  try {
    const stat = await handle.stat({ bigint: true });
    if (!stat.isFile())
      throw new ImageProbeError("not_a_file", `${path} is not a regular file`, { source: path });
    const size = Number(stat.size);
    const read = await readHeader(
      {
        read: async (at, length) => {
          const out = new Uint8Array(length);
          let got = 0;
          while (got < length) {
            const { bytesRead } = await handle.read(out, got, length - got, at + got);
            if (bytesRead === 0) break;
            got += bytesRead;
          }
          return out.subarray(0, got);
        },
      },
      size,
      options.chunkBytes ?? DEFAULT_CHUNK,
    );
    const { header, prefix } = read;
    let bytesRead = read.bytesRead;
    let tail = prefix.subarray(Math.max(0, prefix.length - 12));
    if (prefix.length < size && (header.format === "jpeg" || header.format === "png")) {
      // 12 bytes more tell a truncated file (no end marker) from a whole one.
      tail = new Uint8Array(Math.min(12, size));
      const { bytesRead: n } = await handle.read(tail, 0, tail.length, size - tail.length);
      tail = tail.subarray(0, n);
      bytesRead += n;
    }
    const warnings = header.status === "complete" ? tailWarnings(header, tail) : [];
    const result = finish(header, {
      kind: "file",
      source: path,
      sizeBytes: size,
      bytesRead,
      warnings,
      bytes: prefix,
    });
    Object.defineProperty(result, "fileIdentity", { value: identityFromStat(stat), enumerable: false });
    return result;
  } finally {
    await handle.close();
  }
}

function fileError(error: unknown, path: string): ImageProbeError {
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code === "ENOENT" || code === "ENOTDIR") {
    return new ImageProbeError("not_found", `${path}: no such file`, { source: path, cause: error });
  }
  if (code === "EISDIR")
    return new ImageProbeError("not_a_file", `${path} is a directory`, { source: path, cause: error });
  const message = error instanceof Error ? error.message : String(error);
  return new ImageProbeError("unreadable", `${path} cannot be read: ${message}`, {
    source: path,
    cause: error,
  });
}

async function probeBlob(blob: Blob, options: ProbeOptions): Promise<ProbeResult> {
  const read = await readHeader(
    { read: async (at, length) => new Uint8Array(await blob.slice(at, at + length).arrayBuffer()) },
    blob.size,
    options.chunkBytes ?? DEFAULT_CHUNK,
  );
  const { header, prefix } = read;
  let bytesRead = read.bytesRead;
  let tail = prefix.subarray(Math.max(0, prefix.length - 12));
  if (prefix.length < blob.size) {
    tail = new Uint8Array(await blob.slice(Math.max(0, blob.size - 12)).arrayBuffer());
    bytesRead += tail.length;
  }
  const warnings = header.status === "complete" ? tailWarnings(header, tail) : [];
  const source = blob.type ? `blob (${blob.type})` : "blob";
  return finish(header, { kind: "bytes", source, sizeBytes: blob.size, bytesRead, warnings, bytes: prefix });
}
