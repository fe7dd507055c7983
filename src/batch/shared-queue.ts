// One batch, many workers: the execution loop of a worker on a shared store (PostgreSQL). Rather
// than running its own plan, each worker claims rows from the batch's queue as its slots free
// up (leases kept alive by the store's heartbeat), runs each to its end, and stops when the
// queue has nothing left for it and no other live worker still holds a row: a killed worker's
// rows come back to the queue when its lease runs out, and whoever is still there takes them.
//
// What makes it exactly once is the store's (the intent row of a row is refused while an earlier
// job of that row may be alive, and the budget is reserved in the same transaction); this loop
// only decides what to claim and when to stop.

import { sleep } from "../api/sleep.js";
import type { ClaimedRow, SharedBatchStore } from "../store/index.js";

/** What the loop needs from the batch run it serves. */
export interface SharedQueueHost<Row> {
  /** The local row for a key, when this worker's manifest has it and it is valid. */
  row(key: string): Row | undefined;
  /**
   * Runs a claimed row until its job has ended (its download may go on after): decides from the
   * job a previous holder left what to do (follow it, fetch its video, or submit).
   */
  runClaimed(row: Row, claimed: ClaimedRow): Promise<void>;
  /** True once this worker must claim nothing more (interrupted, disk full, budget spent). */
  stopping(): boolean;
}

export interface SharedQueueOptions {
  store: SharedBatchStore;
  batchId: string;
  /** Rows in flight at most (claimed and not past their job). */
  concurrency: number;
  /** How often to look again when other workers hold the rest. Default: a quarter lease, 0.25–2 s. */
  idlePollMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

export interface SharedQueueResult {
  /** Rows this worker claimed and ran (a row taken over counts once more). */
  claimed: number;
  /** Keys other workers queued that this worker's manifest does not have (left to them). */
  foreign: string[];
}

export async function runSharedQueue<Row>(
  host: SharedQueueHost<Row>,
  options: SharedQueueOptions,
): Promise<SharedQueueResult> {
  const { store, batchId } = options;
  const concurrency = Math.max(1, Math.floor(options.concurrency));
  const idleMs = options.idlePollMs ?? Math.min(2_000, Math.max(250, store.leaseMs / 4));
  const active = new Set<Promise<void>>();
  const foreign = new Set<string>();
  let claimedTotal = 0;

  const start = (row: Row, claimed: ClaimedRow) => {
    const task: Promise<void> = host.runClaimed(row, claimed).finally(() => active.delete(task));
    active.add(task);
  };
  const waitForAny = async (ms: number | undefined) => {
    const waits: Promise<unknown>[] = [...active];
    if (ms !== undefined) waits.push(sleep(ms, options.signal).catch(() => {}));
    if (waits.length > 0) await Promise.race(waits);
  };

  while (!host.stopping()) {
    const free = concurrency - active.size;
    if (free <= 0) {
      await waitForAny(undefined);
      continue;
    }
    const claims = await store.claimRows(batchId, free, [...foreign]);
    let started = 0;
    for (const claim of claims) {
      const row = host.row(claim.rowKey);
      if (row === undefined) {
        // Queued by a worker with another manifest: its row to run, not ours.
        foreign.add(claim.rowKey);
        await store.releaseRow(batchId, claim.rowKey);
        continue;
      }
      claimedTotal++;
      started++;
      start(row, claim);
    }
    if (started > 0 || claims.length > 0) continue;
    // Nothing to claim now: the batch is finished, or other workers hold the rest (a killed
    // worker's rows come back when its lease runs out: keep looking until none is held).
    const progress = await store.batchProgress(batchId);
    const me = store.worker;
    const othersHold = progress.workers.some(
      (w) => w.claimed > 0 && !(w.host === me.host && w.pid === me.pid),
    );
    if (!othersHold && active.size === 0) break;
    await waitForAny(othersHold ? idleMs : undefined);
  }
  await Promise.all(active);
  return { claimed: claimedTotal, foreign: [...foreign] };
}
