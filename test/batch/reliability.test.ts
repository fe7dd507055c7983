// Reliability against the real sandbox with faults on every endpoint: every row ends done or
// failed with a reason, no job is submitted twice unless resubmitted on purpose, and every
// file's sha256 is the sandbox's. Then the CLI as a child process, SIGKILLed three times at
// random moments and restarted: the same guarantees.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type BatchSummary, sha256File } from "../../src/batch/index.js";
import type { Sandbox } from "../../src/sandbox/index.js";
import type { SqliteJobStore } from "../../src/store/index.js";
import * as h from "./helpers.js";

let ws: h.Workspace;
before(async () => {
  ws = await h.workspace(4);
});
after(() => ws.cleanup());

const FAULTS = [
  "submit:429@0.05=0.05",
  "submit:500=0.03",
  "submit:reset=0.02",
  "submit:lost=0.04",
  "status:500=0.05",
  "status:502=0.03",
  "status:429@0.05=0.05",
  "status:reset=0.03",
  "result:500=0.05",
  "result:429-bare=0.03",
  "result:reset=0.03",
  "models:500=0.2",
  "cdn:truncate=0.05",
  "cdn:500=0.05",
  "cdn:reset=0.03",
  "job:fail=0.05",
  "seed=7",
].join(",");

interface ReportFile {
  batchId: string;
  rows: {
    key: string;
    status: string;
    requestId: string | null;
    file: string | null;
    sha256: string | null;
    error: unknown;
  }[];
}

/** The guarantees, checked from report.json, the journal and the sandbox's own records. */
async function checkGuarantees(sb: Sandbox, journal: SqliteJobStore, out: string, resubmitted: Set<string>) {
  const report = JSON.parse(await readFile(join(out, "report.json"), "utf8")) as ReportFile;
  const jobs = new Map(sb.jobs().map((j) => [j.id, j]));
  for (const row of report.rows) {
    assert.ok(row.status === "done" || row.status === "failed", `row ${row.key} ended ${row.status}`);
    if (row.status === "failed") {
      assert.ok(row.error, `failed row ${row.key} has a reason`);
      continue;
    }
    const job = jobs.get(row.requestId ?? "");
    assert.ok(job?.output, `row ${row.key}: the sandbox has its job`);
    assert.equal(row.sha256, job.output.sha256, `row ${row.key}: sha256 is the sandbox's`);
    assert.equal(await sha256File(join(out, row.file!)), job.output.sha256, `row ${row.key}: file on disk`);
  }
  // Duplicates: a job whose input was submitted before must belong to a row resubmitted on purpose.
  // A row's jobs share one input, so they are grouped by it: a resubmit whose own answer was lost
  // again has an id the client never heard of, but its row is known from the group's other jobs.
  const rowOf = new Map<string, string>();
  for (const rec of await journal.batchJobs(report.batchId)) {
    if (rec.requestId && rec.rowKey) rowOf.set(rec.requestId, rec.rowKey);
  }
  const byInput = new Map<string, string[]>();
  for (const job of sb.jobs())
    byInput.set(job.inputSha256, [...(byInput.get(job.inputSha256) ?? []), job.id]);
  const duplicates = sb.jobs().filter((j) => j.submitCount > 1);
  for (const job of duplicates) {
    const keys = new Set<string>();
    for (const id of byInput.get(job.inputSha256) ?? []) {
      const key = rowOf.get(id);
      if (key) keys.add(key);
    }
    assert.equal(keys.size, 1, `job ${job.id}: its input belongs to exactly one row of the batch`);
    const [key] = [...keys];
    assert.ok(
      key !== undefined && resubmitted.has(key),
      `job ${job.id} duplicates row ${key}, which was not resubmitted on purpose`,
    );
  }
  return { report, duplicates: duplicates.length };
}

describe("batch reliability", () => {
  test("150 rows, faults on every endpoint: exactly once, every file verified", {
    timeout: 60_000,
  }, async () => {
    const sb = await h.sandbox({ faults: FAULTS, workers: 16 });
    const journal = h.journal(ws.dir);
    try {
      const path = await h.writeJsonl(
        join(ws.dir, "rel.jsonl"),
        h.rows(ws, 150, (i) => ({ prompt: `reliability ${i}`, seed: 1 + (i % 3) })),
      );
      const out = join(ws.dir, "out-rel");
      const resubmitted = new Set<string>();
      let summary: BatchSummary | undefined;
      // Lost and ambiguous submits are left alone; then resubmitted on purpose, as a person would.
      for (let pass = 0; pass < 5; pass++) {
        ({ summary } = await h.drive(path, {
          sb,
          journal,
          outDir: out,
          concurrency: 16,
          resubmitUnknown: pass > 0,
          timeScale: 300,
        }));
        for (const key of summary.resubmitted) resubmitted.add(key);
        if (pass === 0) {
          assert.equal(summary.done + summary.failed + summary.unknown, 150);
          assert.ok(summary.failed > 0 || summary.unknown > 0, "the faults did bite");
        }
        if (summary.unknown === 0) break;
      }
      assert.ok(summary);
      assert.equal(summary.unknown, 0);
      assert.equal(summary.done + summary.failed, 150);
      const { duplicates } = await checkGuarantees(sb, journal, out, resubmitted);
      assert.ok(duplicates <= resubmitted.size);
      const failedReasons = summary.failures.map((f) => f.error.message);
      assert.ok(failedReasons.every((m) => m.length > 0));
    } finally {
      await journal.close();
      await sb.close();
    }
  });

  test("the CLI, SIGKILLed three times at random moments, then resumed: same guarantees", {
    timeout: 90_000,
  }, async () => {
    const sb = await h.sandbox({
      faults: "cdn:truncate=0.05,status:500=0.05,seed=3",
      workers: 8,
      timeScale: 200,
    });
    const journalPath = join(ws.dir, "kill-journal.db");
    try {
      const path = await h.writeJsonl(
        join(ws.dir, "kill.jsonl"),
        h.rows(ws, 60, (i) => ({ prompt: `kill ${i}`, seed: 1 + (i % 2) })),
      );
      const out = join(ws.dir, "out-kill");
      const cli = (extra: string[] = []) =>
        spawn(
          process.execPath,
          [
            "--import",
            "tsx",
            join(import.meta.dirname, "fixtures", "cli.ts"),
            "batch",
            path,
            "--out",
            out,
            "--base-url",
            sb.url,
            "--journal",
            journalPath,
            "--token",
            "kill-test-token",
            "--concurrency",
            "8",
            "--rps",
            "500",
            "--time-scale",
            "200",
            "--json",
            "-q",
            ...extra,
          ],
          { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NODE_NO_WARNINGS: "1" } },
        );
      const finish = (child: ReturnType<typeof cli>) =>
        new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>(
          (resolve) => {
            let stdout = "";
            let stderr = "";
            child.stdout?.on("data", (d) => {
              stdout += d;
            });
            child.stderr?.on("data", (d) => {
              stderr += d;
            });
            child.on("exit", (code, signal) => resolve({ code, signal, stdout, stderr }));
          },
        );

      const kills: number[] = [];
      const progress: string[] = [];
      for (let k = 0; k < 3; k++) {
        const child = cli();
        let exited = false;
        const done = finish(child).finally(() => {
          exited = true;
        });
        const started = Date.now();
        // Startup (tsx) takes ~1 s; a kill lands somewhere in validation, submits, waits or downloads.
        let delay = 900 + Math.floor(Math.random() * 1800);
        if (k === 2 && h.submitCount(sb) === 0) {
          // Startup outlasted both earlier kills (a loaded machine: all three once landed before any
          // submit): the last one counts from this run's first submit, so that one kill is mid-run.
          while (!exited && h.submitCount(sb) === 0) await new Promise((r) => setTimeout(r, 10));
          delay = Date.now() - started + Math.floor(Math.random() * 1800);
        }
        kills.push(delay);
        const timer = setTimeout(() => child.kill("SIGKILL"), Math.max(0, started + delay - Date.now()));
        const result = await done;
        clearTimeout(timer);
        progress.push(`${delay}ms:${result.signal ?? result.code}:${h.submitCount(sb)} submits`);
        if (result.signal !== "SIGKILL") {
          // It finished before the kill: fine, the next runs must then submit nothing new.
          assert.ok(result.code === 0 || result.code === 1, `exit ${result.code}: ${result.stderr}`);
        }
      }
      // The kills must have landed mid-run: some submits before the last one, not all rows done.
      assert.ok(h.submitCount(sb) > 0, `no submit before the kills: ${progress.join(" | ")}`);
      const beforeFinal = h.submitCount(sb);
      let final = await finish(cli());
      let summary = JSON.parse(final.stdout) as BatchSummary;
      const resubmitted = new Set<string>();
      if (summary.unknown > 0) {
        // Rows killed between the journal's intent row and the answer: listed, never resent silently.
        assert.equal(final.code, 1);
        assert.equal(h.submitCount(sb), beforeFinal + summary.submitted);
        final = await finish(cli(["--resubmit-unknown"]));
        summary = JSON.parse(final.stdout) as BatchSummary;
        for (const key of summary.resubmitted) resubmitted.add(key);
      }
      assert.equal(final.code, 0, `kills: ${progress.join(" | ")}; stderr: ${final.stderr}`);
      process.stderr.write(
        `# kill test: ${progress.join(" | ")}; final submitted ${summary.submitted}, reattached ${summary.reattached}, resubmitted ${resubmitted.size}\n`,
      );
      assert.equal(summary.done, 60);
      const { SqliteJobStore } = await import("../../src/store/index.js");
      const journal = SqliteJobStore.open(journalPath);
      try {
        await checkGuarantees(sb, journal, out, resubmitted);
      } finally {
        await journal.close();
      }
      // One more run: nothing to do, nothing submitted.
      const count = h.submitCount(sb);
      const idle = await finish(cli());
      assert.equal(idle.code, 0);
      assert.equal(h.submitCount(sb), count);
    } finally {
      await sb.close();
    }
  });
});
