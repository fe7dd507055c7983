// A local image is decoded in full before it may be sent: real images damaged in the test (a
// JPEG cut in half, a PNG with garbage IDAT data with and without a matching CRC, a PNG cut in
// half) pass the header probe but are refused by prepareInput, whatever form they come in,
// with a violation that says what is wrong. A URL is only probed, never downloaded for this.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { checkDecodes, decodeStats, MAX_DECODE_PIXELS } from "../../src/image/decode-check.js";
import { checkImageContent, prepareInput, toDataUri } from "../../src/image/prepare-input.js";
import { probeImage } from "../../src/image/probe.js";
import { damagedImages, hugePng, jpeg } from "../helpers/images.js";

type Damaged = Awaited<ReturnType<typeof damagedImages>>;

const EXPECTED: Record<string, RegExp> = {
  halfJpeg:
    /JPEG image data stops short .* no end-of-image marker: it was cut off \(decoder: .*premature end/,
  garbagePngBadCrc: /the IDAT chunk at byte \d+ fails its CRC check: the PNG is damaged/,
  garbagePngGoodCrc: /the PNG's compressed pixel data \(IDAT\) is corrupt/,
  halfPng: /the data ends inside the IDAT chunk at byte \d+ .*: the PNG is truncated/,
};

describe("local images are decoded in full before they may be sent", () => {
  let images: Damaged;
  let dir: string;
  let server: Server;
  let base: string;
  const served: string[] = [];

  before(async () => {
    images = await damagedImages();
    dir = mkdtempSync(join(tmpdir(), "dreamina-decode-"));
    for (const [name, bytes] of Object.entries(images)) writeFileSync(join(dir, `${name}.img`), bytes);
    server = createServer((req, res) => {
      served.push(req.headers.range ?? "whole");
      const body = images.halfJpeg;
      const match = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
      if (!match) {
        res.writeHead(200, { "content-type": "image/jpeg", "content-length": body.length });
        return res.end(body);
      }
      const start = Number(match[1]);
      const end = Math.min(Number(match[2]), body.length - 1);
      res.writeHead(206, {
        "content-type": "image/jpeg",
        "content-range": `bytes ${start}-${end}/${body.length}`,
        "content-length": end - start + 1,
      });
      res.end(body.subarray(start, end + 1));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it("every damaged image has a header the probe accepts (only decoding tells)", async () => {
    for (const name of Object.keys(EXPECTED)) {
      const probe = await probeImage(images[name as keyof Damaged]);
      assert.ok(probe.width && probe.height, name);
    }
  });

  it("prepareInput refuses each one from a file, bytes, a Blob and a data URI, saying what is wrong", async () => {
    for (const [name, expected] of Object.entries(EXPECTED)) {
      const bytes = images[name as keyof Damaged];
      const format = name.includes("Png") ? "png" : "jpeg";
      const sources: (string | Uint8Array | Blob)[] = [
        join(dir, `${name}.img`),
        new Uint8Array(bytes),
        new Blob([new Uint8Array(bytes)]),
        toDataUri(bytes, format),
      ];
      for (const image of sources) {
        const { report } = await prepareInput({ prompt: "a slow pan", image });
        const what = `${name} as ${typeof image === "string" ? image.slice(0, 20) : image.constructor.name}`;
        assert.equal(report.valid, false, what);
        assert.deepEqual(
          report.violations.map((v) => `${v.path}:${v.rule}`),
          ["image_urls[0]:decode"],
          what,
        );
        assert.match(report.violations[0]!.message, /^the image does not decode fully: /, what);
        assert.match(report.violations[0]!.message, expected, what);
      }
    }
  });

  it("intact images pass, and fit refuses to re-encode a damaged one", async () => {
    for (const image of [images.intactJpeg, images.intactPng]) {
      const { report } = await prepareInput({ prompt: "p", image: new Uint8Array(image) });
      assert.equal(report.valid, true, JSON.stringify(report.violations));
    }
    const fitted = await prepareInput({ prompt: "p", image: join(dir, "halfJpeg.img") }, { fit: true });
    assert.equal(fitted.fitted, undefined);
    assert.deepEqual(
      fitted.report.violations.map((v) => v.rule),
      ["decode"],
    );
  });

  it("a URL is only probed (Range on its header), not downloaded to be decoded", async () => {
    served.length = 0;
    const { report, image } = await prepareInput({ prompt: "p", image: `${base}/half.jpg` });
    assert.equal(report.valid, true, JSON.stringify(report.violations));
    assert.ok(image.bytesRead <= 64 * 1024);
    assert.deepEqual(served, ["bytes=0-65535"]);
    assert.deepEqual(await checkImageContent(`${base}/half.jpg`, image), []);
  });

  it("an image the rules refuse anyway is not decoded", async () => {
    const before = decodeStats();
    const probe = await probeImage(join(dir, "halfPng.img"));
    const tooSmall = { ...probe, width: 100 };
    assert.deepEqual(await checkImageContent(join(dir, "halfPng.img"), tooSmall), []);
    assert.equal(decodeStats().decoded, before.decoded);
  });

  it("the same bytes are decoded once per process, however many times they are checked", async () => {
    const bytes = new Uint8Array(await jpeg(777, 555)); // never checked before in this process
    const before = decodeStats();
    const verdicts = await Promise.all(Array.from({ length: 50 }, () => checkDecodes(bytes)));
    assert.ok(verdicts.every((v) => v.ok));
    const after = decodeStats();
    assert.equal(after.decoded - before.decoded, 1);
    assert.equal(after.remembered - before.remembered, 49);
  });

  it("names the pixel limit and the image's pixel count when an image is too large to decode", async () => {
    const check = await checkDecodes(hugePng(30_000, 30_000));
    assert.equal(check.ok, false);
    assert.ok(!check.ok && check.reason === "pixels");
    assert.equal(check.ok === false && check.pixels, 900_000_000);
    assert.match(
      check.ok === false ? check.problem : "",
      /the PNG is 30000x30000 \(900,000,000 pixels\), more than the 268,402,689 pixels \(16383x16383\)/,
    );
    assert.equal(MAX_DECODE_PIXELS, 268_402_689);
  });
});
