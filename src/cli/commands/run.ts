// `dreamina run`: the main job (image + prompt in, MP4 out): check the input, claim the output,
// submit, wait, download. Every step is journaled, so an interrupted job can be picked up again
// with `dreamina wait`.

import type { Command } from "commander";
import type { ActionRunner } from "../action.js";
import { exitCodesHelp } from "../exit-codes.js";
import type { Factory } from "../factory.js";
import { followJob } from "../follow-job.js";
import {
  addInputFlags,
  addOutputFlags,
  claimOutputFor,
  giveUpAfterMs,
  type InputFlags,
  type OutputFlags,
  readRequest,
  timeoutMs,
  warnAbout,
} from "../job-flags.js";

export type RunOptions = InputFlags & OutputFlags;

export async function runRun(options: RunOptions, ctx: Factory): Promise<number> {
  const { request, fit } = await readRequest(options);
  const deadline = timeoutMs(options);
  const giveUp = giveUpAfterMs(options);
  const claim = await claimOutputFor(options, true);
  try {
    return await followJob(ctx, options, (dreamina, progress, signal, ids) =>
      dreamina.run(request, {
        fit,
        output: claim ?? options.output,
        download: options.download,
        force: options.force,
        signal,
        timeoutMs: deadline,
        giveUpAfterMs: giveUp,
        timeScale: ctx.timeScale,
        onPrepared: (prepared) => warnAbout(ctx.io, prepared.report.warnings),
        onPollError: (error, count, info) => progress.pollError(error, count, info),
        onSubmitted: (submit) => {
          ids.requestId = submit.requestId;
          progress.note(`submitted ${submit.requestId}`);
        },
        onUpdate: (update) => progress.update(update),
        onDownloadProgress: (p) => progress.download(p),
      }),
    );
  } finally {
    await claim?.release();
  }
}

export function registerRun(program: Command, run: ActionRunner): void {
  const command = program
    .command("run")
    .description("generate a video: check the input, submit, wait, download the MP4");
  addOutputFlags(addInputFlags(command))
    .addHelpText(
      "after",
      "\nExamples:\n" +
        '  dreamina run --image photo.jpg --prompt "slow dolly-in, golden hour" -o out.mp4\n' +
        '  dreamina run --sandbox --image examples/golden-hour-street.jpg --prompt "a car drives by" -o out.mp4\n' +
        "  dreamina run --image https://example.com/cat.png --prompt-file prompt.txt --frames 241 --json\n" +
        exitCodesHelp("run"),
    )
    .action((flags: RunOptions, self: Command) => run(self, (ctx) => runRun(flags, ctx)));
}
