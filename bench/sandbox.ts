// Sandbox bench: render time per video (121 and 241 frames, cold cache) and sustained
// status-poll throughput on loopback with N concurrent pollers for a bounded time.
//   node --import tsx bench/sandbox.ts [--pollers 16] [--seconds 5] [--renders 3]

import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { startSandbox } from "../src/sandbox/index.js";
import { Renderer } from "../src/sandbox/render.js";

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function benchRender(image: Buffer, frames: number, runs: number) {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    // A fresh cache each run: this measures rendering, not the cache.
    const dir = await mkdtemp(join(tmpdir(), "sbx-bench-"));
    try {
      const renderer = new Renderer({ cacheDir: dir });
      const t0 = performance.now();
      await renderer.render({ image, seed: 1000 + i, frames, shortSide: 480 });
      times.push(performance.now() - t0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  times.sort((a, b) => a - b);
  return { frames, runs, minMs: Math.round(times[0]!), medianMs: Math.round(percentile(times, 50)) };
}

async function benchPolling(image: Buffer, pollers: number, seconds: number) {
  // A job that stays in_progress for the whole run: status answers are the steady-state ones.
  const sandbox = await startSandbox({ quiet: true, runTime: { 121: { meanMs: 3_600_000, jitterMs: 0 } } });
  try {
    const headers = { authorization: "Bearer bench", "content-type": "application/json" };
    const submitted = await fetch(`${sandbox.url}/v1/models/bytedance/dreamina-3-0/pro/image-to-video`, {
      method: "POST",
      headers,
      body: JSON.stringify({
        prompt: "bench",
        image_urls: [`data:image/jpeg;base64,${image.toString("base64")}`],
      }),
    });
    const { status_url: statusUrl } = (await submitted.json()) as { status_url: string };
    const latencies: number[] = [];
    let errors = 0;
    const until = performance.now() + seconds * 1000;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: pollers }, async () => {
        while (performance.now() < until) {
          const t0 = performance.now();
          const r = await fetch(statusUrl, { headers });
          await r.arrayBuffer();
          if (r.status !== 200) errors++;
          latencies.push(performance.now() - t0);
        }
      }),
    );
    const elapsed = (performance.now() - start) / 1000;
    latencies.sort((a, b) => a - b);
    return {
      pollers,
      seconds: Math.round(elapsed * 10) / 10,
      requests: latencies.length,
      requestsPerSecond: Math.round(latencies.length / elapsed),
      p50Ms: Math.round(percentile(latencies, 50) * 100) / 100,
      p99Ms: Math.round(percentile(latencies, 99) * 100) / 100,
      errors,
      logged: sandbox.requests().length,
    };
  } finally {
    await sandbox.close();
  }
}

/** The target: a 121-frame video renders in at most 3 s on this 2-core machine. */
const RENDER_121_TARGET_MS = 3_000;

export async function main(argv = process.argv.slice(2)): Promise<boolean> {
  const { values } = parseArgs({
    args: argv,
    options: {
      pollers: { type: "string", default: "16" },
      seconds: { type: "string", default: "5" },
      renders: { type: "string", default: "3" },
    },
  });
  const image = await readFile(new URL("../examples/golden-hour-street.jpg", import.meta.url));
  const runs = Number(values.renders);
  const render121 = await benchRender(image, 121, runs);
  console.log(`render 121 frames: median ${render121.medianMs} ms, min ${render121.minMs} ms (${runs} runs)`);
  const render241 = await benchRender(image, 241, runs);
  console.log(`render 241 frames: median ${render241.medianMs} ms, min ${render241.minMs} ms (${runs} runs)`);
  const polling = await benchPolling(image, Number(values.pollers), Number(values.seconds));
  console.log(
    `status polling: ${polling.requestsPerSecond} req/s with ${polling.pollers} pollers over ${polling.seconds} s ` +
      `(p50 ${polling.p50Ms} ms, p99 ${polling.p99Ms} ms, ${polling.errors} errors)`,
  );
  console.log(JSON.stringify({ render: [render121, render241], polling }));
  const pass = render121.medianMs <= RENDER_121_TARGET_MS;
  console.log(
    `${pass ? "PASS" : "FAIL"}  render of 121 frames <= ${RENDER_121_TARGET_MS} ms: median ${render121.medianMs} ms`,
  );
  return pass;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().then(
    (pass) => {
      process.exitCode = pass ? 0 : 1;
    },
    (error) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}
