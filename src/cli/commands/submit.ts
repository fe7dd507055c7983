// `dreamina submit`: check the input and submit it; print the request id. The request is
// journaled before it is sent, so `dreamina wait <id>` (or `jobs`) finds it again.

import type { Command } from "commander";
import type { JobResult } from "../../api/types.js";
import type { ActionRunner } from "../action.js";
import { EXIT, exitCodesHelp } from "../exit-codes.js";
import type { Factory } from "../factory.js";
import { addInputFlags, type InputFlags, readRequest, warnAbout } from "../job-flags.js";

export type SubmitOptions = InputFlags;

export async function runSubmit(options: SubmitOptions, ctx: Factory): Promise<number> {
  const { io } = ctx;
  const { request, fit } = await readRequest(options);
  const dreamina = await ctx.dreamina();
  const submitted = await dreamina.submit(request, {
    fit,
    onPrepared: (prepared) => warnAbout(io, prepared.report.warnings),
  });
  if (io.json) io.result({ ok: true, requestId: submitted.requestId, ...urls(submitted.submit.raw) });
  else io.out(submitted.requestId);
  return EXIT.ok;
}

function urls(raw: JobResult["raw"]): Record<string, unknown> {
  return {
    statusUrl: raw.status_url ?? null,
    resultUrl: raw.result_url ?? null,
    cancelUrl: raw.cancel_url ?? null,
  };
}

export function registerSubmit(program: Command, run: ActionRunner): void {
  addInputFlags(program.command("submit").description("check the input and submit it; print the request id"))
    .addHelpText(
      "after",
      "\nExample:\n" +
        '  id=$(dreamina submit --image photo.jpg --prompt "waves roll in")\n' +
        "  dreamina wait $id -o out.mp4\n" +
        exitCodesHelp("submit"),
    )
    .action((flags: SubmitOptions, self: Command) => run(self, (ctx) => runSubmit(flags, ctx)));
}
