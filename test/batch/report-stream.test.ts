// report.json and report.html are written row by row, never held whole: the files must be byte
// for byte what the whole-string builders (report-reference.ts) give for the same report, with
// the rows that are hard to write: failed and invalid ones, hostile text (quotes, markup,
// terminal escapes, a registered secret, a URL password), unicode. Once from a report built
// here, once from a real batch run against the sandbox (failed jobs, an invalid line).

import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { registerSecret } from "../../src/api/redact.js";
import { readManifest, runBatch } from "../../src/batch/index.js";
import { type BatchReport, type ReportRow, writeJsonRows } from "../../src/batch/report.js";
import { makeThumbnails, renderHtml, writeHtmlReport, writeHtmlRows } from "../../src/batch/report-html.js";
import * as h from "./helpers.js";
import { referenceHtml, referenceJson } from "./report-reference.js";

const SECRET = "sk-report-stream-secret-42";
const HOSTILE = `"quoted" 'single' <script>alert(1)</script> & \x1b[31mred\x1b[0m \u202eevil\u202c ${SECRET} https://user:pa55@example.com/x`;

let ws: h.Workspace;

before(async () => {
  registerSecret(SECRET);
  ws = await h.workspace(2);
});

after(async () => {
  await ws.cleanup();
});

function oddReport(outDir: string): {
  report: BatchReport & { manifestProblems: unknown[] };
  images: Map<string, string>;
} {
  const images = new Map<string, string>([
    ["k1", join(ws.dir, ws.images[0]!)],
    ["k2", join(ws.dir, ws.images[1]!)],
    ["k3", join(ws.dir, ws.images[0]!)],
  ]);
  const base: ReportRow = {
    line: 1,
    key: "k1",
    name: "café-🎬-北京",
    image: ws.images[0],
    prompt: `a slow pan\nover ${HOSTILE}\u2028and 👩‍👩‍👧 e\u0301`,
    frames: 121,
    seed: 7,
    status: "done",
    requestId: "req-1",
    timings: {
      createdAt: new Date(1000).toISOString(),
      submittedAt: new Date(2000).toISOString(),
      startedAt: undefined,
      finishedAt: new Date(9000).toISOString(),
      downloadedAt: undefined,
      durationMs: 7000,
    },
    estimateUsd: 0.6,
    costUsd: 0.61,
    file: "café-🎬-北京.mp4",
    bytes: 1234,
    sha256: "ab".repeat(32),
    error: undefined,
  };
  const rows: ReportRow[] = [
    base,
    {
      ...base,
      line: 2,
      key: "k2",
      name: `weird ${HOSTILE}`,
      status: "failed",
      file: undefined,
      bytes: undefined,
      sha256: undefined,
      costUsd: undefined,
      error: { name: "JobFailedError", message: HOSTILE, jobError: [{ errorCode: 1, error: HOSTILE }] },
    },
    {
      line: 3,
      key: undefined,
      name: undefined,
      image: "https://user:pw@example.com/i.png",
      prompt: undefined,
      frames: undefined,
      seed: undefined,
      status: "invalid",
      requestId: undefined,
      timings: {},
      estimateUsd: undefined,
      costUsd: undefined,
      file: undefined,
      bytes: undefined,
      sha256: undefined,
      error: [
        { field: "image", message: `not a file: ${HOSTILE}` },
        { field: "frames", rule: "max", limit: 241, actual: 999, message: "too many" },
      ],
    },
    {
      ...base,
      line: 4,
      key: "k3",
      status: "unknown",
      requestId: undefined,
      error: { message: "?", localIds: [3] },
    },
    { ...base, line: 5, key: "k9", status: "budget", requestId: undefined, seed: 0, frames: 0 },
  ];
  const report = {
    batchId: `b-${HOSTILE}`,
    manifest: `/tmp/${HOSTILE}.jsonl`,
    manifestDigest: undefined,
    outDir,
    generatedAt: new Date(0).toISOString(),
    interrupted: true,
    budget: { limitUsd: 3, stopped: true },
    price: { basePriceUsd: 0.6, priceUnit: "video", source: "default" },
    totals: {
      rows: 5,
      done: 1,
      failed: 1,
      invalid: 1,
      unknown: 1,
      notRun: 1,
      estimatedUsd: 2.4,
      costUsd: 0.61,
    },
    rows,
    manifestProblems: [{ line: 3, field: "image", message: HOSTILE, row: { image: "x" } }],
  };
  return { report, images };
}

describe("streamed reports equal the whole-string ones", () => {
  test("report.json: from an array, a generator and an async generator; no rows at all", async () => {
    const out = join(ws.dir, "json");
    await mkdir(out, { recursive: true });
    const { report } = oddReport(out);
    const expected = referenceJson(report);
    assert.ok(!expected.includes(SECRET) && !expected.includes("pa55"), "the reference is redacted");
    const sources = [
      () => report.rows,
      function* () {
        yield* report.rows;
      },
      async function* () {
        for (const row of report.rows) yield row;
      },
    ];
    for (const source of sources) {
      await writeJsonRows(out, { ...report, rows: source() });
      assert.equal(await readFile(join(out, "report.json"), "utf8"), expected);
    }
    const empty = { ...report, rows: [] };
    await writeJsonRows(out, empty);
    assert.equal(await readFile(join(out, "report.json"), "utf8"), referenceJson(empty));
  });

  test("report.html: streamed, and renderHtml, with real and hostile thumbnails; no rows at all", async () => {
    const out = join(ws.dir, "html");
    await mkdir(out, { recursive: true });
    const { report, images } = oddReport(out);
    const thumbs = await makeThumbnails(images);
    assert.equal(thumbs.size, 3);
    thumbs.set("k9", 'data:image/jpeg;base64,AA"); } body { display: none');
    const expected = referenceHtml(report, thumbs);
    assert.equal(renderHtml(report, thumbs), expected);
    await writeHtmlRows(out, report, () => report.rows, thumbs);
    assert.equal(await readFile(join(out, "report.html"), "utf8"), expected);
    await writeHtmlReport(out, report, images);
    assert.equal(
      await readFile(join(out, "report.html"), "utf8"),
      referenceHtml(report, await makeThumbnails(images)),
    );
    const empty = { ...report, rows: [] };
    await writeHtmlRows(out, empty, () => [], thumbs);
    assert.equal(await readFile(join(out, "report.html"), "utf8"), referenceHtml(empty, thumbs));
  });

  test("a batch run (failed jobs, an invalid line, hostile prompts): both files as the reference writes them", async () => {
    const sb = await h.sandbox({ faults: "job:fail=0.4,seed=3" });
    const journal = h.journal(ws.dir);
    try {
      const lines = h.rows(ws, 12, (i) => ({
        prompt: `row ${i} ${HOSTILE} ✨`,
        ...(i % 3 === 0 ? { name: `shot-${i}-é` } : {}),
      }));
      const path = join(ws.dir, "odd.jsonl");
      await writeFile(
        path,
        `${lines
          .map((l, i) =>
            i === 4 ? `{"image": "${ws.images[0]}", "prompt": ${JSON.stringify(HOSTILE)}` : JSON.stringify(l),
          )
          .join("\n")}\n`,
      );
      const out = join(ws.dir, "out-odd");
      const manifest = await readManifest(path);
      const { client, limiter } = h.client(sb.url);
      const run = runBatch(manifest, {
        client,
        rateLimiter: limiter,
        store: journal,
        outDir: out,
        skipInvalid: true,
      });
      for await (const _ of run);
      const summary = await run.summary;
      assert.ok(summary.failed > 0 && summary.done > 0, JSON.stringify(summary));

      const json = await readFile(join(out, "report.json"), "utf8");
      const parsed = JSON.parse(json) as BatchReport;
      assert.equal(referenceJson(parsed), json);
      assert.deepEqual(
        parsed.rows.map((r) => r.line),
        Array.from({ length: 12 }, (_, i) => i + 1),
      );
      assert.equal(parsed.totals.failed, summary.failed);
      assert.equal(parsed.totals.invalid, 1);
      const failed = parsed.rows.find((r) => r.status === "failed")!;
      assert.ok(
        failed.requestId && failed.timings.submittedAt && failed.timings.finishedAt,
        JSON.stringify(failed),
      );

      // The page from the same rows (nulls read back as the absent values they were).
      const rows = parsed.rows.map((r) =>
        JSON.parse(JSON.stringify(r), (_k, v) => (v === null ? undefined : v)),
      );
      const images = new Map(manifest.rows.map((r) => [r.key, r.imageSource]));
      const html = await readFile(join(out, "report.html"), "utf8");
      assert.equal(html, referenceHtml({ ...parsed, rows }, await makeThumbnails(images)));
      assert.ok(!json.includes(SECRET) && !html.includes(SECRET) && !html.includes("<script>"));
    } finally {
      await journal.close();
      await sb.close();
    }
  });
});
