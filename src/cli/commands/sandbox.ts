// `dreamina sandbox`: runs the local stand-in of the RunComfy Model API in the foreground,
// prints its base URL, logs one line per request on stderr (never a token) and stops on
// SIGINT/SIGTERM. Point any client at it with --base-url or RUNCOMFY_MODEL_API_BASE.

import type { Command } from "commander";
import { CliError, EXIT, exitCodesHelp } from "../exit-codes.js";
import type { ActionRunner } from "../main.js";

interface SandboxFlags {
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
    throw new CliError(`--${name}: invalid value ${JSON.stringify(text)}`, EXIT.usage);
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
    .action((flags: SandboxFlags, command: Command) =>
      run(command, async (io, globals) => {
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
            ...(globals.token ? { token: globals.token } : {}),
            ...(flags.faults !== undefined ? { faults: flags.faults } : {}),
            // Through io: the log shows clients' paths, which may hold anything.
            log: (line) => io.info(line),
          });
        } catch (error) {
          if (error instanceof FaultSpecError) throw new CliError(`--faults: ${error.message}`, EXIT.usage);
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
      }),
    );
}
