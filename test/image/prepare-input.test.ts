import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { prepareInput, toDataUri } from "../../src/image/prepare-input.js";
import { ImageProbeError } from "../../src/image/probe.js";
import { sniffImage } from "../../src/model/image-header.js";
import { parseDataUri } from "../../src/model/input.js";
import { fixtures, jpeg } from "../helpers/images.js";

describe("prepareInput", () => {
  it("turns a local JPEG into a data URI holding the very same bytes, defaults applied", async () => {
    const f = await fixtures();
    const { input, image, report } = await prepareInput({ prompt: "a pan", image: f.path("ok.jpg") });
    assert.equal(report.valid, true, JSON.stringify(report));
    assert.deepEqual(report.warnings, []);
    assert.equal(input.seed, -1);
    assert.equal(input.frames, 121);
    assert.match(input.image_urls[0], /^data:image\/jpeg;base64,/);
    assert.deepEqual(
      parseDataUri(input.image_urls[0])?.bytes,
      new Uint8Array(readFileSync(f.path("ok.jpg"))),
    );
    assert.equal(image.kind, "file");
  });

  it("uses the magic bytes for the media type (a PNG named .jpg)", async () => {
    const f = await fixtures();
    const { input } = await prepareInput({
      prompt: "p",
      image: f.path("png-named.jpg"),
      frames: 241,
      seed: 7,
    });
    assert.match(input.image_urls[0], /^data:image\/png;base64,/);
    assert.deepEqual([input.frames, input.seed], [241, 7]);
  });

  it("reads a big file whole without reading its header twice", async () => {
    const f = await fixtures();
    const { input, image, report } = await prepareInput({ prompt: "p", image: f.path("size-4700000.jpg") });
    assert.equal(parseDataUri(input.image_urls[0])?.bytes.length, 4_700_000);
    assert.ok(image.bytesRead < 70_000);
    // The size rule applies to the file, not to the (larger) base64 text.
    assert.deepEqual(
      report.violations.map((v) => v.rule),
      ["file_size_mb<"],
    );
  });

  it("accepts bytes and Blobs", async () => {
    const bytes = await jpeg(640, 480);
    const fromBytes = await prepareInput({ prompt: "p", image: new Uint8Array(bytes) });
    assert.equal(fromBytes.report.valid, true);
    const fromBlob = await prepareInput({ prompt: "p", image: new Blob([new Uint8Array(bytes)]) });
    assert.equal(fromBlob.input.image_urls[0], fromBytes.input.image_urls[0]);
  });

  it("reports violations of the image and the fields together", async () => {
    const f = await fixtures();
    const { report } = await prepareInput({
      prompt: "x".repeat(900),
      image: f.path("webp-named.jpg"),
      frames: 120 as 121,
    });
    assert.deepEqual(
      report.violations.map((v) => `${v.path}:${v.rule}`),
      ["prompt:maxLength", "frames:enum", "image_urls[0]:format"],
    );
  });

  it("fits an image that breaks the rules when asked", async () => {
    const f = await fixtures();
    const { input, report, fitted, image } = await prepareInput(
      { prompt: "p", image: f.path("w4097.jpg") },
      { fit: true },
    );
    assert.equal(report.valid, true, JSON.stringify(report.violations));
    assert.equal(fitted?.changed, true);
    assert.equal(image.width, 4097);
    const sent = sniffImage(parseDataUri(input.image_urls[0])!.bytes, { final: true });
    assert.deepEqual([sent.width, sent.height], [4096, 1500]);
    assert.ok(report.warnings.some((w) => w.rule === "fitted"));
  });

  it("throws ImageProbeError for a missing file", async () => {
    await assert.rejects(
      prepareInput({ prompt: "p", image: "/nonexistent/photo.jpg" }),
      (e: unknown) => e instanceof ImageProbeError && e.code === "not_found",
    );
  });

  it("toDataUri encodes a view of a larger buffer correctly", () => {
    const backing = new Uint8Array([9, 9, 0xff, 0xd8, 0xff, 9]);
    assert.equal(toDataUri(backing.subarray(2, 5), "jpeg"), "data:image/jpeg;base64,/9j/");
  });

  describe("URLs", () => {
    let server: Server;
    let base: string;
    before(async () => {
      const photo = await jpeg(5000, 1000);
      server = createServer((req, res) => {
        assert.equal(req.headers.authorization, undefined);
        res.writeHead(200, { "content-type": "image/jpeg", "content-length": photo.length });
        res.end(photo);
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(() => new Promise((resolve) => server.close(resolve)));

    it("keeps a URL as a URL and reports its image's violations", async () => {
      const { input, report } = await prepareInput({ prompt: "p", image: `${base}/wide.jpg` });
      assert.equal(input.image_urls[0], `${base}/wide.jpg`);
      assert.deepEqual(
        report.violations.map((v) => v.rule),
        ["width_pixels<=", "width/height<"],
      );
    });

    it("downloads and fits a URL image when asked, sending it as a data URI", async () => {
      const { input, report } = await prepareInput(
        { prompt: "p", image: `${base}/wide.jpg` },
        { fit: { ratio: "crop" } },
      );
      assert.match(input.image_urls[0], /^data:image\/jpeg;base64,/);
      assert.equal(report.valid, true, JSON.stringify(report.violations));
    });
  });
});
