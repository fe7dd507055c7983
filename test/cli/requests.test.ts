// `status`, `result` and `cancel` against one request each, end to end: a sandbox with one
// worker and a first job that never ends within the test, so that the next one is really queued
// however slowly the CLI processes start. A failed job gets a sandbox of its own (the first one's
// worker stays busy).

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Sandbox } from "../../src/sandbox/index.js";
import { type CliResult, cli, inProcessSandbox, parseJson, type TempHome, tempHome } from "../helpers/cli.js";
import { jpeg } from "../helpers/images.js";

let sandbox: Sandbox;
let spare: Sandbox;
let home: TempHome;
let image: string;

function dreamina(args: string[], on: Sandbox = sandbox): Promise<CliResult> {
  return cli(["--base-url", on.url, ...args], { env: home.env, cwd: home.dir });
}

function show(r: CliResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

async function submit(prompt: string, frames = 121, on: Sandbox = sandbox): Promise<string> {
  const r = await dreamina(["submit", "-i", image, "-p", prompt, "--frames", String(frames)], on);
  assert.equal(r.code, 0, show(r));
  return r.stdout.trim();
}

async function journalState(id: string): Promise<string | undefined> {
  const r = await cli(["jobs", "--json"], { env: home.env });
  return parseJson<{ jobs: { requestId: string | null; state: string }[] }>(r).jobs.find(
    (j) => j.requestId === id,
  )?.state;
}

before(async () => {
  sandbox = await inProcessSandbox({
    workers: 1,
    // A fixed run time for the long job was a race with the CLI processes that must see it running
    // (15 s was not enough on a loaded 2-core machine): an hour is never reached; close() ends it.
    runTime: { 121: { meanMs: 800, jitterMs: 0 }, 241: { meanMs: 3_600_000, jitterMs: 0 } },
  });
  spare = await inProcessSandbox({ workers: 1, runTime: { 121: { meanMs: 800, jitterMs: 0 } } });
  home = tempHome();
  image = join(home.dir, "photo.png");
  writeFileSync(image, await jpeg(640, 480));
});

after(async () => {
  await sandbox.close();
  await spare.close();
  home.cleanup();
});

describe("status, result, cancel", () => {
  let running: string;
  let queued: string;

  it("status: in_progress for the running job, in_queue with its position for the next", async () => {
    running = await submit("long one", 241);
    queued = await submit("queued one");
    const a = await dreamina(["--json", "status", running]);
    assert.equal(a.code, 0, show(a));
    assert.deepEqual(parseJson(a), {
      ok: true,
      requestId: running,
      status: "in_progress",
      rawStatus: "in_progress",
      queuePosition: null,
    });
    const b = await dreamina(["status", queued]);
    assert.equal(b.code, 0, show(b));
    assert.match(b.stdout, new RegExp(`^${queued}  in_queue  \\(queue position \\d+\\)\\n$`));
  });

  it("cancel of a running job: exit 1, not_cancellable, it keeps running", async () => {
    const r = await dreamina(["cancel", running]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stdout, /not cancellable: it is already running or finished, and is billed/);
    const json = await dreamina(["--json", "cancel", running]);
    assert.equal(json.code, 1);
    assert.deepEqual(parseJson(json), {
      ok: false,
      requestId: running,
      outcome: "not_cancellable",
      status: "in_progress",
    });
    assert.equal(sandbox.jobs().find((j) => j.id === running)?.state, "in_progress");
  });

  it("result of an unfinished job: exit 0, its current state, no URL", async () => {
    const r = await dreamina(["--json", "result", running]);
    assert.equal(r.code, 0, show(r));
    const doc = parseJson<{ status: string; outputUrls: string[]; error: unknown }>(r);
    assert.equal(doc.status, "in_progress");
    assert.deepEqual(doc.outputUrls, []);
    assert.equal(doc.error, null);
  });

  it("cancel of a queued job: exit 0, cancelled in the sandbox and in the journal", async () => {
    const r = await dreamina(["cancel", queued]);
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stdout, `${queued}  cancelled\n`);
    assert.equal(sandbox.jobs().find((j) => j.id === queued)?.state, "cancelled");
    assert.equal(await journalState(queued), "cancelled");
    const result = await dreamina(["result", queued]);
    assert.equal(result.code, 1, "a cancelled job's result exits 1");
    assert.match(result.stdout, /cancelled/);
    const w = await dreamina(["wait", queued, "-o", "never.mp4"]);
    assert.equal(w.code, 1, show(w));
    assert.match(w.stderr, /was cancelled/);
  });

  it("a failed job: wait exits 1 with the service's error; result exits 1 and shows it; the journal keeps it", async () => {
    spare.setFaults("job:fail=1");
    let failed: string;
    try {
      failed = await submit("this one fails", 121, spare);
    } finally {
      spare.setFaults(undefined);
    }
    const w = await dreamina(["wait", failed, "-o", "failed.mp4"], spare);
    assert.equal(w.code, 1, show(w));
    assert.match(w.stderr, /failed: Generation failed: internal worker error/);
    const r = await dreamina(["result", failed], spare);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stdout, /failed\nerror: "Generation failed: internal worker error"/);
    const json = await dreamina(["--json", "result", failed], spare);
    assert.equal(parseJson<{ error: unknown }>(json).error, "Generation failed: internal worker error");
    assert.equal(await journalState(failed), "failed");
    const detail = await cli(["jobs", "show", failed], { env: home.env });
    assert.match(detail.stdout, /job error {4}"Generation failed: internal worker error"/);
  });

  it("an unknown request id exits 65 (404), not a crash", async () => {
    const r = await dreamina(["status", "no-such-request"]);
    assert.equal(r.code, 65, show(r));
    assert.match(r.stderr, /404/);
  });
});
