// The live state every page sees: the journal read again at a short interval (jobs started by
// the CLI or a batch in another process appear too), and at once whenever this studio learns
// something itself. Only rows that changed are read in full and sent.

import type { JobStore as Journal } from "../store/index.js";
import type { JobView, LiveEvent, TotalsView } from "./shapes.js";
import { jobView, processGone, type ViewContext } from "./views.js";

/** Rows followed live; older ones are in the history (read on demand). */
const LIVE_ROWS = 1000;

type Listener = (event: LiveEvent) => void;

export class LiveJobs {
  readonly #journal: Journal;
  readonly #ctx: ViewContext;
  readonly #intervalMs: number;
  readonly #views = new Map<number, JobView>();
  readonly #stamps = new Map<number, string>();
  readonly #listeners = new Set<Listener>();
  #totals: TotalsView = { jobs: 0, costUsd: 0 };
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #onError: (error: unknown) => void;

  constructor(journal: Journal, ctx: ViewContext, intervalMs: number, onError: (error: unknown) => void) {
    this.#journal = journal;
    this.#ctx = ctx;
    this.#intervalMs = intervalMs;
    this.#onError = onError;
  }

  async start(): Promise<void> {
    await this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#listeners.clear();
  }

  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  snapshot(): LiveEvent {
    const jobs = [...this.#views.values()].sort((a, b) => b.localId - a.localId);
    return { type: "snapshot", jobs, totals: this.#totals };
  }

  totals(): TotalsView {
    return this.#totals;
  }

  /** Reads the journal now (one read at a time; a call during a read makes one more after it). */
  refresh(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      try {
        do {
          this.#again = false;
          await this.#read();
        } while (this.#again);
      } catch (error) {
        this.#onError(error);
      } finally {
        this.#running = undefined;
      }
    })();
    return this.#running;
  }

  async #read(): Promise<void> {
    const records = await this.#journal.list({ limit: LIVE_ROWS });
    const changed: JobView[] = [];
    let cost = 0;
    for (const record of records) {
      cost += record.cost ?? 0;
      // What can change without the row changing: who follows it, and whether its process is gone.
      const inFlight = ["submitted", "in_queue", "in_progress", "completed"].includes(record.state);
      const gone = inFlight && processGone(record.pid, record.host);
      const stamp = `${record.updatedAt}|${record.state}|${this.#ctx.ownedHere(record.requestId)}|${gone}`;
      if (this.#stamps.get(record.localId) === stamp) continue;
      const detail = await this.#journal.get(record.localId);
      if (!detail) continue;
      const view = jobView(detail, this.#ctx);
      this.#stamps.set(record.localId, stamp);
      this.#views.set(record.localId, view);
      changed.push(view);
    }
    this.#totals = { jobs: records.length, costUsd: Math.round(cost * 1e6) / 1e6 };
    for (const job of changed.reverse()) this.#emit({ type: "job", job, totals: this.#totals });
  }

  #emit(event: LiveEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        this.#onError(error);
      }
    }
  }
}
