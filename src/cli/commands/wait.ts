// `dreamina wait <request_id>`: attach to any request (from any process, at any time), wait
// for it and download its video. Safe to repeat: it is keyed by the request id, never submits.

import type { Command } from "commander";
import type { ActionRunner } from "../action.js";
import { requestIdArgument } from "../arguments.js";
import { exitCodesHelp } from "../exit-codes.js";
import type { Factory } from "../factory.js";
import { followJob } from "../follow-job.js";
import { addOutputFlags, claimOutputFor, giveUpAfterMs, type OutputFlags, timeoutMs } from "../job-flags.js";

export interface WaitOptions extends OutputFlags {
  requestId: string;
}

export async function runWait(options: WaitOptions, ctx: Factory): Promise<number> {
  const deadline = timeoutMs(options);
  const giveUp = giveUpAfterMs(options);
  const claim = await claimOutputFor(options, false);
  try {
    return await followJob(ctx, options, (dreamina, progress, signal, ids) => {
      ids.requestId = options.requestId;
      return dreamina.wait(options.requestId, {
        output: claim ?? options.output,
        download: options.download,
        force: options.force,
        signal,
        timeoutMs: deadline,
        giveUpAfterMs: giveUp,
        timeScale: ctx.timeScale,
        onPollError: (error, count, info) => progress.pollError(error, count, info),
        onUpdate: (update) => progress.update(update),
        onDownloadProgress: (p) => progress.download(p),
      });
    });
  } finally {
    await claim?.release();
  }
}

export function registerWait(program: Command, run: ActionRunner): void {
  const command = program
    .command("wait")
    .description("wait for any request (from any process, at any time) and download its video")
    .argument("<request_id>", "the request to wait for", requestIdArgument);
  addOutputFlags(command)
    .addHelpText("after", `\nExample:\n  dreamina wait 3f9c2a7e-... -o out.mp4\n${exitCodesHelp("wait")}`)
    .action((requestId: string, flags: OutputFlags, self: Command) =>
      run(self, (ctx) => runWait({ ...flags, requestId }, ctx)),
    );
}
