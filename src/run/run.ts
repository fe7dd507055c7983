// One job end to end: check the input locally, submit it, wait for it, return the result.
// The hooks are where the Node layer's journal plugs in (an intent row before the POST, the
// request id after it, every status, the result), so a crash at any point leaves a trace.

import type { RunComfyClient } from "../api/client.js";
import { abortErrorFrom } from "../api/sleep.js";
import type { CallOptions } from "../api/transport.js";
import type { JobResult, SubmitResult } from "../api/types.js";
import type { ImageFacts } from "../model/image-facts.js";
import { MODEL_ID } from "../model/input.js";
import { validate } from "../model/validate.js";
import type { ValidationReport } from "../model/violation.js";
import { PreflightError } from "./errors.js";
import { type JobUpdate, type WaitOptions, wait } from "./wait.js";

export interface RunJobHooks {
  /** Awaited before the POST: the journal writes its intent row here. Throwing stops the run (nothing sent). */
  beforeSubmit?: ((input: unknown, context: { modelId: string }) => void | Promise<void>) | undefined;
  /** Awaited right after the service accepted the job (the request id is known from here on). */
  onSubmitted?:
    | ((submit: SubmitResult, context: { submittedAt: number }) => void | Promise<void>)
    | undefined;
  /** Awaited when the submit failed (a SubmissionUnknownError means it may exist and be billed); then rethrown. */
  onSubmitError?: ((error: unknown) => void | Promise<void>) | undefined;
  /** Awaited for every status seen and for the final result. */
  onUpdate?: ((update: JobUpdate) => void | Promise<void>) | undefined;
  /** Awaited with every terminal result (succeeded, failed, cancelled) before runJob returns or throws. */
  onResult?: ((result: JobResult) => void | Promise<void>) | undefined;
}

export interface RunJobOptions
  extends Omit<WaitOptions, "onUpdate" | "onResult" | "submittedAt">,
    RunJobHooks {
  /** Default: the Dreamina 3.0 Pro image-to-video model. */
  modelId?: string | undefined;
  /** Facts about the input image (from a probe), so its size and dimension rules are checked too. */
  image?: ImageFacts | undefined;
  /** Skip the local preflight (the service still checks). Default false. */
  skipValidation?: boolean | undefined;
  /** Called with the preflight's warnings (they do not stop the run). */
  onWarnings?: ((warnings: ValidationReport["warnings"]) => void) | undefined;
  /** Keep every JobUpdate in the returned `updates`. Default false. */
  collectUpdates?: boolean | undefined;
  /** Per-request options for the submit (its own timeout). */
  submitOptions?: Omit<CallOptions, "signal"> | undefined;
}

export interface RunJobResult {
  requestId: string;
  result: JobResult;
  /** ms since the epoch: when the service accepted the job. */
  submittedAt: number;
  /** ms since the epoch: when the result was in hand. */
  finishedAt: number;
  /** Every update seen, when `collectUpdates` was set. */
  updates?: JobUpdate[] | undefined;
}

/**
 * Validates the input (throws PreflightError listing every violation, before any request),
 * submits it, waits for it and returns the result. Errors are those of `client.submit`
 * (SubmissionUnknownError when the job may exist) and of `wait`.
 */
export async function runJob(
  client: RunComfyClient,
  input: unknown,
  options: RunJobOptions = {},
): Promise<RunJobResult> {
  const modelId = options.modelId ?? MODEL_ID;
  if (!options.skipValidation && modelId === MODEL_ID) {
    const report = validate(input, { image: options.image });
    if (!report.valid) throw new PreflightError(report);
    if (report.warnings.length > 0) options.onWarnings?.(report.warnings);
  }
  if (options.signal?.aborted) throw abortErrorFrom(options.signal);

  await options.beforeSubmit?.(input, { modelId });
  let submitted: SubmitResult;
  try {
    // The signal is deliberately not passed on: cutting a POST in flight would turn a job the
    // service may already have taken into an unknown one that can't be cancelled. The submit is
    // bounded by its own timeout; an abort meanwhile is handled by wait() at once (cancelled if
    // still queued).
    submitted = await client.submit(modelId, input, options.submitOptions);
  } catch (error) {
    await options.onSubmitError?.(error);
    throw error;
  }
  const submittedAt = (options.now ?? Date.now)();
  await options.onSubmitted?.(submitted, { submittedAt });

  const collected: JobUpdate[] | undefined = options.collectUpdates ? [] : undefined;
  const result = await wait(client, submitted.requestId, {
    ...options,
    submittedAt,
    onUpdate: async (update) => {
      collected?.push(update);
      await options.onUpdate?.(update);
    },
    onResult: options.onResult,
  });
  const finishedAt = (options.now ?? Date.now)();
  return { requestId: submitted.requestId, result, submittedAt, finishedAt, updates: collected };
}
