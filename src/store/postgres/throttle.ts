// One rate limit for every worker: a 429 seen by one worker is written here (a pause until the
// service's Retry-After, and the lowered rate), and the others read it before they send (a poll
// by the server's clock, no LISTEN/NOTIFY: the workers ask often anyway, and a poll survives a
// dropped connection). The scope is what the service limits by (the token's account, say).

import type { SharedThrottle } from "../types.js";
import type { Session } from "./session.js";

/** Records a 429: the pause only ever lengthens, the rate only ever drops, until it is old. */
export async function reportThrottle(
  session: Session,
  scope: string,
  throttle: { pauseMs: number; rps?: number | undefined },
): Promise<void> {
  await session.query(
    `INSERT INTO dreamina.throttle AS t (scope, pause_until, rps, updated_at, host, pid)
     VALUES ($1, clock_timestamp() + make_interval(secs => $2::float8 / 1000), $3, clock_timestamp(), $4, $5)
     ON CONFLICT (scope) DO UPDATE SET
       pause_until = GREATEST(t.pause_until, excluded.pause_until),
       -- A rate from an earlier episode (over a minute old) does not hold this one down.
       rps = CASE WHEN t.updated_at < clock_timestamp() - interval '1 minute' THEN excluded.rps
                  ELSE LEAST(t.rps, excluded.rps) END,
       updated_at = excluded.updated_at, host = excluded.host, pid = excluded.pid`,
    [scope, Math.max(0, throttle.pauseMs), throttle.rps ?? null, session.host, process.pid],
  );
}

export async function readThrottle(session: Session, scope: string): Promise<SharedThrottle | undefined> {
  const r = await session.query<{ pause_ms: number; rps: number | null; age_ms: number }>(
    `SELECT GREATEST(0, EXTRACT(EPOCH FROM pause_until - clock_timestamp()) * 1000)::float8 AS pause_ms, rps,
            (EXTRACT(EPOCH FROM clock_timestamp() - updated_at) * 1000)::float8 AS age_ms
       FROM dreamina.throttle WHERE scope = $1`,
    [scope],
  );
  const row = r.rows[0];
  return row ? { pauseMs: row.pause_ms, rps: row.rps ?? undefined, ageMs: row.age_ms } : undefined;
}
