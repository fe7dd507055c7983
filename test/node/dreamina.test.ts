// The Node SDK object end to end against an in-process sandbox: `run` (local file in, MP4
// on disk out, every step journaled, the intent row written before the submit is
// answered), `submit` + `wait`, `updates`, and a preflight failure that sends nothing.

import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { claimOutput, OutputError } from "../../src/download/output.js";
import { PreflightError } from "../../src/index.js";
import { Dreamina } from "../../src/node/dreamina.js";
import type { JobUpdate } from "../../src/run/wait.js";
import type { Sandbox } from "../../src/sandbox/index.js";
import { SqliteJobStore } from "../../src/store/index.js";
import { assertMp4, FAKE_TOKEN, inProcessSandbox, sha256File } from "../helpers/cli.js";
import { jpeg } from "../helpers/images.js";
import { mkfifo } from "../helpers/mounts.js";
import { JobServer, resultBody, statusBody } from "../run/job-server.js";

let sandbox: Sandbox;
let dir: string;
let image: string;
let journalPath: string;

function sdk(): Dreamina {
  return new Dreamina({ baseUrl: sandbox.url, token: FAKE_TOKEN, journal: journalPath });
}

before(async () => {
  sandbox = await inProcessSandbox({ workers: 2 });
  dir = mkdtempSync(join(tmpdir(), "dreamina-sdk-"));
  image = join(dir, "photo.jpg");
  writeFileSync(image, await jpeg(800, 600));
  journalPath = join(dir, "journal.db");
});

after(async () => {
  await sandbox.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("Dreamina (Node SDK)", () => {
  it("run(): a local file in, an MP4 out, and the journal holds every step", async () => {
    const dreamina = sdk();
    const updates: JobUpdate[] = [];
    let submittedId: string | undefined;
    try {
      const video = await dreamina.run(
        { image, prompt: "a slow pan across the street", frames: 121 },
        {
          output: join(dir, "run.mp4"),
          onSubmitted: (s) => {
            submittedId = s.requestId;
          },
          onUpdate: (u) => {
            updates.push(u);
          },
        },
      );
      assert.equal(video.requestId, submittedId);
      assert.equal(video.result.status, "succeeded");
      assert.equal(video.files.length, 1);
      const file = video.files[0];
      assert.equal(file?.path, join(dir, "run.mp4"));
      assertMp4(file.path);
      const job = sandbox.jobs().find((j) => j.id === video.requestId);
      assert.equal(file.sha256, job?.output?.sha256);
      assert.equal(sha256File(file.path), file.sha256);
      assert.equal(updates.at(-1)?.result?.status, "succeeded");

      const row = await (await dreamina.store())?.get(video.requestId);
      assert.ok(row);
      assert.equal(row.localId, video.localId);
      assert.equal(row.state, "succeeded");
      assert.equal(row.prompt, "a slow pan across the street");
      assert.equal(row.frames, 121);
      assert.deepEqual(row.outputUrls, [video.video]);
      assert.equal(row.files[0]?.sha256, file.sha256);
      assert.equal(typeof row.cost, "number");
      const states = row.transitions.map((t) => t.status);
      assert.deepEqual(states.slice(0, 2), ["submitting", "submitted"]);
      assert.equal(states.at(-1), "succeeded");
      // The local image went as a data URI; the journal keeps no copy of it (nor the token).
      const bytes = readFileSync(journalPath);
      assert.equal(bytes.includes(Buffer.from(FAKE_TOKEN)), false);
    } finally {
      await dreamina.close();
    }
  });

  it("run(): the intent row is durable before the submit is answered (read from another connection)", async () => {
    sandbox.setFaults("submit:stall@1=1#1");
    const dreamina = sdk();
    const reader = SqliteJobStore.open(journalPath);
    let accepted = false;
    let running: Promise<unknown> | undefined;
    try {
      const before = new Set((await reader.list({ limit: 1000 })).map((r) => r.localId));
      const submitsBefore = sandbox.requests().filter((e) => e.route === "submit").length;
      running = dreamina.run(
        { image, prompt: "intent first", frames: 121 },
        {
          output: dir,
          onSubmitted: () => {
            accepted = true;
          },
        },
      );
      let intent: Awaited<ReturnType<SqliteJobStore["list"]>>[number] | undefined;
      const deadline = Date.now() + 5_000;
      while (!intent && Date.now() < deadline) {
        intent = (await reader.list({ limit: 1000 })).find((r) => !before.has(r.localId));
        if (!intent) await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(intent, "an intent row appeared");
      // The submit is stalled for 1 s in the sandbox: not answered (the log records a request
      // once answered), not accepted by the client, yet the row is there.
      assert.equal(accepted, false, "the submit was not answered yet");
      assert.equal(sandbox.requests().filter((e) => e.route === "submit").length, submitsBefore);
      assert.equal(intent.state, "submitting");
      assert.equal(intent.requestId, undefined);
      assert.equal(intent.prompt, "intent first");

      const video = (await running) as Awaited<ReturnType<Dreamina["run"]>>;
      assert.equal(accepted, true);
      const stalled = sandbox
        .requests()
        .filter((e) => e.route === "submit")
        .at(-1);
      assert.equal(stalled?.fault, "stall@1");
      const settled = await reader.get(intent.localId);
      assert.equal(settled?.requestId, video.requestId);
      assert.equal(settled?.state, "succeeded");
      assertMp4(video.files[0]?.path ?? "");
    } finally {
      await running?.catch(() => {});
      sandbox.setFaults(undefined);
      await reader.close();
      await dreamina.close();
    }
  });

  it("submit() + wait(): a request picked up by id, downloaded, journaled", async () => {
    const first = sdk();
    let requestId: string;
    try {
      const submitted = await first.submit({ image, prompt: "submitted now, fetched later", frames: 121 });
      requestId = submitted.requestId;
      assert.equal((await (await first.store())?.get(requestId))?.state, "submitted");
    } finally {
      await first.close();
    }
    const second = sdk();
    try {
      const video = await second.wait(requestId, { output: join(dir, "waited.mp4") });
      assert.equal(video.result.status, "succeeded");
      const file = video.files[0];
      assert.ok(file);
      assertMp4(file.path);
      assert.equal(file.sha256, sandbox.jobs().find((j) => j.id === requestId)?.output?.sha256);
      const row = await (await second.store())?.get(requestId);
      assert.equal(row?.state, "succeeded");
      assert.equal(row?.files[0]?.path, file.path);
    } finally {
      await second.close();
    }
  });

  it("updates(): one update per status seen, the last one carrying the result", async () => {
    const dreamina = sdk();
    try {
      const { requestId } = await dreamina.submit({ image, prompt: "watch me", frames: 121 });
      const seen: JobUpdate[] = [];
      for await (const update of dreamina.updates(requestId)) seen.push(update);
      assert.ok(seen.length >= 2, JSON.stringify(seen.map((u) => u.status)));
      assert.ok(seen.every((u) => u.requestId === requestId));
      const last = seen.at(-1);
      assert.equal(last?.status, "succeeded");
      assert.equal(last?.result?.status, "succeeded");
      assert.match(last?.result?.video ?? "", /\/cdn\/.*\.mp4$/);
      assert.ok(seen.slice(0, -1).every((u) => u.result === undefined));
      for (let i = 1; i < seen.length; i++) assert.ok((seen[i]?.at ?? 0) >= (seen[i - 1]?.at ?? 0));
    } finally {
      await dreamina.close();
    }
  });

  it("run(): a journal locked from the acceptance to the first status neither loses the id nor stops the job", async () => {
    const path = join(dir, "locked-journal.db");
    const warnings: string[] = [];
    const journal = SqliteJobStore.open(path, { busyTimeoutMs: 50, onWarning: (m) => warnings.push(m) });
    const dreamina = new Dreamina({ baseUrl: sandbox.url, token: FAKE_TOKEN, journal });
    const other = new Database(path);
    let locked = false;
    try {
      const video = await dreamina.run(
        { image, prompt: "the journal is locked meanwhile", frames: 121 },
        {
          output: join(dir, "locked.mp4"),
          // Another connection takes the write lock as the id arrives (before the journal
          // records it), and lets go only after the first status was seen.
          onSubmitted: () => {
            other.exec("BEGIN IMMEDIATE");
            locked = true;
          },
          onUpdate: () => {
            if (locked) other.exec("ROLLBACK");
            locked = false;
          },
        },
      );
      assert.equal(warnings.length, 1);
      assert.match(warnings[0] ?? "", new RegExp(`accepted request ${video.requestId} .*database is locked`));
      const row = await journal.get(video.requestId);
      assert.equal(row?.state, "succeeded");
      assert.equal(row?.localId, video.localId);
      assert.equal(row?.files[0]?.sha256, video.files[0]?.sha256);
      assert.deepEqual(readdirSync(`${path}.recovered`), []);
    } finally {
      if (locked) other.exec("ROLLBACK");
      other.close();
      await dreamina.close();
      await journal.close();
    }
  });

  it("run(): an output that cannot be written throws OutputError before anything is sent or journaled", async () => {
    const fifo = join(dir, "pipe.mp4");
    mkfifo(fifo);
    const taken = join(dir, "claimed.mp4");
    const claim = await claimOutput(taken);
    const dreamina = sdk();
    const requestsBefore = sandbox.requests().length;
    try {
      const rowsBefore = (await (await dreamina.store())?.list({ limit: 1000 }))?.length;
      for (const [output, code] of [
        [fifo, "not_regular"],
        [taken, "busy"],
      ] as const) {
        await assert.rejects(
          dreamina.run({ image, prompt: "never sent", frames: 121 }, { output, force: true }),
          (error: unknown) => error instanceof OutputError && error.code === code,
        );
      }
      assert.equal((await (await dreamina.store())?.list({ limit: 1000 }))?.length, rowsBefore);
      assert.equal(sandbox.requests().length, requestsBefore);
    } finally {
      await claim.release();
      await dreamina.close();
    }
  });

  it("run(): a broken input throws PreflightError listing every rule, with no row and no request", async () => {
    const small = join(dir, "small.jpg");
    writeFileSync(small, await jpeg(320, 400));
    const dreamina = sdk();
    const requestsBefore = sandbox.requests().length;
    try {
      const rowsBefore = (await (await dreamina.store())?.list({ limit: 1000 }))?.length;
      await assert.rejects(
        dreamina.run({ image: small, prompt: "x".repeat(801), frames: 100 as 121 }),
        (error: unknown) => {
          assert.ok(error instanceof PreflightError);
          assert.deepEqual(error.violations.map((v) => v.path).sort(), ["frames", "image_urls[0]", "prompt"]);
          return true;
        },
      );
      assert.equal((await (await dreamina.store())?.list({ limit: 1000 }))?.length, rowsBefore);
      assert.equal(sandbox.requests().length, requestsBefore);
    } finally {
      await dreamina.close();
    }
  });
});

describe("Dreamina with other status names", () => {
  it("pending/waiting/starting/processing reach the journal as in_queue/in_progress, raw text kept", async () => {
    const server = await JobServer.start();
    const rid = "alias-job-1";
    server.submitIds.push(rid);
    server.script(rid, {
      status: [
        statusBody(rid, "pending", 3),
        statusBody(rid, "waiting", 1),
        statusBody(rid, "starting"),
        statusBody(rid, "processing"),
        statusBody(rid, "completed"),
      ],
      result: [resultBody(rid, "succeeded", { output: { video: `${server.url}/out.mp4` } })],
    });
    const dreamina = new Dreamina({
      baseUrl: server.url,
      token: FAKE_TOKEN,
      journal: join(dir, "aliases.db"),
    });
    try {
      const { requestId } = await dreamina.submit({ image, prompt: "other names", frames: 121 });
      assert.equal(requestId, rid);
      const video = await dreamina.wait(rid, { download: false, pollSchedule: () => 5 });
      assert.equal(video.result.status, "succeeded");
      const row = await (await dreamina.store())?.get(rid);
      assert.equal(row?.state, "succeeded");
      assert.ok(row?.startedAt, "starting counts as running: the run time is measured from it");
      assert.deepEqual(
        row?.transitions.map((t) => [t.status, t.rawStatus ?? null, t.queuePosition ?? null]),
        [
          ["submitting", null, null],
          ["submitted", null, null],
          ["in_queue", "pending", 3],
          ["in_queue", "waiting", 1],
          ["in_progress", "starting", null],
          ["completed", "completed", null],
          ["succeeded", "succeeded", null],
        ],
      );
    } finally {
      await dreamina.close();
      await server.close();
    }
  });
});
