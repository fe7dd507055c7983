import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import fc from "fast-check";
import sharp from "sharp";
import { dimensionsComply, fitImage, ImageFitError, planFit } from "../../src/image/fit.js";
import { checkImageFacts } from "../../src/model/image-facts.js";
import { sniffImage } from "../../src/model/image-header.js";
import { imageLimits } from "../../src/model/image-rules.js";
import { damagedImages, fixtures, hugePng, jpeg, noise, png } from "../helpers/images.js";

/** The output must pass every rule, judged from its own bytes. */
function assertCompliant(bytes: Uint8Array) {
  const header = sniffImage(bytes, { final: true });
  const report = checkImageFacts({ ...header, sizeBytes: bytes.length });
  assert.deepEqual(report.violations, [], JSON.stringify(header));
  return header;
}

describe("planFit (pure geometry)", () => {
  it("keeps compliant sizes", () => {
    assert.deepEqual(planFit(1280, 720), { width: 1280, height: 720, mode: "keep" });
  });

  it("pads to a ratio strictly inside the bounds, crops when asked", () => {
    assert.deepEqual(planFit(3000, 1000), { width: 3000, height: 1001, mode: "pad" });
    assert.deepEqual(planFit(3000, 1000, "crop"), { width: 2999, height: 1000, mode: "crop" });
    assert.deepEqual(planFit(330, 1000), { width: 331, height: 1000, mode: "pad" });
    assert.deepEqual(planFit(330, 1000, "crop"), { width: 330, height: 999, mode: "crop" });
  });

  it("scales down past 4096 and up past 320", () => {
    assert.deepEqual(planFit(8192, 4096), { width: 4096, height: 2048, mode: "scale" });
    assert.deepEqual(planFit(320, 640), { width: 321, height: 642, mode: "scale" });
    assert.deepEqual(planFit(1, 1), { width: 321, height: 321, mode: "scale" });
  });

  it("always lands inside every dimension rule", () => {
    const limits = imageLimits();
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 30_000 }),
        fc.integer({ min: 1, max: 30_000 }),
        fc.constantFrom("pad" as const, "crop" as const),
        (w, h, mode) => {
          const plan = planFit(w, h, mode);
          assert.ok(
            dimensionsComply(plan.width, plan.height, limits),
            `${w}x${h} ${mode} → ${plan.width}x${plan.height}`,
          );
          const facts = checkImageFacts({
            format: "jpeg",
            width: plan.width,
            height: plan.height,
            sizeBytes: 1,
          });
          assert.deepEqual(facts.violations, []);
        },
      ),
      { numRuns: 5000 },
    );
  });
});

describe("fitImage", () => {
  it("passes a compliant JPEG and PNG through untouched (same bytes)", async () => {
    const f = await fixtures();
    for (const name of ["ok.jpg", "ok.png", "size-4699999.jpg", "16bit.png", "exif-rotated.jpg"]) {
      const bytes = new Uint8Array(readFileSync(f.path(name)));
      const result = await fitImage(bytes);
      assert.equal(result.changed, false, name);
      assert.equal(result.bytes, bytes, name);
      assert.deepEqual(result.changes, []);
    }
  });

  it("converts WebP, GIF and TIFF to JPEG", async () => {
    const f = await fixtures();
    for (const name of ["webp-named.jpg", "photo.gif", "photo.tiff"]) {
      const result = await fitImage(readFileSync(f.path(name)));
      assert.equal(result.changed, true);
      assert.equal(result.format, "jpeg", name);
      assert.deepEqual([result.width, result.height], [800, 600]);
      assert.match(result.changes.join("; "), /converted .* to JPEG/);
      assertCompliant(result.bytes);
    }
  });

  it("keeps a transparent image as PNG", async () => {
    const webp = await sharp(await png(500, 2000, { alpha: true }))
      .webp({ lossless: true })
      .toBuffer();
    const result = await fitImage(webp);
    assert.equal(result.format, "png");
    const header = assertCompliant(result.bytes);
    assert.equal(header.hasAlpha, true);
  });

  it("scales 4097 px down to 4096 and 320 px up to 321", async () => {
    const f = await fixtures();
    const wide = await fitImage(readFileSync(f.path("w4097.jpg")));
    assert.deepEqual([wide.width, wide.height], [4096, 1500]);
    const tall = await fitImage(readFileSync(f.path("h4097.png")));
    assert.deepEqual([tall.format, tall.width, tall.height], ["png", 1500, 4096]);
    const narrow = await fitImage(readFileSync(f.path("w320.jpg")));
    assert.deepEqual([narrow.width, narrow.height], [321, 502]); // 500 * 321/320, rounded
    for (const r of [wide, tall, narrow]) assertCompliant(r.bytes);
  });

  it("pads a 3:1 image with a blurred fill by default, or a colour, or crops", async () => {
    const f = await fixtures();
    const bytes = readFileSync(f.path("ratio-3.0.jpg"));
    const blurred = await fitImage(bytes);
    assert.deepEqual([blurred.width, blurred.height], [3000, 1001]);
    assert.match(blurred.changes.join("; "), /padded 3000x1000 → 3000x1001 with a blurred fill/);
    const black = await fitImage(bytes, { background: "#000000" });
    assert.match(black.changes.join("; "), /with #000000/);
    const cropped = await fitImage(bytes, { ratio: "crop" });
    assert.deepEqual([cropped.width, cropped.height], [2999, 1000]);
    for (const r of [blurred, black, cropped]) assertCompliant(r.bytes);
  });

  it("pads a panorama visibly: the image is in the middle, the fill above and below", async () => {
    const strip = await sharp({ create: { width: 1200, height: 200, channels: 3, background: "#ff0000" } })
      .png()
      .toBuffer();
    const result = await fitImage(strip, { background: "#0000ff" });
    assert.deepEqual([result.width, result.height], [1200, 401]);
    const { data, info } = await sharp(result.bytes).raw().toBuffer({ resolveWithObject: true });
    const pixel = (x: number, y: number) => [
      ...data.subarray((y * info.width + x) * info.channels, (y * info.width + x) * info.channels + 3),
    ];
    assert.deepEqual(pixel(600, 5), [0, 0, 255]);
    assert.deepEqual(pixel(600, 200), [255, 0, 0]);
  });

  it("applies EXIF orientation when it has to change the image anyway", async () => {
    const rotated = await jpeg(5000, 1000, { orientation: 6 }); // shown as 1000x5000
    const result = await fitImage(rotated);
    assert.ok(result.height > result.width, `${result.width}x${result.height}`);
    assert.equal(result.height, 4096);
    assert.match(result.changes.join("; "), /EXIF orientation 6/);
    const header = assertCompliant(result.bytes);
    assert.equal(header.orientation, undefined);
  });

  it("re-encodes until under 4.7 MB: 4,700,000 bytes fails, the result passes", async () => {
    const f = await fixtures();
    const result = await fitImage(readFileSync(f.path("size-4700000.jpg")));
    assert.ok(result.bytes.length < 4_700_000);
    assertCompliant(result.bytes);
    const heavy = await noise(3000, 2500, "png"); // about 22 MB of incompressible PNG
    assert.ok(heavy.length > 4_700_000);
    const fitted = await fitImage(heavy, { format: "jpeg" });
    assert.ok(fitted.bytes.length < 4_700_000, `${fitted.bytes.length}`);
    assert.match(fitted.changes.join("; "), /JPEG quality/);
    assertCompliant(fitted.bytes);
  });

  it("converts to PNG when asked, even a compliant JPEG", async () => {
    const result = await fitImage(await jpeg(800, 600), { format: "png" });
    assert.equal(result.format, "png");
    assert.equal(result.changed, true);
    assertCompliant(result.bytes);
  });

  it("names the pixel limit and the pixel count of an image too large to decode (not 'cannot decode PNG')", async () => {
    await assert.rejects(fitImage(hugePng(30_000, 30_000)), (e: unknown) => {
      assert.ok(e instanceof ImageFitError);
      assert.equal(e.code, "too_many_pixels");
      assert.match(
        e.message,
        /^the PNG is 30000x30000 \(900,000,000 pixels\), more than the 268,402,689 pixels \(16383x16383\) this tool decodes/,
      );
      return true;
    });
  });

  it("refuses to re-encode a damaged image, or to pass one through", async () => {
    const damaged = await damagedImages();
    for (const bytes of [damaged.halfJpeg, damaged.garbagePngBadCrc]) {
      for (const options of [{}, { format: "png" as const }]) {
        await assert.rejects(
          fitImage(bytes, options),
          (e: unknown) =>
            e instanceof ImageFitError &&
            e.code === "decode_failed" &&
            /does not decode fully/.test(e.message),
        );
      }
    }
  });

  it("explains what it cannot read", async () => {
    const bmp = Buffer.alloc(58);
    bmp.write("BM", 0, "latin1");
    bmp.writeUInt32LE(58, 2);
    bmp.writeUInt32LE(54, 10);
    bmp.writeUInt32LE(40, 14);
    bmp.writeInt32LE(1, 18);
    bmp.writeInt32LE(1, 22);
    bmp.writeUInt16LE(1, 26);
    bmp.writeUInt16LE(24, 28);
    await assert.rejects(
      fitImage(bmp),
      (e: unknown) => e instanceof ImageFitError && e.code === "unsupported_format" && /BMP/.test(e.message),
    );
    await assert.rejects(
      fitImage(new TextEncoder().encode("<!doctype html><html>")),
      (e: unknown) => e instanceof ImageFitError && e.code === "unsupported_format",
    );
    await assert.rejects(
      fitImage(await jpeg(400, 2000), { background: "not-a-colour" }),
      (e: unknown) => e instanceof ImageFitError && e.code === "bad_option",
    );
  });
});
