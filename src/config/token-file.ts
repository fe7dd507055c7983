// The full token look-up for Node: explicit value, the environment, then the official
// RunComfy command-line tool's token.json, so a user logged in there needs nothing more.

import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { MissingTokenError } from "../api/errors.js";
import { registerSecret } from "../api/redact.js";
import { type Env, TOKEN_ENV_VARS, tokenFromEnv } from "../api/token.js";

/**
 * The token.json the official tool uses: under $RUNCOMFY_CONFIG_DIR, else
 * $XDG_CONFIG_HOME/runcomfy, else ~/.config/runcomfy. One directory, as the tool picks
 * it, so a profile chosen with either variable never falls back to another account's token.
 */
export function tokenFileCandidates(env: Env = process.env): string[] {
  const dir =
    env.RUNCOMFY_CONFIG_DIR ||
    (env.XDG_CONFIG_HOME
      ? join(env.XDG_CONFIG_HOME, "runcomfy")
      : join(env.HOME || homedir(), ".config", "runcomfy"));
  return [join(dir, "token.json")];
}

export interface ResolvedToken {
  token: string;
  /** Where it was found (a variable name or a file path), never the token itself. */
  source: string;
}

/** Explicit option, RUNCOMFY_API_TOKEN, RUNCOMFY_TOKEN, RUNCOMFY_API_KEY, then token.json. */
export async function resolveToken(explicit?: string, env: Env = process.env): Promise<ResolvedToken> {
  if (explicit?.trim()) {
    registerSecret(explicit.trim());
    return { token: explicit.trim(), source: "--token" };
  }
  const fromEnv = tokenFromEnv(env);
  if (fromEnv) {
    registerSecret(fromEnv.token);
    return fromEnv;
  }
  const files = tokenFileCandidates(env);
  for (const path of files) {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch {
      continue;
    }
    let token: unknown;
    try {
      const json = JSON.parse(text) as Record<string, unknown>;
      token = json.access_token ?? json.token ?? json.api_token;
    } catch {
      continue;
    }
    if (typeof token === "string" && token.trim()) {
      registerSecret(token.trim());
      return { token: token.trim(), source: path };
    }
  }
  throw new MissingTokenError(["the --token option", ...TOKEN_ENV_VARS.map((v) => `$${v}`), ...files]);
}
