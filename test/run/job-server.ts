// A real HTTP server on 127.0.0.1 for the run layer's tests: each request id plays a script
// of status and result answers (the last one repeats), cancel answers are scripted too, and
// every request is recorded with its arrival time. No fetch mocking: the client talks HTTP.

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { RunComfyClient } from "../../src/api/client.js";
import type { RetryPolicy } from "../../src/api/retry.js";

export interface Answer {
  /** HTTP status, default 200. */
  http?: number;
  headers?: Record<string, string>;
  /** Sent as JSON unless a string. */
  body: unknown;
}

export interface JobScript {
  status: Answer[];
  result?: Answer[];
  /** Default: 202 with outcome "cancelled". */
  cancel?: Answer;
}

export interface Hit {
  method: string;
  path: string;
  query: string;
  requestId: string | undefined;
  kind: "submit" | "status" | "result" | "cancel" | "other";
  at: number;
  body: string;
}

export const MODEL_PATH = "/v1/models/bytedance/dreamina-3-0/pro/image-to-video";

export function statusBody(id: string, status: string, queuePosition?: number): Answer {
  const body: Record<string, unknown> = { request_id: id, status };
  if (queuePosition !== undefined) body.queue_position = queuePosition;
  return { body };
}

export function resultBody(id: string, status: string, extra: Record<string, unknown> = {}): Answer {
  return { body: { request_id: id, status, ...extra } };
}

export class JobServer {
  readonly hits: Hit[] = [];
  readonly scripts = new Map<string, JobScript>();
  /** Ids handed out by POST /v1/models/..., in order. */
  submitIds: string[] = [];
  readonly #server: Server;
  readonly #cursor = new Map<string, number>();
  url = "";

  private constructor() {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const url = new URL(req.url ?? "/", "http://x");
        const match = /^\/v1\/requests\/([^/]+)\/(status|result|cancel)$/.exec(url.pathname);
        const kind: Hit["kind"] = match
          ? (match[2] as Hit["kind"])
          : req.method === "POST" && url.pathname.startsWith("/v1/models/")
            ? "submit"
            : "other";
        const requestId = match?.[1];
        this.hits.push({
          method: req.method ?? "",
          path: url.pathname,
          query: url.search,
          requestId,
          kind,
          at: performance.now(),
          body: Buffer.concat(chunks).toString("utf8"),
        });
        const answer = this.#answer(kind, requestId);
        const text = typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body);
        res.writeHead(answer.http ?? 200, {
          "content-type": typeof answer.body === "string" ? "text/html" : "application/json",
          ...answer.headers,
        });
        res.end(text);
      });
    });
  }

  static async start(): Promise<JobServer> {
    const server = new JobServer();
    await new Promise<void>((resolve) => server.#server.listen(0, "127.0.0.1", resolve));
    const { port } = server.#server.address() as AddressInfo;
    server.url = `http://127.0.0.1:${port}`;
    return server;
  }

  #answer(kind: Hit["kind"], requestId: string | undefined): Answer {
    if (kind === "submit") {
      const id = this.submitIds.shift();
      if (!id) return { http: 500, body: { error_code: 500001, error_message: "no job scripted" } };
      return {
        body: {
          request_id: id,
          status_url: `${this.url}/v1/requests/${id}/status`,
          result_url: `${this.url}/v1/requests/${id}/result`,
          cancel_url: `${this.url}/v1/requests/${id}/cancel`,
        },
      };
    }
    const script = requestId ? this.scripts.get(requestId) : undefined;
    if (!script || kind === "other") {
      return { http: 404, body: { error_code: 404001, error_message: "request not found" } };
    }
    if (kind === "cancel") {
      return (
        script.cancel ?? {
          http: 202,
          body: { request_id: requestId, status: "cancelled", outcome: "cancelled" },
        }
      );
    }
    const list = kind === "status" ? script.status : (script.result ?? []);
    if (list.length === 0)
      return { http: 500, body: { error_code: 500001, error_message: "nothing scripted" } };
    const key = `${requestId}:${kind}`;
    const i = this.#cursor.get(key) ?? 0;
    this.#cursor.set(key, i + 1);
    return list[Math.min(i, list.length - 1)]!;
  }

  script(id: string, script: JobScript): void {
    this.scripts.set(id, script);
    this.#cursor.delete(`${id}:status`);
    this.#cursor.delete(`${id}:result`);
  }

  count(kind: Hit["kind"], requestId?: string): number {
    return this.hits.filter((h) => h.kind === kind && (requestId === undefined || h.requestId === requestId))
      .length;
  }

  client(retry: Partial<RetryPolicy> = { maxAttempts: 1 }): RunComfyClient {
    return new RunComfyClient({ baseUrl: this.url, token: "test-token", retry, timeoutMs: 5_000 });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}
