// The money side of a batch: before each submit, the row's estimated cost is added to what
// is already committed (actual costs of finished rows, estimates of rows still running); if
// that would go over the budget, nothing more is submitted. Rows already in flight finish.
// When a row settles, its estimate is replaced by the actual cost (result with
// include_cost=true), or kept when the service did not say.

export interface BudgetSnapshot {
  limitUsd: number | undefined;
  /** Actual costs of settled rows (estimates where the service gave no cost). */
  spentUsd: number;
  /** Estimates of rows submitted and not yet settled. */
  pendingUsd: number;
  /** spent + pending. */
  committedUsd: number;
  /** Whether the budget has stopped submissions. */
  stopped: boolean;
  /** Settled rows whose actual cost the service reported. */
  actualCount: number;
  /** Settled rows whose cost is only an estimate. */
  estimatedCount: number;
}

export class Budget {
  readonly limitUsd: number | undefined;
  #spent = 0;
  #pending = new Map<string, number>();
  #stopped = false;
  #actualCount = 0;
  #estimatedCount = 0;

  constructor(limitUsd?: number) {
    if (limitUsd !== undefined && (!Number.isFinite(limitUsd) || limitUsd < 0)) {
      throw new RangeError(`budget must be a non-negative number of US dollars (got ${limitUsd})`);
    }
    this.limitUsd = limitUsd;
  }

  get committedUsd(): number {
    let pending = 0;
    for (const v of this.#pending.values()) pending += v;
    return roundUsd(this.#spent + pending);
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Whether a row costing `estimateUsd` still fits (without reserving it). */
  fits(estimateUsd: number): boolean {
    if (this.limitUsd === undefined) return true;
    return this.committedUsd + estimateUsd <= this.limitUsd + 1e-9;
  }

  /**
   * Reserves `estimateUsd` for the row before its submit. Returns false (and stops the budget
   * for good: later, cheaper rows are not squeezed in out of manifest order) when it does not fit.
   */
  reserve(key: string, estimateUsd: number): boolean {
    if (this.#stopped) return false;
    if (!this.fits(estimateUsd)) {
      this.#stopped = true;
      return false;
    }
    this.#pending.set(key, estimateUsd);
    return true;
  }

  /** A row that is already running (re-attached on resume) counts with its estimate. */
  track(key: string, estimateUsd: number): void {
    this.#pending.set(key, estimateUsd);
  }

  /** The row finished (or failed after running): its actual cost replaces the estimate. */
  settle(key: string, actualUsd: number | undefined): void {
    const estimate = this.#pending.get(key) ?? 0;
    this.#pending.delete(key);
    if (actualUsd !== undefined && Number.isFinite(actualUsd)) {
      this.#spent += actualUsd;
      this.#actualCount++;
    } else {
      this.#spent += estimate;
      if (estimate > 0) this.#estimatedCount++;
    }
  }

  /** The submit was definitely refused: nothing was billed. */
  release(key: string): void {
    this.#pending.delete(key);
  }

  /** Money spent by earlier runs of the same batch (rows already done). */
  addSpent(usd: number, actual: boolean): void {
    this.#spent += usd;
    if (actual) this.#actualCount++;
    else this.#estimatedCount++;
  }

  snapshot(): BudgetSnapshot {
    const committed = this.committedUsd;
    return {
      limitUsd: this.limitUsd,
      spentUsd: roundUsd(this.#spent),
      pendingUsd: roundUsd(committed - this.#spent),
      committedUsd: committed,
      stopped: this.#stopped,
      actualCount: this.#actualCount,
      estimatedCount: this.#estimatedCount,
    };
  }
}

/** US dollars to the micro-dollar (no float noise in reports and summaries). */
export function roundUsd(usd: number): number {
  return Math.round(usd * 1e6) / 1e6;
}
