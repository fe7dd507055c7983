// report.html stays one self-contained file that opens from disk, and each distinct thumbnail
// is written once: 1,000 rows sharing 2 images do not repeat an image per row.

import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { BatchReport, ReportRow } from "../../src/batch/report.js";
import { makeThumbnails, renderHtml } from "../../src/batch/report-html.js";
import { noise } from "../helpers/images.js";

let dir: string;
let paths: string[];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "dreamina-report-"));
  // Noise: thumbnails that do not compress to nothing, so a repeated one would show in the size.
  paths = [join(dir, "a.jpg"), join(dir, "b.png")];
  await writeFile(paths[0]!, await noise(640, 480, "jpeg"));
  await writeFile(paths[1]!, await noise(480, 640, "png"));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function reportOf(count: number): { report: BatchReport; images: Map<string, string> } {
  const images = new Map<string, string>();
  const rows: ReportRow[] = Array.from({ length: count }, (_, i) => {
    const key = `r-${i}`;
    images.set(key, paths[i % 2]!);
    return {
      line: i + 1,
      key,
      name: `shot-${i}`,
      image: paths[i % 2]!,
      prompt: `row ${i}: a slow pan`,
      frames: 121,
      seed: i,
      status: "done",
      requestId: `req-${i}`,
      timings: {},
      estimateUsd: 0.6,
      costUsd: 0.6,
      file: `shot-${i}.mp4`,
      bytes: 1000,
      sha256: undefined,
      error: undefined,
    };
  });
  const report: BatchReport = {
    batchId: "b-1",
    manifest: "shots.jsonl",
    manifestDigest: undefined,
    outDir: dir,
    generatedAt: new Date(0).toISOString(),
    interrupted: false,
    budget: { limitUsd: undefined, stopped: false },
    price: { basePriceUsd: 0.6, priceUnit: "video", source: "default" },
    totals: {
      rows: count,
      done: count,
      failed: 0,
      invalid: 0,
      unknown: 0,
      notRun: 0,
      estimatedUsd: 0.6 * count,
      costUsd: 0.6 * count,
    },
    rows,
  };
  return { report, images };
}

describe("report.html", () => {
  test("1,000 rows sharing 2 images: each thumbnail written once, the size does not grow by one per row", async () => {
    const small = reportOf(10);
    const big = reportOf(1000);
    const thumbs = await makeThumbnails(big.images);
    assert.equal(new Set(thumbs.values()).size, 2);
    const smallest = Math.min(...[...new Set(thumbs.values())].map((t) => t.length));
    assert.ok(smallest > 2000, `thumbnail of ${smallest} characters`);

    const html = renderHtml(big.report, thumbs);
    for (const uri of new Set(thumbs.values())) {
      assert.equal(html.split(uri).length - 1, 1, "a thumbnail appears exactly once");
    }
    const perRow = (html.length - renderHtml(small.report, thumbs).length) / 990;
    assert.ok(perRow < smallest / 2, `${perRow.toFixed(0)} characters per row`);

    // Every card shows a thumbnail whose class is defined, and nothing is fetched from elsewhere.
    const cards = [...html.matchAll(/<div class="thumb pic (t\d+)"/g)].map((m) => m[1]);
    assert.equal(cards.length, 1000);
    for (const name of new Set(cards)) {
      assert.match(html, new RegExp(`\\.${name} \\{ background-image: url\\("data:image/jpeg;base64,`));
    }
    assert.doesNotMatch(html, /(src|href)="https?:/);
  });

  test("a thumbnail that is not a base64 image data URI is left out, not written into the style", () => {
    const { report } = reportOf(2);
    const html = renderHtml(
      report,
      new Map([
        ["r-0", 'data:image/jpeg;base64,AAAA"); } body { display: none } .x { a: url("'],
        ["r-1", "data:image/jpeg;base64,QUJD"],
      ]),
    );
    assert.doesNotMatch(html, /display: none/);
    assert.match(html, /url\("data:image\/jpeg;base64,QUJD"\)/);
    assert.match(html, /<div class="thumb none">no preview<\/div>/);
  });
});
