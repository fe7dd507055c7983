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
