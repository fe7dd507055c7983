import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  DEFAULT_FRAMES,
  DEFAULT_SEED,
  EXAMPLE_IMAGE_URL,
  estimateCostUsd,
  FRAMES_VALUES,
  MODEL_ID,
  PROMPT_MAX_LENGTH,
  parseDataUri,
  videoSeconds,
  withDefaults,
} from "../../src/model/input.js";
import { inputSchema } from "../../src/model/schema.js";

describe("model input", () => {
  it("names the model and takes its defaults from the schema", () => {
    assert.equal(MODEL_ID, "bytedance/dreamina-3-0/pro/image-to-video");
    assert.equal(DEFAULT_SEED, -1);
    assert.equal(DEFAULT_FRAMES, 121);
    assert.deepEqual(FRAMES_VALUES, [121, 241]);
    assert.equal(PROMPT_MAX_LENGTH, 800);
    assert.equal(DEFAULT_SEED, inputSchema.properties.seed.default);
    assert.match(EXAMPLE_IMAGE_URL, /^https:\/\/.+\.jpeg$/);
  });

  it("withDefaults fills seed and frames only when absent", () => {
    const base = { prompt: "p", image_urls: ["https://x.test/a.jpg"] as [string] };
    assert.deepEqual(withDefaults(base), { ...base, seed: -1, frames: 121 });
    assert.deepEqual(withDefaults({ ...base, seed: 0, frames: 241 }), { ...base, seed: 0, frames: 241 });
  });

  it("videoSeconds: 121 frames is 5 s, 241 is 10 s", () => {
    assert.equal(videoSeconds(121), 5);
    assert.equal(videoSeconds(241), 10);
    assert.equal(videoSeconds(), 5);
    assert.equal(videoSeconds(0), 0);
    assert.equal(videoSeconds(Number.NaN), 0);
  });

  it("estimateCostUsd: per second when the unit is seconds, per request otherwise", () => {
    assert.equal(estimateCostUsd({ frames: 121, basePriceUsd: 0.1, priceUnit: "second" }), 0.5);
    assert.equal(estimateCostUsd({ frames: 241, basePriceUsd: 0.1, priceUnit: "Second" }), 1);
    assert.equal(estimateCostUsd({ frames: 241, basePriceUsd: 0.03, priceUnit: "seconds" }), 0.3);
    assert.equal(estimateCostUsd({ frames: 241, basePriceUsd: 0.5, priceUnit: "request" }), 0.5);
    assert.equal(estimateCostUsd({ basePriceUsd: 0.5 }), 0.5);
    assert.throws(() => estimateCostUsd({ basePriceUsd: Number.NaN }), RangeError);
    assert.throws(() => estimateCostUsd({ basePriceUsd: -1 }), RangeError);
  });

  it("estimateCostUsd: per-second cost of 241 frames is twice that of 121", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100_000 }), (cents) => {
        const price = cents / 1000;
        const short = estimateCostUsd({ frames: 121, basePriceUsd: price, priceUnit: "second" });
        const long = estimateCostUsd({ frames: 241, basePriceUsd: price, priceUnit: "second" });
        assert.ok(Math.abs(long - 2 * short) < 1e-5);
      }),
    );
  });

  it("parseDataUri decodes base64 and percent-encoded payloads, refuses broken ones", () => {
    const png = parseDataUri("data:image/PNG;base64,iVBORw0KGgo=");
    assert.equal(png?.mime, "image/png");
    assert.deepEqual([...(png?.bytes ?? [])], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const text = parseDataUri("data:,a%FFb");
    assert.deepEqual([...(text?.bytes ?? [])], [0x61, 0xff, 0x62]);
    assert.equal(text?.base64, false);
    assert.equal(parseDataUri("data:image/png;base64,@@@@"), undefined);
    assert.equal(parseDataUri("data:image/png;base64"), undefined);
    assert.equal(parseDataUri("https://x.test/a.png"), undefined);
  });

  it("parseDataUri round-trips any bytes through base64", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const uri = `data:image/jpeg;base64,${Buffer.from(bytes).toString("base64")}`;
        assert.deepEqual(parseDataUri(uri)?.bytes, bytes);
      }),
    );
  });
});
