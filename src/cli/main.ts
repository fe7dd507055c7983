// The `dreamina` command line: a thin shell over the SDK. Every command shares the same
// global flags, the same error output and the same exit codes (see exit-codes.ts).
// Command modules only declare flags here; heavy modules load inside their actions, and what
// they need besides their options comes from the factory (factory.ts).

import { Command, CommanderError } from "commander";
import { VERSION } from "../api/version.js";
import { actionRunner } from "./action.js";
import { registerCommands } from "./commands/index.js";
import { EXIT } from "./exit-codes.js";
import { printable } from "./io.js";

export async function main(argv: string[]): Promise<number> {
  let exitCode: number = EXIT.ok;
  const program = new Command()
    .name("dreamina")
    .description("Image + prompt to video with Dreamina 3.0 Pro on the RunComfy Model API.")
    .version(VERSION, "-V, --version")
    .option("--json", "print one JSON document on stdout")
    .option(
      "--base-url <url>",
      "API base URL (root or ending in /v1); default $RUNCOMFY_MODEL_API_BASE or the service",
    )
    .option("--sandbox", "start an in-process sandbox and use it (offline, no token needed)")
    .option("--journal <path>", "job journal (SQLite); default $DREAMINA_HOME/journal.db")
    .option(
      "--store <url-or-path>",
      "job store: a postgres:// URL or a SQLite path; default $DREAMINA_STORE, $DATABASE_URL (postgres), the journal",
    )
    .option(
      "--token <token>",
      "API token (prefer $RUNCOMFY_API_TOKEN or token.json: flags end up in shell history)",
    )
    .option("-q, --quiet", "no progress output")
    .option("-v, --verbose", "more detail on stderr")
    .showHelpAfterError("(run with --help for usage)")
    // Commander echoes what was typed: it is made printable like everything else we print.
    .configureOutput({ writeErr: (text) => process.stderr.write(printable(text)) })
    .exitOverride();

  const run = actionRunner((code) => {
    exitCode = code;
  });
  registerCommands(program, run);
  reportUnknownOptionsFirst(program);

  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version exit through here with code 0.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    throw error;
  }
  return exitCode;
}

/**
 * Commander checks required options before unknown ones, so `run --bogus` would complain about
 * a missing --image rather than name --bogus. Each required option is checked in a preAction
 * hook instead, which runs after the unknown-option check; the message and code stay commander's.
 */
function reportUnknownOptionsFirst(command: Command): void {
  const required = command.options.filter((option) => option.mandatory);
  for (const option of required) option.makeOptionMandatory(false);
  if (required.length > 0) {
    command.hook("preAction", (self) => {
      for (const option of required) {
        if (self.getOptionValue(option.attributeName()) === undefined) {
          self.error(`error: required option '${option.flags}' not specified`, {
            code: "commander.missingMandatoryOptionValue",
          });
        }
      }
    });
  }
  for (const sub of command.commands) reportUnknownOptionsFirst(sub);
}
