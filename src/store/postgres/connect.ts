// The connection to a shared PostgreSQL job store: one `pg` Pool per store, and the rule that a
// password never leaves this file. The URL's password is handed to `pg` and nowhere else: the
// store's `location`, every error message and every error's cause carry the URL without it.

import pg from "pg";
import { DreaminaError } from "../../api/dreamina-error.js";
import { redactSecrets } from "../../api/redact.js";
import { StoreError } from "../errors.js";

/**
 * The PostgreSQL store's own errors (the server unreachable, a login refused, a batch row not
 * this worker's, a budget spent...); `code` says which. The mistakes every backend shares (no such
 * row: `store_error`, a schema too new: `store_too_new`) are plain `StoreError`s, as on SQLite.
 */
export class PostgresStoreError extends StoreError {
  constructor(
    message: string,
    options: { code?: string | undefined; cause?: unknown; retryable?: boolean | undefined } = {},
  ) {
    super(message, options as ConstructorParameters<typeof StoreError>[1]);
  }
}

/** SQLSTATE classes and socket errors that mean "the server cannot be used right now". */
const UNREACHABLE_ERRNO = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
]);

export interface ParsedStoreUrl {
  /** For `pg`: the URL as given, password included. */
  connectionString: string;
  /** For people: the URL without its password. */
  location: string;
  /** The password, to scrub from anything a server or driver says. */
  password: string | undefined;
}

/** Accepts `postgres://` and `postgresql://` URLs; anything else is a `store_unsupported` error. */
export function parseStoreUrl(url: string): ParsedStoreUrl {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new PostgresStoreError("the job store URL is not a URL (expected postgres://user@host/db)", {
      code: "store_unsupported",
    });
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new PostgresStoreError(
      `the job store URL must start with postgres:// or postgresql:// (got ${parsed.protocol}//)`,
      { code: "store_unsupported" },
    );
  }
  const password =
    (parsed.password ? safeDecode(parsed.password) : undefined) ??
    parsed.searchParams.get("password") ??
    undefined;
  const shown = new URL(parsed.toString());
  shown.password = "";
  shown.searchParams.delete("password");
  return { connectionString: url, location: shown.toString(), password: password || undefined };
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** `text` with the password (raw and URL-encoded) and any URL userinfo removed. */
export function scrub(text: string, password: string | undefined): string {
  let out = text;
  if (password) {
    for (const form of new Set([password, encodeURIComponent(password)])) {
      out = out.split(form).join("[REDACTED]");
    }
  }
  return redactSecrets(out);
}

/**
 * Any error met talking to the server as a {@link PostgresStoreError}: `store_unavailable`
 * (retryable) when the server cannot be reached or went away, `store_auth` when it refused us,
 * `store_query` for anything else. The cause is rebuilt from the original's message and codes
 * only, scrubbed: the driver's own error objects are never passed on.
 */
export function storeError(error: unknown, location: string, password: string | undefined): DreaminaError {
  if (error instanceof DreaminaError) return error;
  const e = error as { message?: unknown; code?: unknown; errno?: unknown };
  const message = scrub(typeof e?.message === "string" ? e.message : String(error), password);
  const code = typeof e?.code === "string" ? e.code : undefined;
  const cause = Object.assign(new Error(message), code ? { code } : {});
  if (
    code &&
    (UNREACHABLE_ERRNO.has(code) || code.startsWith("08") || code === "57P01" || code === "57P03")
  ) {
    return new PostgresStoreError(`cannot reach the job store at ${location}: ${message}`, {
      code: "store_unavailable",
      retryable: true,
      cause,
    });
  }
  if (/timeout|terminated|Connection terminated|closed/i.test(message) && !code?.match(/^[0-9A-Z]{5}$/)) {
    return new PostgresStoreError(`lost the connection to the job store at ${location}: ${message}`, {
      code: "store_unavailable",
      retryable: true,
      cause,
    });
  }
  if (code === "28P01" || code === "28000") {
    return new PostgresStoreError(`the job store at ${location} refused the login: ${message}`, {
      code: "store_auth",
      cause,
    });
  }
  if (code === "3D000") {
    return new PostgresStoreError(`the job store database does not exist (${location}): ${message}`, {
      code: "store_unavailable",
      cause,
    });
  }
  if (code === "42501") {
    return new PostgresStoreError(
      `the job store at ${location} does not allow this user to ${message.includes("schema") ? "create its schema" : "do this"}: ${message}`,
      { code: "store_permission", cause },
    );
  }
  return new PostgresStoreError(`the job store at ${location} failed: ${message}`, {
    code: "store_query",
    cause,
  });
}

/** int8 (local ids, millisecond times) as numbers: every value we store fits in 2^53. */
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) => {
    if (oid === 20 && (format ?? "text") === "text") return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format as "text");
  }) as pg.CustomTypesConfig["getTypeParser"],
};

export interface PoolOptions {
  /** Most connections this process opens. Default 4. */
  max?: number | undefined;
  /** How long to wait for a connection. Default 10 s. */
  connectTimeoutMs?: number | undefined;
}

/** A pool whose idle-connection errors are swallowed (the next query reports them properly). */
export function createPool(parsed: ParsedStoreUrl, options: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: parsed.connectionString,
    max: options.max ?? 4,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    idleTimeoutMillis: 10_000,
    allowExitOnIdle: true,
    application_name: "dreamina-i2v",
    types,
  });
  // An idle client whose server went away emits here; without a listener the process dies.
  pool.on("error", () => {});
  return pool;
}
