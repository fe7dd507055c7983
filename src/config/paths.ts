// Where this tool keeps its own data (the job journal). Settings shared with the official
// RunComfy tool live elsewhere (see token-file.ts); this is ours alone.

import { homedir } from "node:os";
import { join } from "node:path";
import type { Env } from "../api/token.js";

/** `$DREAMINA_HOME`, else `$XDG_DATA_HOME/dreamina`, else `~/.local/share/dreamina`. */
export function dreaminaHome(env: Env = process.env): string {
  if (env.DREAMINA_HOME?.trim()) return env.DREAMINA_HOME;
  // The XDG spec says a relative value is invalid and must be ignored.
  if (env.XDG_DATA_HOME?.startsWith("/")) return join(env.XDG_DATA_HOME, "dreamina");
  return join(env.HOME || homedir(), ".local", "share", "dreamina");
}

/** `<home>/journal.db`. */
export function defaultJournalPath(env: Env = process.env): string {
  return join(dreaminaHome(env), "journal.db");
}
