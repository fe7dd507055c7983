// Where a batch writes, against the real sandbox: hostile ids never write outside --out, and
// one folder reached by two spellings (a symlink) is one batch with one owner (two real CLI
// processes, submits counted in the sandbox's request log).

import assert from "node:assert/strict";
import { mkdir, readdir, rm, symlink } from "node:fs/promises";
import { join, relative } from "node:path";
import { after, before, describe, test } from "node:test";
import { type CliResult, spawnCli, tempHome } from "../helpers/cli.js";
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
      journal.close();
      await sb.close();
    }
  });
});

describe("batch: one folder, one owner", () => {
  test("two processes on the same folder by two spellings (a symlink) never both run", {
    timeout: 90_000,
  }, async () => {
    // Jobs of ~2.5 s: the first process is still running when the second opens the batch.
    const sb = await h.sandbox({
      timeScale: 1,
      workers: 10,
      runTime: { 121: { meanMs: 2_500, jitterMs: 0 } },
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
