// Probe benchmark: what it costs to learn an image URL's format, size and dimensions with
// probeImage (one Range request, 64 KiB at most) against downloading the whole file
// (fetch + arrayBuffer), same 4.6 MB JPEG from the same local server, same run.
//
//   node --import tsx bench/probe.ts [--runs N]
//
// The image is a real 1600x900 JPEG grown to 4,600,000 bytes with comment segments placed
// after the frame header (where a camera's big scan data would be). Two servers are
// measured: one honouring Range (206) and one ignoring it (200, whole body).

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import sharp from "sharp";
import { probeImage } from "../src/image/probe.js";

const SIZE = 4_600_000;
const TARGET_BYTES = 64 * 1024;

async function makeImage(): Promise<Buffer> {
  const image = await sharp({ create: { width: 1600, height: 900, channels: 3, background: "#c87828" } })
    .jpeg({ quality: 85 })
    .withMetadata({ orientation: 1 })
    .toBuffer();
  // Comment segments (valid JPEG) before the scan, so the frame header stays near the start.
  let at = 2;
  while (!(image[at] === 0xff && image[at + 1] === 0xda)) at += 2 + image.readUInt16BE(at + 2);
  const pad: Buffer[] = [];
  let left = SIZE - image.length;
  while (left > 0) {
    let size = Math.min(left, 65_537);
    if (left - size > 0 && left - size < 4) size -= 4;
    const segment = Buffer.alloc(size, 0x20);
    segment.writeUInt16BE(0xfffe, 0);
    segment.writeUInt16BE(size - 2, 2);
    pad.push(segment);
    left -= size;
  }
  return Buffer.concat([image.subarray(0, at), ...pad, image.subarray(at)]);
}

function serve(body: Buffer, honourRange: boolean): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const match = honourRange ? /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "") : null;
    const start = match ? Number(match[1]) : 0;
    const end = match ? Math.min(Number(match[2]), body.length - 1) : body.length - 1;
    const slice = body.subarray(start, end + 1);
    res.writeHead(match ? 206 : 200, {
      "content-type": "image/jpeg",
      "content-length": slice.length,
      ...(match ? { "content-range": `bytes ${start}-${end}/${body.length}` } : {}),
    });
    res.end(slice);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/photo.jpg` }),
    ),
  );
}

interface Row {
  method: string;
  server: string;
  bytesRead: number;
  medianMs: number;
  facts: string;
}

async function measure(runs: number, fn: () => Promise<{ bytesRead: number; facts: string }>) {
  const times: number[] = [];
  let last = { bytesRead: 0, facts: "" };
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    last = await fn();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return { ...last, medianMs: times[Math.floor(times.length / 2)]! };
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<boolean> {
  const runsFlag = argv.indexOf("--runs");
  const runs = runsFlag >= 0 ? Number(argv[runsFlag + 1]) : 15;
  const body = await makeImage();
  const rows: Row[] = [];
  for (const honourRange of [true, false]) {
    const { server, url } = await serve(body, honourRange);
    const label = honourRange ? "Range honoured" : "Range ignored";
    try {
      const probe = await measure(runs, async () => {
        const r = await probeImage(url);
        return { bytesRead: r.bytesRead, facts: `${r.format} ${r.width}x${r.height}, ${r.sizeBytes} B` };
      });
      rows.push({ method: "probeImage", server: label, ...probe });
      const full = await measure(runs, async () => {
        const response = await fetch(url);
        const bytes = new Uint8Array(await response.arrayBuffer());
        return { bytesRead: bytes.length, facts: `${bytes.length} B downloaded` };
      });
      rows.push({ method: "fetch + arrayBuffer", server: label, ...full });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  }

  console.log(
    `probe benchmark: one ${body.length.toLocaleString("en-US")}-byte JPEG on 127.0.0.1, median of ${runs} runs`,
  );
  console.log("");
  const header = ["method", "server", "bytes read", "median ms", "what it learnt"];
  const table = rows.map((r) => [
    r.method,
    r.server,
    r.bytesRead.toLocaleString("en-US"),
    r.medianMs.toFixed(2),
    r.facts,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 2 || i === 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ");
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const row of table) console.log(line(row));
  const ranged = rows[0]!;
  const ok = ranged.bytesRead <= TARGET_BYTES;
  console.log("");
  console.log(
    `target: the URL probe reads at most ${TARGET_BYTES.toLocaleString("en-US")} bytes when Range is honoured: ${ok ? "met" : "MISSED"} (${ranged.bytesRead.toLocaleString("en-US")})`,
  );
  return ok;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (ok) => {
      process.exitCode = ok ? 0 : 1;
    },
    (error) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}
