// A real HTTP server on 127.0.0.1 that plays scripted responses per route and records every
// request, so tests exercise the client over actual sockets (no fetch mocking).

import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { RunComfyClient, type RunComfyClientOptions } from "../../src/api/client.js";
import { nodeFetch } from "../../src/http/node-fetch.js";

export interface RecordedRequest {
  method: string;
  /** Path and query as received. */
  url: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  hasAuthorization: boolean;
  /** The raw header, kept only so tests can assert on it. */
  authorization: string | undefined;
  body: string;
  /** performance.now() when the request head arrived. */
  receivedAt: number;
}

export interface ScriptedResponse {
  status?: number;
  headers?: Record<string, string>;
  /** A string is sent as is; anything else as JSON. */
  body?: unknown;
  /** Wait this long before answering. */
  delayMs?: number;
  /**
   * "reset": destroy the socket after reading the request; "hang": never answer;
   * "stall": send the status, headers and the first half of the body, then nothing more.
   */
  action?: "reset" | "hang" | "stall";
}

export type Script = ScriptedResponse | ((request: RecordedRequest) => ScriptedResponse);

export class ScriptedServer {
  readonly requests: RecordedRequest[] = [];
  readonly #routes = new Map<string, Script[]>();
  readonly #sticky = new Map<string, Script>();
  readonly #sockets = new Set<Socket>();
  readonly #server: Server;
  #port = 0;

  private constructor() {
    this.#server = createServer((req, res) => {
      const receivedAt = performance.now();
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const url = new URL(req.url ?? "/", "http://x");
        const authorization = req.headers.authorization;
        const recorded: RecordedRequest = {
          method: req.method ?? "",
          url: req.url ?? "",
          path: url.pathname,
          query: url.searchParams,
          headers: req.headers,
          hasAuthorization: authorization !== undefined,
          authorization,
          body: Buffer.concat(chunks).toString("utf8"),
          receivedAt,
        };
        this.requests.push(recorded);
        const script = this.#next(recorded.method, recorded.path) ?? {
          status: 599,
          body: { error: `no scripted response for ${recorded.method} ${recorded.path}` },
        };
        this.#play(typeof script === "function" ? script(recorded) : script, res);
      });
    });
    this.#server.on("connection", (socket) => {
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
    });
  }

  /** Starts listening on 127.0.0.1 (a free port unless one is given). */
  static async start(port = 0): Promise<ScriptedServer> {
    const server = new ScriptedServer();
    await server.listen(port);
    return server;
  }

  /** A port that was free a moment ago and has nothing listening on it now. */
  static async freePort(): Promise<number> {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    return port;
  }

  async listen(port = 0): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, "127.0.0.1", () => resolve());
    });
    this.#port = (this.#server.address() as AddressInfo).port;
  }

  get port(): number {
    return this.#port;
  }

  /** `http://127.0.0.1:<port>` */
  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Queue responses for one route; each request takes the next one. */
  on(method: string, path: string, ...scripts: Script[]): this {
    const key = `${method.toUpperCase()} ${path}`;
    this.#routes.set(key, [...(this.#routes.get(key) ?? []), ...scripts]);
    return this;
  }

  /** The response for a route once its queue is empty (and forever after). */
  always(method: string, path: string, script: Script): this {
    this.#sticky.set(`${method.toUpperCase()} ${path}`, script);
    return this;
  }

  /** Requests received, optionally only those to a path. */
  to(path: string): RecordedRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  /** Milliseconds between consecutive recorded requests (optionally to one path). */
  gaps(path?: string): number[] {
    const list = path === undefined ? this.requests : this.to(path);
    return list.slice(1).map((r, i) => r.receivedAt - (list[i] as RecordedRequest).receivedAt);
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    this.#server.closeAllConnections();
    if (!this.#server.listening) return;
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #next(method: string, path: string): Script | undefined {
    const key = `${method} ${path}`;
    return this.#routes.get(key)?.shift() ?? this.#sticky.get(key);
  }

  #play(script: ScriptedResponse, res: ServerResponse): void {
    const send = () => {
      if (script.action === "hang") return;
      if (script.action === "reset") {
        res.socket?.destroy();
        return;
      }
      const body =
        script.body === undefined
          ? ""
          : typeof script.body === "string"
            ? script.body
            : JSON.stringify(script.body);
      const headers: Record<string, string> = { ...script.headers };
      if (typeof script.body !== "string" && script.body !== undefined) {
        headers["content-type"] ??= "application/json";
      }
      res.writeHead(script.status ?? 200, headers);
      if (script.action === "stall") res.write(body.slice(0, Math.floor(body.length / 2)));
      else res.end(body);
    };
    if (script.delayMs) setTimeout(send, script.delayMs);
    else send();
  }
}

/** Two servers: the API and "another origin" that must never see the token. */
export async function startPair(): Promise<{
  api: ScriptedServer;
  other: ScriptedServer;
  close: () => Promise<void>;
}> {
  const api = await ScriptedServer.start();
  const other = await ScriptedServer.start();
  return { api, other, close: async () => void (await Promise.all([api.close(), other.close()])) };
}

/** A long, recognisable token, so redaction (which ignores very short strings) applies. */
export const TEST_TOKEN = "rc_test_TOKEN_0123456789abcdef";
export const MODEL_ID = "bytedance/dreamina-3-0/pro/image-to-video";

/**
 * TEST_FETCH=node runs the same tests with the Node transport (src/http/node-fetch.ts) instead
 * of the global fetch: scripts/run-tests.mjs does both, so the two are held to one behaviour.
 */
const injectedFetch = process.env.TEST_FETCH === "node" ? nodeFetch : undefined;

/**
 * Fast, deterministic client settings for tests: jitter off (random = 1), tiny backoff.
 * `server` is anything with a base URL (a ScriptedServer, a sandbox).
 */
export function testClientOptions(
  server: { readonly url: string },
  overrides: Partial<RunComfyClientOptions> = {},
) {
  return {
    token: TEST_TOKEN,
    baseUrl: server.url,
    ...(injectedFetch ? { fetch: injectedFetch } : {}),
    timeoutMs: 2_000,
    random: () => 1,
    ...overrides,
    retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 200, maxElapsedMs: 5_000, ...overrides.retry },
  } satisfies RunComfyClientOptions;
}

export function testClient(server: { readonly url: string }, overrides: Partial<RunComfyClientOptions> = {}) {
  return new RunComfyClient(testClientOptions(server, overrides));
}
