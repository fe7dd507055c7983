// The shared store's numbers (issue 13), on a real PostgreSQL started for the run:
// - rows per second of one 1,000-row batch run by 1, 2 and 4 worker processes on PostgreSQL, each
//   row held for a fixed service time (the service is the limit), and the 4/1 ratio (goal ≥ 3.5);
// - client CPU per row on PostgreSQL vs on SQLite, the same store calls for each row (goal ≤ 1.5×);
// - the store's own cost per row: wall time with no service time at all, and transactions per row.
//
// `npm run bench -- store` (options: --rows N, --service-ms N, --lanes N).

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";

import { openPostgresJobStore } from "../src/store/postgres/index.js";
import { SqliteJobStore } from "../src/store/sqlite/index.js";
import { startTestPostgres } from "../test/helpers/postgres.js";

function flag(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
}

async function commits(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const r = await client.query<{ n: string }>(
      "SELECT xact_commit AS n FROM pg_stat_database WHERE datname = current_database()",
    );
    return Number(r.rows[0]?.n);
  } finally {
    await client.end();
  }
}

async function runWorkers(url: string, batchId: string, workers: number, lanes: number, serviceMs: number) {
  const started = performance.now();
  const outs = await Promise.all(
    Array.from({ length: workers }, () => {
      const proc = spawn(
        process.execPath,
        ["--import", "tsx", "bench/store-worker.ts", url, batchId, String(lanes), String(serviceMs)],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      let out = "";
      proc.stdout.on("data", (d) => {
        out += String(d);
      });
      return new Promise<{ rows: number; cpuMs: number; startedAt: number; endedAt: number }>(
        (resolve, reject) =>
          proc.on("exit", (code) =>
            code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`worker exit ${code}`)),
          ),
      );
    }),
  );
  // From the first worker ready to the last one done (starting a process under tsx takes seconds
  // on a busy machine, and is not the store's).
  const seconds =
    (Math.max(...outs.map((o) => o.endedAt)) - Math.min(...outs.map((o) => o.startedAt))) / 1000;
  const withStart = (performance.now() - started) / 1000;
  const rows = outs.reduce((s, o) => s + o.rows, 0);
  const cpuMs = outs.reduce((s, o) => s + o.cpuMs, 0);
  return { rows, seconds, withStart, rowsPerSecond: rows / seconds, cpuMsPerRow: cpuMs / rows };
}

/**
 * The same store calls per row, one row after another, in this process: the intent row and the
 * accepted id (each committed alone, as they must be), then the observations (two statuses, the
 * result, the file) either one by one or grouped in one transaction as a batch writes them
 * (`writeBatch`), through the JobStore interface of each backend.
 */
async function cpuPerRow(
  kind: "sqlite" | "postgres",
  url: string,
  dir: string,
  rows: number,
  grouped: boolean,
) {
  const input = (i: number) => ({ prompt: `row ${i}`, image_url: "https://img/a.jpg", frames: 121, seed: i });
  const observations = (requestId: string, i: number) => [
    { kind: "status" as const, requestId, observation: { status: "in_progress" as const } },
    { kind: "status" as const, requestId, observation: { status: "completed" as const } },
    {
      kind: "result" as const,
      requestId,
      result: { status: "succeeded" as const, outputUrls: ["https://cdn/v.mp4"], cost: 0.1 },
    },
    { kind: "file" as const, requestId, file: { path: `/out/${i}.mp4`, bytes: 1000, sha256: "ab" } },
  ];
  const store =
    kind === "sqlite"
      ? SqliteJobStore.open(join(dir, `journal-${grouped}.db`))
      : await openPostgresJobStore(url, { recoveryDir: join(dir, "r") });
  const before = kind === "postgres" ? await commits(url) : 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let i = 0; i < rows; i++) {
    const id = await store.beginSubmit({
      modelId: "m",
      baseUrl: "https://api",
      input: input(i),
      batchId: "c",
      rowKey: `r${i}`,
    });
    await store.submitAccepted(id, { requestId: `p-${i}` });
    if (grouped) await store.writeBatch(observations(`p-${i}`, i));
    else for (const w of observations(`p-${i}`, i)) await store.writeBatch([w]);
  }
  const c = process.cpuUsage(c0);
  const wall = performance.now() - t0;
  await store.close();
  const txPerRow = kind === "postgres" ? ((await commits(url)) - before - 1) / rows : undefined;
  return { cpuMsPerRow: (c.user + c.system) / 1000 / rows, wallMsPerRow: wall / rows, txPerRow };
}
export async function main(argv: string[] = process.argv.slice(2)): Promise<boolean> {
  const rows = flag(argv, "--rows", 1000);
  const serviceMs = flag(argv, "--service-ms", 250);
  const lanes = flag(argv, "--lanes", 16);
  const server = await startTestPostgres();
  if (typeof server === "string") {
    console.log(`no PostgreSQL for the store bench: ${server}`);
    return false;
  }
  const dir = mkdtempSync(join(tmpdir(), "dreamina-store-bench-"));
  try {
    console.log(`${rows} rows, ${serviceMs} ms of service time per row, ${lanes} rows at once per worker`);
    const results: Record<number, number> = {};
    for (const workers of [1, 2, 4]) {
      const url = await server.freshDatabase();
      const seed = await openPostgresJobStore(url, { recoveryDir: join(dir, "seed") });
      await seed.enqueueRows(
        "bench",
        Array.from({ length: rows }, (_, i) => ({ rowKey: `r${i}`, estimateUsd: 0.1 })),
        rows * 0.1,
      );
      await seed.close();
      const r = await runWorkers(url, "bench", workers, lanes, serviceMs);
      const ideal = (workers * lanes * 1000) / serviceMs;
      results[workers] = r.rowsPerSecond;
      console.log(
        `  ${workers} worker(s): ${r.rows} rows in ${r.seconds.toFixed(2)} s = ${r.rowsPerSecond.toFixed(1)} rows/s ` +
          `(ideal ${ideal.toFixed(0)}; ${r.withStart.toFixed(2)} s with process starts), client CPU ${r.cpuMsPerRow.toFixed(2)} ms/row`,
      );
    }
    const ratio = (results[4] ?? 0) / (results[1] ?? 1);
    console.log(`  4 workers / 1 worker: ${ratio.toFixed(2)}x (goal >= 3.5x)`);

    const n = Math.max(100, Math.floor(rows / 2));
    let cpuRatio = 0;
    for (const grouped of [false, true]) {
      const sqlite = await cpuPerRow("sqlite", "", dir, n, grouped);
      const postgres = await cpuPerRow("postgres", await server.freshDatabase(), dir, n, grouped);
      const ratioHere = postgres.cpuMsPerRow / sqlite.cpuMsPerRow;
      if (grouped) cpuRatio = ratioHere;
      console.log(
        `client CPU per row, ${n} rows one after another, observations ${grouped ? "grouped as a batch writes them" : "one by one"}:`,
      );
      console.log(
        `  SQLite     ${sqlite.cpuMsPerRow.toFixed(3)} ms CPU, ${sqlite.wallMsPerRow.toFixed(3)} ms wall per row`,
      );
      console.log(
        `  PostgreSQL ${postgres.cpuMsPerRow.toFixed(3)} ms CPU, ${postgres.wallMsPerRow.toFixed(3)} ms wall per row, ` +
          `${postgres.txPerRow?.toFixed(1)} transactions per row`,
      );
      console.log(`  PostgreSQL / SQLite CPU: ${ratioHere.toFixed(2)}x${grouped ? " (goal <= 1.5x)" : ""}`);
    }
    return ratio >= 3.5 && cpuRatio <= 1.5;
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = (await main()) ? 0 : 1;
}
