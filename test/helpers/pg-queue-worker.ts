// A batch worker in its own process, for the tests of one batch shared by many workers: it
// claims rows of the batch from the shared PostgreSQL store, "submits" each (an intent row, a
// pause standing for the POST, then the accepted id), and records the row done. It prints one
// JSON line per event on stdout: {"event":"submit","row":…} right after each intent row commits,
// so the test can count submits, and kill the worker at a chosen moment.
//
// Args: <url> <batchId> <leaseMs> <heartbeatMs> <postMs> <recoveryDir> [<n>:intent|<n>:accepted]
// (the last: after the n-th submit, stop and wait to be killed, before or after its answer).

import { openPostgresJobStore } from "../../src/store/postgres/index.js";

const [url, batchId, leaseMs, heartbeatMs, postMs, recoveryDir, stopAfter] = process.argv.slice(2);
const say = (event: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(event)}\n`);
const store = await openPostgresJobStore(url as string, {
  leaseMs: Number(leaseMs),
  heartbeatMs: Number(heartbeatMs),
  recoveryDir: recoveryDir as string,
  onWarning: () => {},
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let submits = 0;
let idle = 0;

while (idle < 40) {
  const rows = await store.claimRows(batchId as string, 2);
  if (rows.length === 0) {
    const progress = await store.batchProgress(batchId as string);
    if (!progress.states.pending && !progress.states.claimed) break;
    idle++;
    await sleep(50);
    continue;
  }
  idle = 0;
  for (const row of rows) {
    say({ event: "claim", row: row.rowKey, job: row.job?.state ?? null });
    if (row.job?.requestId) {
      // Started and accepted by another worker: follow it by its request id.
      await store.recordResult(row.job.requestId, { status: "succeeded", outputUrls: ["https://cdn/v.mp4"] });
      await store.recordBatchRow(batchId as string, row.rowKey, {
        state: "done",
        requestId: row.job.requestId,
        file: `${row.rowKey}.mp4`,
        bytes: 1,
        sha256: "00",
      });
      say({ event: "took_over", row: row.rowKey });
      continue;
    }
    // A job with no answer yet (or none): this worker still tries, so that the store, and not
    // this client's own care, is what refuses a second submit. A pause first stands for reading
    // and checking the row's image, long enough for the lease to run out under it.
    await sleep((Math.random() * Number(postMs)) / 2);
    let localId: number;
    try {
      localId = await store.beginRowSubmit(
        {
          modelId: "m",
          baseUrl: "b",
          input: { prompt: row.rowKey },
          batchId: batchId as string,
          rowKey: row.rowKey,
        },
        row.estimateUsd,
      );
    } catch (error) {
      const code = (error as { code?: string }).code;
      say({ event: "refused", row: row.rowKey, code });
      if (code === "budget_exceeded") {
        await store.recordBatchRow(batchId as string, row.rowKey, { state: "failed", error: { code } });
      }
      continue;
    }
    say({ event: "submit", row: row.rowKey, localId, pid: process.pid });
    submits++;
    const [stopAt, stage] = (stopAfter ?? "").split(":");
    if (stopAt && submits >= Number(stopAt)) {
      // Wait here for the test's kill -9, between the intent row and the answer, or after it.
      if (stage === "accepted") await store.submitAccepted(localId, { requestId: `req-${row.rowKey}` });
      say({ event: "stopped", row: row.rowKey, stage });
      await sleep(60_000);
    }
    await sleep(Math.random() * Number(postMs));
    await store.submitAccepted(localId, { requestId: `req-${row.rowKey}-${process.pid}` });
    await store.recordBatchRow(batchId as string, row.rowKey, {
      state: "done",
      requestId: `req-${row.rowKey}-${process.pid}`,
      file: `${row.rowKey}.mp4`,
      bytes: 1,
      sha256: "00",
    });
  }
}
await store.close();
say({ event: "exit" });
