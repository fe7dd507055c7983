// Batches from the studio: a manifest and its images uploaded together, the dry run (every
// invalid row with line, rule, limit and value; the estimate), a start with a budget, progress,
// and the report. A path written in the manifest never reaches outside the batch's folder.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jpeg } from "../helpers/images.js";
import { type TestStudio, testStudio } from "./helpers.js";

describe("studio batches", () => {
  let t: TestStudio;
  before(async () => {
    t = await testStudio({ workers: 2 });
  });
  after(async () => {
    await t.close();
  });

  const call = (path: string, init: RequestInit = {}) =>
    fetch(`${t.studio.origin}${path}`, {
      ...init,
      headers: { "x-studio-key": t.studio.key, ...(init.headers as Record<string, string> | undefined) },
    });

  it("checks a manifest, runs its valid rows within the budget, and serves the report", async () => {
    const manifest = [
      { image: "photos/good.jpg", prompt: "the camera circles", name: "good" },
      { image: "small.jpg", prompt: "too small to take" },
      { image: "../../../../etc/hostname", prompt: "outside the folder" },
      { image: "good.jpg", prompt: "a second take", seed: 5, name: "again" },
    ]
      .map((row) => JSON.stringify(row))
      .join("\n");
    const form = new FormData();
    form.append("manifest", new Blob([manifest]), "shots.jsonl");
    form.append("images", new Blob([new Uint8Array(await jpeg(640, 480))]), "good.jpg");
    form.append("images", new Blob([new Uint8Array(await jpeg(200, 200))]), "small.jpg");
    const created = await call("/api/batches", { method: "POST", body: form });
    assert.equal(created.status, 200, await created.clone().text());
    const view = (await created.json()) as {
      id: string;
      rows: number;
      valid: number;
      estimatedUsd: number;
      invalid: {
        line: number;
        rule: string | null;
        limit: string | null;
        value: string | null;
        message: string;
      }[];
    };
    assert.equal(view.rows, 4);
    assert.equal(view.valid, 2);
    assert.equal(view.estimatedUsd, 1.2);
    const small = view.invalid.filter((p) => p.line === 2);
    assert.ok(
      small.some((p) => p.limit === "320" && p.value === "200"),
      JSON.stringify(view.invalid),
    );
    const outside = view.invalid.filter((p) => p.line === 3);
    assert.ok(outside.length > 0, "a path out of the folder is not read");
    assert.match(outside.map((p) => p.message).join(" "), /hostname/);

    const start = await call(`/api/batches/${view.id}/start`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ budgetUsd: 0.7 }),
    });
    assert.equal(start.status, 202, await start.clone().text());
    let state:
      | { state: string; summary: { done: number; notRun: number } | null; hasReport: boolean }
      | undefined;
    for (let i = 0; i < 600; i++) {
      state = await (await call(`/api/batches/${view.id}`)).json();
      if (state?.state !== "running") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(state?.state, "finished");
    // The budget covers one 5 s video (US$0.60), not two.
    assert.equal(state?.summary?.done, 1);
    assert.ok(state?.hasReport);
    const report = await call(`/media/batches/${view.id}/report.html`);
    assert.equal(report.status, 200);
    assert.match(report.headers.get("content-security-policy") ?? "", /default-src 'none'/);
    assert.match(await report.text(), /too small to take/);

    const again = await call(`/api/batches/${view.id}/start`, { method: "POST", body: "{}" });
    assert.equal(again.status, 409);
    const history = (await (await call("/api/history")).json()) as { jobs: { batchId: string | null }[] };
    assert.equal(history.jobs.filter((j) => j.batchId !== null).length, 1);
  });
});
