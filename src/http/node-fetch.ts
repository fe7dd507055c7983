// The client's HTTP calls on node:http / node:https, for Node programs: the same contract as
// the global fetch as the client uses it (src/api/transport.ts `FetchLike`), at about a third
// of the CPU per call, because it skips the WHATWG Request/Response/stream machinery that a
// small JSON exchange does not need. A batch polls thousands of times; this is where its client
// CPU goes. Connections are kept alive by Node's global agents (idle ones do not hold the
// process open). Redirects are never followed, as the contract asks.

import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import type { FetchLike, ResponseLike } from "../api/transport.js";

/** A `fetch` for {@link RunComfyClient} in Node: `new RunComfyClient({ fetch: nodeFetch })`. */
export const nodeFetch: FetchLike = (url, init) =>
  new Promise<ResponseLike>((resolve, reject) => {
    const request = url.startsWith("https:") ? httpsRequest : httpRequest;
    let req: ReturnType<typeof httpRequest>;
    try {
      req = request(url, { method: init.method, headers: init.headers, signal: init.signal }, (res) =>
        readBody(res, resolve, reject),
      );
    } catch (error) {
      // A URL or header node:http refuses: nothing was sent.
      reject(error);
      return;
    }
    req.once("error", reject);
    req.end(init.body);
  });

/** Resolves once the whole body is in; a connection lost before then rejects. */
function readBody(
  res: IncomingMessage,
  resolve: (response: ResponseLike) => void,
  reject: (error: unknown) => void,
): void {
  let text = "";
  res.setEncoding("utf8");
  res.on("data", (chunk: string) => {
    text += chunk;
  });
  res.once("error", reject);
  res.once("end", () => {
    const headers = res.headers;
    resolve({
      status: res.statusCode ?? 0,
      headers: {
        get(name) {
          const value = headers[name.toLowerCase()];
          if (value === undefined) return null;
          return Array.isArray(value) ? value.join(", ") : value;
        },
      },
      text: async () => text,
    });
  });
  res.once("close", () => {
    if (!res.complete) {
      reject(
        Object.assign(new Error("the connection closed before the whole response arrived"), {
          code: "ECONNRESET",
        }),
      );
    }
  });
}
