// `dreamina batch --status` and `dreamina jobs` on a shared store, end to end: two `dreamina batch`
// processes share one batch on a real PostgreSQL; --status then shows the batch's rows by state and
// each worker's share (host and pid), --json the same; `jobs` names the worker that sent each job.
// On SQLite, --status reads the batch of --out.

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Sandbox } from "../../src/sandbox/index.js";
import { type CliResult, cli, inProcessSandbox, parseJson, type TempHome, tempHome } from "../helpers/cli.js";
import { jpeg } from "../helpers/images.js";
import { skipWithoutPostgres, startTestPostgres, type TestPostgres } from "../helpers/postgres.js";

const server = await startTestPostgres();
const skip = skipWithoutPostgres(server);
let sandbox: Sandbox;
let home: TempHome;
let manifest: string;

function show(r: CliResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

function dreamina(args: string[]): Promise<CliResult> {
  return cli(["--base-url", sandbox.url, ...args], { env: home.env, cwd: home.dir });
}

before(async () => {
  if (skip) return;
  sandbox = await inProcessSandbox();
  home = tempHome();
  writeFileSync(join(home.dir, "photo.jpg"), await jpeg(640, 480));
  manifest = join(home.dir, "shots.jsonl");
  writeFileSync(
    manifest,
    Array.from({ length: 6 }, (_, i) =>
      JSON.stringify({ image: "photo.jpg", prompt: `status shot ${i}`, seed: i + 1 }),
    )
      .map((l) => `${l}\n`)
      .join(""),
  );
});

after(async () => {
  if (skip) return;
  await sandbox.close();
  home.cleanup();
  await (server as TestPostgres).stop();
});

type Status = {
  batchId: string;
  rows: number;
  queued: number;
  states: Record<string, number>;
  workers: { host: string; pid: number; claimed: number; done: number; failed: number }[];
};

describe("batch --status on a shared store", { skip }, () => {
  it("two workers share the batch; --status shows every row done and each worker's share", async () => {
    const url = await (server as TestPostgres).freshDatabase();
    const before = await dreamina(["--store", url, "--json", "batch", manifest, "--status"]);
    assert.equal(before.code, 0, show(before));
    assert.equal(parseJson<Status>(before).queued, 0, "not started yet");

    const run = (out: string) =>
      dreamina([
        "--store",
        url,
        "--json",
        "batch",
        manifest,
        "--out",
        join(home.dir, out),
        "--concurrency",
        "2",
      ]);
    const [a, b] = await Promise.all([run("out-a"), run("out-b")]);
    assert.equal(a.code, 0, show(a));
    assert.equal(b.code, 0, show(b));
    // Each worker's summary is the whole batch's: six rows done, whoever did them.
    for (const r of [a, b]) assert.equal(parseJson<{ done: number }>(r).done, 6);
    const submits = sandbox.requests().filter((r) => r.route === "submit" && r.method === "POST").length;
    assert.equal(submits, 6, "each row submitted once");

    const status = await dreamina(["--store", url, "--json", "batch", manifest, "--status"]);
    assert.equal(status.code, 0, show(status));
    const s = parseJson<Status>(status);
    assert.deepEqual(s.states, { done: 6 });
    assert.equal(s.rows, 6);
    assert.ok(s.workers.length >= 1 && s.workers.length <= 2);
    assert.equal(
      s.workers.reduce((n, w) => n + w.done, 0),
      6,
    );
    assert.ok(s.workers.every((w) => w.host === hostname()));

    const text = await dreamina(["--store", url, "batch", manifest, "--status"]);
    assert.equal(text.code, 0, show(text));
    assert.match(text.stdout, /6 done, 0 failed, 0 in progress, 0 waiting/);
    for (const w of s.workers) assert.match(text.stdout, new RegExp(`${hostname()} pid ${w.pid}`));

    const jobs = await dreamina(["--store", url, "jobs"]);
    assert.equal(jobs.code, 0, show(jobs));
    assert.match(jobs.stdout, /WORKER/);
    for (const w of s.workers) assert.match(jobs.stdout, new RegExp(`${hostname()}:${w.pid}`));
  });

  it("on SQLite: --status reads the batch of --out; without --out it is a usage error", async () => {
    const journal = join(home.dir, "local.db");
    const out = join(home.dir, "out-local");
    const ran = await dreamina(["--journal", journal, "--json", "batch", manifest, "--out", out]);
    assert.equal(ran.code, 0, show(ran));
    const status = await dreamina(["--journal", journal, "batch", manifest, "--status", "--out", out]);
    assert.equal(status.code, 0, show(status));
    assert.match(status.stdout, /6 rows: 6 done, 0 failed, 0 not done/);
    const noOut = await dreamina(["--journal", journal, "batch", manifest, "--status"]);
    assert.equal(noOut.code, 64, show(noOut));
    assert.match(noOut.stderr, /needs --out/);
    const noRun = await dreamina(["--journal", journal, "batch", manifest]);
    assert.equal(noRun.code, 64, show(noRun));
    assert.match(noRun.stderr, /--out is required/);
  });
});
