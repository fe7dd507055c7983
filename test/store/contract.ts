// The JobStore contract: what every backend must do, run on each (sqlite-contract.test.ts, and
// the PostgreSQL backend's own file). Only the JobStore interface is used here, never a
// backend's insides, so a second backend passes exactly the same tests.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { after, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { SubmissionUnknownError } from "../../src/api/errors.js";
import { registerSecret } from "../../src/api/redact.js";
import {
  BatchLockedError,
  type JobStore,
  type OpenJobStoreOptions,
  StoreError,
  UnrecordedSubmitError,
} from "../../src/store/index.js";

export interface ContractStore {
  store: JobStore;
  cleanup(): Promise<void>;
  /** Another connection to the same store (what another process would see). */
  connect?: (() => Promise<JobStore>) | undefined;
  /** What `openJobStore` takes to open the same store (a path or URL), for child processes. */
  spec?: string | undefined;
}

/** Opens a fresh, empty store (with these options: a clock, a grace period). */
export type MakeStore = (options?: OpenJobStoreOptions) => Promise<ContractStore>;

const MODEL = "bytedance/dreamina-3-0/pro/image-to-video";
const BASE = "https://model-api.runcomfy.net";
const storeIndexUrl = pathToFileURL(resolve("src/store/index.ts")).href;

export function describeJobStoreContract(name: string, makeStore: MakeStore): void {
  describe(`JobStore contract: ${name}`, () => {
    const opened: ContractStore[] = [];
    const open = async (options?: OpenJobStoreOptions) => {
      const made = await makeStore(options);
      opened.push(made);
      return made;
    };
    after(async () => {
      for (const made of opened) {
        await made.store.close().catch(() => {});
        await made.cleanup();
      }
    });

    const intent = (store: JobStore, extra: Record<string, unknown> = {}) =>
      store.beginSubmit({ modelId: MODEL, input: { prompt: "p", frames: 121, ...extra }, baseUrl: BASE });

    it("the intent row is committed before beginSubmit returns (seen from another connection)", async () => {
      const made = await open();
      const id = await made.store.beginSubmit({
        modelId: MODEL,
        input: { prompt: "a cat", image_urls: ["https://x/y.png"], frames: 241, seed: 7 },
        baseUrl: BASE,
        batchId: "b1",
        rowKey: "row-3",
      });
      const reader = made.connect ? await made.connect() : made.store;
      try {
        const row = await reader.get(id);
        assert.equal(row?.storedState, "submitting");
        assert.equal(row?.state, "submitting", "our own process is alive");
        assert.equal(row?.requestId, undefined);
        assert.equal(row?.prompt, "a cat");
        assert.equal(row?.frames, 241);
        assert.equal(row?.seed, 7);
        assert.equal(row?.batchId, "b1");
        assert.equal(row?.rowKey, "row-3");
        assert.equal(row?.pid, process.pid);
        assert.match(row?.inputDigest ?? "", /^[0-9a-f]{64}$/);
        assert.deepEqual(
          row?.transitions.map((t) => t.status),
          ["submitting"],
        );
      } finally {
        if (reader !== made.store) await reader.close();
      }
    });

    it("accepted, rejected, unknown, abandoned: each from a row awaiting its outcome only", async () => {
      const { store } = await open();
      const a = await intent(store);
      await store.submitAccepted(a, {
        requestId: "req_a",
        statusUrl: `${BASE}/v1/requests/req_a/status`,
        resultUrl: `${BASE}/v1/requests/req_a/result`,
        cancelUrl: `${BASE}/v1/requests/req_a/cancel`,
      });
      const accepted = await store.get("req_a");
      assert.equal(accepted?.state, "submitted");
      assert.equal(accepted?.localId, a);
      assert.equal(accepted?.resultUrl, `${BASE}/v1/requests/req_a/result`);
      assert.ok(accepted?.submittedAt);

      const r = await intent(store);
      await store.submitRejected(r, new Error("422 prompt too long"));
      const rejected = await store.get(r);
      assert.equal(rejected?.state, "rejected");
      assert.match(JSON.stringify(rejected?.lastError), /422 prompt too long/);
      assert.ok(rejected?.finishedAt);
      // A late acceptance of a refused row is a caller's mistake: it throws, naming the id.
      await assert.rejects(
        store.submitAccepted(r, { requestId: "late_one" }),
        (error: unknown) =>
          error instanceof StoreError &&
          !(error instanceof UnrecordedSubmitError) &&
          /late_one/.test(error.message),
      );
      await assert.rejects(store.submitUnknown(r, new Error("x")), StoreError);
      await assert.rejects(store.submitAccepted(999_999, { requestId: "nowhere" }), StoreError);

      const u = await intent(store);
      await store.submitUnknown(
        u,
        new SubmissionUnknownError("connection reset after sending", { modelId: MODEL, input: {} }),
      );
      assert.equal((await store.get(u))?.state, "submission_unknown");
      // An unknown submission can still be settled: accepted when the id turns up...
      await store.submitAccepted(u, { requestId: "req_found" });
      assert.equal((await store.get("req_found"))?.localId, u);
      // ...or given up by a person.
      const g = await intent(store);
      await store.submitUnknown(g, new Error("timeout"));
      await store.markAbandoned(g, "checked the dashboard: never arrived");
      const abandoned = await store.get(g);
      assert.equal(abandoned?.state, "abandoned");
      assert.deepEqual(
        abandoned?.transitions.map((t) => t.status),
        ["submitting", "submission_unknown", "abandoned"],
      );
      await assert.rejects(store.markAbandoned(g), StoreError);
    });

    it("an unknown submission is listed as unresolved, never silently resubmitted; superseding is atomic", async () => {
      const { store } = await open();
      const first = await store.beginSubmit({
        modelId: MODEL,
        input: { prompt: "row 1" },
        baseUrl: BASE,
        batchId: "bx",
        rowKey: "k1",
      });
      await store.submitUnknown(first, new Error("reset"));
      const unresolved = await store.unresolvedSubmissions();
      assert.deepEqual(
        unresolved.map((r) => r.localId),
        [first],
      );
      assert.deepEqual(
        (await store.list({ state: "submission_unknown" })).map((r) => r.localId),
        [first],
      );
      // Resubmitting on purpose gives the earlier one up in the same write as the new intent.
      const second = await store.beginSubmit({
        modelId: MODEL,
        input: { prompt: "row 1" },
        baseUrl: BASE,
        batchId: "bx",
        rowKey: "k1",
        supersedes: [first, 424_242],
      });
      assert.equal((await store.get(first))?.state, "abandoned");
      assert.equal((await store.get(second))?.state, "submitting");
      assert.deepEqual(await store.unresolvedSubmissions(), []);
    });

    it("a `submitting` row past the grace period is reported as submission_unknown", async () => {
      let clock = Date.now();
      const { store } = await open({ now: () => clock, submitGraceMs: 60_000 });
      const id = await intent(store);
      assert.equal((await store.get(id))?.state, "submitting");
      assert.deepEqual(await store.unresolvedSubmissions(), []);
      clock += 61_000;
      const row = await store.get(id);
      assert.equal(row?.state, "submission_unknown");
      assert.equal(row?.storedState, "submitting");
      assert.equal((await store.unresolvedSubmissions()).length, 1);
      assert.equal((await store.list({ state: "submission_unknown" })).length, 1);
      assert.equal((await store.list({ state: "submitting" })).length, 0);
    });

    it("statuses, result, error and files: transitions on change only, forward only, final states stick", async () => {
      let clock = 1_000_000;
      const { store } = await open({ now: () => clock });
      const id = await intent(store);
      clock += 500;
      await store.submitAccepted(id, { requestId: "r1" });
      for (const [status, q] of [
        ["in_queue", 5],
        ["in_queue", 5],
        ["in_queue", 3],
        ["in_progress", undefined],
        ["in_progress", undefined],
      ] as const) {
        clock += 1000;
        assert.equal(await store.recordStatus("r1", { status, rawStatus: status, queuePosition: q }), true);
      }
      clock += 60_000;
      await store.recordStatus("r1", { status: "completed", rawStatus: "completed" });
      // A stale poll seen by another process does not take it back.
      await store.recordStatus("r1", { status: "in_progress", at: clock - 30_000 });
      assert.equal((await store.get("r1"))?.state, "completed");
      await store.recordResult("r1", {
        status: "succeeded",
        rawStatus: "succeeded",
        outputUrls: ["https://cdn.runcomfy.net/o/video.mp4"],
        cost: 0.42,
        createdAt: "2025-01-01T00:00:00Z",
        finishedAt: "2025-01-01T00:01:00Z",
        raw: { status: "succeeded" },
      });
      await store.recordStatus("r1", { status: "failed" });
      assert.equal(await store.recordError("r1", new Error("a poll failed afterwards")), true);
      assert.equal(
        await store.recordFile("r1", {
          path: "/tmp/v.mp4",
          url: "https://cdn/v.mp4",
          bytes: 10,
          sha256: "ab",
        }),
        true,
      );
      const r = await store.get("r1");
      assert.ok(r);
      assert.equal(r.state, "succeeded", "final: a later status does not move it");
      assert.deepEqual(r.queuePositions, [5, 3]);
      assert.deepEqual(
        r.transitions.map((t) => `${t.status}${t.queuePosition ?? ""}`),
        [
          "submitting",
          "submitted",
          "in_queue5",
          "in_queue3",
          "in_progress",
          "completed",
          "in_progress",
          "succeeded",
          "failed",
        ],
      );
      assert.equal(Date.parse(r.startedAt!), 1_000_500 + 4000);
      assert.equal(Date.parse(r.finishedAt!), 1_000_500 + 5000 + 60_000);
      assert.deepEqual(r.outputUrls, ["https://cdn.runcomfy.net/o/video.mp4"]);
      assert.equal(r.cost, 0.42);
      assert.equal(r.serviceCreatedAt, "2025-01-01T00:00:00Z");
      assert.equal(r.serviceFinishedAt, "2025-01-01T00:01:00Z");
      assert.deepEqual(r.result, { status: "succeeded" });
      assert.match(JSON.stringify(r.lastError), /a poll failed afterwards/);
      assert.deepEqual(
        r.files.map((f) => [f.path, f.url, f.bytes, f.sha256]),
        [["/tmp/v.mp4", "https://cdn/v.mp4", 10, "ab"]],
      );
      // A request this store does not know is reported, not thrown.
      assert.equal(await store.recordStatus("nope", { status: "in_queue" }), false);
      assert.equal(await store.recordResult("nope", { status: "succeeded" }), false);
      assert.equal(await store.recordError("nope", new Error("x")), false);
      assert.equal(await store.recordFile("nope", { path: "/x" }), false);
      // An unknown status is kept in the transitions and changes nothing acted on.
      const u = await intent(store);
      await store.submitAccepted(u, { requestId: "r2" });
      await store.recordStatus("r2", { status: "unknown", rawStatus: "warming_up" });
      const r2 = await store.get("r2");
      assert.equal(r2?.state, "submitted");
      assert.equal(r2?.transitions.at(-1)?.status, "unknown:warming_up");
    });

    it("get by request id, by local id, and by local id in digits; undefined when absent", async () => {
      const { store } = await open();
      const id = await intent(store);
      await store.submitAccepted(id, { requestId: "req_get" });
      assert.equal((await store.get("req_get"))?.localId, id);
      assert.equal((await store.get(id))?.requestId, "req_get");
      assert.equal((await store.get(String(id)))?.requestId, "req_get");
      assert.equal(await store.get("req_absent"), undefined);
      assert.equal(await store.get(987_654), undefined);
    });

    it("lists newest first with filters (state, batch, since, limit); batchJobs has no limit", async () => {
      let clock = 10_000;
      const { store } = await open({ now: () => clock });
      for (let i = 0; i < 6; i++) {
        clock += 1000;
        const id = await store.beginSubmit({
          modelId: MODEL,
          input: { prompt: `p${i}` },
          baseUrl: BASE,
          batchId: i % 2 ? "odd" : "even",
          rowKey: `k${i}`,
        });
        await store.submitAccepted(id, { requestId: `r${i}` });
        if (i < 2) await store.recordResult(`r${i}`, { status: "succeeded" });
      }
      const ids = async (p: Parameters<JobStore["list"]>[0]) => (await store.list(p)).map((r) => r.requestId);
      assert.deepEqual(await ids(undefined), ["r5", "r4", "r3", "r2", "r1", "r0"]);
      assert.deepEqual(await ids({ batchId: "odd", limit: 2 }), ["r5", "r3"]);
      assert.deepEqual(await ids({ state: "succeeded" }), ["r1", "r0"]);
      assert.deepEqual(await ids({ state: ["succeeded", "submitted"], since: 14_000 }), ["r5", "r4", "r3"]);
      assert.deepEqual(await ids({ since: new Date(16_000).toISOString() }), ["r5"]);
      // Same time: the later row first.
      for (let i = 0; i < 60; i++) {
        await store.beginSubmit({
          modelId: MODEL,
          input: { prompt: `many ${i}` },
          baseUrl: BASE,
          batchId: "many",
        });
      }
      assert.equal((await store.list({ batchId: "many" })).length, 50, "50 by default");
      const all = await store.batchJobs("many");
      assert.equal(all.length, 60);
      assert.deepEqual(
        all.map((r) => r.localId),
        [...all.map((r) => r.localId)].sort((a, b) => b - a),
      );
      assert.deepEqual(
        (await store.batchJobs("odd")).map((r) => r.rowKey),
        ["k5", "k3", "k1"],
      );
    });

    it("batchJobTimes: a batch's accepted requests with times and cost, paged by local id", async () => {
      let clock = 1_000_000;
      const { store } = await open({ now: () => clock });
      const ids: number[] = [];
      for (let i = 0; i < 7; i++) {
        clock += 1000;
        const id = await store.beginSubmit({
          modelId: MODEL,
          input: { prompt: `p${i}` },
          baseUrl: BASE,
          batchId: i === 3 ? "other" : "b",
          rowKey: `k${i}`,
        });
        ids.push(id);
        // Row 5 never got a request id: not in the report's times.
        if (i === 5) continue;
        clock += 100;
        await store.submitAccepted(id, { requestId: `t${i}` });
        if (i % 2 === 0) {
          await store.recordStatus(`t${i}`, { status: "in_progress", at: clock + 200 });
          await store.recordResult(`t${i}`, { status: "succeeded", cost: 0.25 * i, at: clock + 900 });
        }
      }
      const pages: string[][] = [];
      let after: number | undefined;
      for (;;) {
        const page = await store.batchJobTimes("b", { afterLocalId: after, limit: 2 });
        pages.push(page.map((t) => t.requestId));
        if (page.length < 2) break;
        after = page.at(-1)!.localId;
      }
      assert.deepEqual(pages, [["t0", "t1"], ["t2", "t4"], ["t6"]]);
      const all = await store.batchJobTimes("b");
      assert.deepEqual(
        all.map((t) => t.localId),
        [ids[0], ids[1], ids[2], ids[4], ids[6]],
      );
      // The same times and cost as the full records say.
      for (const t of all) {
        const rec = (await store.get(t.requestId))!;
        assert.deepEqual(t, {
          localId: rec.localId,
          requestId: rec.requestId,
          createdAt: rec.createdAt,
          submittedAt: rec.submittedAt,
          startedAt: rec.startedAt,
          finishedAt: rec.finishedAt,
          cost: rec.cost,
        });
      }
      assert.equal(all[2]!.cost, 0.5);
      assert.equal(all[2]!.startedAt, new Date(1_000_000 + 3 * 1100 + 200).toISOString());
      assert.equal(all[1]!.finishedAt, undefined);
      assert.deepEqual(await store.batchJobTimes("none"), []);
    });

    it("runTimePrior: in_progress→terminal, else submit→terminal; trimmed; by model and frames; last N", async () => {
      let clock = 0;
      const { store } = await open({ now: () => clock });
      const job = async (
        frames: number,
        queueMs: number,
        runMs: number | undefined,
        total: number,
        model = MODEL,
      ) => {
        clock += 1_000_000;
        const id = await store.beginSubmit({ modelId: model, input: { prompt: "p", frames }, baseUrl: BASE });
        const rid = `r${id}`;
        await store.submitAccepted(id, { requestId: rid });
        const t0 = clock;
        await store.recordStatus(rid, { status: "in_queue", queuePosition: 1, at: t0 + 1 });
        if (runMs !== undefined) await store.recordStatus(rid, { status: "in_progress", at: t0 + queueMs });
        await store.recordStatus(rid, {
          status: "completed",
          at: t0 + (runMs === undefined ? total : queueMs + runMs),
        });
        await store.recordResult(rid, { status: "succeeded" });
      };
      assert.equal(await store.runTimePrior(MODEL, 121), undefined);
      const runs = [100_000, 110_000, 90_000, 105_000, 95_000, 100_000, 102_000, 98_000, 101_000, 5_000_000];
      for (const ms of runs) await job(121, 20_000, ms, 0);
      await job(241, 0, undefined, 250_000);
      await job(121, 0, 1, 0, "other/model");
      const prior = await store.runTimePrior(MODEL, 121);
      assert.ok(prior);
      const kept = [...runs].sort((a, b) => a - b).slice(1, -1);
      const mean = kept.reduce((s, v) => s + v, 0) / kept.length;
      assert.equal(prior.samples, 10);
      assert.ok(Math.abs(prior.meanMs - mean) < 1e-6, `${prior.meanMs} vs ${mean}`);
      assert.deepEqual(await store.runTimePrior(MODEL, 241), { meanMs: 250_000, stdMs: 0, samples: 1 });
      assert.equal((await store.runTimePrior(MODEL, 121, 3))?.meanMs, (5_000_000 + 101_000 + 98_000) / 3);
      assert.equal((await store.runTimePrior(MODEL))?.samples, 11, "every frame count when none is given");
    });

    it("data URIs are stored as digest and size, secrets never; equal inputs, equal digests", async () => {
      const { store } = await open();
      const token = `rc_${randomBytes(16).toString("hex")}`;
      registerSecret(token);
      const image = randomBytes(20_000);
      const dataUri = `data:image/png;base64,${image.toString("base64")}`;
      const input = { prompt: "p", image_urls: [dataUri], frames: 121 };
      const a = await store.beginSubmit({ modelId: MODEL, input, baseUrl: BASE });
      await store.submitUnknown(a, new Error(`reset; Authorization: Bearer ${token} ${dataUri}`));
      const b = await store.beginSubmit({ modelId: MODEL, input: { ...input }, baseUrl: BASE });
      await store.submitAccepted(b, { requestId: "req_uri" });
      await store.recordResult("req_uri", {
        status: "failed",
        error: { message: `bad token ${token}`, input: dataUri },
        raw: { echo: dataUri },
      });
      const rowA = await store.get(a);
      const rowB = await store.get("req_uri");
      assert.deepEqual((rowA?.input as { image_urls?: unknown[] } | undefined)?.image_urls?.[0], {
        dataUri: true,
        mime: "image/png",
        sha256: createHash("sha256").update(image).digest("hex"),
        bytes: image.length,
      });
      assert.equal(rowA?.inputDigest, rowB?.inputDigest);
      const text = JSON.stringify([rowA, rowB]);
      assert.equal(text.includes(image.toString("base64").slice(1000, 1064)), false, "no data URI bytes");
      assert.equal(text.includes(token), false, "no token");
      assert.match(text, /\[REDACTED\]/);
    });

    it("writeBatch: many writes at once; one that does not apply is skipped, the others kept", async () => {
      const { store } = await open();
      const id = await intent(store);
      await store.submitAccepted(id, { requestId: "req_wb" });
      const batch = await store.openBatch({ outDir: "/renders/wb" });
      await store.writeBatch([
        { kind: "status", requestId: "req_wb", observation: { status: "in_progress" } },
        { kind: "status", requestId: "req_nobody", observation: { status: "in_progress" } },
        {
          kind: "result",
          requestId: "req_wb",
          result: { status: "succeeded", outputUrls: ["https://cdn/a.mp4"] },
        },
        { kind: "file", requestId: "req_wb", file: { path: "/renders/wb/a.mp4", bytes: 3, sha256: "cd" } },
        { kind: "error", requestId: "req_wb", error: new Error("a late poll error") },
        {
          kind: "batch_row",
          batchId: batch.batchId,
          rowKey: "a",
          outcome: {
            state: "done",
            requestId: "req_wb",
            file: "a.mp4",
            bytes: 3,
            sha256: "cd",
            line: 1,
            name: "a",
          },
        },
      ]);
      await store.writeBatch([]);
      const row = await store.get("req_wb");
      assert.equal(row?.state, "succeeded");
      assert.equal(row?.files[0]?.sha256, "cd");
      assert.match(JSON.stringify(row?.lastError), /a late poll error/);
      assert.equal((await store.batchRows(batch.batchId)).get("a")?.file, "a.mp4");
      await store.releaseBatch(batch.batchId);
    });

    it("batches: found again by output folder, rows recorded and replaced, manifest changes noticed", async () => {
      const { store } = await open();
      const first = await store.openBatch({
        outDir: "/renders/one",
        manifestPath: "/m.jsonl",
        manifestDigest: "d1",
      });
      assert.equal(first.resumed, false);
      assert.equal(first.outDir, "/renders/one");
      assert.equal(first.previousDigest, undefined);
      assert.match(first.batchId, /\S/);
      await store.recordBatchRow(first.batchId, "k1", {
        state: "failed",
        line: 1,
        name: "one",
        estimateUsd: 0.6,
        error: { name: "JobFailedError", message: "the job failed" },
      });
      await store.recordBatchRow(first.batchId, "k2", {
        state: "done",
        line: 2,
        name: "two",
        requestId: "req_k2",
        estimateUsd: 0.6,
        costUsd: 0.5,
        file: "two.mp4",
        bytes: 123,
        sha256: "ef",
      });
      await store.releaseBatch(first.batchId);
      const again = await store.openBatch({ outDir: "/renders/one", manifestDigest: "d2" });
      assert.equal(again.batchId, first.batchId);
      assert.equal(again.resumed, true);
      assert.equal(again.previousDigest, "d1");
      const rows = await store.batchRows(first.batchId);
      assert.equal(rows.size, 2);
      assert.equal(rows.get("k1")?.state, "failed");
      assert.deepEqual(rows.get("k1")?.error, { name: "JobFailedError", message: "the job failed" });
      assert.equal(rows.get("k2")?.costUsd, 0.5);
      assert.equal(rows.get("k2")?.sha256, "ef");
      assert.ok(Date.parse(rows.get("k2")?.updatedAt ?? ""));
      // Replaced, not added.
      await store.recordBatchRow(first.batchId, "k1", {
        state: "done",
        requestId: "req_k1",
        file: "one.mp4",
        bytes: 1,
        sha256: "01",
      });
      const replaced = (await store.batchRows(first.batchId)).get("k1");
      assert.equal(replaced?.state, "done");
      assert.equal(replaced?.error, undefined);
      await store.renewBatchLease(first.batchId);
      await store.releaseBatch(first.batchId);
      // A chosen id is that batch, not the folder's newest; a read-only open creates nothing.
      const chosen = await store.openBatch({ outDir: "/renders/one", batchId: "b-chosen", exactId: true });
      assert.equal(chosen.batchId, "b-chosen");
      assert.equal(chosen.resumed, false);
      await store.releaseBatch("b-chosen");
      const dry = await store.openBatch({ outDir: "/renders/never", readOnly: true });
      assert.equal(dry.resumed, false);
      const dryAgain = await store.openBatch({ outDir: "/renders/never", readOnly: true });
      assert.notEqual(dryAgain.batchId, dry.batchId, "nothing was created");
      assert.equal((await store.batchRows(dry.batchId)).size, 0);
    });

    it("a batch leased by another live process is refused (BatchLockedError) until that process is gone", async (t) => {
      const made = await open();
      if (!made.spec) {
        t.skip("this backend cannot be opened from a child process");
        return;
      }
      const { store } = made;
      const script = `
        const { openJobStore } = await import(${JSON.stringify(storeIndexUrl)});
        const store = await openJobStore(process.argv.at(-1));
        await store.openBatch({ outDir: "/renders/leased", outDevIno: "1:2" });
        process.stdout.write("leased\\n");
        setInterval(() => {}, 1000);
      `;
      const child = spawn(
        process.execPath,
        ["--import", "tsx", "--input-type=module", "-e", script, "--", made.spec],
        { cwd: process.cwd(), stdio: ["ignore", "pipe", "pipe"] },
      );
      let stderr = "";
      child.stderr?.on("data", (d) => {
        stderr += String(d);
      });
      const exited = new Promise<void>((resolveExit) => child.once("exit", () => resolveExit()));
      try {
        await new Promise<void>((resolveLeased, reject) => {
          child.stdout?.on("data", (d) => {
            if (String(d).includes("leased")) resolveLeased();
          });
          child.once("exit", (code) => reject(new Error(`the child exited (${code}): ${stderr}`)));
        });
        await assert.rejects(store.openBatch({ outDir: "/renders/leased" }), (error: unknown) => {
          assert.ok(error instanceof BatchLockedError);
          assert.equal(error.code, "batch_locked");
          assert.equal(error.pid, child.pid);
          assert.match(error.message, /another process/);
          return true;
        });
        // The same folder reached by another path (same device and inode) is the same folder.
        await assert.rejects(
          store.openBatch({ outDir: "/mnt/other/spelling", outDevIno: "1:2" }),
          BatchLockedError,
        );
        // A dry run only reads; `force` takes it anyway.
        assert.equal((await store.openBatch({ outDir: "/renders/leased", readOnly: true })).resumed, true);
      } finally {
        child.kill("SIGKILL");
        await exited;
      }
      const taken = await store.openBatch({ outDir: "/renders/leased" });
      assert.equal(taken.resumed, true, "a dead holder's lease is free at once on its own machine");
      await store.releaseBatch(taken.batchId);
    });

    it("replayRecovered on a store with nothing kept outside reports nothing", async () => {
      const { store } = await open();
      assert.equal(store.lastRecovery, undefined);
      assert.deepEqual(await store.replayRecovered(), { replayed: [], unmatched: [], unreadable: [] });
      assert.match(store.location, /\S/);
      assert.ok(store.kind === "sqlite" || store.kind === "postgres");
    });
  });
}
