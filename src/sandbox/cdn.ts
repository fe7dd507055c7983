// The output CDN: public, token-free file serving with what real CDNs send and downloaders
// rely on: Content-Length, a strong ETag, Accept-Ranges, single-range 206, HEAD and 304.
// Faults specific to downloads (a truncated body, a slow trickle) are applied here.

import { createReadStream } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { AppliedFault } from "./faults.js";

export interface CdnFile {
  path: string;
  size: number;
  sha256: string;
  contentType: string;
  /** Sent as Last-Modified. */
  modified: Date;
}

export type ByteRange = { start: number; end: number };

/**
 * Parses a Range header for a file of `size` bytes. Returns undefined to serve the whole
 * file (no header, several ranges, or a unit we do not know) and "unsatisfiable" for 416.
 */
export function parseRange(
  header: string | undefined,
  size: number,
): ByteRange | "unsatisfiable" | undefined {
  if (!header) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return undefined; // multi-range or another unit: a full 200 is a valid answer
  const [, first = "", last = ""] = m;
  if (first === "" && last === "") return undefined;
  if (first === "") {
    const suffix = Number(last);
    if (suffix === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
  if (start >= size || end < start) return "unsatisfiable";
  return { start, end };
}

/** Passes bytes through at `bytesPerSecond` (roughly: 20 slices a second). */
class Throttle extends Transform {
  readonly #slice: number;
  constructor(bytesPerSecond: number) {
    super();
    this.#slice = Math.max(1, Math.floor(bytesPerSecond / 20));
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let offset = 0;
    const pump = () => {
      if (offset >= chunk.length) return done();
      this.push(chunk.subarray(offset, offset + this.#slice));
      offset += this.#slice;
      setTimeout(pump, 50);
    };
    pump();
  }
}

/** Serves `file` for GET/HEAD, honouring Range and If-None-Match. Returns the status sent. */
export async function serveFile(
  req: IncomingMessage,
  res: ServerResponse,
  file: CdnFile,
  fault: AppliedFault | undefined,
): Promise<number | undefined> {
  const etag = `"${file.sha256}"`;
  res.setHeader("Accept-Ranges", "bytes");
  res.setHeader("ETag", etag);
  res.setHeader("Last-Modified", file.modified.toUTCString());
  res.setHeader("Cache-Control", "public, max-age=86400, immutable");
  res.setHeader("Content-Type", file.contentType);

  const ifNoneMatch = req.headers["if-none-match"];
  if (ifNoneMatch && (ifNoneMatch === "*" || ifNoneMatch.split(",").some((t) => t.trim() === etag))) {
    res.writeHead(304).end();
    return 304;
  }

  // If-Range: a range is honoured only when the validator still matches.
  const ifRange = req.headers["if-range"];
  const rangeHeader = ifRange && ifRange !== etag ? undefined : req.headers.range;
  const range = parseRange(rangeHeader, file.size);
  if (range === "unsatisfiable") {
    res.setHeader("Content-Range", `bytes */${file.size}`);
    res.writeHead(416, { "Content-Type": "text/plain" }).end("Range Not Satisfiable\n");
    return 416;
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? file.size - 1;
  const length = end - start + 1;
  res.setHeader("Content-Length", String(length));
  if (range) res.setHeader("Content-Range", `bytes ${start}-${end}/${file.size}`);
  const status = range ? 206 : 200;
  res.writeHead(status);
  if (req.method === "HEAD" || length === 0) {
    res.end();
    return status;
  }

  if (fault?.kind === "truncate") {
    // The promised Content-Length is never reached: the reader must notice the short body.
    const sent = Math.floor(length * (fault.param ?? 0.5));
    if (sent > 0) {
      for await (const chunk of createReadStream(file.path, { start, end: start + sent - 1 })) {
        if (!res.write(chunk)) await new Promise((r) => res.once("drain", r));
      }
    }
    await new Promise((r) => setTimeout(r, 20));
    res.destroy();
    return status;
  }

  const source = createReadStream(file.path, { start, end });
  try {
    if (fault?.kind === "slow") await pipeline(source, new Throttle(fault.param ?? 262_144), res);
    else await pipeline(source, res);
  } catch {
    // The client went away mid-download: nothing to answer any more.
  }
  return status;
}
