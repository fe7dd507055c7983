// Which job store a command line means: --store, --journal, DREAMINA_STORE, DATABASE_URL (only
// a PostgreSQL one), the default journal; and with --sandbox only the flags count.

import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CliError } from "../../src/cli/cli-error.js";
import { describeStore, resolveStoreSpec } from "../../src/cli/store-spec.js";

const HOME = "/home/someone/.dreamina";
const env = (more: Record<string, string> = {}) => ({ DREAMINA_HOME: HOME, ...more });
const PG = "postgres://worker:s3cret@db.internal:5432/renders?sslmode=require";

describe("resolveStoreSpec", () => {
  it("defaults to the journal in DREAMINA_HOME, the sandbox's own with --sandbox", () => {
    assert.deepEqual(resolveStoreSpec({}, env()), {
      kind: "sqlite",
      path: join(HOME, "journal.db"),
      from: "default",
    });
    assert.deepEqual(resolveStoreSpec({ sandbox: true }, env()), {
      kind: "sqlite",
      path: join(HOME, "sandbox-journal.db"),
      from: "default",
    });
  });

  it("--store takes a PostgreSQL URL or a SQLite path; --journal a path", () => {
    assert.deepEqual(resolveStoreSpec({ store: PG }, env()), { kind: "postgres", url: PG, from: "--store" });
    assert.equal(resolveStoreSpec({ store: "postgresql://h/db" }, env()).kind, "postgres");
    assert.deepEqual(resolveStoreSpec({ store: "./j.db" }, env()), {
      kind: "sqlite",
      path: "./j.db",
      from: "--store",
    });
    assert.deepEqual(resolveStoreSpec({ journal: "j.db" }, env()), {
      kind: "sqlite",
      path: "j.db",
      from: "--journal",
    });
  });

  it("flags win over the environment; DREAMINA_STORE over DATABASE_URL", () => {
    const both = env({ DREAMINA_STORE: "/tmp/a.db", DATABASE_URL: PG });
    assert.deepEqual(resolveStoreSpec({ journal: "j.db" }, both).from, "--journal");
    assert.deepEqual(resolveStoreSpec({}, both), {
      kind: "sqlite",
      path: "/tmp/a.db",
      from: "DREAMINA_STORE",
    });
    assert.deepEqual(resolveStoreSpec({}, env({ DATABASE_URL: PG })), {
      kind: "postgres",
      url: PG,
      from: "DATABASE_URL",
    });
  });

  it("DATABASE_URL is taken only when it is a PostgreSQL URL", () => {
    for (const other of ["mysql://u@h/db", "sqlite:///var/app.db", "file:app.db", "   "]) {
      assert.equal(resolveStoreSpec({}, env({ DATABASE_URL: other })).from, "default", other);
    }
  });

  it("with --sandbox the environment's stores are ignored, the flags are not", () => {
    const withEnv = env({ DREAMINA_STORE: PG, DATABASE_URL: PG });
    assert.equal(resolveStoreSpec({ sandbox: true }, withEnv).from, "default");
    assert.equal(resolveStoreSpec({ sandbox: true, store: PG }, withEnv).kind, "postgres");
  });

  it("refuses --store with --journal, an empty --store and an unknown scheme, as usage errors", () => {
    for (const flags of [{ store: "a.db", journal: "b.db" }, { store: " " }, { store: "mysql://h/db" }]) {
      assert.throws(
        () => resolveStoreSpec(flags, env()),
        (e) => e instanceof CliError && e.code === "usage",
      );
    }
    assert.throws(() => resolveStoreSpec({}, env({ DREAMINA_STORE: "redis://h" })), /DREAMINA_STORE/);
  });

  it("describes a PostgreSQL store without its password or query", () => {
    const text = describeStore({ kind: "postgres", url: PG, from: "--store" });
    assert.equal(text, "postgres://db.internal:5432/renders");
    assert.doesNotMatch(text, /s3cret|worker|sslmode/);
  });
});
