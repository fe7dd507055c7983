// The Node SDK in one object: image + prompt in, MP4 on disk out, with every step written
// to the journal so that a paid job is never lost (an intent row before the POST, the
// request id after it, every status, the result, the downloaded files).

import { RunComfyClient, type RunComfyClientOptions } from "../api/client.js";
import { SubmissionUnknownError } from "../api/errors.js";
import type { JobResult, SubmitResult } from "../api/types.js";
import { resolveToken } from "../config/token-file.js";
import { type DownloadProgress, type DownloadResult, download } from "../download/download.js";
import { claimOutput, isOutputClaim, type OutputClaim } from "../download/output.js";
import { nodeFetch } from "../http/node-fetch.js";
import type { FitOptions } from "../image/fit.js";
import { type PreparedInput, type PrepareInputParams, prepareInput } from "../image/prepare-input.js";
import { MODEL_ID } from "../model/input.js";
import { PreflightError } from "../run/errors.js";
import { runJob } from "../run/run.js";
import { type JobUpdate, updates, type WaitOptions, wait } from "../run/wait.js";
import { type JobStore, openJobStore } from "../store/index.js";

export interface DreaminaOptions extends RunComfyClientOptions {
  /** A client to use instead of building one from the options above. */
  client?: RunComfyClient;
  /**
   * The job store (the journal): a SQLite file path, a `postgres://` URL, an open JobStore, or
   * `false` for none (not recommended: an interrupted job can then only be found again by its
   * request id). Default: `$DREAMINA_HOME/journal.db`.
   */
  store?: string | JobStore | false;
  /** The former name of `store`, still accepted (`store` wins when both are given). */
  journal?: string | JobStore | false;
}

export type VideoRequest = PrepareInputParams;

export interface WaitVideoOptions
  extends Pick<
    WaitOptions,
    | "signal"
    | "timeoutMs"
    | "pollSchedule"
    | "timeScale"
    | "cancelOnAbort"
    | "cancelOnTimeout"
    | "onPollError"
    | "giveUpAfterMs"
  > {
  /**
   * A file path or a directory for the video (default: the current directory), or a target
   * claimed beforehand with `claimOutput()` (then the caller releases it). Checked before the
   * submit (run) or the wait: a folder that cannot be written, a name taken, a FIFO or a device,
   * a dangling link, too little space or another run writing the same file throw OutputError
   * before anything is paid for.
   */
  output?: string | OutputClaim | undefined;
  /** Download the video. Default true. */
  download?: boolean | undefined;
  /** Overwrite an existing output file. */
  force?: boolean | undefined;
  /** Ask for the job's cost. Default true. */
  includeCost?: boolean | undefined;
  onUpdate?: ((update: JobUpdate) => void) | undefined;
  onDownloadProgress?: ((progress: DownloadProgress) => void) | undefined;
}

export interface RunVideoOptions extends WaitVideoOptions {
  /** Fix an image that breaks the model's rules instead of refusing it. */
  fit?: boolean | FitOptions | undefined;
  /** Called once the input is prepared and checked (warnings included), before anything is sent. */
  onPrepared?: ((prepared: PreparedInput) => void) | undefined;
  /**
   * Called once the service accepted the job, before the journal records it (so the id can be
   * shown at once, even if the journal then waits for another process's lock).
   */
  onSubmitted?: ((submit: SubmitResult) => void) | undefined;
}

export interface VideoResult {
  requestId: string;
  /** The journal row, when there is a journal. */
  localId: number | undefined;
  result: JobResult;
  /** The video URL (on the output CDN). */
  video: string | undefined;
  files: DownloadResult[];
  cost: number | undefined;
}

export class Dreamina {
  readonly client: RunComfyClient;
  readonly #storeOption: string | JobStore | false | undefined;
  #store: Promise<JobStore> | undefined;

  constructor(options: DreaminaOptions = {}) {
    const { client, store, journal, ...clientOptions } = options;
    this.client =
      client ??
      new RunComfyClient({
        fetch: nodeFetch,
        ...clientOptions,
        baseUrl: clientOptions.baseUrl ?? process.env.RUNCOMFY_MODEL_API_BASE,
        // The full Node look-up (environment, then the official tool's token.json).
        token: clientOptions.token ?? (async () => (await resolveToken()).token),
      });
    this.#storeOption = store !== undefined ? store : journal;
  }

  /** The job store in use (opened on first use), or undefined with `store: false`. */
  async store(): Promise<JobStore | undefined> {
    if (this.#storeOption === false) return undefined;
    if (!this.#store) {
      const opening = openJobStore(this.#storeOption);
      this.#store = opening;
      // A store that failed to open is tried again on the next call.
      opening.catch(() => {
        if (this.#store === opening) this.#store = undefined;
      });
    }
    return await this.#store;
  }

  /** Check the request locally (every model rule; local files become data URIs). Sends nothing. */
  async prepare(request: VideoRequest, options: { fit?: boolean | FitOptions | undefined } = {}) {
    const prepared = await prepareInput(request, { fit: options.fit });
    if (!prepared.report.valid) throw new PreflightError(prepared.report);
    return prepared;
  }

  /** Submit only: the request id is journaled and returned; nothing waits. */
  async submit(
    request: VideoRequest,
    options: {
      fit?: boolean | FitOptions;
      signal?: AbortSignal;
      onPrepared?: RunVideoOptions["onPrepared"];
    } = {},
  ): Promise<{ requestId: string; localId: number | undefined; submit: SubmitResult }> {
    const prepared = await this.prepare(request, options);
    options.onPrepared?.(prepared);
    const journal = await this.store();
    const localId = await journal?.beginSubmit({
      modelId: MODEL_ID,
      input: prepared.input,
      baseUrl: this.client.baseUrl,
    });
    let submit: SubmitResult;
    try {
      submit = await this.client.submit(MODEL_ID, prepared.input, { signal: options.signal });
    } catch (error) {
      if (localId !== undefined) await recordSubmitError(journal, localId, error);
      throw error;
    }
    if (localId !== undefined) await journal?.submitAccepted(localId, submit);
    return { requestId: submit.requestId, localId, submit };
  }

  /** Preflight, submit, wait, result and download: the whole job. */
  async run(request: VideoRequest, options: RunVideoOptions = {}): Promise<VideoResult> {
    const prepared = await this.prepare(request, options);
    options.onPrepared?.(prepared);
    const journal = await this.store();
    // Where the video goes is checked and claimed before paying for it.
    const claim = await this.#claimOutput(options);
    let localId: number | undefined;
    let requestId: string | undefined;
    try {
      const job = await runJob(this.client, prepared.input, {
        ...(await this.#waitOptions(journal, options, prepared.input.frames)),
        image: prepared.fitted ? undefined : prepared.image,
        skipValidation: true, // prepare() already checked every rule, image facts included
        beforeSubmit: async (input) => {
          localId = await journal?.beginSubmit({ modelId: MODEL_ID, input, baseUrl: this.client.baseUrl });
        },
        onSubmitted: async (submit) => {
          requestId = submit.requestId;
          try {
            options.onSubmitted?.(submit);
          } finally {
            // Keeps the id in a recovery file if the store cannot take it (see JobStore).
            if (localId !== undefined) await journal?.submitAccepted(localId, submit);
          }
        },
        onSubmitError: async (error) => {
          if (localId !== undefined) await recordSubmitError(journal, localId, error);
        },
        onUpdate: (update) => this.#recordUpdate(journal, update, options),
        onResult: (result) => this.#recordResult(journal, result),
      });
      return await this.#finish(journal, job.requestId, localId, job.result, {
        ...options,
        output: claim.target,
      });
    } catch (error) {
      if (requestId) await this.#recordStop(journal, requestId, error);
      throw error;
    } finally {
      await claim.release();
    }
  }

  /** Attach to any request (from any process, at any time), wait for it and download the video. */
  async wait(requestId: string, options: WaitVideoOptions = {}): Promise<VideoResult> {
    const journal = await this.store();
    const row = await journal?.get(requestId);
    const claim = await this.#claimOutput(options);
    try {
      const result = await wait(this.client, requestId, {
        ...(await this.#waitOptions(journal, options, row?.frames)),
        submittedAt: row?.submittedAt ? Date.parse(row.submittedAt) : undefined,
        onUpdate: (update) => this.#recordUpdate(journal, update, options),
        onResult: (result) => this.#recordResult(journal, result),
      });
      return await this.#finish(journal, requestId, row?.localId, result, {
        ...options,
        output: claim.target,
      });
    } catch (error) {
      await this.#recordStop(journal, requestId, error);
      throw error;
    } finally {
      await claim.release();
    }
  }

  /** Status changes of a request as an async iterator (ends with the terminal one). */
  updates(requestId: string, options: Omit<WaitOptions, "onUpdate"> = {}): AsyncIterable<JobUpdate> {
    return updates(this.client, requestId, options);
  }

  async close(): Promise<void> {
    const opening = this.#store;
    this.#store = undefined;
    // A store passed in by the caller is theirs to close.
    if (!opening || (typeof this.#storeOption === "object" && this.#storeOption !== null)) return;
    const store = await opening.catch(() => undefined);
    await store?.close();
  }

  /** The output claimed for this call (nothing to claim without a download, or when the caller did). */
  async #claimOutput(
    options: WaitVideoOptions,
  ): Promise<{ target: OutputClaim | undefined; release(): Promise<void> }> {
    if (options.download === false) return { target: undefined, release: async () => {} };
    if (isOutputClaim(options.output)) return { target: options.output, release: async () => {} };
    const claim = await claimOutput(options.output, { force: options.force });
    return { target: claim, release: () => claim.release() };
  }

  async #waitOptions(
    journal: JobStore | undefined,
    options: WaitVideoOptions,
    frames: number | undefined,
  ): Promise<WaitOptions> {
    return {
      signal: options.signal,
      timeoutMs: options.timeoutMs,
      pollSchedule: options.pollSchedule,
      timeScale: options.timeScale,
      cancelOnAbort: options.cancelOnAbort,
      cancelOnTimeout: options.cancelOnTimeout,
      onPollError: options.onPollError,
      giveUpAfterMs: options.giveUpAfterMs,
      includeCost: options.includeCost ?? true,
      prior: await journal?.runTimePrior(MODEL_ID, frames),
    };
  }

  /**
   * The error that ended a wait; a cancel it made (Ctrl-C while queued) settles the row too.
   * Best effort: failing to write it (a locked journal) must not hide the error being reported.
   */
  async #recordStop(journal: JobStore | undefined, requestId: string, error: unknown): Promise<void> {
    if (!journal) return;
    try {
      const cancel = (error as { cancel?: { outcome?: string } }).cancel;
      if (cancel?.outcome === "cancelled") {
        await journal.recordStatus(requestId, { status: "cancelled", rawStatus: "cancelled" });
      }
      await journal.recordError(requestId, error);
    } catch {}
  }

  async #recordUpdate(
    journal: JobStore | undefined,
    update: JobUpdate,
    options: WaitVideoOptions,
  ): Promise<void> {
    if (!update.result) {
      try {
        await journal?.recordStatus(update.requestId, {
          status: update.status,
          rawStatus: update.rawStatus,
          queuePosition: update.queuePosition,
          at: update.at,
        });
      } catch (error) {
        // A status seen while another process holds the journal is not worth ending the wait
        // for a paid job: the next one (or the result) is recorded once the lock is gone.
        if (!isBusy(error)) throw error;
      }
    }
    options.onUpdate?.(update);
  }

  async #recordResult(journal: JobStore | undefined, result: JobResult): Promise<void> {
    // A JobResult carries every field the store keeps (status, outputs, error, cost, times, raw).
    await journal?.recordResult(result.requestId, result);
  }

  async #finish(
    journal: JobStore | undefined,
    requestId: string,
    localId: number | undefined,
    result: JobResult,
    options: WaitVideoOptions,
  ): Promise<VideoResult> {
    const files: DownloadResult[] = [];
    if (options.download !== false && result.video) {
      const output = options.output;
      const file = await download(result.video, {
        ...(isOutputClaim(output) ? { output } : { dest: output }),
        force: options.force,
        signal: options.signal,
        onProgress: options.onDownloadProgress,
      });
      await journal?.recordFile(requestId, {
        path: file.path,
        url: file.url,
        bytes: file.bytes,
        sha256: file.sha256,
      });
      files.push(file);
    }
    return { requestId, localId, result, video: result.video, files, cost: result.cost };
  }
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === "SQLITE_BUSY" || code === "SQLITE_LOCKED";
}

async function recordSubmitError(
  journal: JobStore | undefined,
  localId: number,
  error: unknown,
): Promise<void> {
  if (error instanceof SubmissionUnknownError) await journal?.submitUnknown(localId, error);
  else await journal?.submitRejected(localId, error);
}
