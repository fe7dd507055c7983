// Interruptions, end to end: Ctrl-C (SIGINT) while the job is queued (it is cancelled, not
// billed) and while it runs (it keeps running; the exact `dreamina wait` command to pick it
// up is printed, and works), and `kill -9` mid-wait (the journal is enough to finish it).

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Sandbox } from "../../src/sandbox/index.js";
import {
  assertMp4,
  type CliResult,
  cli,
  idle,
  inProcessSandbox,
  parseJson,
  sha256File,
  spawnCli,
  type TempHome,
  tempHome,
} from "../helpers/cli.js";
import { jpeg } from "../helpers/images.js";

let sandbox: Sandbox;
let home: TempHome;
let image: string;

function args(rest: string[]): string[] {
  return ["--base-url", sandbox.url, ...rest];
}

function dreamina(rest: string[]): Promise<CliResult> {
  return cli(args(rest), { env: home.env, cwd: home.dir });
}

function show(r: CliResult): string {
  return `exit ${r.code} (${r.signal ?? "no signal"})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

async function journalRow(id: string) {
  const r = await cli(["jobs", "show", id, "--json"], { env: home.env });
  assert.equal(r.code, 0, show(r));
  return parseJson<{ job: { state: string; requestId: string; files: { sha256: string }[] } }>(r).job;
}

before(async () => {
  sandbox = await inProcessSandbox({
    workers: 1,
    // The 241-frame job must outlast a second CLI process starting and submitting, on a slow machine too.
    runTime: { 121: { meanMs: 1_000, jitterMs: 0 }, 241: { meanMs: 6_000, jitterMs: 0 } },
  });
  home = tempHome();
  image = join(home.dir, "photo.jpg");
  writeFileSync(image, await jpeg(800, 600));
});

after(async () => {
  await sandbox.close();
  home.cleanup();
});

describe("Ctrl-C and kill -9", () => {
  it("Ctrl-C while queued: exit 130, the job is cancelled in the sandbox and the output says so", async () => {
    const blocker = await dreamina(["submit", "-i", image, "-p", "keeps the worker busy", "--frames", "241"]);
    assert.equal(blocker.code, 0, show(blocker));
    const run = spawnCli(args(["run", "-i", image, "-p", "queued", "-o", "queued.mp4"]), {
      env: home.env,
      cwd: home.dir,
    });
    const id = (await run.waitFor(/^([\w-]+) {2}in_queue/m))[1] as string;
    run.child.kill("SIGINT");
    const r = await run.done;
    assert.equal(r.code, 130, show(r));
    assert.match(r.stderr, /interrupted: stopping/);
    assert.match(r.stderr, /still queued and has been cancelled: it will not run or be billed/);
    assert.doesNotMatch(r.stderr, /dreamina wait/, "nothing to resume");
    assert.equal(sandbox.jobs().find((j) => j.id === id)?.state, "cancelled");
    const cancels = sandbox.requests().filter((e) => e.route === "cancel" && e.requestId === id);
    assert.equal(cancels.length, 1);
    assert.equal((await journalRow(id)).state, "cancelled", "the journal knows it was cancelled");
  });

  it("Ctrl-C while running: exit 130, it keeps running and is billed; the printed `dreamina wait` finishes it", async () => {
    await idle(sandbox);
    const run = spawnCli(
      args(["run", "-i", image, "-p", "running", "--frames", "241", "-o", "running.mp4"]),
      {
        env: home.env,
        cwd: home.dir,
      },
    );
    const id = (await run.waitFor(/^([\w-]+) {2}in_progress/m))[1] as string;
    run.child.kill("SIGINT");
    const r = await run.done;
    assert.equal(r.code, 130, show(r));
    assert.match(r.stderr, /keeps running and is billed/);
    const resume = /^To pick it up again \(no new job, no new charge\): (dreamina wait .+)$/m.exec(
      r.stderr,
    )?.[1];
    assert.equal(resume, `dreamina wait ${id} -o running.mp4`);
    assert.equal(
      sandbox.requests().filter((e) => e.route === "cancel" && e.requestId === id).length,
      0,
      "a running job is not sent a pointless cancel",
    );

    const resumed = await dreamina(resume.split(" ").slice(1));
    assert.equal(resumed.code, 0, show(resumed));
    const file = join(home.dir, "running.mp4");
    assert.equal(resumed.stdout.trim(), file);
    assertMp4(file);
    const job = sandbox.jobs().find((j) => j.id === id);
    assert.equal(sha256File(file), job?.output?.sha256);
    assert.equal(job?.submitCount, 1);
    assert.equal((await journalRow(id)).state, "succeeded");
  });

  it("--timeout: exit 75, the job is left running and the exact `dreamina wait` command is printed", async () => {
    await idle(sandbox);
    const r = await dreamina([
      "run",
      "-i",
      image,
      "-p",
      "deadline",
      "--frames",
      "241",
      "--timeout",
      "1.5",
      "-o",
      "late.mp4",
    ]);
    assert.equal(r.code, 75, show(r));
    assert.match(r.stderr, /Gave up waiting for request [\w-]+ after 1500 ms/);
    assert.match(
      r.stderr,
      /^To pick it up again \(no new job, no new charge\): dreamina wait [\w-]+ -o late\.mp4$/m,
    );
    const id = /dreamina wait ([\w-]+)/.exec(r.stderr)?.[1];
    assert.notEqual(
      sandbox.jobs().find((j) => j.id === id)?.state,
      "cancelled",
      "a deadline does not cancel",
    );
  });

  it("kill -9 during a wait: `dreamina wait <id>` (id from `dreamina jobs --json`) finishes it from the journal", async () => {
    await idle(sandbox);
    const run = spawnCli(args(["run", "-i", image, "-p", "killed", "--frames", "241", "-o", "killed.mp4"]), {
      env: home.env,
      cwd: home.dir,
    });
    await run.waitFor(/in_progress/);
    run.child.kill("SIGKILL");
    const r = await run.done;
    assert.equal(r.signal, "SIGKILL");

    const list = await cli(["jobs", "--json"], { env: home.env });
    const rows = parseJson<{ jobs: { requestId: string | null; state: string; prompt: string }[] }>(
      list,
    ).jobs;
    const row = rows.find((j) => j.prompt === "killed");
    assert.ok(row?.requestId, JSON.stringify(rows));
    assert.equal(row.state, "in_progress");

    const resumed = await dreamina(["--json", "wait", row.requestId, "-o", "killed.mp4"]);
    assert.equal(resumed.code, 0, show(resumed));
    const doc = parseJson<{ file: string; files: { sha256: string }[] }>(resumed);
    assertMp4(doc.file);
    const job = sandbox.jobs().find((j) => j.id === row.requestId);
    assert.equal(sha256File(doc.file), job?.output?.sha256);
    assert.equal(job?.submitCount, 1, "resuming never resubmits");
    const detail = await journalRow(row.requestId);
    assert.equal(detail.state, "succeeded");
    assert.equal(detail.files[0]?.sha256, job?.output?.sha256);
  });
});
