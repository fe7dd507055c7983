// The run phase, this process alone: the planned rows in order (re-attaches first), at most
// `concurrency` jobs in flight, each submit within the budget; no submit once the disk is full
// or the run is stopping. Rows left over say why they did not run.

import type { RowRun } from "./row-run.js";
import type { BatchRunContext } from "./run-context.js";
import { reattach, submitAndWait } from "./submit-and-wait.js";

/** The rows that need a job, in the order they run: re-attaches, then submits. */
export function jobQueue(rows: readonly RowRun[]): RowRun[] {
  return [
    ...rows.filter((r) => r.action === "reattach"),
    ...rows.filter((r) => r.action === "submit" || r.action === "resubmit"),
  ];
}

export async function execute(ctx: BatchRunContext, queue: readonly RowRun[]): Promise<void> {
  let next = 0;
  const concurrency = Math.max(1, Math.floor(ctx.options.concurrency ?? 4));
  const slot = async () => {
    while (!ctx.stopping && next < queue.length) {
      const r = queue[next]!;
      if (ctx.diskFull) {
        // A video paid for now would have nowhere to go.
        for (const rest of queue.slice(next)) if (rest.phase === "pending") ctx.waitForSpace(rest);
        return;
      }
      if (r.action !== "reattach" && !ctx.budget.reserve(r.row.key, r.estimateUsd)) {
        budgetStop(ctx, queue.slice(next), r.estimateUsd);
        return;
      }
      next++;
      if (r.action === "reattach") await reattach(ctx, r);
      else await submitAndWait(ctx, r);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(1, queue.length)) }, slot));
  for (const r of queue.slice(next)) {
    if (r.phase === "pending" && r.notRunReason === undefined) {
      r.notRunReason = ctx.budget.stopped ? "budget" : "interrupted";
    }
  }
}

function budgetStop(ctx: BatchRunContext, rest: RowRun[], nextEstimate: number): void {
  if (ctx.budgetStopped) return;
  ctx.budgetStopped = true;
  const snapshot = ctx.budget.snapshot();
  const notSubmitted = rest.filter((r) => r.action !== "reattach").length;
  for (const r of rest) if (r.action !== "reattach") r.notRunReason = "budget";
  ctx.emit({
    type: "budget-stop",
    limitUsd: ctx.budget.limitUsd ?? 0,
    committedUsd: snapshot.committedUsd,
    nextEstimateUsd: nextEstimate,
    notSubmitted,
  });
}
