// The job journal: one SQLite file recording every request this tool makes, so that a job
// survives the process that started it (resume, status, download later) and so that a submit
// whose outcome is unknown is never forgotten, and never silently resent.
//
// Node only (better-sqlite3): nothing under src/api or src/run may import this file.
//
// Durability: WAL with synchronous=FULL. The write rate is tiny (an intent row, then a row per
// observed status change every few seconds at most), so an fsync per commit costs nothing
// noticeable, and it makes the intent row durable even against power loss before the POST
// goes out, which NORMAL (durable against a process crash only) would not.
//
// Concurrency: several processes (a batch, a `status` in another terminal) may write at once.
// busy_timeout makes writers wait for each other; every read-then-write runs in a
// BEGIN IMMEDIATE transaction, because in WAL mode a deferred transaction that later wants to
// write fails at once with SQLITE_BUSY_SNAPSHOT instead of waiting.
//
// A request id is never lost: when the write that records an accepted submit fails (the file
// locked past the busy timeout, a full disk), the id goes to a recovery file beside the journal
// (journal-recovery.ts) and is printed on stderr; the journal takes it in at its next write or
// open. Only if that file cannot be written either does submitAccepted throw, the id in its message.

import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { hostname } from "node:os";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { redactSecrets } from "../api/redact.js";
import type { JobStatusValue } from "../api/types.js";
import { defaultJournalPath } from "../config/paths.js";
import type { RunTimePrior } from "../run/schedule.js";
import {
  hasRecoveredSubmits,
  type RecoveredSubmit,
  readRecoveredSubmits,
  recoveryDirFor,
  removeRecoveredFiles,
  writeRecoveredSubmit,
} from "./recovery.js";
import type { JournalState } from "./states.js";

export { type RecoveredSubmit, recoveryDirFor } from "./recovery.js";

type Db = Database.Database;

export { JOURNAL_STATES, type JournalState } from "./states.js";

export const FINAL_STATES: readonly JournalState[] = [
  "rejected",
  "succeeded",
  "failed",
  "cancelled",
  "abandoned",
];

/** Written in place of a `data:` URI: enough to recognise the image again, never its bytes. */
export interface RedactedDataUri {
  dataUri: true;
  mime: string;
  sha256: string;
  bytes: number;
}

export interface BeginSubmitParams {
  modelId: string;
  /** The model input exactly as it will be POSTed; stored with data URIs replaced. */
  input: unknown;
  baseUrl: string;
  batchId?: string | undefined;
  /** The batch row this request belongs to (its key in the batch file). */
  rowKey?: string | undefined;
}

export interface SubmitAcceptedParams {
  requestId: string;
  statusUrl?: string | undefined;
  resultUrl?: string | undefined;
  cancelUrl?: string | undefined;
}

export type TimeInput = Date | number | string;

export interface StatusObservation {
  status: JobStatusValue;
  rawStatus?: string | undefined;
  queuePosition?: number | undefined;
  /** When it was observed; now by default. */
  at?: TimeInput | undefined;
}

export interface ResultObservation {
  status: JobStatusValue;
  rawStatus?: string | undefined;
  outputUrls?: string[] | undefined;
  error?: unknown;
  cost?: number | undefined;
  /** The service's own timestamps, verbatim (their format is undocumented). */
  createdAt?: string | undefined;
  finishedAt?: string | undefined;
  raw?: unknown;
  at?: TimeInput | undefined;
}

export interface FileRecord {
  path: string;
  url: string | undefined;
  bytes: number | undefined;
  sha256: string | undefined;
  at: string;
}

export interface Transition {
  /** A JournalState, or the service status that caused it. */
  status: string;
  rawStatus: string | undefined;
  queuePosition: number | undefined;
  at: string;
}

export interface JournalRecord {
  localId: number;
  requestId: string | undefined;
  modelId: string;
  baseUrl: string;
  batchId: string | undefined;
  rowKey: string | undefined;
  /**
   * The state to act on. A row still `submitting` whose process is gone (or that is older than
   * the grace period) is reported as `submission_unknown`: it may have been accepted.
   */
  state: JournalState;
  /** The state as stored, for diagnosis. */
  storedState: JournalState;
  rawStatus: string | undefined;
  /** The input as stored: data URIs replaced by {@link RedactedDataUri}. */
  input: unknown;
  inputDigest: string;
  prompt: string | undefined;
  frames: number | undefined;
  seed: number | undefined;
  statusUrl: string | undefined;
  resultUrl: string | undefined;
  cancelUrl: string | undefined;
  createdAt: string;
  submittedAt: string | undefined;
  startedAt: string | undefined;
  finishedAt: string | undefined;
  updatedAt: string;
  outputUrls: string[];
  cost: number | undefined;
  /** The service's job error (from the result), verbatim but redacted. */
  jobError: unknown;
  /** The last error this tool met for this request (submit refusal, poll failure...). */
  lastError: unknown;
  serviceCreatedAt: string | undefined;
  serviceFinishedAt: string | undefined;
  pid: number | undefined;
  host: string | undefined;
}

export interface JournalRecordDetail extends JournalRecord {
  transitions: Transition[];
  /** Every distinct queue position seen, in order. */
  queuePositions: number[];
  files: FileRecord[];
  result: unknown;
}

export interface ListParams {
  /** Default 50, newest first. */
  limit?: number | undefined;
  state?: JournalState | readonly JournalState[] | undefined;
  batchId?: string | undefined;
  /** Only rows created at or after this time. */
  since?: TimeInput | undefined;
}

/** The polling schedule's own type: the journal is where its numbers come from. */
export type { RunTimePrior };

export interface JournalOptions {
  /**
   * How long a writer waits for another process's lock. Default `$DREAMINA_JOURNAL_BUSY_TIMEOUT_MS`,
   * else 10 s.
   */
  busyTimeoutMs?: number;
  /**
   * Where the journal says what must not go unseen (a request id it had to keep outside the
   * database). Default: a line on stderr, never silenced.
   */
  onWarning?: (message: string) => void;
  /**
   * A `submitting` row older than this is reported as `submission_unknown` even if a process
   * with its pid still exists (pids are reused). Default 10 minutes: far above any submit timeout.
   */
  submitGraceMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

/** One step of a module's schema; step i (0-based) brings the module to version i + 1. */
export type Migration = string | ((db: Db) => void);

export class JournalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "JournalError";
  }
}

/**
 * The service accepted a request but neither the journal nor the recovery file could record it.
 * The id is in the message (and was printed on stderr as soon as it happened).
 */
export class UnrecordedSubmitError extends JournalError {
  readonly requestId: string;
  constructor(message: string, requestId: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "UnrecordedSubmitError";
    this.requestId = requestId;
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, message: this.message, requestId: this.requestId };
  }
}

/** What a replay of the recovery files did. */
export interface RecoveryReport {
  /** Ids taken into the journal now, with the row that got each. */
  replayed: RecoveredSubmit[];
  /** Ids that match no row awaiting them (the journal was replaced?): kept, and warned about. */
  unmatched: (RecoveredSubmit & { file: string })[];
  /** Files that could not be read (being written, or torn): kept. */
  unreadable: string[];
}

/** `$DREAMINA_JOURNAL_BUSY_TIMEOUT_MS`, when set. */
function busyTimeoutFromEnv(): number | undefined {
  const raw = process.env.DREAMINA_JOURNAL_BUSY_TIMEOUT_MS;
  if (raw === undefined || raw.trim() === "") return undefined;
  const ms = Number(raw);
  if (!Number.isInteger(ms) || ms < 0) {
    throw new JournalError(
      `DREAMINA_JOURNAL_BUSY_TIMEOUT_MS must be a whole number of milliseconds, 0 or more (got ${JSON.stringify(raw)})`,
    );
  }
  return ms;
}

function warnOnStderr(message: string): void {
  process.stderr.write(`warning: ${redactSecrets(message)}\n`);
}

/** Bumped only if the `migrations` table itself ever changes shape. */
const BOOTSTRAP_VERSION = 1;
export const JOURNAL_MODULE = "journal";

const JOURNAL_MIGRATIONS: readonly Migration[] = [
  `CREATE TABLE jobs (
     local_id INTEGER PRIMARY KEY AUTOINCREMENT,
     request_id TEXT UNIQUE,
     model_id TEXT NOT NULL,
     base_url TEXT NOT NULL,
     batch_id TEXT,
     row_key TEXT,
     state TEXT NOT NULL,
     raw_status TEXT,
     input_json TEXT NOT NULL,
     input_digest TEXT NOT NULL,
     prompt TEXT,
     frames INTEGER,
     seed INTEGER,
     status_url TEXT,
     result_url TEXT,
     cancel_url TEXT,
     created_at INTEGER NOT NULL,
     submitted_at INTEGER,
     started_at INTEGER,
     finished_at INTEGER,
     updated_at INTEGER NOT NULL,
     output_urls_json TEXT,
     cost REAL,
     job_error_json TEXT,
     last_error_json TEXT,
     result_json TEXT,
     service_created_at TEXT,
     service_finished_at TEXT,
     pid INTEGER,
     host TEXT
   );
   CREATE INDEX jobs_state ON jobs (state);
   CREATE INDEX jobs_batch ON jobs (batch_id, row_key);
   CREATE INDEX jobs_created ON jobs (created_at);
   CREATE INDEX jobs_prior ON jobs (model_id, frames, state, finished_at);
   CREATE TABLE transitions (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     local_id INTEGER NOT NULL REFERENCES jobs (local_id),
     status TEXT NOT NULL,
     raw_status TEXT,
     queue_position INTEGER,
     at INTEGER NOT NULL
   );
   CREATE INDEX transitions_job ON transitions (local_id, id);
   CREATE TABLE files (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     local_id INTEGER NOT NULL REFERENCES jobs (local_id),
     path TEXT NOT NULL,
     url TEXT,
     bytes INTEGER,
     sha256 TEXT,
     at INTEGER NOT NULL
   );
   CREATE INDEX files_job ON files (local_id);`,
];

/** Statuses that end a job on the service (`completed` included: nothing more will run). */
const TERMINAL_STATES: ReadonlySet<string> = new Set(["completed", "succeeded", "failed", "cancelled"]);
/** States that nothing may move a row out of, except a result settling `completed`. */
const STICKY_STATES: ReadonlySet<string> = new Set([
  "rejected",
  "succeeded",
  "failed",
  "cancelled",
  "abandoned",
]);

/**
 * Bring `module`'s tables to `migrations.length`, applying missing steps in one IMMEDIATE
 * transaction (so two processes opening the file at once do not both migrate). Each module
 * keeps its own version in the `migrations` table, so the batch module can evolve
 * independently of the journal in the same file. Idempotent.
 */
export function migrateModule(db: Db, module: string, migrations: readonly Migration[]): number {
  ensureBootstrap(db);
  // Up to date (the usual case): a read, so that opening the journal does not wait for a
  // writer lock another process may hold for a while.
  const known = db.prepare("SELECT version FROM migrations WHERE module = ?").get(module) as
    | { version: number }
    | undefined;
  if (known?.version === migrations.length) return migrations.length;
  const run = db.transaction(() => {
    const row = db.prepare("SELECT version FROM migrations WHERE module = ?").get(module) as
      | { version: number }
      | undefined;
    const current = row?.version ?? 0;
    if (current > migrations.length) {
      throw new JournalError(
        `the ${module} tables in ${db.name} are at version ${current}, newer than this program knows ` +
          `(${migrations.length}): upgrade dreamina-i2v`,
      );
    }
    for (let v = current; v < migrations.length; v++) {
      const step = migrations[v]!;
      if (typeof step === "string") db.exec(step);
      else step(db);
    }
    if (current < migrations.length) {
      db.prepare(
        `INSERT INTO migrations (module, version, applied_at) VALUES (?, ?, ?)
         ON CONFLICT (module) DO UPDATE SET version = excluded.version, applied_at = excluded.applied_at`,
      ).run(module, migrations.length, Date.now());
    }
    return migrations.length;
  });
  return run.immediate();
}

/** The version a module's tables are at (0 when it never migrated). */
export function moduleVersion(db: Db, module: string): number {
  ensureBootstrap(db);
  const row = db.prepare("SELECT version FROM migrations WHERE module = ?").get(module) as
    | { version: number }
    | undefined;
  return row?.version ?? 0;
}

function ensureBootstrap(db: Db): void {
  // PRAGMA user_version versions the file's layout as a whole (today: "has a migrations table");
  // per-module versions live in that table.
  const version = db.pragma("user_version", { simple: true }) as number;
  if (version === BOOTSTRAP_VERSION) return;
  if (version > BOOTSTRAP_VERSION) {
    throw new JournalError(
      `${db.name} has layout version ${version}, newer than this program knows: upgrade dreamina-i2v`,
    );
  }
  db.transaction(() => {
    if ((db.pragma("user_version", { simple: true }) as number) >= BOOTSTRAP_VERSION) return;
    db.exec(
      `CREATE TABLE IF NOT EXISTS migrations (
         module TEXT PRIMARY KEY,
         version INTEGER NOT NULL,
         applied_at INTEGER NOT NULL
       )`,
    );
    db.pragma(`user_version = ${BOOTSTRAP_VERSION}`);
  }).immediate();
}

interface JobRow {
  local_id: number;
  request_id: string | null;
  model_id: string;
  base_url: string;
  batch_id: string | null;
  row_key: string | null;
  state: JournalState;
  raw_status: string | null;
  input_json: string;
  input_digest: string;
  prompt: string | null;
  frames: number | null;
  seed: number | null;
  status_url: string | null;
  result_url: string | null;
  cancel_url: string | null;
  created_at: number;
  submitted_at: number | null;
  started_at: number | null;
  finished_at: number | null;
  updated_at: number;
  output_urls_json: string | null;
  cost: number | null;
  job_error_json: string | null;
  last_error_json: string | null;
  result_json: string | null;
  service_created_at: string | null;
  service_finished_at: string | null;
  pid: number | null;
  host: string | null;
}

type RowState = Pick<JobRow, "local_id" | "state">;

interface AppliedRecovery extends RecoveryReport {
  /** Files whose id is in the journal once the transaction commits. */
  committed: string[];
}

export class Journal {
  readonly #db: Db;
  readonly path: string;
  readonly #grace: number;
  readonly #now: () => number;
  readonly #host = hostname();
  /**
   * Prepared statements by SQL text. Preparing parses and plans the SQL again every time; a
   * batch writes a dozen statements per row, so each is prepared once per connection.
   */
  readonly #statements = new Map<string, Database.Statement>();
  /** One transaction wrapper for every write (better-sqlite3 nests it as a savepoint). */
  readonly #tx: Database.Transaction<(fn: () => unknown) => unknown>;
  /** `<path>.recovered`; undefined in memory. */
  readonly #recoveryDir: string | undefined;
  /** Ids were kept in the recovery folder by this process: the next write takes them in. */
  #recoveryPending = false;
  #lastRecovery: RecoveryReport | undefined;
  readonly #warn: (message: string) => void;

  private constructor(db: Db, path: string, options: JournalOptions) {
    this.#db = db;
    this.path = path;
    this.#grace = options.submitGraceMs ?? 10 * 60_000;
    this.#now = options.now ?? Date.now;
    this.#tx = db.transaction((fn: () => unknown) => fn());
    this.#recoveryDir = path === ":memory:" ? undefined : recoveryDirFor(path);
    this.#warn = options.onWarning ?? warnOnStderr;
  }

  #prepare(sql: string): Database.Statement {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  /**
   * `fn` in a BEGIN IMMEDIATE transaction (a savepoint when one is already open). Ids this
   * process had to keep in the recovery folder are taken in first, in the same transaction: the
   * status writes that follow an accepted submit then find its row.
   */
  #immediate<T>(fn: () => T): T {
    if (!this.#recoveryPending || this.#db.inTransaction || !this.#recoveryDir) {
      return this.#tx.immediate(fn) as T;
    }
    const dir = this.#recoveryDir;
    let applied: AppliedRecovery | undefined;
    const out = this.#tx.immediate(() => {
      applied = this.#applyRecovered(dir);
      return fn();
    }) as T;
    if (applied) this.#finishReplay(applied);
    return out;
  }

  /** Open (creating directories and the file if needed) and migrate. Default: {@link defaultJournalPath}. */
  static open(path: string = defaultJournalPath(), options: JournalOptions = {}): Journal {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    const db = new Database(path);
    try {
      // busy_timeout first: switching to WAL itself needs a lock another process may hold.
      const busyMs = options.busyTimeoutMs ?? busyTimeoutFromEnv() ?? 10_000;
      db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyMs))}`);
      const mode = db.pragma("journal_mode = WAL", { simple: true });
      if (path !== ":memory:" && mode !== "wal") {
        throw new JournalError(`could not put ${path} in WAL mode (got ${String(mode)})`);
      }
      db.pragma("synchronous = FULL");
      db.pragma("foreign_keys = ON");
      migrateModule(db, JOURNAL_MODULE, JOURNAL_MIGRATIONS);
    } catch (error) {
      db.close();
      throw error;
    }
    const journal = new Journal(db, path, options);
    journal.#replayAtOpen();
    return journal;
  }

  /** The connection, for modules that keep their own tables here (see {@link migrateModule}). */
  get db(): Db {
    return this.#db;
  }

  /** Migrate another module's tables in this file. */
  migrate(module: string, migrations: readonly Migration[]): number {
    if (module === JOURNAL_MODULE) throw new JournalError(`module name "${module}" is reserved`);
    return migrateModule(this.#db, module, migrations);
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }

  /** Write the intent row, durably, BEFORE the submit is sent. Returns its local id. */
  beginSubmit(params: BeginSubmitParams): number {
    const input = redactStored(params.input);
    const inputJson = JSON.stringify(input ?? null);
    const fields = (isPlainObject(params.input) ? params.input : {}) as Record<string, unknown>;
    const now = this.#now();
    // One transaction, one fsync: the row and its first transition are durable together.
    return this.#immediate((): number => {
      const info = this.#prepare(
        `INSERT INTO jobs (model_id, base_url, batch_id, row_key, state, input_json, input_digest,
           prompt, frames, seed, created_at, updated_at, pid, host)
         VALUES (?, ?, ?, ?, 'submitting', ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        params.modelId,
        redactText(params.baseUrl),
        params.batchId ?? null,
        params.rowKey ?? null,
        redactText(inputJson),
        inputDigest(input),
        typeof fields.prompt === "string" ? redactText(fields.prompt) : null,
        Number.isInteger(fields.frames) ? (fields.frames as number) : null,
        Number.isInteger(fields.seed) ? (fields.seed as number) : null,
        now,
        now,
        process.pid,
        this.#host,
      );
      const localId = Number(info.lastInsertRowid);
      this.#insertTransition(localId, "submitting", undefined, undefined, now);
      return localId;
    });
  }

  /**
   * The service accepted the submit. Also settles a `submission_unknown` row found later.
   *
   * When the write fails for a reason of the storage (locked past the busy timeout, a full or
   * read-only disk), the id is kept in the recovery folder beside the journal and announced
   * through `onWarning` (stderr), and this returns normally: the id is safe, the job goes on.
   * Throws {@link UnrecordedSubmitError} (the id in its message) only when that fails too.
   */
  submitAccepted(localId: number, params: SubmitAcceptedParams): void {
    try {
      this.#recordAccepted(localId, params);
    } catch (error) {
      if (error instanceof JournalError) throw error; // a caller's mistake, not the storage's
      this.#keepAcceptedOutside(localId, params, error);
    }
  }

  #recordAccepted(localId: number, params: SubmitAcceptedParams): void {
    const now = this.#now();
    this.#immediate(() => {
      const row = this.#stateByLocalId(localId);
      if (!row) throw new JournalError(`no journal row ${localId} (for request ${params.requestId})`);
      if (row.state !== "submitting" && row.state !== "submission_unknown" && row.state !== "submitted") {
        throw new JournalError(
          `journal row ${localId} is ${row.state}, not awaiting a submit outcome (request ${params.requestId})`,
        );
      }
      this.#prepare(
        `UPDATE jobs SET request_id = ?, state = 'submitted', status_url = ?, result_url = ?,
               cancel_url = ?, submitted_at = COALESCE(submitted_at, ?), updated_at = ?
             WHERE local_id = ?`,
      ).run(
        params.requestId,
        params.statusUrl ?? null,
        params.resultUrl ?? null,
        params.cancelUrl ?? null,
        now,
        now,
        localId,
      );
      this.#insertTransition(localId, "submitted", undefined, undefined, now);
    });
  }

  #keepAcceptedOutside(localId: number, params: SubmitAcceptedParams, error: unknown): void {
    const reason = redactText(error instanceof Error ? error.message : String(error));
    const billed = `the service accepted request ${params.requestId} (it runs and is billed)`;
    let fileError: unknown = new Error("the journal is in memory");
    if (this.#recoveryDir) {
      const entry: RecoveredSubmit = {
        kind: "submit_accepted",
        journal: this.path,
        localId,
        requestId: params.requestId,
        statusUrl: params.statusUrl === undefined ? undefined : redactText(params.statusUrl),
        resultUrl: params.resultUrl === undefined ? undefined : redactText(params.resultUrl),
        cancelUrl: params.cancelUrl === undefined ? undefined : redactText(params.cancelUrl),
        at: iso(this.#now()),
        pid: process.pid,
        host: this.#host,
        error: reason,
      };
      try {
        const file = writeRecoveredSubmit(this.#recoveryDir, entry);
        this.#recoveryPending = true;
        this.#warn(
          `${billed}, but the journal ${this.path} could not record it (${reason}). The id is kept in ` +
            `${file} and goes into the journal the next time it can be written (\`dreamina jobs\` does it).`,
        );
        return;
      } catch (writeError) {
        fileError = writeError;
      }
    }
    const message =
      `${billed}, but it could not be recorded: the journal ${this.path} failed (${reason}) and so did ` +
      `the recovery folder ${this.#recoveryDir ?? "(none)"} (${fileError instanceof Error ? fileError.message : String(fileError)}). ` +
      `Note the id ${params.requestId}: \`dreamina wait ${params.requestId}\` fetches the video.`;
    this.#warn(message);
    throw new UnrecordedSubmitError(message, params.requestId, { cause: error });
  }

  /**
   * Takes the ids kept in the recovery folder into the journal (idempotent: an id already
   * recorded is simply dropped), then removes their files, only after the commit. Runs at open
   * and before the first write after an id had to be kept there. Throws if the journal cannot
   * be written (the files stay for next time).
   */
  replayRecovered(): RecoveryReport {
    const dir = this.#recoveryDir;
    if (!dir) return { replayed: [], unmatched: [], unreadable: [] };
    const applied = this.#tx.immediate(() => this.#applyRecovered(dir)) as AppliedRecovery;
    this.#finishReplay(applied);
    return this.#lastRecovery!;
  }

  /** What the last replay did (at open, or at a later write), if one ran. */
  get lastRecovery(): RecoveryReport | undefined {
    return this.#lastRecovery;
  }

  #replayAtOpen(): void {
    const dir = this.#recoveryDir;
    if (!dir || !hasRecoveredSubmits(dir)) return;
    try {
      this.replayRecovered();
    } catch (error) {
      this.#recoveryPending = true;
      this.#warn(
        `request ids kept in ${dir} could not be taken into the journal yet ` +
          `(${error instanceof Error ? error.message : String(error)}); they stay there and are tried again`,
      );
    }
  }

  /** Must run inside a transaction. */
  #applyRecovered(dir: string): AppliedRecovery {
    const { entries, unreadable } = readRecoveredSubmits(dir);
    const applied: AppliedRecovery = { committed: [], replayed: [], unmatched: [], unreadable };
    for (const { file, entry } of entries) {
      const outcome = this.#applyRecoveredSubmit(entry);
      if (outcome === "unmatched") applied.unmatched.push({ ...entry, file });
      else {
        applied.committed.push(file);
        if (outcome === "applied") applied.replayed.push(entry);
      }
    }
    return applied;
  }

  #applyRecoveredSubmit(entry: RecoveredSubmit): "applied" | "already" | "unmatched" {
    if (this.#stateByRequestId(entry.requestId)) return "already";
    const row = this.#prepare("SELECT local_id, state, request_id FROM jobs WHERE local_id = ?").get(
      entry.localId,
    ) as (RowState & { request_id: string | null }) | undefined;
    if (!row || row.request_id !== null) return "unmatched";
    const now = this.#now();
    const at = Number.isFinite(Date.parse(entry.at)) ? Date.parse(entry.at) : now;
    // A row still awaiting its outcome becomes submitted; one settled meanwhile (abandoned by a
    // person) keeps its state but gets the id, so the job can still be found and fetched.
    const awaiting = row.state === "submitting" || row.state === "submission_unknown";
    this.#prepare(
      `UPDATE jobs SET request_id = ?, status_url = COALESCE(?, status_url),
             result_url = COALESCE(?, result_url), cancel_url = COALESCE(?, cancel_url),
             submitted_at = COALESCE(submitted_at, ?), updated_at = ?,
             state = CASE WHEN ? THEN 'submitted' ELSE state END
           WHERE local_id = ?`,
    ).run(
      entry.requestId,
      entry.statusUrl ?? null,
      entry.resultUrl ?? null,
      entry.cancelUrl ?? null,
      at,
      now,
      awaiting ? 1 : 0,
      row.local_id,
    );
    if (awaiting) this.#insertTransition(row.local_id, "submitted", undefined, undefined, at);
    return "applied";
  }

  /** After the commit: remove what is in the journal now, and say what could not be matched. */
  #finishReplay(applied: AppliedRecovery): void {
    removeRecoveredFiles(applied.committed);
    this.#recoveryPending = false;
    this.#lastRecovery = {
      replayed: applied.replayed,
      unmatched: applied.unmatched,
      unreadable: applied.unreadable,
    };
    for (const u of applied.unmatched) {
      this.#warn(
        `request ${u.requestId} (accepted ${u.at}) is kept in ${u.file} but matches no journal row awaiting ` +
          `it (local id ${u.localId}); it was not lost: \`dreamina wait ${u.requestId}\` fetches it. Remove the file once done.`,
      );
    }
  }

  /** The service definitely refused the submit (nothing was created, nothing billed). */
  submitRejected(localId: number, error: unknown): void {
    this.#settleSubmit(localId, "rejected", error);
  }

  /** The submit's outcome cannot be known: it may have been accepted and billed. */
  submitUnknown(localId: number, error: unknown): void {
    this.#settleSubmit(localId, "submission_unknown", error);
  }

  /** A person decided an unknown submission will not be followed (or resent by us). */
  markAbandoned(localId: number, reason?: string): void {
    this.#settleSubmit(localId, "abandoned", reason === undefined ? undefined : { message: reason });
  }

  #settleSubmit(localId: number, state: JournalState, error: unknown): void {
    const now = this.#now();
    this.#immediate(() => {
      const row = this.#stateByLocalId(localId);
      if (!row) throw new JournalError(`no journal row ${localId}`);
      if (row.state !== "submitting" && row.state !== "submission_unknown") {
        throw new JournalError(`journal row ${localId} is ${row.state}, not awaiting a submit outcome`);
      }
      this.#prepare(
        `UPDATE jobs SET state = ?, last_error_json = COALESCE(?, last_error_json), updated_at = ?,
               finished_at = CASE WHEN ? THEN COALESCE(finished_at, ?) ELSE finished_at END
             WHERE local_id = ?`,
      ).run(state, storeError(error), now, FINAL_STATES.includes(state) ? 1 : 0, now, localId);
      this.#insertTransition(localId, state, undefined, undefined, now);
    });
  }

  /** Rows whose submit may or may not have been accepted, including `submitting` rows left by a crash. */
  unresolvedSubmissions(): JournalRecord[] {
    const rows = this.#prepare(
      "SELECT * FROM jobs WHERE state IN ('submitting', 'submission_unknown') ORDER BY local_id",
    ).all() as JobRow[];
    return rows.map((r) => this.#toRecord(r)).filter((r) => r.state === "submission_unknown");
  }

  /**
   * A status seen for an accepted request. A transition row is added only when the status or
   * the queue position changed. Returns false when the request is not in this journal.
   */
  recordStatus(requestId: string, observation: StatusObservation): boolean {
    const at = toMillis(observation.at, this.#now);
    return this.#immediate(() => {
      const row = this.#stateByRequestId(requestId);
      if (!row) return false;
      this.#applyStatus(row, observation.status, observation.rawStatus, observation.queuePosition, at);
      return true;
    });
  }

  /** The result endpoint's answer. Returns false when the request is not in this journal. */
  recordResult(requestId: string, result: ResultObservation): boolean {
    const at = toMillis(result.at, this.#now);
    return this.#immediate(() => {
      const row = this.#stateByRequestId(requestId);
      if (!row) return false;
      this.#applyStatus(row, result.status, result.rawStatus, undefined, at);
      const urls = result.outputUrls && result.outputUrls.length > 0 ? result.outputUrls : undefined;
      this.#prepare(
        `UPDATE jobs SET
               output_urls_json = COALESCE(?, output_urls_json),
               job_error_json = COALESCE(?, job_error_json),
               cost = COALESCE(?, cost),
               service_created_at = COALESCE(?, service_created_at),
               service_finished_at = COALESCE(?, service_finished_at),
               result_json = COALESCE(?, result_json),
               updated_at = ?
             WHERE local_id = ?`,
      ).run(
        urls ? redactText(JSON.stringify(urls)) : null,
        result.error === undefined || result.error === null ? null : storeJson(result.error),
        typeof result.cost === "number" && Number.isFinite(result.cost) ? result.cost : null,
        result.createdAt ?? null,
        result.finishedAt ?? null,
        result.raw === undefined ? null : storeJson(result.raw),
        at,
        row.local_id,
      );
      return true;
    });
  }

  /** An error this tool met while following the request (the state is left as it is). */
  recordError(requestId: string, error: unknown): boolean {
    const stored = storeError(error);
    const now = this.#now();
    return this.#immediate(() => {
      const info = this.#prepare(
        "UPDATE jobs SET last_error_json = ?, updated_at = ? WHERE request_id = ?",
      ).run(stored, now, requestId);
      return info.changes > 0;
    });
  }

  /** A file downloaded for the request. */
  recordFile(
    requestId: string,
    file: { path: string; url?: string | undefined; bytes?: number | undefined; sha256?: string | undefined },
  ): boolean {
    const now = this.#now();
    return this.#immediate(() => {
      const row = this.#stateByRequestId(requestId);
      if (!row) return false;
      this.#prepare(
        "INSERT INTO files (local_id, path, url, bytes, sha256, at) VALUES (?, ?, ?, ?, ?, ?)",
      ).run(
        row.local_id,
        file.path,
        file.url === undefined ? null : redactText(file.url),
        file.bytes ?? null,
        file.sha256 ?? null,
        now,
      );
      this.#prepare("UPDATE jobs SET updated_at = ? WHERE local_id = ?").run(now, row.local_id);
      return true;
    });
  }

  /**
   * One request with its history. A string is looked up as a request_id first, then (when it
   * is all digits) as a local id; a number is a local id.
   */
  get(requestIdOrLocalId: string | number): JournalRecordDetail | undefined {
    let row: JobRow | undefined;
    if (typeof requestIdOrLocalId === "number") row = this.#rowByLocalId(requestIdOrLocalId);
    else {
      row = this.#rowByRequestId(requestIdOrLocalId);
      if (!row && /^\d{1,15}$/.test(requestIdOrLocalId)) row = this.#rowByLocalId(Number(requestIdOrLocalId));
    }
    if (!row) return undefined;
    const transitions = (
      this.#prepare(
        "SELECT status, raw_status, queue_position, at FROM transitions WHERE local_id = ? ORDER BY id",
      ).all(row.local_id) as {
        status: string;
        raw_status: string | null;
        queue_position: number | null;
        at: number;
      }[]
    ).map((t) => ({
      status: t.status,
      rawStatus: t.raw_status ?? undefined,
      queuePosition: t.queue_position ?? undefined,
      at: iso(t.at),
    }));
    const queuePositions: number[] = [];
    for (const t of transitions) {
      if (t.queuePosition !== undefined && queuePositions.at(-1) !== t.queuePosition) {
        queuePositions.push(t.queuePosition);
      }
    }
    const files = (
      this.#prepare("SELECT path, url, bytes, sha256, at FROM files WHERE local_id = ? ORDER BY id").all(
        row.local_id,
      ) as {
        path: string;
        url: string | null;
        bytes: number | null;
        sha256: string | null;
        at: number;
      }[]
    ).map((f) => ({
      path: f.path,
      url: f.url ?? undefined,
      bytes: f.bytes ?? undefined,
      sha256: f.sha256 ?? undefined,
      at: iso(f.at),
    }));
    return {
      ...this.#toRecord(row),
      transitions,
      queuePositions,
      files,
      result: parseStoredJson(row.result_json),
    };
  }

  /** Newest first. `state` filters on the reported state (a dead `submitting` row is `submission_unknown`). */
  list(params: ListParams = {}): JournalRecord[] {
    const limit = Math.max(1, Math.min(10_000, Math.floor(params.limit ?? 50)));
    const where: string[] = [];
    const args: unknown[] = [];
    const states = params.state === undefined ? undefined : ([] as JournalState[]).concat(params.state);
    if (states) {
      // A stored `submitting` row may be reported as `submission_unknown`: fetch both, filter after.
      const stored = new Set<JournalState>(states);
      if (stored.has("submission_unknown")) stored.add("submitting");
      where.push(`state IN (${[...stored].map(() => "?").join(", ")})`);
      args.push(...stored);
    }
    if (params.batchId !== undefined) {
      where.push("batch_id = ?");
      args.push(params.batchId);
    }
    if (params.since !== undefined) {
      where.push("created_at >= ?");
      args.push(toMillis(params.since, this.#now));
    }
    const sql =
      `SELECT * FROM jobs ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ` +
      "ORDER BY created_at DESC, local_id DESC";
    const out: JournalRecord[] = [];
    for (const row of this.#db.prepare(sql).iterate(...args) as IterableIterator<JobRow>) {
      const record = this.#toRecord(row);
      if (states && !states.includes(record.state)) continue;
      out.push(record);
      if (out.length >= limit) break;
    }
    return out;
  }

  /**
   * How long this model takes to run, from the last `window` succeeded jobs with these frames:
   * in_progress → terminal when in_progress was seen, else submit → terminal. The fastest and
   * slowest 10 % are dropped before mean and standard deviation (a job polled after a laptop
   * slept must not skew every estimate). Undefined when there is no history.
   */
  runTimePrior(modelId: string, frames?: number, window = 50): RunTimePrior | undefined {
    const rows = this.#prepare(
      `SELECT finished_at - COALESCE(started_at, submitted_at) AS ms FROM jobs
         WHERE model_id = ? AND state = 'succeeded' AND (? IS NULL OR frames = ?)
           AND finished_at IS NOT NULL AND COALESCE(started_at, submitted_at) IS NOT NULL
         ORDER BY finished_at DESC LIMIT ?`,
    ).all(modelId, frames ?? null, frames ?? null, Math.max(1, Math.floor(window))) as { ms: number }[];
    const durations = rows.map((r) => r.ms).filter((ms) => Number.isFinite(ms) && ms >= 0);
    return trimmedStats(durations);
  }

  /** What a write needs of a row: not its stored input, result and errors. */
  #stateByLocalId(localId: number): RowState | undefined {
    return this.#prepare("SELECT local_id, state FROM jobs WHERE local_id = ?").get(localId) as
      | RowState
      | undefined;
  }

  #stateByRequestId(requestId: string): RowState | undefined {
    return this.#prepare("SELECT local_id, state FROM jobs WHERE request_id = ?").get(requestId) as
      | RowState
      | undefined;
  }

  #rowByLocalId(localId: number): JobRow | undefined {
    return this.#prepare("SELECT * FROM jobs WHERE local_id = ?").get(localId) as JobRow | undefined;
  }

  #rowByRequestId(requestId: string): JobRow | undefined {
    return this.#prepare("SELECT * FROM jobs WHERE request_id = ?").get(requestId) as JobRow | undefined;
  }

  #insertTransition(
    localId: number,
    status: string,
    rawStatus: string | undefined,
    queuePosition: number | undefined,
    at: number,
  ): void {
    this.#prepare(
      "INSERT INTO transitions (local_id, status, raw_status, queue_position, at) VALUES (?, ?, ?, ?, ?)",
    ).run(localId, status, rawStatus ?? null, queuePosition ?? null, at);
  }

  /** Must run inside a transaction. */
  #applyStatus(
    row: RowState,
    status: JobStatusValue,
    rawStatus: string | undefined,
    queuePosition: number | undefined,
    at: number,
  ): void {
    const position = Number.isInteger(queuePosition) ? queuePosition : undefined;
    const last = this.#prepare(
      "SELECT status, queue_position FROM transitions WHERE local_id = ? ORDER BY id DESC LIMIT 1",
    ).get(row.local_id) as { status: string; queue_position: number | null } | undefined;
    const label = status === "unknown" ? `unknown:${rawStatus ?? ""}` : status;
    if (!last || last.status !== label || (last.queue_position ?? undefined) !== position) {
      this.#insertTransition(row.local_id, label, rawStatus, position, at);
    }
    let state = row.state;
    // An unknown status changes nothing we act on; it stays visible in the transitions.
    if (status !== "unknown") {
      const settlesCompleted = row.state === "completed" && STICKY_STATES.has(status);
      if (!STICKY_STATES.has(row.state) || settlesCompleted) {
        // Never step back from terminal to running because of a stale poll in another process.
        if (!(TERMINAL_STATES.has(row.state) && !TERMINAL_STATES.has(status))) state = status;
      }
    }
    this.#prepare(
      `UPDATE jobs SET state = ?, raw_status = COALESCE(?, raw_status), updated_at = ?,
           started_at = CASE WHEN ? = 'in_progress' THEN COALESCE(started_at, ?) ELSE started_at END,
           finished_at = CASE WHEN ? THEN COALESCE(finished_at, ?) ELSE finished_at END
         WHERE local_id = ?`,
    ).run(state, rawStatus ?? null, at, status, at, TERMINAL_STATES.has(state) ? 1 : 0, at, row.local_id);
  }

  #toRecord(row: JobRow): JournalRecord {
    return {
      localId: row.local_id,
      requestId: row.request_id ?? undefined,
      modelId: row.model_id,
      baseUrl: row.base_url,
      batchId: row.batch_id ?? undefined,
      rowKey: row.row_key ?? undefined,
      state: this.#reportedState(row),
      storedState: row.state,
      rawStatus: row.raw_status ?? undefined,
      input: parseStoredJson(row.input_json),
      inputDigest: row.input_digest,
      prompt: row.prompt ?? undefined,
      frames: row.frames ?? undefined,
      seed: row.seed ?? undefined,
      statusUrl: row.status_url ?? undefined,
      resultUrl: row.result_url ?? undefined,
      cancelUrl: row.cancel_url ?? undefined,
      createdAt: iso(row.created_at),
      submittedAt: optIso(row.submitted_at),
      startedAt: optIso(row.started_at),
      finishedAt: optIso(row.finished_at),
      updatedAt: iso(row.updated_at),
      outputUrls: (parseStoredJson(row.output_urls_json) as string[] | undefined) ?? [],
      cost: row.cost ?? undefined,
      jobError: parseStoredJson(row.job_error_json),
      lastError: parseStoredJson(row.last_error_json),
      serviceCreatedAt: row.service_created_at ?? undefined,
      serviceFinishedAt: row.service_finished_at ?? undefined,
      pid: row.pid ?? undefined,
      host: row.host ?? undefined,
    };
  }

  #reportedState(row: JobRow): JournalState {
    if (row.state !== "submitting") return row.state;
    if (this.#now() - row.created_at > this.#grace) return "submission_unknown";
    // Only a process on this machine can be checked; elsewhere, trust the grace period.
    if (row.host === this.#host && row.pid !== null && !processAlive(row.pid)) return "submission_unknown";
    return "submitting";
  }
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Mean and standard deviation after dropping the top and bottom 10 % (when there are ≥ 5 values). */
export function trimmedStats(values: readonly number[]): RunTimePrior | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const cut = sorted.length >= 5 ? Math.floor(sorted.length * 0.1) : 0;
  const kept = sorted.slice(cut, sorted.length - cut);
  const mean = kept.reduce((s, v) => s + v, 0) / kept.length;
  const variance = kept.length > 1 ? kept.reduce((s, v) => s + (v - mean) ** 2, 0) / (kept.length - 1) : 0;
  return { meanMs: mean, stdMs: Math.sqrt(variance), samples: values.length };
}

// ---- redaction -------------------------------------------------------------------------------

const DATA_URI = /^data:([^,]*?),/i;
/** A base64 data URI inside a longer text (an error message quoting the input, say). */
const EMBEDDED_DATA_URI = /data:[\w.+-]*\/?[\w.+-]*(?:;[\w.+-]+(?:=[\w.+-]+)?)*;base64,[A-Za-z0-9+/_-]*=*/gi;

/**
 * `value` (deeply) with every `data:` URI string replaced by a {@link RedactedDataUri}, and
 * base64 data URIs quoted inside other strings replaced by a short description.
 */
export function redactDataUris(value: unknown, depth = 0): unknown {
  if (typeof value === "string") {
    if (DATA_URI.test(value.trimStart())) return describeDataUri(value);
    return value.replace(EMBEDDED_DATA_URI, (uri) => {
      const d = describeDataUri(uri);
      return `[data URI ${d.mime}, ${d.bytes} bytes, sha256 ${d.sha256}]`;
    });
  }
  if (depth > 40 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => redactDataUris(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = redactDataUris(v, depth + 1);
  return out;
}

/**
 * Descriptions of recently seen data URIs, by the URI itself. A batch sends the same few images
 * in many rows (often the very same string), and decoding and hashing every one of them again
 * was a large part of the journal's cost. Bounded in entries and in characters held.
 */
const describedUris = new Map<string, RedactedDataUri>();
const DESCRIBED_MAX_ENTRIES = 16;
const DESCRIBED_MAX_CHARS = 16 * 1024 * 1024;
let describedChars = 0;

function describeDataUri(uri: string): RedactedDataUri {
  const cached = describedUris.get(uri);
  if (cached) {
    // Most recently used last: the oldest entry is the first one evicted.
    describedUris.delete(uri);
    describedUris.set(uri, cached);
    return { ...cached };
  }
  const described = describeDataUriUncached(uri);
  if (uri.length <= DESCRIBED_MAX_CHARS / 4) {
    describedUris.set(uri, described);
    describedChars += uri.length;
    for (const [key] of describedUris) {
      if (describedUris.size <= DESCRIBED_MAX_ENTRIES && describedChars <= DESCRIBED_MAX_CHARS) break;
      describedUris.delete(key);
      describedChars -= key.length;
    }
  }
  return { ...described };
}

function describeDataUriUncached(uri: string): RedactedDataUri {
  const text = uri.trimStart();
  const match = DATA_URI.exec(text)!;
  const meta = match[1] ?? "";
  const payload = text.slice(match[0].length);
  const parts = meta.split(";").map((p) => p.trim());
  const base64 = parts.slice(1).some((p) => p.toLowerCase() === "base64");
  const mime = parts[0] ? parts[0].toLowerCase() : "text/plain";
  let bytes: Buffer;
  try {
    bytes = base64 ? Buffer.from(payload, "base64") : Buffer.from(decodeURIComponent(payload), "utf8");
  } catch {
    bytes = Buffer.from(payload, "utf8");
  }
  return {
    dataUri: true,
    mime,
    sha256: createHash("sha256").update(bytes).digest("hex"),
    bytes: bytes.length,
  };
}

function redactStored(value: unknown): unknown {
  return redactSecrets(redactDataUris(toPlain(value)));
}

function redactText(text: string): string {
  return redactSecrets(text);
}

function storeJson(value: unknown): string {
  return redactText(JSON.stringify(redactStored(value)) ?? "null");
}

function storeError(error: unknown): string | null {
  if (error === undefined) return null;
  return storeJson(error);
}

/** Errors and class instances as plain data (redactSecrets only walks plain objects). */
function toPlain(value: unknown, depth = 0): unknown {
  if (depth > 20 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => toPlain(v, depth + 1));
  const withJson = value as { toJSON?: () => unknown };
  if (value instanceof Error) {
    const base: Record<string, unknown> =
      typeof withJson.toJSON === "function"
        ? (toPlain(withJson.toJSON(), depth + 1) as Record<string, unknown>)
        : { name: value.name, message: value.message };
    for (const [k, v] of Object.entries(value)) {
      // SubmissionUnknownError carries the input: it is stored on the row already.
      if (!(k in base) && k !== "input") base[k] = toPlain(v, depth + 1);
    }
    const code = (value as { code?: unknown }).code;
    if (code !== undefined && base.code === undefined) base.code = code;
    if (value.cause !== undefined && base.cause === undefined) base.cause = toPlain(value.cause, depth + 1);
    return base;
  }
  if (typeof withJson.toJSON === "function") return toPlain(withJson.toJSON(), depth + 1);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = toPlain(v, depth + 1);
  return out;
}

/** sha256 of the redacted input in canonical form (sorted keys): equal inputs, equal digests. */
function inputDigest(redacted: unknown): string {
  return createHash("sha256").update(canonicalJson(redacted)).digest("hex");
}

function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const entries = Object.entries(value)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

// ---- small helpers ---------------------------------------------------------------------------

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Stored JSON back to a value; text that is not JSON comes back as it is. */
export function parseStoredJson(text: string | null): unknown {
  if (text === null) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function toMillis(at: TimeInput | undefined, now: () => number): number {
  if (at === undefined) return now();
  const ms = at instanceof Date ? at.getTime() : typeof at === "number" ? at : Date.parse(at);
  if (!Number.isFinite(ms)) throw new TypeError(`not a time: ${String(at)}`);
  return ms;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function optIso(ms: number | null): string | undefined {
  return ms === null ? undefined : iso(ms);
}
