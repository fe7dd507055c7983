// `dreamina store import journal.db --store postgres://…`: moves an SQLite journal into the shared
// PostgreSQL store, without losing or duplicating a row, and running it again changes nothing.
//
// - The SQLite file is opened read-only and read as one snapshot; everything goes into PostgreSQL
//   in one transaction: an import interrupted halfway leaves nothing behind.
// - Each job keeps an identity from its journal: (the journal's fingerprint, its local id there).
//   The fingerprint comes from the journal's first row (its time, host, pid and input digest), so a
//   journal copied or moved elsewhere is still recognised. A job whose request id is already in
//   the store is not copied again either. Transitions and files come along with their job only.
// - Ids still waiting in the journal's recovery folder (`<journal>.recovered/`) are not in its
//   rows yet: the import refuses until the journal has taken them in (any `dreamina jobs` does).
// - Batches and their row outcomes come along (the batch's lock owner does not: it was a process
//   on the old machine).

import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import Database from "better-sqlite3";
import { DreaminaError } from "../api/dreamina-error.js";
import type { PostgresJobStore } from "./postgres/store.js";
import { hasRecoveredSubmits, recoveryDirFor } from "./recovery.js";
import { BATCH_MIGRATIONS, BATCH_MODULE, JOURNAL_MIGRATIONS, JOURNAL_MODULE } from "./sqlite/migrations.js";

export class StoreImportError extends DreaminaError {
  static override readonly code: string = "store_import";
}

export interface ImportReport {
  /** The journal's identity in the target store. */
  source: string;
  jobs: { imported: number; skipped: number };
  transitions: number;
  files: number;
  batches: { imported: number; skipped: number };
  batchRows: { imported: number; skipped: number };
}

/** The journal tables this import knows (module versions in the journal's `migrations`). */
const KNOWN_VERSIONS: Record<string, number> = {
  [JOURNAL_MODULE]: JOURNAL_MIGRATIONS.length,
  [BATCH_MODULE]: BATCH_MIGRATIONS.length,
};
const CHUNK = 500;

const JOB_COLUMNS = [
  "request_id",
  "model_id",
  "base_url",
  "batch_id",
  "row_key",
  "state",
  "raw_status",
  "input_json",
  "input_digest",
  "prompt",
  "frames",
  "seed",
  "status_url",
  "result_url",
  "cancel_url",
  "created_at",
  "submitted_at",
  "started_at",
  "finished_at",
  "updated_at",
  "output_urls_json",
  "cost",
  "job_error_json",
  "last_error_json",
  "result_json",
  "service_created_at",
  "service_finished_at",
  "pid",
  "host",
] as const;

type Row = Record<string, unknown>;

function openSource(path: string): Database.Database {
  if (!existsSync(path)) {
    throw new StoreImportError(`no journal at ${path}`, { code: "store_import_missing" });
  }
  if (hasRecoveredSubmits(recoveryDirFor(path))) {
    throw new StoreImportError(
      `the journal ${path} still has request ids waiting in ${recoveryDirFor(path)}: run \`dreamina jobs ` +
        `--journal ${path}\` once so that it takes them in, then import again`,
      { code: "store_import_pending" },
    );
  }
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch (error) {
    throw new StoreImportError(`cannot open the journal ${path}: ${(error as Error).message}`, {
      code: "store_import_missing",
    });
  }
  const tables = new Set(
    (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map(
      (t) => t.name,
    ),
  );
  if (!tables.has("migrations") || !tables.has("jobs")) {
    db.close();
    throw new StoreImportError(`${path} is not a dreamina journal`, { code: "store_import_missing" });
  }
  for (const m of db.prepare("SELECT module, version FROM migrations").all() as {
    module: string;
    version: number;
  }[]) {
    const known = KNOWN_VERSIONS[m.module];
    if (known !== undefined && m.version > known) {
      db.close();
      throw new StoreImportError(
        `the ${m.module} tables of ${path} are at version ${m.version}, newer than this program knows: upgrade dreamina-i2v`,
        { code: "store_too_new" },
      );
    }
  }
  return db;
}

/** A journal's identity that survives copying and moving it: from its first row. */
function fingerprint(db: Database.Database, path: string): string {
  const first = db
    .prepare("SELECT local_id, created_at, host, pid, input_digest FROM jobs ORDER BY local_id LIMIT 1")
    .get() as Row | undefined;
  const seed = first ? JSON.stringify(first) : `empty:${path}`;
  return `sqlite:${createHash("sha256").update(seed).digest("hex").slice(0, 24)}`;
}

/** Copies the journal at `path` into `target`. Idempotent; all or nothing. */
export async function importSqliteJournal(path: string, target: PostgresJobStore): Promise<ImportReport> {
  const db = openSource(path);
  try {
    // One read transaction: a snapshot, even if a process writes the journal meanwhile.
    db.exec("BEGIN");
    const source = fingerprint(db, path);
    const report: ImportReport = {
      source,
      jobs: { imported: 0, skipped: 0 },
      transitions: 0,
      files: 0,
      batches: { imported: 0, skipped: 0 },
      batchRows: { imported: 0, skipped: 0 },
    };
    const tables = new Set(
      (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map(
        (t) => t.name,
      ),
    );
    const jobs = db.prepare("SELECT * FROM jobs ORDER BY local_id").all() as Row[];
    const transitions = db.prepare("SELECT * FROM transitions WHERE local_id = ? ORDER BY id");
    const files = db.prepare("SELECT * FROM files WHERE local_id = ? ORDER BY id");
    await target.session.tx(async (client) => {
      for (let i = 0; i < jobs.length; i += CHUNK) {
        const chunk = jobs.slice(i, i + CHUNK).map((j) => {
          const row: Row = { import_source: source, import_local_id: j.local_id };
          for (const c of JOB_COLUMNS) row[c] = j[c] ?? null;
          return row;
        });
        const cols = [...JOB_COLUMNS, "import_source", "import_local_id"].join(", ");
        const inserted = await client.query<{ local_id: number; import_local_id: number }>(
          `INSERT INTO dreamina.jobs (${cols})
           SELECT ${cols} FROM json_populate_recordset(NULL::dreamina.jobs, $1::json)
           ON CONFLICT DO NOTHING RETURNING local_id, import_local_id`,
          [JSON.stringify(chunk)],
        );
        report.jobs.imported += inserted.rowCount ?? 0;
        report.jobs.skipped += chunk.length - (inserted.rowCount ?? 0);
        const steps: Row[] = [];
        const kept: Row[] = [];
        for (const { local_id, import_local_id } of inserted.rows) {
          for (const t of transitions.all(import_local_id) as Row[])
            steps.push({ ...t, id: undefined, local_id });
          for (const f of files.all(import_local_id) as Row[]) kept.push({ ...f, id: undefined, local_id });
        }
        for (let s = 0; s < steps.length; s += CHUNK * 4) {
          await client.query(
            `INSERT INTO dreamina.transitions (local_id, status, raw_status, queue_position, at)
             SELECT local_id, status, raw_status, queue_position, at
               FROM json_populate_recordset(NULL::dreamina.transitions, $1::json)`,
            [JSON.stringify(steps.slice(s, s + CHUNK * 4))],
          );
        }
        if (kept.length > 0) {
          await client.query(
            `INSERT INTO dreamina.files (local_id, path, url, bytes, sha256, at)
             SELECT local_id, path, url, bytes, sha256, at FROM json_populate_recordset(NULL::dreamina.files, $1::json)`,
            [JSON.stringify(kept)],
          );
        }
        report.transitions += steps.length;
        report.files += kept.length;
      }
      if (tables.has("batches")) {
        const batches = db.prepare("SELECT * FROM batches").all() as Row[];
        const done = await client.query(
          `INSERT INTO dreamina.batches (batch_id, out_dir, out_dev_ino, manifest_path, manifest_digest, created_at, updated_at)
           SELECT batch_id, out_dir, out_dev_ino, manifest_path, manifest_digest, created_at, updated_at
             FROM json_populate_recordset(NULL::dreamina.batches, $1::json)
           ON CONFLICT (batch_id) DO NOTHING`,
          [JSON.stringify(batches.map((b) => ({ ...b, out_dev_ino: b.out_dev_ino ?? null })))],
        );
        report.batches.imported = done.rowCount ?? 0;
        report.batches.skipped = batches.length - report.batches.imported;
      }
      if (tables.has("batch_rows")) {
        const rows = db.prepare("SELECT * FROM batch_rows").all() as Row[];
        for (let i = 0; i < rows.length; i += CHUNK * 4) {
          const slice = rows.slice(i, i + CHUNK * 4);
          const done = await client.query(
            `INSERT INTO dreamina.batch_rows (batch_id, row_key, line, name, state, request_id, estimate_usd,
                cost_usd, file, bytes, sha256, error_json, updated_at)
             SELECT batch_id, row_key, line, name, state, request_id, estimate_usd, cost_usd, file, bytes, sha256,
                    error_json, updated_at
               FROM json_populate_recordset(NULL::dreamina.batch_rows, $1::json)
             ON CONFLICT (batch_id, row_key) DO NOTHING`,
            [JSON.stringify(slice)],
          );
          report.batchRows.imported += done.rowCount ?? 0;
          report.batchRows.skipped += slice.length - (done.rowCount ?? 0);
        }
      }
    });
    return report;
  } finally {
    db.close();
  }
}
