// `dreamina store import`'s core on real files and a real server: every job of an SQLite journal
// (with its history, files, batches and row outcomes) arrives in PostgreSQL reading the same as
// it did in SQLite; importing again, or importing a copy of the file, adds nothing; an import that
// fails halfway leaves nothing behind; ids still in the recovery folder stop it.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { importSqliteJournal } from "../../src/store/import.js";
import { openPostgresJobStore, type PostgresJobStore } from "../../src/store/postgres/index.js";
import { SqliteJobStore } from "../../src/store/sqlite/index.js";
import { skipWithoutPostgres, startTestPostgres, type TestPostgres } from "../helpers/postgres.js";

const server = await startTestPostgres();
const skip = skipWithoutPostgres(server);
const pgServer = server as TestPostgres;
const MODEL = "bytedance/dreamina-3-0/pro/image-to-video";
let dir: string;
const opened: PostgresJobStore[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "dreamina-import-"));
});
after(async () => {
  for (const s of opened) await s.close();
  if (!skip) await pgServer.stop();
  await rm(dir, { recursive: true, force: true });
});

async function open(url: string) {
  const store = await openPostgresJobStore(url, { recoveryDir: join(dir, "r"), onWarning: () => {} });
  opened.push(store);
  return store;
}

async function count(url: string, table: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM dreamina.${table}`)).rows[0]!.n;
  } finally {
    await client.end();
  }
}

/** A journal with jobs in every kind of state, a data URI, a batch with outcomes. */
async function makeJournal(path: string): Promise<SqliteJobStore> {
  await mkdir(join(path, ".."), { recursive: true });
  const journal = SqliteJobStore.open(path);
  const input = (i: number) => ({
    prompt: `shot ${i}`,
    image_url: `data:image/png;base64,${randomBytes(200).toString("base64")}`,
    frames: 121,
    seed: i,
  });
  for (let i = 0; i < 30; i++) {
    const id = await journal.beginSubmit({
      modelId: MODEL,
      baseUrl: "https://api",
      input: input(i),
      batchId: "b-1",
      rowKey: `r${i}`,
    });
    if (i % 5 === 0) {
      await journal.submitRejected(id, new Error("400"));
      continue;
    }
    if (i % 7 === 0) {
      await journal.submitUnknown(id, new Error("socket hang up"));
      continue;
    }
    await journal.submitAccepted(id, { requestId: `req-${i}`, statusUrl: "https://api/s" });
    await journal.recordStatus(`req-${i}`, { status: "in_queue", queuePosition: 2 });
    await journal.recordStatus(`req-${i}`, { status: "in_progress" });
    if (i % 2 === 0) {
      await journal.recordResult(`req-${i}`, {
        status: "succeeded",
        outputUrls: [`https://cdn/${i}.mp4`],
        cost: 0.4,
      });
      await journal.recordFile(`req-${i}`, {
        path: `/out/${i}.mp4`,
        bytes: 100 + i,
        sha256: "ab".repeat(32),
      });
    }
  }
  const outDir = join(dir, `out-${randomBytes(4).toString("hex")}`);
  await mkdir(outDir);
  await journal.openBatch({ outDir, batchId: "b-1", exactId: true });
  await journal.recordBatchRow("b-1", "r2", {
    state: "done",
    requestId: "req-2",
    file: "2.mp4",
    bytes: 102,
    sha256: "ab".repeat(32),
  });
  await journal.recordBatchRow("b-1", "r5", { state: "failed", error: { code: "rejected" } });
  await journal.releaseBatch("b-1");
  return journal;
}

describe("store import", { skip }, () => {
  it("moves every job with its history; reads the same; twice, or from a copy, adds nothing", async () => {
    const path = join(dir, "a", "journal.db");
    const journal = await makeJournal(path);
    const url = await pgServer.freshDatabase();
    const store = await open(url);
    const first = await importSqliteJournal(path, store);
    assert.equal(first.jobs.imported, 30);
    assert.equal(first.jobs.skipped, 0);
    assert.equal(first.batches.imported, 1);
    assert.equal(first.batchRows.imported, 2);
    assert.ok(first.transitions > 60);

    // Each job reads as it did in SQLite (apart from its local id, and who may vouch for it).
    for (const old of await journal.list({ limit: 100 })) {
      const detail = (await journal.get(old.localId))!;
      const moved = await store.get(old.requestId ?? "");
      const found =
        moved ??
        (await store.list({ limit: 100 })).find(
          (r) => r.inputDigest === old.inputDigest && r.createdAt === old.createdAt,
        );
      assert.ok(found, `job ${old.localId} not imported`);
      const copy = await store.get(found.localId);
      const strip = (r: Record<string, unknown>) => ({ ...r, localId: 0 });
      assert.deepEqual(strip({ ...copy }), strip({ ...detail }));
    }

    const counts = async () => [
      await count(url, "jobs"),
      await count(url, "transitions"),
      await count(url, "files"),
      await count(url, "batches"),
      await count(url, "batch_rows"),
    ];
    const before = await counts();
    const again = await importSqliteJournal(path, store);
    assert.deepEqual(again.jobs, { imported: 0, skipped: 30 });
    assert.equal(again.transitions, 0);
    assert.deepEqual(await counts(), before);

    // The same journal moved elsewhere is still recognised.
    const moved = join(dir, "moved.db");
    await journal.close();
    await copyFile(path, moved);
    const third = await importSqliteJournal(moved, store);
    assert.equal(third.jobs.imported, 0);
    assert.deepEqual(await counts(), before);
  });

  it("an import that fails halfway leaves nothing; the next one brings everything", async () => {
    const path = join(dir, "b", "journal.db");
    await (await makeJournal(path)).close();
    const url = await pgServer.freshDatabase();
    const store = await open(url);
    const client = new pg.Client({ connectionString: url });
    client.on("error", () => {});
    await client.connect();
    // The server refuses one file row, late in the import.
    await client.query("ALTER TABLE dreamina.files ADD CONSTRAINT no_26 CHECK (path <> '/out/26.mp4')");
    await assert.rejects(importSqliteJournal(path, store), { code: "store_query" });
    assert.equal(await count(url, "jobs"), 0);
    assert.equal(await count(url, "batch_rows"), 0);
    await client.query("ALTER TABLE dreamina.files DROP CONSTRAINT no_26");
    await client.end();
    assert.equal((await importSqliteJournal(path, store)).jobs.imported, 30);
  });

  it("ids still waiting in the journal's recovery folder stop the import, with what to do", async () => {
    const path = join(dir, "c", "journal.db");
    await (await makeJournal(path)).close();
    await mkdir(`${path}.recovered`);
    await writeFile(`${path}.recovered/1-1-1-aa.json`, "{}");
    const store = await open(await pgServer.freshDatabase());
    await assert.rejects(importSqliteJournal(path, store), (e: Error & { code?: string }) => {
      assert.equal(e.code, "store_import_pending");
      assert.match(e.message, /dreamina jobs/);
      return true;
    });
    await assert.rejects(importSqliteJournal(join(dir, "none.db"), store), { code: "store_import_missing" });
  });
});
