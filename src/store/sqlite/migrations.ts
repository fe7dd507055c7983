// The SQLite schema and its versions. Each module (the journal, the batches) keeps its own
// version in the `migrations` table, so that each can evolve on its own in the same file;
// PRAGMA user_version versions the file's layout as a whole (today: "has a migrations table").

import type Database from "better-sqlite3";
import { StoreError } from "../errors.js";

type Db = Database.Database;

/** One step of a module's schema; step i (0-based) brings the module to version i + 1. */
export type Migration = string | ((db: Db) => void);

/** Bumped only if the `migrations` table itself ever changes shape. */
const BOOTSTRAP_VERSION = 1;
export const JOURNAL_MODULE = "journal";
export const BATCH_MODULE = "batch";

export const JOURNAL_MIGRATIONS: readonly Migration[] = [
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

export const BATCH_MIGRATIONS: readonly Migration[] = [
  `CREATE TABLE batches (
     batch_id TEXT PRIMARY KEY,
     out_dir TEXT NOT NULL,
     manifest_path TEXT,
     manifest_digest TEXT,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     owner_pid INTEGER,
     owner_host TEXT,
     owner_at INTEGER
   );
   CREATE INDEX batches_out_dir ON batches (out_dir);
   CREATE TABLE batch_rows (
     batch_id TEXT NOT NULL REFERENCES batches (batch_id),
     row_key TEXT NOT NULL,
     line INTEGER,
     name TEXT,
     state TEXT NOT NULL,
     request_id TEXT,
     estimate_usd REAL,
     cost_usd REAL,
     file TEXT,
     bytes INTEGER,
     sha256 TEXT,
     error_json TEXT,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (batch_id, row_key)
   );`,
  // The output directory's device and inode: the same folder reached by another path (a bind
  // mount, another letter case) is still the same folder.
  `ALTER TABLE batches ADD COLUMN out_dev_ino TEXT;
   CREATE INDEX batches_out_dev_ino ON batches (out_dev_ino);`,
];

/**
 * Bring `module`'s tables to `migrations.length`, applying missing steps in one IMMEDIATE
 * transaction (so two processes opening the file at once do not both migrate). Idempotent.
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
      throw new StoreError(
        `the ${module} tables in ${db.name} are at version ${current}, newer than this program knows ` +
          `(${migrations.length}): upgrade dreamina-i2v`,
        { code: "store_too_new" },
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
  const version = db.pragma("user_version", { simple: true }) as number;
  if (version === BOOTSTRAP_VERSION) return;
  if (version > BOOTSTRAP_VERSION) {
    throw new StoreError(
      `${db.name} has layout version ${version}, newer than this program knows: upgrade dreamina-i2v`,
      { code: "store_too_new" },
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
