// The built-in GET transport (src/http/http-get.ts) on its own, against real local servers:
// bodies read into reused buffers under backpressure, a body that arrives with the head before
// anyone reads it, abort, https with a certificate of our own, and request headers that could
// split the request. (download.test.ts covers chunked bodies, 1xx, redirects and cuts.)

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { HttpGetError, httpGet } from "../../src/http/http-get.js";

const fixture = (name: string) =>
  readFileSync(fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url)));

/** Deterministic bytes that are not all alike, so any reordering or reuse shows in the digest. */
function pattern(size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = 0x2545f491;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const BODY = pattern(6 * 1024 * 1024 + 12_345);

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe("httpGet", () => {
  let server: Server;
  let host: string;
  const seenHeaders: Record<string, string | string[] | undefined>[] = [];

  before(async () => {
    server = createServer((req, res) => {
      seenHeaders.push(req.headers);
      if (req.url === "/small") {
        res.writeHead(200, { "content-length": "5", "x-twice": ["a", "b"] }).end("hello");
        return;
      }
      if (req.url === "/stall") {
        res.writeHead(200, { "content-length": String(BODY.length) });
        res.write(BODY.subarray(0, 100_000));
        return;
      }
      res.writeHead(200, { "content-length": String(BODY.length) }).end(BODY);
    });
    host = await listen(server);
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it("streams a large body through a slow sink: bytes intact, pieces never held past the buffer limit", async () => {
    const response = await httpGet(`http://${host}/big`, { bufferBytes: 512 * 1024 });
    assert.equal(response.status, 200);
    assert.equal(response.header("Content-Length"), String(BODY.length));
    const hash = createHash("sha256");
    let held = 0;
    let mostHeld = 0;
    let pieces = 0;
    await response.pipe((chunk) => {
      hash.update(chunk);
      pieces++;
      // Keep a copy of the view's first bytes, and check them again when we give the piece back:
      // if the transport reused the buffer early, they would have changed.
      const head = Buffer.from(chunk.subarray(0, 16));
      held += chunk.byteLength;
      mostHeld = Math.max(mostHeld, held);
      return new Promise<void>((resolve, reject) =>
        setTimeout(() => {
          held -= chunk.byteLength;
          if (!head.equals(Buffer.from(chunk.subarray(0, 16))))
            reject(new Error("a piece was overwritten while held"));
          else resolve();
        }, 1),
      );
    });
    assert.equal(hash.digest("hex"), sha(BODY));
    assert.ok(pieces > 10, `pieces: ${pieces}`);
    // At most the buffer limit plus one read in flight.
    assert.ok(mostHeld <= 512 * 1024 + 256 * 1024, `held at once: ${mostHeld}`);
  });

  it("keeps a body that arrived with the head until pipe() is called, and joins repeated headers", async () => {
    const response = await httpGet(`http://${host}/small`);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(response.header("x-twice"), "a, b");
    const parts: string[] = [];
    await response.pipe((chunk) => {
      parts.push(Buffer.from(chunk).toString());
    });
    assert.equal(parts.join(""), "hello");
    await assert.rejects(
      response.pipe(() => {}),
      /only once/,
    );
  });

  it("sends only the headers given (no credentials of its own), and refuses header injection", async () => {
    seenHeaders.length = 0;
    const response = await httpGet(`http://${host}/small`, { headers: { range: "bytes=0-" } });
    response.cancel();
    const sent = seenHeaders[0]!;
    assert.equal(sent.range, "bytes=0-");
    assert.equal(sent.authorization, undefined);
    assert.equal(sent.cookie, undefined);
    assert.equal(sent.host, host);
    await assert.rejects(
      httpGet(`http://${host}/small`, { headers: { "if-range": '"x"\r\nAuthorization: Bearer y' } }),
      (error: unknown) => error instanceof HttpGetError && /invalid request header/.test(error.message),
    );
  });

  it("aborts a stalled body at once through the signal", async () => {
    const controller = new AbortController();
    const response = await httpGet(`http://${host}/stall`, { signal: controller.signal });
    let got = 0;
    const done = response.pipe((chunk) => {
      got += chunk.byteLength;
    });
    setTimeout(() => controller.abort(new Error("stop now")), 50);
    const t0 = Date.now();
    await assert.rejects(done, /stop now/);
    assert.ok(Date.now() - t0 < 1000);
    assert.equal(got, 100_000);
  });

  it("a sink that throws stops the body with its error", async () => {
    const response = await httpGet(`http://${host}/big`);
    await assert.rejects(
      response.pipe(() => {
        throw new Error("disk full");
      }),
      /disk full/,
    );
  });

  it("a connection refused is an error, not a hang", async () => {
    const closed = createServer();
    const where = await listen(closed);
    await new Promise<void>((r) => closed.close(() => r()));
    await assert.rejects(httpGet(`http://${where}/x`), /ECONNREFUSED/);
  });
});

// Raw TCP servers that write exactly the bytes a case needs.
describe("httpGet against raw responses", () => {
  const servers: import("node:net").Server[] = [];
  after(() => {
    for (const server of servers) server.close();
  });
  async function raw(onRequest: (socket: import("node:net").Socket) => void): Promise<string> {
    const { createServer: createTcpServer } = await import("node:net");
    const server = createTcpServer((socket) => {
      socket.on("error", () => {});
      socket.once("data", () => onRequest(socket));
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  }

  it("an invalid or listed Content-Length is a clear error (not a crash, not an empty body)", async () => {
    for (const value of ["abc", "5, 5", "-1"]) {
      const url = await raw((socket) =>
        socket.end(`HTTP/1.1 200 OK\r\nContent-Length: ${value}\r\n\r\nhello`),
      );
      await assert.rejects(httpGet(url), (error: unknown) => {
        assert.ok(error instanceof HttpGetError, String(error));
        assert.match(error.message, /invalid Content-Length/);
        return true;
      });
    }
  });

  it("bytes after the response never overwrite a piece the sink still holds", async () => {
    const url = await raw((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n${"A".repeat(1000)}`);
      setTimeout(() => socket.end("Z".repeat(5000)), 50);
    });
    const response = await httpGet(url);
    let seen = "";
    await response.pipe(
      (chunk) =>
        new Promise<void>((resolve) =>
          setTimeout(() => {
            seen += Buffer.from(chunk).toString();
            resolve();
          }, 150),
        ),
    );
    assert.equal(seen, "A".repeat(1000));
  });

  it("pipe() after an abort or a cancel rejects at once (the body had already arrived with the head)", async () => {
    const url = await raw((socket) => socket.end("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"));
    const controller = new AbortController();
    const aborted = await httpGet(url, { signal: controller.signal });
    await new Promise((r) => setTimeout(r, 30));
    controller.abort(new Error("stop"));
    await assert.rejects(
      aborted.pipe(() => {}),
      /stop/,
    );
    const cancelled = await httpGet(url);
    await new Promise((r) => setTimeout(r, 30));
    cancelled.cancel();
    await assert.rejects(
      cancelled.pipe(() => {}),
      /cancelled/,
    );
  });

  it("a small buffer and a sink that keeps nothing still read the whole body", async () => {
    const body = pattern(3 * 1024 * 1024);
    const url = await raw((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
      socket.end(body);
    });
    const response = await httpGet(url, { bufferBytes: 512 * 1024 });
    const hash = createHash("sha256");
    await response.pipe((chunk) => {
      hash.update(chunk);
    });
    assert.equal(hash.digest("hex"), sha(body));
  });
});

describe("httpGet over https", () => {
  let server: import("node:https").Server;
  let port: number;
  before(async () => {
    server = createHttpsServer(
      { key: fixture("localhost-key.pem"), cert: fixture("localhost-cert.pem") },
      (_req, res) => {
        res.writeHead(200, { "content-length": String(BODY.length) }).end(BODY);
      },
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it("reads the body over TLS (by name and by IP), and refuses a certificate nobody vouches for", async () => {
    const ca = fixture("localhost-cert.pem");
    for (const name of ["localhost", "127.0.0.1"]) {
      const response = await httpGet(`https://${name}:${port}/v.mp4`, { ca });
      const hash = createHash("sha256");
      await response.pipe(async (chunk) => {
        hash.update(chunk);
      });
      assert.equal(hash.digest("hex"), sha(BODY), name);
    }
    await assert.rejects(httpGet(`https://localhost:${port}/v.mp4`), /self-signed certificate/);
  });

  it("keeps to the buffer limit over TLS too (16 KiB records, a slow sink)", async () => {
    const ca = fixture("localhost-cert.pem");
    const response = await httpGet(`https://localhost:${port}/v.mp4`, { ca, bufferBytes: 1024 * 1024 });
    const hash = createHash("sha256");
    let held = 0;
    let mostHeld = 0;
    await response.pipe((chunk) => {
      hash.update(chunk);
      held += chunk.byteLength;
      mostHeld = Math.max(mostHeld, held);
      return new Promise<void>((resolve) =>
        setTimeout(() => {
          held -= chunk.byteLength;
          resolve();
        }, 2),
      );
    });
    assert.equal(hash.digest("hex"), sha(BODY));
    // The limit, plus what TLS had already decrypted when reading stopped.
    assert.ok(mostHeld <= 1024 * 1024 + 256 * 1024, `held at once: ${mostHeld}`);
  });
});
