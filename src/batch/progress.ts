// What a person watching a batch sees on stderr: on a terminal, one live line drawn by
// cli-progress (queued, running, done, failed, throughput, ETA, spend so far); elsewhere
// (a log file, CI) a plain line every few seconds. Nothing at all with --json or -q.

import type { BatchCounts } from "./batch-types.js";

export interface ProgressOptions {
  stream?: NodeJS.WriteStream | undefined;
  /** Draw a redrawn bar (a terminal). Otherwise plain lines. */
  live: boolean;
  /** Print nothing. */
  silent?: boolean | undefined;
  /** Plain-line period, ms. Default 5 s. */
  intervalMs?: number | undefined;
}

interface BarLike {
  start(total: number, value: number, payload?: object): void;
  update(value: number, payload?: object): void;
  setTotal(total: number): void;
  stop(): void;
}

export function formatUsd(usd: number): string {
  return `$${usd.toFixed(usd >= 100 ? 0 : 2)}`;
}

export function formatDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) return "--";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

/** Rows per minute finished in this run, and the time left at that pace. */
export function pace(
  counts: BatchCounts,
  nowMs = Date.now(),
): { perMinute: number; etaMs: number | undefined } {
  const elapsed = nowMs - counts.startedAtMs;
  const finished = counts.finishedThisRun;
  const perMinute = elapsed > 0 ? (finished * 60_000) / elapsed : 0;
  const left = counts.pending + counts.queued + counts.running + counts.downloading;
  const etaMs = finished > 0 && elapsed > 0 ? (left * elapsed) / finished : undefined;
  return { perMinute, etaMs };
}

export function plainLine(counts: BatchCounts, nowMs = Date.now()): string {
  const { perMinute, etaMs } = pace(counts, nowMs);
  const settled = counts.done + counts.failed;
  return (
    `batch: ${settled}/${counts.total} settled | ${counts.pending} waiting, ${counts.queued} queued, ` +
    `${counts.running} running, ${counts.downloading} downloading | ${counts.done} done, ${counts.failed} failed` +
    (counts.unknown ? `, ${counts.unknown} unknown` : "") +
    ` | ${perMinute.toFixed(1)}/min | ETA ${formatDuration(etaMs)} | spent ${formatUsd(counts.spentUsd)}`
  );
}

export class BatchProgress {
  readonly #options: ProgressOptions;
  readonly #stream: NodeJS.WriteStream;
  #bar: BarLike | undefined;
  #timer: NodeJS.Timeout | undefined;
  #last: BatchCounts | undefined;
  #started = false;

  constructor(options: ProgressOptions) {
    this.#options = options;
    this.#stream = options.stream ?? process.stderr;
  }

  /** Starts drawing; `read` is polled for fresh counts. */
  async start(read: () => BatchCounts): Promise<void> {
    if (this.#options.silent || this.#started) return;
    this.#started = true;
    if (this.#options.live) {
      const { default: cliProgress } = await import("cli-progress");
      const bar = new cliProgress.SingleBar(
        {
          stream: this.#stream,
          format:
            "{bar} {settled}/{total} | queued {queued} running {running} | done {done} failed {failed}{unknown}" +
            " | {rate}/min | ETA {etaText} | {spent}",
          barsize: 20,
          hideCursor: true,
          clearOnComplete: false,
          fps: 5,
          etaBuffer: 50,
          noTTYOutput: false,
        },
        cliProgress.Presets.shades_classic,
      );
      this.#bar = bar;
      const counts = read();
      bar.start(Math.max(1, counts.total), counts.done + counts.failed, this.#payload(counts));
      this.#timer = setInterval(() => this.#draw(read()), 250);
    } else {
      this.#timer = setInterval(() => {
        const counts = read();
        this.#stream.write(`${plainLine(counts)}\n`);
      }, this.#options.intervalMs ?? 5_000);
    }
    this.#timer.unref();
  }

  /** Prints a message without breaking the live line. */
  log(line: string): void {
    if (this.#options.silent) return;
    if (this.#bar) {
      // Clear the bar's line, print, and let the next tick redraw it.
      this.#stream.write(`\r\x1b[2K${line}\n`);
      if (this.#last) this.#draw(this.#last);
    } else {
      this.#stream.write(`${line}\n`);
    }
  }

  stop(final?: BatchCounts): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#bar) {
      if (final) this.#draw(final);
      this.#bar.stop();
      this.#bar = undefined;
    } else if (final && this.#started) {
      this.#stream.write(`${plainLine(final)}\n`);
    }
    this.#started = false;
  }

  #draw(counts: BatchCounts): void {
    this.#last = counts;
    if (!this.#bar) return;
    this.#bar.setTotal(Math.max(1, counts.total));
    this.#bar.update(counts.done + counts.failed, this.#payload(counts));
  }

  #payload(counts: BatchCounts): Record<string, string | number> {
    const { perMinute, etaMs } = pace(counts);
    return {
      settled: counts.done + counts.failed,
      queued: counts.pending + counts.queued,
      running: counts.running + counts.downloading,
      done: counts.done,
      failed: counts.failed,
      unknown: counts.unknown ? ` unknown ${counts.unknown}` : "",
      rate: perMinute.toFixed(1),
      etaText: formatDuration(etaMs),
      spent: formatUsd(counts.spentUsd),
    };
  }
}
