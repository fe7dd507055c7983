// An accepted submit whose journal write fails (the file write-locked by another process past
// the busy timeout, or worse): the request id is printed, kept in a recovery file beside the
// journal, and taken into the journal at its next write or open, idempotently. Real SQLite
// files, a real second process holding the lock.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import {
  SqliteJobStore as Journal,
  StoreError as JournalError,
  recoveryDirFor,
  UnrecordedSubmitError,
} from "../../src/store/index.js";

let dir: string;
let n = 0;
const dbPath = () => join(dir, `case-${++n}`, "journal.db");

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "dreamina-journal-recovery-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * Another process holding the journal's write lock (BEGIN IMMEDIATE) until killed. Resolves
 * once the lock is held.
 */
async function lockHolder(path: string): Promise<{ child: ChildProcess; release(): Promise<void> }> {
  const script = `
    const Database = (await import("better-sqlite3")).default;
    const db = new Database(process.argv.at(-1));
    db.exec("BEGIN IMMEDIATE");
    db.prepare("UPDATE jobs SET updated_at = updated_at").run();
    process.stdout.write("locked\\n");
    // The timer keeps db reachable: from Node 22 on, V8 collects a module's top-level binding
    // that no closure uses, and the collected connection gives the lock back at once.
    setInterval(() => db.open, 1000);
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script, "--", path], {
    cwd: process.cwd(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (d) => {
    stderr += String(d);
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on("data", (d) => {
      if (String(d).includes("locked")) resolve();
    });
    child.on("exit", (code) => reject(new Error(`the lock holder exited (${code}): ${stderr}`)));
  });
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  return {
    child,
    release: async () => {
      child.kill("SIGKILL");
      await exited;
    },
  };
}

function recoveryFiles(path: string): string[] {
  const folder = recoveryDirFor(path);
  return existsSync(folder) ? readdirSync(folder).map((f) => join(folder, f)) : [];
}

describe("journal: an accepted submit the journal cannot record", () => {
  it("another process holds the lock past the busy timeout: the id is printed, kept (0600), and taken in at the next open, once", async () => {
    const path = dbPath();
    const warnings: string[] = [];
    const journal = Journal.open(path, { busyTimeoutMs: 200, onWarning: (m) => warnings.push(m) });
    const localId = await journal.beginSubmit({
      modelId: "m",
      input: { prompt: "locked out" },
      baseUrl: "b",
    });
    const holder = await lockHolder(path);
    try {
      const started = Date.now();
      // Returns normally: the id is safe, the caller goes on with the job.
      await journal.submitAccepted(localId, {
        requestId: "req_locked_1",
        statusUrl: "https://model-api.runcomfy.net/v1/requests/req_locked_1/status",
      });
      assert.ok(Date.now() - started >= 150, "it waited for the lock first (busy timeout)");
      assert.equal(warnings.length, 1);
      assert.match(warnings[0] ?? "", /accepted request req_locked_1 .*billed.*database is locked/);
      const files = recoveryFiles(path);
      assert.equal(files.length, 1);
      assert.match(warnings[0] ?? "", new RegExp(files[0]!.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
      assert.equal(statSync(files[0]!).mode & 0o777, 0o600);
      const entry = JSON.parse(readFileSync(files[0]!, "utf8"));
      assert.equal(entry.requestId, "req_locked_1");
      assert.equal(entry.localId, localId);
      assert.equal(entry.journal, path);
      assert.equal(entry.statusUrl, "https://model-api.runcomfy.net/v1/requests/req_locked_1/status");
    } finally {
      await holder.release();
      await journal.close();
    }

    // Nothing in the journal yet (the process "died" before writing again).
    const raw = new Database(path, { readonly: true });
    assert.equal(
      (raw.prepare("SELECT request_id FROM jobs WHERE local_id = ?").get(localId) as { request_id: unknown })
        .request_id,
      null,
    );
    raw.close();

    const next = Journal.open(path);
    try {
      assert.deepEqual(
        next.lastRecovery?.replayed.map((r) => r.requestId),
        ["req_locked_1"],
      );
      const row = await next.get("req_locked_1");
      assert.equal(row?.localId, localId);
      assert.equal(row?.state, "submitted");
      assert.equal(row?.statusUrl, "https://model-api.runcomfy.net/v1/requests/req_locked_1/status");
      assert.deepEqual(
        row?.transitions.map((t) => t.status),
        ["submitting", "submitted"],
      );
      assert.deepEqual(recoveryFiles(path), [], "removed once committed");

      // Twice changes nothing.
      assert.deepEqual((await next.replayRecovered()).replayed, []);
      assert.equal((await next.get("req_locked_1"))?.transitions.length, 2);
    } finally {
      await next.close();
    }
  });

  it("a file left after its commit (a crash before the removal) is dropped without changing the row", async () => {
    const path = dbPath();
    const journal = Journal.open(path, { busyTimeoutMs: 100, onWarning: () => {} });
    const localId = await journal.beginSubmit({ modelId: "m", input: { prompt: "p" }, baseUrl: "b" });
    const holder = await lockHolder(path);
    try {
      await journal.submitAccepted(localId, { requestId: "req_twice" });
    } finally {
      await holder.release();
    }
    const [file] = recoveryFiles(path);
    const copy = `${file}.copy`;
    copyFileSync(file!, copy);
    await journal.replayRecovered();
    const before = JSON.stringify(await journal.get("req_twice"));
    // The same entry again, as if the process had died between the commit and the unlink.
    copyFileSync(copy, file!);
    const report = await journal.replayRecovered();
    assert.deepEqual(report.replayed, []);
    assert.deepEqual(report.unmatched, []);
    assert.equal(JSON.stringify(await journal.get("req_twice")), before);
    assert.deepEqual(
      recoveryFiles(path).filter((f) => f.endsWith(".json")),
      [],
    );
    await journal.close();
  });

  it("the same process's next write takes the id in first, so the statuses that follow land on the row", async () => {
    const path = dbPath();
    const journal = Journal.open(path, { busyTimeoutMs: 100, onWarning: () => {} });
    const localId = await journal.beginSubmit({ modelId: "m", input: { prompt: "p" }, baseUrl: "b" });
    // A second connection, in this process, holding the write lock.
    const other = new Database(path);
    other.exec("BEGIN IMMEDIATE");
    try {
      await journal.submitAccepted(localId, { requestId: "req_next_write" });
    } finally {
      other.exec("ROLLBACK");
      other.close();
    }
    assert.equal(recoveryFiles(path).length, 1);
    assert.equal(
      await journal.recordStatus("req_next_write", { status: "in_queue", queuePosition: 2 }),
      true,
    );
    const row = await journal.get("req_next_write");
    assert.equal(row?.state, "in_queue");
    assert.deepEqual(row?.queuePositions, [2]);
    assert.deepEqual(recoveryFiles(path), []);
    await journal.close();
  });

  it("when the recovery file cannot be written either, the id is printed and the error carries it", async () => {
    const path = dbPath();
    const warnings: string[] = [];
    const journal = Journal.open(path, { busyTimeoutMs: 100, onWarning: (m) => warnings.push(m) });
    const localId = await journal.beginSubmit({ modelId: "m", input: { prompt: "p" }, baseUrl: "b" });
    // A file where the recovery folder should be: it cannot be created.
    writeFileSync(recoveryDirFor(path), "in the way");
    const other = new Database(path);
    other.exec("BEGIN IMMEDIATE");
    try {
      await assert.rejects(
        journal.submitAccepted(localId, { requestId: "req_nowhere" }),
        (error: unknown) => {
          assert.ok(error instanceof UnrecordedSubmitError);
          assert.equal(error.requestId, "req_nowhere");
          assert.match(error.message, /accepted request req_nowhere/);
          assert.match(error.message, /database is locked/);
          assert.match(error.message, /recovery folder .*journal\.db\.recovered \(EEXIST/);
          assert.match(error.message, /dreamina wait req_nowhere/);
          return true;
        },
      );
    } finally {
      other.exec("ROLLBACK");
      other.close();
    }
    assert.equal(warnings.length, 1, "printed at once, even if the caller swallowed the error");
    assert.match(warnings[0] ?? "", /req_nowhere/);
    await journal.close();
  });

  it("a caller's mistake (a late acceptance on a refused row) still throws, with the id in the message", async () => {
    const journal = Journal.open(dbPath(), { onWarning: () => assert.fail("no recovery for a logic error") });
    const id = await journal.beginSubmit({ modelId: "m", input: { prompt: "p" }, baseUrl: "b" });
    await journal.submitRejected(id, new Error("422"));
    await assert.rejects(
      journal.submitAccepted(id, { requestId: "late_one" }),
      (error: unknown) => error instanceof JournalError && /rejected.*late_one/.test(error.message),
    );
    await journal.close();
  });

  it("an id that matches no row is kept and warned about at every open, never dropped", async () => {
    const path = dbPath();
    Journal.open(path).close();
    const folder = recoveryDirFor(path);
    const orphan = join(folder, "1-1-42-aa.json");
    mkdirSync(folder, { recursive: true });
    writeFileSync(
      orphan,
      JSON.stringify({
        kind: "submit_accepted",
        journal: path,
        localId: 42,
        requestId: "req_orphan",
        at: new Date().toISOString(),
        pid: 1,
        host: "h",
        error: "x",
      }),
    );
    for (let i = 0; i < 2; i++) {
      const warnings: string[] = [];
      const journal = Journal.open(path, { onWarning: (m) => warnings.push(m) });
      assert.deepEqual(
        journal.lastRecovery?.unmatched.map((u) => u.requestId),
        ["req_orphan"],
      );
      assert.match(warnings.join("\n"), /req_orphan .*dreamina wait req_orphan/);
      await journal.close();
      assert.ok(existsSync(orphan));
    }
  });

  it("opening the journal does not wait for another process's write lock", async () => {
    const path = dbPath();
    Journal.open(path).close();
    const holder = await lockHolder(path);
    try {
      const started = Date.now();
      const journal = Journal.open(path, { busyTimeoutMs: 5_000 });
      assert.ok(Date.now() - started < 2_000, `opened in ${Date.now() - started} ms`);
      assert.deepEqual(await journal.list(), []);
      await journal.close();
    } finally {
      await holder.release();
    }
  });

  it("DREAMINA_JOURNAL_BUSY_TIMEOUT_MS sets the busy timeout; a bad value is refused by name", async () => {
    const saved = process.env.DREAMINA_JOURNAL_BUSY_TIMEOUT_MS;
    try {
      process.env.DREAMINA_JOURNAL_BUSY_TIMEOUT_MS = "1234";
      const journal = Journal.open(dbPath());
      assert.equal(journal.settings().busyTimeoutMs, 1234);
      await journal.close();
      process.env.DREAMINA_JOURNAL_BUSY_TIMEOUT_MS = "soon";
      assert.throws(() => Journal.open(dbPath()), /DREAMINA_JOURNAL_BUSY_TIMEOUT_MS .*"soon"/);
    } finally {
      if (saved === undefined) delete process.env.DREAMINA_JOURNAL_BUSY_TIMEOUT_MS;
      else process.env.DREAMINA_JOURNAL_BUSY_TIMEOUT_MS = saved;
    }
  });
});
