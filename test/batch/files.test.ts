// Where a batch writes, against the real sandbox: hostile ids never write outside --out, and
// one folder reached by two spellings (a symlink) is one batch with one owner (two real CLI
// processes, submits counted in the sandbox's request log).

import assert from "node:assert/strict";
import { mkdir, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { after, before, describe, test } from "node:test";
import { type BatchEvent, sha256File } from "../../src/batch/index.js";
import { type CliResult, spawnCli, tempHome } from "../helpers/cli.js";
import { withRawDb } from "../helpers/sqlite.js";
import * as h from "./helpers.js";

let ws: h.Workspace;
before(async () => {
  ws = await h.workspace(3);
});
after(() => ws.cleanup());

/** Every file under `dir`, relative to it. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

describe("batch: output paths", () => {
  test("ids with path traversal or markup only ever name files inside --out", async () => {
    const sb = await h.sandbox();
    const journal = h.journal(ws.dir);
    try {
      const root = join(ws.dir, "ids");
      const out = join(root, "a", "b", "out");
      const ids = ["/../../vid", "/../../../", "<b>x</b>"];
      const path = await h.writeJsonl(
        join(ws.dir, "ids.jsonl"),
        ids.map((id, i) => ({ image: ws.images[i], prompt: `id ${i}`, seed: 1, id })),
      );
      const { summary } = await h.drive(path, { sb, journal, outDir: out });
      assert.equal(summary.exitCode, 0, JSON.stringify(summary.failures));
      assert.equal(summary.done, 3);
      const files = await filesUnder(root);
      const videos = files.filter((f) => f.endsWith(".mp4"));
      assert.equal(videos.length, 3, files.join(", "));
      for (const f of files) assert.ok(f.startsWith(join("a", "b", "out") + "/"), `${f} is outside --out`);
      for (const f of videos) assert.doesNotMatch(f.slice("a/b/out/".length), /[<>/]/);
    } finally {
      await journal.close();
      await sb.close();
    }
  });
});

describe("batch: one folder, one owner", () => {
  test("two processes on the same folder by two spellings (a symlink) never both run", {
    timeout: 90_000,
  }, async () => {
    // Jobs of 10 s: the first process is still running when the second opens the batch, even when
    // the second takes seconds to start (with 2.5 s jobs, a loaded machine once saw the first
    // finish before the second looked, and both exit 0).
    const sb = await h.sandbox({
      timeScale: 1,
      workers: 10,
      runTime: { 121: { meanMs: 10_000, jitterMs: 0 } },
    });
    const home = tempHome();
    try {
      const manifest = await h.writeJsonl(
        join(ws.dir, "twice.jsonl"),
        h.rows(ws, 10, (i) => ({ prompt: `twice ${i}`, seed: 1 })),
      );
      const journalPath = join(home.dir, "journal.db");
      const batch = (out: string) =>
        spawnCli(
          [
            "batch",
            manifest,
            "--out",
            out,
            "--base-url",
            sb.url,
            "--journal",
            journalPath,
            "--concurrency",
            "10",
          ],
          { env: home.env, cwd: ws.dir },
        );
      const show = (r: CliResult) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
      const lockedOrDone = (results: CliResult[]) => {
        const locked = results.filter((r) => r.code === 75);
        assert.equal(locked.length, 1, results.map(show).join("\n---\n"));
        assert.match(locked[0]!.stderr, /being run by another process/);
        assert.equal(results.filter((r) => r.code === 0).length, 1, results.map(show).join("\n---\n"));
      };

      // 1. Started at the same moment: `out` and `outlink/`.
      await mkdir(join(ws.dir, "out-twice"));
      await symlink(join(ws.dir, "out-twice"), join(ws.dir, "outlink"));
      lockedOrDone(await Promise.all([batch("out-twice").done, batch("outlink/").done]));
      assert.equal(h.submitCount(sb), 10, "10 rows: 10 submits");

      // 2. The second starts while the first runs and the marker file is gone (deleted, or not
      //    written yet): the folder is still known by its real path.
      await mkdir(join(ws.dir, "out-twice2"));
      await symlink(join(ws.dir, "out-twice2"), join(ws.dir, "outlink2"));
      const first = batch("out-twice2");
      while (h.submitCount(sb) === 10) await new Promise((r) => setTimeout(r, 20));
      await rm(join(ws.dir, "out-twice2", ".dreamina-batch.json"), { force: true });
      const second = await batch("outlink2/").done;
      lockedOrDone([await first.done, second]);
      assert.equal(h.submitCount(sb), 20, "10 more rows for the second folder: 10 more submits");
    } finally {
      home.cleanup();
      await sb.close();
    }
  });
});

describe("batch: files already in --out", () => {
  test("a row whose file exists is refused before anything is submitted; the dry run says so; --force overwrites", async () => {
    const sb = await h.sandbox();
    const journal = h.journal(ws.dir);
    try {
      const out = join(ws.dir, "out-keep");
      await mkdir(out);
      await writeFile(join(out, "keep.mp4"), "the user's own video");
      const path = await h.writeJsonl(join(ws.dir, "keep.jsonl"), [
        { image: ws.images[0], prompt: "new one", seed: 1, name: "fresh" },
        { image: ws.images[1], prompt: "would overwrite", seed: 1, name: "keep" },
      ]);
      const refusedLine = (events: BatchEvent[]) =>
        events.flatMap((e) => (e.type === "row-invalid" ? [e] : []));

      // The dry run lists it, with the reason.
      const dry = await h.drive(path, { sb, journal, outDir: out, dryRun: true });
      assert.equal(dry.summary.exitCode, 65);
      const [dryRefusal] = refusedLine(dry.events);
      assert.equal(dryRefusal?.line, 2);
      assert.match(
        dryRefusal!.problems[0]!.message,
        /keep\.mp4 already exists and was not written by this batch/,
      );
      assert.match(dryRefusal!.problems[0]!.message, /--force/);

      // Also when other rows are invalid: the dry run reports every problem at once.
      const mixed = join(ws.dir, "keep-mixed.jsonl");
      await writeFile(mixed, `${await readFile(path, "utf8")}{broken\n`);
      const dryMixed = await h.drive(mixed, { sb, journal, outDir: out, dryRun: true });
      assert.equal(dryMixed.summary.exitCode, 65);
      assert.deepEqual(
        refusedLine(dryMixed.events).map((e) => e.line),
        [3, 2],
      );

      // The real run refuses the whole batch: nothing is submitted, nothing replaced.
      const run = await h.drive(path, { sb, journal, outDir: out });
      assert.equal(run.summary.exitCode, 65);
      assert.equal(run.summary.invalid, 1);
      assert.equal(refusedLine(run.events)[0]?.line, 2);
      assert.equal(h.submitCount(sb), 0);
      assert.equal(await readFile(join(out, "keep.mp4"), "utf8"), "the user's own video");

      // --skip-invalid runs the other row only; the report lists the refused one with its reason.
      const skip = await h.drive(path, { sb, journal, outDir: out, skipInvalid: true });
      assert.equal(skip.summary.done, 1);
      assert.equal(skip.summary.exitCode, 1);
      assert.equal(h.submitCount(sb), 1);
      assert.equal(await readFile(join(out, "keep.mp4"), "utf8"), "the user's own video");
      const report = JSON.parse(await readFile(join(out, "report.json"), "utf8"));
      assert.equal(report.rows[1].status, "invalid");
      assert.match(JSON.stringify(report.rows[1].error), /already exists/);

      // --force: overwritten.
      const forced = await h.drive(path, { sb, journal, outDir: out, force: true });
      assert.equal(forced.summary.exitCode, 0);
      assert.equal(h.submitCount(sb), 2);
      const requestId = rowRequest(forced.events, 2);
      const job = sb.jobs().find((j) => j.id === requestId);
      assert.equal(await sha256File(join(out, "keep.mp4")), job?.output?.sha256);
    } finally {
      await journal.close();
      await sb.close();
    }
  });

  test("a paid video never replaces a file this batch did not write: it is saved beside it, or adopted when identical", async () => {
    const sb = await h.sandbox();
    const journal = h.journal(ws.dir);
    try {
      const out = join(ws.dir, "out-paid");
      const path = await h.writeJsonl(join(ws.dir, "paid.jsonl"), [
        { image: ws.images[0], prompt: "paid a", seed: 1, name: "a" },
        { image: ws.images[1], prompt: "paid b", seed: 1, name: "b" },
      ]);
      const first = await h.drive(path, { sb, journal, outDir: out });
      assert.equal(first.summary.exitCode, 0);
      const shaA = await sha256File(join(out, "a.mp4"));
      const shaB = await sha256File(join(out, "b.mp4"));
      // As after a crash between the file's rename and the group commit of its outcome: the
      // journal says the jobs succeeded, the batch has no record of their files. Then the user
      // puts another file where b's video was.
      withRawDb(journal.location, (db) => db.prepare("DELETE FROM batch_rows").run());
      await writeFile(join(out, "b.mp4"), "someone else's b");

      const second = await h.drive(path, { sb, journal, outDir: out });
      assert.equal(second.summary.exitCode, 0);
      assert.equal(h.submitCount(sb), 2, "nothing submitted again");
      // a.mp4 was this very video: kept as the row's file, no copy.
      assert.equal(await sha256File(join(out, "a.mp4")), shaA);
      // b.mp4 is the user's: kept; the paid video went beside it, and the run said so.
      assert.equal(await readFile(join(out, "b.mp4"), "utf8"), "someone else's b");
      assert.equal(await sha256File(join(out, "b (1).mp4")), shaB);
      const videos = (await readdir(out)).filter((f) => f.endsWith(".mp4")).sort();
      assert.deepEqual(videos, ["a.mp4", "b (1).mp4", "b.mp4"]);
      const notes = second.events.flatMap((e) => (e.type === "row-done" && e.note ? [e.note] : []));
      assert.equal(notes.length, 1);
      assert.match(notes[0]!, /b\.mp4 already exists .* saved as b \(1\)\.mp4/);

      // And the run after that knows both files as the rows' own.
      const third = await h.drive(path, { sb, journal, outDir: out });
      assert.equal(third.summary.alreadyDone, 2);
    } finally {
      await journal.close();
      await sb.close();
    }
  });
});

/** The request id submitted for the row on `line`. */
function rowRequest(events: BatchEvent[], line: number): string | undefined {
  for (const e of events) if (e.type === "submitted" && e.row.line === line) return e.requestId;
  return undefined;
}
