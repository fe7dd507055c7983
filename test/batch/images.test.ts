// The batch and its images: a damaged image is refused at validation (every row sending it),
// before anything is paid; each distinct image is probed and decoded once per run however many
// rows send it; a missing image is one clear problem, not two.

import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parseManifest } from "../../src/batch/manifest.js";
import { validateRows } from "../../src/batch/validate-rows.js";
import { decodeStats } from "../../src/image/decode-check.js";
import { damagedImages } from "../helpers/images.js";
import * as h from "./helpers.js";

let ws: h.Workspace;
before(async () => {
  ws = await h.workspace(0);
  const damaged = await damagedImages();
  await writeFile(join(ws.dir, "images/half.jpg"), damaged.halfJpeg);
  await writeFile(join(ws.dir, "images/garbage.png"), damaged.garbagePngBadCrc);
});
after(async () => {
  await ws.cleanup();
});

/** Two images no other test of this process has decoded. */
async function freshImages(tag: number): Promise<string[]> {
  const names = [`images/fresh-${tag}-a.jpg`, `images/fresh-${tag}-b.jpg`];
  await writeFile(join(ws.dir, names[0]!), await h.gradient(500, 400, tag));
  await writeFile(join(ws.dir, names[1]!), await h.gradient(400, 500, tag + 1));
  return names;
}

describe("batch: images", () => {
  test("damaged images are refused at validation, every row that sends them, and nothing is submitted", async () => {
    const [good] = await freshImages(1);
    const sb = await h.sandbox();
    const journal = h.journal(ws.dir);
    try {
      const path = await h.writeJsonl(join(ws.dir, "damaged.jsonl"), [
        { image: good, prompt: "fine", seed: 1 },
        { image: "images/half.jpg", prompt: "cut in half", seed: 1 },
        { image: "images/garbage.png", prompt: "garbage pixels", seed: 1 },
        { image: "images/half.jpg", prompt: "the same file again", seed: 2 },
      ]);
      const { events, summary } = await h.drive(path, { sb, journal, outDir: join(ws.dir, "out-damaged") });
      assert.equal(summary.exitCode, 65);
      const invalid = events.flatMap((e) => (e.type === "row-invalid" ? [e] : []));
      assert.deepEqual(invalid.map((e) => e.line).sort(), [2, 3, 4]);
      for (const e of invalid) {
        assert.deepEqual(
          e.problems.map((p) => `${p.field}:${p.rule}`),
          ["image_urls[0]:decode"],
        );
      }
      assert.match(invalid.find((e) => e.line === 2)!.problems[0]!.message, /JPEG image data stops short/);
      assert.match(invalid.find((e) => e.line === 3)!.problems[0]!.message, /fails its CRC check/);
      assert.equal(h.submitCount(sb), 0);
    } finally {
      await journal.close();
      await sb.close();
    }
  });

  test("1,000 rows sharing 2 images: each image probed and decoded once", async () => {
    const names = await freshImages(3);
    const text = Array.from({ length: 1000 }, (_, i) =>
      JSON.stringify({ image: names[i % 2], prompt: `row ${i}`, seed: i }),
    ).join("\n");
    const { rows } = parseManifest(text, { baseDir: ws.dir, format: "jsonl" });
    const before = decodeStats();
    const results = await validateRows(rows);
    assert.ok(results.every((r) => r.valid));
    assert.equal(decodeStats().decoded - before.decoded, 2);
  });

  test("a whole run (validation, then submits) decodes each distinct image once", async () => {
    const names = await freshImages(5);
    const sb = await h.sandbox();
    const journal = h.journal(ws.dir);
    try {
      const path = await h.writeJsonl(
        join(ws.dir, "shared.jsonl"),
        Array.from({ length: 12 }, (_, i) => ({
          image: names[i % 2],
          prompt: `shot ${i}`,
          seed: 1 + (i % 2),
        })),
      );
      const before = decodeStats();
      const { summary } = await h.drive(path, { sb, journal, outDir: join(ws.dir, "out-shared") });
      assert.equal(summary.exitCode, 0);
      assert.equal(h.submitCount(sb), 12);
      assert.equal(decodeStats().decoded - before.decoded, 2);
    } finally {
      await journal.close();
      await sb.close();
    }
  });

  test("a missing image is one problem that names it, not a second 'truncated: 0 bytes'", async () => {
    const { rows } = parseManifest('{"image": "images/nope.jpg", "prompt": "p"}', {
      baseDir: ws.dir,
      format: "jsonl",
    });
    const [result] = await validateRows(rows);
    assert.equal(result?.valid, false);
    assert.deepEqual(
      result?.violations.map((v) => v.rule),
      ["image:not_found"],
    );
    assert.match(result?.violations[0]?.message ?? "", /images\/nope\.jpg: no such file/);
    assert.deepEqual(result?.warnings, []);
  });
});
