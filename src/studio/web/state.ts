// What every view shares: the live job list, the studio's settings, what the form is to be
// filled with, and the results picked for comparison.

import type { JobView, StudioConfigView, TotalsView } from "../shapes.js";

export const jobs = new Map<number, JobView>();
export let totals: TotalsView = { jobs: 0, costUsd: 0 };
export let config: StudioConfigView | undefined;

type Listener = (changed: JobView | undefined) => void;
const listeners = new Set<Listener>();

export function setConfig(value: StudioConfigView): void {
  config = value;
}

export function onJobs(listener: Listener): void {
  listeners.add(listener);
}

function notify(changed: JobView | undefined): void {
  for (const listener of listeners) listener(changed);
}

export function applySnapshot(list: JobView[], next: TotalsView): void {
  jobs.clear();
  for (const job of list) jobs.set(job.localId, job);
  totals = next;
  notify(undefined);
}

export function applyJob(job: JobView, next: TotalsView): void {
  jobs.set(job.localId, job);
  totals = next;
  notify(job);
}

export function newestFirst(): JobView[] {
  return [...jobs.values()].sort((a, b) => b.localId - a.localId);
}

export interface Prefill {
  image: { upload: string } | { url: string } | null;
  prompt: string;
  frames: number;
  seed: number | null;
}

let prefill: Prefill | undefined;
const prefillListeners = new Set<(p: Prefill) => void>();

export function requestPrefill(value: Prefill): void {
  prefill = value;
  for (const listener of prefillListeners) listener(value);
}

export function onPrefill(listener: (p: Prefill) => void): void {
  prefillListeners.add(listener);
  if (prefill) listener(prefill);
}

export function prefillFrom(job: JobView, keepSeed: boolean): Prefill {
  const image =
    job.input.kind === "upload"
      ? { upload: job.input.id }
      : job.input.kind === "url"
        ? { url: job.input.url }
        : null;
  return { image, prompt: job.prompt, frames: job.frames ?? 121, seed: keepSeed ? job.seed : null };
}

export const compare = new Set<number>();
export const MAX_COMPARE = 4;
const compareListeners = new Set<() => void>();

export function toggleCompare(localId: number, on: boolean): boolean {
  if (on && !compare.has(localId) && compare.size >= MAX_COMPARE) return false;
  if (on) compare.add(localId);
  else compare.delete(localId);
  for (const listener of compareListeners) listener();
  return true;
}

export function onCompare(listener: () => void): void {
  compareListeners.add(listener);
}

/** The small picture of a job's input, where the studio has it. */
export function thumbSource(job: JobView): string | undefined {
  if (job.input.kind === "upload") return `/media/images/${job.input.id}`;
  if (job.input.kind === "url") return job.input.url;
  return undefined;
}
