// Where an accepted request id goes when the shared store cannot take it (the server went away
// between the POST and its answer): a file on this machine, fsynced, one per id, in the same form
// as the SQLite journal's recovery files. The store takes it in at its next write or open.

import { createHash } from "node:crypto";
import { join } from "node:path";
import { dreaminaHome } from "../../config/paths.js";
import { UnrecordedSubmitError } from "../errors.js";
import {
  hasRecoveredSubmits,
  type RecoveredSubmit,
  readRecoveredSubmits,
  removeRecoveredFiles,
  writeRecoveredSubmit,
} from "../recovery.js";
import type { RecoveryReport, SubmitAcceptedParams } from "../types.js";
import { redactText } from "./codec.js";

/** `<home>/store-recovered/<digest of the location>`: one folder per shared store. */
export function defaultRecoveryDir(location: string): string {
  const digest = createHash("sha256").update(location).digest("hex").slice(0, 16);
  return join(dreaminaHome(), "store-recovered", digest);
}

type Apply = (entry: RecoveredSubmit) => Promise<"applied" | "already" | "unmatched">;

export class RecoveryFolder {
  /** Ids were kept here by this process (or found at open): the next write takes them in. */
  pending: boolean;

  constructor(
    readonly dir: string,
    readonly location: string,
    readonly warn: (message: string) => void,
  ) {
    this.pending = hasRecoveredSubmits(dir);
  }

  keep(localId: number, accepted: SubmitAcceptedParams, error: unknown, now: number): void {
    const reason = redactText(error instanceof Error ? error.message : String(error));
    const billed = `the service accepted request ${accepted.requestId} (it runs and is billed)`;
    const entry: RecoveredSubmit = {
      kind: "submit_accepted",
      journal: this.location,
      localId,
      requestId: accepted.requestId,
      statusUrl: accepted.statusUrl === undefined ? undefined : redactText(accepted.statusUrl),
      resultUrl: accepted.resultUrl === undefined ? undefined : redactText(accepted.resultUrl),
      cancelUrl: accepted.cancelUrl === undefined ? undefined : redactText(accepted.cancelUrl),
      at: new Date(now).toISOString(),
      pid: process.pid,
      host: "",
      error: reason,
    };
    try {
      const file = writeRecoveredSubmit(this.dir, entry);
      this.pending = true;
      this.warn(
        `${billed}, but the job store ${this.location} could not record it (${reason}). The id is kept in ` +
          `${file} and goes into the store the next time it can be written.`,
      );
    } catch (fileError) {
      const message =
        `${billed}, but it could not be recorded: the job store ${this.location} failed (${reason}) and so did ` +
        `the recovery folder ${this.dir} (${fileError instanceof Error ? fileError.message : String(fileError)}). ` +
        `Note the id ${accepted.requestId}: \`dreamina wait ${accepted.requestId}\` fetches the video.`;
      this.warn(message);
      throw new UnrecordedSubmitError(message, accepted.requestId, { cause: error });
    }
  }

  /** Applies every readable entry; removes each file once its id is committed. */
  async replay(apply: Apply): Promise<RecoveryReport> {
    const { entries, unreadable } = readRecoveredSubmits(this.dir);
    const report: RecoveryReport = { replayed: [], unmatched: [], unreadable };
    const done: string[] = [];
    try {
      for (const { file, entry } of entries) {
        if (entry.journal !== this.location) continue;
        const outcome = await apply(entry);
        if (outcome === "unmatched") {
          report.unmatched.push({ ...entry, file });
          this.warn(
            `request ${entry.requestId} (accepted ${entry.at}) is kept in ${file} but matches no job awaiting ` +
              `it (local id ${entry.localId}); it was not lost: \`dreamina wait ${entry.requestId}\` fetches it.`,
          );
        } else {
          done.push(file);
          if (outcome === "applied") report.replayed.push(entry);
        }
      }
      this.pending = false;
      return report;
    } finally {
      removeRecoveredFiles(done);
    }
  }
}
