// The client's HTTP calls in Node, on undici's request API through the process's one dispatcher
// (./dispatcher.ts: keep-alive, HTTPS_PROXY/HTTP_PROXY/NO_PROXY): the same contract as the
// global fetch as the client uses it (src/api/transport.ts `FetchLike`), at a fraction of the
// CPU per call, because it skips the WHATWG Request/Response/stream machinery that a small JSON
// exchange does not need. A batch polls thousands of times; this is where its client CPU goes.
// Redirects are never followed, as the contract asks (the token must not follow one).

import { type Dispatcher, request } from "undici";
import type { FetchLike, ResponseLike } from "../api/transport.js";
import { httpDispatcher } from "./dispatcher.js";

type Method = "GET" | "POST" | "PUT" | "DELETE" | "PATCH" | "HEAD";

/** A `fetch` for {@link RunComfyClient} in Node: `new RunComfyClient({ fetch: nodeFetch })`. */
export const nodeFetch: FetchLike = async (url, init) => {
  let response: Dispatcher.ResponseData;
  let text: string;
  try {
    response = await request(url, {
      method: (init.method ?? "GET") as Method,
      headers: init.headers,
      body: init.body,
      signal: init.signal,
      dispatcher: httpDispatcher(),
    });
    // The whole body is read before the answer is handed over: a connection lost before then rejects.
    text = await response.body.text();
  } catch (error) {
    throw socketError(error);
  }
  const headers = response.headers;
  return {
    status: response.statusCode,
    headers: {
      get(name) {
        const value = headers[name.toLowerCase()];
        if (value === undefined) return null;
        return Array.isArray(value) ? value.join(", ") : value;
      },
    },
    text: async () => text,
  } satisfies ResponseLike;
};

/**
 * undici calls a connection closed by the other side UND_ERR_SOCKET; the client's messages and
 * retry rules speak Node's codes (what node:http and the global fetch report), so it is
 * ECONNRESET here. Connection failures (ECONNREFUSED, ENOTFOUND...) keep their own codes: they
 * tell the client a submit was certainly not sent.
 */
function socketError(error: unknown): unknown {
  if ((error as { code?: unknown } | undefined)?.code !== "UND_ERR_SOCKET") return error;
  const message = error instanceof Error ? error.message : String(error);
  return Object.assign(new Error(`socket hang up (${message})`, { cause: error }), { code: "ECONNRESET" });
}
