// Each image of a batch is read, sniffed and decoded once, from validation to the last
// submit, however many rows send it: counted through a real run against the sandbox (the image
// module's counters: header reads, whole reads, decode checks, sharp decodes, rule checks).
// A file changed between two runs is checked again: the cache never sends a stale image.

import assert from "node:assert/strict";
import { symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ImageCache, prepareRowInput } from "../../src/batch/input.js";
import { parseManifest } from "../../src/batch/manifest.js";
import { validateRows } from "../../src/batch/validate-rows.js";
import { imageStats, resetImageStats } from "../../src/image/stats.js";
import { PreflightError } from "../../src/run/errors.js";
import { noise } from "../helpers/images.js";
import * as h from "./helpers.js";

let ws: h.Workspace;
before(async () => {
  ws = await h.workspace(0);
  // One over the probe's 64 KiB first read (header, then the rest of the file), one under it.
  await writeFile(join(ws.dir, "images/big.jpg"), await noise(640, 480));
  await writeFile(join(ws.dir, "images/small.jpg"), await h.gradient(480, 360, 41));
});
after(async () => {
  await ws.cleanup();
});

describe("batch: each image checked once", () => {
  test("100 rows over 2 images, validated and submitted: 2 header reads, 2 whole reads, 2 decodes", async () => {
    const sb = await h.sandbox();
    const journal = h.journal(ws.dir);
    try {
      const path = await h.writeJsonl(
        join(ws.dir, "once.jsonl"),
        Array.from({ length: 100 }, (_, i) => ({
          image: i % 2 ? "images/big.jpg" : "images/small.jpg",
          prompt: `shot ${i}`,
          seed: 1 + (i % 2),
        })),
      );
      resetImageStats();
      const { summary } = await h.drive(path, { sb, journal, outDir: join(ws.dir, "out-once") });
      assert.equal(summary.exitCode, 0);
      assert.equal(h.submitCount(sb), 100);
      assert.deepEqual(imageStats(), {
        checks: 2,
        headerReads: 2,
        wholeReads: 2,
        decodeChecks: 2,
        decodes: 2,
      });
    } finally {
      journal.close();
      await sb.close();
    }
  });

  test("validation then submits share one cache; a changed file is checked again, a refused one is never sent", async () => {
    const name = "images/changing.jpg";
    await writeFile(join(ws.dir, name), await h.gradient(480, 360, 42));
    const { rows } = parseManifest(
      Array.from({ length: 20 }, (_, i) => JSON.stringify({ image: name, prompt: `p${i}` })).join("\n"),
      { baseDir: ws.dir, format: "jsonl" },
    );
    const images = new ImageCache();
    resetImageStats();
    assert.ok((await validateRows(rows, { images })).every((r) => r.valid));
    const inputs = await Promise.all(rows.map((row) => prepareRowInput(row, { cache: images })));
    assert.ok(inputs.every((input) => Object.is(input.image_urls[0], inputs[0]!.image_urls[0])));
    assert.deepEqual(imageStats(), { checks: 1, headerReads: 1, wholeReads: 1, decodeChecks: 1, decodes: 1 });

    // Now too small for the model: checked again (once), refused, its data URI never built.
    await writeFile(join(ws.dir, name), await h.gradient(300, 300, 43));
    resetImageStats();
    for (const row of rows) await assert.rejects(prepareRowInput(row, { cache: images }), PreflightError);
    assert.deepEqual(imageStats(), { checks: 1, headerReads: 1, wholeReads: 0, decodeChecks: 0, decodes: 0 });
  });

  test("one file by two spellings (a symlink): checked once", async () => {
    await symlink(join(ws.dir, "images/small.jpg"), join(ws.dir, "images/link.jpg"));
    const { rows } = parseManifest(
      ["images/small.jpg", "images/link.jpg", "images/small.jpg"]
        .map((image, i) => JSON.stringify({ image, prompt: `p${i}` }))
        .join("\n"),
      { baseDir: ws.dir, format: "jsonl" },
    );
    const images = new ImageCache();
    resetImageStats();
    assert.ok((await validateRows(rows, { images })).every((r) => r.valid));
    for (const row of rows) await prepareRowInput(row, { cache: images });
    assert.equal(imageStats().checks, 1);
  });

  test("a budget too small to hold the bytes: checked again when sent, never sent unchecked", async () => {
    const { rows } = parseManifest(
      ["images/big.jpg", "images/small.jpg"]
        .map((image) => JSON.stringify({ image, prompt: "p" }))
        .join("\n"),
      { baseDir: ws.dir, format: "jsonl" },
    );
    const images = new ImageCache({ maxEntries: 1 });
    // One at a time, so the order the bytes are let go in is known.
    assert.ok((await validateRows(rows, { images, concurrency: 1 })).every((r) => r.valid));
    resetImageStats();
    const [a, b] = [
      await prepareRowInput(rows[0]!, { cache: images }),
      await prepareRowInput(rows[1]!, { cache: images }),
    ];
    // Each image's bytes were let go for the other's: both checked again, once each.
    assert.equal(imageStats().checks, 2);
    assert.deepEqual(a, await prepareRowInput(rows[0]!));
    assert.deepEqual(b, await prepareRowInput(rows[1]!));
    assert.equal(images.size, 1);
  });
});
