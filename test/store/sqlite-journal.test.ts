// The job journal on real SQLite files: durability of the intent row, redaction (checked on the
// raw bytes of the database files), several processes writing at once, a writer killed with
// SIGKILL, the run-time prior and migrations.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import { SubmissionUnknownError } from "../../src/api/errors.js";
import { registerSecret } from "../../src/api/redact.js";
import { defaultJournalPath, dreaminaHome } from "../../src/config/paths.js";
import { StoreError } from "../../src/store/errors.js";
import { SqliteJobStore as Journal } from "../../src/store/index.js";
import {
  BATCH_MIGRATIONS,
  BATCH_MODULE,
  JOURNAL_MODULE,
  migrateModule,
  moduleVersion,
} from "../../src/store/sqlite/migrations.js";
import { trimmedStats } from "../../src/store/stats.js";
import { withRawDb } from "../helpers/sqlite.js";

const MODEL = "bytedance/dreamina-3-0/pro/image-to-video";
const BASE = "https://model-api.runcomfy.net";
const storeUrl = pathToFileURL(resolve("src/store/sqlite/store.ts")).href;

let dir: string;
let n = 0;
const dbPath = () => join(dir, `case-${++n}`, "journal.db");

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "dreamina-journal-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Run an ES module snippet in a child Node process with the SQLite store imported as `Journal`. */
function child(code: string, args: string[] = []): ChildProcess {
  const script = `const { SqliteJobStore: Journal } = await import(${JSON.stringify(storeUrl)});\n${code}`;
  return spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script, "--", ...args], {
    cwd: process.cwd(),
    stdio: ["ignore", "pipe", "pipe"],
  });
}

function exitOf(proc: ChildProcess): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  let stderr = "";
  proc.stderr?.on("data", (d) => {
    stderr += String(d);
  });
  return new Promise((r) => proc.on("exit", (code, signal) => r({ code, signal, stderr })));
}

describe("paths", () => {
  it("DREAMINA_HOME, else XDG_DATA_HOME/dreamina, else ~/.local/share/dreamina", async () => {
    assert.equal(dreaminaHome({ DREAMINA_HOME: "/d", XDG_DATA_HOME: "/x", HOME: "/h" }), "/d");
    assert.equal(dreaminaHome({ XDG_DATA_HOME: "/x", HOME: "/h" }), "/x/dreamina");
    assert.equal(dreaminaHome({ XDG_DATA_HOME: "relative", HOME: "/h" }), "/h/.local/share/dreamina");
    assert.equal(dreaminaHome({ HOME: "/h" }), "/h/.local/share/dreamina");
    assert.equal(defaultJournalPath({ DREAMINA_HOME: "/d" }), "/d/journal.db");
  });
});

describe("journal", () => {
  it("writes the intent row durably before the submit (visible from a second connection)", async () => {
    const path = dbPath();
    const journal = Journal.open(path);
    const fakeSubmit = async () => {
      // What another process (or a crash-recovery run) would see at the moment of the POST.
      const other = new Database(path, { readonly: true });
      try {
        return other.prepare("SELECT state, model_id, prompt, frames, seed FROM jobs").all();
      } finally {
        other.close();
      }
    };
    const localId = await journal.beginSubmit({
      modelId: MODEL,
      input: { prompt: "a cat", image_urls: ["https://x/y.png"], frames: 241, seed: 7 },
      baseUrl: BASE,
      batchId: "b1",
      rowKey: "row-3",
    });
    const seenDuringSubmit = await fakeSubmit();
    assert.deepEqual(seenDuringSubmit, [
      { state: "submitting", model_id: MODEL, prompt: "a cat", frames: 241, seed: 7 },
    ]);
    await journal.submitAccepted(localId, {
      requestId: "req_1",
      statusUrl: `${BASE}/v1/requests/req_1/status`,
      resultUrl: `${BASE}/v1/requests/req_1/result`,
      cancelUrl: `${BASE}/v1/requests/req_1/cancel`,
    });
    const record = await journal.get("req_1");
    assert.equal(record?.state, "submitted");
    assert.equal(record?.localId, localId);
    assert.equal(record?.batchId, "b1");
    assert.equal(record?.rowKey, "row-3");
    assert.equal(record?.resultUrl, `${BASE}/v1/requests/req_1/result`);
    assert.match(record?.inputDigest ?? "", /^[0-9a-f]{64}$/);
    assert.deepEqual(
      record?.transitions.map((t) => t.status),
      ["submitting", "submitted"],
    );
    // PRAGMAs as promised.
    const settings = journal.settings();
    assert.equal(settings.journalMode, "wal");
    assert.equal(settings.synchronous, 2);
    assert.ok(settings.busyTimeoutMs >= 1000);
    assert.equal(settings.foreignKeys, true);
    await journal.close();
  });

  it("never stores data URI bytes or the token (checked on the raw database and WAL bytes)", async () => {
    const path = dbPath();
    const token = `rc_${randomBytes(16).toString("hex")}`;
    registerSecret(token);
    const image = randomBytes(200_000);
    const b64 = image.toString("base64");
    const dataUri = `data:image/png;base64,${b64}`;
    const journal = Journal.open(path);
    const input = { prompt: "p", image_urls: [dataUri], frames: 121 };
    const id = await journal.beginSubmit({ modelId: MODEL, input, baseUrl: BASE });
    await journal.submitUnknown(
      id,
      new SubmissionUnknownError(
        `connection reset after sending; Authorization: Bearer ${token} ${dataUri}`,
        {
          modelId: MODEL,
          input,
          body: { echo: dataUri, token },
        },
      ),
    );
    const id2 = await journal.beginSubmit({ modelId: MODEL, input, baseUrl: BASE });
    await journal.submitAccepted(id2, { requestId: "req_2" });
    await journal.recordResult("req_2", {
      status: "failed",
      error: { message: `bad token ${token}`, input: dataUri },
      raw: { status: "failed", echo: dataUri },
    });
    await journal.recordError("req_2", new Error(`poll failed with ${token}`));

    const record = await journal.get(id);
    const stored = (record?.input as { image_urls: unknown[] } | undefined)?.image_urls[0];
    assert.deepEqual(stored, {
      dataUri: true,
      mime: "image/png",
      sha256: createHash("sha256").update(image).digest("hex"),
      bytes: image.length,
    });
    assert.equal(record?.state, "submission_unknown");
    assert.equal((await journal.unresolvedSubmissions()).length, 1);
    // Same image, same digest.
    assert.equal((await journal.get(id2))?.inputDigest, record?.inputDigest);

    // Look at every file SQLite wrote, before and after a checkpoint.
    const probe = b64.slice(100_000, 100_064);
    const check = () => {
      for (const f of [path, `${path}-wal`, `${path}-shm`]) {
        if (!existsSync(f)) continue;
        const bytes = readFileSync(f);
        assert.equal(bytes.includes(probe), false, `base64 payload found in ${f}`);
        assert.equal(bytes.includes(image.subarray(5000, 5064)), false, `raw image bytes found in ${f}`);
        assert.equal(bytes.includes(token), false, `token found in ${f}`);
      }
    };
    check();
    await journal.close();
    check();
    const reopened = Journal.open(path);
    assert.ok(JSON.stringify((await reopened.get(id2))?.lastError).includes("[REDACTED]"));
    await reopened.close();
  });

  it("tracks statuses: transitions only on change, queue positions, times, terminal states stick", async () => {
    let clock = 1_000_000;
    const journal = Journal.open(dbPath(), { now: () => clock });
    const id = await journal.beginSubmit({
      modelId: MODEL,
      input: { prompt: "p", frames: 121 },
      baseUrl: BASE,
    });
    clock += 500;
    await journal.submitAccepted(id, { requestId: "r1" });
    for (const [status, q] of [
      ["in_queue", 5],
      ["in_queue", 5],
      ["in_queue", 3],
      ["in_queue", 3],
      ["in_progress", undefined],
      ["in_progress", undefined],
    ] as const) {
      clock += 1000;
      assert.equal(await journal.recordStatus("r1", { status, rawStatus: status, queuePosition: q }), true);
    }
    clock += 60_000;
    await journal.recordStatus("r1", { status: "completed", rawStatus: "completed" });
    // A stale poll from another process must not move it back.
    await journal.recordStatus("r1", { status: "in_progress", rawStatus: "in_progress", at: clock - 30_000 });
    assert.equal((await journal.get("r1"))?.state, "completed");
    await journal.recordResult("r1", {
      status: "succeeded",
      rawStatus: "succeeded",
      outputUrls: ["https://cdn.runcomfy.net/o/video.mp4"],
      cost: 0.42,
      createdAt: "2025-01-01T00:00:00Z",
      finishedAt: "2025-01-01T00:01:00Z",
      raw: { status: "succeeded" },
    });
    await journal.recordFile("r1", {
      path: "/tmp/v.mp4",
      url: "https://cdn.runcomfy.net/o/video.mp4",
      bytes: 10,
      sha256: "ab",
    });
    const r = (await journal.get("r1"))!;
    assert.equal(r.state, "succeeded");
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
      ],
    );
    assert.equal(Date.parse(r.startedAt!), 1_000_500 + 5000);
    assert.equal(Date.parse(r.finishedAt!), 1_000_500 + 6000 + 60_000);
    assert.deepEqual(r.outputUrls, ["https://cdn.runcomfy.net/o/video.mp4"]);
    assert.equal(r.cost, 0.42);
    assert.equal(r.serviceFinishedAt, "2025-01-01T00:01:00Z");
    assert.equal(r.files[0]?.sha256, "ab");
    // Unknown requests are reported, not thrown.
    assert.equal(await journal.recordStatus("nope", { status: "in_queue" }), false);
    // By local id, as a number or as digits.
    assert.equal((await journal.get(id))?.requestId, "r1");
    assert.equal((await journal.get(String(id)))?.requestId, "r1");
    // Rejected.
    const rej = await journal.beginSubmit({ modelId: MODEL, input: {}, baseUrl: BASE });
    await journal.submitRejected(rej, new Error("422 prompt too long"));
    assert.equal((await journal.get(rej))?.state, "rejected");
    await assert.rejects(journal.submitAccepted(rej, { requestId: "late" }), /rejected/);
    await journal.close();
  });

  it("reports a `submitting` row as submission unknown once its process is gone or the grace period passed", async () => {
    const path = dbPath();
    let clock = Date.now();
    const journal = Journal.open(path, { now: () => clock, submitGraceMs: 60_000 });
    // Our own row: the process is alive, so it is still `submitting`.
    const mine = await journal.beginSubmit({ modelId: MODEL, input: { prompt: "mine" }, baseUrl: BASE });
    assert.equal((await journal.get(mine))?.state, "submitting");
    assert.deepEqual(await journal.unresolvedSubmissions(), []);
    // A child writes an intent row and dies before the outcome (as after a crash).
    const proc = child(
      `const j = Journal.open(process.argv.at(-1)); await j.beginSubmit({ modelId: "m", input: { prompt: "crashed" }, baseUrl: "b" }); process.exit(0);`,
      [path],
    );
    assert.equal((await exitOf(proc)).code, 0);
    const unresolved = await journal.unresolvedSubmissions();
    assert.equal(unresolved.length, 1);
    assert.equal(unresolved[0]?.prompt, "crashed");
    assert.equal(unresolved[0]?.state, "submission_unknown");
    assert.equal(unresolved[0]?.storedState, "submitting");
    assert.equal((await journal.list({ state: "submission_unknown" })).length, 1);
    assert.equal((await journal.list({ state: "submitting" })).length, 1);
    clock += 61_000;
    assert.equal((await journal.get(mine))?.state, "submission_unknown");
    assert.equal((await journal.unresolvedSubmissions()).length, 2);
    // It can still be settled by a person.
    await journal.markAbandoned(unresolved[0]!.localId, "checked the dashboard: never arrived");
    await journal.submitAccepted(mine, { requestId: "found_later" });
    assert.equal((await journal.unresolvedSubmissions()).length, 0);
    await journal.close();
  });

  it("lists with filters (state, batch, since, limit), newest first", async () => {
    let clock = 10_000;
    const journal = Journal.open(dbPath(), { now: () => clock });
    for (let i = 0; i < 6; i++) {
      clock += 1000;
      const id = await journal.beginSubmit({
        modelId: MODEL,
        input: { prompt: `p${i}` },
        baseUrl: BASE,
        batchId: i % 2 ? "odd" : "even",
      });
      await journal.submitAccepted(id, { requestId: `r${i}` });
      if (i < 2) await journal.recordResult(`r${i}`, { status: "succeeded" });
    }
    assert.deepEqual(
      (await journal.list()).map((r) => r.requestId),
      ["r5", "r4", "r3", "r2", "r1", "r0"],
    );
    assert.deepEqual(
      (await journal.list({ batchId: "odd", limit: 2 })).map((r) => r.requestId),
      ["r5", "r3"],
    );
    assert.deepEqual(
      (await journal.list({ state: "succeeded" })).map((r) => r.requestId),
      ["r1", "r0"],
    );
    assert.deepEqual(
      (await journal.list({ state: ["succeeded", "submitted"], since: 14_000 })).map((r) => r.requestId),
      ["r5", "r4", "r3"],
    );
    await journal.close();
  });

  it("runTimePrior: in_progress→terminal, else submit→terminal; trimmed; by model and frames; last N", async () => {
    let clock = 0;
    const journal = Journal.open(dbPath(), { now: () => clock });
    const job = async (
      frames: number,
      queueMs: number,
      runMs: number | undefined,
      total: number,
      model = MODEL,
    ) => {
      clock += 1_000_000;
      const id = await journal.beginSubmit({ modelId: model, input: { prompt: "p", frames }, baseUrl: BASE });
      const rid = `r${id}`;
      await journal.submitAccepted(id, { requestId: rid });
      const t0 = clock;
      await journal.recordStatus(rid, { status: "in_queue", queuePosition: 1, at: t0 + 1 });
      if (runMs !== undefined) await journal.recordStatus(rid, { status: "in_progress", at: t0 + queueMs });
      await journal.recordStatus(rid, {
        status: "completed",
        at: t0 + (runMs === undefined ? total : queueMs + runMs),
      });
      await journal.recordResult(rid, { status: "succeeded" });
    };
    assert.equal(await journal.runTimePrior(MODEL, 121), undefined);
    const runs = [100_000, 110_000, 90_000, 105_000, 95_000, 100_000, 102_000, 98_000, 101_000, 5_000_000];
    for (const ms of runs) await job(121, 20_000, ms, 0);
    // Without in_progress: submit → completed.
    await job(241, 0, undefined, 250_000);
    // Other models, failures and other frames are not counted.
    await job(121, 0, 1, 0, "other/model");
    const prior = (await journal.runTimePrior(MODEL, 121))!;
    const kept = [...runs].sort((a, b) => a - b).slice(1, -1);
    const mean = kept.reduce((s, v) => s + v, 0) / kept.length;
    const std = Math.sqrt(kept.reduce((s, v) => s + (v - mean) ** 2, 0) / (kept.length - 1));
    assert.equal(prior.samples, 10);
    assert.ok(Math.abs(prior.meanMs - mean) < 1e-6, `${prior.meanMs} vs ${mean}`);
    assert.ok(Math.abs(prior.stdMs - std) < 1e-6);
    assert.ok(prior.meanMs < 110_000, "the 5 000 s outlier is trimmed");
    assert.deepEqual(await journal.runTimePrior(MODEL, 241), { meanMs: 250_000, stdMs: 0, samples: 1 });
    // The window keeps the most recent jobs only.
    assert.equal((await journal.runTimePrior(MODEL, 121, 3))?.samples, 3);
    assert.equal((await journal.runTimePrior(MODEL, 121, 3))?.meanMs, (5_000_000 + 101_000 + 98_000) / 3);
    assert.deepEqual(trimmedStats([]), undefined);
    await journal.close();
  });

  it("migrations are idempotent, versioned per module, and refuse a newer file", async () => {
    const path = dbPath();
    await Journal.open(path).close();
    withRawDb(path, (db) => {
      assert.equal(moduleVersion(db, JOURNAL_MODULE), 1);
      assert.equal(db.pragma("user_version", { simple: true }), 1);
      const steps = [
        "CREATE TABLE test_runs (id TEXT PRIMARY KEY)",
        "CREATE TABLE test_rows (run TEXT, key TEXT, PRIMARY KEY (run, key))",
      ];
      assert.equal(migrateModule(db, "test", steps), 2);
      assert.equal(migrateModule(db, "test", steps), 2);
      assert.equal(migrateModule(db, "test", [...steps, "ALTER TABLE test_rows ADD COLUMN note TEXT"]), 3);
      assert.equal(moduleVersion(db, "test"), 3);
      assert.equal(moduleVersion(db, JOURNAL_MODULE), 1);
      assert.throws(() => migrateModule(db, "test", steps), /newer than this program/);
      // A failing step rolls back entirely.
      assert.throws(() => migrateModule(db, "broken", ["CREATE TABLE ok1 (a)", "NOT SQL"]));
      assert.equal(moduleVersion(db, "broken"), 0);
      assert.equal(
        (db.prepare("SELECT count(*) AS c FROM sqlite_master WHERE name = 'ok1'").get() as { c: number }).c,
        0,
      );
    });
    // The batch tables are made on first use, under their own module version.
    const store = Journal.open(path);
    await store.batchRows("none");
    await store.close();
    withRawDb(path, (db) => {
      assert.equal(moduleVersion(db, BATCH_MODULE), BATCH_MIGRATIONS.length);
      db.pragma("user_version = 99");
    });
    assert.throws(
      () => Journal.open(path),
      (error: unknown) => {
        assert.ok(error instanceof StoreError);
        assert.equal(error.code, "store_too_new");
        assert.match(error.message, /newer than this program/);
        return true;
      },
    );
  });

  it("several processes writing at once: no SQLITE_BUSY, nothing lost", async () => {
    const path = dbPath();
    Journal.open(path).close();
    const perChild = 120;
    const code = `
      const [path, tag, count] = process.argv.slice(-3);
      const j = Journal.open(path);
      for (let i = 0; i < Number(count); i++) {
        const id = await j.beginSubmit({ modelId: "m", input: { prompt: tag + i, frames: 121 }, baseUrl: "b", batchId: tag });
        await j.submitAccepted(id, { requestId: tag + "_" + i });
        await j.recordStatus(tag + "_" + i, { status: "in_queue", queuePosition: 2 });
        await j.recordStatus(tag + "_" + i, { status: "in_progress" });
        await j.recordResult(tag + "_" + i, { status: "succeeded", outputUrls: ["https://cdn/x.mp4"] });
        if (i % 10 === 0) (await j.list({ limit: 5 }));
      }
      await j.close();
    `;
    const procs = ["a", "b", "c"].map((tag) => child(code, [path, tag, String(perChild)]));
    const results = await Promise.all(procs.map(exitOf));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const journal = Journal.open(path);
    for (const tag of ["a", "b", "c"]) {
      const rows = await journal.list({ batchId: tag, limit: 1000 });
      assert.equal(rows.length, perChild);
      assert.ok(rows.every((r) => r.state === "succeeded"));
    }
    const counts = withRawDb(
      path,
      (db) => db.prepare("SELECT count(*) AS c FROM transitions").get() as { c: number },
    );
    assert.equal(counts.c, 3 * perChild * 5);
    await journal.close();
  });

  it("a writer killed with SIGKILL mid-writes leaves a consistent, intact journal", async () => {
    const path = dbPath();
    const code = `
      const j = Journal.open(process.argv.at(-1));
      for (let i = 0; ; i++) {
        const id = await j.beginSubmit({ modelId: "m", input: { prompt: "p" + i, frames: 121 }, baseUrl: "b" });
        await j.submitAccepted(id, { requestId: "k" + i });
        await j.recordStatus("k" + i, { status: "in_queue", queuePosition: 1 });
        await j.recordStatus("k" + i, { status: "in_progress" });
        await j.recordResult("k" + i, { status: "succeeded", outputUrls: ["https://cdn/x.mp4"], raw: { pad: "x".repeat(2000) } });
        process.stdout.write(i + "\\n");
        // Leave the next one half done sometimes.
        if (i % 7 === 3) await j.beginSubmit({ modelId: "m", input: { prompt: "half" + i }, baseUrl: "b" });
      }
    `;
    const proc = child(code, [path]);
    let done = -1;
    const exited = exitOf(proc);
    await new Promise<void>((resolveWait) => {
      proc.stdout?.on("data", (d: Buffer) => {
        const lines = String(d).trim().split("\n");
        done = Number(lines.at(-1));
        if (done >= 60) resolveWait();
      });
    });
    proc.kill("SIGKILL");
    const { signal } = await exited;
    assert.equal(signal, "SIGKILL");
    const journal = Journal.open(path);
    assert.equal(
      withRawDb(path, (db) => db.pragma("integrity_check", { simple: true })),
      "ok",
    );
    // Every job the child reported finished is there, complete.
    for (let i = 0; i <= done; i++) {
      const r = await journal.get(`k${i}`);
      assert.equal(r?.state, "succeeded", `k${i}`);
      assert.equal(r?.transitions.length, 5);
    }
    // Nothing half-written: each row is in a state its transitions explain; dead intents are unknown.
    for (const r of await journal.list({ limit: 10_000 })) {
      const d = (await journal.get(r.localId))!;
      assert.ok(d.transitions.length >= 1);
      if (r.storedState === "submitting") assert.equal(r.state, "submission_unknown");
      if (r.requestId) assert.ok(d.transitions.some((t) => t.status === "submitted"));
    }
    assert.ok((await journal.unresolvedSubmissions()).length >= Math.floor(done / 7));
    await journal.close();
  });
});
