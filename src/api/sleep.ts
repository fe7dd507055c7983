import { AbortError } from "./errors.js";

/** setTimeout as a promise that rejects with an AbortError the moment `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal, requestId?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortErrorFrom(signal, requestId));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortErrorFrom(signal as AbortSignal, requestId));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export function abortErrorFrom(signal: AbortSignal, requestId?: string): AbortError {
  const reason = signal.reason;
  const why = reason instanceof Error ? reason.message : reason === undefined ? "" : String(reason);
  return new AbortError(`Aborted${requestId ? ` (request ${requestId})` : ""}${why ? `: ${why}` : ""}`, {
    requestId,
    cause: reason,
  });
}
