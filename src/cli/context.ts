// What a command needs to reach the service: a client built from the global options,
// or an in-process sandbox (--sandbox) that needs no token and no network.

import { RunComfyClient } from "../api/client.js";
import { resolveToken } from "../node/token-file.js";
import { type GlobalOptions, Io } from "./io.js";

export interface Context {
  io: Io;
  client: RunComfyClient;
  /** The base URL in use (the sandbox's with --sandbox). */
  baseUrl: string;
  options: GlobalOptions;
  close(): Promise<void>;
}

export async function openContext(options: GlobalOptions, io = new Io(options)): Promise<Context> {
  let close = async () => {};
  let baseUrl = options.baseUrl ?? process.env.RUNCOMFY_MODEL_API_BASE ?? "https://model-api.runcomfy.net";
  let token: () => Promise<string>;
  if (options.sandbox) {
    const { startSandbox } = await import("../sandbox/index.js");
    const sandbox = await startSandbox({ quiet: true });
    baseUrl = sandbox.url;
    close = () => sandbox.close();
    io.debug(`sandbox listening at ${sandbox.url}`);
    token = async () => "sandbox-token";
  } else {
    // Resolved lazily so commands that never call the API never ask for a token.
    let cached: Promise<string> | undefined;
    token = () => {
      cached ??= resolveToken(options.token).then((t) => t.token);
      return cached;
    };
  }
  const client = new RunComfyClient({ baseUrl, token });
  return { io, client, baseUrl: client.baseUrl, options, close };
}
