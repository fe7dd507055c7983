// `jobs`: what the job store knows. `jobs` (or `jobs list`) lists, `jobs show <id>` details one.

import type { Command } from "commander";
import type { JobRecord as JournalRecord } from "../../store/index.js";
import { JOURNAL_STATES, type JournalState } from "../../store/states.js";
import type { ActionRunner } from "../action.js";
import { requestIdArgument } from "../arguments.js";
import { CliError } from "../cli-error.js";
import { EXIT, exitCodesHelp } from "../exit-codes.js";
import type { CliStore, Factory } from "../factory.js";
import { type Io, printable } from "../io.js";

export type JobsOptions =
  | { action: "list"; state?: string | undefined; batch?: string | undefined; limit: string }
  | { action: "show"; id: string };

export async function runJobs(options: JobsOptions, ctx: Factory): Promise<number> {
  if (options.action === "list") return listJobs(options, ctx);
  return showJob(options.id, ctx);
}

/**
 * The store, when there is one. Opening it takes in the request ids that had to be kept in its
 * recovery folder (accepted submits it could not record at the time): say which.
 */
async function openStore(ctx: Factory): Promise<CliStore | undefined> {
  const store = await ctx.existingStore();
  for (const r of store?.lastRecovery?.replayed ?? []) {
    ctx.io.info(
      `recovered request ${r.requestId} into the journal (local id ${r.localId}): the service had accepted it ` +
        `at ${r.at} while the journal could not be written`,
    );
  }
  return store;
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
    // The process that sent it: on a shared store, which worker of which machine.
    host: record.host ?? null,
    pid: record.pid ?? null,
  };
}

/** `workers`: a shared store, where each job says which worker (host and pid) sent it. */
function printTable(io: Io, records: JournalRecord[], workers: boolean): void {
  if (records.length === 0) {
    io.out("no jobs in the journal");
    return;
  }
  const worker = (r: JournalRecord) => (r.host === undefined ? "-" : `${r.host}:${r.pid ?? "?"}`);
  const width = Math.min(32, Math.max(6, ...records.map((r) => worker(r).length)));
  io.out(
    [
      "LOCAL",
      "REQUEST ID".padEnd(36),
      "STATE".padEnd(18),
      "CREATED".padEnd(20),
      ...(workers ? ["WORKER".padEnd(width)] : []),
      "PROMPT",
    ].join("  "),
  );
  for (const r of records) {
    const prompt = (r.prompt ?? "").replace(/\s+/g, " ");
    const w = worker(r);
    io.out(
      [
        String(r.localId).padStart(5),
        (r.requestId ?? "-").padEnd(36),
        r.state.padEnd(18),
        r.createdAt.slice(0, 19).replace("T", " ").padEnd(20),
        ...(workers ? [(w.length > width ? `${w.slice(0, width - 1)}…` : w).padEnd(width)] : []),
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
    .action((flags: { state?: string; batch?: string; limit: string }, self: Command) =>
      run(self, (ctx) => runJobs({ action: "list", ...flags }, ctx)),
    );

  jobs
    .command("show")
    .description("everything the journal knows about one job")
    .argument("<id>", "a request id, or the local id from `dreamina jobs`", requestIdArgument)
    .action((id: string, _flags: unknown, self: Command) =>
      run(self, (ctx) => runJobs({ action: "show", id }, ctx)),
    );
}

async function listJobs(options: Extract<JobsOptions, { action: "list" }>, ctx: Factory): Promise<number> {
  const { io } = ctx;
  if (options.state !== undefined && !JOURNAL_STATES.includes(options.state as JournalState)) {
    throw new CliError("usage", `--state must be one of ${JOURNAL_STATES.join(", ")} (got ${options.state})`);
  }
  const limit = Number(options.limit);
  if (!Number.isInteger(limit) || limit <= 0) {
    throw new CliError("usage", `--limit must be a positive integer (got ${options.limit})`);
  }
  const store = await openStore(ctx);
  const records =
    (await store?.list({
      limit,
      state: options.state as JournalState | undefined,
      batchId: options.batch,
    })) ?? [];
  if (io.json) io.result({ ok: true, jobs: records.map(row) });
  else printTable(io, records, store?.kind === "postgres");
  return EXIT.ok;
}

async function showJob(id: string, ctx: Factory): Promise<number> {
  const { io } = ctx;
  const store = await openStore(ctx);
  const key = /^\d+$/.test(id) ? Number(id) : id;
  const record = await store?.get(key);
  if (!record) throw new CliError("bad_data", `no job ${id} in the journal`);
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
  if (record.host !== undefined) io.out(`sent by      ${record.host} pid ${record.pid ?? "?"}`);
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
    io.out("The submit may have been accepted and billed. It was not sent again. Check your RunComfy");
    io.out("dashboard before submitting the same input once more.");
  }
  return EXIT.ok;
}
