// What a person sees while one job runs. On a terminal: a live line (state, queue position,
// elapsed, expected remaining), then a download bar, drawn by cli-progress. Elsewhere: one
// plain line per state change. With -q or --json: nothing (results go to stdout at the end),
// except that polls failing (the service unreachable) are always said on stderr, unless -q.

import type { SingleBar } from "cli-progress";
import type { DownloadProgress } from "../download/download.js";
import type { JobUpdate, PollErrorInfo } from "../run/wait.js";
import { type Io, printable } from "./io.js";

/** While polls keep failing: the first failure is said at once, then one line this often. */
export const POLL_ERROR_REPORT_EVERY_MS = 15_000;

function seconds(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return "?";
  const s = Math.max(0, Math.round(ms / 1000));
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

/** One line about the job; the raw status is the service's text, so it is made printable here. */
function describe(update: JobUpdate): string {
  const state = printable(update.status === "unknown" ? update.rawStatus : update.status, { inline: true });
  const parts = [state];
  if (update.queuePosition !== undefined) {
    parts.push(update.queuePosition === 0 ? "next in queue" : `queue position ${update.queuePosition}`);
  }
  parts.push(`${seconds(update.elapsedMs)} elapsed`);
  if (update.expectedRemainingMs !== undefined && update.expectedRemainingMs > 0) {
    parts.push(`~${seconds(update.expectedRemainingMs)} left`);
  }
  return parts.join(" · ");
}

export class JobProgress {
  readonly #io: Io;
  #bar: SingleBar | undefined;
  #barKind: "wait" | "download" | undefined;
  #lastLine = "";
  #lastState = "";
  #cliProgress: typeof import("cli-progress") | undefined;
  #timer: NodeJS.Timeout | undefined;
  #latest: JobUpdate | undefined;
  #latestAt = 0;
  #barStartedAt = 0;
  /** The current spell of failing polls: how many, and when it was last reported. */
  #failing: { count: number; reportedAt: number } | undefined;

  private constructor(io: Io, cliProgress: typeof import("cli-progress") | undefined) {
    this.#io = io;
    this.#cliProgress = cliProgress;
  }

  static async create(io: Io): Promise<JobProgress> {
    const enabled = io.live && !io.json;
    return new JobProgress(io, enabled ? (await import("cli-progress")).default : undefined);
  }

  /** A fixed note (submitted, warnings...), printed above any live line. */
  note(line: string): void {
    if (this.#io.json) return;
    this.#closeBar(true);
    this.#io.info(line);
  }

  /**
   * A poll failed and polling goes on: said at once the first time, then every
   * POLL_ERROR_REPORT_EVERY_MS with the count and the last error, so a wait never goes silent.
   */
  pollError(error: Error, consecutiveErrors: number, info: PollErrorInfo): void {
    if (this.#io.quiet) return;
    const now = Date.now();
    const first = this.#failing === undefined;
    const failing = this.#failing ?? { count: 0, reportedAt: 0 };
    this.#failing = failing;
    failing.count = consecutiveErrors;
    if (!first && now - failing.reportedAt < POLL_ERROR_REPORT_EVERY_MS) return;
    failing.reportedAt = now;
    const giveUp =
      info.giveUpInMs === undefined ? "" : `; giving up in ${seconds(info.giveUpInMs)} (--give-up-after)`;
    this.#closeBar(true);
    this.#io.warn(
      first
        ? `cannot get the job's status: ${error.message}; retrying${giveUp}`
        : `still failing: ${consecutiveErrors} polls in a row over ${seconds(info.failingForMs)}; ` +
            `the last: ${error.message}${giveUp}`,
    );
  }

  update(update: JobUpdate): void {
    if (this.#failing !== undefined) {
      const count = this.#failing.count;
      this.#failing = undefined;
      if (!this.#io.quiet) {
        this.#closeBar(true);
        this.#io.info(`the service answers again (after ${count} failed poll${count === 1 ? "" : "s"})`);
      }
    }
    if (this.#io.json || this.#io.quiet) return;
    this.#latest = update;
    this.#latestAt = Date.now();
    if (this.#cliProgress) {
      this.#ensureBar("wait");
      this.#bar?.update(0, { line: describe(update) });
      // Keep the elapsed time ticking between polls.
      this.#timer ??= setInterval(() => this.#tick(), 1000).unref();
      return;
    }
    const state = update.status === "unknown" ? update.rawStatus : update.status;
    const key = `${state}:${update.queuePosition ?? ""}`;
    if (key !== this.#lastState) {
      this.#lastState = key;
      const line = `${update.requestId}  ${describe(update)}`;
      if (line !== this.#lastLine) this.#io.info(line);
      this.#lastLine = line;
    }
  }

  download(progress: DownloadProgress): void {
    if (this.#io.json || this.#io.quiet) return;
    if (this.#cliProgress) {
      this.#stopTimer();
      this.#ensureBar("download", progress.total ?? 0);
      if (progress.total !== undefined) this.#bar?.setTotal(progress.total);
      const elapsed = Math.max(0.001, (Date.now() - this.#barStartedAt) / 1000);
      this.#bar?.update(progress.received, {
        value_mb: (progress.received / 1e6).toFixed(1),
        total_mb: progress.total === undefined ? "?" : (progress.total / 1e6).toFixed(1),
        speed: `${(progress.received / 1e6 / elapsed).toFixed(1)} MB/s`,
      });
      return;
    }
    if (progress.total !== undefined && progress.received === progress.total) {
      this.#io.info(`downloaded ${(progress.total / 1e6).toFixed(2)} MB`);
    }
  }

  stop(): void {
    this.#stopTimer();
    this.#closeBar(true);
  }

  /**
   * Ends the live bar. The wait line is cleared and, unless a download bar replaces it (the
   * final line says the same), printed once more as a plain line so the last state stays visible.
   */
  #closeBar(keepWaitLine: boolean): void {
    const bar = this.#bar;
    if (!bar) return;
    const kind = this.#barKind;
    this.#bar = undefined;
    this.#barKind = undefined;
    bar.stop();
    if (kind === "wait" && keepWaitLine && this.#latest) this.#io.info(describe(this.#shifted()));
  }

  #shifted(): JobUpdate {
    const latest = this.#latest as JobUpdate;
    if (latest.result) return latest;
    const drift = Date.now() - this.#latestAt;
    return {
      ...latest,
      elapsedMs: latest.elapsedMs + drift,
      expectedRemainingMs:
        latest.expectedRemainingMs === undefined ? undefined : latest.expectedRemainingMs - drift,
    };
  }

  #tick(): void {
    if (!this.#latest || this.#barKind !== "wait") return;
    this.#bar?.update(0, { line: describe(this.#shifted()) });
  }

  #stopTimer(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #ensureBar(kind: "wait" | "download", total = 0): void {
    const lib = this.#cliProgress;
    if (!lib || this.#barKind === kind) return;
    this.#closeBar(false);
    const format =
      kind === "wait" ? "{line}" : "downloading [{bar}] {percentage}% · {value_mb}/{total_mb} MB · {speed}";
    this.#bar = new lib.SingleBar(
      {
        format,
        stream: this.#io.stderr,
        hideCursor: true,
        clearOnComplete: kind === "wait",
        barsize: 30,
      },
      lib.Presets.shades_classic,
    );
    this.#bar.start(total, 0, { line: "", value_mb: "0.0", total_mb: "?", speed: "" });
    this.#barStartedAt = Date.now();
    this.#barKind = kind;
  }
}
