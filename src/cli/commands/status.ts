// `dreamina status <request_id>`: one status call, no waiting; what it says is noted in the
// job store when the store knows the request.

import type { Command } from "commander";
import type { ActionRunner } from "../action.js";
import { requestIdArgument } from "../arguments.js";
import { EXIT, exitCodesHelp } from "../exit-codes.js";
import type { Factory } from "../factory.js";
import { recordIfKnown } from "../known-request.js";

export interface StatusOptions {
  requestId: string;
}

export async function runStatus(options: StatusOptions, ctx: Factory): Promise<number> {
  const { io } = ctx;
  ctx.checkStore();
  const client = await ctx.client();
  const status = await client.status(options.requestId);
  await recordIfKnown(ctx, status.requestId, (store) =>
    store.recordStatus(status.requestId, {
      status: status.status,
      rawStatus: status.rawStatus,
      queuePosition: status.queuePosition,
    }),
  );
  if (io.json) {
    io.result({
      ok: true,
      requestId: status.requestId,
      status: status.status,
      rawStatus: status.rawStatus,
      queuePosition: status.queuePosition ?? null,
    });
  } else {
    const where = status.queuePosition !== undefined ? `  (queue position ${status.queuePosition})` : "";
    io.out(`${status.requestId}  ${status.status === "unknown" ? status.rawStatus : status.status}${where}`);
  }
  return EXIT.ok;
}

export function registerStatus(program: Command, run: ActionRunner): void {
  program
    .command("status")
    .description("show a request's current status (one call, no waiting)")
    .argument("<request_id>", "the request to look at", requestIdArgument)
    .addHelpText("after", `\nExample:\n  dreamina status 3f9c2a7e-... --json\n${exitCodesHelp("status")}`)
    .action((requestId: string, _flags: unknown, self: Command) =>
      run(self, (ctx) => runStatus({ requestId }, ctx)),
    );
}
