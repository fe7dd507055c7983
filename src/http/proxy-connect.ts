// A connection to an origin through an HTTP proxy, for the socket client (./http-get.ts):
// for https a CONNECT tunnel, then TLS with the origin inside it (the proxy sees the host name
// and port, never a header or a byte of the exchange); for http a connection to the proxy
// itself, to which the request is sent in absolute form.

import { isIP, type NetConnectOpts, connect as netConnect, type Socket } from "node:net";
import { type ConnectionOptions, connect as tlsConnect } from "node:tls";
import { HttpError } from "./http-error.js";

/** Most bytes of a CONNECT answer's head read before giving up on it. */
const MAX_CONNECT_HEAD = 16 << 10;

/** `Proxy-Authorization` from the proxy URL's user and password, if it has them. */
export function proxyAuthorization(proxy: URL): string | undefined {
  if (!proxy.username && !proxy.password) return undefined;
  const user = decodeURIComponent(proxy.username);
  const password = decodeURIComponent(proxy.password);
  return `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
}

/** A plain or TLS connection to the proxy itself. */
function connectToProxy(proxy: URL, onread?: unknown): Socket {
  const host = proxy.hostname.startsWith("[") ? proxy.hostname.slice(1, -1) : proxy.hostname;
  if (proxy.protocol === "https:") {
    return tlsConnect({
      host,
      port: Number(proxy.port || 443),
      servername: isIP(host) === 0 ? host : undefined,
      ALPNProtocols: ["http/1.1"],
      // `onread` is a documented option of tls.connect that @types/node does not list.
      ...(onread === undefined ? {} : { onread }),
    } as ConnectionOptions);
  }
  if (proxy.protocol !== "http:") {
    throw new HttpError(`unsupported proxy scheme ${proxy.protocol} (http: or https: only)`, {
      retryable: false,
      code: "http_bad_proxy",
    });
  }
  return netConnect({
    host,
    port: Number(proxy.port || 80),
    ...(onread === undefined ? {} : { onread }),
  } as NetConnectOpts);
}

/** A connection to the proxy, for an http request in absolute form (read with `onread`). */
export function connectForAbsoluteForm(proxy: URL, onread: unknown): Socket {
  return connectToProxy(proxy, onread);
}

/**
 * A TLS connection to `url`'s origin through a CONNECT tunnel. The socket's data comes through
 * 'data' events (TLS over an existing socket cannot read into caller-given buffers).
 */
export async function connectThroughTunnel(
  url: URL,
  proxy: URL,
  tls: ConnectionOptions,
  signal: AbortSignal | undefined,
): Promise<Socket> {
  const raw = connectToProxy(proxy);
  const authority = `${url.hostname}:${url.port || 443}`;
  const lines = [`CONNECT ${authority} HTTP/1.1`, `Host: ${authority}`];
  const auth = proxyAuthorization(proxy);
  if (auth) lines.push(`Proxy-Authorization: ${auth}`);
  raw.write(`${lines.join("\r\n")}\r\n\r\n`);
  await new Promise<void>((resolve, reject) => {
    let head = Buffer.alloc(0);
    const done = (error?: unknown) => {
      raw.off("data", onData);
      raw.off("error", done);
      raw.off("close", onClose);
      signal?.removeEventListener("abort", onAbort);
      if (error === undefined) resolve();
      else {
        raw.destroy();
        reject(error);
      }
    };
    const onAbort = () =>
      done(signal?.reason ?? new DOMException("This operation was aborted", "AbortError"));
    const onClose = () => done(new HttpError(`the proxy ${proxy.host} closed the connection during CONNECT`));
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) {
        if (head.length > MAX_CONNECT_HEAD) {
          done(
            new HttpError(`the proxy ${proxy.host} sent an oversized CONNECT answer`, { retryable: false }),
          );
        }
        return;
      }
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head.toString("latin1", 0, end));
      if (!status) {
        done(
          new HttpError(`the proxy ${proxy.host} answered CONNECT with something else than HTTP`, {
            retryable: false,
          }),
        );
      } else if (status[1] !== "200") {
        // 407 (credentials) or 403 (not allowed) will not change by asking again; 502/503 may.
        const code = Number(status[1]);
        done(
          new HttpError(`the proxy ${proxy.host} refused CONNECT ${authority}: HTTP ${code}`, {
            retryable: code >= 500,
          }),
        );
      } else if (end + 4 !== head.length) {
        // The origin speaks first only after our TLS hello: bytes here mean a broken proxy.
        done(
          new HttpError(`the proxy ${proxy.host} sent bytes before the tunnel opened`, { retryable: false }),
        );
      } else {
        done();
      }
    };
    if (signal?.aborted) {
      onAbort();
      return;
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    raw.on("data", onData);
    raw.once("error", done);
    raw.once("close", onClose);
  });
  return tlsConnect({ ...tls, socket: raw });
}
