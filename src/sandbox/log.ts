// The sandbox's request log: one entry per HTTP request, kept in memory for tests and
// /__sandbox/requests, and optionally printed as one line. Tokens are never stored:
// only whether one was present and whether it was accepted.

export interface RequestLogEntry {
  /** Order of arrival, from 1. */
  seq: number;
  /** ISO 8601 arrival time. */
  time: string;
  method: string;
  /** Path and query as received (the API never carries the token in the URL). */
  path: string;
  /** Which route answered: submit, status, result, cancel, models, cdn, admin, unknown. */
  route: string;
  tokenPresent: boolean;
  /** Undefined when the route does not check tokens (cdn, admin). */
  tokenValid: boolean | undefined;
  /** HTTP status sent; undefined when no response was sent (reset, lost, client gone). */
  status: number | undefined;
  /** The injected fault, e.g. "429@2" or "lost". */
  fault: string | undefined;
  requestId: string | undefined;
  durationMs: number;
}

export type LogSink = (line: string) => void;

export class RequestLog {
  readonly #entries: RequestLogEntry[] = [];
  #seq = 0;
  readonly #sink: LogSink | undefined;
  readonly #limit: number;

  constructor(sink: LogSink | undefined, limit = 100_000) {
    this.#sink = sink;
    this.#limit = limit;
  }

  nextSeq(): number {
    this.#seq += 1;
    return this.#seq;
  }

  add(entry: RequestLogEntry): void {
    this.#entries.push(entry);
    // A long-running CLI sandbox must not grow without bound.
    if (this.#entries.length > this.#limit) this.#entries.splice(0, this.#entries.length - this.#limit);
    this.#sink?.(formatEntry(entry));
  }

  entries(): RequestLogEntry[] {
    return this.#entries.map((e) => ({ ...e }));
  }
}

export function formatEntry(e: RequestLogEntry): string {
  const auth =
    e.tokenValid === undefined
      ? ""
      : e.tokenPresent
        ? e.tokenValid
          ? " auth=ok"
          : " auth=bad"
        : " auth=none";
  const fault = e.fault ? ` fault=${e.fault}` : "";
  const id = e.requestId ? ` id=${e.requestId}` : "";
  return `${e.time} ${e.method} ${e.path} -> ${e.status ?? "---"} ${e.durationMs}ms${auth}${id}${fault}`;
}
