// JPEGs whose metadata (EXIF, ICC, XMP, comments) puts the frame header megabytes into the
// file: the probe walks the segment chain (seeking in a file, one bounded Range request per
// hop for a URL, skipping through the body of a server that ignores Range) up to the size
// limit, and never holds the skipped segments.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { ImageProbeError, probeImage } from "../../src/image/probe.js";
import { validate } from "../../src/model/validate.js";
import { noise, padJpeg } from "../helpers/images.js";

/** APP2 (ICC-like) and APP1 (XMP-like) segments, `count` of 65,535 payload bytes each. */
function appSegments(count: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const segment = Buffer.alloc(65_537, 0x41);
    segment[0] = 0xff;
    segment[1] = i % 2 === 0 ? 0xe2 : 0xe1;
    segment.writeUInt16BE(65_535, 2);
    // An APP1 that is not EXIF (XMP): the walk must not take it for the orientation block.
    if (i % 2 === 1) segment.write("http://ns.adobe.com/xap/1.0/\0", 4, "latin1");
    parts.push(segment);
  }
  return Buffer.concat(parts);
}

describe("probeImage: a JPEG with ~2 MB of metadata before its frame header", () => {
  let dir: string;
  let image: Buffer;
  let huge: Buffer;
  let server: Server;
  let base: string;
  const requests: { path: string; range: string | undefined }[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "dreamina-walk-"));
    // SOI, ~1 MB of APP1/APP2, ~1 MB of comments, then the real EXIF APP1 (orientation 6),
    // the tables and the frame header: all of it a valid JPEG that decoders read.
    // Noise, so the image data after the header is large (≈ 0.5 MB) and an abandoned download shows.
    const photo = await sharp(await noise(900, 700))
      .withMetadata({ orientation: 6 })
      .jpeg({ quality: 90 })
      .toBuffer();
    const withComments = padJpeg(photo, photo.length + 1_000_000, "after-soi");
    image = Buffer.concat([withComments.subarray(0, 2), appSegments(16), withComments.subarray(2)]);
    writeFileSync(join(dir, "metadata.jpg"), image);
    // Over the size limit, with the frame header beyond it too.
    huge = padJpeg(photo, 5_200_000, "after-soi");
    writeFileSync(join(dir, "huge.jpg"), huge);

    const sendRange = (res: ServerResponse, body: Buffer, range: string | undefined, total = true) => {
      const match = /^bytes=(\d+)-(\d*)$/.exec(range ?? "");
      if (!match) {
        res.writeHead(200, { "content-type": "image/jpeg", "content-length": body.length });
        return res.end(body);
      }
      const start = Number(match[1]);
      const end = Math.min(match[2] ? Number(match[2]) : body.length - 1, body.length - 1);
      if (start >= body.length) {
        res.writeHead(416, { "content-range": `bytes */${body.length}` });
        return res.end();
      }
      res.writeHead(206, {
        "content-type": "image/jpeg",
        "content-range": `bytes ${start}-${end}/${total ? body.length : "*"}`,
        "content-length": end - start + 1,
      });
      res.end(body.subarray(start, end + 1));
    };
    server = createServer((req, res) => {
      const path = new URL(req.url ?? "/", "http://x").pathname;
      requests.push({ path, range: req.headers.range });
      switch (path) {
        case "/range.jpg":
          return sendRange(res, image, req.headers.range);
        case "/norange.jpg":
          // Ignores Range: the whole file every time.
          return sendRange(res, image, undefined);
        case "/first-range-only.jpg":
          // Honours a range from 0, answers anything else in full.
          return sendRange(
            res,
            image,
            req.headers.range?.startsWith("bytes=0-") ? req.headers.range : undefined,
          );
        case "/huge-unknown-size.jpg":
          return sendRange(res, huge, req.headers.range, false);
        default:
          res.writeHead(404);
          return res.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  const frameHeaderAt = () => {
    let at = 2;
    while (!(image[at + 1]! >= 0xc0 && image[at + 1]! <= 0xc2)) at += 2 + image.readUInt16BE(at + 2);
    return at;
  };

  it("the fixture really has its frame header ~2 MB in, and decodes", async () => {
    assert.ok(frameHeaderAt() > 2_000_000, `frame header at ${frameHeaderAt()}`);
    assert.ok(image.length < 4_700_000);
    const decoded = await sharp(image, { failOn: "error" }).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([decoded.info.width, decoded.info.height], [900, 700]);
  });

  it("from a file: seeks from segment to segment, reading a small window at each", async () => {
    const result = await probeImage(join(dir, "metadata.jpg"));
    assert.deepEqual(
      [result.format, result.width, result.height, result.orientation, result.sizeBytes],
      ["jpeg", 900, 700, 6, image.length],
    );
    assert.ok(result.bytesRead < 300_000, `read ${result.bytesRead} of ${image.length}`);
    assert.ok(result.bytes.length <= 64 * 1024, `kept ${result.bytes.length} bytes`);
    assert.equal(
      validate({ prompt: "p", image_urls: ["data:image/jpeg;base64,"] }, { image: result }).valid,
      true,
    );
  });

  it("from a Blob: the same walk", async () => {
    const result = await probeImage(new Blob([new Uint8Array(image)]));
    assert.deepEqual([result.width, result.height, result.orientation], [900, 700, 6]);
    assert.ok(result.bytesRead < 300_000, `read ${result.bytesRead}`);
  });

  it("from a URL with Range: one bounded request per hop", async () => {
    requests.length = 0;
    const result = await probeImage(`${base}/range.jpg`);
    assert.deepEqual(
      [result.width, result.height, result.orientation, result.sizeBytes],
      [900, 700, 6, image.length],
    );
    assert.ok(result.bytesRead < 300_000, `read ${result.bytesRead}`);
    assert.deepEqual(result.warnings, []);
    for (const r of requests) {
      const [from, to] = (r.range ?? "").replace("bytes=", "").split("-").map(Number);
      assert.ok(to! - from! < 70_000, `a request for ${r.range}`);
    }
    assert.ok(requests.length < 40, `${requests.length} requests`);
  });

  it("from a server that ignores Range: skips through the one body, keeping only a window", async () => {
    const result = await probeImage(`${base}/norange.jpg`);
    assert.deepEqual([result.width, result.height, result.orientation], [900, 700, 6]);
    assert.match(result.warnings.join("\n"), /ignores Range/);
    assert.ok(result.bytes.length <= 64 * 1024, `kept ${result.bytes.length} bytes`);
    assert.ok(result.bytesRead < image.length - 200_000, `read ${result.bytesRead} of ${image.length}`);
  });

  it("from a server that honours only the first range: goes on with a full answer", async () => {
    const result = await probeImage(`${base}/first-range-only.jpg`);
    assert.deepEqual([result.width, result.height, result.sizeBytes], [900, 700, image.length]);
    assert.match(result.warnings.join("\n"), /ignores Range/);
  });

  it("stops at the size limit: a bigger file is refused by the size rule, with what is known", async () => {
    const result = await probeImage(join(dir, "huge.jpg"));
    assert.deepEqual([result.format, result.width, result.sizeBytes], ["jpeg", undefined, huge.length]);
    assert.ok(result.bytesRead < 1_000_000, `read ${result.bytesRead}`);
    assert.match(result.warnings.join("\n"), /not in the first 4,700,000 bytes/);
    const report = validate({ prompt: "p", image_urls: ["data:image/jpeg;base64,"] }, { image: result });
    assert.deepEqual(
      report.violations.map((v) => v.rule),
      ["file_size_mb<"],
    );
  });

  it("fails clearly when the size is unknown and the walk reaches the limit", async () => {
    await assert.rejects(probeImage(`${base}/huge-unknown-size.jpg`), (error: unknown) => {
      assert.ok(error instanceof ImageProbeError);
      assert.equal(error.code, "corrupt");
      assert.match(error.message, /no JPEG frame header in the first 4,700,000 bytes \(the size limit\)/);
      return true;
    });
  });
});
