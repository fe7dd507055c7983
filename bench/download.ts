// Download benchmark: a 200 MB MP4 (a real small clip padded with a large `free` box, so its
// structure still checks) served by a local node:http server with Range support.
//   - throughput of download() against `curl -o` on the same server, same run;
//   - RSS growth while download() runs (in a child process, so nothing else is measured);
//   - a resume after a cut at ~50 %: the bytes fetched on resume must equal the missing bytes.
// Run: node --import tsx bench/download.ts   (BENCH_DOWNLOAD_MB to change the size)

import { execFile, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, open, readFile, rm, stat } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { download } from "../src/node/download.js";

const run = promisify(execFile);
const SELF = fileURLToPath(import.meta.url);
const RSS_LIMIT_MB = 32;
const THROUGHPUT_RATIO = 0.9;
const RUNS = 3;

interface ChildReport {
  ms: number;
  bytes: number;
  sha256: string;
  baselineRss: number;
  peakRss: number;
}

/** The part that runs in the child: one download, RSS sampled around it. */
async function childMain(url: string, warmUrl: string, dest: string): Promise<void> {
  // Warm up (loads fetch, crypto, fs machinery) so the baseline is the steady state.
  await download(warmUrl, { dest: `${dest}.warm.mp4`, force: true });
  global.gc?.();
  const baselineRss = process.memoryUsage().rss;
  let peakRss = baselineRss;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 10);
  const t0 = performance.now();
  const result = await download(url, { dest, force: true });
  const ms = performance.now() - t0;
  clearInterval(sampler);
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  const report: ChildReport = { ms, bytes: result.bytes, sha256: result.sha256, baselineRss, peakRss };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

async function makeSmallMp4(path: string): Promise<void> {
  const ffmpeg = ((await import("@ffmpeg-installer/ffmpeg")) as { default: { path: string } }).default.path;
  await run(ffmpeg, [
    "-hide_banner",
    "-loglevel",
    "error",
    "-y",
    "-f",
    "lavfi",
    "-i",
    "testsrc=size=320x240:rate=24",
    "-frames:v",
    "48",
    "-c:v",
    "libx264",
    "-pix_fmt",
    "yuv420p",
    "-movflags",
    "+faststart",
    path,
  ]);
}

/** The clip followed by one `free` box (64-bit size) bringing the file to `total` bytes. */
async function makeBigMp4(small: string, path: string, total: number): Promise<void> {
  const head = await readFile(small);
  const padding = total - head.length;
  const out = createWriteStream(path);
  let failed: Error | undefined;
  out.on("error", (e) => {
    failed = e;
  });
  const write = (b: Buffer) =>
    new Promise<void>((res, rej) => {
      if (failed) rej(failed);
      else if (out.write(b)) res();
      else out.once("drain", res);
    });
  await write(head);
  const header = Buffer.alloc(16);
  header.writeUInt32BE(1, 0);
  header.write("free", 4, "latin1");
  header.writeBigUInt64BE(BigInt(padding), 8);
  await write(header);
  const zeros = Buffer.alloc(8 << 20);
  let left = padding - 16;
  while (left > 0) {
    const n = Math.min(left, zeros.length);
    await write(zeros.subarray(0, n));
    left -= n;
  }
  await new Promise<void>((res, rej) => out.end((e?: Error | null) => (e ? rej(e) : res())));
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

interface ServerLog {
  range: string | undefined;
  status: number;
  bytes: number;
}

async function startServer(files: Record<string, string>) {
  const log: ServerLog[] = [];
  const state = { cutAt: undefined as number | undefined };
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const path = files[(req.url ?? "").split("?")[0] ?? ""];
    if (!path) {
      res.writeHead(404).end();
      return;
    }
    const size = (await stat(path)).size;
    const etag = `"${size}"`;
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const partial = m !== null && (req.headers["if-range"] === undefined || req.headers["if-range"] === etag);
    if (partial) start = Number(m[1]);
    const entry: ServerLog = { range: req.headers.range, status: partial ? 206 : 200, bytes: 0 };
    log.push(entry);
    const headers: Record<string, string | number> = {
      "content-type": "video/mp4",
      "accept-ranges": "bytes",
      etag,
      "content-length": size - start,
    };
    if (partial) headers["content-range"] = `bytes ${start}-${size - 1}/${size}`;
    res.writeHead(entry.status, headers);
    const cut = state.cutAt;
    state.cutAt = undefined;
    const end = cut !== undefined ? Math.min(size, cut) - 1 : size - 1;
    const stream = createReadStream(path, { start, end, highWaterMark: 256 << 10 });
    stream.on("data", (c) => {
      entry.bytes += (c as Buffer).length;
    });
    if (cut === undefined) {
      stream.pipe(res);
    } else {
      stream.pipe(res, { end: false });
      stream.on("end", () => setTimeout(() => res.socket?.destroy(), 50));
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { server, base, log, state };
}

function runChild(url: string, warmUrl: string, dest: string): Promise<ChildReport> {
  return new Promise((resolve, reject) => {
    const proc = spawn(
      process.execPath,
      ["--expose-gc", "--import", "tsx", SELF, "--child", url, warmUrl, dest],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    proc.stdout.on("data", (d) => {
      out += String(d);
    });
    proc.on("exit", (code) => {
      if (code !== 0) reject(new Error(`child exited with ${code}`));
      else resolve(JSON.parse(out.trim().split("\n").at(-1) ?? "{}") as ChildReport);
    });
  });
}

/** Milliseconds for `curl -o`, and for the same followed by an fsync of the file (what we do). */
async function runCurl(url: string, dest: string): Promise<{ ms: number; msSynced: number }> {
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const proc = spawn("curl", ["-s", "-S", "-f", "-o", dest, url], { stdio: "inherit" });
    proc.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`curl ${code}`))));
  });
  const ms = performance.now() - t0;
  const handle = await open(dest, "r+");
  await handle.sync();
  await handle.close();
  return { ms, msSynced: performance.now() - t0 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mbps = (bytes: number, ms: number) => bytes / (1 << 20) / (ms / 1000);

export async function main(): Promise<boolean> {
  const sizeMb = Number(process.env.BENCH_DOWNLOAD_MB ?? 200);
  const dir = await mkdtemp(join(tmpdir(), "dreamina-bench-dl-"));
  const small = join(dir, "small.mp4");
  const big = join(dir, "big.mp4");
  try {
    await makeSmallMp4(small);
    await makeBigMp4(small, big, sizeMb << 20);
    const size = (await stat(big)).size;
    const sourceSha = await sha256File(big);
    const { server, base, log, state } = await startServer({ "/big.mp4": big, "/small.mp4": small });
    try {
      const url = `${base}/big.mp4`;
      const warmUrl = `${base}/small.mp4`;
      const rows: [string, string, string, string][] = [];
      let allPass = true;

      // Throughput and memory: ours (in a child) and curl, interleaved, median of RUNS.
      const ours: ChildReport[] = [];
      const curls: { ms: number; msSynced: number }[] = [];
      const haveCurl = spawnSync("curl", ["--version"]).status === 0;
      for (let i = 0; i < RUNS; i++) {
        const report = await runChild(url, warmUrl, join(dir, "ours.mp4"));
        if (report.sha256 !== sourceSha || report.bytes !== size) throw new Error("our download is corrupt");
        ours.push(report);
        await rm(join(dir, "ours.mp4"), { force: true });
        if (haveCurl) {
          curls.push(await runCurl(url, join(dir, "curl.mp4")));
          await rm(join(dir, "curl.mp4"), { force: true });
        }
      }
      const ourMs = median(ours.map((r) => r.ms));
      const ourRate = mbps(size, ourMs);
      rows.push(["our throughput", `${ourRate.toFixed(0)} MB/s (median of ${RUNS})`, "", ""]);
      if (haveCurl) {
        const curlRate = mbps(size, median(curls.map((c) => c.ms)));
        const curlSyncedRate = mbps(size, median(curls.map((c) => c.msSynced)));
        const ratio = ourRate / curlRate;
        const pass = ratio >= THROUGHPUT_RATIO;
        allPass &&= pass;
        rows.push(["curl -o throughput", `${curlRate.toFixed(0)} MB/s (median of ${RUNS})`, "", ""]);
        rows.push([
          "ours / curl",
          `${(ratio * 100).toFixed(0)} %`,
          `>= ${THROUGHPUT_RATIO * 100} %`,
          pass ? "PASS" : "FAIL",
        ]);
        // Context: we fsync before the rename (a file with the final name is always complete); curl does not.
        rows.push(["curl -o + fsync (context)", `${curlSyncedRate.toFixed(0)} MB/s`, "", ""]);
        rows.push([
          "ours / (curl + fsync)",
          `${((ourRate / curlSyncedRate) * 100).toFixed(0)} %`,
          "info",
          "",
        ]);
      } else {
        rows.push(["ours / curl", "curl not found: skipped", `>= ${THROUGHPUT_RATIO * 100} %`, "SKIP"]);
      }
      const growthMb = Math.max(...ours.map((r) => (r.peakRss - r.baselineRss) / (1 << 20)));
      const rssPass = growthMb < RSS_LIMIT_MB;
      allPass &&= rssPass;
      rows.push([
        "RSS growth (worst run)",
        `${growthMb.toFixed(1)} MB`,
        `< ${RSS_LIMIT_MB} MB`,
        rssPass ? "PASS" : "FAIL",
      ]);

      // Resume after a cut at ~50 %.
      log.length = 0;
      state.cutAt = Math.floor(size / 2);
      const resumed = await download(url, { dest: join(dir, "resumed.mp4"), retryDelayMs: 10 });
      const second = log[1];
      const rangeStart = Number(/bytes=(\d+)-/.exec(second?.range ?? "")?.[1] ?? Number.NaN);
      const fetchedOnResume = second?.bytes ?? 0;
      const missing = size - rangeStart;
      const resumePass =
        resumed.resumed &&
        resumed.sha256 === sourceSha &&
        log.length === 2 &&
        second?.status === 206 &&
        fetchedOnResume === missing;
      allPass &&= resumePass;
      rows.push([
        "resume after cut at 50 %",
        `cut at ${rangeStart} B, fetched ${fetchedOnResume} B on resume, missing ${missing} B, sha256 ${resumed.sha256 === sourceSha ? "ok" : "WRONG"}`,
        "fetched = missing",
        resumePass ? "PASS" : "FAIL",
      ]);

      console.log(`download bench: ${sizeMb} MB MP4 (${size} bytes) from a local node:http server`);
      const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => (r[i] ?? "").length), 6));
      const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ");
      console.log(line(["metric", "value", "target", "result"]));
      console.log(widths.map((w) => "-".repeat(w)).join("  "));
      for (const r of rows) console.log(line(r));
      console.log(allPass ? "ALL PASS" : "SOME FAIL");
      return allPass;
    } finally {
      server.closeAllConnections();
      server.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const i = process.argv.indexOf("--child");
  if (i >= 0) {
    const [url, warmUrl, dest] = process.argv.slice(i + 1);
    await childMain(url!, warmUrl!, dest!);
  } else {
    const ok = await main();
    process.exitCode = ok ? 0 : 1;
  }
}
