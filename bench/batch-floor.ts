// The batch bench's baseline: the least any client must do for a row, measured in the same run
// as the real batch so that the machine's own cost of a request and of a written file is visible
// beside ours. Per row it sends the same requests (one submit, then the result polled at a fixed
// interval chosen so that it polls about as often as the batch did) and writes the same video
// bytes to a file. It keeps no journal, checks no image, verifies no video, takes no lock and
// syncs nothing to disk: it would lose money and files on the first crash, which is the point of
// the difference.
//
// It runs in a child process of its own (`--floor <json>`), like the batch it is compared with.

import { createWriteStream } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, request } from "undici";
import { MODEL_ID } from "../src/model/input.js";

export interface FloorParams {
  baseUrl: string;
  manifest: string;
  out: string;
  concurrency: number;
  pollMs: number;
}

export interface FloorReport {
  wallMs: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  maxRssMb: number;
  done: number;
  failed: number;
  requests: number;
}

interface FloorRow {
  image: string;
  prompt: string;
  seed: number;
}

/** The child: runs every row of the manifest as bare requests and prints one JSON line. */
export async function floorMain(params: FloorParams): Promise<void> {
  await mkdir(params.out, { recursive: true });
  const rows = (await readFile(params.manifest, "utf8"))
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as FloorRow);
  // Each distinct image is read and encoded once, as any client would cache it.
  const uris = new Map<string, string>();
  for (const row of rows) {
    if (uris.has(row.image)) continue;
    const bytes = await readFile(join(dirname(params.manifest), row.image));
    uris.set(row.image, `data:image/jpeg;base64,${bytes.toString("base64")}`);
  }
  const dispatcher = new Agent({ connections: params.concurrency * 2 });
  const headers = { authorization: "Bearer bench", "content-type": "application/json" };
  let requests = 0;
  let done = 0;
  let failed = 0;

  const getJson = async (url: string, init?: { method: "POST"; body: string }) => {
    requests++;
    const response = await request(url, { ...init, headers, dispatcher });
    const body = (await response.body.json()) as Record<string, unknown>;
    if (response.statusCode >= 300) throw new Error(`HTTP ${response.statusCode}: ${JSON.stringify(body)}`);
    return body;
  };

  const runRow = async (row: FloorRow, index: number) => {
    const submitted = await getJson(`${params.baseUrl}/v1/models/${MODEL_ID}`, {
      method: "POST",
      body: JSON.stringify({ image_urls: [uris.get(row.image)], prompt: row.prompt, seed: row.seed }),
    });
    const id = String(submitted.request_id);
    for (;;) {
      await sleep(params.pollMs);
      const result = await getJson(`${params.baseUrl}/v1/requests/${id}/result`);
      if (result.status === "failed" || result.status === "cancelled")
        throw new Error(`job ${id} ${result.status}`);
      const output = result.output as { video?: string; videos?: string[] } | undefined;
      const video = output?.video ?? output?.videos?.[0];
      if (!video) continue;
      requests++;
      const response = await request(video, { dispatcher });
      await pipeline(response.body, createWriteStream(join(params.out, `${index}.mp4`)));
      return;
    }
  };

  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: params.concurrency }, async () => {
      for (let i = next++; i < rows.length; i = next++) {
        try {
          await runRow(rows[i]!, i);
          done++;
        } catch (error) {
          failed++;
          process.stderr.write(`floor row ${i}: ${error instanceof Error ? error.message : String(error)}\n`);
        }
      }
    }),
  );
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await dispatcher.close();
  const report: FloorReport = {
    wallMs,
    cpuUserMs: cpu.user / 1000,
    cpuSystemMs: cpu.system / 1000,
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    done,
    failed,
    requests,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}
