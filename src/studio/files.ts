// Files the studio sends: videos with byte ranges (so the page can seek), images, and the
// page's own assets. Only files the server chose are ever opened: a name from the browser is
// matched against a fixed pattern, never joined into a path as it is.

import { existsSync } from "node:fs";
import { open, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";

export interface ByteRange {
  start: number;
  end: number;
}

/**
 * One range of a `Range: bytes=…` header against a file of `size` bytes; undefined for no
 * (or a multi-range) header, which is answered with the whole file; "unsatisfiable" for 416.
 */
export function parseRange(
  header: string | undefined,
  size: number,
): ByteRange | "unsatisfiable" | undefined {
  if (!header) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return undefined;
  const [, from, to] = match as unknown as [string, string, string];
  if (from === "" && to === "") return undefined;
  if (from === "") {
    const suffix = Number(to);
    if (suffix === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(from);
  const end = to === "" ? size - 1 : Math.min(Number(to), size - 1);
  if (start >= size || end < start) return "unsatisfiable";
  return { start, end };
}

export interface SendFileOptions {
  contentType: string;
  /** Offer it as a download under this name. */
  downloadName?: string | undefined;
}

/** A regular file, whole or one range of it. Anything else (a FIFO, a folder, gone) is a 404. */
export async function sendFile(request: Request, path: string, options: SendFileOptions): Promise<Response> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch {
    return new Response("not found", { status: 404 });
  }
  const stat = await handle.stat();
  if (!stat.isFile()) {
    await handle.close();
    return new Response("not found", { status: 404 });
  }
  const size = stat.size;
  const headers = new Headers({
    "content-type": options.contentType,
    "accept-ranges": "bytes",
    "cache-control": "private, max-age=3600",
    etag: `"${size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`,
  });
  if (options.downloadName !== undefined) {
    headers.set(
      "content-disposition",
      `attachment; filename*=UTF-8''${encodeURIComponent(options.downloadName)}`,
    );
  }
  const range = parseRange(request.headers.get("range") ?? undefined, size);
  if (range === "unsatisfiable") {
    await handle.close();
    headers.set("content-range", `bytes */${size}`);
    return new Response(null, { status: 416, headers });
  }
  const { start, end } = range ?? { start: 0, end: size - 1 };
  headers.set("content-length", String(size === 0 ? 0 : end - start + 1));
  if (range) headers.set("content-range", `bytes ${start}-${end}/${size}`);
  if (request.method === "HEAD" || size === 0) {
    await handle.close();
    return new Response(null, { status: range ? 206 : 200, headers });
  }
  // The stream reads from the descriptor already checked, not from the path again.
  const stream = handle.createReadStream({ start, end, autoClose: true });
  return new Response(Readable.toWeb(stream) as ReadableStream, { status: range ? 206 : 200, headers });
}

const ASSET_NAME = /^[a-z][a-z0-9-]{0,40}\.(js|css|html|svg)$/;
const TYPES: Record<string, string> = {
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  html: "text/html; charset=utf-8",
  svg: "image/svg+xml",
};

/** The folder of the page's files: `web/` beside this module (compiled JS in dist, TypeScript in src). */
export const WEB_DIR = join(dirname(fileURLToPath(import.meta.url)), "web");

/**
 * The page's files. From dist they are served as built; from the sources (tests, `tsx`), a
 * module's TypeScript is transpiled once on first request, so the page never needs a build to
 * be tried.
 */
export class Assets {
  readonly #dir: string;
  readonly #cache = new Map<string, { body: string; type: string }>();

  constructor(dir = WEB_DIR) {
    this.#dir = dir;
  }

  /** Loads (from the sources: transpiles) every page file now, so the first page load does not wait. */
  async warm(): Promise<void> {
    const { readdir } = await import("node:fs/promises");
    let names: string[] = [];
    try {
      names = await readdir(this.#dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (name.endsWith(".d.ts") || name.endsWith(".map")) continue;
      await this.get(name.replace(/\.ts$/, ".js")).catch(() => undefined);
    }
  }

  async get(name: string): Promise<{ body: string; type: string } | undefined> {
    if (!ASSET_NAME.test(name)) return undefined;
    const cached = this.#cache.get(name);
    if (cached) return cached;
    const ext = name.slice(name.lastIndexOf(".") + 1);
    const type = TYPES[ext]!;
    const path = join(this.#dir, name);
    let body: string | undefined;
    if (existsSync(path)) body = await readFile(path, "utf8");
    else if (ext === "js" && existsSync(path.replace(/\.js$/, ".ts"))) {
      body = await transpile(
        await readFile(path.replace(/\.js$/, ".ts"), "utf8"),
        name.replace(/\.js$/, ".ts"),
      );
    }
    if (body === undefined) return undefined;
    const asset = { body, type };
    this.#cache.set(name, asset);
    return asset;
  }
}

async function transpile(source: string, fileName: string): Promise<string> {
  // Only reached from the sources, where the dev dependency is present.
  const ts = (await import("typescript")).default;
  return ts.transpileModule(source, {
    fileName,
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ES2022,
      verbatimModuleSyntax: true,
    },
  }).outputText;
}
