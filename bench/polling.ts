// Polling benchmark: how many status requests a job costs and how late its completion is
// noticed, for our schedule (with and without a run-time prior) against the fixed cadences
// other clients use (0.5 s, 2 s, 3 s, 5 s).
//
//   npm run bench:polling                 the simulation (10,000 jobs, deterministic)
//   npm run bench:polling -- --real       the simulation, then the schedule for real against
//                                         the local sandbox (40 jobs, time-scaled ×20)
//   options: --jobs N  --seed N  --real-jobs N  --time-scale N  --workers N
//
// The simulated service (stated in the output too):
//   queue wait   0 for half the jobs, else exponential with mean 20 s;
//   queue_position = ceil(remaining queue wait / 10 s) while in_queue;
//   run time     normal, mean 60 s (121 frames) or 120 s (241 frames), std 15 % of the mean,
//                truncated below at 25 % of the mean; half the jobs each frame count;
//   responses    instantaneous (no round-trip time), no errors.
// Detection latency = when the client sees `completed` − when the job actually completed.

import { pathToFileURL } from "node:url";
import { RunComfyClient } from "../src/api/client.js";
import { BATCH_POLL_SCHEDULE } from "../src/batch/submit-and-wait.js";
import {
  createPollSchedule,
  mulberry32,
  type PollObservation,
  type PollSchedule,
  type RunTimePrior,
} from "../src/run/schedule.js";
import { wait } from "../src/run/wait.js";
import { type BoundResult, pollingLowerBound } from "./polling-bound.js";

const MODEL_ID = "bytedance/dreamina-3-0/pro/image-to-video";
const QUEUE_MEAN_MS = 20_000;
const QUEUE_MS_PER_POSITION = 10_000;
const RUN_MEAN_MS: Record<number, number> = { 121: 60_000, 241: 120_000 };
const RUN_SPREAD = 0.15;

export interface SimJob {
  frames: 121 | 241;
  /** ms after submit the run starts. */
  queueMs: number;
  /** ms the run takes. */
  runMs: number;
}

export interface Stats {
  name: string;
  jobs: number;
  requestsPerJob: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

function normal(random: () => number): number {
  // Box–Muller; 1 − u keeps log away from 0.
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** The simulated jobs, deterministic for a seed. */
export function makeJobs(count: number, seed: number): SimJob[] {
  const random = mulberry32(seed);
  const jobs: SimJob[] = [];
  for (let i = 0; i < count; i++) {
    const queueMs = random() < 0.5 ? 0 : -QUEUE_MEAN_MS * Math.log(1 - random());
    const frames = random() < 0.5 ? 121 : 241;
    const mean = RUN_MEAN_MS[frames]!;
    let runMs = 0;
    do runMs = mean * (1 + RUN_SPREAD * normal(random));
    while (runMs < 0.25 * mean);
    jobs.push({ frames, queueMs, runMs });
  }
  return jobs;
}

/** The prior a journal full of such jobs would give (what "with history" means). */
export function matchingPrior(frames: number, scale = 1): RunTimePrior {
  const mean = RUN_MEAN_MS[frames]! / scale;
  return { meanMs: mean, stdMs: mean * RUN_SPREAD, samples: 50 };
}

function observe(job: SimJob, t: number, scale = 1): PollObservation {
  const queueMs = job.queueMs / scale;
  if (t < queueMs) {
    return {
      atMs: t,
      status: "in_queue",
      queuePosition: Math.ceil((queueMs - t) / (QUEUE_MS_PER_POSITION / scale)),
    };
  }
  if (t < queueMs + job.runMs / scale) return { atMs: t, status: "in_progress" };
  return { atMs: t, status: "completed" };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[rank]!;
}

function summarize(name: string, requests: number[], latencies: number[]): Stats {
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    name,
    jobs: requests.length,
    requestsPerJob: requests.reduce((a, b) => a + b, 0) / requests.length,
    p50: percentile(sorted, 0.5),
    p95: percentile(sorted, 0.95),
    p99: percentile(sorted, 0.99),
    max: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

/** Runs a schedule over the jobs; returns requests per job and detection latencies (ms). */
export function simulateSchedule(
  name: string,
  jobs: SimJob[],
  schedule: PollSchedule,
  options: { withPrior: boolean; seed: number; scale?: number; prior?: (frames: number) => RunTimePrior },
): Stats {
  const scale = options.scale ?? 1;
  const random = mulberry32(options.seed);
  const requests: number[] = [];
  const latencies: number[] = [];
  for (const job of jobs) {
    const done = (job.queueMs + job.runMs) / scale;
    const prior = options.withPrior
      ? (options.prior?.(job.frames) ?? matchingPrior(job.frames, scale))
      : undefined;
    const history: PollObservation[] = [];
    let t = 0;
    let n = 0;
    for (;;) {
      const delay = schedule({ elapsedMs: t, history, prior, random: random(), timeScale: scale });
      t += Math.max(1, delay);
      n++;
      const seen = observe(job, t, scale);
      if (seen.status === "completed") break;
      history.push(seen);
      if (n > 100_000) throw new Error(`${name}: runaway polling`);
    }
    requests.push(n);
    latencies.push(t - done);
  }
  return summarize(name, requests, latencies);
}

export function simulateFixed(name: string, jobs: SimJob[], everyMs: number, scale = 1): Stats {
  const requests: number[] = [];
  const latencies: number[] = [];
  for (const job of jobs) {
    const done = (job.queueMs + job.runMs) / scale;
    // Polls at everyMs, 2·everyMs, ...; the first one at or after `done` sees completion.
    const n = Math.max(1, Math.ceil(done / everyMs));
    requests.push(n);
    latencies.push(n * everyMs - done);
  }
  return summarize(name, requests, latencies);
}

const s = (ms: number) => (ms / 1000).toFixed(2).padStart(6);

export function formatTable(rows: Stats[], unit = "s"): string {
  const head = `${"strategy".padEnd(30)} ${"requests/job".padStart(12)} ${`p50 (${unit})`.padStart(8)} ${`p95 (${unit})`.padStart(8)} ${`p99 (${unit})`.padStart(8)} ${`max (${unit})`.padStart(8)}`;
  const lines = rows.map(
    (r) =>
      `${r.name.padEnd(30)} ${r.requestsPerJob.toFixed(1).padStart(12)} ${s(r.p50).padStart(8)} ${s(r.p95).padStart(8)} ${s(r.p99).padStart(8)} ${s(r.max).padStart(8)}`,
  );
  return [head, "-".repeat(head.length), ...lines].join("\n");
}

export interface Check {
  name: string;
  pass: boolean;
  detail: string;
}

const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/**
 * The targets (issue 12): with history, at most 40 % of fixed 2 s's requests, latency no worse
 * than fixed 2 s at p50, p95 and p99, and a maximum no worse than fixed 5 s; without history,
 * no more requests than fixed 2 s and p95 within 5 s. Every bound is the baseline measured on
 * the same jobs in the same run.
 */
export function checkTargets(withPrior: Stats, withoutPrior: Stats, fixed2: Stats, fixed5: Stats): Check[] {
  const ratio = withPrior.requestsPerJob / fixed2.requestsPerJob;
  const noWorse = (q: "p50" | "p95" | "p99"): Check => ({
    name: `with history: ${q} latency ≤ fixed 2 s ${q}`,
    pass: withPrior[q] <= fixed2[q],
    detail: `${sec(withPrior[q])} vs ${sec(fixed2[q])}`,
  });
  return [
    {
      name: "with history: requests ≤ 40 % of fixed 2 s",
      pass: ratio <= 0.4,
      detail: `${withPrior.requestsPerJob.toFixed(1)} vs ${fixed2.requestsPerJob.toFixed(1)} (${(ratio * 100).toFixed(1)} %)`,
    },
    noWorse("p50"),
    noWorse("p95"),
    noWorse("p99"),
    {
      name: "with history: max latency ≤ fixed 5 s max",
      pass: withPrior.max <= fixed5.max,
      detail: `${sec(withPrior.max)} vs ${sec(fixed5.max)}`,
    },
    {
      name: "without history: requests ≤ fixed 2 s",
      pass: withoutPrior.requestsPerJob <= fixed2.requestsPerJob,
      detail: `${withoutPrior.requestsPerJob.toFixed(1)} vs ${fixed2.requestsPerJob.toFixed(1)}`,
    },
    {
      name: "without history: p95 latency ≤ 5 s",
      pass: withoutPrior.p95 <= 5000,
      detail: sec(withoutPrior.p95),
    },
  ];
}

export const MODEL_DESCRIPTION = [
  "Simulated service:",
  "  queue wait: 0 for half the jobs, else exponential, mean 20 s;",
  "    queue_position = ceil(remaining queue wait / 10 s) while in_queue;",
  "  run time: normal, mean 60 s (121 frames) / 120 s (241 frames), std 15 % of the mean,",
  "    truncated below at 25 % of the mean; half the jobs each frame count;",
  "  instantaneous responses, no errors; the first status request of every strategy counts.",
  "  'with history' = prior {mean, std = 15 % of mean, 50 samples} of the job's frame count.",
  "  Latency = when the client sees `completed` − actual completion.",
].join("\n");

export interface SimulationReport {
  rows: Stats[];
  checks: Check[];
  /** The batch's schedule on the same jobs (a throughput trade: fewer requests, later detection). */
  batch: Stats;
}

/**
 * What any schedule can reach on this run-time distribution under the same-run targets (see
 * bench/polling-bound.ts): even knowing each run's start exactly, no schedule needs fewer
 * requests than `lowerBound`, and the best such schedule found needs `oracle`.
 */
export function boundForTargets(
  fixed2: Stats,
  fixed5: Stats,
  jobs: number,
  iterations?: number,
): BoundResult {
  const kinds = Object.values(RUN_MEAN_MS).map((meanMs) => ({
    meanMs,
    spread: RUN_SPREAD,
    floor: 0.25,
    weight: 1,
  }));
  return pollingLowerBound(
    kinds,
    [
      { thresholdMs: fixed2.p50, allowed: 0.5 },
      { thresholdMs: fixed2.p95, allowed: 0.05 },
      { thresholdMs: fixed2.p99, allowed: 0.01 },
      { thresholdMs: fixed5.max, allowed: 1 / jobs },
    ],
    iterations,
  );
}

export function runSimulation(
  jobCount = 10_000,
  seed = 1,
  schedule: PollSchedule = createPollSchedule(),
): SimulationReport {
  const jobs = makeJobs(jobCount, seed);
  const withPrior = simulateSchedule("ours, with history", jobs, schedule, {
    withPrior: true,
    seed: seed + 1,
  });
  const withoutPrior = simulateSchedule("ours, without history", jobs, schedule, {
    withPrior: false,
    seed: seed + 2,
  });
  const fixed = [500, 2000, 3000, 5000].map((ms) => simulateFixed(`fixed ${ms / 1000} s`, jobs, ms));
  const batch = simulateSchedule("batch schedule, with history", jobs, BATCH_POLL_SCHEDULE, {
    withPrior: true,
    seed: seed + 1,
  });
  return {
    rows: [withPrior, withoutPrior, batch, ...fixed],
    checks: checkTargets(withPrior, withoutPrior, fixed[1]!, fixed[3]!),
    batch,
  };
}

// --- the real run against the sandbox ------------------------------------------------------

interface RealOptions {
  jobs: number;
  timeScale: number;
  workers: number;
  seed: number;
}

interface SandboxHandle {
  url: string;
  close(): Promise<void>;
  jobs(): {
    id: string;
    createdAt: string;
    startedAt?: string | undefined;
    finishedAt?: string | undefined;
  }[];
}

/**
 * Submits `jobs` jobs to a time-scaled sandbox with Poisson arrivals (load ≈ 0.8 of its
 * workers), waits for each with our schedule and the prior of the sandbox's own run-time model,
 * and measures requests per job and detection latency (detected − the sandbox's finishedAt).
 * Then it replays the very same jobs (their measured queue waits and run times) through the
 * simulation, so the two columns differ only by what the simulation leaves out: round trips,
 * timer slop, and the sandbox's own queue positions instead of the bench's 10 s-per-place model.
 */
async function runReal(options: RealOptions): Promise<boolean> {
  let sandboxModule: typeof import("../src/sandbox/index.js");
  try {
    sandboxModule = await import("../src/sandbox/index.js");
  } catch (err) {
    console.log(`\n--real skipped: the sandbox could not be loaded (${(err as Error).message}).`);
    return false;
  }
  const runTime = (
    sandboxModule as { DEFAULT_RUN_TIME?: Record<number, { meanMs: number; jitterMs: number }> }
  ).DEFAULT_RUN_TIME ?? {
    121: { meanMs: 60_000, jitterMs: 15_000 },
    241: { meanMs: 120_000, jitterMs: 25_000 },
  };
  const sandboxPrior = (frames: number): RunTimePrior => {
    const m = runTime[frames]!;
    // Uniform in mean ± jitter: std = jitter / √3.
    return {
      meanMs: m.meanMs / options.timeScale,
      stdMs: m.jitterMs / Math.sqrt(3) / options.timeScale,
      samples: 50,
    };
  };
  let sandbox: SandboxHandle;
  try {
    sandbox = (await sandboxModule.startSandbox({
      timeScale: options.timeScale,
      workers: options.workers,
      seed: options.seed,
      quiet: true,
      renderShortSide: 160,
    } as Parameters<typeof sandboxModule.startSandbox>[0])) as unknown as SandboxHandle;
  } catch (err) {
    console.log(`\n--real skipped: the sandbox did not start (${(err as Error).message}).`);
    return false;
  }
  try {
    const { readFile } = await import("node:fs/promises");
    const image = await readFile(new URL("../examples/golden-hour-street.jpg", import.meta.url));
    const imageUri = `data:image/jpeg;base64,${image.toString("base64")}`;
    const client = new RunComfyClient({ baseUrl: sandbox.url, token: "bench-token" });
    const schedule = createPollSchedule();
    // One fixed seed, so the sandbox renders each frame count once (warm-up below) and reuses it:
    // run times then follow its model instead of ffmpeg's speed on this machine.
    const input = (i: number, frames: 121 | 241) => ({
      prompt: `polling bench job ${i}`,
      image_urls: [imageUri],
      frames,
      seed: 42,
    });
    await Promise.all(
      ([121, 241] as const).map(async (frames) => {
        const warm = await client.submit(MODEL_ID, input(-1, frames));
        await wait(client, warm.requestId, { timeScale: options.timeScale });
      }),
    );
    const random = mulberry32(options.seed);
    const arrivals = mulberry32(options.seed + 7);
    // Load ≈ 0.8: mean run 90 s (service time) over `workers` slots.
    const meanGapMs = 90_000 / options.workers / 0.8 / options.timeScale;
    const started = Date.now();
    const measured: {
      id: string;
      frames: 121 | 241;
      polls: number;
      detectedAt: number;
      submittedAt: number;
    }[] = [];
    const pending: Promise<void>[] = [];
    for (let i = 0; i < options.jobs; i++) {
      const frames: 121 | 241 = i % 2 === 0 ? 121 : 241;
      pending.push(
        (async () => {
          const submitted = await client.submit(MODEL_ID, input(i, frames));
          const submittedAt = Date.now();
          let polls = 0;
          let detectedAt = Number.NaN;
          await wait(client, submitted.requestId, {
            pollSchedule: schedule,
            prior: sandboxPrior(frames),
            timeScale: options.timeScale,
            submittedAt,
            random,
            onUpdate: (u) => {
              polls = u.pollCount;
              if (u.result === undefined && (u.status === "completed" || u.status === "succeeded"))
                detectedAt = u.at;
            },
          });
          measured.push({ id: submitted.requestId, frames, polls, detectedAt, submittedAt });
        })(),
      );
      await new Promise((r) => setTimeout(r, -meanGapMs * Math.log(1 - arrivals())));
    }
    await Promise.all(pending);
    const took = (Date.now() - started) / 1000;

    const byId = new Map(sandbox.jobs().map((j) => [j.id, j]));
    const requests: number[] = [];
    const latencies: number[] = [];
    const trace: SimJob[] = [];
    for (const m of measured) {
      const job = byId.get(m.id);
      const created = job ? Date.parse(job.createdAt) : Number.NaN;
      const start = job?.startedAt ? Date.parse(job.startedAt) : Number.NaN;
      const finish = job?.finishedAt ? Date.parse(job.finishedAt) : Number.NaN;
      requests.push(m.polls);
      if (Number.isFinite(finish)) latencies.push(m.detectedAt - finish);
      if (Number.isFinite(created) && Number.isFinite(start) && Number.isFinite(finish)) {
        trace.push({
          frames: m.frames,
          queueMs: Math.max(0, start - created) * options.timeScale,
          runMs: (finish - start) * options.timeScale,
        });
      }
    }
    const real = summarize("sandbox (measured)", requests, latencies);
    // Replay the same jobs, many times over (different jitter), through the simulation.
    const replay = Array.from({ length: 50 }, () => trace).flat();
    const sim = simulateSchedule("simulation of the same jobs", replay, schedule, {
      withPrior: true,
      seed: options.seed + 3,
      scale: options.timeScale,
      prior: (f) => sandboxPrior(f),
    });
    const fixed2 = simulateFixed("fixed 2 s, same jobs", replay, 2000 / options.timeScale, options.timeScale);
    const queued = trace.filter((j) => j.queueMs > 0).length;
    const meanRun = trace.reduce((a, j) => a + j.runMs, 0) / Math.max(1, trace.length) / 1000;
    console.log(
      `\nReal run: ${options.jobs} jobs on the sandbox (timeScale ×${options.timeScale}, ${options.workers} workers, ` +
        `Poisson arrivals at load ≈ 0.8), ${took.toFixed(1)} s wall. ${queued} jobs queued; mean run ` +
        `${meanRun.toFixed(1)} s in service time (sandbox model: uniform 60 ± 15 s / 120 ± 25 s; renders cached after a warm-up).`,
    );
    console.log(
      "Latency = when `completed` was seen − the sandbox's finishedAt. Times below in service seconds (wall × scale).",
    );
    const scaleRow = (r: Stats): Stats => ({
      ...r,
      p50: r.p50 * options.timeScale,
      p95: r.p95 * options.timeScale,
      p99: r.p99 * options.timeScale,
      max: r.max * options.timeScale,
    });
    console.log(formatTable([real, sim, fixed2].map(scaleRow)));
    return true;
  } finally {
    await sandbox.close();
  }
}

// --- entry point ------------------------------------------------------------------------

function printBound(report: SimulationReport, jobs: number): void {
  const fixed2 = report.rows.find((r) => r.name === "fixed 2 s")!;
  const fixed5 = report.rows.find((r) => r.name === "fixed 5 s")!;
  const ours = report.rows[0]!;
  const started = Date.now();
  const bound = boundForTargets(fixed2, fixed5, jobs);
  const pct = (n: number) => `${((n / fixed2.requestsPerJob) * 100).toFixed(1)} %`;
  console.log(
    [
      "",
      `What is achievable (bench/polling-bound.ts, ${bound.iterations} dual steps, ${((Date.now() - started) / 1000).toFixed(1)} s): a client`,
      "that knows exactly when each run starts, under the same targets (p50/p95/p99 ≤ fixed 2 s's, on",
      "average under one job per run beyond fixed 5 s's max), with the runs counted from their start only:",
      `  no schedule needs fewer than ${bound.lowerBound.toFixed(1)} requests/job (${pct(bound.lowerBound)} of fixed 2 s; Lagrangian dual bound);`,
      `  the best one found needs ${Number.isNaN(bound.oracle) ? "(none met every target)" : `${bound.oracle.toFixed(1)} (${pct(bound.oracle)})`}: 5 s gaps from about mean − 3.7 std, then a flat`,
      "  step just under fixed 2 s's p99 from about mean − 1.9 std (the shape our schedule takes).",
      `Ours: ${ours.requestsPerJob.toFixed(1)} (${pct(ours.requestsPerJob)}). It must also find the start (first check, queue polls,`,
      "a start known to a bracket only) and it starts the 5 s gaps earlier (mean − 4.25 std) so that the",
      "maximum holds on other seeds too: the 40 % target is at or below what even the oracle reaches.",
    ].join("\n"),
  );
}

function flag(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(name);
  if (i < 0) return fallback;
  const value = Number(argv[i + 1]);
  if (!Number.isFinite(value)) throw new Error(`${name} needs a number`);
  return value;
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  const jobs = flag(argv, "--jobs", 10_000);
  const seed = flag(argv, "--seed", 1);
  console.log(`Polling benchmark: ${jobs} simulated jobs, seed ${seed}, model ${MODEL_ID}.`);
  console.log(MODEL_DESCRIPTION);
  console.log("");
  const report = runSimulation(jobs, seed);
  console.log(formatTable(report.rows));
  console.log("");
  for (const c of report.checks) console.log(`${c.pass ? "PASS" : "FAIL"}  ${c.name}: ${c.detail}`);
  const ok = report.checks.every((c) => c.pass);
  if (!argv.includes("--no-bound")) printBound(report, jobs);
  if (argv.includes("--real")) {
    const ran = await runReal({
      jobs: flag(argv, "--real-jobs", 40),
      timeScale: flag(argv, "--time-scale", 20),
      workers: flag(argv, "--workers", 8),
      seed,
    });
    if (!ran) console.log("(the --real part did not run; the simulation's verdict stands alone)");
  }
  return ok ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
