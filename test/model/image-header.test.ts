import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import fc from "fast-check";
import sharp from "sharp";
import { exifOrientation, sniffImage } from "../../src/model/image-header.js";
import { fixtures, HTML_PAGE, jpeg, png } from "../helpers/images.js";

/** A minimal JPEG header: SOI, an EXIF APP1 with the given byte order and orientation, SOFn. */
function syntheticJpeg(options: {
  order?: "II" | "MM";
  orientation?: number;
  sof?: number;
  width?: number;
  height?: number;
}) {
  const { order = "II", orientation, sof = 0xc0, width = 640, height = 480 } = options;
  const parts: number[] = [0xff, 0xd8];
  if (orientation !== undefined) {
    const le = order === "II";
    const u16 = (n: number) => (le ? [n & 0xff, n >> 8] : [n >> 8, n & 0xff]);
    const u32 = (n: number) =>
      le
        ? [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24]
        : [n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
    const tiff = [
      ...[...order].map((c) => c.charCodeAt(0)),
      ...u16(42),
      ...u32(8),
      ...u16(2), // two entries: ImageDescription-like filler first, then Orientation
      ...u16(0x010f),
      ...u16(2),
      ...u32(4),
      ...u32(0),
      ...u16(0x0112),
      ...u16(3),
      ...u32(1),
      ...u16(orientation),
      0,
      0,
      ...u32(0),
    ];
    const payload = [...Buffer.from("Exif\0\0", "latin1"), ...tiff];
    parts.push(0xff, 0xe1, (payload.length + 2) >> 8, (payload.length + 2) & 0xff, ...payload);
  }
  // A DHT (0xC4) between, which sits inside the SOF range and must be skipped.
  parts.push(0xff, 0xc4, 0x00, 0x04, 0x00, 0x00);
  parts.push(0xff, sof, 0x00, 0x11, 0x08, height >> 8, height & 0xff, width >> 8, width & 0xff, 0x03);
  parts.push(...new Array(9).fill(0));
  return Uint8Array.from(parts);
}

describe("sniffImage", () => {
  it("reads JPEG dimensions, baseline and progressive", async () => {
    const baseline = sniffImage(await jpeg(801, 333));
    assert.deepEqual(
      [baseline.format, baseline.status, baseline.width, baseline.height],
      ["jpeg", "complete", 801, 333],
    );
    assert.equal(baseline.progressive, false);
    const progressive = sniffImage(await jpeg(1024, 768, { progressive: true }));
    assert.deepEqual([progressive.width, progressive.height, progressive.progressive], [1024, 768, true]);
  });

  it("skips DHT/JPG/DAC, which share the SOF marker range", () => {
    for (const sof of [0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]) {
      const h = sniffImage(syntheticJpeg({ sof, width: 1234, height: 567 }));
      assert.deepEqual([h.status, h.width, h.height], ["complete", 1234, 567], `SOF 0x${sof.toString(16)}`);
      assert.equal(h.progressive, [0xc2, 0xc6, 0xca, 0xce].includes(sof));
    }
  });

  it("reads the EXIF orientation in both byte orders", () => {
    for (const order of ["II", "MM"] as const) {
      for (let o = 1; o <= 8; o++) {
        assert.equal(sniffImage(syntheticJpeg({ order, orientation: o })).orientation, o, `${order} ${o}`);
      }
    }
    assert.equal(sniffImage(syntheticJpeg({ orientation: 9 })).orientation, undefined);
    assert.equal(exifOrientation(new Uint8Array([1, 2, 3])), undefined);
  });

  it("reads the orientation sharp writes", async () => {
    const h = sniffImage(await jpeg(600, 400, { orientation: 6 }));
    assert.deepEqual([h.width, h.height, h.orientation], [600, 400, 6]);
  });

  it("reads PNG dimensions, bit depth and alpha", async () => {
    const eight = sniffImage(await png(640, 481));
    assert.deepEqual(
      [eight.format, eight.width, eight.height, eight.bitDepth, eight.hasAlpha],
      ["png", 640, 481, 8, false],
    );
    const sixteen = sniffImage(await png(320, 200, { bits16: true, alpha: true }));
    assert.deepEqual([sixteen.bitDepth, sixteen.colorType, sixteen.hasAlpha], [16, 6, true]);
  });

  it("tells the other formats apart by magic bytes, with WebP and GIF sizes", async () => {
    const base = sharp({ create: { width: 123, height: 45, channels: 4, background: "#f00a" } });
    const lossy = sniffImage(await base.clone().webp({ quality: 50 }).toBuffer());
    assert.deepEqual([lossy.format, lossy.width, lossy.height], ["webp", 123, 45]);
    const lossless = sniffImage(await base.clone().webp({ lossless: true }).toBuffer());
    assert.deepEqual([lossless.format, lossless.width, lossless.height], ["webp", 123, 45]);
    const opaque = sniffImage(await base.clone().removeAlpha().webp({ quality: 50 }).toBuffer());
    assert.deepEqual([opaque.width, opaque.height], [123, 45]);
    const gif = sniffImage(await base.clone().gif().toBuffer());
    assert.deepEqual([gif.format, gif.width, gif.height], ["gif", 123, 45]);
    assert.equal(sniffImage(await base.clone().tiff().toBuffer()).format, "tiff");
    assert.equal(sniffImage(await base.clone().avif().toBuffer()).format, "avif");
    const heic = Buffer.concat([
      Buffer.from([0, 0, 0, 24]),
      Buffer.from("ftypheic\0\0\0\0mif1heic", "latin1"),
    ]);
    assert.equal(sniffImage(heic).format, "heic");
    const mp4 = Buffer.concat([
      Buffer.from([0, 0, 0, 20]),
      Buffer.from("ftypisom\0\0\0\0mp41", "latin1"),
      Buffer.alloc(40),
    ]);
    assert.equal(sniffImage(mp4).format, "unknown");
    const bmp = Buffer.alloc(54);
    bmp.write("BM", 0, "latin1");
    bmp.writeUInt32LE(40, 14);
    bmp.writeInt32LE(500, 18);
    bmp.writeInt32LE(-400, 22);
    assert.deepEqual((({ format, width, height }) => [format, width, height])(sniffImage(bmp)), [
      "bmp",
      500,
      400,
    ]);
  });

  it("recognises HTML, SVG and text answered instead of an image", () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    assert.equal(sniffImage(enc(HTML_PAGE)).format, "html");
    assert.equal(sniffImage(enc("\ufeff  <html lang=en>")).format, "html");
    assert.equal(
      sniffImage(enc('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>')).format,
      "svg",
    );
    assert.equal(sniffImage(enc('{"error":"AccessDenied","message":"Request has expired"}')).format, "text");
    assert.equal(sniffImage(Uint8Array.from([0, 1, 2, 3, ...new Array(40).fill(7)])).format, "unknown");
  });

  it("needs more bytes for a header cut short, and calls it truncated when the data is final", async () => {
    const whole = await jpeg(800, 600);
    const cut = whole.subarray(0, 100);
    const more = sniffImage(cut);
    assert.equal(more.status, "need_more");
    assert.ok((more.needBytes ?? 0) > 100);
    const final = sniffImage(cut, { final: true });
    assert.equal(final.status, "truncated");
    assert.match(final.problem ?? "", /100 bytes/);
    assert.equal(sniffImage(new Uint8Array(0)).status, "need_more");
    assert.equal(sniffImage(new Uint8Array(0), { final: true }).status, "truncated");
    assert.equal(sniffImage(Uint8Array.from([0x89, 0x50])).status, "need_more");
  });

  it("every prefix of a real image is need_more or the full answer", async () => {
    const images = [
      await jpeg(700, 500, { orientation: 8 }),
      await png(640, 480),
      await jpeg(400, 900, { progressive: true }),
    ];
    const full = images.map((b) => sniffImage(b));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 }), fc.nat(), (which, n) => {
        const bytes = images[which]!;
        const prefix = sniffImage(bytes.subarray(0, n % (bytes.length + 1)));
        if (prefix.status === "need_more") {
          assert.ok((prefix.needBytes ?? Number.POSITIVE_INFINITY) > n % (bytes.length + 1));
        } else {
          assert.deepEqual(prefix, full[which]);
        }
      }),
    );
  });

  it("reports corrupt structure instead of guessing", () => {
    const noMarker = Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0, 0, 0x12, 0x34, 0, 0]);
    assert.equal(sniffImage(noMarker).status, "corrupt");
    const scanFirst = Uint8Array.from([0xff, 0xd8, 0xff, 0xda, 0x00, 0x04, 0, 0]);
    assert.match(sniffImage(scanFirst).problem ?? "", /before any frame header/);
    const badPng = Uint8Array.from([
      0x89,
      0x50,
      0x4e,
      0x47,
      0x0d,
      0x0a,
      0x1a,
      0x0a,
      0,
      0,
      0,
      4,
      0x43,
      0x67,
      0x42,
      0x49,
      ...new Array(20).fill(0),
    ]);
    assert.match(sniffImage(badPng).problem ?? "", /CgBI|IHDR/);
    const zeroPng = Buffer.alloc(33);
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]).copy(zeroPng);
    zeroPng.write("IHDR", 12, "latin1");
    assert.equal(sniffImage(zeroPng).status, "corrupt");
  });

  it("never throws, whatever the bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.boolean(), (bytes, final) => {
        const h = sniffImage(bytes, { final });
        assert.ok(["complete", "need_more", "truncated", "corrupt"].includes(h.status));
        if (final) assert.notEqual(h.status, "need_more");
      }),
    );
    // Random bytes behind real signatures exercise the parsers rather than the fallback.
    const sigs = [
      [0xff, 0xd8, 0xff],
      [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
      [...Buffer.from("RIFF\0\0\0\0WEBP")],
    ];
    fc.assert(
      fc.property(fc.constantFrom(...sigs), fc.uint8Array({ maxLength: 3000 }), (sig, rest) => {
        sniffImage(Uint8Array.from([...sig, ...rest]));
      }),
      { numRuns: 2000 },
    );
  });

  it("agrees with sharp on every fixture it can read", async () => {
    const { files } = await fixtures();
    for (const [name, path] of Object.entries(files)) {
      const bytes = readFileSync(path);
      const h = sniffImage(bytes, { final: true });
      if (h.status !== "complete" || h.width === undefined) continue;
      const meta = await sharp(bytes).metadata();
      assert.deepEqual([h.width, h.height], [meta.width, meta.height], name);
      assert.equal(h.format, meta.format === "heif" ? "avif" : meta.format, name);
    }
  });
});
