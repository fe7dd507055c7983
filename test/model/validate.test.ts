import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { checkImageFacts, type ImageFacts } from "../../src/model/image-facts.js";
import { decimalFraction, imageLimits, parseValidationRule } from "../../src/model/image-rules.js";
import { codePointLength, validate } from "../../src/model/validate.js";
import { jpeg, png } from "../helpers/images.js";

const URL_OK = "https://cdn.example.com/photo.jpg";
const good = { prompt: "a cat walks", image_urls: [URL_OK] };
const facts = (over: Partial<ImageFacts> = {}): ImageFacts => ({
  format: "jpeg",
  width: 1280,
  height: 720,
  sizeBytes: 1_000_000,
  ...over,
});
const rulesOf = (facts: ImageFacts) => checkImageFacts(facts).violations.map((v) => v.rule);

describe("validate: fields", () => {
  it("accepts a minimal valid input (the image not inspected is a warning, not a violation)", () => {
    const report = validate(good);
    assert.equal(report.valid, true);
    assert.deepEqual(report.violations, []);
    assert.deepEqual(
      report.warnings.map((w) => w.rule),
      ["not_inspected"],
    );
  });

  it("accepts seed and frames within the schema", () => {
    for (const frames of [121, 241]) {
      for (const seed of [-1, 0, 42, Number.MAX_SAFE_INTEGER]) {
        assert.equal(
          validate({ ...good, seed, frames }, { image: facts() }).valid,
          true,
          `${seed} ${frames}`,
        );
      }
    }
  });

  it("reports every violation at once", () => {
    const report = validate({
      prompt: "x".repeat(801),
      image_urls: [URL_OK, URL_OK],
      seed: 1.5,
      frames: 120,
      extra: 1,
    });
    assert.equal(report.valid, false);
    assert.deepEqual(
      report.violations.map((v) => `${v.path}:${v.rule}`),
      ["prompt:maxLength", "image_urls:maxItems", "seed:type", "frames:enum"],
    );
    assert.deepEqual(
      report.warnings.map((w) => `${w.path}:${w.rule}`),
      ["extra:additionalProperties"],
    );
  });

  it("requires prompt and image_urls", () => {
    const report = validate({});
    assert.deepEqual(
      report.violations.map((v) => `${v.path}:${v.rule}`),
      ["prompt:required", "image_urls:required"],
    );
  });

  it("counts prompt length in code points: 800 emoji pass, 801 fail", () => {
    const emoji = "🎬";
    assert.equal(emoji.length, 2);
    assert.equal(validate({ ...good, prompt: emoji.repeat(800) }).valid, true);
    const over = validate({ ...good, prompt: emoji.repeat(801) });
    assert.deepEqual(over.violations[0], {
      path: "prompt",
      rule: "maxLength",
      limit: 800,
      actual: 801,
      message: "prompt is 801 characters long; the limit is 800",
    });
    assert.equal(validate({ ...good, prompt: "a".repeat(800) }).valid, true);
    assert.equal(codePointLength("a🎬b"), 3);
  });

  it("refuses an empty or whitespace-only prompt, naming the field and the rule", () => {
    for (const prompt of ["", "  ", "\t\n", "\u00a0\u3000"]) {
      const report = validate({ ...good, prompt });
      assert.equal(report.valid, false, JSON.stringify(prompt));
      assert.deepEqual(
        report.violations.map((v) => [v.path, v.rule, v.actual]),
        [["prompt", "blank", prompt]],
      );
      assert.match(
        report.violations[0]!.message,
        /^prompt must contain at least one non-whitespace character/,
      );
    }
    assert.match(validate({ ...good, prompt: "" }).violations[0]!.message, /an empty string/);
    assert.match(validate({ ...good, prompt: " \t" }).violations[0]!.message, /only whitespace: " \\t"/);
    assert.equal(validate({ ...good, prompt: " a " }).valid, true);
  });

  it("checks image_urls shape and items", () => {
    const rules = (value: unknown) =>
      validate({ ...good, image_urls: value }).violations.map((v) => `${v.path}:${v.rule}`);
    assert.deepEqual(rules([]), ["image_urls:minItems"]);
    assert.deepEqual(rules(URL_OK), ["image_urls:type"]);
    assert.match(validate({ ...good, image_urls: URL_OK }).violations[0]!.message, /one-element array/);
    assert.deepEqual(rules([42]), ["image_urls[0]:type"]);
    assert.deepEqual(rules(["./photo.jpg"]), ["image_urls[0]:format"]);
    assert.deepEqual(rules(["file:///tmp/photo.jpg"]), ["image_urls[0]:format"]);
    assert.deepEqual(rules(["ftp://x.test/a.jpg"]), ["image_urls[0]:format"]);
  });

  it("warns about URLs the service cannot fetch", () => {
    const warn = (url: string) => validate({ ...good, image_urls: [url] }).warnings.map((w) => w.rule);
    assert.ok(warn("http://example.com/a.jpg").includes("https"));
    assert.ok(warn("https://localhost:8080/a.jpg").includes("public_url"));
    assert.ok(warn("https://192.168.1.20/a.jpg").includes("public_url"));
    assert.ok(warn("https://user:pw@example.com/a.jpg").includes("public_url"));
    assert.ok(warn(` ${URL_OK}`).includes("whitespace"));
    assert.ok(!warn(URL_OK).includes("public_url"));
  });

  it("seed must be a safe integer", () => {
    const seed = (value: unknown) => validate({ ...good, seed: value }).violations.map((v) => v.rule);
    assert.deepEqual(seed(1.5), ["type"]);
    assert.deepEqual(seed("42"), ["type"]);
    assert.match(validate({ ...good, seed: "42" }).violations[0]!.message, /not a string/);
    assert.deepEqual(seed(null), ["type"]);
    assert.deepEqual(seed(Number.NaN), ["type"]);
    assert.deepEqual(seed(2 ** 53), ["safeInteger"]);
    assert.deepEqual(seed(-1), []);
  });

  it("frames must be 121 or 241", () => {
    const frames = (value: unknown) => validate({ ...good, frames: value }).violations;
    for (const bad of [120, 122, 240, 0, "121", null, 121.5])
      assert.equal(frames(bad).length, 1, String(bad));
    assert.deepEqual(frames(120)[0]!.limit, [121, 241]);
    assert.match(frames("241")[0]!.message, /not a string/);
  });

  it("rejects non-objects at the top", () => {
    for (const value of [null, [], "x", 1, true, undefined]) {
      const report = validate(value);
      assert.deepEqual(
        report.violations.map((v) => `${v.path}:${v.rule}`),
        ["input:type"],
      );
    }
  });
});

describe("validate: image rules (literally as the schema says)", () => {
  it("file size: 4,699,999 bytes passes, 4,700,000 fails (MB = 10^6 bytes, strict <)", () => {
    assert.deepEqual(rulesOf(facts({ sizeBytes: 4_699_999 })), []);
    const [v] = checkImageFacts(facts({ sizeBytes: 4_700_000 })).violations;
    assert.deepEqual(v, {
      path: "image_urls[0]",
      rule: "file_size_mb<",
      limit: 4.7,
      actual: 4.7,
      message: "File size must be less than 4.7 MB.",
    });
  });

  it("width and height: 321 passes, 320 fails; 4096 passes, 4097 fails", () => {
    assert.deepEqual(rulesOf(facts({ width: 321, height: 321 })), []);
    assert.deepEqual(rulesOf(facts({ width: 320, height: 500 })), ["width_pixels>"]);
    assert.deepEqual(rulesOf(facts({ width: 500, height: 320 })), ["height_pixels>"]);
    assert.deepEqual(rulesOf(facts({ width: 4096, height: 4096 })), []);
    assert.deepEqual(rulesOf(facts({ width: 4097, height: 2000 })), ["width_pixels<="]);
    assert.deepEqual(rulesOf(facts({ width: 2000, height: 4097 })), ["height_pixels<="]);
    assert.equal(
      checkImageFacts(facts({ width: 320, height: 500 })).violations[0]!.message,
      "The shortest side must be at least 320 pixels.",
    );
    assert.equal(
      checkImageFacts(facts({ width: 4097, height: 2000 })).violations[0]!.message,
      "Maximum resolution is 4096x4096.",
    );
  });

  it("ratio: 2.99 passes, exactly 3 fails; 0.331 passes, exactly 0.33 fails", () => {
    assert.deepEqual(rulesOf(facts({ width: 2990, height: 1000 })), []);
    assert.deepEqual(rulesOf(facts({ width: 3000, height: 1000 })), ["width/height<"]);
    assert.deepEqual(rulesOf(facts({ width: 963, height: 321 })), ["width/height<"]);
    assert.deepEqual(rulesOf(facts({ width: 331, height: 1000 })), []);
    assert.deepEqual(rulesOf(facts({ width: 330, height: 1000 })), ["width/height>"]);
    // 1/3 = 0.333 > 0.33: the bounds are not reciprocals, and the rule is applied as written.
    assert.deepEqual(rulesOf(facts({ width: 1000, height: 3000 })), []);
    assert.deepEqual(rulesOf(facts({ width: 1000, height: 3030 })), []);
    assert.deepEqual(rulesOf(facts({ width: 1000, height: 3031 })), ["width/height>"]);
    assert.deepEqual(rulesOf(facts({ width: 990, height: 3000 })), ["width/height>"]);
  });

  it("ratio comparisons are exact, not floating point", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 5000 }), (w, h) => {
        const rules = rulesOf(facts({ width: w, height: h }));
        assert.equal(rules.includes("width/height<"), w * 100 >= 300 * h, `${w}x${h}`);
        assert.equal(rules.includes("width/height>"), w * 100 <= 33 * h, `${w}x${h}`);
      }),
      { numRuns: 3000 },
    );
  });

  it("only JPEG and PNG, whatever else the image is", () => {
    for (const format of ["webp", "gif", "heic", "avif", "tiff", "bmp", "svg"] as const) {
      const report = checkImageFacts(facts({ format }));
      assert.deepEqual(
        report.violations.map((v) => v.rule),
        ["format"],
        format,
      );
      assert.match(report.violations[0]!.message, /^Upload JPEG or PNG only\./);
    }
    assert.deepEqual(rulesOf(facts({ format: "png" })), []);
    assert.deepEqual(rulesOf(facts({ format: "webp", width: 5000, height: 100 })), [
      "format",
      "width_pixels<=",
      "height_pixels>",
      "width/height<",
    ]);
  });

  it("lists all broken image rules together", () => {
    assert.deepEqual(rulesOf(facts({ format: "png", width: 5000, height: 300, sizeBytes: 9_000_000 })), [
      "file_size_mb<",
      "width_pixels<=",
      "height_pixels>",
      "width/height<",
    ]);
  });

  it("says what it could not check instead of passing silently", () => {
    const report = checkImageFacts({ format: "jpeg", width: 800, height: 600 });
    assert.equal(report.valid, true);
    assert.deepEqual(
      report.warnings.map((w) => `${w.rule}:${w.limit}`),
      ["not_checked:file_size_mb"],
    );
  });

  it("warns when EXIF orientation turns the image, and checks the stored size", () => {
    const report = checkImageFacts(facts({ width: 4000, height: 1000, orientation: 6 }));
    assert.deepEqual(
      report.violations.map((v) => v.rule),
      ["width/height<"],
    );
    assert.equal(report.warnings[0]!.rule, "exif_orientation");
    assert.match(report.warnings[0]!.message, /shown rotated as 1000x4000; the stored 4000x1000/);
    assert.equal(checkImageFacts(facts({ orientation: 3 })).warnings.length, 0);
  });

  it("uses the facts given to validate, and inspects data URIs by itself", async () => {
    const bad = validate(good, { image: facts({ width: 300, height: 500 }) });
    assert.deepEqual(
      bad.violations.map((v) => v.rule),
      ["width_pixels>"],
    );
    assert.ok(!bad.warnings.some((w) => w.rule === "not_inspected"));

    const small = await jpeg(300, 300);
    const dataUri = `data:image/jpeg;base64,${small.toString("base64")}`;
    const report = validate({ ...good, image_urls: [dataUri] });
    assert.deepEqual(
      report.violations.map((v) => v.rule),
      ["width_pixels>", "height_pixels>"],
    );

    const pngBytes = await png(400, 400);
    const mislabelled = validate({
      ...good,
      image_urls: [`data:image/jpeg;base64,${pngBytes.toString("base64")}`],
    });
    assert.equal(mislabelled.valid, true);
    assert.deepEqual(
      mislabelled.warnings.map((w) => w.rule),
      ["mime"],
    );

    const truncated = validate({
      ...good,
      image_urls: [`data:image/jpeg;base64,${small.subarray(0, 60).toString("base64")}`],
    });
    assert.deepEqual(
      truncated.violations.map((v) => v.rule),
      ["truncated"],
    );
    assert.deepEqual(
      validate({ ...good, image_urls: ["data:image/png;base64,%%%"] }).violations.map((v) => v.rule),
      ["format"],
    );
  });
});

describe("validate: robustness", () => {
  it("never throws, on any value", () => {
    fc.assert(
      fc.property(
        fc.anything({
          withNullPrototype: true,
          withBoxedValues: true,
          withSparseArray: true,
          withBigInt: true,
        }),
        (value) => {
          const report = validate(value);
          assert.equal(report.valid, report.violations.length === 0);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("never throws on JSON values shaped like the input, nor on odd facts", () => {
    const arbitraryFacts = fc.record(
      {
        format: fc.oneof(fc.constantFrom("jpeg", "png", "webp", "html"), fc.string()),
        width: fc.oneof(fc.integer(), fc.double(), fc.constant(undefined)),
        height: fc.oneof(fc.integer(), fc.double(), fc.constant(undefined)),
        sizeBytes: fc.oneof(fc.integer(), fc.double(), fc.constant(undefined)),
        orientation: fc.oneof(fc.integer({ min: -2, max: 12 }), fc.constant(undefined)),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(
        fc.record(
          {
            prompt: fc.jsonValue(),
            image_urls: fc.oneof(fc.jsonValue(), fc.array(fc.string())),
            seed: fc.jsonValue(),
            frames: fc.jsonValue(),
          },
          { requiredKeys: [] },
        ),
        arbitraryFacts,
        (input, image) => {
          const report = validate(input, { image: image as ImageFacts });
          assert.equal(report.valid, report.violations.length === 0);
          for (const v of [...report.violations, ...report.warnings])
            assert.equal(typeof v.message, "string");
        },
      ),
      { numRuns: 2000 },
    );
    fc.assert(fc.property(fc.jsonValue(), (value) => void validate(value)));
  });

  it("valid inputs built from the rules are accepted", () => {
    fc.assert(
      fc.property(
        fc
          .string({ minLength: 1, maxLength: 800, unit: "grapheme" })
          .filter((s) => codePointLength(s) <= 800 && s.trim() !== ""),
        fc.option(fc.constantFrom(121, 241), { nil: undefined }),
        fc.option(fc.maxSafeInteger(), { nil: undefined }),
        fc.integer({ min: 321, max: 4096 }),
        fc.integer({ min: 321, max: 4096 }),
        fc.integer({ min: 0, max: 4_699_999 }),
        (prompt, frames, seed, width, height, sizeBytes) => {
          fc.pre(width * 100 < 300 * height && width * 100 > 33 * height);
          const input = {
            prompt,
            image_urls: [URL_OK],
            ...(frames ? { frames } : {}),
            ...(seed === undefined ? {} : { seed }),
          };
          const report = validate(input, { image: { format: "png", width, height, sizeBytes } });
          assert.deepEqual(report.violations, []);
        },
      ),
    );
  });
});

describe("rule parsing", () => {
  it("parses the schema's rule strings", () => {
    assert.deepEqual(parseValidationRule("file_size_mb<"), { metric: "file_size_mb", operator: "<" });
    assert.deepEqual(parseValidationRule("width/height>"), { metric: "width/height", operator: ">" });
    assert.deepEqual(parseValidationRule("height_pixels<="), { metric: "height_pixels", operator: "<=" });
    assert.equal(parseValidationRule("duration_seconds<"), undefined);
  });

  it("turns decimal limits into exact fractions", () => {
    assert.deepEqual(decimalFraction(4.7), [47n, 10n]);
    assert.deepEqual(decimalFraction(0.33), [33n, 100n]);
    assert.deepEqual(decimalFraction(3), [3n, 1n]);
    assert.equal(decimalFraction(Number.NaN), undefined);
  });

  it("derives the numeric limits from the schema", () => {
    assert.deepEqual(imageLimits(), {
      maxBytes: 4_699_999,
      maxWidth: 4096,
      maxHeight: 4096,
      minWidth: 321,
      minHeight: 321,
      maxRatio: [3n, 1n],
      minRatio: [33n, 100n],
    });
  });
});
