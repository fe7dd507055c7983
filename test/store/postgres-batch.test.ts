// One batch, many workers, on a real PostgreSQL, with real separate processes: a killed worker's
// leased rows are finished by another once the lease runs out (and a row killed between its
// intent row and the answer is never submitted again); workers racing for the same rows with
// leases running out under them never both submit one; one budget holds across all of them.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { openPostgresJobStore, type PostgresJobStore } from "../../src/store/postgres/index.js";
import { skipWithoutPostgres, startTestPostgres, type TestPostgres } from "../helpers/postgres.js";

const server = await startTestPostgres();
const skip = skipWithoutPostgres(server);
const pgServer = server as TestPostgres;
const WORKER = resolve("test/helpers/pg-queue-worker.ts");
let dir: string;
const opened: PostgresJobStore[] = [];
const children: ChildProcess[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "dreamina-pgbatch-"));
});
after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  for (const s of opened) await s.close();
  if (!skip) await pgServer.stop();
  await rm(dir, { recursive: true, force: true });
});

async function open(url: string, leaseMs: number) {
  const store = await openPostgresJobStore(url, {
    leaseMs,
    recoveryDir: join(dir, "r"),
    onWarning: () => {},
  });
  opened.push(store);
  return store;
}

interface Event {
  event: string;
  row?: string;
  code?: string;
  pid?: number;
}

/** A worker process; `events` fills as it prints, `done` resolves at its exit. */
function worker(args: string[]) {
  const proc = spawn(process.execPath, ["--import", "tsx", WORKER, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(proc);
  const events: Event[] = [];
  const waiters: { match: (e: Event) => boolean; resolve: (e: Event) => void }[] = [];
  let stderr = "";
  proc.stderr.on("data", (d) => {
    stderr += String(d);
  });
  createInterface({ input: proc.stdout }).on("line", (line) => {
    const event = JSON.parse(line) as Event;
    events.push(event);
    for (const w of [...waiters]) {
      if (w.match(event)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(event);
      }
    }
  });
  const done = new Promise<{ code: number | null; signal: string | null }>((r) =>
    proc.on("exit", (code, signal) => r({ code, signal })),
  );
  const next = (match: (e: Event) => boolean) =>
    new Promise<Event>((r) => waiters.push({ match, resolve: r }));
  return { proc, events, done, next, stderr: () => stderr };
}

async function sql<T extends pg.QueryResultRow>(
  url: string,
  text: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text, params)).rows;
  } finally {
    await client.end();
  }
}

const rows = (n: number, estimateUsd?: number) =>
  Array.from({ length: n }, (_, i) => ({
    rowKey: `r${String(i).padStart(3, "0")}`,
    line: i + 1,
    estimateUsd,
  }));

describe("leases", { skip }, () => {
  it("a worker kill -9ed after the answer: its rows go to another after the lease, which follows the request", async () => {
    const url = await pgServer.freshDatabase();
    const store = await open(url, 1000);
    await store.enqueueRows("b1", rows(3));
    const w1 = worker([url, "b1", "1000", "200", "0", join(dir, "w1"), "1:accepted"]);
    const stopped = await w1.next((e) => e.event === "stopped");
    w1.proc.kill("SIGKILL");
    await w1.done;
    // The killed worker had claimed two rows: they are still leased, the third is free.
    const first = await store.claimRows("b1", 10);
    assert.deepEqual(
      first.map((r) => r.rowKey),
      ["r002"],
    );
    await new Promise((r) => setTimeout(r, 1300));
    const taken = await store.claimRows("b1", 10);
    assert.deepEqual(taken.map((r) => r.rowKey).sort(), ["r000", "r001"]);
    const followed = taken.find((r) => r.rowKey === stopped.row);
    assert.equal(followed?.job?.requestId, `req-${stopped.row}`);
    assert.equal(followed?.attempts, 2);
    // It is followed by its request id, never submitted again.
    await assert.rejects(
      store.beginRowSubmit({
        modelId: "m",
        baseUrl: "b",
        input: {},
        batchId: "b1",
        rowKey: stopped.row as string,
      }),
      { code: "batch_row_submitted" },
    );
    await store.recordResult(`req-${stopped.row}`, { status: "succeeded" });
    await store.recordBatchRow("b1", stopped.row as string, {
      state: "done",
      requestId: `req-${stopped.row}`,
      file: "x.mp4",
      bytes: 1,
      sha256: "00",
    });
    const progress = await store.batchProgress("b1");
    assert.equal(progress.states.done, 1);
    assert.ok(progress.workers.some((w) => w.pid === process.pid && w.done === 1));
    const jobs = await sql<{ n: number }>(
      url,
      "SELECT count(*)::int AS n FROM dreamina.jobs WHERE row_key = $1",
      [stopped.row],
    );
    assert.equal(jobs[0]?.n, 1);
  });

  it("a worker kill -9ed between its intent row and the answer: no one submits that row again", async () => {
    const url = await pgServer.freshDatabase();
    const store = await open(url, 600);
    await store.enqueueRows("b2", rows(1));
    const w1 = worker([url, "b2", "600", "200", "0", join(dir, "w2"), "1:intent"]);
    await w1.next((e) => e.event === "stopped");
    w1.proc.kill("SIGKILL");
    await w1.done;
    await new Promise((r) => setTimeout(r, 900));
    const [row] = await store.claimRows("b2", 1);
    assert.equal(row?.job?.state, "submission_unknown");
    assert.equal(row?.job?.requestId, undefined);
    await assert.rejects(
      store.beginRowSubmit({ modelId: "m", baseUrl: "b", input: {}, batchId: "b2", rowKey: "r000" }),
      { code: "batch_row_submitted" },
    );
    // Only on purpose: superseding the unknown job (--resubmit-unknown) lets it go again.
    const again = await store.beginRowSubmit({
      modelId: "m",
      baseUrl: "b",
      input: {},
      batchId: "b2",
      rowKey: "r000",
      supersedes: [row?.job?.localId as number],
    });
    assert.equal((await store.get(row?.job?.localId as number))?.state, "abandoned");
    assert.equal((await store.get(again))?.state, "submitting");
  });

  it("a row not held by this worker is not submitted", async () => {
    const url = await pgServer.freshDatabase();
    const a = await open(url, 60_000);
    const b = await open(url, 60_000);
    await a.enqueueRows("b3", rows(1));
    assert.equal((await a.claimRows("b3", 5)).length, 1);
    assert.equal((await b.claimRows("b3", 5)).length, 0);
    await assert.rejects(
      b.beginRowSubmit({ modelId: "m", baseUrl: "b", input: {}, batchId: "b3", rowKey: "r000" }),
      { code: "batch_row_not_held" },
    );
    // A worker that stops cleanly frees its rows at once, without waiting a lease.
    await a.close();
    assert.equal((await b.claimRows("b3", 5)).length, 1);
  });
});

describe("a batch owned by one worker at a time", { skip }, () => {
  it("another worker is refused while the lease lives, and takes the batch once the owner is silent", async () => {
    const url = await pgServer.freshDatabase();
    const a = await openPostgresJobStore(url, {
      leaseMs: 400,
      heartbeatMs: 0,
      recoveryDir: join(dir, "r"),
      onWarning: () => {},
    });
    opened.push(a);
    const b = await open(url, 400);
    const info = await a.openBatch({ outDir: "/renders", manifestDigest: "d1" });
    assert.equal(info.resumed, false);
    await assert.rejects(b.openBatch({ outDir: "/elsewhere", batchId: info.batchId }), {
      code: "batch_locked",
    });
    // A dry run only reads.
    assert.equal((await b.openBatch({ outDir: "/renders", readOnly: true })).batchId, info.batchId);
    // The owner stops beating (killed): after the lease, the batch is another's, found by folder.
    await new Promise((r) => setTimeout(r, 600));
    const taken = await b.openBatch({ outDir: "/renders", manifestDigest: "d2" });
    assert.equal(taken.batchId, info.batchId);
    assert.equal(taken.resumed, true);
    assert.equal(taken.previousDigest, "d1");
    await assert.rejects(a.openBatch({ outDir: "/renders" }), { code: "batch_locked" });
    await b.releaseBatch(info.batchId);
    assert.equal((await a.openBatch({ outDir: "/renders" })).batchId, info.batchId);
  });

  it("grouped writes: one transaction, writes for unknown requests skipped", async () => {
    const url = await pgServer.freshDatabase();
    const store = await open(url, 60_000);
    const id = await store.beginSubmit({ modelId: "m", baseUrl: "b", input: {}, batchId: "g", rowKey: "r1" });
    await store.submitAccepted(id, { requestId: "req-g" });
    await store.writeBatch([
      { kind: "status", requestId: "req-g", observation: { status: "in_progress" } },
      { kind: "status", requestId: "nobody", observation: { status: "in_progress" } },
      { kind: "result", requestId: "req-g", result: { status: "succeeded", cost: 0.3 } },
      { kind: "file", requestId: "req-g", file: { path: "/o/1.mp4", bytes: 5 } },
      {
        kind: "batch_row",
        batchId: "g",
        rowKey: "r1",
        outcome: { state: "done", requestId: "req-g", file: "1.mp4", bytes: 5, sha256: "aa" },
      },
    ]);
    const rec = await store.get("req-g");
    assert.equal(rec?.state, "succeeded");
    assert.equal(rec?.files.length, 1);
    assert.equal((await store.batchRows("g")).get("r1")?.state, "done");
    assert.equal((await store.batchJobs("g")).length, 1);
    // A file row the server refuses: nothing of the group is committed.
    await sql(url, "ALTER TABLE dreamina.files ADD CONSTRAINT no_bad CHECK (path <> '/bad')");
    await assert.rejects(
      store.writeBatch([
        { kind: "error", requestId: "req-g", error: new Error("later") },
        { kind: "file", requestId: "req-g", file: { path: "/bad" } },
      ]),
    );
    assert.equal((await store.get("req-g"))?.lastError, undefined);
  });
});

describe("one rate limit for all workers", { skip }, () => {
  it("a 429 reported by one worker pauses and slows the others; the pause only lengthens", async () => {
    const url = await pgServer.freshDatabase();
    const a = await open(url, 60_000);
    const b = await open(url, 60_000);
    assert.equal(await b.sharedThrottle("acct"), undefined);
    await a.reportThrottle("acct", { pauseMs: 2000, rps: 4 });
    await b.reportThrottle("acct", { pauseMs: 500, rps: 8 });
    const seen = await b.sharedThrottle("acct");
    assert.ok(seen && seen.pauseMs > 1500 && seen.pauseMs <= 2000, JSON.stringify(seen));
    assert.equal(seen?.rps, 4);
    assert.equal(await a.sharedThrottle("other"), undefined);
  });
});

describe("workers racing", { skip }, () => {
  it("4 processes, 60 rows, leases running out mid-submit: every row submitted exactly once", async () => {
    const url = await pgServer.freshDatabase();
    const store = await open(url, 60_000);
    await store.enqueueRows("race", rows(60));
    // No heartbeat and a 150 ms lease against "POSTs" of up to 300 ms: rows are taken over while
    // their first worker is still submitting them.
    const ws = Array.from({ length: 4 }, (_, i) =>
      worker([url, "race", "150", "0", "300", join(dir, `race-${i}`)]),
    );
    for (const w of ws) {
      const exit = await w.done;
      assert.equal(exit.code, 0, w.stderr());
    }
    const events = ws.flatMap((w) => w.events);
    const submits = new Map<string, number>();
    for (const e of events)
      if (e.event === "submit") submits.set(e.row as string, (submits.get(e.row as string) ?? 0) + 1);
    assert.equal(submits.size, 60);
    assert.deepEqual([...new Set(submits.values())], [1]);
    const perRow = await sql<{ row_key: string; n: number }>(
      url,
      "SELECT row_key, count(*)::int AS n FROM dreamina.jobs WHERE batch_id = 'race' GROUP BY row_key HAVING count(*) <> 1",
    );
    assert.deepEqual(perRow, []);
    const progress = await store.batchProgress("race");
    assert.deepEqual(progress.states, { done: 60 });
    // The race really happened: rows were claimed again while their first submit was in flight.
    const contested = events.filter((e) => e.event === "claim" && (e as { job?: unknown }).job !== null);
    assert.ok(contested.length > 0, "no row was ever taken over: the test did not race");
  });

  it("one budget across 3 processes: exactly as many submits as it pays for", async () => {
    const url = await pgServer.freshDatabase();
    const store = await open(url, 60_000);
    await store.enqueueRows("budget", rows(30, 1.25), 12.5);
    const ws = Array.from({ length: 3 }, (_, i) =>
      worker([url, "budget", "5000", "500", "20", join(dir, `b-${i}`)]),
    );
    for (const w of ws) assert.equal((await w.done).code, 0, w.stderr());
    const events = ws.flatMap((w) => w.events);
    assert.equal(events.filter((e) => e.event === "submit").length, 10);
    assert.equal(events.filter((e) => e.code === "budget_exceeded").length, 20);
    const progress = await store.batchProgress("budget");
    assert.equal(progress.reservedUsd, 12.5);
    assert.deepEqual(progress.states, { done: 10, failed: 20 });
  });

  it("a submit the service refused cost nothing: its reservation goes back to the budget", async () => {
    const url = await pgServer.freshDatabase();
    const store = await open(url, 60_000);
    await store.enqueueRows("refund", rows(3, 1.25), 2.5);
    const claimed = await store.claimRows("refund", 3);
    const submit = (rowKey: string) =>
      store.beginRowSubmit({ modelId: "m", baseUrl: "b", input: {}, batchId: "refund", rowKey }, 1.25);
    const first = await submit("r000");
    await submit("r001");
    assert.equal(claimed.length, 3);
    await assert.rejects(submit("r002"), { code: "budget_exceeded" });
    assert.equal((await store.batchProgress("refund")).reservedUsd, 2.5);
    await store.submitRejected(first, new Error("400 bad input"));
    assert.equal((await store.batchProgress("refund")).reservedUsd, 1.25);
    await submit("r002");
    assert.equal((await store.batchProgress("refund")).reservedUsd, 2.5);
    // An unknown outcome may have been billed: it keeps its reservation.
    await store.submitUnknown(first + 1, new Error("socket hang up"));
    assert.equal((await store.batchProgress("refund")).reservedUsd, 2.5);
  });
});

describe("joining a batch, reopening rows, rows left to others", { skip }, () => {
  it("8 workers joining one new batch at once: one batch, created once; the manifest change is seen", async () => {
    const url = await pgServer.freshDatabase();
    const stores = await Promise.all(Array.from({ length: 8 }, () => open(url, 60_000)));
    const infos = await Promise.all(
      stores.map((s) => s.joinBatch({ batchId: "m-1", outDir: "/tmp/x", manifestDigest: "d1" })),
    );
    assert.equal(infos.filter((i) => !i.resumed).length, 1, "exactly one created it");
    const counted = await sql<{ n: number }>(url, "SELECT count(*)::int AS n FROM dreamina.batches");
    assert.equal(counted[0]?.n, 1);
    const again = await stores[0]!.joinBatch({ batchId: "m-1", outDir: "/tmp/y", manifestDigest: "d2" });
    assert.equal(again.resumed, true);
    assert.equal(again.previousDigest, "d1");
  });

  it("reopen puts failed rows back in the queue; a done row stays done", async () => {
    const url = await pgServer.freshDatabase();
    const store = await open(url, 60_000);
    await store.enqueueRows("re", rows(3));
    await store.claimRows("re", 3);
    await store.recordBatchRow("re", "r000", {
      state: "done",
      requestId: "q0",
      file: "a.mp4",
      bytes: 1,
      sha256: "00",
    });
    await store.recordBatchRow("re", "r001", { state: "failed", error: { message: "x" } });
    await store.recordBatchRow("re", "r002", { state: "failed", error: { message: "y" } });
    await store.enqueueRows("re", rows(3), undefined, { reopen: ["r000", "r001"] });
    assert.deepEqual((await store.batchProgress("re")).states, { done: 1, failed: 1, pending: 1 });
    const claimed = await store.claimRows("re", 3);
    assert.deepEqual(
      claimed.map((c) => c.rowKey),
      ["r001"],
    );
  });

  it("excluded rows are never claimed; the rest are, in file order", async () => {
    const url = await pgServer.freshDatabase();
    const store = await open(url, 60_000);
    await store.enqueueRows("ex", rows(4));
    const claimed = await store.claimRows("ex", 4, ["r000", "r002"]);
    assert.deepEqual(
      claimed.map((c) => c.rowKey),
      ["r001", "r003"],
    );
    assert.deepEqual(await store.claimRows("ex", 4, ["r000", "r002"]), []);
  });

  it("a job cancelled or failed on the service does not block the row's next submit; a live or unknown one does", async () => {
    const url = await pgServer.freshDatabase();
    const store = await open(url, 60_000);
    await store.enqueueRows("after", rows(4));
    await store.claimRows("after", 4);
    const intent = (rowKey: string) =>
      store.beginRowSubmit({ modelId: "m", baseUrl: "b", input: {}, batchId: "after", rowKey });
    const accepted = async (rowKey: string, requestId: string) => {
      const id = await intent(rowKey);
      await store.submitAccepted(id, { requestId });
      return id;
    };
    await accepted("r000", "q-cancelled");
    await store.recordStatus("q-cancelled", { status: "cancelled", rawStatus: "cancelled" });
    await accepted("r001", "q-failed");
    await store.recordResult("q-failed", { status: "failed", outputUrls: [] });
    await accepted("r002", "q-running");
    await store.recordStatus("q-running", { status: "in_progress", rawStatus: "in_progress" });
    const unknown = await intent("r003");
    await store.submitUnknown(unknown, new Error("socket hang up"));

    assert.equal(typeof (await intent("r000")), "number");
    assert.equal(typeof (await intent("r001")), "number");
    await assert.rejects(intent("r002"), { code: "batch_row_submitted" });
    await assert.rejects(intent("r003"), { code: "batch_row_submitted" });
    // Only on purpose: the unknown one given up in the same transaction.
    assert.equal(
      typeof (await store.beginRowSubmit({
        modelId: "m",
        baseUrl: "b",
        input: {},
        batchId: "after",
        rowKey: "r003",
        supersedes: [unknown],
      })),
      "number",
    );
  });
});
