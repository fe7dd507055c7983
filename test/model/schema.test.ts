import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { imageValidations, inputSchema, outputSchema } from "../../src/model/schema.js";

// The contract's copy lives next to the repository (../shared/model from the repo root).
const SHARED = join(process.cwd(), "..", "shared", "model");

describe("shipped schemas", () => {
  it("are identical to the contract's copies", {
    skip: !existsSync(SHARED) && "no ../shared/model here",
  }, () => {
    const read = (name: string) => JSON.parse(readFileSync(join(SHARED, name), "utf8"));
    assert.deepEqual(inputSchema, read("dreamina-3-0-pro-image-to-video.input.schema.json"));
    assert.deepEqual(outputSchema, read("dreamina-3-0-pro-image-to-video.output.schema.json"));
  });

  it("expose the seven image rules in the schema's order", () => {
    assert.deepEqual(
      imageValidations.map((v) => `${v.validation_rule}${v.validation_value}`),
      [
        "file_size_mb<4.7",
        "width_pixels<=4096",
        "height_pixels<=4096",
        "width_pixels>320",
        "height_pixels>320",
        "width/height<3",
        "width/height>0.33",
      ],
    );
    assert.equal(imageValidations, inputSchema.properties.image_urls.validations);
  });
});
