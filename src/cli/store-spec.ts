// Which job store a command uses, decided once from the flags and the environment: `--store`
// (a PostgreSQL URL or a SQLite path), `--journal` (the older spelling, a SQLite path),
// `$DREAMINA_STORE`, `$DATABASE_URL` when it is a PostgreSQL URL, else the SQLite journal in
// $DREAMINA_HOME. Pure: nothing is opened here (the factory opens it when a command asks).

import { join } from "node:path";
import type { Env } from "../api/token.js";
import { dreaminaHome } from "../config/paths.js";
import { CliError } from "./cli-error.js";

export type StoreSpec =
  | {
      readonly kind: "sqlite";
      readonly path: string;
      /** Where the choice came from, for messages. */
      readonly from: StoreSource;
    }
  | {
      readonly kind: "postgres";
      /** The connection URL as given; it may hold a password, so it is never printed as is. */
      readonly url: string;
      readonly from: StoreSource;
    };

export type StoreSource = "--store" | "--journal" | "DREAMINA_STORE" | "DATABASE_URL" | "default";

export interface StoreFlags {
  store?: string | undefined;
  journal?: string | undefined;
  sandbox?: boolean | undefined;
}

const POSTGRES_URL = /^postgres(?:ql)?:\/\//i;
const ANY_URL = /^[a-z][a-z0-9+.-]*:\/\//i;

function fromText(text: string, from: StoreSource): StoreSpec {
  if (POSTGRES_URL.test(text)) return { kind: "postgres", url: text, from };
  if (ANY_URL.test(text)) {
    // A typo'd scheme must not become a SQLite file named "mysql:/...".
    const scheme = text.slice(0, text.indexOf(":"));
    throw new CliError(
      "usage",
      `${from}: unsupported store ${JSON.stringify(`${scheme}://…`)} (a postgres:// URL or a SQLite file path)`,
    );
  }
  return { kind: "sqlite", path: text, from };
}

/**
 * The one store spec of a command line. With --sandbox the environment's stores are ignored
 * (only the flags count): the sandbox's time-scaled jobs have their own journal, so that they
 * never teach the real service's polling schedule, and never land in a team's database.
 */
export function resolveStoreSpec(flags: StoreFlags, env: Env = process.env): StoreSpec {
  if (flags.store !== undefined && flags.journal !== undefined) {
    throw new CliError("usage", "give either --store or --journal, not both");
  }
  if (flags.store !== undefined) {
    if (flags.store.trim() === "") throw new CliError("usage", "--store: empty value");
    return fromText(flags.store, "--store");
  }
  if (flags.journal !== undefined) return { kind: "sqlite", path: flags.journal, from: "--journal" };
  if (!flags.sandbox) {
    const store = env.DREAMINA_STORE?.trim();
    if (store) return fromText(store, "DREAMINA_STORE");
    // DATABASE_URL is often another database's (MySQL, SQLite for an app): only PostgreSQL is taken.
    const database = env.DATABASE_URL?.trim();
    if (database && POSTGRES_URL.test(database))
      return { kind: "postgres", url: database, from: "DATABASE_URL" };
  }
  const file = flags.sandbox ? "sandbox-journal.db" : "journal.db";
  return { kind: "sqlite", path: join(dreaminaHome(env), file), from: "default" };
}

/** Where the store is, for messages: the path, or the URL without user info, query or fragment. */
export function describeStore(spec: StoreSpec): string {
  if (spec.kind === "sqlite") return spec.path;
  try {
    const url = new URL(spec.url);
    return `${url.protocol}//${url.host}${url.pathname}`;
  } catch {
    return "postgres://(unparsable URL)";
  }
}
