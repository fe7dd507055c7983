// Which proxy a request goes through, from HTTPS_PROXY / HTTP_PROXY / NO_PROXY (lower case
// first), by the same rules as undici's EnvHttpProxyAgent (the shared dispatcher), so that the
// socket client used for downloads and the pool used for everything else never disagree.

import { HttpError } from "./http-error.js";

const DEFAULT_PORTS: Record<string, number> = { "http:": 80, "https:": 443 };

/** The proxy for `url` now, or undefined when it goes direct. */
export function proxyFor(url: URL, env: NodeJS.ProcessEnv = process.env): URL | undefined {
  const http = env.http_proxy ?? env.HTTP_PROXY;
  const raw = url.protocol === "https:" ? (env.https_proxy ?? env.HTTPS_PROXY ?? http) : http;
  if (!raw) return undefined;
  // Brackets kept around an IPv6 address, as NO_PROXY entries write it.
  const host = url.host.replace(/:\d*$/, "").toLowerCase();
  const port = Number.parseInt(url.port, 10) || DEFAULT_PORTS[url.protocol] || 0;
  if (bypasses(env.no_proxy ?? env.NO_PROXY ?? "", host, port)) return undefined;
  try {
    return new URL(raw);
  } catch {
    // undici refuses such a value too; a clear message beats a silent direct connection.
    throw new HttpError(`the proxy variable's value is not a URL: ${JSON.stringify(raw)}`, {
      retryable: false,
      code: "http_bad_proxy",
    });
  }
}

function bypasses(noProxy: string, host: string, port: number): boolean {
  if (noProxy === "*") return true;
  for (const entry of noProxy.split(/[,\s]/)) {
    if (!entry) continue;
    const parsed = /^(.+):(\d+)$/.exec(entry);
    const entryHost = (parsed ? parsed[1]! : entry).replace(/^\*?\./, "").toLowerCase();
    const entryPort = parsed ? Number.parseInt(parsed[2]!, 10) : 0;
    if (entryPort && entryPort !== port) continue;
    if (host === entryHost || host.endsWith(`.${entryHost}`)) return true;
  }
  return false;
}
