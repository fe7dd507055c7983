// A wait that cannot reach the service never goes silent: what fails is said on stderr at
// once and then regularly, --timeout still binds, and after --give-up-after of nothing but
// failures it ends with exit 69 and the exact `dreamina wait` that picks the job up again,
// which works once the service answers (the same job: no second submit, no second charge).

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, it, mock } from "node:test";
import { ConnectionError } from "../../src/api/errors.js";
import { Io } from "../../src/cli/io.js";
import { JobProgress, POLL_ERROR_REPORT_EVERY_MS } from "../../src/cli/progress.js";
import type { Sandbox } from "../../src/sandbox/index.js";
import {
  assertMp4,
  type CliResult,
  cli,
  inProcessSandbox,
  parseJson,
  sandboxJobs,
  type TempHome,
  tempHome,
} from "../helpers/cli.js";
import { jpeg } from "../helpers/images.js";

let sandbox: Sandbox;
let home: TempHome;
let image: string;
/** A loopback port nothing listens on: every connection is refused. */
let closedPort: number;

function show(r: CliResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

before(async () => {
  sandbox = await inProcessSandbox();
  home = tempHome();
  image = join(home.dir, "photo.jpg");
  writeFileSync(image, await jpeg(800, 600));
  closedPort = await freePort();
});

after(async () => {
  await sandbox.close();
  home.cleanup();
});

describe("the service cannot be reached while waiting", () => {
  it("a refused port: says what fails at once, gives up after --give-up-after with exit 69 and the resume command", async () => {
    const started = Date.now();
    const r = await cli(
      [
        "--base-url",
        `http://127.0.0.1:${closedPort}`,
        "wait",
        "req-unreachable",
        "-o",
        "out.mp4",
        "--give-up-after",
        "6",
      ],
      { env: home.env, cwd: home.dir },
    );
    const took = Date.now() - started;
    assert.equal(r.code, 69, show(r));
    assert.match(
      r.stderr,
      new RegExp(
        `^warning: cannot get the job's status: GET http://127\\.0\\.0\\.1:${closedPort}/v1/requests/req-unreachable/status failed: ECONNREFUSED; retrying; giving up in \\d+s \\(--give-up-after\\)$`,
        "m",
      ),
    );
    assert.match(
      r.stderr,
      /^error: Gave up waiting for request req-unreachable: every poll failed for \d+ s \(\d+ in a row/m,
    );
    assert.match(
      r.stderr,
      /^To pick it up again \(no new job, no new charge\): dreamina wait req-unreachable -o out\.mp4$/m,
    );
    assert.ok(took < 30_000, `bounded: ${took} ms`);
    assert.equal(r.stdout, "");
  });

  it("--timeout binds while every poll fails: exit 75 at the deadline, with --json too", async () => {
    const started = Date.now();
    const r = await cli(
      [
        "--json",
        "--base-url",
        `http://127.0.0.1:${closedPort}`,
        "wait",
        "req-deadline",
        "--timeout",
        "3",
        "--give-up-after",
        "600",
      ],
      { env: home.env, cwd: home.dir },
    );
    assert.equal(r.code, 75, show(r));
    assert.ok(Date.now() - started < 20_000);
    const doc = parseJson<{
      ok: boolean;
      exitCode: number;
      error: { name: string; details: { resume: string } };
    }>(r);
    assert.equal(doc.ok, false);
    assert.equal(doc.exitCode, 75);
    assert.equal(doc.error.name, "WaitTimeoutError");
    assert.equal(doc.error.details.resume, "dreamina wait req-deadline");
  });

  it("run with every status call reset: 'submitted', then the failures, exit 69; the printed command then fetches the same job", async () => {
    sandbox.setFaults("status:reset=1");
    let r: CliResult;
    try {
      r = await cli(
        [
          "--base-url",
          sandbox.url,
          "run",
          "-i",
          image,
          "-p",
          "reset",
          "-o",
          "reset.mp4",
          "--give-up-after",
          "5",
        ],
        { env: home.env, cwd: home.dir },
      );
    } finally {
      sandbox.setFaults(undefined);
    }
    assert.equal(r.code, 69, show(r));
    const id = /^submitted ([\w-]+)$/m.exec(r.stderr)?.[1];
    assert.ok(id, show(r));
    const said = r.stderr.indexOf("warning: cannot get the job's status:");
    assert.ok(said > r.stderr.indexOf("submitted"), `the failure is said after 'submitted':\n${r.stderr}`);
    assert.match(r.stderr.slice(said), /failed: ECONNRESET|socket hang up/);
    const resume = new RegExp(
      `^To pick it up again \\(no new job, no new charge\\): (dreamina wait ${id} -o reset\\.mp4)$`,
      "m",
    ).exec(r.stderr)?.[1];
    assert.ok(resume, show(r));

    const again = await cli(["--base-url", sandbox.url, ...resume.split(" ").slice(1)], {
      env: home.env,
      cwd: home.dir,
    });
    assert.equal(again.code, 0, show(again));
    assertMp4(join(home.dir, "reset.mp4"));
    const jobs = (await sandboxJobs(sandbox.url)).filter((j) => j.id === id);
    assert.equal(jobs.length, 1);
    assert.equal(jobs[0]?.submitCount, 1, "one submit: the resume made no new job");
  });
});

describe("JobProgress while polls fail", () => {
  function sink() {
    const lines: string[] = [];
    const stream = {
      isTTY: false,
      write(chunk: string) {
        lines.push(...chunk.split("\n").filter(Boolean));
        return true;
      },
    } as unknown as NodeJS.WriteStream;
    return { stream, lines };
  }

  it("the first failure at once, then one line per interval with the count and the last error; then 'answers again'", async () => {
    let now = 1_000_000;
    mock.method(Date, "now", () => now);
    try {
      const err = sink();
      const io = new Io({}, sink().stream, err.stream);
      const progress = await JobProgress.create(io);
      const fail = (n: number) =>
        progress.pollError(new ConnectionError(`GET /status failed: ECONNREFUSED #${n}`), n, {
          failingForMs: n * 2_000,
          giveUpInMs: 300_000 - n * 2_000,
        });
      fail(1);
      assert.equal(err.lines.length, 1);
      assert.match(
        err.lines[0]!,
        /^warning: cannot get the job's status: GET \/status failed: ECONNREFUSED #1; retrying; giving up in 4m58s/,
      );
      for (let n = 2; n <= 9; n++) {
        now += 2_000;
        fail(n);
      }
      assert.equal(err.lines.length, 2, err.lines.join("\n"));
      assert.ok(8 * 2_000 >= POLL_ERROR_REPORT_EVERY_MS && 7 * 2_000 < POLL_ERROR_REPORT_EVERY_MS);
      assert.match(
        err.lines[1]!,
        /^warning: still failing: 9 polls in a row over 18s; the last: GET \/status failed: ECONNREFUSED #9; giving up in 4m42s/,
      );
      progress.update({
        requestId: "r",
        status: "in_queue",
        rawStatus: "in_queue",
        at: now,
        elapsedMs: 0,
        pollCount: 10,
      });
      assert.match(err.lines[2]!, /^the service answers again \(after 9 failed polls\)$/);
    } finally {
      mock.restoreAll();
    }
  });
});
