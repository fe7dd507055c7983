// One worker process of the store bench: claims rows of a shared batch from PostgreSQL and runs
// each through the store calls of a real batch row (intent, accepted, two statuses, result,
// file, row outcome), with a fixed pause standing for the service's time, `concurrency` rows
// at once. Prints {"rows":n,"cpuMs":…} at the end, with when its work started and ended.
//
// Args: <url> <batchId> <concurrency> <serviceMs>

import { openPostgresJobStore } from "../src/store/postgres/index.js";

const [url, batchId, concurrencyArg, serviceMsArg] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
const serviceMs = Number(serviceMsArg);
const store = await openPostgresJobStore(url as string, {
  maxConnections: Math.min(concurrency, 8),
  recoveryDir: `/tmp/dreamina-bench-${process.pid}`,
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Measured from when the store is open: a process's start (tsx compiling) is not the store's.
const cpu0 = process.cpuUsage();
const startedAt = Date.now();
let rows = 0;

async function lane(): Promise<void> {
  for (;;) {
    const [row] = await store.claimRows(batchId as string, 1);
    if (!row) return;
    const id = await store.beginRowSubmit(
      {
        modelId: "m",
        baseUrl: "https://api",
        input: { prompt: row.rowKey, frames: 121 },
        batchId: batchId as string,
        rowKey: row.rowKey,
      },
      0.1,
    );
    const requestId = `req-${row.rowKey}`;
    await store.submitAccepted(id, { requestId });
    await sleep(serviceMs / 2);
    await store.writeBatch([{ kind: "status", requestId, observation: { status: "in_progress" } }]);
    await sleep(serviceMs / 2);
    await store.writeBatch([
      { kind: "status", requestId, observation: { status: "completed" } },
      {
        kind: "result",
        requestId,
        result: { status: "succeeded", outputUrls: ["https://cdn/v.mp4"], cost: 0.1 },
      },
      { kind: "file", requestId, file: { path: `/out/${row.rowKey}.mp4`, bytes: 1000, sha256: "ab" } },
      {
        kind: "batch_row",
        batchId: batchId as string,
        rowKey: row.rowKey,
        outcome: { state: "done", requestId, file: `${row.rowKey}.mp4`, bytes: 1000, sha256: "ab" },
      },
    ]);
    rows++;
  }
}

await Promise.all(Array.from({ length: concurrency }, () => lane()));
const cpu = process.cpuUsage(cpu0);
const endedAt = Date.now();
await store.close();
process.stdout.write(
  `${JSON.stringify({ rows, cpuMs: (cpu.user + cpu.system) / 1000, startedAt, endedAt })}\n`,
);
