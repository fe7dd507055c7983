// Journal records as the page sees them: plain data, errors in words, the input image named
// by the upload it came from (when the studio still has it), secrets redacted once more.

import { existsSync } from "node:fs";
import { hostname } from "node:os";
import { redactSecrets } from "../api/redact.js";
import type { JobRecord as JournalRecord, JobRecordDetail as JournalRecordDetail } from "../store/index.js";
import type { FileView, JobDetailView, JobInputView, JobView } from "./shapes.js";

/** Usual run times of the model (ms), before any history exists in the journal. */
const USUAL_RUN_MS: Record<number, number> = { 121: 60_000, 241: 120_000 };

export function usualRunMs(frames: number | undefined, timeScale: number): number {
  return Math.round((USUAL_RUN_MS[frames ?? 121] ?? 60_000) / timeScale);
}

export function errorText(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return redactSecrets(value);
  if (Array.isArray(value)) {
    const parts = value.map((item) => errorText(item)).filter((t): t is string => Boolean(t));
    return parts.length > 0 ? parts.join("; ") : null;
  }
  if (typeof value === "object") {
    const o = value as Record<string, unknown>;
    const message = o.message ?? o.error ?? o.error_message ?? o.errorMessage;
    const code = o.errorCode ?? o.error_code ?? o.code;
    if (typeof message === "string") {
      return redactSecrets(code !== undefined && code !== null ? `${message} (${String(code)})` : message);
    }
    return redactSecrets(JSON.stringify(value));
  }
  return String(value);
}

function inputOf(record: JournalRecord, hasUpload: (sha256: string) => boolean): JobInputView {
  const first = (record.input as { image_urls?: unknown[] } | undefined)?.image_urls?.[0];
  if (typeof first === "string") return { kind: "url", url: redactSecrets(first) };
  if (first && typeof first === "object") {
    const d = first as { sha256?: unknown; bytes?: unknown };
    if (typeof d.sha256 === "string") {
      if (hasUpload(d.sha256)) return { kind: "upload", id: d.sha256 };
      return { kind: "inline", sha256: d.sha256, bytes: typeof d.bytes === "number" ? d.bytes : 0 };
    }
  }
  return { kind: "none" };
}

/** The last file of a record that is still on disk: the one the studio serves. */
export function videoFile(detail: JournalRecordDetail): string | undefined {
  for (const file of [...detail.files].reverse()) {
    if (file.path.toLowerCase().endsWith(".mp4") && existsSync(file.path)) return file.path;
  }
  return undefined;
}

const HOST = hostname();
const FOLLOWABLE = new Set(["submitted", "in_queue", "in_progress", "completed", "succeeded"]);

export function processGone(pid: number | undefined, host: string | undefined): boolean {
  if (pid === undefined || host !== HOST) return false;
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "EPERM";
  }
}

/** Whether nobody follows this job any more (see JobView.orphaned). */
function orphaned(detail: JournalRecordDetail, ownedHere: boolean, hasVideo: boolean): boolean {
  if (ownedHere || !detail.requestId || !FOLLOWABLE.has(detail.state)) return false;
  if (detail.state === "succeeded") return !hasVideo;
  return processGone(detail.pid, detail.host);
}

export interface ViewContext {
  hasUpload(sha256: string): boolean;
  expectedMs(frames: number | undefined): number;
  ownedHere(requestId: string | undefined): boolean;
}

export function jobView(detail: JournalRecordDetail, ctx: ViewContext): JobView {
  const ownedHere = ctx.ownedHere(detail.requestId);
  const hasVideo = videoFile(detail) !== undefined;
  let queuePosition: number | null = null;
  const last = detail.transitions.at(-1);
  if (detail.state === "in_queue" && last?.queuePosition !== undefined) queuePosition = last.queuePosition;
  return {
    localId: detail.localId,
    requestId: detail.requestId ?? null,
    state: detail.state,
    prompt: detail.prompt ?? "",
    frames: detail.frames ?? null,
    seed: detail.seed ?? null,
    createdAt: detail.createdAt,
    submittedAt: detail.submittedAt ?? null,
    startedAt: detail.startedAt ?? null,
    finishedAt: detail.finishedAt ?? null,
    updatedAt: detail.updatedAt,
    queuePosition,
    expectedMs: ctx.expectedMs(detail.frames),
    cost: detail.cost ?? null,
    error: errorText(detail.jobError) ?? (detail.state === "succeeded" ? null : errorText(detail.lastError)),
    input: inputOf(detail, ctx.hasUpload),
    hasVideo,
    batchId: detail.batchId ?? null,
    ownedHere,
    orphaned: orphaned(detail, ownedHere, hasVideo),
  };
}

export function jobDetailView(detail: JournalRecordDetail, ctx: ViewContext): JobDetailView {
  const files: FileView[] = detail.files.map((f) => ({
    path: f.path,
    bytes: f.bytes ?? null,
    sha256: f.sha256 ?? null,
    at: f.at,
    exists: existsSync(f.path),
  }));
  return {
    ...jobView(detail, ctx),
    transitions: detail.transitions.map((t) => ({
      status: t.status,
      queuePosition: t.queuePosition ?? null,
      at: t.at,
    })),
    files,
    outputUrls: detail.outputUrls.map((u) => redactSecrets(u)),
    model: detail.modelId,
    service: redactSecrets(detail.baseUrl),
  };
}
