// A studio on an in-process sandbox (time-scaled), in a temporary DREAMINA_HOME-like folder,
// and raw HTTP requests to it (node:http, so that Host and Origin can be anything).

import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RunComfyClient } from "../../src/api/client.js";
import { type Sandbox, type SandboxOptions, startSandbox } from "../../src/sandbox/index.js";
import { type Studio, type StudioOptions, startStudio } from "../../src/studio/index.js";

export const STUDIO_TOKEN = "rcSTUDIO_2f9d8c7b6a5e4d3c2b1a0f9e8d7c6b5a_never-shown";

export interface TestStudio {
  studio: Studio;
  sandbox: Sandbox;
  dir: string;
  journalPath: string;
  close(): Promise<void>;
}

export async function testStudio(
  options: {
    timeScale?: number;
    workers?: number;
    runTime?: SandboxOptions["runTime"];
  } & Partial<StudioOptions> = {},
): Promise<TestStudio> {
  const { runTime: _runTime, workers: _workers, ...rest } = options;
  const dir = mkdtempSync(join(tmpdir(), "dreamina-studio-test-"));
  const timeScale = options.timeScale ?? 40;
  // Run times fixed (no jitter) and matching the studio's expected times at this scale.
  const sandbox = await startSandbox({
    quiet: true,
    timeScale: 1,
    runTime: options.runTime ?? {
      121: { meanMs: 60_000 / timeScale, jitterMs: 0 },
      241: { meanMs: 120_000 / timeScale, jitterMs: 0 },
    },
    workers: options.workers ?? 1,
    token: STUDIO_TOKEN,
    cacheDir: join(dir, "renders"),
  });
  const client = new RunComfyClient({ baseUrl: sandbox.url, token: async () => STUDIO_TOKEN });
  const journalPath = join(dir, "journal.db");
  const studio = await startStudio({
    client,
    journalPath,
    sandbox: true,
    dir: join(dir, "studio"),
    timeScale,
    pollIntervalMs: 200,
    onError: () => {},
    ...rest,
  });
  return {
    studio,
    sandbox,
    dir,
    journalPath,
    close: async () => {
      await studio.close();
      await sandbox.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
}

export function raw(
  studio: Studio,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: Buffer | string },
): Promise<RawResponse> {
  const url = new URL(studio.origin);
  // An empty Host means none at all (node would fill in its own).
  const noHost = options.headers?.host === "";
  const headers: Record<string, string> = { host: url.host, ...options.headers };
  if (noHost) delete headers.host;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method: options.method ?? "GET",
        path: options.path,
        headers,
        setHost: !noHost,
        // A fresh connection per request: no race with the server closing an idle one.
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString("utf8") });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

/** Headers that carry the session key the way a script would. */
export function withKey(studio: Studio, headers: Record<string, string> = {}): Record<string, string> {
  return { "x-studio-key": studio.key, ...headers };
}
