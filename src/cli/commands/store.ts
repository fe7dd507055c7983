// `dreamina store import <journal.db>`: moves an SQLite journal into the shared PostgreSQL store
// named by --store (or DREAMINA_STORE, DATABASE_URL). Running it again, or on a copy of the file,
// adds nothing: jobs are keyed by the journal's fingerprint and local id, and by request id.

import { existsSync } from "node:fs";
import type { Command } from "commander";
import type { ActionRunner } from "../action.js";
import { CliError } from "../cli-error.js";
import { EXIT, exitCodesHelp } from "../exit-codes.js";
import type { Factory } from "../factory.js";

/** One subcommand today: `import` (the SQLite journal to copy from). */
export interface StoreOptions {
  action: "import";
  journal: string;
}

export function registerStore(program: Command, run: ActionRunner): void {
  const store = program
    .command("store")
    .description("manage the job store (import an SQLite journal into a shared PostgreSQL store)")
    .addHelpText("after", ["", exitCodesHelp("store")].join("\n"));
  store
    .command("import <journal>")
    .description(
      "copy an SQLite journal into the PostgreSQL store of --store; running it twice changes nothing",
    )
    .addHelpText(
      "after",
      [
        "",
        "Example:",
        "  dreamina store import ~/.dreamina/journal.db --store postgres://me@db.internal/renders",
        exitCodesHelp("store"),
      ].join("\n"),
    )
    .action((journal: string, _flags: unknown, self: Command) =>
      run(self, (ctx) => runStore({ action: "import", journal }, ctx)),
    );
}

export async function runStore(options: StoreOptions, ctx: Factory): Promise<number> {
  const { io } = ctx;
  const spec = ctx.checkStore();
  if (spec.kind !== "postgres") {
    throw new CliError(
      "usage",
      "store import: the target must be a PostgreSQL store: give --store postgres://… (or DREAMINA_STORE, DATABASE_URL)",
    );
  }
  if (!existsSync(options.journal)) {
    throw new CliError("input_unreadable", `store import: no journal at ${options.journal}`);
  }
  const [{ importSqliteJournal }, { PostgresJobStore }, target] = await Promise.all([
    import("../../store/import.js"),
    import("../../store/postgres/index.js"),
    ctx.store(),
  ]);
  if (!(target instanceof PostgresJobStore)) throw new Error("the PostgreSQL store did not open as one");
  const report = await importSqliteJournal(options.journal, target);
  if (io.json) {
    io.stdout.write(`${JSON.stringify({ ...report, into: target.location })}\n`);
  } else {
    io.out(
      `imported ${report.jobs.imported} jobs (${report.jobs.skipped} already there), ` +
        `${report.batches.imported} batches, ${report.batchRows.imported} batch rows into ${target.location}`,
    );
  }
  return EXIT.ok;
}
