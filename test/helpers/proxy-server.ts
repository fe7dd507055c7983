// A real forward proxy on 127.0.0.1, as a corporate one behaves: CONNECT tunnels (for https)
// and absolute-form requests (for plain http), forwarded to the origin. It records what passes
// through it, so tests can prove what went through a proxy and what it could read.

import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from "node:http";
import { type AddressInfo, connect, type Socket } from "node:net";

export interface ProxiedRequest {
  method: string;
  /** The absolute-form target, e.g. `http://127.0.0.1:4000/v1/x`. */
  url: string;
  headers: IncomingHttpHeaders;
}

export interface Tunnel {
  /** `host:port` of the CONNECT request. */
  authority: string;
  headers: IncomingHttpHeaders;
  /** Every byte the client sent into the tunnel (TLS records for https). */
  fromClient: Buffer[];
}

export class TestProxy {
  readonly requests: ProxiedRequest[] = [];
  readonly tunnels: Tunnel[] = [];
  /** When set, CONNECT is answered with this status (a proxy that forbids the host). */
  refuseConnect: number | undefined;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #port = 0;

  private constructor() {
    this.#server = createServer((req, res) => {
      const recorded = { method: req.method ?? "", url: req.url ?? "", headers: req.headers };
      this.requests.push(recorded);
      let target: URL;
      try {
        target = new URL(req.url ?? "");
      } catch {
        res.writeHead(400).end("absolute-form request expected");
        return;
      }
      const headers = { ...req.headers };
      delete headers["proxy-authorization"];
      delete headers["proxy-connection"];
      const upstream = httpRequest(target, { method: req.method, headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      upstream.on("error", () => res.destroy());
      req.pipe(upstream);
    });
    this.#server.on("connect", (req, client: Socket, head: Buffer) => {
      const authority = req.url ?? "";
      const tunnel: Tunnel = { authority, headers: req.headers, fromClient: head.length > 0 ? [head] : [] };
      this.tunnels.push(tunnel);
      if (this.refuseConnect !== undefined) {
        client.end(`HTTP/1.1 ${this.refuseConnect} Refused\r\n\r\n`);
        return;
      }
      this.#sockets.add(client);
      client.on("close", () => this.#sockets.delete(client));
      const at = authority.lastIndexOf(":");
      const host = authority.slice(0, at).replace(/^\[|\]$/g, "");
      const upstream = connect(Number(authority.slice(at + 1)), host, () => {
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        if (head.length > 0) upstream.write(head);
        client.on("data", (chunk: Buffer) => tunnel.fromClient.push(chunk));
        client.pipe(upstream);
        upstream.pipe(client);
      });
      this.#sockets.add(upstream);
      upstream.on("close", () => this.#sockets.delete(upstream));
      upstream.on("error", () => client.destroy());
      client.on("error", () => upstream.destroy());
    });
    this.#server.on("connection", (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
    });
  }

  static async start(): Promise<TestProxy> {
    const proxy = new TestProxy();
    await new Promise<void>((resolve) => proxy.#server.listen(0, "127.0.0.1", resolve));
    proxy.#port = (proxy.#server.address() as AddressInfo).port;
    return proxy;
  }

  /** `http://127.0.0.1:<port>` */
  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Everything any client sent through any tunnel. */
  tunnelBytes(): Buffer {
    return Buffer.concat(this.tunnels.flatMap((t) => t.fromClient));
  }

  reset(): void {
    this.requests.length = 0;
    this.tunnels.length = 0;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

const PROXY_VARIABLES = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"];

/** Runs `fn` with exactly these proxy variables set (the others unset), then restores them. */
export async function withProxyEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = PROXY_VARIABLES.map((name) => [name, process.env[name]] as const);
  for (const name of PROXY_VARIABLES) delete process.env[name];
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}
