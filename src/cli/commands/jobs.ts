// `jobs`: what the journal knows. `jobs` (or `jobs list`) lists, `jobs show <id>` details one.

import type { Command } from "commander";
import type { JobRecord as JournalRecord } from "../../store/index.js";
import { JOURNAL_STATES, type JournalState } from "../../store/states.js";
import { requestIdArgument } from "../arguments.js";
import { journalPathFor } from "../context.js";
import { CliError, EXIT, exitCodesHelp } from "../exit-codes.js";
import { type Io, printable } from "../io.js";
import type { ActionRunner } from "../main.js";

/**
 * The journal, when there is one. Opening it takes in the request ids that had to be kept in its
 * recovery folder (accepted submits it could not record at the time): say which.
 */
async function openJournal(path: string, io: Io) {
  const { existsSync } = await import("node:fs");
  const { openJobStore, recoveryDirFor } = await import("../../store/index.js");
  if (!existsSync(path) && !existsSync(recoveryDirFor(path))) return undefined;
  const journal = await openJobStore(path);
  for (const r of journal.lastRecovery?.replayed ?? []) {
    io.info(
      `recovered request ${r.requestId} into the journal (local id ${r.localId}): the service had accepted it ` +
        `at ${r.at} while the journal could not be written`,
    );
  }
  return journal;
}

function row(record: JournalRecord): Record<string, unknown> {
  return {
    localId: record.localId,
    requestId: record.requestId ?? null,
    state: record.state,
    frames: record.frames ?? null,
    prompt: record.prompt ?? null,
    createdAt: record.createdAt,
    finishedAt: record.finishedAt ?? null,
    cost: record.cost ?? null,
    batchId: record.batchId ?? null,
  };
}

function printTable(io: Io, records: JournalRecord[]): void {
  if (records.length === 0) {
    io.out("no jobs in the journal");
    return;
  }
  io.out(["LOCAL", "REQUEST ID".padEnd(36), "STATE".padEnd(18), "CREATED".padEnd(20), "PROMPT"].join("  "));
  for (const r of records) {
    const prompt = (r.prompt ?? "").replace(/\s+/g, " ");
    io.out(
      [
        String(r.localId).padStart(5),
        (r.requestId ?? "-").padEnd(36),
        r.state.padEnd(18),
        r.createdAt.slice(0, 19).replace("T", " ").padEnd(20),
        prompt.length > 40 ? `${prompt.slice(0, 39)}…` : prompt,
      ].join("  "),
    );
  }
}

export function registerJobs(program: Command, run: ActionRunner): void {
  const jobs = program
    .command("jobs")
    .description("list and inspect the jobs in the local journal")
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  dreamina jobs\n" +
        "  dreamina jobs --state submission_unknown\n" +
        "  dreamina jobs show 3f9c2a7e-... --json\n" +
        exitCodesHelp("jobs"),
    );

  jobs
    .command("list", { isDefault: true })
    .description("list jobs, newest first")
    .option("--state <state>", `only this state (${JOURNAL_STATES.join(", ")})`)
    .option("--batch <id>", "only the jobs of this batch")
    .option("--limit <n>", "at most this many", "50")
    .action((flags: { state?: string; batch?: string; limit: string }, command: Command) =>
      run(command, async (io, globals) => {
        if (flags.state !== undefined && !JOURNAL_STATES.includes(flags.state as JournalState)) {
          throw new CliError(
            `--state must be one of ${JOURNAL_STATES.join(", ")} (got ${flags.state})`,
            EXIT.usage,
          );
        }
        const limit = Number(flags.limit);
        if (!Number.isInteger(limit) || limit <= 0) {
          throw new CliError(`--limit must be a positive integer (got ${flags.limit})`, EXIT.usage);
        }
        const journal = await openJournal(journalPathFor(globals), io);
        try {
          const records =
            (await journal?.list({
              limit,
              state: flags.state as JournalState | undefined,
              batchId: flags.batch,
            })) ?? [];
          if (io.json) io.result({ ok: true, jobs: records.map(row) });
          else printTable(io, records);
          return EXIT.ok;
        } finally {
          await journal?.close();
        }
      }),
    );

  jobs
    .command("show")
    .description("everything the journal knows about one job")
    .argument("<id>", "a request id, or the local id from `dreamina jobs`", requestIdArgument)
    .action((id: string, _flags, command: Command) =>
      run(command, async (io, globals) => {
        const journal = await openJournal(journalPathFor(globals), io);
        try {
          const key = /^\d+$/.test(id) ? Number(id) : id;
          const record = await journal?.get(key);
          if (!record) throw new CliError(`no job ${id} in the journal`, EXIT.dataError);
          if (io.json) {
            io.result({ ok: true, job: record });
            return EXIT.ok;
          }
          io.out(`request id   ${record.requestId ?? "(none: the submit's outcome is not known)"}`);
          io.out(`state        ${record.state}`);
          io.out(`model        ${record.modelId}`);
          io.out(`service      ${record.baseUrl}`);
          // One line whatever the prompt holds: a newline in it must not forge a line of this listing.
          io.out(`prompt       ${printable(record.prompt ?? "", { inline: true })}`);
          io.out(`frames/seed  ${record.frames ?? "?"} / ${record.seed ?? "?"}`);
          io.out(`created      ${record.createdAt}`);
          if (record.finishedAt) io.out(`finished     ${record.finishedAt}`);
          if (record.cost !== undefined) io.out(`cost         $${record.cost}`);
          for (const t of record.transitions) {
            const pos = t.queuePosition !== undefined ? ` (queue position ${t.queuePosition})` : "";
            io.out(`  ${t.at}  ${t.status}${pos}`);
          }
          for (const url of record.outputUrls) io.out(`output       ${url}`);
          for (const f of record.files)
            io.out(`file         ${f.path}  ${f.bytes ?? "?"} bytes  sha256 ${f.sha256 ?? "?"}`);
          if (record.jobError !== undefined && record.jobError !== null) {
            io.out(`job error    ${JSON.stringify(record.jobError)}`);
          }
          if (record.lastError !== undefined && record.lastError !== null) {
            io.out(`last error   ${JSON.stringify(record.lastError)}`);
          }
          if (record.state === "submission_unknown") {
            io.out("");
            io.out(
              "The submit may have been accepted and billed. It was not sent again. Check your RunComfy",
            );
            io.out("dashboard before submitting the same input once more.");
          }
          return EXIT.ok;
        } finally {
          await journal?.close();
        }
      }),
    );
}
