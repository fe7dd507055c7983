// `dreamina result <request_id>`: a request's result (state, output URLs, error, cost); a
// final one is noted in the job store when the store knows the request.

import type { Command } from "commander";
import type { ActionRunner } from "../action.js";
import { requestIdArgument } from "../arguments.js";
import { EXIT, exitCodesHelp } from "../exit-codes.js";
import type { Factory } from "../factory.js";
import { recordIfKnown } from "../known-request.js";

export interface ResultOptions {
  requestId: string;
  /** Ask for the job's cost (--no-cost turns it off). */
  cost: boolean;
}

export async function runResult(options: ResultOptions, ctx: Factory): Promise<number> {
  const { io } = ctx;
  ctx.checkStore();
  const client = await ctx.client();
  const result = await client.result(options.requestId, { includeCost: options.cost });
  const failed = result.status === "failed" || result.status === "cancelled";
  if (failed || result.status === "succeeded") {
    await recordIfKnown(ctx, result.requestId, (store) => store.recordResult(result.requestId, result));
  }
  if (io.json) {
    io.result({
      ok: !failed,
      requestId: result.requestId,
      status: result.status,
      rawStatus: result.rawStatus,
      outputUrls: result.outputUrls,
      video: result.video ?? null,
      error: result.error ?? null,
      cost: result.cost ?? null,
      createdAt: result.createdAt ?? null,
      finishedAt: result.finishedAt ?? null,
    });
  } else {
    io.out(`${result.requestId}  ${result.status === "unknown" ? result.rawStatus : result.status}`);
    for (const url of result.outputUrls) io.out(url);
    if (result.error !== undefined) io.out(`error: ${JSON.stringify(result.error)}`);
    if (result.cost !== undefined) io.out(`cost: $${result.cost}`);
  }
  return failed ? EXIT.failure : EXIT.ok;
}

export function registerResult(program: Command, run: ActionRunner): void {
  program
    .command("result")
    .description("show a request's result: state, output URLs, error, cost")
    .argument("<request_id>", "the request to look at", requestIdArgument)
    .option("--no-cost", "do not ask for the job's cost")
    .addHelpText("after", `\nExample:\n  dreamina result 3f9c2a7e-... --json\n${exitCodesHelp("result")}`)
    .action((requestId: string, flags: { cost: boolean }, self: Command) =>
      run(self, (ctx) => runResult({ requestId, cost: flags.cost }, ctx)),
    );
}
