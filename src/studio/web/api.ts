// Talking to the studio: same-origin fetches (the session cookie goes along by itself) and one
// event stream that the browser reconnects on its own; each reconnect starts with a snapshot.

import type { ApiErrorBody, JobView, LiveEvent, PreflightView, RuleProblem, TotalsView } from "../shapes.js";

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly violations: RuleProblem[];
  constructor(status: number, body: Partial<ApiErrorBody> | undefined) {
    super(body?.error?.message ?? `the studio answered ${status}`);
    this.status = status;
    this.code = body?.error?.code ?? "http_error";
    this.violations = body?.error?.violations ?? [];
  }
}

async function answer<T>(response: Response): Promise<T> {
  const text = await response.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (!response.ok) throw new ApiError(response.status, body as Partial<ApiErrorBody> | undefined);
  return body as T;
}

export async function getJson<T>(path: string): Promise<T> {
  return answer<T>(await fetch(path, { headers: { accept: "application/json" } }));
}

export async function postJson<T>(path: string, body: unknown = {}): Promise<T> {
  return answer<T>(
    await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(body),
    }),
  );
}

export async function uploadImage(file: Blob): Promise<PreflightView> {
  return answer<PreflightView>(
    await fetch("/api/images", {
      method: "POST",
      headers: { "content-type": file.type || "application/octet-stream" },
      body: file,
    }),
  );
}

export interface LiveHandlers {
  snapshot(jobs: JobView[], totals: TotalsView): void;
  job(job: JobView, totals: TotalsView): void;
  status(connected: boolean): void;
}

export function connectLive(handlers: LiveHandlers): EventSource {
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => handlers.status(true));
  source.addEventListener("error", () => handlers.status(false));
  source.addEventListener("snapshot", (event) => {
    const data = JSON.parse((event as MessageEvent<string>).data) as LiveEvent;
    if (data.type === "snapshot") handlers.snapshot(data.jobs, data.totals);
  });
  source.addEventListener("job", (event) => {
    const data = JSON.parse((event as MessageEvent<string>).data) as LiveEvent;
    if (data.type === "job") handlers.job(data.job, data.totals);
  });
  return source;
}
