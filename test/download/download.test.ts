// download(): a real node:http server serving a real MP4 (made with the bundled ffmpeg), with
// Range/If-Range support and fault modes: cuts, truncation, ignored ranges, a changed file,
// stalls, 404, HTML. The server counts every body byte it sends.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import fc from "fast-check";
import {
  DownloadError,
  download,
  fileNameFromUrl,
  OutputError,
  sanitizeFileName,
} from "../../src/download/download.js";
import {
  checkMp4File,
  checkMp4Structure,
  Mp4StreamCheck,
  Mp4StructureError,
} from "../../src/download/mp4.js";
import { mkfifo } from "../helpers/mounts.js";
import { makeTestMp4 } from "../helpers/mp4.js";

interface Mode {
  /** Destroy the socket after this many body bytes, for the first `times` full/ranged responses. */
  cutAt?: number;
  /** End the connection gracefully (FIN) instead of destroying it. */
  graceful?: boolean;
  times?: number;
  /** Answer 200 with the whole file even when a Range is asked for. */
  ignoreRange?: boolean;
  /** Send this many bytes then stall (never finish) for the first `times` responses. */
  stallAt?: number;
  status?: number;
  html?: boolean;
  /** Serve HTML but claim it is a video. */
  htmlAsVideo?: boolean;
  noEtag?: boolean;
}

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  status: number;
  bodyBytes: number;
}

let dir: string;
let video: Buffer;
let videoSha: string;
let other: Buffer;
let server: Server;
let base: string;
let mode: Mode = {};
let content: { bytes: Buffer; etag: string };
let seen: Seen[] = [];
let faultsLeft = 0;

function sha(buf: Buffer): string {
  return createHash("sha256").update(buf).digest("hex");
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const record: Seen = {
    method: req.method ?? "",
    url: req.url ?? "",
    headers: req.headers,
    status: 0,
    bodyBytes: 0,
  };
  seen.push(record);
  const send = (status: number, headers: Record<string, string | number>, body: Buffer, limit?: number) => {
    record.status = status;
    res.writeHead(status, headers);
    const slice = limit === undefined ? body : body.subarray(0, limit);
    record.bodyBytes += slice.length;
    if (limit === undefined) {
      res.end(slice);
      return;
    }
    res.write(slice, () => {
      if (mode.stallAt !== undefined) return; // keep the socket open, send nothing more
      setTimeout(() => (mode.graceful ? res.socket?.end() : res.socket?.destroy()), 20);
    });
  };
  if (mode.status) {
    send(mode.status, { "content-type": "application/json" }, Buffer.from('{"error":"nope"}'));
    return;
  }
  if (mode.html || mode.htmlAsVideo) {
    const page = Buffer.from("<!DOCTYPE html><html><body>Access Denied</body></html>");
    send(
      200,
      { "content-type": mode.html ? "text/html; charset=utf-8" : "video/mp4", "content-length": page.length },
      page,
    );
    return;
  }
  const { bytes, etag } = content;
  const common: Record<string, string | number> = { "content-type": "video/mp4", "accept-ranges": "bytes" };
  if (!mode.noEtag) common.etag = etag;
  let start = 0;
  let partial = false;
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
  const ifRange = req.headers["if-range"];
  if (range && !mode.ignoreRange && (ifRange === undefined || ifRange === etag)) {
    start = Number(range[1]);
    partial = true;
    if (start >= bytes.length) {
      send(416, { "content-range": `bytes */${bytes.length}` }, Buffer.alloc(0));
      return;
    }
  }
  const body = bytes.subarray(start);
  const headers = { ...common, "content-length": body.length };
  if (partial)
    Object.assign(headers, { "content-range": `bytes ${start}-${bytes.length - 1}/${bytes.length}` });
  let limit: number | undefined;
  if (faultsLeft > 0 && (mode.cutAt !== undefined || mode.stallAt !== undefined)) {
    faultsLeft--;
    limit = Math.max(0, (mode.cutAt ?? mode.stallAt ?? 0) - start);
  }
  send(partial ? 206 : 200, headers, body, limit);
}

function setMode(m: Mode): void {
  mode = m;
  faultsLeft = m.times ?? 1;
}

function bytesSent(): number {
  return seen.reduce((s, r) => s + r.bodyBytes, 0);
}

let caseNo = 0;
async function freshDir(): Promise<string> {
  const d = join(dir, `case-${++caseNo}`);
  await mkdir(d, { recursive: true });
  return d;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "dreamina-download-"));
  video = await makeTestMp4(join(dir, "source.mp4"), 48);
  other = await makeTestMp4(join(dir, "other.mp4"), 72);
  videoSha = sha(video);
  server = createServer(handle);
  // Idle keep-alive sockets must not keep the test process alive.
  server.keepAliveTimeout = 100;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  content = { bytes: video, etag: '"v1"' };
  seen = [];
  setMode({});
});

describe("download", () => {
  it("downloads a real MP4 into a directory, verified, with no .part left and no credentials sent", async () => {
    const d = await freshDir();
    const progress: number[] = [];
    const result = await download(`${base}/out/clip.mp4?sig=abc`, {
      dest: d,
      onProgress: (p) => progress.push(p.received),
    });
    assert.equal(result.path, join(d, "clip.mp4"));
    assert.equal(result.bytes, video.length);
    assert.equal(result.sha256, videoSha);
    assert.equal(result.resumed, false);
    assert.deepEqual(await readFile(result.path), video);
    assert.deepEqual(await readdir(d), ["clip.mp4"]);
    assert.equal(progress.at(-1), video.length);
    assert.equal(bytesSent(), video.length);
    for (const r of seen) {
      assert.equal(r.headers.authorization, undefined);
      assert.equal(r.headers.cookie, undefined);
      assert.equal(r.headers["proxy-authorization"], undefined);
    }
    const summary = await checkMp4File(result.path);
    assert.equal(summary.boxes[0]?.type, "ftyp");
    assert.ok(summary.faststart);
  });

  it("never sends Authorization, even through an injected fetch and with a token in the environment", async () => {
    const d = await freshDir();
    const sentHeaders: Headers[] = [];
    process.env.RUNCOMFY_API_TOKEN = "rc_secret_token_123456";
    try {
      await download(`${base}/v.mp4`, {
        dest: d,
        fetch: (input, init) => {
          sentHeaders.push(new Headers(init?.headers));
          return fetch(input, init);
        },
      });
    } finally {
      delete process.env.RUNCOMFY_API_TOKEN;
    }
    assert.equal(sentHeaders.length, 1);
    assert.equal(sentHeaders[0]?.get("authorization"), null);
    assert.equal(sentHeaders[0]?.get("cookie"), null);
    assert.equal(seen[0]?.headers.authorization, undefined);
  });

  it("resumes after a cut mid-body, fetching only the missing bytes", async () => {
    const d = await freshDir();
    const cutAt = Math.floor(video.length * 0.4);
    setMode({ cutAt, times: 1 });
    const result = await download(`${base}/v.mp4`, { dest: join(d, "out.mp4"), retryDelayMs: 1 });
    assert.equal(result.sha256, videoSha);
    assert.equal(result.resumed, true);
    assert.equal(seen.length, 2);
    assert.equal(seen[1]?.headers.range, `bytes=${cutAt}-`);
    assert.equal(seen[1]?.headers["if-range"], '"v1"');
    assert.equal(seen[1]?.bodyBytes, video.length - cutAt);
    assert.equal(bytesSent(), video.length);
    assert.deepEqual(await readdir(d), ["out.mp4"]);
  });

  it("resumes after several cuts and a graceful truncation (FIN before Content-Length)", async () => {
    const d = await freshDir();
    setMode({ cutAt: Math.floor(video.length / 3), times: 1, graceful: true });
    const result = await download(`${base}/v.mp4`, { dest: join(d, "a.mp4"), retryDelayMs: 1 });
    assert.equal(result.sha256, videoSha);
    assert.equal(bytesSent(), video.length);
  });

  it("treats a body that ends early without an error (received < Content-Length) as a cut", async () => {
    const d = await freshDir();
    let calls = 0;
    const truncatingFetch: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      if (calls++ > 0) return response;
      const short = Buffer.from(await response.arrayBuffer()).subarray(0, 5000);
      return new Response(short, { status: 200, headers: response.headers });
    };
    const result = await download(`${base}/v.mp4`, {
      dest: join(d, "t.mp4"),
      fetch: truncatingFetch,
      retryDelayMs: 1,
    });
    assert.equal(result.sha256, videoSha);
    assert.equal(result.resumed, true);
    assert.equal(seen[1]?.headers.range, "bytes=5000-");
  });

  it("a small file gets no .part.json (a cut is resumed within the process), and a .part without one keeps its name taken", async () => {
    const d = await freshDir();
    const target = join(d, "small.mp4");
    const names: string[][] = [];
    mode = { cutAt: 1000, times: 1 };
    const result = await download(`${base}/v.mp4`, {
      dest: target,
      retryDelayMs: 1,
      onProgress: () => {
        void readdir(d).then((list) => names.push(list));
      },
    });
    assert.equal(result.resumed, true);
    assert.equal(result.sha256, videoSha);
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(names.length > 0);
    assert.ok(
      names.every((list) => !list.some((n) => n.endsWith(".part.json"))),
      JSON.stringify(names),
    );
    // A .part without metadata in a directory is someone's download: its name is not taken.
    const dirDest = await freshDir();
    await writeFile(join(dirDest, "v.mp4.part"), "someone else's bytes");
    const beside = await download(`${base}/v.mp4`, { dest: dirDest });
    assert.equal(beside.path, join(dirDest, "v (1).mp4"));
    assert.equal(await readFile(join(dirDest, "v.mp4.part"), "utf8"), "someone else's bytes");
  });

  it("resumes a .part left by an earlier process (hashing the existing part first)", async () => {
    const d = await freshDir();
    const target = join(d, "left.mp4");
    const have = Math.floor(video.length / 2);
    await writeFile(`${target}.part`, video.subarray(0, have));
    await writeFile(
      `${target}.part.json`,
      JSON.stringify({ url: `${base}/v.mp4`, etag: '"v1"', total: video.length }),
    );
    const result = await download(`${base}/v.mp4`, { dest: target });
    assert.equal(result.resumed, true);
    assert.equal(result.sha256, videoSha);
    assert.equal(bytesSent(), video.length - have);
    assert.deepEqual((await readdir(d)).sort(), ["left.mp4"]);
  });

  it("a complete .part left just before the rename is finished without refetching the body", async () => {
    const d = await freshDir();
    const target = join(d, "done.mp4");
    await writeFile(`${target}.part`, video);
    await writeFile(
      `${target}.part.json`,
      JSON.stringify({ url: `${base}/v.mp4`, etag: '"v1"', total: video.length }),
    );
    const result = await download(`${base}/v.mp4`, { dest: target });
    assert.equal(result.sha256, videoSha);
    assert.equal(seen[0]?.status, 416);
    assert.equal(bytesSent(), 0);
  });

  it("ignores a .part without metadata (it cannot be validated) and starts over", async () => {
    const d = await freshDir();
    const target = join(d, "orphan.mp4");
    await writeFile(`${target}.part`, Buffer.alloc(1000, 7));
    const result = await download(`${base}/v.mp4`, { dest: target });
    assert.equal(result.sha256, videoSha);
    assert.equal(seen[0]?.headers.range, undefined);
  });

  it("restarts from zero when the server answers 200 to a Range request", async () => {
    const d = await freshDir();
    setMode({ cutAt: Math.floor(video.length * 0.6), times: 1 });
    let first = true;
    const result = await download(`${base}/v.mp4`, {
      dest: join(d, "r.mp4"),
      retryDelayMs: 1,
      fetch: (input, init) => {
        if (!first) mode.ignoreRange = true;
        first = false;
        return fetch(input, init);
      },
    });
    assert.equal(result.sha256, videoSha);
    assert.equal(result.resumed, false);
    assert.equal(seen[1]?.status, 200);
    assert.equal(bytesSent(), Math.floor(video.length * 0.6) + video.length);
  });

  it("restarts from zero when the file changed (ETag no longer matches If-Range)", async () => {
    const d = await freshDir();
    setMode({ cutAt: Math.floor(video.length * 0.6), times: 1 });
    let calls = 0;
    const result = await download(`${base}/v.mp4`, {
      dest: join(d, "c.mp4"),
      retryDelayMs: 1,
      fetch: (input, init) => {
        if (calls++ === 1) content = { bytes: other, etag: '"v2"' };
        return fetch(input, init);
      },
    });
    assert.equal(seen[1]?.headers["if-range"], '"v1"');
    assert.equal(seen[1]?.status, 200);
    assert.equal(result.sha256, sha(other));
    assert.equal(result.bytes, other.length);
    assert.equal(result.resumed, false);
  });

  it("resumes after a stall (idle timeout), and fails clearly with code timeout when it keeps stalling", async () => {
    const d = await freshDir();
    setMode({ stallAt: Math.floor(video.length / 2), times: 1 });
    const ok = await download(`${base}/v.mp4`, { dest: join(d, "s.mp4"), timeoutMs: 300, retryDelayMs: 1 });
    assert.equal(ok.sha256, videoSha);
    assert.equal(ok.resumed, true);
    assert.equal(bytesSent(), video.length);

    setMode({ stallAt: Math.floor(video.length / 2), times: 100 });
    await assert.rejects(
      download(`${base}/v.mp4`, { dest: join(d, "s2.mp4"), timeoutMs: 200, retries: 1, retryDelayMs: 1 }),
      (error: unknown) =>
        error instanceof DownloadError && error.code === "download_timeout" && /stalled/.test(error.message),
    );
    // The part is kept so that a later run resumes it.
    assert.ok(existsSync(join(d, "s2.mp4.part")));
    assert.ok(!existsSync(join(d, "s2.mp4")));
  });

  it("404 is a clear error, nothing written", async () => {
    const d = await freshDir();
    setMode({ status: 404 });
    await assert.rejects(
      download(`${base}/gone.mp4`, { dest: d }),
      (error: unknown) =>
        error instanceof DownloadError && error.code === "download_http_status" && error.status === 404,
    );
    assert.deepEqual(await readdir(d), []);
  });

  it("an HTML page instead of the video is a clear error, by Content-Type or by its bytes", async () => {
    const d = await freshDir();
    setMode({ html: true });
    await assert.rejects(
      download(`${base}/v.mp4`, { dest: d }),
      (error: unknown) =>
        error instanceof DownloadError &&
        error.code === "download_not_mp4" &&
        /HTML page/.test(error.message),
    );
    setMode({ htmlAsVideo: true });
    await assert.rejects(
      download(`${base}/v.mp4`, { dest: d }),
      (error: unknown) =>
        error instanceof DownloadError &&
        error.code === "download_not_mp4" &&
        /HTML page/.test(error.message),
    );
    assert.deepEqual(await readdir(d), []);
  });

  it("a truncated MP4 with no Content-Length is caught by the structure check", async () => {
    const d = await freshDir();
    const chopped = video.subarray(0, video.length - 500);
    const noLength: typeof fetch = async () => {
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(new Uint8Array(chopped));
          c.close();
        },
      });
      return new Response(stream, { status: 200, headers: { "content-type": "video/mp4" } });
    };
    await assert.rejects(
      download(`${base}/v.mp4`, { dest: d, fetch: noLength }),
      (error: unknown) =>
        error instanceof DownloadError &&
        error.code === "download_not_mp4" &&
        /truncated/.test(error.message),
    );
    assert.deepEqual(await readdir(d), []);
    // expectMp4: false skips the check (and keeps the name as is).
    const raw = await download(`${base}/data.bin`, { dest: d, fetch: noLength, expectMp4: false });
    assert.equal(raw.path, join(d, "data.bin"));
  });

  it("never overwrites without force: explicit file is an error, a directory gets a free name", async () => {
    const d = await freshDir();
    const target = join(d, "x.mp4");
    await writeFile(target, "keep me");
    await assert.rejects(
      download(`${base}/x.mp4`, { dest: target }),
      (error: unknown) => error instanceof OutputError && error.code === "exists",
    );
    assert.equal(await readFile(target, "utf8"), "keep me");
    assert.equal(seen.length, 0);

    const second = await download(`${base}/x.mp4`, { dest: d });
    assert.equal(second.path, join(d, "x (1).mp4"));
    const third = await download(`${base}/x.mp4`, { dest: d });
    assert.equal(third.path, join(d, "x (2).mp4"));
    assert.equal(await readFile(target, "utf8"), "keep me");

    const forced = await download(`${base}/x.mp4`, { dest: target, force: true });
    assert.equal(forced.path, target);
    assert.equal(sha(await readFile(target)), videoSha);
  });

  it("writes only regular files: a FIFO or a dangling link is refused (force too) before any request", async () => {
    const d = await freshDir();
    const fifo = join(d, "pipe.mp4");
    mkfifo(fifo);
    await symlink(join(d, "gone", "x.mp4"), join(d, "dangling.mp4"));
    for (const force of [false, true]) {
      await assert.rejects(
        download(`${base}/v.mp4`, { dest: fifo, force }),
        (error: unknown) => error instanceof OutputError && error.code === "not_regular",
      );
      await assert.rejects(
        download(`${base}/v.mp4`, { dest: join(d, "dangling.mp4"), force }),
        (error: unknown) => error instanceof OutputError && error.code === "dangling_link",
      );
    }
    assert.equal(seen.length, 0, "nothing was fetched");
    assert.ok((await lstat(fifo)).isFIFO());
    // In a folder, a name a FIFO holds is skipped like any taken name; with force it is refused.
    const skipped = await download(`${base}/pipe.mp4`, { dest: d });
    assert.equal(skipped.path, join(d, "pipe (1).mp4"));
    await assert.rejects(
      download(`${base}/pipe.mp4`, { dest: d, force: true }),
      (error: unknown) => error instanceof OutputError && error.code === "not_regular",
    );
    assert.ok((await lstat(fifo)).isFIFO());
    assert.deepEqual((await readdir(d)).sort(), ["dangling.mp4", "pipe (1).mp4", "pipe.mp4"]);
  });

  it("aborts promptly through the signal", async () => {
    const d = await freshDir();
    setMode({ stallAt: 10_000, times: 1 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("user pressed ^C")), 100);
    await assert.rejects(
      download(`${base}/v.mp4`, { dest: join(d, "a.mp4"), signal: controller.signal, timeoutMs: 10_000 }),
      (error: unknown) => error instanceof Error && error.name === "AbortError",
    );
  });
});

describe("file names", () => {
  it("sanitizes names taken from URLs", () => {
    const cases: [string, string][] = [
      ["https://cdn.runcomfy.net/a/b/video.mp4", "video.mp4"],
      ["https://cdn.runcomfy.net/a/b/video.MP4", "video.MP4"],
      ["https://cdn.runcomfy.net/a/b/clip", "clip.mp4"],
      ["https://cdn.runcomfy.net/a/b/clip.webm", "clip.webm.mp4"],
      ["https://cdn.runcomfy.net/", "video.mp4"],
      ["https://cdn.runcomfy.net/a/..", "video.mp4"],
      ["https://cdn.runcomfy.net/a/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "passwd.mp4"],
      ["https://cdn.runcomfy.net/a/..%5C..%5Cwin.ini", "win.ini.mp4"],
      ["https://cdn.runcomfy.net/a/.hidden.mp4", "hidden.mp4"],
      ["https://cdn.runcomfy.net/a/...", "video.mp4"],
      ["https://cdn.runcomfy.net/a/bad%00name%0A%1B[31m.mp4", "badname[31m.mp4"],
      ["https://cdn.runcomfy.net/a/%E2%80%AEevil4pm.exe", "evil4pm.exe.mp4"],
      ["https://cdn.runcomfy.net/a/CON", "_CON.mp4"],
      ["https://cdn.runcomfy.net/a/my%20video%3F.mp4", "my video_.mp4"],
      ["https://cdn.runcomfy.net/a/%ZZbroken.mp4", "%ZZbroken.mp4"],
    ];
    for (const [url, name] of cases) assert.equal(fileNameFromUrl(url), name, url);
  });

  it("limits length and never returns an empty name", () => {
    const long = sanitizeFileName(`${"é".repeat(300)}.mp4`);
    assert.ok(Buffer.byteLength(long) <= 200);
    assert.ok(long.endsWith(".mp4"));
    assert.equal(sanitizeFileName("   "), "video.mp4");
    assert.equal(sanitizeFileName("\u0000\u0001"), "video.mp4");
  });
});

describe("MP4 structure check", () => {
  it("accepts the real file and rejects damaged ones", async () => {
    const d = await freshDir();
    const ok = await checkMp4File(join(dir, "source.mp4"));
    assert.ok(ok.boxes.some((b) => b.type === "moov"));
    const bad = join(d, "bad.mp4");
    await writeFile(bad, video.subarray(0, video.length - 1));
    await assert.rejects(checkMp4File(bad), Mp4StructureError);
    await writeFile(bad, "<!DOCTYPE html><html></html>");
    await assert.rejects(checkMp4File(bad), /HTML page/);
    // ftyp only, no moov.
    const ftypOnly = video.subarray(0, video.readUInt32BE(0));
    await writeFile(bad, ftypOnly);
    await assert.rejects(checkMp4File(bad), /no moov/);
  });

  it("the streaming check (download's, as bytes go by) gives the file check's verdict, whatever the chunking", async () => {
    /** The verdict as comparable text: the summary, or the error's message. */
    const verdict = (run: () => unknown) => {
      try {
        return JSON.stringify(run());
      } catch (error) {
        assert.ok(error instanceof Mp4StructureError, String(error));
        return `error: ${error.message}`;
      }
    };
    const fromFile = (bytes: Uint8Array) =>
      checkMp4Structure(bytes.length, async (offset, length) => bytes.subarray(offset, offset + length)).then(
        (summary) => JSON.stringify(summary),
        (error: unknown) => {
          assert.ok(error instanceof Mp4StructureError, String(error));
          return `error: ${error.message}`;
        },
      );
    const box = (type: string, body: Uint8Array, form: "32" | "64" | "0" = "32") => {
      const head = Buffer.alloc(form === "64" ? 16 : 8);
      head.write(type, 4, "latin1");
      if (form === "64") {
        head.writeUInt32BE(1, 0);
        head.writeBigUInt64BE(BigInt(16 + body.length), 8);
      } else if (form === "32") {
        head.writeUInt32BE(8 + body.length, 0);
      }
      return Buffer.concat([head, body]);
    };
    const ftypEnd = video.readUInt32BE(0);
    const variants: Buffer[] = [
      video,
      // Tiny boxes (shorter than a 16-byte header) between real ones, a 64-bit size, a size-0 last box.
      Buffer.concat([
        box("free", Buffer.alloc(0)),
        video.subarray(0, ftypEnd),
        box("skip", Buffer.alloc(3)),
        video.subarray(ftypEnd),
      ]),
      Buffer.concat([
        video.subarray(0, ftypEnd),
        box("free", Buffer.alloc(40), "64"),
        video.subarray(ftypEnd),
      ]),
      Buffer.concat([video, box("mdat", Buffer.alloc(100), "0")]),
      Buffer.concat([video, Buffer.alloc(5)]),
      Buffer.concat([video, Buffer.from([0, 0, 0, 1, 0x66, 0x72, 0x65, 0x65, 0, 0])]),
      Buffer.concat([box("moov", Buffer.alloc(20)), video]),
      Buffer.from("<!DOCTYPE html><html><body>not found</body></html>"),
      Buffer.from([0, 0, 0, 4, 1, 2, 3, 4, 5, 6, 7, 8]),
      Buffer.alloc(6),
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.nat(variants.length - 1),
        fc.option(fc.nat(), { nil: undefined }),
        fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 20 }),
        async (which, cut, sizes) => {
          const whole = variants[which]!;
          const bytes = cut === undefined ? whole : whole.subarray(0, cut % (whole.length + 1));
          const stream = new Mp4StreamCheck();
          for (let at = 0, i = 0; at < bytes.length; i++) {
            const n = sizes[i % sizes.length]!;
            stream.feed(bytes.subarray(at, at + n));
            at += n;
          }
          assert.equal(
            verdict(() => stream.finish()),
            await fromFile(bytes),
          );
        },
      ),
      { numRuns: 400 },
    );
  });
});

// The built-in transports (undici, src/http/http-get.ts) against a raw TCP server that writes exactly the
// bytes each case needs: chunked bodies, interim 1xx responses, close-delimited bodies,
// redirects, truncation.
// Both built-in clients: the socket client (the default) and undici.
for (const transport of ["undici", "socket"] as const)
  describe(`built-in HTTP transport (${transport})`, () => {
    let raw: import("node:net").Server;
    let rawBase: string;
    let script: (request: string, socket: import("node:net").Socket) => void;
    const requests: string[] = [];

    before(async () => {
      const net = await import("node:net");
      raw = net.createServer((socket) => {
        let text = "";
        socket.on("error", () => {});
        socket.on("data", (d) => {
          text += d.toString("latin1");
          if (!text.includes("\r\n\r\n")) return;
          requests.push(text);
          script(text, socket);
          text = "";
        });
      });
      await new Promise<void>((r) => raw.listen(0, "127.0.0.1", r));
      rawBase = `http://127.0.0.1:${(raw.address() as AddressInfo).port}`;
    });
    after(() => {
      raw.close();
    });
    beforeEach(() => {
      requests.length = 0;
    });

    /** Writes `parts` one after another with a pause in between (so they arrive as separate reads). */
    function drip(socket: import("node:net").Socket, parts: (string | Buffer)[], end = true): void {
      let i = 0;
      const next = () => {
        if (socket.destroyed) return;
        if (i >= parts.length) {
          if (end) socket.end();
          return;
        }
        socket.write(parts[i++]!);
        setTimeout(next, 2);
      };
      next();
    }

    it("reads a chunked body (tiny chunks, extensions, trailer) after a 103 Early Hints", async () => {
      const d = await freshDir();
      script = (_req, socket) => {
        const parts: (string | Buffer)[] = [
          "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n",
          'HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nTransfer-Encoding: chunked\r\nETag: "c"\r\n\r\n',
        ];
        for (let at = 0; at < video.length; ) {
          const n = Math.min(video.length - at, 1 + ((at * 7919) % 40_000));
          parts.push(`${n.toString(16)};ext=1\r\n`, video.subarray(at, at + n), "\r\n");
          at += n;
        }
        parts.push("0\r\nX-Trailer: yes\r\n\r\n");
        drip(socket, [
          Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "latin1") : p))),
        ]);
      };
      const result = await download(`${rawBase}/chunked.mp4`, { transport, dest: d });
      assert.equal(result.sha256, videoSha);
      assert.equal(result.bytes, video.length);
      assert.match(requests[0] ?? "", /^accept-encoding: identity\r$/im);
      assert.doesNotMatch(requests[0] ?? "", /authorization|cookie/i);
    });

    it("a chunked body cut before its last chunk is a cut, resumed with Range", async () => {
      const d = await freshDir();
      const half = Math.floor(video.length / 2);
      script = (req, socket) => {
        const range = /range: bytes=(\d+)-/i.exec(req);
        if (!range) {
          const head =
            'HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nTransfer-Encoding: chunked\r\nETag: "c"\r\n\r\n';
          drip(socket, [head, `${video.length.toString(16)}\r\n`, video.subarray(0, half)], false);
          setTimeout(() => socket.end(), 50);
          return;
        }
        const start = Number(range[1]);
        const body = video.subarray(start);
        socket.end(
          Buffer.concat([
            Buffer.from(
              `HTTP/1.1 206 Partial Content\r\nContent-Type: video/mp4\r\nETag: "c"\r\n` +
                `Content-Range: bytes ${start}-${video.length - 1}/${video.length}\r\nContent-Length: ${body.length}\r\n\r\n`,
            ),
            body,
          ]),
        );
      };
      const result = await download(`${rawBase}/c.mp4`, { transport, dest: d, retryDelayMs: 1 });
      assert.equal(result.sha256, videoSha);
      assert.equal(result.resumed, true);
      assert.match(requests[1] ?? "", new RegExp(`range: bytes=${half}-`, "i"));
    });

    it("reads a close-delimited body (no length), and the MP4 check catches a short one", async () => {
      const d = await freshDir();
      let body = video;
      script = (_req, socket) => {
        drip(socket, ["HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nConnection: close\r\n\r\n", body]);
      };
      const ok = await download(`${rawBase}/close.mp4`, { transport, dest: d });
      assert.equal(ok.sha256, videoSha);
      body = video.subarray(0, video.length - 700);
      await assert.rejects(
        download(`${rawBase}/short.mp4`, { transport, dest: d }),
        (error: unknown) =>
          error instanceof DownloadError &&
          error.code === "download_not_mp4" &&
          /truncated/.test(error.message),
      );
    });

    it("follows redirects (relative and absolute) and gives up on a loop", async () => {
      const d = await freshDir();
      script = (req, socket) => {
        const path = /^GET (\S+)/.exec(req)?.[1] ?? "";
        if (path === "/a") socket.end("HTTP/1.1 302 Found\r\nLocation: /b\r\nContent-Length: 0\r\n\r\n");
        else if (path === "/b")
          socket.end(`HTTP/1.1 307 Temporary\r\nLocation: ${rawBase}/final.mp4\r\n\r\n`);
        else if (path === "/final.mp4") {
          socket.end(
            Buffer.concat([
              Buffer.from(
                `HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: ${video.length}\r\n\r\n`,
              ),
              video,
            ]),
          );
        } else socket.end("HTTP/1.1 301 Moved\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n");
      };
      const result = await download(`${rawBase}/a`, { transport, dest: join(d, "r.mp4") });
      assert.equal(result.sha256, videoSha);
      assert.deepEqual(
        requests.map((r) => /^GET (\S+)/.exec(r)?.[1]),
        ["/a", "/b", "/final.mp4"],
      );
      requests.length = 0;
      // Not retried: asking again cannot end a loop (the default 5 resumptions would mean 66 requests).
      await assert.rejects(
        download(`${rawBase}/loop`, { transport, dest: join(d, "loop.mp4") }),
        (error: unknown) =>
          error instanceof DownloadError &&
          error.code === "download_bad_response" &&
          /more than 10 redirects/.test(error.message),
      );
      assert.equal(requests.length, 11);
    });

    it("a malformed response fails at once with code bad_response (not retried as if it were a cut)", async () => {
      const d = await freshDir();
      // undici reads "12abc" as 12 (then the short body is a cut): both refuse a broken status line.
      const malformed =
        transport === "socket"
          ? "HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\nhello"
          : "HTTP/1.1 2x0 OK\r\nContent-Length: 5\r\n\r\nhello";
      script = (_req, socket) => socket.end(malformed);
      const t0 = Date.now();
      await assert.rejects(
        download(`${rawBase}/bad.mp4`, { transport, dest: join(d, "bad.mp4") }),
        (error: unknown) =>
          error instanceof DownloadError &&
          error.code === "download_bad_response" &&
          /invalid Content-Length|malformed HTTP response/.test(error.message),
      );
      assert.equal(requests.length, 1);
      assert.ok(Date.now() - t0 < 400, "no retry delays");
      assert.deepEqual(await readdir(d), []);
    });

    it("a body longer than Content-Length is not written past it; extra bytes are ignored", async () => {
      const d = await freshDir();
      script = (_req, socket) => {
        socket.end(
          Buffer.concat([
            Buffer.from(
              `HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: ${video.length}\r\n\r\n`,
            ),
            video,
            Buffer.from("garbage after the body"),
          ]),
        );
      };
      const result = await download(`${rawBase}/extra.mp4`, { transport, dest: d });
      assert.equal(result.sha256, videoSha);
      assert.equal(result.bytes, video.length);
    });

    it("restarts from zero when the server answers 200 to a Range request (no injected fetch)", async () => {
      const d = await freshDir();
      setMode({ cutAt: Math.floor(video.length * 0.6), times: 1, ignoreRange: true });
      const result = await download(`${base}/v.mp4`, { transport, dest: join(d, "r.mp4"), retryDelayMs: 1 });
      assert.equal(result.sha256, videoSha);
      assert.equal(result.resumed, false);
      assert.equal(seen[1]?.headers.range, `bytes=${Math.floor(video.length * 0.6)}-`);
      assert.equal(seen[1]?.status, 200);
    });
  });
