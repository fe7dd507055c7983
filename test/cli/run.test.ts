// `dreamina run`, `submit`, `wait`, `status`, `result`, `jobs` end to end: real child
// processes against a real sandbox (real HTTP, real SQLite journal, real MP4s), every exit
// code, the --json shapes, a cut download, a lost submit, and the token never leaking.

import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Sandbox } from "../../src/sandbox/index.js";
import {
  allOutputs,
  assertMp4,
  type CliResult,
  cli,
  FAKE_TOKEN,
  filesUnder,
  inProcessSandbox,
  parseJson,
  sandboxJobs,
  sandboxProcess,
  sandboxRequests,
  sha256File,
  type TempHome,
  tempHome,
} from "../helpers/cli.js";
import { damagedImages, jpeg } from "../helpers/images.js";

let sandbox: Sandbox;
let home: TempHome;
let image: string;
let smallImage: string;
const homes: TempHome[] = [];

/** `dreamina --base-url <sandbox> ...args` in the shared temp home (cwd = that home). */
function dreamina(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; base?: string } = {},
): Promise<CliResult> {
  return cli(["--base-url", options.base ?? sandbox.url, ...args], {
    env: options.env ?? home.env,
    cwd: home.dir,
  });
}

function show(r: CliResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

before(async () => {
  sandbox = await inProcessSandbox({
    workers: 3,
    // The one 241-frame job must still be running after four CLI processes (submit, jobs show,
    // status twice): the default 3 s was outlasted on a loaded machine.
    runTime: { 121: { meanMs: 1_200, jitterMs: 0 }, 241: { meanMs: 20_000, jitterMs: 0 } },
  });
  home = tempHome();
  homes.push(home);
  image = join(home.dir, "photo.jpg");
  writeFileSync(image, await jpeg(800, 600));
  smallImage = join(home.dir, "w320.jpg");
  writeFileSync(smallImage, await jpeg(320, 500));
});

after(async () => {
  await sandbox.close();
  for (const h of homes) h.cleanup();
});

describe("dreamina run", () => {
  it("exits 0 with a complete MP4 whose sha256 is the sandbox's; progress on stderr only", async () => {
    const r = await dreamina(["run", "-i", image, "-p", "a slow dolly-in", "-o", "first.mp4"]);
    assert.equal(r.code, 0, show(r));
    const file = join(home.dir, "first.mp4");
    assert.equal(r.stdout, `${file}\n`, "stdout holds only the path");
    assert.match(r.stderr, /^submitted [\w-]+$/m);
    assert.match(r.stderr, /succeeded in \d+\.\ds, \$0\.\d\d/);
    assertMp4(file);
    const jobs = await sandboxJobs(sandbox.url);
    const id = /^submitted ([\w-]+)$/m.exec(r.stderr)?.[1];
    const job = jobs.find((j) => j.id === id);
    assert.ok(job?.output, "the sandbox knows the job");
    assert.equal(sha256File(file), job.output.sha256);
    assert.equal(job.submitCount, 1);
  });

  it("--json: one JSON document on stdout, nothing else; file, bytes and sha256 in it", async () => {
    const r = await dreamina(["--json", "run", "-i", image, "-p", "waves roll in", "-o", "json.mp4"]);
    assert.equal(r.code, 0, show(r));
    const doc = parseJson<{
      ok: boolean;
      requestId: string;
      status: string;
      file: string;
      files: { path: string; bytes: number; sha256: string }[];
      cost: number;
      outputUrls: string[];
    }>(r);
    assert.equal(doc.ok, true);
    assert.equal(doc.status, "succeeded");
    assert.equal(doc.file, join(home.dir, "json.mp4"));
    assert.equal(doc.files[0]?.sha256, sha256File(doc.file));
    assert.equal(typeof doc.cost, "number");
    const job = (await sandboxJobs(sandbox.url)).find((j) => j.id === doc.requestId);
    assert.equal(job?.output?.sha256, doc.files[0]?.sha256);
    assert.equal(job?.output?.size, doc.files[0]?.bytes);
  });

  it("refuses an existing output file before anything is sent (a paid video would have nowhere to go)", async () => {
    const before = sandbox.requests().length;
    const r = await dreamina(["run", "-i", image, "-p", "x", "-o", "first.mp4"]);
    assert.equal(r.code, 65, show(r));
    assert.match(r.stderr, /already exists: use --force/);
    assert.equal(sandbox.requests().length, before, "no request reached the sandbox");
  });

  it("a failed job exits 1 and shows the service's error verbatim", async () => {
    sandbox.setFaults("job:fail=1");
    try {
      const r = await dreamina(["run", "-i", image, "-p", "fails", "-o", "failed.mp4"]);
      assert.equal(r.code, 1, show(r));
      assert.match(r.stderr, /error: Job [\w-]+ failed: Generation failed: internal worker error/);
      assert.equal(existsSync(join(home.dir, "failed.mp4")), false);
      const json = await dreamina(["--json", "run", "-i", image, "-p", "fails", "-o", "failed.mp4"]);
      assert.equal(json.code, 1, show(json));
      const doc = parseJson<{ ok: boolean; exitCode: number; error: { name: string; jobError: unknown } }>(
        json,
      );
      assert.equal(doc.ok, false);
      assert.equal(doc.exitCode, 1);
      assert.equal(doc.error.name, "JobFailedError");
    } finally {
      sandbox.setFaults(undefined);
    }
  });

  it("invalid input exits 65 listing every violation, and nothing reaches the sandbox", async () => {
    const before = sandbox.requests().length;
    const r = await dreamina(["run", "-i", smallImage, "-p", "a".repeat(801), "--frames", "100"]);
    assert.equal(r.code, 65, show(r));
    assert.match(r.stderr, /breaks 3 rules/);
    assert.match(r.stderr, /prompt: prompt is 801 characters long; the limit is 800/);
    assert.match(r.stderr, /frames: frames must be 121 or 241/);
    assert.match(r.stderr, /image_urls\[0\]: The shortest side must be at least 320 pixels/);
    const json = await dreamina([
      "--json",
      "submit",
      "-i",
      smallImage,
      "-p",
      "a".repeat(801),
      "--frames",
      "100",
    ]);
    assert.equal(json.code, 65);
    const doc = parseJson<{ ok: boolean; error: { violations: { path: string }[] } }>(json);
    assert.deepEqual(doc.error.violations.map((v) => v.path).sort(), ["frames", "image_urls[0]", "prompt"]);
    assert.equal(sandbox.requests().length, before, "no request reached the sandbox");
  });

  it("a blank prompt exits 65 with the model's rule, from --prompt or --prompt-file, and nothing is sent", async () => {
    const before = sandbox.requests().length;
    const r = await dreamina(["submit", "-i", image, "-p", "  \t "]);
    assert.equal(r.code, 65, show(r));
    assert.match(r.stderr, /prompt: prompt must contain at least one non-whitespace character/);
    const promptFile = join(home.dir, "blank-prompt.txt");
    writeFileSync(promptFile, "\n   \n");
    const fromFile = await dreamina(["--json", "run", "-i", image, "--prompt-file", promptFile]);
    assert.equal(fromFile.code, 65, show(fromFile));
    const doc = parseJson<{ error: { violations: { path: string; rule: string }[] } }>(fromFile);
    assert.deepEqual(
      doc.error.violations.map((v) => `${v.path}:${v.rule}`),
      ["prompt:blank"],
    );
    assert.equal(sandbox.requests().length, before, "no request reached the sandbox");
  });

  it("a damaged image (a JPEG cut in half) exits 65 before anything is sent", async () => {
    const before = sandbox.requests().length;
    const half = join(home.dir, "half.jpg");
    writeFileSync(half, (await damagedImages()).halfJpeg);
    for (const command of ["submit", "run"]) {
      const r = await dreamina([command, "-i", half, "-p", "waves roll in"]);
      assert.equal(r.code, 65, show(r));
      assert.match(
        r.stderr,
        /image_urls\[0\]: the image does not decode fully: the JPEG image data stops short/,
      );
    }
    assert.equal(sandbox.requests().length, before, "no request reached the sandbox");
  });

  it("a missing image file exits 66", async () => {
    const r = await dreamina(["run", "-i", join(home.dir, "nope.jpg"), "-p", "x"]);
    assert.equal(r.code, 66, show(r));
    assert.match(r.stderr, /nope\.jpg/);
  });

  it("no token anywhere exits 77 and names every place it looked", async () => {
    const bare = tempHome({ token: null });
    homes.push(bare);
    const r = await dreamina(["run", "-i", image, "-p", "x", "-o", join(bare.dir, "v.mp4")], {
      env: bare.env,
    });
    assert.equal(r.code, 77, show(r));
    for (const place of ["--token", "$RUNCOMFY_API_TOKEN", "$RUNCOMFY_TOKEN", "$RUNCOMFY_API_KEY"]) {
      assert.ok(r.stderr.includes(place), `mentions ${place}: ${r.stderr}`);
    }
    assert.ok(r.stderr.includes(join(bare.dir, ".config/runcomfy/token.json")), r.stderr);
  });

  it("a token the service refuses (401) exits 77", async () => {
    const strict = await sandboxProcess(["--time-scale", "60"], ["--token", "other-token-entirely"]);
    try {
      const r = await dreamina(["run", "-i", image, "-p", "x", "-o", "denied.mp4"], { base: strict.url });
      assert.equal(r.code, 77, show(r));
      assert.match(r.stderr, /Authentication failed.*HTTP 401/);
      const s = await dreamina(["status", "abc"], { base: strict.url });
      assert.equal(s.code, 77, show(s));
      const log = await sandboxRequests(strict.url);
      assert.ok(log.some((e) => e.route === "submit" && e.status === 401));
      assert.equal(strict.stderr().includes(FAKE_TOKEN), false, "the sandbox log never shows a token");
    } finally {
      await strict.close();
    }
  });

  it("5xx on every call exits 69 (submit: recorded as possibly accepted; reads: retried, then 69)", async () => {
    sandbox.setFaults("api:500=1");
    try {
      const r = await dreamina(["run", "-i", image, "-p", "x", "-o", "5xx.mp4"]);
      assert.equal(r.code, 69, show(r));
      assert.match(r.stderr, /HTTP 500/);
      assert.match(r.stderr, /was not sent again/);
      const s = await dreamina(["status", "some-request"]);
      assert.equal(s.code, 69, show(s));
    } finally {
      sandbox.setFaults(undefined);
    }
  });

  it("usage errors exit 64", async () => {
    const cases = [
      ["run", "-p", "no image"],
      ["run", "-i", image],
      ["run", "-i", image, "-p", "x", "--prompt-file", "p.txt"],
      ["run", "-i", image, "-p", "x", "--timeout", "soon"],
      ["frobnicate"],
      ["wait"],
      ["jobs", "--state", "sleeping"],
      ["run", "-i", image, "-p", "x", "--fit", "stretch"],
    ];
    const results = await Promise.all(cases.map((args) => dreamina(args)));
    results.forEach((r, i) => {
      assert.equal(r.code, 64, `${cases[i]?.join(" ")}: ${show(r)}`);
      assert.equal(r.stdout, "", "usage errors print nothing on stdout");
    });
  });

  it("a cut download resumes: the file is complete and its sha256 is the sandbox's", async () => {
    sandbox.setFaults("cdn:truncate@0.5=1#1");
    try {
      const r = await dreamina(["--json", "run", "-i", image, "-p", "a cut", "-o", "cut.mp4"]);
      assert.equal(r.code, 0, show(r));
      const doc = parseJson<{ requestId: string; file: string; files: { sha256: string; bytes: number }[] }>(
        r,
      );
      assertMp4(doc.file);
      const job = (await sandboxJobs(sandbox.url)).find((j) => j.id === doc.requestId);
      assert.equal(sha256File(doc.file), job?.output?.sha256);
      assert.equal(doc.files[0]?.sha256, job?.output?.sha256);
      const cdn = sandbox.requests().filter((e) => e.route === "cdn" && e.path.includes(doc.requestId));
      assert.equal(cdn.length, 2, "one cut response, one resumed");
      assert.equal(cdn[0]?.fault, "truncate@0.5");
      assert.equal(existsSync(`${doc.file}.part`), false, "no .part left behind");
    } finally {
      sandbox.setFaults(undefined);
    }
  });

  it("a lost submit response: submission_unknown row, exactly one submit, non-zero exit that explains", async () => {
    sandbox.setFaults("submit:lost=1");
    const own = tempHome();
    homes.push(own);
    const submitsBefore = sandbox.requests().filter((e) => e.route === "submit").length;
    try {
      const r = await cli(["--base-url", sandbox.url, "run", "-i", image, "-p", "lost", "-o", "lost.mp4"], {
        env: own.env,
        cwd: own.dir,
      });
      assert.notEqual(r.code, 0, show(r));
      assert.match(r.stderr, /may have been accepted and billed/);
      assert.match(r.stderr, /dreamina jobs --state submission_unknown/);
      const submits = sandbox.requests().filter((e) => e.route === "submit").length - submitsBefore;
      assert.equal(submits, 1, "sent once, never resubmitted");
      const jobs = await cli(["jobs", "--state", "submission_unknown", "--json"], { env: own.env });
      const doc = parseJson<{ jobs: { state: string; requestId: string | null; prompt: string }[] }>(jobs);
      assert.equal(doc.jobs.length, 1);
      assert.equal(doc.jobs[0]?.state, "submission_unknown");
      assert.equal(doc.jobs[0]?.requestId, null);
      assert.equal(doc.jobs[0]?.prompt, "lost");
      const showOut = await cli(["jobs", "show", "1"], { env: own.env });
      assert.match(showOut.stdout, /may have been accepted and billed|may have been accepted/);
    } finally {
      sandbox.setFaults(undefined);
    }
  });
});

describe("dreamina submit / status / wait / result / jobs", () => {
  it("submit prints the id, the journal has it; status, wait, result, jobs and jobs show follow it", async () => {
    const sub = await dreamina(["submit", "-i", image, "-p", "two halves", "--frames", "241"]);
    assert.equal(sub.code, 0, show(sub));
    const id = sub.stdout.trim();
    assert.match(id, /^[A-Za-z0-9_-]{1,128}$/);

    const row = await cli(["jobs", "show", id, "--json"], { env: home.env });
    assert.equal(row.code, 0, show(row));
    const job = parseJson<{ ok: boolean; job: { requestId: string; state: string; frames: number } }>(
      row,
    ).job;
    assert.equal(job.requestId, id);
    assert.equal(job.state, "submitted");
    assert.equal(job.frames, 241);

    const status = await dreamina(["--json", "status", id]);
    assert.equal(status.code, 0, show(status));
    const st = parseJson<{ requestId: string; status: string }>(status);
    assert.equal(st.requestId, id);
    assert.ok(["in_queue", "in_progress"].includes(st.status), st.status);
    const human = await dreamina(["status", id]);
    assert.match(human.stdout, new RegExp(`^${id}  (in_queue|in_progress)`));

    const w = await dreamina(["wait", id, "-o", "waited.mp4"]);
    assert.equal(w.code, 0, show(w));
    const file = join(home.dir, "waited.mp4");
    assert.equal(w.stdout.trim(), file);
    assertMp4(file);
    const sj = (await sandboxJobs(sandbox.url)).find((j) => j.id === id);
    assert.equal(sha256File(file), sj?.output?.sha256);

    const result = await dreamina(["--json", "result", id]);
    assert.equal(result.code, 0, show(result));
    const res = parseJson<{ status: string; outputUrls: string[]; video: string; cost: number }>(result);
    assert.equal(res.status, "succeeded");
    assert.equal(res.outputUrls.length, 1);
    assert.equal(res.video, res.outputUrls[0]);
    const humanResult = await dreamina(["result", id]);
    assert.match(humanResult.stdout, /succeeded\nhttp:\/\/.*\/cdn\/.*\.mp4\ncost: \$/);

    const list = await cli(["jobs", "--json"], { env: home.env });
    const rows = parseJson<{ jobs: { requestId: string | null; state: string }[] }>(list).jobs;
    assert.equal(rows.find((r) => r.requestId === id)?.state, "succeeded");
    const table = await cli(["jobs"], { env: home.env });
    assert.match(table.stdout, /^LOCAL {2}REQUEST ID/);
    assert.match(table.stdout, new RegExp(`${id}\\s+succeeded\\s`));

    const detail = await cli(["jobs", "show", id], { env: home.env });
    assert.match(detail.stdout, /^state {8}succeeded$/m);
    assert.match(
      detail.stdout,
      new RegExp(
        `^file {9}${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}  \\d+ bytes  sha256 ${sj?.output?.sha256}$`,
        "m",
      ),
    );

    const again = await dreamina(["wait", id, "-o", "waited.mp4"]);
    assert.equal(again.code, 65, "an existing file is not overwritten without --force");
    const forced = await dreamina(["wait", id, "-o", "waited.mp4", "--force", "--json"]);
    assert.equal(forced.code, 0, show(forced));
    assert.equal(parseJson<{ file: string }>(forced).file, file);
  });

  it("submit shows the preflight warnings on stderr, as run does, and still submits", async () => {
    const trailing = join(home.dir, "trailing.jpg");
    writeFileSync(
      trailing,
      Buffer.concat([await jpeg(800, 600), Buffer.from("extra bytes after the image")]),
    );
    const warning = /^warning: image_urls\[0\]: the JPEG does not end with its end-of-image marker/m;
    const sub = await dreamina(["submit", "-i", trailing, "-p", "warned"]);
    assert.equal(sub.code, 0, show(sub));
    assert.match(sub.stderr, warning);
    assert.match(sub.stdout, /^[A-Za-z0-9_-]+\n$/, "stdout is the request id only");
    const quiet = await dreamina(["-q", "submit", "-i", trailing, "-p", "warned quietly"]);
    assert.equal(quiet.code, 0, show(quiet));
    assert.doesNotMatch(quiet.stderr, warning, "-q silences warnings");
  });

  it("jobs show of an unknown id exits 65; an empty journal lists nothing", async () => {
    const fresh = tempHome();
    homes.push(fresh);
    const list = await cli(["jobs", "--json"], { env: fresh.env });
    assert.equal(list.code, 0, show(list));
    assert.deepEqual(parseJson<{ jobs: unknown[] }>(list).jobs, []);
    const missing = await cli(["jobs", "show", "no-such-id"], { env: fresh.env });
    assert.equal(missing.code, 65, show(missing));
    assert.match(missing.stderr, /no job no-such-id in the journal/);
  });
});

describe("the token", () => {
  it("never reaches the CDN and never appears in any output or journal byte", async () => {
    const cdn = (await sandboxRequests(sandbox.url)).filter((e) => e.route === "cdn");
    assert.ok(cdn.length >= 4, "videos were downloaded");
    for (const e of cdn) assert.equal(e.tokenPresent, false, `${e.path} got a token`);
    const api = sandbox.requests().filter((e) => ["submit", "status", "result"].includes(e.route));
    assert.ok(
      api.every((e) => e.tokenPresent),
      "every API call carried one",
    );

    assert.ok(allOutputs.length > 20);
    for (const r of allOutputs) {
      assert.equal(r.stdout.includes(FAKE_TOKEN), false, `stdout leaked the token: ${r.stdout}`);
      assert.equal(r.stderr.includes(FAKE_TOKEN), false, `stderr leaked the token: ${r.stderr}`);
    }
    const files = homes.flatMap((h) => filesUnder(h.dir));
    assert.ok(files.some((f) => f.path.endsWith("journal.db")));
    const needle = Buffer.from(FAKE_TOKEN);
    for (const f of files) assert.equal(f.bytes.includes(needle), false, `${f.path} holds the token`);
  });
});
