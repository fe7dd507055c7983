// Test images made on the fly with sharp (nothing binary is committed): boundary sizes,
// exact byte counts, odd encodings and broken files, written once per test process.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32, deflateSync } from "node:zlib";
import sharp from "sharp";

export async function jpeg(
  width: number,
  height: number,
  options: { progressive?: boolean; orientation?: number; quality?: number } = {},
): Promise<Buffer> {
  let image = sharp({ create: { width, height, channels: 3, background: { r: 200, g: 120, b: 40 } } }).jpeg({
    progressive: options.progressive ?? false,
    quality: options.quality ?? 80,
  });
  if (options.orientation) image = image.withMetadata({ orientation: options.orientation });
  return image.toBuffer();
}

export async function png(
  width: number,
  height: number,
  options: { bits16?: boolean; alpha?: boolean } = {},
) {
  const channels = options.alpha ? 4 : 3;
  const background = options.alpha ? { r: 10, g: 90, b: 200, alpha: 0.5 } : { r: 10, g: 90, b: 200 };
  let image = sharp({ create: { width, height, channels, background } });
  if (options.bits16) image = image.toColourspace("rgb16"); // keeps the alpha channel
  return image.png().toBuffer();
}

/** Random pixels: they do not compress, so byte sizes can be made large. */
export async function noise(width: number, height: number, format: "jpeg" | "png" | "webp" = "jpeg") {
  const data = Buffer.alloc(width * height * 3);
  let x = 2463534242;
  for (let i = 0; i < data.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data[i] = x & 0xff;
  }
  const image = sharp(data, { raw: { width, height, channels: 3 } });
  if (format === "png") return image.png({ compressionLevel: 1 }).toBuffer();
  if (format === "webp") return image.webp({ quality: 90 }).toBuffer();
  return image.jpeg({ quality: 95 }).toBuffer();
}

/** JPEG COM segments totalling exactly `total` bytes (total is 0 or at least 4). */
export function commentSegments(total: number): Buffer {
  if (total !== 0 && total < 4) throw new RangeError("a COM segment is at least 4 bytes");
  const parts: Buffer[] = [];
  let left = total;
  while (left > 0) {
    let size = Math.min(left, 65537);
    if (left - size > 0 && left - size < 4) size -= 4;
    const segment = Buffer.alloc(size, 0x20);
    segment[0] = 0xff;
    segment[1] = 0xfe;
    segment.writeUInt16BE(size - 2, 2);
    parts.push(segment);
    left -= size;
  }
  return Buffer.concat(parts);
}

/**
 * The same JPEG grown to exactly `size` bytes with comment segments, still a valid image.
 * `where`: right after SOI (pushes the frame header far from the start) or just before the
 * scan (keeps the header near the start, like a normal big photo).
 */
export function padJpeg(
  image: Buffer,
  size: number,
  where: "after-soi" | "before-sos" = "before-sos",
): Buffer {
  const pad = size - image.length;
  let at = 2;
  if (where === "before-sos") {
    at = 2;
    while (!(image[at] === 0xff && image[at + 1] === 0xda)) at += 2 + image.readUInt16BE(at + 2);
  }
  return Buffer.concat([image.subarray(0, at), commentSegments(pad), image.subarray(at)]);
}

/** The chunks of a PNG: type, offset of the chunk (its length field) and data length. */
export function pngChunks(png: Uint8Array): { type: string; at: number; length: number }[] {
  const b = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  const out: { type: string; at: number; length: number }[] = [];
  for (let at = 8; at + 8 <= b.length; ) {
    const length = b.readUInt32BE(at);
    out.push({ type: b.toString("latin1", at + 4, at + 8), at, length });
    at += 12 + length;
  }
  return out;
}

/**
 * Real images damaged the ways files get damaged, each with a perfect header: a JPEG cut in
 * half; a PNG whose middle IDAT holds garbage (with its CRC left wrong, and with the CRC
 * recomputed so only the compressed data is bad); a PNG cut in half.
 */
export async function damagedImages(): Promise<{
  intactJpeg: Buffer;
  intactPng: Buffer;
  halfJpeg: Buffer;
  garbagePngBadCrc: Buffer;
  garbagePngGoodCrc: Buffer;
  halfPng: Buffer;
}> {
  const intactJpeg = await noise(800, 600, "jpeg");
  const intactPng = await noise(640, 480, "png");
  const idats = pngChunks(intactPng).filter((c) => c.type === "IDAT");
  const idat = idats[Math.floor(idats.length / 2)]!;
  const garbagePngBadCrc = Buffer.from(intactPng);
  const dataStart = idat.at + 8;
  for (let i = dataStart + 16; i < dataStart + idat.length - 16; i++) garbagePngBadCrc[i] = (i * 31) & 0xff;
  const garbagePngGoodCrc = Buffer.from(garbagePngBadCrc);
  garbagePngGoodCrc.writeUInt32BE(
    crc32(garbagePngGoodCrc.subarray(idat.at + 4, dataStart + idat.length)) >>> 0,
    dataStart + idat.length,
  );
  return {
    intactJpeg,
    intactPng,
    halfJpeg: intactJpeg.subarray(0, Math.floor(intactJpeg.length / 2)),
    garbagePngBadCrc,
    garbagePngGoodCrc,
    halfPng: intactPng.subarray(0, Math.floor(intactPng.length / 2)),
  };
}

/**
 * A real, valid black-and-white PNG of any size (1 bit per pixel, all black), cheap to make
 * even at 30000x30000: the pixel count of a huge photo in a ~110 KB file.
 */
export function hugePng(width: number, height: number): Buffer {
  const rowBytes = 1 + Math.ceil(width / 8); // a filter byte, then the packed bits
  const idat = deflateSync(Buffer.alloc(rowBytes * height));
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body) >>> 0);
    return Buffer.concat([length, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // greyscale
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", idat),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

export const HTML_PAGE = `<!DOCTYPE html>
<html><head><title>Photo - Sharing</title></head>
<body><img src="/photo.jpg"><p>Sign in to download</p></body></html>
`;

export interface Fixtures {
  dir: string;
  path(name: string): string;
  files: Record<string, string>;
}

let cached: Promise<Fixtures> | undefined;

/** Every fixture file, created once per process in a temporary directory removed at exit. */
export function fixtures(): Promise<Fixtures> {
  cached ??= build();
  return cached;
}

async function build(): Promise<Fixtures> {
  const dir = mkdtempSync(join(tmpdir(), "dreamina-images-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  const files: Record<string, string> = {};
  const put = (name: string, bytes: Uint8Array | string) => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    files[name] = path;
  };
  const photo = await jpeg(800, 600);
  put("ok.jpg", photo);
  put("ok.png", await png(640, 480));
  put("w320.jpg", await jpeg(320, 500));
  put("w321.jpg", await jpeg(321, 500));
  put("h320.png", await png(500, 320));
  put("w4096.jpg", await jpeg(4096, 1500));
  put("w4097.jpg", await jpeg(4097, 1500));
  put("h4097.png", await png(1500, 4097));
  put("ratio-2.99.jpg", await jpeg(2990, 1000));
  put("ratio-3.0.jpg", await jpeg(3000, 1000));
  put("ratio-0.33.jpg", await jpeg(330, 1000));
  put("ratio-0.331.jpg", await jpeg(331, 1000));
  put("size-4699999.jpg", padJpeg(photo, 4_699_999));
  put("size-4700000.jpg", padJpeg(photo, 4_700_000));
  put("progressive.jpg", await jpeg(1024, 768, { progressive: true }));
  put("16bit.png", await png(640, 480, { bits16: true }));
  put("alpha.png", await png(640, 480, { alpha: true }));
  put("png-named.jpg", await png(640, 480));
  put("webp-named.jpg", await sharp(photo).webp().toBuffer());
  put("photo.gif", await sharp(photo).gif().toBuffer());
  put("photo.tiff", await sharp(photo).tiff().toBuffer());
  put("truncated-header.jpg", photo.subarray(0, 100));
  put("truncated-data.jpg", photo.subarray(0, Math.floor(photo.length / 2)));
  put("page.html", HTML_PAGE);
  put("exif-rotated.jpg", await jpeg(600, 400, { orientation: 6 }));
  put("far-header.jpg", padJpeg(photo, photo.length + 150_000, "after-soi"));
  put("empty.jpg", new Uint8Array(0));
  return { dir, files, path: (name) => files[name] ?? join(dir, name) };
}
