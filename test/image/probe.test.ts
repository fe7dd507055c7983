import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { ImageProbeError, probeImage } from "../../src/image/probe.js";
import { fixtures, HTML_PAGE, jpeg, padJpeg } from "../helpers/images.js";

const rejectsWith = (promise: Promise<unknown>, code: string) =>
  assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ImageProbeError, `not an ImageProbeError: ${error}`);
    assert.equal(error.code, code, error.message);
    return true;
  });

describe("probeImage: local files", () => {
  it("reads only the header of a big file and takes the size from the file system", async () => {
    const f = await fixtures();
    const result = await probeImage(f.path("size-4700000.jpg"));
    assert.equal(result.kind, "file");
    assert.deepEqual(
      [result.format, result.width, result.height, result.sizeBytes],
      ["jpeg", 800, 600, 4_700_000],
    );
    assert.ok(result.bytesRead <= 64 * 1024 + 12, `read ${result.bytesRead} bytes`);
    assert.deepEqual(result.warnings, []);
  });

  it("decides the format by magic bytes, not by the file name", async () => {
    const f = await fixtures();
    const pngNamedJpg = await probeImage(f.path("png-named.jpg"));
    assert.deepEqual([pngNamedJpg.format, pngNamedJpg.width, pngNamedJpg.height], ["png", 640, 480]);
    const webp = await probeImage(f.path("webp-named.jpg"));
    assert.deepEqual([webp.format, webp.width, webp.height], ["webp", 800, 600]);
  });

  it("handles progressive JPEG, 16-bit PNG, EXIF orientation", async () => {
    const f = await fixtures();
    const progressive = await probeImage(f.path("progressive.jpg"));
    assert.deepEqual(
      [progressive.width, progressive.height, progressive.header.progressive],
      [1024, 768, true],
    );
    const deep = await probeImage(f.path("16bit.png"));
    assert.deepEqual([deep.format, deep.header.bitDepth], ["png", 16]);
    const rotated = await probeImage(f.path("exif-rotated.jpg"));
    assert.deepEqual([rotated.width, rotated.height, rotated.orientation], [600, 400, 6]);
  });

  it("walks past 64 KiB to a frame header further in, skipping segments rather than reading them", async () => {
    const f = await fixtures();
    const result = await probeImage(f.path("far-header.jpg"));
    assert.deepEqual([result.width, result.height], [800, 600]);
    // The header is 150 KB in; only the first 64 KiB and a small window per segment are read.
    assert.ok(result.bytesRead > 65_536 && result.bytesRead < 100_000, `read ${result.bytesRead}`);
  });

  it("fails clearly on missing, truncated, HTML and empty files", async () => {
    const f = await fixtures();
    await rejectsWith(probeImage(f.path("does-not-exist.jpg")), "not_found");
    await rejectsWith(probeImage(f.dir), "not_a_file");
    await rejectsWith(probeImage(f.path("truncated-header.jpg")), "truncated");
    await rejectsWith(probeImage(f.path("page.html")), "html");
    await rejectsWith(probeImage(f.path("empty.jpg")), "truncated");
    await rejectsWith(probeImage("s3://bucket/key.jpg"), "bad_source");
  });

  it("warns when a JPEG has no end marker (cut short)", async () => {
    const f = await fixtures();
    const result = await probeImage(f.path("truncated-data.jpg"));
    assert.equal(result.format, "jpeg");
    assert.match(result.warnings.join("\n"), /end-of-image marker/);
  });

  it("accepts file: URLs, bytes, Blobs and data URIs", async () => {
    const f = await fixtures();
    const bytes = readFileSync(f.path("ok.jpg"));
    const fromUrl = await probeImage(`file://${f.path("ok.jpg")}`);
    assert.equal(fromUrl.sizeBytes, bytes.length);
    const fromBytes = await probeImage(new Uint8Array(bytes));
    assert.deepEqual([fromBytes.kind, fromBytes.width, fromBytes.sizeBytes], ["bytes", 800, bytes.length]);
    const fromBlob = await probeImage(new Blob([bytes], { type: "image/jpeg" }));
    assert.deepEqual([fromBlob.kind, fromBlob.height, fromBlob.sizeBytes], ["bytes", 600, bytes.length]);
    const fromData = await probeImage(`data:image/jpeg;base64,${bytes.toString("base64")}`);
    assert.deepEqual(
      [fromData.kind, fromData.sizeBytes, fromData.bytesRead],
      ["data", bytes.length, bytes.length],
    );
    assert.match(fromData.source, /^data:image\/jpeg;base64,… \(\d+ characters\)$/);
    await rejectsWith(probeImage("data:image/png;base64,!!!"), "bad_source");
  });

  it("serialises as facts only (the bytes read are not enumerable)", async () => {
    const f = await fixtures();
    const result = await probeImage(f.path("ok.png"));
    assert.ok(result.bytes.length > 0);
    assert.equal(JSON.parse(JSON.stringify(result)).bytes, undefined);
  });
});

describe("probeImage: URLs (a real local HTTP server)", () => {
  let server: Server;
  let base: string;
  const seen: { url: string; headers: IncomingHttpHeaders }[] = [];
  let big: Buffer;
  let far: Buffer;
  let small: Buffer;

  const sendRange = (res: ServerResponse, body: Buffer, range: string | undefined, type = "image/jpeg") => {
    const match = /^bytes=(\d+)-(\d*)$/.exec(range ?? "");
    if (!match) {
      res.writeHead(200, { "content-type": type, "content-length": body.length });
      res.end(body);
      return;
    }
    const start = Number(match[1]);
    const end = Math.min(match[2] ? Number(match[2]) : body.length - 1, body.length - 1);
    if (start >= body.length) {
      res.writeHead(416, { "content-range": `bytes */${body.length}` });
      res.end();
      return;
    }
    res.writeHead(206, {
      "content-type": type,
      "content-range": `bytes ${start}-${end}/${body.length}`,
      "content-length": end - start + 1,
    });
    res.end(body.subarray(start, end + 1));
  };

  before(async () => {
    const photo = await jpeg(1600, 900);
    big = padJpeg(photo, 4_600_000);
    far = padJpeg(photo, photo.length + 150_000, "after-soi");
    small = await jpeg(800, 600);
    server = createServer((req, res) => {
      seen.push({ url: req.url ?? "", headers: req.headers });
      const url = new URL(req.url ?? "/", "http://x");
      switch (url.pathname) {
        case "/range.jpg":
          return sendRange(res, big, req.headers.range);
        case "/far.jpg":
          return sendRange(res, far, req.headers.range);
        case "/norange.jpg":
          res.writeHead(200, { "content-type": "image/jpeg", "content-length": big.length });
          return res.end(big);
        case "/chunked.jpg":
          res.writeHead(200, { "content-type": "image/jpeg" });
          res.write(small.subarray(0, 1000));
          return setTimeout(() => res.end(small.subarray(1000)), 10);
        case "/star.jpg":
          res.writeHead(206, {
            "content-type": "image/jpeg",
            "content-range": `bytes 0-${small.length - 1}/*`,
          });
          return res.end(small);
        case "/octet.jpg":
          return sendRange(res, small, req.headers.range, "application/octet-stream");
        case "/redirect": {
          const hops = Number(url.searchParams.get("n") ?? "1");
          res.writeHead(302, { location: hops > 1 ? `/redirect?n=${hops - 1}` : "range.jpg" });
          return res.end();
        }
        case "/loop":
          res.writeHead(301, { location: "/loop" });
          return res.end();
        case "/page":
          res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
          return res.end(HTML_PAGE);
        case "/html-as-jpeg.jpg":
          return sendRange(res, Buffer.from(HTML_PAGE), req.headers.range, "image/jpeg");
        case "/forbidden.jpg":
          res.writeHead(403, { "content-type": "text/plain" });
          return res.end("denied");
        case "/empty.jpg":
          return sendRange(res, Buffer.alloc(0), req.headers.range);
        case "/slow.jpg":
          res.writeHead(200, { "content-type": "image/jpeg" });
          return res.write(small.subarray(0, 50)); // and then nothing more
        case "/cut.jpg":
          res.writeHead(200, { "content-type": "image/jpeg", "content-length": small.length });
          res.write(small.subarray(0, 60));
          return setTimeout(() => res.destroy(), 20);
        case "/truncated-file.jpg":
          return sendRange(res, small.subarray(0, 100), req.headers.range);
        default:
          res.writeHead(404, { "content-type": "text/plain" });
          return res.end("not found");
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    // Image hosts never see a token (there is none to send, and it must stay that way).
    assert.ok(seen.length > 10);
    for (const request of seen) {
      assert.equal(request.headers.authorization, undefined, `Authorization sent to ${request.url}`);
      assert.equal(request.headers.cookie, undefined);
    }
  });

  it("reads the first 64 KiB of a 4.6 MB image through Range and gets the size from Content-Range", async () => {
    const result = await probeImage(`${base}/range.jpg`);
    assert.deepEqual([result.kind, result.format, result.width, result.height], ["url", "jpeg", 1600, 900]);
    assert.equal(result.sizeBytes, 4_600_000);
    assert.ok(result.bytesRead <= 65_536, `read ${result.bytesRead}`);
    assert.deepEqual(result.warnings, []);
    const request = seen.findLast((r) => r.url === "/range.jpg");
    assert.equal(request?.headers.range, "bytes=0-65535");
  });

  it("asks for the next range when the header goes on past the first", async () => {
    const result = await probeImage(`${base}/far.jpg`);
    assert.deepEqual([result.width, result.height, result.sizeBytes], [1600, 900, far.length]);
    assert.ok(result.bytesRead > 65_536 && result.bytesRead < 300_000, `read ${result.bytesRead}`);
  });

  it("stops reading early when the server ignores Range (size from Content-Length)", async () => {
    const result = await probeImage(`${base}/norange.jpg`);
    assert.deepEqual([result.width, result.sizeBytes], [1600, 4_600_000]);
    assert.ok(result.bytesRead < 512 * 1024, `read ${result.bytesRead} of ${big.length}`);
    assert.match(result.warnings.join("\n"), /ignores Range/);
  });

  it("knows the size of a chunked answer read to its end, and says when it cannot know it", async () => {
    const chunked = await probeImage(`${base}/chunked.jpg`);
    assert.equal(chunked.width, 800);
    const star = await probeImage(`${base}/star.jpg`);
    assert.equal(star.sizeBytes, undefined);
    assert.match(star.warnings.join("\n"), /file-size rule could not be checked/);
  });

  it("follows redirects (relative ones too), bounded", async () => {
    const result = await probeImage(`${base}/redirect?n=3`);
    assert.equal(result.redirects, 3);
    assert.equal(result.finalUrl, `${base}/range.jpg`);
    assert.equal(result.width, 1600);
    assert.match(result.warnings.join("\n"), /redirects \(3 hops\)/);
    await rejectsWith(probeImage(`${base}/redirect?n=3`, { maxRedirects: 2 }), "too_many_redirects");
    await rejectsWith(probeImage(`${base}/loop`), "too_many_redirects");
  });

  it("fails clearly on 404, 403, HTML pages and empty files", async () => {
    await rejectsWith(probeImage(`${base}/missing.jpg`), "not_found");
    await assert.rejects(probeImage(`${base}/forbidden.jpg`), /public or pre-signed/);
    await rejectsWith(probeImage(`${base}/page`), "html");
    await rejectsWith(probeImage(`${base}/html-as-jpeg.jpg`), "html");
    await rejectsWith(probeImage(`${base}/empty.jpg`), "truncated");
    await rejectsWith(probeImage(`${base}/truncated-file.jpg`), "truncated");
  });

  it("times out on a server that stops sending", async () => {
    const started = Date.now();
    await rejectsWith(probeImage(`${base}/slow.jpg`, { timeoutMs: 300 }), "timeout");
    assert.ok(Date.now() - started < 3000);
  });

  it("reports a connection cut before the header as truncated", async () => {
    await rejectsWith(probeImage(`${base}/cut.jpg`), "truncated");
  });

  it("honours an abort signal and reports connection failures", async () => {
    const controller = new AbortController();
    const pending = probeImage(`${base}/slow.jpg`, { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await rejectsWith(pending, "aborted");
    await rejectsWith(probeImage("http://127.0.0.1:9/a.jpg"), "network");
  });

  it("warns when the server mislabels the image", async () => {
    const result = await probeImage(`${base}/octet.jpg`);
    assert.match(result.warnings.join("\n"), /labels this JPEG image as application\/octet-stream/);
  });
});
