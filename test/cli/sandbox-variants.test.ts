// The CLI against two sandbox variants a user meets as messages: an account without balance
// (a definite refusal: exit 65, a `rejected` row, never "may have been billed") and a job
// error in the array shape (shown verbatim on stderr and by `jobs show`).

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Sandbox } from "../../src/sandbox/index.js";
import { type CliResult, cli, inProcessSandbox, parseJson, type TempHome, tempHome } from "../helpers/cli.js";
import { jpeg } from "../helpers/images.js";

let sandbox: Sandbox;
let home: TempHome;
let image: string;

before(async () => {
  sandbox = await inProcessSandbox();
  home = tempHome();
  image = join(home.dir, "photo.jpg");
  writeFileSync(image, await jpeg(800, 600));
});

after(async () => {
  await sandbox.close();
  home.cleanup();
});

function dreamina(args: string[]): Promise<CliResult> {
  return cli(["--base-url", sandbox.url, ...args], { env: home.env, cwd: home.dir });
}

function show(r: CliResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

type JobsDoc = { jobs: { localId: number; state: string; requestId: string | null; prompt: string }[] };

describe("dreamina and the sandbox's variants", () => {
  it("insufficient balance (402, 400002): exit 65, a rejected row, sent once, not 'may have been billed'", async () => {
    sandbox.setFaults("submit:balance=1");
    const submitsBefore = sandbox.requests().filter((e) => e.route === "submit").length;
    try {
      const r = await dreamina(["run", "-i", image, "-p", "no money", "-o", "broke.mp4"]);
      assert.equal(r.code, 65, show(r));
      assert.match(r.stderr, /Insufficient balance: .*HTTP 402, error_code 400002/);
      assert.doesNotMatch(r.stderr, /may have been accepted/);
      assert.equal(sandbox.requests().filter((e) => e.route === "submit").length - submitsBefore, 1);
      const rejected = parseJson<JobsDoc>(await dreamina(["--json", "jobs", "--state", "rejected"]));
      assert.deepEqual(
        rejected.jobs.map((j) => [j.state, j.prompt, j.requestId]),
        [["rejected", "no money", null]],
      );
      const unknown = parseJson<JobsDoc>(await dreamina(["--json", "jobs", "--state", "submission_unknown"]));
      assert.equal(unknown.jobs.length, 0);
    } finally {
      sandbox.setFaults(undefined);
    }
  });

  it("a job error in the array shape is shown verbatim: on stderr, and by jobs show", async () => {
    sandbox.setFaults("job:fail=1,job-error=array");
    try {
      const r = await dreamina(["run", "-i", image, "-p", "array error", "-o", "failed.mp4"]);
      assert.equal(r.code, 1, show(r));
      const id = sandbox.jobs().at(-1)?.id ?? "";
      // The service's error as `dreamina result` reports it (jobs are per token: the CLI's).
      const raw = await dreamina(["--json", "result", id]);
      const doc = parseJson<{ error: unknown }>(raw);
      assert.ok(Array.isArray(doc.error), raw.stdout);
      const verbatim = JSON.stringify(doc.error);
      assert.ok(verbatim.includes('"errorCode":500001'), verbatim);
      assert.ok(r.stderr.includes(`Job ${id} failed: ${verbatim}`), show(r));
      const jobs = parseJson<JobsDoc>(await dreamina(["--json", "jobs", "--state", "failed"]));
      const row = jobs.jobs.find((j) => j.requestId === id);
      assert.ok(row, JSON.stringify(jobs));
      const shown = await dreamina(["jobs", "show", String(row.localId)]);
      assert.ok(shown.stdout.includes(`job error    ${verbatim}`), shown.stdout);
    } finally {
      sandbox.setFaults(undefined);
    }
  });
});
