// runBatch against the real sandbox (in process, time-scaled so a job takes ~100-300 ms):
// dry run and price, invalid rows, skip-invalid, budget, resume, unknown submits, interrupts.

import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { sha256File } from "../../src/batch/index.js";
import { withRawDb } from "../helpers/sqlite.js";
import * as h from "./helpers.js";

let ws: h.Workspace;
before(async () => {
  ws = await h.workspace(3);
});
after(() => ws.cleanup());

describe("batch: validation and dry run", () => {
  test("dry run: the whole manifest priced from the service, nothing submitted", async () => {
    const sb = await h.sandbox();
    const journal = h.journal(ws.dir);
    try {
      const path = await h.writeJsonl(join(ws.dir, "dry.jsonl"), [
        { image: ws.images[0], prompt: "a", seed: 1 },
        { image: ws.images[1], prompt: "b", seed: 1, frames: 241 },
        { image: ws.images[2], prompt: "c", seed: 2, frames: 121 },
      ]);
      const { events, summary } = await h.drive(path, {
        sb,
        journal,
        outDir: join(ws.dir, "out-dry"),
        dryRun: true,
      });
      assert.equal(summary.exitCode, 0);
      assert.equal(summary.dryRun, true);
      const plan = events.find((e) => e.type === "plan");
      assert.ok(plan && plan.type === "plan");
      assert.equal(plan.toSubmit, 3);
      // $0.12 per second: 5 s + 10 s + 5 s.
      assert.equal(plan.estimatedUsd, 2.4);
      assert.equal(summary.price?.source, "service");
      assert.equal(h.submitCount(sb), 0);
      assert.equal(summary.report, undefined);
    } finally {
      await journal.close();
      await sb.close();
    }
  });

  test("dry run: when the models endpoint fails, the documented default price is used and said so", async () => {
    const sb = await h.sandbox({ faults: "models:500=1" });
    const journal = h.journal(ws.dir);
    try {
      const path = await h.writeJsonl(join(ws.dir, "dry2.jsonl"), [
        { image: ws.images[0], prompt: "a", seed: 1 },
      ]);
      const { summary } = await h.drive(path, {
        sb,
        journal,
        outDir: join(ws.dir, "out-dry2"),
        dryRun: true,
      });
      assert.equal(summary.price?.source, "default");
      assert.match(summary.price?.note ?? "", /default/);
      assert.equal(summary.estimatedUsd, 0.6);
    } finally {
      await journal.close();
      await sb.close();
    }
  });

  test("invalid rows are reported with their line numbers and nothing is submitted", async () => {
    const sb = await h.sandbox();
    const journal = h.journal(ws.dir);
    try {
      const path = join(ws.dir, "bad.jsonl");
      await writeFile(
        path,
        [
          JSON.stringify({ image: ws.images[0], prompt: "fine", seed: 1 }),
          JSON.stringify({ image: ws.tooSmall, prompt: "too small", seed: 1 }),
          JSON.stringify({ image: ws.images[1], prompt: "x".repeat(801), seed: 1 }),
          "{broken",
          JSON.stringify({ image: "images/missing.jpg", prompt: "no file", seed: 1 }),
          JSON.stringify({ image: ws.images[2], prompt: "bad frames", frames: 100 }),
          JSON.stringify({ image: ws.images[2], prompt: " \t ", seed: 1 }),
        ].join("\n"),
      );
      const { events, summary } = await h.drive(path, { sb, journal, outDir: join(ws.dir, "out-bad") });
      assert.equal(summary.exitCode, 65);
      const lines = [
        ...new Set(events.filter((e) => e.type === "row-invalid").map((e) => (e as { line: number }).line)),
      ].sort((a, b) => a - b);
      assert.deepEqual(lines, [2, 3, 4, 5, 6, 7]);
      const small = events.find((e) => e.type === "row-invalid" && e.line === 2);
      assert.ok(small && small.type === "row-invalid");
      assert.ok(small.problems.some((p) => /320/.test(p.message)));
      // A blank prompt: the model's rule, as run and submit report it.
      const blank = events.find((e) => e.type === "row-invalid" && e.line === 7);
      assert.ok(blank && blank.type === "row-invalid");
      assert.deepEqual(
        blank.problems.map((p) => [p.field, p.rule]),
        [["prompt", "blank"]],
      );
      assert.equal(h.submitCount(sb), 0);
      assert.equal(summary.invalid, 6);
    } finally {
      await journal.close();
      await sb.close();
    }
  });

  test("--skip-invalid runs the valid rows; the run still exits 1; report.json lists every row", async () => {
    const sb = await h.sandbox();
    const journal = h.journal(ws.dir);
    try {
      const path = await h.writeJsonl(join(ws.dir, "skip.jsonl"), [
        { image: ws.images[0], prompt: "ok 1", seed: 1 },
        { image: ws.tooSmall, prompt: "too small", seed: 1 },
        { image: ws.images[1], prompt: "ok 2", seed: 2 },
      ]);
      const out = join(ws.dir, "out-skip");
      const { summary } = await h.drive(path, { sb, journal, outDir: out, skipInvalid: true });
      assert.equal(summary.done, 2);
      assert.equal(summary.invalid, 1);
      assert.equal(summary.exitCode, 1);
      assert.equal(h.submitCount(sb), 2);
      const report = JSON.parse(await readFile(join(out, "report.json"), "utf8"));
      assert.deepEqual(
        report.rows.map((r: { status: string }) => r.status),
        ["done", "invalid", "done"],
      );
      assert.equal(report.rows[1].line, 2);
      const html = await readFile(join(out, "report.html"), "utf8");
      assert.ok(!html.includes("<b>"), "prompts are escaped");
      assert.match(html, /<video controls preload="metadata" src="[^"/]+\.mp4"><\/video>/);
    } finally {
      await journal.close();
      await sb.close();
    }
  });
});

describe("batch: the report lists every manifest line", () => {
  test("valid or not, each line is a row of report.json and a card of report.html, with its reason", async () => {
    const sb = await h.sandbox();
    const journal = h.journal(ws.dir);
    try {
      const path = join(ws.dir, "every-line.jsonl");
      await writeFile(
        path,
        [
          JSON.stringify({ image: ws.images[0], prompt: "ok 1", seed: 1, id: "first" }),
          "{broken",
          JSON.stringify({ image: ws.images[1], prompt: "ok 2", seed: 1 }),
          JSON.stringify({ image: ws.images[2], seed: 1, name: "no-prompt" }),
          JSON.stringify({ image: ws.images[2], prompt: "same id", seed: 2, id: "first" }),
          JSON.stringify({ image: ws.images[0], prompt: "bad name", seed: 2, name: "../x" }),
          JSON.stringify({ image: ws.tooSmall, prompt: "too small", seed: 1 }),
          JSON.stringify({ image: ws.images[1], prompt: "ok 3", seed: 2 }),
          JSON.stringify({ image: ws.images[0], prompt: "bad frames", frames: "many" }),
          "[1, 2]",
        ].join("\n"),
      );
      const out = join(ws.dir, "out-every-line");
      const { summary } = await h.drive(path, { sb, journal, outDir: out, skipInvalid: true });
      assert.equal(summary.rows, 10);
      assert.equal(summary.invalid, 7);
      assert.equal(summary.done, 3);
      const report = JSON.parse(await readFile(join(out, "report.json"), "utf8"));
      assert.deepEqual(
        report.rows.map((r: { line: number; status: string }) => [r.line, r.status]),
        [
          [1, "done"],
          [2, "invalid"],
          [3, "done"],
          [4, "invalid"],
          [5, "invalid"],
          [6, "invalid"],
          [7, "invalid"],
          [8, "done"],
          [9, "invalid"],
          [10, "invalid"],
        ],
      );
      assert.deepEqual(report.totals.rows, 10);
      assert.deepEqual(report.totals.invalid, 7);
      for (const row of report.rows.filter((r: { status: string }) => r.status === "invalid")) {
        assert.ok(Array.isArray(row.error) && row.error.length > 0, `line ${row.line} has its reason`);
        for (const problem of row.error) assert.ok(problem.message, `line ${row.line}: a message`);
      }
      const byLine = new Map(report.rows.map((r: { line: number }) => [r.line, r]));
      assert.match(JSON.stringify(byLine.get(2)), /not valid JSON/);
      assert.match(JSON.stringify(byLine.get(4)), /prompt is required/);
      assert.match(JSON.stringify(byLine.get(5)), /already used on line 1/);
      assert.match(JSON.stringify(byLine.get(7)), /320/);
      // What could be read of a line that never became a row is kept.
      assert.equal((byLine.get(4) as { name: string }).name, "no-prompt");
      assert.equal((byLine.get(5) as { prompt: string }).prompt, "same id");
      const html = await readFile(join(out, "report.html"), "utf8");
      assert.equal(html.match(/<article class="card /g)?.length, 10);
      assert.equal(html.match(/<article class="card invalid">/g)?.length, 7);
      assert.match(html, /not valid JSON/);
      assert.match(html, /line 10/);
    } finally {
      await journal.close();
      await sb.close();
    }
  });
});

describe("batch: money", () => {
  test("the budget stops submitting before it would be exceeded; actual costs are totalled", async () => {
    const sb = await h.sandbox();
    const journal = h.journal(ws.dir);
    try {
      const path = await h.writeJsonl(
        join(ws.dir, "budget.jsonl"),
        h.rows(ws, 5, (i) => ({ prompt: `budget ${i}` })),
      );
      const { events, summary } = await h.drive(path, {
        sb,
        journal,
        outDir: join(ws.dir, "out-budget"),
        budgetUsd: 1.5,
        concurrency: 1,
      });
      assert.ok(events.some((e) => e.type === "budget-stop"));
      assert.equal(h.submitCount(sb), 2);
      assert.equal(summary.done, 2);
      assert.equal(summary.costUsd, 1.2);
      assert.equal(summary.exitCode, 1);
    } finally {
      await journal.close();
      await sb.close();
    }
  });
});

describe("batch: exactly once", () => {
  test("a second run after a completed one submits nothing; missing or damaged files are fetched again", async () => {
    const sb = await h.sandbox();
    const journal = h.journal(ws.dir);
    try {
      const path = await h.writeJsonl(
        join(ws.dir, "resume.jsonl"),
        h.rows(ws, 6, (i) => ({ prompt: `resume ${i}` })),
      );
      const out = join(ws.dir, "out-resume");
      const first = await h.drive(path, { sb, journal, outDir: out, concurrency: 3 });
      assert.equal(first.summary.exitCode, 0);
      assert.equal(h.submitCount(sb), 6);

      const second = await h.drive(path, { sb, journal, outDir: out, concurrency: 3 });
      assert.equal(second.summary.exitCode, 0);
      assert.equal(second.summary.alreadyDone, 6);
      assert.equal(h.submitCount(sb), 6, "no new submissions");

      // One file deleted, one damaged: fetched again from the recorded URL, still no submit.
      const report = JSON.parse(await readFile(join(out, "report.json"), "utf8"));
      await rm(join(out, report.rows[0].file));
      await writeFile(join(out, report.rows[1].file), "garbage");
      const third = await h.drive(path, { sb, journal, outDir: out, concurrency: 3 });
      assert.equal(third.summary.exitCode, 0);
      assert.equal(third.summary.alreadyDone, 4);
      assert.equal(h.submitCount(sb), 6, "no new submissions");
      assert.equal(await sha256File(join(out, report.rows[0].file)), report.rows[0].sha256);
      assert.equal(await sha256File(join(out, report.rows[1].file)), report.rows[1].sha256);
    } finally {
      await journal.close();
      await sb.close();
    }
  });

  test("a submit whose outcome is unknown is left alone until --resubmit-unknown", async () => {
    // The first two submits create their job, then lose the connection before answering.
    const sb = await h.sandbox({ faults: "submit:lost=1#2" });
    const journal = h.journal(ws.dir);
    try {
      const path = await h.writeJsonl(
        join(ws.dir, "lost.jsonl"),
        h.rows(ws, 4, (i) => ({ prompt: `lost ${i}` })),
      );
      const out = join(ws.dir, "out-lost");
      const first = await h.drive(path, { sb, journal, outDir: out, concurrency: 1 });
      assert.equal(first.summary.unknown, 2);
      assert.equal(first.summary.done, 2);
      assert.equal(first.summary.exitCode, 1);
      assert.equal(h.submitCount(sb), 4);

      const second = await h.drive(path, { sb, journal, outDir: out, concurrency: 1 });
      assert.equal(second.summary.unknown, 2);
      assert.equal(h.submitCount(sb), 4, "unknown submits are not resent");
      assert.ok(second.events.some((e) => e.type === "row-unknown"));

      const third = await h.drive(path, { sb, journal, outDir: out, concurrency: 1, resubmitUnknown: true });
      assert.equal(third.summary.exitCode, 0);
      assert.equal(third.summary.resubmitted.length, 2);
      assert.equal(h.submitCount(sb), 6);
      // The only duplicates on the service are the two rows resubmitted on purpose.
      assert.equal(sb.jobs().filter((j) => j.submitCount > 1).length, 2);
    } finally {
      await journal.close();
      await sb.close();
    }
  });

  test("--resubmit-unknown gives up the unknown submits only together with the new intent row", async () => {
    const sb = await h.sandbox({ faults: "submit:lost=1#2" });
    const journal = h.journal(ws.dir);
    try {
      const path = await h.writeJsonl(
        join(ws.dir, "lost-tx.jsonl"),
        h.rows(ws, 2, (i) => ({ prompt: `lost tx ${i}` })),
      );
      const out = join(ws.dir, "out-lost-tx");
      const first = await h.drive(path, { sb, journal, outDir: out, concurrency: 1 });
      assert.equal(first.summary.unknown, 2);
      const unknownCount = async () => (await journal.list({ state: "submission_unknown" })).length;
      assert.equal(await unknownCount(), 2);

      // The journal refuses the new intent rows (a real SQLite failure, raised by a trigger).
      withRawDb(journal.location, (db) =>
        db.exec(
          "CREATE TRIGGER refuse_intent BEFORE INSERT ON jobs BEGIN SELECT RAISE(ABORT, 'journal refuses'); END;",
        ),
      );
      const refused = await h.drive(path, {
        sb,
        journal,
        outDir: out,
        concurrency: 1,
        resubmitUnknown: true,
      });
      assert.notEqual(refused.summary.exitCode, 0);
      assert.equal(h.submitCount(sb), 2, "nothing was sent without its intent row");
      // Rolled back with the failed intent row: the earlier submits are still unknown, not given up.
      assert.equal(await unknownCount(), 2);
      withRawDb(journal.location, (db) => db.exec("DROP TRIGGER refuse_intent"));

      const next = await h.drive(path, { sb, journal, outDir: out, concurrency: 1 });
      assert.equal(next.summary.unknown, 2, "still listed, and still not resent without the flag");
      assert.equal(h.submitCount(sb), 2);
    } finally {
      await journal.close();
      await sb.close();
    }
  });

  test("an interrupt stops submitting, leaves a resumable state, and the next run finishes without duplicates", async () => {
    const sb = await h.sandbox({ workers: 2 });
    const journal = h.journal(ws.dir);
    try {
      const path = await h.writeJsonl(
        join(ws.dir, "int.jsonl"),
        h.rows(ws, 12, (i) => ({ prompt: `int ${i}` })),
      );
      const out = join(ws.dir, "out-int");
      let submitted = 0;
      const { summary } = await h.drive(path, {
        sb,
        journal,
        outDir: out,
        concurrency: 4,
        onEvent: (event, abort) => {
          if (event.type === "submitted" && ++submitted === 3) abort();
        },
      });
      assert.equal(summary.exitCode, 130);
      assert.equal(summary.interrupted, true);
      assert.ok(h.submitCount(sb) < 12);

      const again = await h.drive(path, { sb, journal, outDir: out, concurrency: 4 });
      assert.equal(again.summary.exitCode, 0);
      assert.equal(again.summary.done, 12);
      assert.equal(sb.jobs().filter((j) => j.submitCount > 1).length, 0, "no duplicates");
      assert.equal(sb.jobs().length, 12);
    } finally {
      await journal.close();
      await sb.close();
    }
  });

  test("--cancel-queued-on-exit cancels queued jobs on interrupt; they are submitted again next time", async () => {
    const sb = await h.sandbox({ workers: 1, timeScale: 60 });
    const journal = h.journal(ws.dir);
    try {
      const path = await h.writeJsonl(
        join(ws.dir, "cq.jsonl"),
        h.rows(ws, 4, (i) => ({ prompt: `cq ${i}` })),
      );
      const out = join(ws.dir, "out-cq");
      let queued = 0;
      const { summary } = await h.drive(path, {
        sb,
        journal,
        outDir: out,
        concurrency: 4,
        cancelQueuedOnExit: true,
        timeScale: 60,
        onEvent: (event, abort) => {
          if (event.type === "status" && event.status === "in_queue" && ++queued === 2) abort();
        },
      });
      assert.equal(summary.exitCode, 130);
      const cancelled = sb.jobs().filter((j) => j.state === "cancelled").length;
      assert.ok(cancelled >= 1, "queued jobs were cancelled");
      const again = await h.drive(path, { sb, journal, outDir: out, concurrency: 4, timeScale: 60 });
      assert.equal(again.summary.exitCode, 0);
      // Only the cancelled (never run, never billed) jobs were submitted twice.
      assert.equal(sb.jobs().filter((j) => j.submitCount > 1).length, cancelled);
    } finally {
      await journal.close();
      await sb.close();
    }
  });
});
