// Batch bench: `node --import tsx bench/batch.ts`.
//
// 1. 1,000 rows against the sandbox (32 workers, time-scaled so a job takes about 1 s), the
//    batch run with concurrency 32 in a CHILD process, so that the client's CPU and memory are
//    measured without the sandbox's. Targets: wall time within 10 % of the ideal
//    (rows × mean job time / workers), client peak RSS < 200 MB, client CPU < 10 ms per row.
//    `--rows=10000` (or BENCH_SCALE_ROWS=10000) runs a second, larger batch in a fresh child
//    after it: memory must be flat in rows (its peak RSS < 250 MB and ≤ 1.3 × the first's).
//    Then the bare baseline (bench/batch-floor.ts, BENCH_FLOOR=0 skips it): the same rows as the
//    same requests and bytes with nothing around them, so the CPU per row reads against what this
//    machine charges for the traffic alone.
// 2. Validation of a 10,000-row manifest of local images (every rule, images probed): rows/s.
//
// The child mode (`--client <json>`) is this same file run with different arguments.

import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type FloorParams, type FloorReport, floorMain } from "./batch-floor.js";
import { runChild } from "./child.js";

interface ClientParams {
  baseUrl: string;
  manifest: string;
  out: string;
  journal: string;
  concurrency: number;
  timeScale: number;
  rps: number;
}

/** What our batch's child reports: the baseline's measures, and what only a real batch has. */
interface ClientReport extends FloorReport {
  unknown: number;
  throttled: number;
}

/** The child: runs the batch through the SDK and prints one JSON line with its own usage. */
export async function clientMain(params: ClientParams): Promise<void> {
  const [{ runBatch, readManifest, RateLimiter }, { RunComfyClient }, { openJobStore }, { nodeFetch }] =
    await Promise.all([
      import("../src/batch/index.js"),
      import("../src/api/client.js"),
      import("../src/store/index.js"),
      import("../src/http/node-fetch.js"),
    ]);
  const manifest = await readManifest(params.manifest);
  const journal = await openJobStore(params.journal);
  const limiter = new RateLimiter({ rps: params.rps, burst: 64 });
  // As `dreamina batch` does: the Node transport (BENCH_FETCH=global: the global fetch instead).
  const client = new RunComfyClient({
    baseUrl: params.baseUrl,
    token: "bench",
    hooks: limiter.hooks(),
    ...(process.env.BENCH_FETCH === "global" ? {} : { fetch: nodeFetch }),
  });
  // BENCH_MEM=1: memory peaks while rows run, and after the last row settled (the reports).
  const newPeak = () => ({ rss: 0, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 });
  const peaks = { rows: newPeak(), end: newPeak() };
  let phase: keyof typeof peaks = "rows";
  let settled = 0;
  const sampler = process.env.BENCH_MEM
    ? setInterval(() => {
        const m = process.memoryUsage();
        const peak = peaks[phase];
        for (const k of Object.keys(peak) as (keyof typeof peak)[]) peak[k] = Math.max(peak[k], m[k] / 1e6);
      }, 100)
    : undefined;
  // BENCH_ALLOC=<file>: where the client's JS heap allocations come from (sampled, collected
  // objects included), as a .heapprofile for Chrome DevTools.
  const allocProfile = process.env.BENCH_ALLOC ? await startAllocationSampling() : undefined;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const run = runBatch(manifest, {
    client,
    store: journal,
    outDir: params.out,
    concurrency: params.concurrency,
    timeScale: params.timeScale,
    rateLimiter: limiter,
    validateConcurrency: 32,
  });
  const marks: Record<string, number> = {};
  const mark = (name: string) => {
    const c = process.cpuUsage(cpu0);
    marks[name] = Math.round((c.user + c.system) / 1000);
  };
  for await (const event of run) {
    if (event.type === "plan" || event.type === "report" || event.type === "summary") mark(event.type);
    if ((event.type === "row-done" || event.type === "row-failed") && ++settled === manifest.rows.length) {
      phase = "end";
    }
  }
  if (process.env.BENCH_MEM) process.stderr.write(`cpu marks (ms): ${JSON.stringify(marks)}\n`);
  const summary = await run.summary;
  const wallMs = performance.now() - t0;
  if (sampler) {
    clearInterval(sampler);
    const round = (p: Record<string, number>) =>
      Object.fromEntries(Object.entries(p).map(([k, v]) => [k, Math.round(v)]));
    process.stderr.write(
      `memory peaks (MB) while rows run: ${JSON.stringify(round(peaks.rows))}; ` +
        `after the last row (reports): ${JSON.stringify(round(peaks.end))}\n`,
    );
  }
  if (process.env.BENCH_THREADS) {
    // Where the CPU went, thread by thread (Linux): main, libuv pool, V8 helpers.
    const { readdirSync, readFileSync } = await import("node:fs");
    const byName = new Map<string, number>();
    for (const tid of readdirSync("/proc/self/task")) {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const ms = ((Number(f[11]) + Number(f[12])) * 1000) / 100;
      byName.set(`${name}#${tid}`, ms);
    }
    process.stderr.write(`cpu by thread (ms): ${JSON.stringify(Object.fromEntries(byName))}\n`);
  }
  const cpu = process.cpuUsage(cpu0);
  const usage = process.resourceUsage();
  if (allocProfile) await allocProfile(process.env.BENCH_ALLOC!);
  await journal.close();
  const stats = limiter.stats();
  const report: ClientReport = {
    wallMs,
    cpuUserMs: cpu.user / 1000,
    cpuSystemMs: cpu.system / 1000,
    maxRssMb: usage.maxRSS / 1024,
    done: summary.done,
    failed: summary.failed,
    unknown: summary.unknown,
    requests: stats.requests,
    throttled: stats.throttled,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

async function startAllocationSampling(): Promise<(file: string) => Promise<void>> {
  const { Session } = await import("node:inspector");
  const { writeFile: write } = await import("node:fs/promises");
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object) =>
    new Promise<unknown>((resolve, reject) =>
      session.post(method, params ?? {}, (error, result) => (error ? reject(error) : resolve(result))),
    );
  await post("HeapProfiler.enable");
  await post("HeapProfiler.startSampling", {
    samplingInterval: 16_384,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  return async (file) => {
    const { profile } = (await post("HeapProfiler.stopSampling")) as { profile: unknown };
    await write(file, JSON.stringify(profile));
    session.disconnect();
  };
}

async function makeImages(dir: string, count: number): Promise<string[]> {
  const sharp = (await import("sharp")).default;
  await mkdir(join(dir, "images"), { recursive: true });
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const width = 480 + (i % 5) * 16;
    const height = 360 + (i % 3) * 16;
    const raw = Buffer.alloc(width * height * 3);
    for (let p = 0; p < raw.length; p += 3) {
      raw[p] = (p / 3) % 256;
      raw[p + 1] = (i * 41) % 256;
      raw[p + 2] = ((p / 3 / width) * 3) % 256;
    }
    const name = `images/src${i}.jpg`;
    await writeFile(
      join(dir, name),
      await sharp(raw, { raw: { width, height, channels: 3 } })
        .jpeg()
        .toBuffer(),
    );
    names.push(name);
  }
  return names;
}

/**
 * The client as it ships is plain JavaScript, not TypeScript compiled on the fly: measuring it
 * under tsx would count the loader's own thread (≈35 MB, and its CPU while it compiles the
 * lazily imported modules). esbuild (tsx's own compiler) bundles this file for the child;
 * without it, the child runs under tsx and the table says so.
 */
async function clientCommand(
  dir: string,
): Promise<{ argv: string[]; how: string; cleanup: () => Promise<void> }> {
  const self = fileURLToPath(import.meta.url);
  try {
    const esbuild = await import("esbuild");
    // Inside node_modules/.cache, so the bundle's bare imports (better-sqlite3, sharp...) resolve.
    const cache = join(
      fileURLToPath(new URL("..", import.meta.url)),
      "node_modules",
      ".cache",
      "dreamina-bench",
    );
    await mkdir(cache, { recursive: true });
    const outfile = join(cache, `client-${process.pid}.mjs`);
    await esbuild.build({
      entryPoints: [self],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      outfile,
      external: [
        "better-sqlite3",
        "sharp",
        "cli-progress",
        "csv-parse",
        "commander",
        "esbuild",
        "@ffmpeg-installer/*",
      ],
      banner: {
        js: 'import { createRequire as __cr } from "node:module"; const require = __cr(import.meta.url);',
      },
      logLevel: "silent",
    });
    void dir;
    return { argv: [outfile], how: "bundled JS (esbuild)", cleanup: () => rm(outfile, { force: true }) };
  } catch {
    return {
      argv: ["--import", "tsx", self],
      how: "tsx (esbuild unavailable: includes the loader's overhead)",
      cleanup: async () => {},
    };
  }
}

/** BENCH_POLLS=1: polls per job and detection latency (last poll − job end), by tenth of the run. */
function pollDiagnostics(
  jobs: { id: string; createdAt: string; finishedAt: string | undefined }[],
  requests: { time: string; route: string; requestId: string | undefined }[],
): void {
  const polls = new Map<string, number[]>();
  for (const r of requests) {
    if ((r.route !== "status" && r.route !== "result") || !r.requestId) continue;
    const list = polls.get(r.requestId) ?? [];
    list.push(Date.parse(r.time));
    polls.set(r.requestId, list);
  }
  const sorted = [...jobs].sort((a, b) => Date.parse(a.createdAt) - Date.parse(b.createdAt));
  const tenth = Math.ceil(sorted.length / 10);
  const lines: string[] = [];
  for (let i = 0; i < sorted.length; i += tenth) {
    const slice = sorted.slice(i, i + tenth);
    let n = 0;
    let latency = 0;
    for (const j of slice) {
      const p = polls.get(j.id) ?? [];
      n += p.length;
      if (j.finishedAt && p.length > 0) latency += Math.max(...p) - Date.parse(j.finishedAt);
    }
    lines.push(
      `jobs ${i}-${i + slice.length - 1}: ${(n / slice.length).toFixed(1)} polls, detection ${(latency / slice.length).toFixed(0)} ms`,
    );
  }
  process.stderr.write(`${lines.join("\n")}\n`);
}

function row(pass: boolean, label: string, value: string, target: string): string {
  return `| ${label.padEnd(34)} | ${value.padStart(16)} | ${target.padEnd(18)} | ${pass ? "PASS" : "FAIL"} |`;
}

interface BatchMeasure {
  rows: number;
  report: ClientReport;
  meanJobMs: number;
  polls: number;
}

/** One batch of `rows` rows in a child process, against a fresh sandbox, journal and folder. */
async function measureBatch(
  dir: string,
  images: string[],
  rows: number,
  command: { argv: string[] },
  /** Set: run the bare baseline (bench/batch-floor.ts) polling at this interval instead of our batch. */
  floorPollMs?: number,
): Promise<BatchMeasure> {
  const { startSandbox } = await import("../src/sandbox/index.js");
  const runDir = join(dir, `run-${rows}`);
  await mkdir(runDir, { recursive: true });
  // Fixed seeds: the sandbox renders each (image, seed) once and serves the cache after.
  const manifest = join(dir, `bench-${rows}.jsonl`);
  await writeFile(
    manifest,
    `${Array.from({ length: rows }, (_, i) =>
      JSON.stringify({ image: images[i % images.length], prompt: `bench row ${i}`, seed: 1 + (i % 2) }),
    ).join("\n")}\n`,
  );
  const sandbox = await startSandbox({
    quiet: true,
    workers: WORKERS,
    timeScale: TIME_SCALE,
    renderShortSide: 160,
  });
  try {
    const params: ClientParams = {
      baseUrl: sandbox.url,
      manifest,
      out: join(runDir, "out"),
      journal: join(runDir, "journal.db"),
      concurrency: CONCURRENCY,
      timeScale: TIME_SCALE,
      rps: 5000,
    };
    const report =
      floorPollMs === undefined
        ? await runChild<ClientReport>(command.argv, "--client", params)
        : floorAsClient(
            await runChild<FloorReport>(command.argv, "--floor", {
              baseUrl: sandbox.url,
              manifest,
              out: params.out,
              concurrency: CONCURRENCY,
              pollMs: floorPollMs,
            } satisfies FloorParams),
          );
    const jobs = sandbox.jobs();
    if (process.env.BENCH_POLLS) pollDiagnostics(jobs, sandbox.requests());
    const meanJobMs = jobs.reduce((sum, j) => sum + j.runMs, 0) / Math.max(1, jobs.length);
    // Polls are status requests plus result requests (the batch polls the result once a job runs).
    const polls = sandbox.requests().filter((r) => r.route === "status" || r.route === "result").length;
    return { rows, report, meanJobMs, polls };
  } finally {
    await sandbox.close();
    // The videos of a large run add up; only the numbers are kept.
    await rm(runDir, { recursive: true, force: true });
  }
}

function floorAsClient(floor: FloorReport): ClientReport {
  return { ...floor, unknown: 0, throttled: 0 };
}

const WORKERS = 32;
const CONCURRENCY = 32;
const TIME_SCALE = 60; // the sandbox's 60 ± 15 s (121 frames) becomes 1 ± 0.25 s

/** The larger run's row count: `--rows=N` on the command line, or BENCH_SCALE_ROWS. */
function scaleRows(argv: readonly string[]): number | undefined {
  const flag = argv.find((a) => a.startsWith("--rows="))?.slice("--rows=".length);
  const value = flag ?? process.env.BENCH_SCALE_ROWS;
  if (value === undefined || value === "") return undefined;
  const rows = Number(value);
  if (!Number.isSafeInteger(rows) || rows < 1)
    throw new Error(`--rows must be a positive integer (got ${value})`);
  return rows;
}

export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<boolean> {
  const rows = Number(process.env.BENCH_ROWS ?? 1000);
  // `npm run bench -- batch --rows=10000`: bench/index.ts keeps the flags for itself, so they
  // are read from the process's own arguments too.
  const scale = scaleRows([...argv, ...process.argv.slice(2)]);
  const dir = await mkdtemp(join(tmpdir(), "dreamina-bench-batch-"));
  const lines: string[] = [];
  let ok = true;
  try {
    const images = await makeImages(dir, 4);
    const command = await clientCommand(dir);
    const runs: BatchMeasure[] = [];
    let floor: BatchMeasure | undefined;
    try {
      for (const n of scale === undefined || scale === rows ? [rows] : [rows, scale]) {
        runs.push(await measureBatch(dir, images, n, command));
      }
      // The bare baseline on the first run's rows, polling as often as our batch did there.
      if (process.env.BENCH_FLOOR !== "0" && runs[0]) {
        const first = runs[0];
        const pollMs = first.meanJobMs / Math.max(1, first.polls / first.rows - 0.5);
        floor = await measureBatch(dir, images, first.rows, command, pollMs);
      }
    } finally {
      await command.cleanup();
    }
    for (const { rows: n, report, meanJobMs, polls } of runs) {
      const ideal = (n * meanJobMs) / WORKERS;
      const overhead = report.wallMs / ideal - 1;
      const cpuPerRow = (report.cpuUserMs + report.cpuSystemMs) / n;
      lines.push(
        `${n} rows, ${WORKERS} sandbox workers, concurrency ${CONCURRENCY}, mean job ${(meanJobMs / 1000).toFixed(2)} s; ` +
          `${report.done} done, ${report.failed} failed, ${report.unknown} unknown; ${report.requests} API requests ` +
          `(${(polls / n).toFixed(1)} status/result polls per row); client run as ${command.how}`,
      );
      // The kernel's share is mostly fsync (two durable journal commits and one downloaded file per row).
      lines.push(
        `client CPU per row: ${(report.cpuUserMs / n).toFixed(2)} ms user + ` +
          `${(report.cpuSystemMs / n).toFixed(2)} ms system`,
      );
      if (floor && floor.rows === n) {
        // What this machine charges for the same requests and bytes with nothing else around them.
        const f = floor.report;
        lines.push(
          `bare baseline (same requests: ${(floor.polls / n).toFixed(1)} polls per row; no journal, image checks, ` +
            `video checks, lock or fsync): ${((f.cpuUserMs + f.cpuSystemMs) / n).toFixed(2)} ms per row ` +
            `(${(f.cpuUserMs / n).toFixed(2)} user + ${(f.cpuSystemMs / n).toFixed(2)} system), ${f.done}/${n} done; ` +
            `ours ${(cpuPerRow / ((f.cpuUserMs + f.cpuSystemMs) / n)).toFixed(2)}× of it`,
        );
      }
      lines.push("");
      lines.push(`| ${"measure".padEnd(34)} | ${"value".padStart(16)} | ${"target".padEnd(18)} | result |`);
      lines.push(`|${"-".repeat(36)}|${"-".repeat(18)}|${"-".repeat(20)}|--------|`);
      const checks: [boolean, string, string, string][] = [
        [report.done === n, "rows done", `${report.done}/${n}`, "all"],
        [
          overhead <= 0.1,
          "wall time vs ideal",
          `${(report.wallMs / 1000).toFixed(1)} s / ${(ideal / 1000).toFixed(1)} s (+${(overhead * 100).toFixed(1)} %)`,
          "within 10 %",
        ],
        [report.maxRssMb < 200, "client peak RSS", `${report.maxRssMb.toFixed(0)} MB`, "< 200 MB"],
        [cpuPerRow < 10, "client CPU per row", `${cpuPerRow.toFixed(2)} ms`, "< 10 ms"],
      ];
      for (const [pass, label, value, target] of checks) {
        ok &&= pass;
        lines.push(row(pass, label, value, target));
      }
      lines.push("");
    }
    const [base, large] = runs;
    if (base && large) {
      // Memory flat in rows: what the client keeps per row must not add up over a long batch.
      const ratio = large.report.maxRssMb / base.report.maxRssMb;
      const checks: [boolean, string, string, string][] = [
        [
          large.report.maxRssMb < 250,
          `peak RSS at ${large.rows} rows`,
          `${large.report.maxRssMb.toFixed(0)} MB`,
          "< 250 MB",
        ],
        [
          ratio <= 1.3,
          `peak RSS ${large.rows} / ${base.rows} rows`,
          `${large.report.maxRssMb.toFixed(0)} / ${base.report.maxRssMb.toFixed(0)} MB = ${ratio.toFixed(2)}×`,
          "≤ 1.3×",
        ],
      ];
      for (const [pass, label, value, target] of checks) {
        ok &&= pass;
        lines.push(row(pass, label, value, target));
      }
      lines.push("");
    }

    // Validation of 10,000 rows of local images (distinct files, as a real manifest would have).
    const validationRows = Number(process.env.BENCH_VALIDATION_ROWS ?? 10_000);
    const sources = await makeImages(join(dir, "v"), 20);
    await mkdir(join(dir, "v", "many"), { recursive: true });
    const files: string[] = [];
    for (let i = 0; i < validationRows; i++) {
      const name = `many/${i}.jpg`;
      await copyFile(join(dir, "v", sources[i % sources.length]!), join(dir, "v", name));
      files.push(name);
    }
    const vManifest = join(dir, "v", "validate.jsonl");
    await writeFile(
      vManifest,
      `${files.map((f, i) => JSON.stringify({ image: f, prompt: `validation row ${i}`, seed: i })).join("\n")}\n`,
    );
    const { readManifest, validateRows } = await import("../src/batch/index.js");
    const t0 = performance.now();
    const parsed = await readManifest(vManifest);
    const results = await validateRows(parsed.rows, { concurrency: 32 });
    const ms = performance.now() - t0;
    const valid = results.filter((r) => r.valid).length;
    const perSecond = (validationRows / ms) * 1000;
    const pass = valid === validationRows && perSecond >= 1000;
    ok &&= pass;
    lines.push(
      row(pass, `validate ${validationRows} local rows`, `${perSecond.toFixed(0)} rows/s`, ">= 1000 rows/s"),
    );
    lines.push(`  (${(ms / 1000).toFixed(2)} s, ${valid} valid)`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  process.stdout.write(`${lines.join("\n")}\n`);
  return ok;
}

const at = process.argv.indexOf("--client");
const floorAt = process.argv.indexOf("--floor");
const invokedDirectly = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (invokedDirectly || at >= 0 || floorAt >= 0) {
  if (at >= 0) {
    await clientMain(JSON.parse(process.argv[at + 1] ?? "{}") as ClientParams);
  } else if (floorAt >= 0) {
    await floorMain(JSON.parse(process.argv[floorAt + 1] ?? "{}") as FloorParams);
  } else {
    const ok = await main();
    process.exitCode = ok ? 0 : 1;
  }
}
