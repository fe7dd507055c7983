// `dreamina batch --status <manifest>`: how far a batch has come, read from the job store alone
// (nothing is validated, submitted or written). On a shared store (PostgreSQL) it shows every
// worker's share: rows by state, who holds or held them (host and pid), and the budget reserved.
// On SQLite it shows the rows done and failed of the batch that writes into --out.

import { CliError, inputFileError } from "./cli-error.js";
import type { Factory } from "./factory.js";
import { printable } from "./io.js";

export interface BatchStatusOptions {
  manifest: string;
  /** The output folder: its marker names the batch (required on SQLite, where it is the identity). */
  out?: string | undefined;
  /** The batch id, when the workers were given one. */
  batch?: string | undefined;
  json?: boolean | undefined;
}

export async function runBatchStatus(options: BatchStatusOptions, ctx: Factory): Promise<number> {
  const { io } = ctx;
  const { readManifest } = await import("../batch/manifest.js");
  const { sharedBatchIdFor } = await import("../batch/batch-state.js");
  const { formatUsd } = await import("../batch/index.js");
  const { isSharedBatchStore } = await import("../store/index.js");
  let manifest: Awaited<ReturnType<typeof readManifest>>;
  try {
    manifest = await readManifest(options.manifest);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).syscall)
      throw inputFileError("the manifest", options.manifest, error);
    throw error;
  }
  const rows = manifest.rows.length;
  const store = await ctx.store();
  const json = Boolean(io.json || options.json);

  if (isSharedBatchStore(store)) {
    const batchId = await sharedBatchIdFor({
      batchId: options.batch,
      outDir: options.out,
      rowKeys: manifest.rows.map((r) => r.key),
    });
    const progress = await store.batchProgress(batchId);
    const queued = Object.values(progress.states).reduce((sum, n) => sum + n, 0);
    if (json) {
      io.result({ ok: true, batchId, store: store.location, rows, queued, ...progress });
      return 0;
    }
    if (queued === 0) {
      io.out(`batch ${batchId}: not started in ${store.location} (${rows} rows in the manifest)`);
      return 0;
    }
    const s = progress.states;
    io.out(
      `batch ${batchId}: ${queued} rows queued of ${rows} in the manifest: ${s.done ?? 0} done, ` +
        `${s.failed ?? 0} failed, ${s.claimed ?? 0} in progress, ${s.pending ?? 0} waiting`,
    );
    if (progress.budgetUsd !== undefined) {
      io.out(`budget: ${formatUsd(progress.reservedUsd)} reserved of ${formatUsd(progress.budgetUsd)}`);
    } else if (progress.reservedUsd > 0) {
      io.out(`estimated cost of the submits so far: ${formatUsd(progress.reservedUsd)}`);
    }
    if (progress.workers.length > 0) {
      io.out("WORKER".padEnd(32) + "  IN PROGRESS   DONE  FAILED");
      for (const w of progress.workers) {
        io.out(
          `${printable(`${w.host} pid ${w.pid}`, { inline: true }).padEnd(32)}  ${String(w.claimed).padStart(11)}  ` +
            `${String(w.done).padStart(5)}  ${String(w.failed).padStart(6)}`,
        );
      }
    }
    return 0;
  }

  // SQLite: one process runs a batch; its identity is the output folder.
  if (options.out === undefined) {
    throw new CliError("usage", "--status with a local journal needs --out (the batch's output folder)");
  }
  const { BatchState } = await import("../batch/batch-state.js");
  const state = await BatchState.open(store, {
    outDir: options.out,
    batchId: options.batch,
    manifestPath: manifest.path,
    manifestDigest: manifest.digest,
    readOnly: true,
  });
  const outcomes = state.info.resumed ? await state.rows() : new Map();
  const keys = new Set(manifest.rows.map((r) => r.key));
  let done = 0;
  let failed = 0;
  for (const [key, outcome] of outcomes) {
    if (!keys.has(key)) continue;
    if (outcome.state === "done") done++;
    else failed++;
  }
  if (json) {
    io.result({
      ok: true,
      batchId: state.info.resumed ? state.batchId : null,
      store: store.location,
      rows,
      done,
      failed,
    });
    return 0;
  }
  if (!state.info.resumed) {
    io.out(
      `no batch writes into ${printable(options.out, { inline: true })} yet (${rows} rows in the manifest)`,
    );
    return 0;
  }
  io.out(
    `batch ${state.batchId}: ${rows} rows: ${done} done, ${failed} failed, ${rows - done - failed} not done`,
  );
  return 0;
}
