// Whether an image decodes in full: what its header cannot tell. A JPEG cut in half or a PNG
// with garbage pixel data has a perfect header, and the service would take the money and fail
// the job. sharp decodes the whole image (failing on any decoder error, not only on warnings)
// through a cheap pipeline: a thumbnail, so a JPEG is decoded at 1/8 scale (every entropy-coded
// byte still read) and no full-size raster is ever held.
//
// Verdicts are remembered by the bytes' sha256, so an image sent by many rows of a batch, or
// checked by validation and again when its data URI is built, is decoded once per process.

import { createHash } from "node:crypto";
import { formatName, type ImageHeader, pngStructureProblem, sniffImage } from "../model/image-header.js";
import type { Violation } from "../model/violation.js";
import { countImage } from "./stats.js";

/** The most pixels decoded (sharp's own default, 16383 x 16383), so a decompression bomb is refused. */
export const MAX_DECODE_PIXELS = 0x3fff * 0x3fff;

export type DecodeCheck =
  | { ok: true }
  | {
      ok: false;
      /** `pixels`: too large to decode at all; `decode`: the data is damaged or unreadable. */
      reason: "pixels" | "decode";
      /** What is wrong, for people (no leading capital: it follows "the image ..."). */
      problem: string;
      /** `pixels`: the image's pixel count. */
      pixels?: number;
    };

/**
 * Verdicts remembered (about 200 bytes each): more distinct images than a big batch sends, so
 * validation's verdict is still there when the row is submitted.
 */
const MAX_VERDICTS = 65_536;
const DECODES: DecodeCheck = Object.freeze({ ok: true });
const verdicts = new Map<string, Promise<DecodeCheck>>();
const stats = { decoded: 0, remembered: 0 };

/** How many images this process decoded, and how many checks a remembered verdict answered. */
export function decodeStats(): { decoded: number; remembered: number } {
  return { ...stats };
}

type SharpModule = typeof import("sharp");
let sharpModule: Promise<SharpModule> | undefined;

export async function loadSharp(): Promise<SharpModule> {
  sharpModule ??= import("sharp").then((m) => (m as unknown as { default: SharpModule }).default ?? m);
  return sharpModule;
}

/**
 * Decodes `bytes` in full (any format sharp reads) and says whether that worked. Never throws
 * for bad data. `header`: the image's header when a probe already parsed it (not parsed again).
 */
export function checkDecodes(bytes: Uint8Array, header?: ImageHeader): Promise<DecodeCheck> {
  countImage("decodeChecks");
  const key = createHash("sha256").update(bytes).digest("base64");
  const known = verdicts.get(key);
  if (known) {
    stats.remembered++;
    // Most recently used last: the oldest verdict is the one let go.
    verdicts.delete(key);
    verdicts.set(key, known);
    return known;
  }
  stats.decoded++;
  countImage("decodes");
  const verdict = decode(bytes, header);
  verdicts.set(key, verdict);
  if (verdicts.size > MAX_VERDICTS) verdicts.delete(verdicts.keys().next().value as string);
  return verdict;
}

/** The violation for an image that does not decode. */
export function decodeViolation(check: DecodeCheck & { ok: false }, path = "image_urls[0]"): Violation {
  if (check.reason === "pixels") {
    return {
      path,
      rule: "decode",
      limit: MAX_DECODE_PIXELS,
      actual: check.pixels,
      message: `the image cannot be decoded: ${check.problem}`,
    };
  }
  return { path, rule: "decode", message: `the image does not decode fully: ${check.problem}` };
}

async function decode(bytes: Uint8Array, known: ImageHeader | undefined): Promise<DecodeCheck> {
  const header = known ?? sniffImage(bytes, { final: true });
  const name = formatName(header.format);
  if (header.width !== undefined && header.height !== undefined) {
    const pixels = header.width * header.height;
    if (pixels > MAX_DECODE_PIXELS) return tooManyPixels(name, header.width, header.height);
  }
  const sharp = await loadSharp();
  try {
    await sharp(bytes, {
      failOn: "error",
      limitInputPixels: MAX_DECODE_PIXELS,
      sequentialRead: true,
      pages: 1,
    })
      .resize(64, 64, { fit: "inside" })
      .raw()
      .toBuffer();
    return DECODES;
  } catch (error) {
    const decoder = (error instanceof Error ? error.message : String(error)).split("\n")[0]!.trim();
    if (/pixel limit/i.test(decoder)) {
      // A format whose header this package does not parse: the size from sharp itself.
      const meta = await sharp(bytes, { limitInputPixels: false })
        .metadata()
        .catch(() => undefined);
      if (meta?.width && meta.height) return tooManyPixels(name, meta.width, meta.height);
    }
    return { ok: false, reason: "decode", problem: describeFailure(bytes, header.format, name, decoder) };
  }
}

function tooManyPixels(name: string, width: number, height: number): DecodeCheck {
  const n = (v: number) => v.toLocaleString("en-US");
  return {
    ok: false,
    reason: "pixels",
    pixels: width * height,
    problem: `the ${name} is ${width}x${height} (${n(width * height)} pixels), more than the ${n(MAX_DECODE_PIXELS)} pixels (16383x16383) this tool decodes; scale it down first`,
  };
}

/** The decoder's complaint, with what the file's structure says about it. */
function describeFailure(bytes: Uint8Array, format: string, name: string, decoder: string): string {
  if (format === "png") {
    const structure = pngStructureProblem(bytes);
    return `${structure ?? "the PNG's compressed pixel data (IDAT) is corrupt"} (decoder: ${decoder})`;
  }
  if (format === "jpeg") {
    const n = bytes.length;
    const cut = n < 2 || bytes[n - 2] !== 0xff || bytes[n - 1] !== 0xd9;
    return cut
      ? `the JPEG image data stops short and the file has no end-of-image marker: it was cut off (decoder: ${decoder})`
      : `the JPEG image data is damaged (decoder: ${decoder})`;
  }
  return `the ${name} data is damaged or in a variant this build cannot read (decoder: ${decoder})`;
}
