// A WHATWG `fetch` on the process's one dispatcher (./dispatcher.ts), for callers that want
// Response objects (image probes): the same keep-alive pool and proxy settings as API calls and
// downloads, which the global fetch (Node's own copy of undici, its own pool) would not share.
// undici is loaded on the first call, so a program that never fetches never loads it.

let loaded:
  | Promise<{ fetch: typeof import("undici").fetch; dispatcher: typeof import("./dispatcher.js") }>
  | undefined;

export const sharedFetch: typeof fetch = async (input, init) => {
  loaded ??= Promise.all([import("undici"), import("./dispatcher.js")]).then(([undici, dispatcher]) => ({
    fetch: undici.fetch,
    dispatcher,
  }));
  const { fetch: undiciFetch, dispatcher } = await loaded;
  const response = await undiciFetch(input as Parameters<typeof undiciFetch>[0], {
    ...(init as Parameters<typeof undiciFetch>[1]),
    dispatcher: dispatcher.httpDispatcher(),
  });
  return response as unknown as Response;
};
