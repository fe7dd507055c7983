// Defensive readers for the service's JSON: every field is checked, nothing is coerced
// into a value it was not, and anything unexpected stays visible in `raw`.

import type {
  CancelOutcome,
  CancelResult,
  JobResult,
  JobStatusValue,
  KnownJobStatus,
  ModelList,
  ModelSummary,
  StatusResult,
  SubmitResult,
} from "./types.js";

const KNOWN_STATUSES: ReadonlySet<string> = new Set<KnownJobStatus>([
  "in_queue",
  "in_progress",
  "completed",
  "succeeded",
  "failed",
  "cancelled",
]);

// Spellings seen from other clients of the same family of APIs. RunComfy's own Python client
// treats pending, waiting, starting and processing as ordinary non-terminal states: the first
// two mean the job has not started (queued-like), the last two that it runs (running-like).
// `rawStatus` keeps the service's own word either way.
const STATUS_ALIASES: Record<string, KnownJobStatus> = {
  canceled: "cancelled",
  queued: "in_queue",
  pending: "in_queue",
  waiting: "in_queue",
  running: "in_progress",
  starting: "in_progress",
  processing: "in_progress",
};

/** Case-insensitive; an unknown value comes back as `unknown` and is never guessed. */
export function normalizeStatus(raw: unknown): JobStatusValue {
  if (typeof raw !== "string") return "unknown";
  const key = raw
    .trim()
    .toLowerCase()
    .replace(/[\s-]+/g, "_");
  if (KNOWN_STATUSES.has(key)) return key as KnownJobStatus;
  return STATUS_ALIASES[key] ?? "unknown";
}

/** Statuses after which nothing more will happen to the job. */
export function isTerminalStatus(status: JobStatusValue): boolean {
  return status === "completed" || status === "succeeded" || status === "failed" || status === "cancelled";
}

export function asRecord(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function num(value: unknown): number | undefined {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value)))
    return Number(value);
  return undefined;
}

function timestamp(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  // Epoch seconds or milliseconds, since the format is undocumented.
  if (typeof value === "number" && Number.isFinite(value)) {
    return new Date(value < 1e12 ? value * 1000 : value).toISOString();
  }
  return undefined;
}

/** Every http(s) URL anywhere under `output`, in document order, without duplicates. */
export function collectOutputUrls(output: unknown): string[] {
  const found: string[] = [];
  const seen = new Set<string>();
  const visit = (value: unknown, depth: number): void => {
    if (depth > 32) return;
    if (typeof value === "string") {
      if (/^https?:\/\//i.test(value.trim()) && !seen.has(value.trim())) {
        seen.add(value.trim());
        found.push(value.trim());
      }
      return;
    }
    if (Array.isArray(value)) {
      for (const item of value) visit(item, depth + 1);
      return;
    }
    const record = asRecord(value);
    if (record) for (const item of Object.values(record)) visit(item, depth + 1);
  };
  visit(output, 0);
  return found;
}

export function parseSubmit(body: Record<string, unknown>): SubmitResult | undefined {
  const requestId = str(body.request_id);
  if (!requestId) return undefined;
  return {
    requestId,
    statusUrl: str(body.status_url),
    resultUrl: str(body.result_url),
    cancelUrl: str(body.cancel_url),
    raw: body,
  };
}

export function parseStatus(body: Record<string, unknown>, requestId: string): StatusResult {
  const status = normalizeStatus(body.status);
  const queuePosition = num(body.queue_position);
  return {
    requestId: str(body.request_id) ?? requestId,
    status,
    rawStatus: String(body.status ?? ""),
    queuePosition: status === "in_queue" ? queuePosition : undefined,
    raw: body,
  };
}

export function parseResult(body: Record<string, unknown>, requestId: string): JobResult {
  const outputUrls = collectOutputUrls(body.output);
  const output = asRecord(body.output);
  // This model answers with `video`, or the first of `videos`; fall back to any URL.
  const video =
    str(output?.video) ??
    (Array.isArray(output?.videos) ? str(output.videos[0]) : undefined) ??
    outputUrls[0];
  return {
    requestId: str(body.request_id) ?? requestId,
    status: normalizeStatus(body.status),
    rawStatus: String(body.status ?? ""),
    outputUrls,
    video,
    output: body.output,
    error: body.error,
    createdAt: timestamp(body.created_at),
    finishedAt: timestamp(body.finished_at),
    cost: num(body.cost),
    raw: body,
  };
}

export function parseCancel(body: Record<string, unknown>, requestId: string): CancelResult {
  const rawOutcome = str(body.outcome);
  const key = rawOutcome?.toLowerCase().replace(/[\s-]+/g, "_");
  const outcome: CancelOutcome =
    key === "cancelled" || key === "canceled"
      ? "cancelled"
      : key === "not_cancellable" || key === "not_cancelable"
        ? "not_cancellable"
        : "unknown";
  return {
    requestId: str(body.request_id) ?? requestId,
    status: body.status === undefined ? undefined : normalizeStatus(body.status),
    rawStatus: str(body.status),
    outcome,
    rawOutcome,
    raw: body,
  };
}

export function parseModel(body: Record<string, unknown>): ModelSummary {
  return {
    modelId: str(body.model_id) ?? str(body.id) ?? "",
    displayName: str(body.display_name),
    basePriceUsd: num(body.base_price_usd),
    priceUnit: str(body.price_unit),
    inputSchema: body.input_schema ?? body.schema,
    raw: body,
  };
}

export function parseModelList(body: Record<string, unknown>): ModelList {
  const models = Array.isArray(body.models) ? body.models : [];
  return {
    models: models.map((m) => parseModel(asRecord(m) ?? {})),
    total: num(body.total),
    raw: body,
  };
}
