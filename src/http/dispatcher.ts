// The one HTTP connection pool of the process (undici): API calls, image probes and downloads
// all go through it, so they share keep-alive connections and the same proxy settings.
//
// Proxies come from the environment, as curl and the official RunComfy CLI read them:
// `HTTPS_PROXY` for https URLs, `HTTP_PROXY` for http URLs (and for https when HTTPS_PROXY is
// unset), `NO_PROXY` for hosts reached directly; the lower-case names win over the upper-case
// ones. https goes through a CONNECT tunnel (the proxy sees only the host name, never a header
// or a byte of the body); plain http is sent to the proxy in absolute form.
//
// The pool is built on first use and rebuilt when those variables change (a test, or a program
// that sets them after start-up): reading six variables per request costs nothing next to it.
// With no proxy variable set it is a plain Agent: EnvHttpProxyAgent would still parse each
// request's URL against NO_PROXY only to go direct, a cost a batch pays on every poll.

import { Agent, type Dispatcher, EnvHttpProxyAgent } from "undici";

const PROXY_VARIABLES = ["https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"];

/** Idle keep-alive connections are closed after this long (servers usually drop them near 5 s). */
const KEEP_ALIVE_MS = 4_000;

let shared: { key: string; agent: Dispatcher } | undefined;

function environmentKey(): string {
  let key = "";
  for (const name of PROXY_VARIABLES) key += `${process.env[name] ?? "\u0000"}\u0001`;
  return key;
}

/** Whether any variable names a proxy (NO_PROXY alone changes nothing). */
function proxyConfigured(): boolean {
  const env = process.env;
  return Boolean(env.https_proxy || env.HTTPS_PROXY || env.http_proxy || env.HTTP_PROXY);
}

/** The process's dispatcher, for the current proxy variables. */
export function httpDispatcher(): Dispatcher {
  const key = environmentKey();
  if (shared?.key === key) return shared.agent;
  const old = shared?.agent;
  const keepAlive = { keepAliveTimeout: KEEP_ALIVE_MS, keepAliveMaxTimeout: 60_000 };
  shared = {
    key,
    agent: proxyConfigured()
      ? new EnvHttpProxyAgent({
          ...keepAlive,
          // Plain http through an http proxy in absolute form (CONNECT is only for https).
          proxyTunnel: false,
        })
      : new Agent(keepAlive),
  };
  // Requests already under way on the old pool finish there; it closes once they are done.
  void old?.close().catch(() => {});
  return shared.agent;
}
