// Numbers and states in the page's words.

import type { JobView, PriceView } from "../shapes.js";

export function bytes(n: number | null): string {
  if (n === null) return "unknown";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(2)} MB`;
}

export function usd(n: number): string {
  return `US$${n.toFixed(n < 1 && n !== 0 ? 3 : 2).replace(/0$/, "")}`;
}

export function clock(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

export function when(iso: string | null): string {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function seconds(frames: number | null): string {
  if (frames === 241) return "≈10 s";
  if (frames === 121) return "≈5 s";
  return frames === null ? "?" : `${frames} frames`;
}

/** The model's price for a video of this many frames (the service's bill is what counts). */
export function estimate(price: PriceView, frames: number): number {
  const perSecond = /^(second|seconds|sec|secs|s|per_second|per second)$/i.test(price.priceUnit.trim());
  const amount = perSecond
    ? (price.basePriceUsd * Math.round(((frames - 1) / 24) * 10)) / 10
    : price.basePriceUsd;
  return Math.round(amount * 1e6) / 1e6;
}

export const STATE_LABEL: Record<string, string> = {
  submitting: "submitting",
  submission_unknown: "outcome unknown",
  rejected: "refused",
  submitted: "submitted",
  in_queue: "in queue",
  in_progress: "running",
  completed: "finishing",
  succeeded: "done",
  failed: "failed",
  cancelled: "cancelled",
  abandoned: "set aside",
};

export const ACTIVE = new Set(["submitting", "submitted", "in_queue", "in_progress", "completed"]);
export const CANCELLABLE = new Set(["submitted", "in_queue"]);

export function label(state: string): string {
  return STATE_LABEL[state] ?? state;
}

/** What a job is doing now, in one line. */
export function progressLine(job: JobView, now: number): string {
  if (job.state === "in_queue") {
    return job.queuePosition !== null ? `in queue, position ${job.queuePosition}` : "in queue";
  }
  if (job.state === "in_progress" || job.state === "completed") {
    const since = Date.parse(job.startedAt ?? job.submittedAt ?? job.createdAt);
    return `running ${clock(now - since)} of ≈${clock(job.expectedMs)}`;
  }
  if (job.state === "succeeded" && job.startedAt && job.finishedAt) {
    return `done in ${clock(Date.parse(job.finishedAt) - Date.parse(job.submittedAt ?? job.createdAt))}`;
  }
  return label(job.state);
}
