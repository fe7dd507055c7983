// The job store on a real PostgreSQL: schema creation by many processes at once, a newer schema
// refused, the intent row visible to another connection before the POST, `submission_unknown`
// for an owner gone on any machine, data URIs and secrets never stored, the password never in an
// error, and the request id kept when the server goes away after the POST.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { inspect } from "node:util";
import pg from "pg";
import { registerSecret } from "../../src/api/redact.js";
import { openJobStore } from "../../src/store/open.js";
import {
  openPostgresJobStore,
  type PostgresJobStore,
  SCHEMA_VERSION,
} from "../../src/store/postgres/index.js";
import { skipWithoutPostgres, startTestPostgres, type TestPostgres } from "../helpers/postgres.js";

const MODEL = "bytedance/dreamina-3-0/pro/image-to-video";
const BASE = "https://model-api.runcomfy.net";
const server = await startTestPostgres();
const skip = skipWithoutPostgres(server);
const pgServer = server as TestPostgres;
let dir: string;
const opened: PostgresJobStore[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "dreamina-pgstore-"));
});
after(async () => {
  for (const s of opened) await s.close();
  if (!skip) await pgServer.stop();
  await rm(dir, { recursive: true, force: true });
});

async function open(url: string, options: Parameters<typeof openPostgresJobStore>[1] = {}) {
  const store = await openPostgresJobStore(url, {
    recoveryDir: join(dir, `recovered-${opened.length}`),
    onWarning: () => {},
    ...options,
  });
  opened.push(store);
  return store;
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

const intent = (extra: Record<string, unknown> = {}) => ({
  modelId: MODEL,
  baseUrl: BASE,
  input: { prompt: "a cat", image_url: "https://example.com/a.jpg", frames: 121, seed: 7, ...extra },
});

describe("schema", { skip }, () => {
  it("eight processes opening an empty database at once: one schema, one version row", async () => {
    const url = await pgServer.freshDatabase();
    const moduleUrl = pathToFileURL(resolve("src/store/postgres/index.ts")).href;
    const script = `const { openPostgresJobStore } = await import(${JSON.stringify(moduleUrl)});
      const s = await openPostgresJobStore(process.argv[1], { recoveryDir: process.argv[2] });
      await s.beginSubmit({ modelId: "m", baseUrl: "b", input: { prompt: "p" } });
      await s.close();`;
    const runs = Array.from({ length: 8 }, (_, i) => {
      const proc = spawn(
        process.execPath,
        ["--import", "tsx", "--input-type=module", "-e", script, url, join(dir, `r-${i}`)],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      let stderr = "";
      proc.stderr.on("data", (d) => {
        stderr += String(d);
      });
      return new Promise<{ code: number | null; stderr: string }>((r) =>
        proc.on("exit", (code) => r({ code, stderr })),
      );
    });
    for (const r of await Promise.all(runs)) assert.equal(r.code, 0, r.stderr);
    const versions = await sql<{ module: string; version: number }>(
      url,
      "SELECT * FROM dreamina.schema_version",
    );
    assert.deepEqual(
      versions.map((v) => [v.module, v.version]),
      [["store", SCHEMA_VERSION]],
    );
    const jobs = await sql<{ n: string }>(url, "SELECT count(*) AS n FROM dreamina.jobs");
    assert.equal(Number(jobs[0]?.n), 8);
  });

  it("a schema newer than this program is refused with store_too_new", async () => {
    const url = await pgServer.freshDatabase();
    await (await open(url)).close();
    await sql(url, "UPDATE dreamina.schema_version SET version = version + 1");
    await assert.rejects(open(url), (error: Error & { code?: string }) => {
      assert.equal(error.code, "store_too_new");
      assert.match(error.message, /newer than this program knows.*upgrade/);
      return true;
    });
  });

  it("a version-1 schema is migrated: a cancelled job then no longer blocks its row's next submit", async () => {
    const url = await pgServer.freshDatabase();
    await (await open(url)).close();
    // Back to version 1 as it was written: the row's intent refused while any job but a rejected
    // or abandoned one exists.
    const [fn] = await sql<{ def: string }>(
      url,
      "SELECT pg_get_functiondef('dreamina.row_intent'::regproc) AS def",
    );
    const v1 = fn!.def.replace(
      /NOT IN \('rejected', 'abandoned', 'cancelled', 'failed'\)/,
      "NOT IN ('rejected', 'abandoned')",
    );
    assert.notEqual(v1, fn!.def);
    await sql(url, v1);
    await sql(url, "UPDATE dreamina.schema_version SET version = 1");
    const store = await open(url);
    const versions = await sql<{ version: number }>(url, "SELECT version FROM dreamina.schema_version");
    assert.equal(versions[0]?.version, SCHEMA_VERSION);
    assert.ok(SCHEMA_VERSION >= 2);
    await store.enqueueRows("mig", [{ rowKey: "r0", line: 1 }]);
    await store.claimRows("mig", 1);
    const intent = () =>
      store.beginRowSubmit({ modelId: "m", baseUrl: "b", input: {}, batchId: "mig", rowKey: "r0" });
    const first = await intent();
    await store.submitAccepted(first, { requestId: "q-mig" });
    await store.recordStatus("q-mig", { status: "cancelled", rawStatus: "cancelled" });
    assert.equal(typeof (await intent()), "number");
  });

  it("location and errors never hold the password", async () => {
    const secret = `pw-${randomBytes(8).toString("hex")}`;
    const good = new URL(pgServer.url);
    good.username = good.username || "postgres";
    good.password = secret;
    const store = await open(good.toString());
    assert.equal(store.kind, "postgres");
    assert.ok(!store.location.includes(secret), store.location);
    assert.equal(new URL(store.location).password, "");

    const missing = new URL(good.toString());
    missing.pathname = "/no_such_database";
    const closed = new URL(good.toString());
    closed.port = "1"; // nothing listens there
    const asQuery = `postgres://${good.host}/no_such_database?user=postgres&password=${secret}`;
    for (const url of [missing.toString(), closed.toString(), asQuery]) {
      const error = (await open(url, { connectTimeoutMs: 3000 }).then(
        () => assert.fail(`opened ${url}`),
        (e: unknown) => e,
      )) as Error & { code?: string };
      assert.equal(error.code, "store_unavailable", String(error));
      for (const text of [error.message, JSON.stringify(error), inspect(error, { depth: 10 })]) {
        assert.ok(!text.includes(secret), text);
      }
      assert.match(error.message, /job store/);
    }
    await assert.rejects(open("mysql://x@y/z"), { code: "store_unsupported" });
  });
});

describe("openJobStore", { skip }, () => {
  it("a postgres:// URL opens the PostgreSQL store (passing the common options on)", async () => {
    const url = await pgServer.freshDatabase();
    const warnings: string[] = [];
    const store = await openJobStore(` ${url.replace(/^postgres:/, "postgresql:")} `, {
      submitGraceMs: 5,
      onWarning: (m) => warnings.push(m),
    });
    try {
      assert.equal(store.kind, "postgres");
      const id = await store.beginSubmit(intent());
      await new Promise((r) => setTimeout(r, 20));
      // The grace period given to openJobStore reached the backend.
      assert.equal((await store.get(id))?.state, "submission_unknown");
    } finally {
      await store.close();
    }
  });
});

describe("journal semantics", { skip }, () => {
  let url: string;
  let store: PostgresJobStore;
  before(async () => {
    url = await pgServer.freshDatabase();
    store = await open(url);
  });

  it("the intent row is committed when beginSubmit returns: another connection sees it", async () => {
    const id = await store.beginSubmit(intent());
    const rows = await sql<{ state: string; pid: number; host: string; worker_id: string }>(
      url,
      "SELECT state, pid, host, worker_id FROM dreamina.jobs WHERE local_id = $1",
      [id],
    );
    assert.equal(rows[0]?.state, "submitting");
    assert.equal(rows[0]?.pid, process.pid);
    assert.ok(rows[0]?.worker_id);
    assert.equal((await store.get(id))?.state, "submitting"); // we are alive
  });

  it("the full path: accepted, statuses, result, file; history and prior", async () => {
    const id = await store.beginSubmit(intent());
    await store.submitAccepted(id, { requestId: "req-full", statusUrl: `${BASE}/s`, resultUrl: `${BASE}/r` });
    assert.equal(await store.recordStatus("req-full", { status: "in_queue", queuePosition: 3 }), true);
    assert.equal(await store.recordStatus("req-full", { status: "in_queue", queuePosition: 3 }), true);
    assert.equal(await store.recordStatus("req-full", { status: "in_queue", queuePosition: 1 }), true);
    assert.equal(await store.recordStatus("req-full", { status: "in_progress" }), true);
    assert.equal(
      await store.recordResult("req-full", {
        status: "succeeded",
        outputUrls: ["https://cdn/x.mp4"],
        cost: 0.5,
      }),
      true,
    );
    // A stale poll from another worker never steps back from a final state.
    await store.recordStatus("req-full", { status: "in_progress" });
    assert.equal(await store.recordFile("req-full", { path: "/out/x.mp4", bytes: 10, sha256: "ab" }), true);
    assert.equal(await store.recordStatus("nope", { status: "in_queue" }), false);
    const rec = await store.get("req-full");
    assert.equal(rec?.state, "succeeded");
    assert.deepEqual(rec?.queuePositions, [3, 1]);
    assert.deepEqual(
      rec?.transitions.map((t) => t.status),
      ["submitting", "submitted", "in_queue", "in_queue", "in_progress", "succeeded", "in_progress"],
    );
    assert.equal(rec?.files[0]?.path, "/out/x.mp4");
    assert.equal(rec?.cost, 0.5);
    assert.equal(rec?.frames, 121);
    assert.equal((await store.get(String(id)))?.requestId, "req-full");
    const prior = await store.runTimePrior(MODEL, 121);
    assert.equal(prior?.samples, 1);
    const listed = await store.list({ state: "succeeded" });
    assert.deepEqual(
      listed.map((r) => r.requestId),
      ["req-full"],
    );
  });

  it("rejected and abandoned are final; a settled row refuses a second outcome", async () => {
    const id = await store.beginSubmit(intent());
    await store.submitRejected(id, new Error("400 bad input"));
    assert.equal((await store.get(id))?.state, "rejected");
    await assert.rejects(store.submitAccepted(id, { requestId: "late" }), { code: "store_error" });
    await assert.rejects(store.submitUnknown(99_999, new Error("x")), { code: "store_error" });
    const unknown = await store.beginSubmit(intent());
    await store.submitUnknown(unknown, new Error("socket hang up"));
    assert.ok((await store.unresolvedSubmissions()).some((r) => r.localId === unknown));
    await store.markAbandoned(unknown, "checked by hand");
    assert.equal((await store.get(unknown))?.state, "abandoned");
  });

  it("data URIs are stored as digest and size, registered secrets and URL passwords never", async () => {
    const token = `tok-${randomBytes(12).toString("hex")}`;
    registerSecret(token);
    const image = randomBytes(3000);
    const id = await store.beginSubmit({
      modelId: MODEL,
      baseUrl: "https://user:hunter2pw@model-api.example",
      input: { prompt: `uses ${token}`, image_url: `data:image/png;base64,${image.toString("base64")}` },
    });
    await store.submitUnknown(
      id,
      new Error(`failed with ${token} and data:image/png;base64,${image.toString("base64")}`),
    );
    const dump = await sql<{ t: string }>(
      url,
      "SELECT row_to_json(j)::text AS t FROM dreamina.jobs j WHERE local_id = $1",
      [id],
    );
    const text = dump[0]!.t;
    assert.ok(!text.includes(token));
    assert.ok(!text.includes("hunter2pw"));
    assert.ok(!text.includes(image.toString("base64").slice(0, 40)));
    const rec = await store.get(id);
    assert.equal((rec?.input as { image_url: { bytes: number } } | undefined)?.image_url.bytes, 3000);
  });
});

describe("owners gone", { skip }, () => {
  it("a submitting row is submission_unknown once its worker stopped, fell silent, or its pid died", async () => {
    const url = await pgServer.freshDatabase();
    const watcher = await open(url, { leaseMs: 300 });
    // Stopped: the worker closed (a crashed submit path, then exit).
    const a = await open(url, { leaseMs: 300 });
    const stoppedRow = await a.beginSubmit(intent());
    assert.equal((await watcher.get(stoppedRow))?.state, "submitting");
    await a.close();
    assert.equal((await watcher.get(stoppedRow))?.state, "submission_unknown");

    // Silent: a worker on another machine whose heartbeat stopped (as if kill -9ed).
    const b = await open(url, { leaseMs: 300 });
    const silentRow = await b.beginSubmit(intent());
    await sql(url, "UPDATE dreamina.jobs SET host = 'another-machine', pid = 1 WHERE local_id = $1", [
      silentRow,
    ]);
    assert.equal((await watcher.get(silentRow))?.state, "submitting");
    b.session.stopHeartbeat();
    await new Promise((r) => setTimeout(r, 700));
    assert.equal((await watcher.get(silentRow))?.state, "submission_unknown");
    const unresolved = await watcher.unresolvedSubmissions();
    assert.ok(unresolved.some((r) => r.localId === silentRow));
    assert.deepEqual(
      (await watcher.list({ state: "submission_unknown" })).map((r) => r.localId).sort(),
      [stoppedRow, silentRow].sort(),
    );

    // A live worker on another machine keeps its row `submitting` however long it takes.
    const c = await open(url, { leaseMs: 300 });
    const liveRow = await c.beginSubmit(intent());
    await sql(url, "UPDATE dreamina.jobs SET host = 'another-machine', pid = 1 WHERE local_id = $1", [
      liveRow,
    ]);
    await new Promise((r) => setTimeout(r, 700));
    assert.equal((await watcher.get(liveRow))?.state, "submitting");
  });

  it("a row written by a process that was kill -9ed is submission_unknown for the next one", async () => {
    const url = await pgServer.freshDatabase();
    const moduleUrl = pathToFileURL(resolve("src/store/postgres/index.ts")).href;
    const script = `const { openPostgresJobStore } = await import(${JSON.stringify(moduleUrl)});
      const s = await openPostgresJobStore(process.argv[1], { recoveryDir: process.argv[2], leaseMs: 60000 });
      const id = await s.beginSubmit({ modelId: "m", baseUrl: "b", input: { prompt: "p" } });
      process.stdout.write(String(id) + "\\n");
      setInterval(() => {}, 1000);`;
    const proc = spawn(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", script, url, join(dir, "k")],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    const id = await new Promise<number>((r) => proc.stdout.once("data", (d) => r(Number(String(d).trim()))));
    const watcher = await open(url);
    assert.equal((await watcher.get(id))?.state, "submitting");
    proc.kill("SIGKILL");
    await new Promise((r) => proc.once("exit", r));
    // Same machine: the dead pid tells at once, without waiting a lease.
    assert.equal((await watcher.get(id))?.state, "submission_unknown");
  });
});

describe("the server goes away after the POST", { skip }, () => {
  it("the request id goes to a recovery file and into the store at the next open", async () => {
    const url = await pgServer.freshDatabase();
    const recoveryDir = join(dir, "kept");
    const warnings: string[] = [];
    const store = await open(url, { recoveryDir, onWarning: (m) => warnings.push(m) });
    const id = await store.beginSubmit(intent());
    // Every connection of this store is cut, and new ones refused (the database renamed away).
    const name = new URL(url).pathname.slice(1);
    const admin = new URL(url);
    admin.pathname = "/postgres";
    await sql(admin.toString(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [
      name,
    ]);
    await sql(admin.toString(), `ALTER DATABASE ${name} RENAME TO ${name}_away`);
    await store.submitAccepted(id, { requestId: "req-kept" });
    assert.match(warnings.join("\n"), /req-kept/);
    assert.equal((await readdir(recoveryDir)).length, 1);
    await sql(admin.toString(), `ALTER DATABASE ${name}_away RENAME TO ${name}`);
    const again = await open(url, { recoveryDir });
    const rec = await again.get("req-kept");
    assert.equal(rec?.localId, id);
    assert.equal(rec?.state, "submitted");
    assert.equal((await readdir(recoveryDir)).length, 0);
  });
});
