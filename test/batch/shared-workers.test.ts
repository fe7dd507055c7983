// One batch, three worker processes, one PostgreSQL: the CLI as a user would start it in three
// terminals (`dreamina batch shots.jsonl --store postgres://… --out renders`), against the
// sandbox with faults on every endpoint, one worker SIGKILLed twice mid-run and started again.
// At the end every row is done or failed with a reason, the sandbox saw no row submitted twice,
// the budget was never exceeded, and every video's sha256 is the sandbox's.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import { sha256File } from "../../src/batch/index.js";
import { skipWithoutPostgres, startTestPostgres, type TestPostgres } from "../helpers/postgres.js";
import * as h from "./helpers.js";

const server = await startTestPostgres();
const skip = skipWithoutPostgres(server);
const CLI = join(import.meta.dirname, "fixtures", "cli.ts");
let ws: h.Workspace;
const children: ChildProcess[] = [];

before(async () => {
  ws = await h.workspace(4);
});
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  if (!skip) await (server as TestPostgres).stop();
  await ws.cleanup();
});

/** About 10 % of the calls to every endpoint go wrong, in every way the sandbox knows. */
const FAULTS = [
  "submit:429@0.05=0.03",
  "submit:500=0.03",
  "submit:reset=0.02",
  "submit:lost=0.02",
  "status:500=0.04",
  "status:429@0.05=0.03",
  "status:reset=0.03",
  "result:500=0.04",
  "result:429-bare=0.03",
  "result:reset=0.03",
  "models:500=0.1",
  "cdn:truncate=0.04",
  "cdn:500=0.03",
  "cdn:reset=0.03",
  "job:fail=0.03",
  "seed=11",
].join(",");

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

async function sql<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

describe("one batch, three worker processes, one PostgreSQL", { skip }, () => {
  test("300 rows, 10 % faults, a worker killed twice: exactly once, budget held, every file verified", {
    timeout: 240_000,
  }, async () => {
    const url = await (server as TestPostgres).freshDatabase();
    const sb = await h.sandbox({ faults: FAULTS, workers: 32, timeScale: 60 });
    const home = await mkdtemp(join(tmpdir(), "dreamina-shared-home-"));
    try {
      const manifest = await h.writeJsonl(
        join(ws.dir, "shared.jsonl"),
        h.rows(ws, 300, (i) => ({ prompt: `shared worker row ${i}`, seed: 1 + (i % 2) })),
      );
      const out = join(ws.dir, "out-shared");
      // Every row fits the budget exactly (121 frames at the sandbox's US$0.12/s: US$0.60 a row):
      // a reservation that leaked or was taken twice would leave rows unpaid for.
      const budget = 300 * 0.6;
      const start = () => {
        const child = spawn(
          process.execPath,
          [
            "--import",
            "tsx",
            CLI,
            "batch",
            manifest,
            "--out",
            out,
            "--store",
            url,
            "--base-url",
            sb.url,
            "--token",
            "shared-test-token",
            "--concurrency",
            "8",
            "--rps",
            "400",
            "--budget",
            String(budget),
            "--time-scale",
            "60",
            "--json",
            "-q",
          ],
          {
            stdio: ["ignore", "pipe", "pipe"],
            env: {
              ...process.env,
              NODE_NO_WARNINGS: "1",
              DREAMINA_HOME: home,
              DREAMINA_STORE_LEASE_MS: "2000",
            },
          },
        );
        children.push(child);
        let stdout = "";
        let stderr = "";
        child.stdout?.on("data", (d) => {
          stdout += d;
        });
        child.stderr?.on("data", (d) => {
          stderr += d;
        });
        const exited = new Promise<Exit>((resolve) =>
          child.on("exit", (code, signal) => resolve({ code, signal, stdout, stderr })),
        );
        return { child, exited };
      };

      const steady = [start(), start()];
      const log: string[] = [];
      let victim = start();
      const killedPids: number[] = [];
      for (let kill = 0; kill < 2; kill++) {
        // Mid-run for the victim: once it has sent a submit of its own, somewhere in the next
        // half second (claims, submits, waits or downloads).
        const pid = victim.child.pid!;
        const deadline = Date.now() + 60_000;
        let sent = 0;
        while (sent === 0 && victim.child.exitCode === null && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 100));
          const rows = await sql<{ n: number }>(
            url,
            `SELECT count(*)::int AS n FROM dreamina.jobs WHERE pid = ${pid}`,
          ).catch(() => [{ n: 0 }]);
          sent = rows[0]?.n ?? 0;
        }
        const delay = Math.floor(Math.random() * 500);
        await new Promise((r) => setTimeout(r, delay));
        victim.child.kill("SIGKILL");
        const exit = await victim.exited;
        killedPids.push(pid);
        log.push(
          `kill ${kill + 1}: ${exit.signal ?? exit.code} ${delay} ms after its first submit, ${h.submitCount(sb)} submits so far`,
        );
        assert.equal(
          exit.signal,
          "SIGKILL",
          `the victim ended before its kill (${exit.code}): ${exit.stderr.slice(-1000)}`,
        );
        victim = start();
      }
      const exits = await Promise.all([...steady.map((w) => w.exited), victim.exited]);
      for (const exit of exits) {
        assert.ok(
          exit.code === 0 || exit.code === 1,
          `a worker exited ${exit.signal ?? exit.code}: ${exit.stderr.slice(-2000)}`,
        );
      }
      process.stderr.write(`# shared workers: ${log.join(" | ")}\n`);

      // Every row ended, and a failed one says why.
      const rows = await sql<{
        row_key: string;
        state: string;
        request_id: string | null;
        file: string | null;
        sha256: string | null;
        error_json: string | null;
      }>(url, "SELECT row_key, state, request_id, file, sha256, error_json FROM dreamina.batch_rows");
      assert.equal(rows.length, 300);
      const states = new Map<string, number>();
      for (const r of rows) states.set(r.state, (states.get(r.state) ?? 0) + 1);
      assert.deepEqual(
        [...states.keys()].filter((s) => s !== "done" && s !== "failed"),
        [],
        `rows not ended: ${JSON.stringify(Object.fromEntries(states))}`,
      );
      for (const r of rows)
        if (r.state === "failed") assert.ok(r.error_json, `row ${r.row_key} failed without a reason`);
      // Faults make some rows fail for good (a job failed on the service, a submit whose outcome
      // is unknown is never resent); most must still be done.
      assert.ok((states.get("done") ?? 0) >= 180, `only ${states.get("done")} of 300 done`);
      // The killed worker's rows were taken over: every row ended, including those it held.
      const victims = await sql<{ n: number }>(
        url,
        `SELECT count(*)::int AS n FROM dreamina.jobs WHERE pid IN (${killedPids.join(", ")})`,
      );
      assert.ok((victims[0]?.n ?? 0) >= 2, "the killed worker had submitted before its kills");

      // No row submitted twice: each input reached the sandbox as one job, each job once.
      const byInput = new Map<string, string[]>();
      for (const job of sb.jobs())
        byInput.set(job.inputSha256, [...(byInput.get(job.inputSha256) ?? []), job.id]);
      const twice = [...byInput.values()].filter((ids) => ids.length > 1);
      assert.deepEqual(twice, [], "an input was submitted as two jobs");
      assert.deepEqual(
        sb
          .jobs()
          .filter((j) => j.submitCount > 1)
          .map((j) => j.id),
        [],
      );
      const perRow = await sql<{ row_key: string; n: number }>(
        url,
        "SELECT row_key, count(*)::int AS n FROM dreamina.jobs WHERE state NOT IN ('rejected') GROUP BY row_key HAVING count(*) > 1",
      );
      assert.deepEqual(perRow, [], "a row has two jobs the service may have accepted");

      // The budget: reserved by the workers together, never more than it.
      const [batch] = await sql<{ budget_usd: number; reserved_usd: number }>(
        url,
        "SELECT budget_usd, reserved_usd FROM dreamina.batches",
      );
      assert.equal(batch?.budget_usd, budget);
      assert.ok((batch?.reserved_usd ?? 0) <= budget + 1e-9, `reserved ${batch?.reserved_usd} of ${budget}`);
      const billed = sb.jobs().reduce((sum, j) => sum + 0.6 * (j.submitCount > 0 ? 1 : 0), 0);
      assert.ok(billed <= budget + 1e-9, `the sandbox ran US$${billed} of jobs, over the budget`);

      // Every video on disk is the sandbox's.
      const jobs = new Map(sb.jobs().map((j) => [j.id, j]));
      for (const r of rows.filter((x) => x.state === "done")) {
        const job = jobs.get(r.request_id ?? "");
        assert.ok(job?.output, `row ${r.row_key}: the sandbox has its job`);
        assert.equal(r.sha256, job.output.sha256, `row ${r.row_key}: recorded sha256`);
        assert.equal(
          await sha256File(join(out, r.file!)),
          job.output.sha256,
          `row ${r.row_key}: file on disk`,
        );
      }

      // The last report covers the whole batch, whichever worker wrote it.
      const report = JSON.parse(await readFile(join(out, "report.json"), "utf8")) as {
        rows: { key: string; status: string }[];
      };
      const reported = new Map(report.rows.map((r) => [r.key, r.status]));
      for (const r of rows) {
        const status = reported.get(r.row_key);
        assert.ok(
          r.state === "done" ? status === "done" : status === "failed" || status === "unknown",
          `row ${r.row_key}: ${r.state} in the store, ${status} in the report`,
        );
      }

      // Another run finds nothing to do and submits nothing.
      const before = h.submitCount(sb);
      const again = await start().exited;
      assert.ok(again.code === 0 || again.code === 1, again.stderr);
      assert.equal(h.submitCount(sb), before);
    } finally {
      await sb.close();
      await rm(home, { recursive: true, force: true });
    }
  });
});
