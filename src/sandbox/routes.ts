// The API's route table: which endpoint a method and path name, with the ids in the path
// (the sandbox's own /cdn/ and /__sandbox/ paths are matched by the handler before this).

export type ApiRoute =
  | { kind: "submit"; modelId: string; requestId?: undefined }
  | { kind: "detail"; modelId: string; requestId?: undefined }
  | { kind: "list"; requestId?: undefined }
  | { kind: "status" | "result" | "cancel"; requestId: string }
  | { kind: "method"; allow: string; requestId?: undefined };

export function apiRoute(method: string, path: string): ApiRoute | undefined {
  if (path === "/v1/models" || path === "/v1/models/") {
    return method === "GET" ? { kind: "list" } : { kind: "method", allow: "GET" };
  }
  if (path.startsWith("/v1/models/")) {
    let modelId: string;
    try {
      modelId = path
        .slice("/v1/models/".length)
        .split("/")
        .filter((s) => s !== "")
        .map((s) => decodeURIComponent(s))
        .join("/");
    } catch {
      return undefined;
    }
    if (method === "POST") return { kind: "submit", modelId };
    if (method === "GET") return { kind: "detail", modelId };
    return { kind: "method", allow: "GET, POST" };
  }
  const m = /^\/v1\/requests\/([^/]+)\/(status|result|cancel)$/.exec(path);
  if (!m) return undefined;
  const kind = m[2] as "status" | "result" | "cancel";
  const wanted = kind === "cancel" ? "POST" : "GET";
  if (method !== wanted) return { kind: "method", allow: wanted };
  try {
    return { kind, requestId: decodeURIComponent(m[1]!) };
  } catch {
    return undefined; // a broken %-escape: no request can have that id
  }
}

/** The model list's query parameters (a number that is not a plain non-negative integer is left out). */
export function listQuery(params: URLSearchParams) {
  const int = (name: string) => {
    const v = params.get(name);
    return v === null || !/^\d+$/.test(v) ? undefined : Number(v);
  };
  return {
    limit: int("limit"),
    offset: int("offset"),
    search: params.get("search") ?? undefined,
    category: params.get("category") ?? undefined,
    includeSchema: params.get("include_schema") === "true",
  };
}
