// How every command's action runs: a factory built from the global options, the command's
// body, then whatever it opened closed, and whatever it threw turned into one message and one
// exit code (exit-codes.ts decides it). Commands import only the types here, and main.ts makes
// the runner, so commands never import main.ts (no import circle).

import type { Command } from "commander";
import { CliError } from "./cli-error.js";
import { EXIT, exitCodeFor } from "./exit-codes.js";
import { Factory } from "./factory.js";
import type { GlobalOptions, Io } from "./io.js";

/** A command's body: its exit code (undefined for 0). */
export type CommandBody = (ctx: Factory) => Promise<number | undefined>;

/** Runs one command's body for the given commander command. */
export type ActionRunner = (command: Command, body: CommandBody) => Promise<void>;

/** The runner of one program; `setExitCode` gets the code of the command that ran. */
export function actionRunner(setExitCode: (code: number) => void): ActionRunner {
  return async (command, body) => {
    const ctx = new Factory(command.optsWithGlobals() as GlobalOptions);
    let code: number;
    try {
      try {
        code = (await body(ctx)) ?? EXIT.ok;
      } finally {
        await ctx.close();
      }
    } catch (error) {
      code = exitCodeFor(error);
      reportError(ctx.io, error, code);
    }
    setExitCode(code);
  };
}

function reportError(io: Io, error: unknown, exitCode: number): void {
  const message = error instanceof Error ? error.message : String(error);
  if (io.json) {
    const detail =
      error instanceof CliError
        ? { code: error.code, details: error.details }
        : typeof (error as { toJSON?: unknown })?.toJSON === "function"
          ? (error as { toJSON(): object }).toJSON()
          : {};
    io.result({ ok: false, exitCode, error: { name: (error as Error)?.name, message, ...detail } });
  }
  io.error(message);
  if (io.verbose && error instanceof Error && error.stack) io.debug(error.stack);
}
