// `dreamina cancel <request_id>`: cancel a queued request. A running job cannot be stopped and
// stays billed; the answer says which. A cancel that took is noted in the job store.

import type { Command } from "commander";
import type { ActionRunner } from "../action.js";
import { requestIdArgument } from "../arguments.js";
import { EXIT, exitCodesHelp } from "../exit-codes.js";
import type { Factory } from "../factory.js";
import { recordIfKnown } from "../known-request.js";

export interface CancelOptions {
  requestId: string;
}

export async function runCancel(options: CancelOptions, ctx: Factory): Promise<number> {
  const { io } = ctx;
  ctx.checkStore();
  const client = await ctx.client();
  const outcome = await client.cancel(options.requestId);
  if (outcome.outcome === "cancelled") {
    await recordIfKnown(ctx, outcome.requestId, (store) =>
      store.recordStatus(outcome.requestId, {
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
    io.out(`${outcome.requestId}  cancel answered with outcome ${JSON.stringify(outcome.rawOutcome)}`);
  }
  return outcome.outcome === "cancelled" ? EXIT.ok : EXIT.failure;
}

export function registerCancel(program: Command, run: ActionRunner): void {
  program
    .command("cancel")
    .description("cancel a queued request (a running job cannot be stopped and stays billed)")
    .argument("<request_id>", "the request to cancel", requestIdArgument)
    .addHelpText("after", `\nExample:\n  dreamina cancel 3f9c2a7e-...\n${exitCodesHelp("cancel")}`)
    .action((requestId: string, _flags: unknown, self: Command) =>
      run(self, (ctx) => runCancel({ requestId }, ctx)),
    );
}
