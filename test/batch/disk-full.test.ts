// A batch whose --out fills up, on a real small file system (a tmpfs mounted for the test; it
// needs root, and the tests say so and skip without it): the run ends with its summary, a
// clear message and exit 75, leaves no temporary or partial files, and the same command run
// again after freeing space finishes every row without submitting any twice.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, statfs, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type BatchReport, writeJsonReport } from "../../src/batch/index.js";
import { type CliResult, spawnCli, type TempHome, tempHome } from "../helpers/cli.js";
import * as h from "./helpers.js";

let ws: h.Workspace;
let home: TempHome;
before(async () => {
  ws = await h.workspace(3);
  home = tempHome();
});
after(async () => {
  home.cleanup();
  await ws.cleanup();
});

interface SmallDisk {
  dir: string;
  /** Fills the disk but for `leaveBytes`. */
  fill(leaveBytes: number): Promise<void>;
  /** Deletes the filler. */
  free(): Promise<void>;
  close(): Promise<void>;
}

/** A tmpfs of `mib` MiB, or undefined when this process may not mount one (not root). */
async function smallDisk(mib = 1): Promise<SmallDisk | undefined> {
  const dir = await mkdtemp(join(tmpdir(), "dreamina-full-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${mib}m`, "tmpfs", dir], { stdio: "ignore" });
  } catch {
    await rm(dir, { recursive: true, force: true });
    return undefined;
  }
  const filler = join(dir, "filler");
  return {
    dir,
    fill: async (leaveBytes) => {
      const fs = await statfs(dir);
      await writeFile(filler, Buffer.alloc(Math.max(0, fs.bavail * fs.bsize - leaveBytes)));
    },
    free: () => rm(filler, { force: true }),
    close: async () => {
      execFileSync("umount", [dir], { stdio: "ignore" });
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const NO_MOUNT = "needs a small file system to fill: mounting a tmpfs requires root here";

/** Files a run must never leave behind: temporary reports and markers, partial downloads. */
function leftovers(files: string[]): string[] {
  return files.filter((f) => /\.tmp$|\.part$|\.part\.json$/.test(f));
}

function show(r: CliResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

describe("batch: a full disk", () => {
  test("the run ends with its summary, a clear message and exit 75; a rerun after freeing space finishes", async (t) => {
    const disk = await smallDisk();
    if (!disk) return t.skip(NO_MOUNT);
    const sb = await h.sandbox();
    try {
      const manifest = await h.writeJsonl(
        join(ws.dir, "full.jsonl"),
        h.rows(ws, 10, (i) => ({ prompt: `full ${i}`, seed: 10 + i })),
      );
      const out = join(disk.dir, "out");
      const batch = () =>
        spawnCli(
          ["batch", manifest, "--out", out, "--base-url", sb.url, "--concurrency", "2", "--rps", "500"],
          { env: home.env, cwd: ws.dir },
        ).done;
      // Room for the marker and a few ~5 KB videos, not for ten.
      await disk.fill(20 * 1024);
      const full = await batch();
      assert.equal(full.code, 75, show(full));
      assert.match(full.stderr, /the disk is full \(/, show(full));
      assert.match(full.stderr, /\d+ of 10 row\(s\) done/);
      assert.match(full.stderr, /Free space and run the same command again/);
      assert.doesNotMatch(full.stderr, /^error: ENOSPC/m);
      assert.deepEqual(leftovers(await readdir(out)), []);
      const submitted = h.submitCount(sb);
      assert.ok(submitted < 10, `it stopped submitting once the disk was full (${submitted} submits)`);

      await disk.free();
      const rerun = await batch();
      assert.equal(rerun.code, 0, show(rerun));
      assert.match(rerun.stdout, /10\/10 done/);
      assert.equal(h.submitCount(sb), 10, "every row submitted exactly once over both runs");
      const report = JSON.parse(await readFile(join(out, "report.json"), "utf8")) as BatchReport;
      assert.equal(report.rows.filter((r) => r.status === "done").length, 10);
      assert.deepEqual(leftovers(await readdir(out)), []);
    } finally {
      await sb.close();
      await disk.close();
    }
  });

  test("a disk already full: nothing is submitted, the summary and the message still come out", async (t) => {
    const disk = await smallDisk();
    if (!disk) return t.skip(NO_MOUNT);
    const sb = await h.sandbox();
    try {
      const manifest = await h.writeJsonl(
        join(ws.dir, "full0.jsonl"),
        h.rows(ws, 3, (i) => ({ prompt: `full0 ${i}`, seed: 30 + i })),
      );
      const out = join(disk.dir, "out");
      await disk.fill(0);
      const run = await spawnCli(["batch", manifest, "--out", out, "--base-url", sb.url, "--json"], {
        env: home.env,
        cwd: ws.dir,
      }).done;
      assert.equal(run.code, 75, show(run));
      const summary = JSON.parse(run.stdout);
      assert.match(
        summary.diskFull.message,
        /the disk is full .*0 of 3 row\(s\) done, 3 row\(s\) not submitted/,
      );
      assert.equal(summary.notRun, 3);
      assert.equal(h.submitCount(sb), 0);
      assert.deepEqual(leftovers(await readdir(out)), []);
    } finally {
      await sb.close();
      await disk.close();
    }
  });

  test("the journal on the same full disk: no crash, the same summary; a rerun after freeing space finishes", async (t) => {
    const disk = await smallDisk(4);
    if (!disk) return t.skip(NO_MOUNT);
    const sb = await h.sandbox();
    try {
      const manifest = await h.writeJsonl(
        join(ws.dir, "full-journal.jsonl"),
        h.rows(ws, 10, (i) => ({ prompt: `full journal ${i}`, seed: 40 + i })),
      );
      const out = join(disk.dir, "out");
      const journal = join(disk.dir, "journal.db");
      const batch = () =>
        spawnCli(
          ["batch", manifest, "--out", out, "--journal", journal, "--base-url", sb.url, "--concurrency", "2"],
          { env: home.env, cwd: ws.dir },
        ).done;
      // Room for the journal's tables and a few rows: its writes and the downloads run out together.
      await disk.fill(300 * 1024);
      const full = await batch();
      assert.equal(full.code, 75, show(full));
      assert.doesNotMatch(full.stderr, /SqliteError|^error: (ENOSPC|database or disk is full)/m, show(full));
      assert.match(full.stderr, /the disk is full \(writing .*\): \d+ of 10 row\(s\) done/, show(full));
      assert.deepEqual(leftovers(await readdir(out).catch(() => [])), []);

      await disk.free();
      const rerun = await batch();
      assert.equal(rerun.code, 0, show(rerun));
      assert.match(rerun.stdout, /10\/10 done/);
      assert.equal(h.submitCount(sb), 10, "every row submitted exactly once over both runs");
    } finally {
      await sb.close();
      await disk.close();
    }
  });

  test("a report that does not fit leaves no temporary file", async (t) => {
    const disk = await smallDisk();
    if (!disk) return t.skip(NO_MOUNT);
    try {
      await disk.fill(0);
      const report: BatchReport = {
        batchId: "b-test",
        manifest: undefined,
        manifestDigest: undefined,
        outDir: disk.dir,
        generatedAt: new Date().toISOString(),
        interrupted: false,
        budget: { limitUsd: undefined, stopped: false },
        price: { basePriceUsd: 0.12, priceUnit: "second", source: "default" },
        totals: {
          rows: 0,
          done: 0,
          failed: 0,
          invalid: 0,
          unknown: 0,
          notRun: 0,
          estimatedUsd: 0,
          costUsd: 0,
        },
        rows: [],
        // Bigger than anything a full disk has left.
        ...{ padding: "x".repeat(64 * 1024) },
      };
      await assert.rejects(writeJsonReport(disk.dir, report), { code: "ENOSPC" });
      assert.deepEqual(
        (await readdir(disk.dir)).filter((f) => f !== "filler"),
        [],
      );
    } finally {
      await disk.close();
    }
  });
});
