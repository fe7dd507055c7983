// A full disk under --out. The first write that fails for want of space stops the batch from
// submitting (a video paid for now would have nowhere to go); jobs already in flight are
// followed to the end (their results are journaled), their downloads wait for the next run,
// and the run still ends with its summary, its reports when they fit, and one clear message.
// Nothing partial is left behind: a `.part` is deleted (the next run fetches that video again
// from the start; keeping it would hold on to the very space that ran out).

import { rm } from "node:fs/promises";

/** Error codes that mean "no space here": the disk is full, or the user's quota is (SQLite's too). */
const NO_SPACE_CODES: ReadonlySet<string> = new Set(["ENOSPC", "EDQUOT", "SQLITE_FULL"]);

export function isDiskFull(error: unknown): boolean {
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && NO_SPACE_CODES.has(code)) return true;
  }
  return false;
}

/** Removes what a failed download leaves beside its destination. */
export async function removePartial(dest: string): Promise<void> {
  await Promise.all([rm(`${dest}.part`, { force: true }), rm(`${dest}.part.json`, { force: true })]);
}

/** Why a row waits for the next run, as its report row says it. */
export function diskFullRowError(row: { submitted: boolean; finished: boolean }) {
  const message = row.finished
    ? "the job succeeded (paid for) but its video could not be saved: the disk is full; " +
      "free space and run the same command again to download it"
    : row.submitted
      ? "the job was submitted (paid for) and is left to finish on the service: the disk is full; " +
        "free space and run the same command again to pick it up"
      : "not submitted: the disk is full";
  return { name: "DiskFullError", message, code: "ENOSPC" };
}

export interface DiskFullCounts {
  /** The file whose write failed first. */
  path: string;
  done: number;
  valid: number;
  /** Jobs that ran (and were paid for) whose videos were not saved. */
  waiting: number;
  /** Rows never submitted because of it. */
  notSubmitted: number;
}

/** The one message a person reads at the end of a run that filled the disk. */
export function diskFullMessage(c: DiskFullCounts): string {
  const parts = [`${c.done} of ${c.valid} row(s) done`];
  if (c.waiting > 0) parts.push(`${c.waiting} video(s) paid for and waiting to be downloaded`);
  if (c.notSubmitted > 0) parts.push(`${c.notSubmitted} row(s) not submitted`);
  return (
    `the disk is full (writing ${c.path}): ${parts.join(", ")}. Free space and run the same command again: ` +
    "finished rows are kept, paid videos are downloaded, nothing is submitted twice"
  );
}
