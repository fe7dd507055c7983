// What the client returns: camelCase, typed, and always with the raw body beside it,
// because the service's documentation is thin and a caller may need a field we do not model.

/** Job states as this client understands them, whichever endpoint reported them. */
export type KnownJobStatus = "in_queue" | "in_progress" | "completed" | "succeeded" | "failed" | "cancelled";
/** A status the service sent that this client does not know; kept verbatim in `rawStatus`. */
export type JobStatusValue = KnownJobStatus | "unknown";

export interface SubmitResult {
  requestId: string;
  /** URLs as the service sent them; the client never sends the token to them unless they are on its own origin. */
  statusUrl: string | undefined;
  resultUrl: string | undefined;
  cancelUrl: string | undefined;
  raw: Record<string, unknown>;
}

export interface StatusResult {
  requestId: string;
  status: JobStatusValue;
  /** The status text exactly as the service sent it. */
  rawStatus: string;
  /** Only while `in_queue`. */
  queuePosition: number | undefined;
  raw: Record<string, unknown>;
}

export interface JobResult {
  requestId: string;
  status: JobStatusValue;
  rawStatus: string;
  /** Every http(s) URL found under `output`, in document order, without duplicates. */
  outputUrls: string[];
  /** The first output URL (for this model, the video), when there is one. */
  video: string | undefined;
  output: unknown;
  /** The service's error, verbatim (its shape is undocumented). */
  error: unknown;
  createdAt: string | undefined;
  finishedAt: string | undefined;
  /** US dollars, only when asked for with `includeCost`. */
  cost: number | undefined;
  raw: Record<string, unknown>;
}

export type CancelOutcome = "cancelled" | "not_cancellable" | "unknown";

export interface CancelResult {
  requestId: string;
  status: JobStatusValue | undefined;
  rawStatus: string | undefined;
  outcome: CancelOutcome;
  rawOutcome: string | undefined;
  raw: Record<string, unknown>;
}

export interface ModelSummary {
  modelId: string;
  displayName: string | undefined;
  basePriceUsd: number | undefined;
  priceUnit: string | undefined;
  inputSchema: unknown;
  raw: Record<string, unknown>;
}

export interface ModelList {
  models: ModelSummary[];
  total: number | undefined;
  raw: Record<string, unknown>;
}

export interface ListModelsParams {
  limit?: number;
  offset?: number;
  search?: string;
  category?: string;
  includeSchema?: boolean;
}
