// One rate limit for all the workers of a batch: a 429 seen here is written to the shared store
// (the pause the service asked for, the rate this worker fell to), and what the others wrote is
// read about once a second and applied to this worker's limiter. A poll rather than a push: the
// workers talk to the store all the time anyway, and a poll survives a dropped connection.

import type { SharedBatchStore } from "../store/index.js";
import type { RateLimiter } from "./rate-limiter.js";

export interface SharedThrottleLink {
  stop(): void;
}

export function linkSharedThrottle(
  limiter: RateLimiter,
  store: SharedBatchStore,
  scope: string,
  options: { intervalMs?: number | undefined } = {},
): SharedThrottleLink {
  const unsubscribe = limiter.onThrottle((throttle) => {
    // Best effort: a store that cannot take it now still has this worker slowed down.
    store.reportThrottle(scope, throttle).catch(() => {});
  });
  let reading = false;
  const timer = setInterval(() => {
    if (reading) return;
    reading = true;
    store
      .sharedThrottle(scope)
      .then((throttle) => {
        if (throttle) limiter.applyShared(throttle);
      })
      .catch(() => {})
      .finally(() => {
        reading = false;
      });
  }, options.intervalMs ?? 1_000);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      unsubscribe();
    },
  };
}
