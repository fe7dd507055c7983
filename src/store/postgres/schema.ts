// The shared store's tables, in their own schema (`dreamina`) so that they sit beside a team's
// other tables without a clash, versioned in `dreamina.schema_version`.
//
// Several workers may start at once against an empty database: the migration runs under a
// transaction-scoped advisory lock, so exactly one creates the tables and the others find them
// done. A binary meeting a schema newer than it knows refuses (`store_too_new`) rather than
// write rows that a newer one would misread.
//
// Times are integer milliseconds since the epoch (as in the SQLite journal, so an import copies
// them as they are), except where the server's own clock decides (heartbeats and leases: one
// clock for every machine).

import type pg from "pg";
import { StoreError } from "../errors.js";

export const SCHEMA = "dreamina";
/** The advisory lock key of schema changes: "drea", "mina" as two int4s. */
const LOCK_KEY = [0x64726561, 0x6d696e61] as const;

/**
 * The writes a job makes most often, each one round trip instead of five or six (the client's CPU
 * per row is mostly the driver's work per statement). Each locks its job row first, so two
 * workers following one request serialize on it; the state rules are those of every backend
 * (transitions are added only on a change; final states stay; a stale poll never takes a
 * finished job back to running). They return 'ok', 'no_row', or the state that refused.
 */
/**
 * The intent row of a claimed batch row (see the comment in the SQL). `over`: the states of an
 * earlier job of the row that do not block a new submit.
 */
function rowIntentSql(create: "CREATE" | "CREATE OR REPLACE", over: string): string {
  return `
   -- The intent row of a claimed batch row, in one statement: refused (nothing written) unless this
   -- worker holds the row, no earlier job of the row is alive or may be (but those it supersedes;
   -- a job cancelled while queued, or failed on the service, is over: whether to run the row again
   -- is the holder's decision), and the budget has room for the estimate, which it reserves in the
   -- same transaction.
   ${create} FUNCTION dreamina.row_intent(p_worker text, p_supersedes bigint[], p_estimate double precision,
       p_model text, p_base text, p_batch text, p_row text, p_input text, p_digest text, p_prompt text,
       p_frames integer, p_seed bigint, p_now bigint, p_pid integer, p_host text) RETURNS jsonb
   LANGUAGE plpgsql AS $$
   DECLARE v record; v_job record; v_id bigint; v_b record; s bigint;
   BEGIN
     SELECT worker_id, state INTO v FROM dreamina.batch_rows
       WHERE batch_id = p_batch AND row_key = p_row FOR UPDATE;
     IF NOT FOUND OR v.state <> 'claimed' OR v.worker_id IS DISTINCT FROM p_worker THEN
       RETURN jsonb_build_object('refused', 'batch_row_not_held', 'state', COALESCE(v.state, 'no such row'));
     END IF;
     SELECT local_id, state, request_id INTO v_job FROM dreamina.jobs
       WHERE batch_id = p_batch AND row_key = p_row AND state NOT IN (${over})
         AND NOT (local_id = ANY (p_supersedes)) LIMIT 1;
     IF FOUND THEN
       RETURN jsonb_build_object('refused', 'batch_row_submitted', 'job', v_job.local_id, 'state', v_job.state,
         'request', v_job.request_id);
     END IF;
     IF p_estimate IS NOT NULL AND p_estimate > 0 THEN
       UPDATE dreamina.batches SET reserved_usd = reserved_usd + p_estimate
         WHERE batch_id = p_batch AND (budget_usd IS NULL OR reserved_usd + p_estimate <= budget_usd + 1e-9);
       IF NOT FOUND THEN
         SELECT reserved_usd, budget_usd INTO v_b FROM dreamina.batches WHERE batch_id = p_batch;
         RETURN jsonb_build_object('refused', 'budget_exceeded', 'reserved', v_b.reserved_usd,
           'budget', v_b.budget_usd);
       END IF;
     END IF;
     FOREACH s IN ARRAY p_supersedes LOOP
       PERFORM dreamina.job_settle(s, 'abandoned', '{"message":"superseded by a new submit of the same row"}',
         true, p_now);
     END LOOP;
     v_id := dreamina.job_intent(p_model, p_base, p_batch, p_row, p_input, p_digest, p_prompt, p_frames, p_seed,
       p_now, p_pid, p_host, p_worker, CASE WHEN p_estimate > 0 THEN p_estimate END);
     UPDATE dreamina.batch_rows SET local_id = v_id WHERE batch_id = p_batch AND row_key = p_row;
     RETURN jsonb_build_object('id', v_id);
   END $$;`;
}

const FUNCTIONS = `
   CREATE FUNCTION dreamina.job_intent(p_model text, p_base text, p_batch text, p_row text, p_input text,
       p_digest text, p_prompt text, p_frames integer, p_seed bigint, p_now bigint, p_pid integer,
       p_host text, p_worker text, p_reserved double precision) RETURNS bigint
   LANGUAGE plpgsql AS $$
   DECLARE v_id bigint;
   BEGIN
     -- Durable before the POST, whatever the server's default.
     PERFORM set_config('synchronous_commit', 'on', true);
     INSERT INTO dreamina.jobs (model_id, base_url, batch_id, row_key, state, input_json, input_digest,
         prompt, frames, seed, created_at, updated_at, pid, host, worker_id, reserved_usd)
       VALUES (p_model, p_base, p_batch, p_row, 'submitting', p_input, p_digest, p_prompt, p_frames, p_seed,
         p_now, p_now, p_pid, p_host, p_worker, p_reserved)
       RETURNING local_id INTO v_id;
     INSERT INTO dreamina.transitions (local_id, status, at) VALUES (v_id, 'submitting', p_now);
     RETURN v_id;
   END $$;

   CREATE FUNCTION dreamina.job_accepted(p_local bigint, p_request text, p_status_url text,
       p_result_url text, p_cancel_url text, p_now bigint) RETURNS text
   LANGUAGE plpgsql AS $$
   DECLARE v record;
   BEGIN
     SELECT state, request_id INTO v FROM dreamina.jobs WHERE local_id = p_local FOR UPDATE;
     IF NOT FOUND THEN RETURN 'no_row'; END IF;
     IF v.state = 'submitted' AND v.request_id = p_request THEN RETURN 'ok'; END IF;
     IF v.state NOT IN ('submitting', 'submission_unknown', 'submitted') THEN RETURN v.state; END IF;
     PERFORM set_config('synchronous_commit', 'on', true);
     UPDATE dreamina.jobs SET request_id = p_request, state = 'submitted', status_url = p_status_url,
         result_url = p_result_url, cancel_url = p_cancel_url, submitted_at = COALESCE(submitted_at, p_now),
         updated_at = p_now
       WHERE local_id = p_local;
     INSERT INTO dreamina.transitions (local_id, status, at) VALUES (p_local, 'submitted', p_now);
     RETURN 'ok';
   END $$;

   CREATE FUNCTION dreamina.job_settle(p_local bigint, p_state text, p_error text, p_final boolean,
       p_now bigint) RETURNS text
   LANGUAGE plpgsql AS $$
   DECLARE v record;
   BEGIN
     SELECT state, batch_id, reserved_usd INTO v FROM dreamina.jobs WHERE local_id = p_local FOR UPDATE;
     IF NOT FOUND THEN RETURN 'no_row'; END IF;
     IF v.state NOT IN ('submitting', 'submission_unknown') THEN RETURN v.state; END IF;
     UPDATE dreamina.jobs SET state = p_state, last_error_json = COALESCE(p_error, last_error_json),
         updated_at = p_now,
         finished_at = CASE WHEN p_final THEN COALESCE(finished_at, p_now) ELSE finished_at END,
         reserved_usd = CASE WHEN p_state = 'rejected' THEN NULL ELSE reserved_usd END
       WHERE local_id = p_local;
     INSERT INTO dreamina.transitions (local_id, status, at) VALUES (p_local, p_state, p_now);
     -- A refused submit cost nothing: its reservation goes back to the batch's budget.
     IF p_state = 'rejected' AND v.reserved_usd IS NOT NULL THEN
       UPDATE dreamina.batches SET reserved_usd = GREATEST(0, reserved_usd - v.reserved_usd)
         WHERE batch_id = v.batch_id;
     END IF;
     RETURN 'ok';
   END $$;

   CREATE FUNCTION dreamina.job_observed(p_request text, p_status text, p_raw text, p_position integer,
       p_at bigint, p_result boolean, p_urls text, p_job_error text, p_cost double precision,
       p_service_created text, p_service_finished text, p_result_json text) RETURNS boolean
   LANGUAGE plpgsql AS $$
   DECLARE
     v record;
     v_last record;
     v_label text;
     v_state text;
     v_sticky text[] := ARRAY['rejected', 'succeeded', 'failed', 'cancelled', 'abandoned'];
     v_terminal text[] := ARRAY['completed', 'succeeded', 'failed', 'cancelled'];
   BEGIN
     SELECT local_id, state INTO v FROM dreamina.jobs WHERE request_id = p_request FOR UPDATE;
     IF NOT FOUND THEN RETURN false; END IF;
     v_label := CASE WHEN p_status = 'unknown' THEN 'unknown:' || COALESCE(p_raw, '') ELSE p_status END;
     SELECT status, queue_position INTO v_last FROM dreamina.transitions
       WHERE local_id = v.local_id ORDER BY id DESC LIMIT 1;
     IF NOT FOUND OR v_last.status <> v_label OR v_last.queue_position IS DISTINCT FROM p_position THEN
       INSERT INTO dreamina.transitions (local_id, status, raw_status, queue_position, at)
         VALUES (v.local_id, v_label, p_raw, p_position, p_at);
     END IF;
     v_state := v.state;
     IF p_status <> 'unknown'
        AND (NOT v.state = ANY (v_sticky) OR (v.state = 'completed' AND p_status = ANY (v_sticky)))
        AND NOT (v.state = ANY (v_terminal) AND NOT p_status = ANY (v_terminal)) THEN
       v_state := p_status;
     END IF;
     UPDATE dreamina.jobs SET state = v_state, raw_status = COALESCE(p_raw, raw_status), updated_at = p_at,
         started_at = CASE WHEN p_status = 'in_progress' THEN COALESCE(started_at, p_at) ELSE started_at END,
         finished_at = CASE WHEN v_state = ANY (v_terminal) THEN COALESCE(finished_at, p_at) ELSE finished_at END,
         output_urls_json = CASE WHEN p_result THEN COALESCE(p_urls, output_urls_json) ELSE output_urls_json END,
         job_error_json = CASE WHEN p_result THEN COALESCE(p_job_error, job_error_json) ELSE job_error_json END,
         cost = CASE WHEN p_result THEN COALESCE(p_cost, cost) ELSE cost END,
         service_created_at = CASE WHEN p_result THEN COALESCE(p_service_created, service_created_at)
           ELSE service_created_at END,
         service_finished_at = CASE WHEN p_result THEN COALESCE(p_service_finished, service_finished_at)
           ELSE service_finished_at END,
         result_json = CASE WHEN p_result THEN COALESCE(p_result_json, result_json) ELSE result_json END
       WHERE local_id = v.local_id;
     RETURN true;
   END $$;

   CREATE FUNCTION dreamina.batch_row_outcome(p_batch text, p_row text, p_line integer, p_name text,
       p_state text, p_request text, p_estimate double precision, p_cost double precision, p_file text,
       p_bytes bigint, p_sha256 text, p_error text, p_host text, p_pid integer, p_now bigint) RETURNS void
   LANGUAGE plpgsql AS $$
   BEGIN
     INSERT INTO dreamina.batches (batch_id, created_at, updated_at) VALUES (p_batch, p_now, p_now)
       ON CONFLICT DO NOTHING;
     -- A row already done is never turned failed by a worker that took it over and lost a race.
     INSERT INTO dreamina.batch_rows AS r (batch_id, row_key, line, name, state, request_id, estimate_usd,
         cost_usd, file, bytes, sha256, error_json, worker_host, worker_pid, updated_at)
       VALUES (p_batch, p_row, p_line, p_name, p_state, p_request, p_estimate, p_cost, p_file, p_bytes,
         p_sha256, p_error, p_host, p_pid, p_now)
       ON CONFLICT (batch_id, row_key) DO UPDATE SET line = COALESCE(excluded.line, r.line),
         name = COALESCE(excluded.name, r.name), state = excluded.state, request_id = excluded.request_id,
         estimate_usd = COALESCE(excluded.estimate_usd, r.estimate_usd), cost_usd = excluded.cost_usd,
         file = excluded.file, bytes = excluded.bytes, sha256 = excluded.sha256,
         error_json = excluded.error_json, worker_id = NULL, lease_until = NULL,
         worker_host = excluded.worker_host, worker_pid = excluded.worker_pid, updated_at = excluded.updated_at
       WHERE NOT (r.state = 'done' AND excluded.state = 'failed');
   END $$;

   ${rowIntentSql("CREATE", "'rejected', 'abandoned'")}

   -- Many writes in one statement (one round trip, one commit): a batch's grouped observations.
   -- A write whose request is not in the store does nothing; an error fails them all.
   CREATE FUNCTION dreamina.apply_writes(p_writes jsonb) RETURNS integer
   LANGUAGE plpgsql AS $$
   DECLARE w jsonb; n integer := 0;
   BEGIN
     FOR w IN SELECT value FROM jsonb_array_elements(p_writes) LOOP
       CASE w->>'k'
         WHEN 'status' THEN
           PERFORM dreamina.job_observed(w->>'r', w->>'s', w->>'raw', (w->>'pos')::integer, (w->>'at')::bigint,
             false, NULL, NULL, NULL, NULL, NULL, NULL);
         WHEN 'result' THEN
           PERFORM dreamina.job_observed(w->>'r', w->>'s', w->>'raw', NULL, (w->>'at')::bigint, true,
             w->>'urls', w->>'err', (w->>'cost')::double precision, w->>'sc', w->>'sf', w->>'res');
         WHEN 'error' THEN
           UPDATE dreamina.jobs SET last_error_json = w->>'err', updated_at = (w->>'at')::bigint
             WHERE request_id = w->>'r';
         WHEN 'file' THEN
           WITH j AS (UPDATE dreamina.jobs SET updated_at = (w->>'at')::bigint WHERE request_id = w->>'r'
                      RETURNING local_id)
           INSERT INTO dreamina.files (local_id, path, url, bytes, sha256, at)
             SELECT local_id, w->>'path', w->>'url', (w->>'bytes')::bigint, w->>'sha', (w->>'at')::bigint FROM j;
         WHEN 'row' THEN
           PERFORM dreamina.batch_row_outcome(w->>'b', w->>'key', (w->>'line')::integer, w->>'name', w->>'state',
             w->>'req', (w->>'est')::double precision, (w->>'cost')::double precision, w->>'file',
             (w->>'bytes')::bigint, w->>'sha', w->>'err', w->>'host', (w->>'pid')::integer, (w->>'at')::bigint);
         ELSE RAISE EXCEPTION 'unknown write kind %', w->>'k';
       END CASE;
       n := n + 1;
     END LOOP;
     RETURN n;
   END $$;`;

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE dreamina.jobs (
     local_id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
     request_id text UNIQUE,
     model_id text NOT NULL,
     base_url text NOT NULL,
     batch_id text,
     row_key text,
     state text NOT NULL,
     raw_status text,
     input_json text NOT NULL,
     input_digest text NOT NULL,
     prompt text,
     frames integer,
     seed bigint,
     status_url text,
     result_url text,
     cancel_url text,
     created_at bigint NOT NULL,
     submitted_at bigint,
     started_at bigint,
     finished_at bigint,
     updated_at bigint NOT NULL,
     output_urls_json text,
     cost double precision,
     job_error_json text,
     last_error_json text,
     result_json text,
     service_created_at text,
     service_finished_at text,
     pid integer,
     host text,
     worker_id text,
     reserved_usd double precision,
     import_source text,
     import_local_id bigint
   );
   CREATE INDEX jobs_state ON dreamina.jobs (state);
   CREATE INDEX jobs_batch ON dreamina.jobs (batch_id, row_key);
   CREATE INDEX jobs_created ON dreamina.jobs (created_at);
   CREATE INDEX jobs_prior ON dreamina.jobs (model_id, frames, state, finished_at);
   CREATE UNIQUE INDEX jobs_import ON dreamina.jobs (import_source, import_local_id);
   CREATE TABLE dreamina.transitions (
     id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     local_id bigint NOT NULL REFERENCES dreamina.jobs (local_id),
     status text NOT NULL,
     raw_status text,
     queue_position integer,
     at bigint NOT NULL
   );
   CREATE INDEX transitions_job ON dreamina.transitions (local_id, id);
   CREATE TABLE dreamina.files (
     id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     local_id bigint NOT NULL REFERENCES dreamina.jobs (local_id),
     path text NOT NULL,
     url text,
     bytes bigint,
     sha256 text,
     at bigint NOT NULL
   );
   CREATE INDEX files_job ON dreamina.files (local_id);
   CREATE TABLE dreamina.workers (
     worker_id text PRIMARY KEY,
     host text NOT NULL,
     pid integer NOT NULL,
     started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
     heartbeat_at timestamptz NOT NULL DEFAULT clock_timestamp(),
     stopped_at timestamptz
   );
   CREATE TABLE dreamina.batches (
     batch_id text PRIMARY KEY,
     out_dir text,
     out_dev_ino text,
     manifest_path text,
     manifest_digest text,
     budget_usd double precision,
     reserved_usd double precision NOT NULL DEFAULT 0,
     owner_worker_id text,
     owner_host text,
     owner_pid integer,
     owner_until timestamptz,
     created_at bigint NOT NULL,
     updated_at bigint NOT NULL
   );
   CREATE INDEX batches_out_dir ON dreamina.batches (out_dir);
   CREATE TABLE dreamina.batch_rows (
     batch_id text NOT NULL REFERENCES dreamina.batches (batch_id),
     row_key text NOT NULL,
     ord integer NOT NULL DEFAULT 0,
     line integer,
     name text,
     state text NOT NULL,
     payload_json text,
     estimate_usd double precision,
     attempts integer NOT NULL DEFAULT 0,
     worker_id text,
     worker_host text,
     worker_pid integer,
     lease_until timestamptz,
     local_id bigint,
     request_id text,
     cost_usd double precision,
     file text,
     bytes bigint,
     sha256 text,
     error_json text,
     updated_at bigint NOT NULL,
     PRIMARY KEY (batch_id, row_key)
   );
   CREATE INDEX batch_rows_claim ON dreamina.batch_rows (batch_id, state, ord);
   CREATE TABLE dreamina.throttle (
     scope text PRIMARY KEY,
     pause_until timestamptz NOT NULL,
     rps double precision,
     updated_at timestamptz NOT NULL,
     host text,
     pid integer
   );
   ${FUNCTIONS}`,
  // 2: a job cancelled while queued or failed on the service no longer blocks its row's next
  // submit (whether to run the row again is its holder's decision: a rerun, --retry-failed).
  rowIntentSql("CREATE OR REPLACE", "'rejected', 'abandoned', 'cancelled', 'failed'"),
];

/** The schema version this program writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

async function currentVersion(client: pg.PoolClient): Promise<number | undefined> {
  const exists = await client.query<{ ok: boolean }>(
    "SELECT to_regclass('dreamina.schema_version') IS NOT NULL AS ok",
  );
  if (!exists.rows[0]?.ok) return undefined;
  const row = await client.query<{ version: number }>(
    "SELECT version FROM dreamina.schema_version WHERE module = 'store'",
  );
  return row.rows[0]?.version ?? 0;
}

function refuseNewer(version: number, location: string): never {
  throw new StoreError(
    `the job store at ${location} has schema version ${version}, newer than this program knows ` +
      `(${SCHEMA_VERSION}): upgrade dreamina-i2v on this machine`,
    { code: "store_too_new" },
  );
}

/** Creates or migrates the schema; safe when many processes do it at once. Returns the version. */
export async function migrate(client: pg.PoolClient, location: string): Promise<number> {
  // The usual case, without taking any lock: the schema is there and current.
  const seen = await currentVersion(client);
  if (seen === SCHEMA_VERSION) return seen;
  if (seen !== undefined && seen > SCHEMA_VERSION) refuseNewer(seen, location);
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_KEY[0], LOCK_KEY[1]]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${SCHEMA}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS dreamina.schema_version (
         module text PRIMARY KEY,
         version integer NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
       )`,
    );
    const version = (await currentVersion(client)) ?? 0;
    if (version > SCHEMA_VERSION) refuseNewer(version, location);
    for (let v = version; v < SCHEMA_VERSION; v++) await client.query(MIGRATIONS[v]!);
    if (version < SCHEMA_VERSION) {
      await client.query(
        `INSERT INTO dreamina.schema_version (module, version) VALUES ('store', $1)
         ON CONFLICT (module) DO UPDATE SET version = excluded.version, applied_at = clock_timestamp()`,
        [SCHEMA_VERSION],
      );
    }
    await client.query("COMMIT");
    return SCHEMA_VERSION;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  }
}
