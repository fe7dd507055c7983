// What the sandbox's request handling shares: the server-wide state (jobs, faults, log) and
// what one exchange tells the log. Its own module so the router and the job endpoints read
// the same state without importing each other.

import type { AppliedFault, FaultPlan } from "./faults.js";
import type { ImageFetchLimits } from "./fetch-image.js";
import type { RequestLog } from "./log.js";
import type { Job, Scheduler } from "./queue.js";

export interface ServerState {
  plan: FaultPlan;
  log: RequestLog;
  scheduler: Scheduler;
  jobs: Map<string, Job>;
  /** The only token accepted, when set; otherwise any non-empty token (jobs are per token). */
  token: string | undefined;
  seed: number;
  imageLimits: ImageFetchLimits;
  /** Finished jobs (and their outputs) are forgotten this long after finishing. */
  retentionMs: number;
  /** Base URL used when a request carries no Host header. */
  fallbackBase: () => string;
}

/** What the log learns about one exchange while it is handled. */
export interface Exchange {
  route: string;
  tokenPresent: boolean;
  tokenValid: boolean | undefined;
  fault: AppliedFault | undefined;
  requestId: string | undefined;
  status: number | undefined;
}

/** A job, unless unknown or past retention (then it is dropped for good). */
export function liveJob(state: ServerState, requestId: string): Job | undefined {
  const job = state.jobs.get(requestId);
  if (!job) return undefined;
  if (job.finishedAt && Date.now() - job.finishedAt.getTime() > state.retentionMs) {
    state.jobs.delete(requestId);
    return undefined;
  }
  return job;
}
