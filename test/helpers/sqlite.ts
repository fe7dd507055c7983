// A second, raw connection to a job store's SQLite file, for tests that must reach under the
// store (a trigger that refuses writes, a lock held by "another process", a row removed).

import Database from "better-sqlite3";

/** Runs `fn` on its own connection to the file and closes it. */
export function withRawDb<T>(path: string, fn: (db: Database.Database) => T): T {
  const db = new Database(path);
  try {
    db.pragma("busy_timeout = 5000");
    return fn(db);
  } finally {
    db.close();
  }
}
