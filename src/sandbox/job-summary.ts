// What the sandbox tells about a job outside the API (Sandbox.jobs() and GET /__sandbox/jobs):
// its seed, state, timings and output digest, so tests can check bytes against the job.
// Never the token.

import type { Job, JobState } from "./queue.js";

/** Where a job's video is served on the sandbox's CDN. */
export function outputPath(job: Job): string {
  return `/cdn/${job.id}/dreamina-${job.frames}f-${job.seed}.mp4`;
}

export interface JobSummary {
  id: string;
  state: JobState;
  modelId: string;
  frames: number;
  seed: number;
  requestedSeed: number;
  submitCount: number;
  inputSha256: string;
  imageSha256: string;
  createdAt: string;
  startedAt: string | undefined;
  finishedAt: string | undefined;
  runMs: number;
  fault: "fail" | undefined;
  error: string | undefined;
  output:
    | {
        path: string;
        file: string;
        sha256: string;
        size: number;
        width: number;
        height: number;
        cached: boolean;
      }
    | undefined;
}

export function jobSummary(job: Job): JobSummary {
  return {
    id: job.id,
    state: job.state,
    modelId: job.modelId,
    frames: job.frames,
    seed: job.seed,
    requestedSeed: job.requestedSeed,
    submitCount: job.submitCount,
    inputSha256: job.inputSha256,
    imageSha256: job.imageSha256,
    createdAt: job.createdAt.toISOString(),
    startedAt: job.startedAt?.toISOString(),
    finishedAt: job.finishedAt?.toISOString(),
    runMs: Math.round(job.runMs),
    fault: job.failByFault ? "fail" : undefined,
    error: job.error,
    output: job.video
      ? {
          path: outputPath(job),
          file: job.video.path,
          sha256: job.video.sha256,
          size: job.video.size,
          width: job.video.width,
          height: job.video.height,
          cached: job.video.cached,
        }
      : undefined,
  };
}
