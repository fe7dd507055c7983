// What a command needs to reach the service: a client built from the global options,
// or an in-process sandbox (--sandbox) that needs no token and no network.

import { join } from "node:path";
import { RunComfyClient } from "../api/client.js";
import type { FetchLike } from "../api/transport.js";
import { dreaminaHome } from "../config/paths.js";
import { resolveToken } from "../config/token-file.js";
import { type GlobalOptions, Io } from "./io.js";

/** The CLI's HTTP calls: nodeFetch, loaded on the first call (--help and --version need none). */
let nodeFetchModule: Promise<typeof import("../http/node-fetch.js")> | undefined;
export const lazyNodeFetch: FetchLike = async (url, init) => {
  nodeFetchModule ??= import("../http/node-fetch.js");
  return (await nodeFetchModule).nodeFetch(url, init);
};

/** How much faster than the real service the --sandbox runs (a job takes seconds, not a minute). */
export const SANDBOX_TIME_SCALE = 20;

export interface Context {
  io: Io;
  client: RunComfyClient;
  /** The API root in use (the sandbox's with --sandbox). */
  baseUrl: string;
  options: GlobalOptions;
  /**
   * The journal file. Sandbox jobs get their own, so that their time-scaled run times never
   * teach the real service's polling schedule.
   */
  journalPath: string;
  /** Set with --sandbox: the polling schedule is scaled to match. */
  timeScale: number | undefined;
  close(): Promise<void>;
}

export function journalPathFor(options: GlobalOptions): string {
  if (options.journal) return options.journal;
  return join(dreaminaHome(), options.sandbox ? "sandbox-journal.db" : "journal.db");
}

export async function openContext(options: GlobalOptions, io = new Io(options)): Promise<Context> {
  let close = async () => {};
  let baseUrl = options.baseUrl ?? process.env.RUNCOMFY_MODEL_API_BASE ?? "https://model-api.runcomfy.net";
  let token: () => Promise<string>;
  let timeScale: number | undefined;
  if (options.sandbox) {
    const { startSandbox } = await import("../sandbox/index.js");
    timeScale = SANDBOX_TIME_SCALE;
    const sandbox = await startSandbox({ quiet: true, timeScale });
    baseUrl = sandbox.url;
    close = () => sandbox.close();
    io.debug(`sandbox listening at ${sandbox.url} (time scale x${timeScale})`);
    token = async () => "sandbox-token";
  } else {
    // Resolved lazily so commands that never call the API never ask for a token.
    let cached: Promise<string> | undefined;
    token = () => {
      cached ??= resolveToken(options.token).then((t) => t.token);
      return cached;
    };
  }
  const client = new RunComfyClient({ baseUrl, token, fetch: lazyNodeFetch });
  return {
    io,
    client,
    baseUrl: client.baseUrl,
    options,
    journalPath: journalPathFor(options),
    timeScale,
    close,
  };
}
