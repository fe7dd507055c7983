// A submit the service accepted while another process held the journal's write lock longer
// than the busy timeout: the CLI must print the request id, keep it in the recovery folder
// beside the journal, and the next `dreamina jobs` must show the job as submitted with its id.
// Real child processes, a real sandbox, a real SQLite lock (BEGIN IMMEDIATE on a second
// connection).

import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import type { Sandbox } from "../../src/sandbox/index.js";
import {
  assertMp4,
  type CliResult,
  cli,
  inProcessSandbox,
  parseJson,
  spawnCli,
  type TempHome,
  tempHome,
} from "../helpers/cli.js";
import { jpeg } from "../helpers/images.js";

let sandbox: Sandbox;
let image: string;
const homes: TempHome[] = [];

function show(r: CliResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

/** A fresh home whose journal gives up on a lock after 300 ms (10 s by default). */
function freshHome(): TempHome {
  const home = tempHome();
  home.env.DREAMINA_JOURNAL_BUSY_TIMEOUT_MS = "300";
  homes.push(home);
  return home;
}

/** Waits until the child's intent row is in the journal (it is written before the POST). */
async function intentRow(journalPath: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (existsSync(journalPath)) {
      const db = new Database(journalPath, { readonly: true, fileMustExist: true });
      try {
        const row = db.prepare("SELECT count(*) AS c FROM jobs WHERE state = 'submitting'").get() as
          | { c: number }
          | undefined;
        if (row && row.c > 0) return;
      } catch {
        // Not migrated yet.
      } finally {
        db.close();
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("no intent row appeared");
}

function recoveryFiles(journalPath: string): string[] {
  const folder = `${journalPath}.recovered`;
  return existsSync(folder) ? readdirSync(folder).filter((f) => f.endsWith(".json")) : [];
}

function submitsFor(requestId: string): number {
  return sandbox.jobs().find((j) => j.id === requestId)?.submitCount ?? 0;
}

before(async () => {
  sandbox = await inProcessSandbox({ workers: 2 });
  const home = freshHome();
  image = join(home.dir, "photo.jpg");
  writeFileSync(image, await jpeg(800, 600));
});

after(async () => {
  await sandbox.close();
  for (const h of homes) h.cleanup();
});

describe("an accepted submit while the journal is locked", () => {
  it("submit: the id is printed and kept; the next `dreamina jobs` shows it submitted with its id", async () => {
    const home = freshHome();
    // The submit's answer comes 2 s late: time to take the lock after the intent row is written.
    sandbox.setFaults("submit:stall@2=1#1");
    const submitsBefore = sandbox.requests().filter((e) => e.route === "submit").length;
    const child = spawnCli(["--base-url", sandbox.url, "submit", "-i", image, "-p", "locked out"], {
      env: home.env,
      cwd: home.dir,
    });
    let holder: Database.Database | undefined;
    let result: CliResult;
    try {
      await intentRow(home.journal);
      holder = new Database(home.journal);
      holder.exec("BEGIN IMMEDIATE");
      result = await child.done;
    } finally {
      sandbox.setFaults(undefined);
    }
    assert.equal(result.code, 0, show(result));
    const requestId = result.stdout.trim();
    assert.match(requestId, /^[\w-]+$/);
    assert.match(result.stderr, new RegExp(`accepted request ${requestId} .*database is locked`));
    assert.match(result.stderr, /kept in .*journal\.db\.recovered/);
    const files = recoveryFiles(home.journal);
    assert.equal(files.length, 1);
    assert.equal(
      JSON.parse(readFileSync(join(`${home.journal}.recovered`, files[0]!), "utf8")).requestId,
      requestId,
    );
    // The journal itself does not know the id yet.
    assert.equal(
      (holder.prepare("SELECT count(*) AS c FROM jobs WHERE request_id = ?").get(requestId) as { c: number })
        .c,
      0,
    );
    holder.exec("ROLLBACK");
    holder.close();

    const jobs = await cli(["--json", "jobs"], { env: home.env, cwd: home.dir });
    assert.equal(jobs.code, 0, show(jobs));
    assert.match(jobs.stderr, new RegExp(`recovered request ${requestId} into the journal`));
    const listed = parseJson<{ jobs: { requestId: string | null; state: string }[] }>(jobs).jobs;
    assert.deepEqual(
      listed.map((j) => [j.requestId, j.state]),
      [[requestId, "submitted"]],
    );
    assert.deepEqual(recoveryFiles(home.journal), []);

    // Once more: nothing changes, nothing is announced.
    const again = await cli(["--json", "jobs"], { env: home.env, cwd: home.dir });
    assert.doesNotMatch(again.stderr, /recovered/);
    assert.deepEqual(parseJson<{ jobs: unknown[] }>(again).jobs, parseJson<{ jobs: unknown[] }>(jobs).jobs);
    assert.equal(sandbox.requests().filter((e) => e.route === "submit").length, submitsBefore + 1);
    assert.equal(submitsFor(requestId), 1);
  });

  it("run: the id is on stderr before the journal gives up; once the lock is gone the job is journaled to the end", async () => {
    const home = freshHome();
    sandbox.setFaults("submit:stall@2=1#1");
    const child = spawnCli(
      ["--base-url", sandbox.url, "run", "-i", image, "-p", "locked during the submit", "-o", "out.mp4"],
      { env: home.env, cwd: home.dir },
    );
    let holder: Database.Database | undefined;
    try {
      await intentRow(home.journal);
      holder = new Database(home.journal);
      holder.exec("BEGIN IMMEDIATE");
      // Held until the id has gone to the recovery folder.
      await child.waitFor(/kept in .*journal\.db\.recovered/);
    } finally {
      holder?.exec("ROLLBACK");
      holder?.close();
      sandbox.setFaults(undefined);
    }
    const result = await child.done;
    assert.equal(result.code, 0, show(result));
    const requestId = /^submitted ([\w-]+)$/m.exec(result.stderr)?.[1];
    assert.ok(requestId, show(result));
    assert.ok(
      result.stderr.indexOf(`submitted ${requestId}`) < result.stderr.indexOf("warning:"),
      "the id was shown before the journal's wait for the lock ended",
    );
    assertMp4(join(home.dir, "out.mp4"));
    // The same process took the id in at its next write: every later step is journaled.
    assert.deepEqual(recoveryFiles(home.journal), []);
    const shown = await cli(["--json", "jobs", "show", requestId], { env: home.env, cwd: home.dir });
    const job = parseJson<{ job: { state: string; requestId: string; files: { path: string }[] } }>(
      shown,
    ).job;
    assert.equal(job.state, "succeeded");
    assert.equal(job.files[0]?.path, join(home.dir, "out.mp4"));
    assert.equal(submitsFor(requestId), 1);
  });
});
