// `dreamina sandbox`: runs the local stand-in of the RunComfy Model API in the foreground,
// prints its base URL, logs one line per request on stderr (never a token) and stops on
// SIGINT/SIGTERM. Point any client at it with --base-url or RUNCOMFY_MODEL_API_BASE.

import type { Command } from "commander";
import type { ActionRunner } from "../action.js";
import { CliError } from "../cli-error.js";
import { EXIT, exitCodesHelp } from "../exit-codes.js";
import type { Factory } from "../factory.js";

export interface SandboxOptions {
  host: string;
  port: string;
  workers: string;
  timeScale: string;
  faults?: string;
  seed?: string;
}

function number(name: string, text: string, check: (n: number) => boolean): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || !check(value)) {
    throw new CliError("usage", `--${name}: invalid value ${JSON.stringify(text)}`);
  }
  return value;
}

export function registerSandbox(program: Command, run: ActionRunner): void {
  program
    .command("sandbox")
    .description("run a local stand-in of the RunComfy Model API (real MP4s, fault injection)")
    .option("--host <host>", "address to listen on", "127.0.0.1")
    .option("--port <port>", "port (0 picks a free one)", "0")
    .option("--workers <n>", "jobs that run at the same time", "2")
    .option("--time-scale <x>", "divide simulated run times by x (60 turns a minute into a second)", "1")
    .option(
      "--faults <spec>",
      "faults and modes, e.g. 'status:500=0.05,cdn:truncate=0.1,output=videos,seed=7' (default $DREAMINA_SANDBOX_FAULTS; README lists them)",
    )
    .option("--seed <n>", "seed for run-time jitter, picked seeds and faults", "0")
    .addHelpText(
      "after",
      [
        "",
        "With the global --token T only T is accepted; otherwise any token is, and each token sees only its own requests.",
        "",
        "Example:",
        "  dreamina sandbox --port 8787 --time-scale 30 --faults 'submit:lost=0.1,job:fail=0.1,seed=7'",
        "  RUNCOMFY_MODEL_API_BASE=http://127.0.0.1:8787/v1 dreamina run ...",
        exitCodesHelp("sandbox"),
      ].join("\n"),
    )
    .action((flags: SandboxOptions, self: Command) => run(self, (ctx) => runSandbox(flags, ctx)));
}

/**
 * A server in the foreground until SIGINT/SIGTERM. Not the factory's in-process sandbox (that
 * one serves --sandbox for a single command): this one is the command's product.
 */
export async function runSandbox(flags: SandboxOptions, ctx: Factory): Promise<number> {
  const { io } = ctx;
  const options = {
    host: flags.host,
    port: number("port", flags.port, (n) => Number.isInteger(n) && n >= 0 && n <= 65535),
    workers: number("workers", flags.workers, (n) => Number.isInteger(n) && n >= 1),
    timeScale: number("time-scale", flags.timeScale, (n) => n > 0),
    seed: number("seed", flags.seed ?? "0", Number.isInteger),
  };
  const { startSandbox, FaultSpecError } = await import("../../sandbox/index.js");
  let sandbox: Awaited<ReturnType<typeof startSandbox>>;
  try {
    sandbox = await startSandbox({
      ...options,
      ...(ctx.options.token ? { token: ctx.options.token } : {}),
      ...(flags.faults !== undefined ? { faults: flags.faults } : {}),
      // Through io: the log shows clients' paths, which may hold anything.
      log: (line) => io.info(line),
    });
  } catch (error) {
    if (error instanceof FaultSpecError) throw new CliError("usage", `--faults: ${error.message}`);
    throw error;
  }
  if (io.json) io.stdout.write(`${JSON.stringify({ url: sandbox.url })}\n`);
  else io.out(sandbox.url);
  io.info(`sandbox listening at ${sandbox.url} (API at ${sandbox.url}/v1); Ctrl-C to stop`);

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
  });
  io.info(`${signal}: stopping the sandbox`);
  await sandbox.close();
  return EXIT.ok;
}
