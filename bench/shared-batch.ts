// One batch shared by 1, 2 and 4 `dreamina batch` processes on one PostgreSQL (issue 13): the CLI
// as it ships (dist/), against the sandbox time-scaled so that the service is the limit (each
// worker runs `--concurrency` jobs of about `--job-ms`, and the sandbox has workers to spare).
// Rows per second from the first submit to the last row settled (the store's own times: process
// start-up and validation are not the store's), and the 4-worker / 1-worker ratio (goal ≥ 3.5).
//
// `npm run bench -- shared` (options: --rows N, default 1000; --job-ms N, default 400;
// --concurrency N per worker, default 4).

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { startSandbox } from "../src/sandbox/index.js";
import { startTestPostgres } from "../test/helpers/postgres.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(ROOT, "bin", "dreamina.js");

function flag(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
}

async function makeImages(dir: string, count: number): Promise<string[]> {
  const sharp = (await import("sharp")).default;
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `src${i}.jpg`;
    await sharp({
      create: { width: 480 + i * 16, height: 360, channels: 3, background: { r: 40 * i, g: 90, b: 160 } },
    })
      .jpeg()
      .toFile(join(dir, name));
    names.push(name);
  }
  return names;
}

async function span(url: string): Promise<{ rows: number; done: number; seconds: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const r = await client.query<{ rows: number; done: number; first: string; last: string }>(
      `SELECT (SELECT count(*)::int FROM dreamina.batch_rows) AS rows,
              (SELECT count(*)::int FROM dreamina.batch_rows WHERE state = 'done') AS done,
              (SELECT min(created_at) FROM dreamina.jobs) AS first,
              (SELECT max(updated_at) FROM dreamina.batch_rows) AS last`,
    );
    const row = r.rows[0]!;
    return { rows: row.rows, done: row.done, seconds: (Number(row.last) - Number(row.first)) / 1000 };
  } finally {
    await client.end();
  }
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<boolean> {
  const rows = flag(argv, "--rows", 1000);
  const jobMs = flag(argv, "--job-ms", 400);
  const concurrency = flag(argv, "--concurrency", 4);
  if (!existsSync(join(ROOT, "dist", "cli", "main.js"))) {
    console.log("shared: dist/ is missing (npm run build): skipped");
    return false;
  }
  const server = await startTestPostgres();
  if (typeof server === "string") {
    console.log(`shared: no PostgreSQL (${server}): skipped`);
    return false;
  }
  const dir = await mkdtemp(join(tmpdir(), "dreamina-bench-shared-"));
  const results: { workers: number; rowsPerSecond: number; done: number }[] = [];
  try {
    const images = await makeImages(dir, 4);
    const manifest = join(dir, "rows.jsonl");
    await writeFile(
      manifest,
      `${Array.from({ length: rows }, (_, i) =>
        JSON.stringify({
          image: images[i % images.length],
          prompt: `shared bench row ${i}`,
          seed: 1 + (i % 2),
        }),
      ).join("\n")}\n`,
    );
    // 121-frame jobs of about jobMs (the sandbox's minute, time-scaled), ± 10 %.
    const timeScale = 60_000 / jobMs;
    for (const workers of [1, 2, 4]) {
      const url = await server.freshDatabase();
      const sandbox = await startSandbox({
        quiet: true,
        workers: 4 * concurrency * workers,
        timeScale,
        runTime: { 121: { meanMs: 60_000, jitterMs: 6_000 } },
        renderShortSide: 160,
      });
      try {
        const home = join(dir, `home-${workers}`);
        await mkdir(home, { recursive: true });
        const exits = await Promise.all(
          Array.from({ length: workers }, (_, i) => {
            const child = spawn(
              process.execPath,
              [
                BIN,
                "batch",
                manifest,
                "--out",
                join(dir, `out-${workers}-${i}`),
                "--store",
                url,
                "--base-url",
                sandbox.url,
                "--token",
                "bench",
                "--concurrency",
                String(concurrency),
                "--rps",
                "2000",
                "--time-scale",
                String(timeScale),
                "--no-report",
                "--json",
                "-q",
              ],
              { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, DREAMINA_HOME: home } },
            );
            let stderr = "";
            child.stderr.on("data", (d) => {
              stderr += String(d);
            });
            return new Promise<{ code: number | null; stderr: string }>((resolve) =>
              child.on("exit", (code) => resolve({ code, stderr })),
            );
          }),
        );
        for (const e of exits)
          if (e.code !== 0) console.log(`  a worker exited ${e.code}: ${e.stderr.slice(-400)}`);
        const s = await span(url);
        results.push({ workers, rowsPerSecond: s.done / s.seconds, done: s.done });
        console.log(
          `  ${workers} worker(s) × ${concurrency}: ${s.done}/${rows} done in ${s.seconds.toFixed(1)} s = ` +
            `${(s.done / s.seconds).toFixed(1)} rows/s (ideal ${((workers * concurrency * 1000) / jobMs).toFixed(1)})`,
        );
      } finally {
        await sandbox.close();
      }
    }
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const one = results.find((r) => r.workers === 1)!;
  const four = results.find((r) => r.workers === 4)!;
  const ratio = four.rowsPerSecond / one.rowsPerSecond;
  const allDone = results.every((r) => r.done === rows);
  console.log(
    `shared batch, ${rows} rows, jobs ≈${jobMs} ms: 4 workers / 1 worker = ${ratio.toFixed(2)}× (goal ≥ 3.5×)` +
      (allDone ? "" : "; some rows not done"),
  );
  return ratio >= 3.5 && allDone;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = (await main()) ? 0 : 1;
}
