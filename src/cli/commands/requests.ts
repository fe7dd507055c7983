// `status`, `result` and `cancel`: one call each against an existing request_id.

import type { Command } from "commander";
import type { JobStore } from "../../store/index.js";
import { requestIdArgument } from "../arguments.js";
import { type Context, openContext } from "../context.js";
import { EXIT, exitCodesHelp } from "../exit-codes.js";
import type { ActionRunner } from "../main.js";

/**
 * What a one-off call learnt goes into the journal too, when the journal knows the request
 * (so `dreamina jobs` does not go on showing a job as queued after `cancel` or `result`).
 * Best effort: the answer is printed whatever happens here.
 */
async function withJournal(ctx: Context, requestId: string, record: (journal: JobStore) => Promise<unknown>) {
  try {
    const { existsSync } = await import("node:fs");
    if (!existsSync(ctx.journalPath)) return;
    const { openJobStore } = await import("../../store/index.js");
    const journal = await openJobStore(ctx.journalPath);
    try {
      if ((await journal.get(requestId))?.requestId === requestId) await record(journal);
    } finally {
      await journal.close();
    }
  } catch (error) {
    ctx.io.debug(`journal not updated: ${(error as Error).message}`);
  }
}

export function registerRequestCommands(program: Command, run: ActionRunner): void {
  program
    .command("status")
    .description("show a request's current status (one call, no waiting)")
    .argument("<request_id>", "the request to look at", requestIdArgument)
    .addHelpText("after", `\nExample:\n  dreamina status 3f9c2a7e-... --json\n${exitCodesHelp("status")}`)
    .action((requestId: string, _opts, command: Command) =>
      run(command, async (io, globals) => {
        const ctx = await openContext(globals, io);
        try {
          const status = await ctx.client.status(requestId);
          await withJournal(ctx, status.requestId, (j) =>
            j.recordStatus(status.requestId, {
              status: status.status,
              rawStatus: status.rawStatus,
              queuePosition: status.queuePosition,
            }),
          );
          const summary = {
            ok: true,
            requestId: status.requestId,
            status: status.status,
            rawStatus: status.rawStatus,
            queuePosition: status.queuePosition ?? null,
          };
          if (io.json) io.result(summary);
          else {
            const where =
              status.queuePosition !== undefined ? `  (queue position ${status.queuePosition})` : "";
            io.out(
              `${status.requestId}  ${status.status === "unknown" ? status.rawStatus : status.status}${where}`,
            );
          }
          return EXIT.ok;
        } finally {
          await ctx.close();
        }
      }),
    );

  program
    .command("result")
    .description("show a request's result: state, output URLs, error, cost")
    .argument("<request_id>", "the request to look at", requestIdArgument)
    .option("--no-cost", "do not ask for the job's cost")
    .addHelpText("after", `\nExample:\n  dreamina result 3f9c2a7e-... --json\n${exitCodesHelp("result")}`)
    .action((requestId: string, opts: { cost: boolean }, command: Command) =>
      run(command, async (io, globals) => {
        const ctx = await openContext(globals, io);
        try {
          const result = await ctx.client.result(requestId, { includeCost: opts.cost });
          const terminal = ["succeeded", "failed", "cancelled"].includes(result.status);
          if (terminal) {
            await withJournal(ctx, result.requestId, (j) => j.recordResult(result.requestId, result));
          }
          const summary = {
            ok: result.status !== "failed" && result.status !== "cancelled",
            requestId: result.requestId,
            status: result.status,
            rawStatus: result.rawStatus,
            outputUrls: result.outputUrls,
            video: result.video ?? null,
            error: result.error ?? null,
            cost: result.cost ?? null,
            createdAt: result.createdAt ?? null,
            finishedAt: result.finishedAt ?? null,
          };
          if (io.json) io.result(summary);
          else {
            io.out(`${result.requestId}  ${result.status === "unknown" ? result.rawStatus : result.status}`);
            for (const url of result.outputUrls) io.out(url);
            if (result.error !== undefined) io.out(`error: ${JSON.stringify(result.error)}`);
            if (result.cost !== undefined) io.out(`cost: $${result.cost}`);
          }
          return result.status === "failed" || result.status === "cancelled" ? EXIT.failure : EXIT.ok;
        } finally {
          await ctx.close();
        }
      }),
    );

  program
    .command("cancel")
    .description("cancel a queued request (a running job cannot be stopped and stays billed)")
    .argument("<request_id>", "the request to cancel", requestIdArgument)
    .addHelpText("after", `\nExample:\n  dreamina cancel 3f9c2a7e-...\n${exitCodesHelp("cancel")}`)
    .action((requestId: string, _opts, command: Command) =>
      run(command, async (io, globals) => {
        const ctx = await openContext(globals, io);
        try {
          const outcome = await ctx.client.cancel(requestId);
          if (outcome.outcome === "cancelled") {
            await withJournal(ctx, outcome.requestId, (j) =>
              j.recordStatus(outcome.requestId, {
                status: "cancelled",
                rawStatus: outcome.status ?? "cancelled",
              }),
            );
          }
          if (io.json) {
            io.result({
              ok: outcome.outcome === "cancelled",
              requestId: outcome.requestId,
              outcome: outcome.outcome,
              status: outcome.status ?? null,
            });
          } else if (outcome.outcome === "cancelled") {
            io.out(`${outcome.requestId}  cancelled`);
          } else if (outcome.outcome === "not_cancellable") {
            io.out(`${outcome.requestId}  not cancellable: it is already running or finished, and is billed`);
          } else {
            io.out(
              `${outcome.requestId}  cancel answered with outcome ${JSON.stringify(outcome.rawOutcome)}`,
            );
          }
          return outcome.outcome === "cancelled" ? EXIT.ok : EXIT.failure;
        } finally {
          await ctx.close();
        }
      }),
    );
}
