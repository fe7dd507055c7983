// Where a token comes from when the caller does not pass one. This file only reads the
// environment (runtime-neutral); the Node layer adds the official tool's token.json.

export const TOKEN_ENV_VARS = ["RUNCOMFY_API_TOKEN", "RUNCOMFY_TOKEN", "RUNCOMFY_API_KEY"] as const;

export type Env = Record<string, string | undefined>;

/** `process.env` where there is one (Node, Bun, Deno's Node compatibility), else nothing. */
export function runtimeEnv(): Env {
  const proc = (globalThis as { process?: { env?: Env } }).process;
  return proc?.env ?? {};
}

/** The first non-empty token among the known variables, with the variable's name. */
export function tokenFromEnv(env: Env = runtimeEnv()): { token: string; source: string } | undefined {
  for (const name of TOKEN_ENV_VARS) {
    const value = env[name]?.trim();
    if (value) return { token: value, source: `$${name}` };
  }
  return undefined;
}

/**
 * Where the official RunComfy command-line tool keeps its token.json, in the order it picks the
 * directory. The Node entry and the CLI read that file (src/config/token-file.ts); this
 * runtime-neutral core cannot, so it only names the places in its errors.
 */
export const TOKEN_FILE_DIRS = [
  "$RUNCOMFY_CONFIG_DIR",
  "$XDG_CONFIG_HOME/runcomfy",
  "~/.config/runcomfy",
] as const;

/** The sentence a core MissingTokenError adds, so a user logged in with the official tool knows why. */
export const TOKEN_FILE_HINT =
  "The Node entry (dreamina-i2v/node) and the dreamina CLI also read the official RunComfy CLI's " +
  `token.json (key access_token) under ${TOKEN_FILE_DIRS.join(", else ")}; ` +
  "this runtime-neutral client reads no files, so pass the token option or set one of the variables.";
