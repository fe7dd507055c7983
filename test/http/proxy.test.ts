// API calls, image probes and downloads through a real local proxy (test/helpers/proxy-server.ts):
// HTTP_PROXY (absolute form) and HTTPS_PROXY (CONNECT) are honoured, upper and lower case,
// NO_PROXY keeps hosts direct, and the token goes to the API origin only: never to an image
// host or CDN, and never readable by the proxy for https.
//
// The origins are on 127.0.0.1 and "localhost": nothing bypasses the proxy for loopback by
// default (as with curl and undici), so each case sets NO_PROXY itself (withProxyEnv).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { RunComfyClient } from "../../src/api/client.js";
import { download } from "../../src/download/download.js";
import { nodeFetch } from "../../src/http/node-fetch.js";
import { proxyFor } from "../../src/http/proxy-env.js";
import { probeUrl } from "../../src/image/probe-url.js";
import { png } from "../helpers/images.js";
import { makeTestMp4 } from "../helpers/mp4.js";
import { TestProxy, withProxyEnv } from "../helpers/proxy-server.js";
import { TEST_TOKEN } from "../helpers/scripted-server.js";

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

interface Seen {
  path: string;
  host: string;
  authorization: string | undefined;
}

/** An origin that answers as the API (status), an image host (img.png) and a CDN (v.mp4). */
function handler(seen: Seen[], image: Buffer, video: Buffer) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "").split("?")[0] ?? "";
    seen.push({ path, host: req.headers.host ?? "", authorization: req.headers.authorization });
    if (path.endsWith("/status")) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ request_id: "req-1", status: "in_progress" }));
    } else if (path === "/img.png") {
      res.writeHead(200, { "content-type": "image/png", "content-length": image.length }).end(image);
    } else if (path === "/v.mp4") {
      res
        .writeHead(200, { "content-type": "video/mp4", "content-length": video.length, etag: '"v1"' })
        .end(video);
    } else res.writeHead(404).end();
  };
}

describe("through a proxy", () => {
  let proxy: TestProxy;
  let image: Buffer;
  let video: Buffer;
  let dir: string;
  const api: Seen[] = [];
  const cdn: Seen[] = [];
  let apiServer: import("node:http").Server;
  let cdnServer: import("node:http").Server;
  let apiPort: number;
  let cdnPort: number;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "dreamina-proxy-"));
    image = await png(64, 48);
    video = await makeTestMp4(join(dir, "src.mp4"), 12);
    proxy = await TestProxy.start();
    apiServer = createServer(handler(api, image, video));
    cdnServer = createServer(handler(cdn, image, video));
    for (const s of [apiServer, cdnServer]) await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    apiPort = (apiServer.address() as AddressInfo).port;
    cdnPort = (cdnServer.address() as AddressInfo).port;
  });
  after(async () => {
    await proxy.close();
    for (const s of [apiServer, cdnServer]) {
      s.closeAllConnections();
      s.close();
    }
    await rm(dir, { recursive: true, force: true });
  });

  const reset = () => {
    proxy.reset();
    api.length = 0;
    cdn.length = 0;
  };

  /** One API call, one probe, one download: the three kinds of traffic. */
  async function allThree(apiBase: string, cdnBase: string, name: string) {
    const client = new RunComfyClient({
      token: TEST_TOKEN,
      baseUrl: apiBase,
      fetch: nodeFetch,
      retry: { maxAttempts: 1 },
    });
    assert.equal((await client.status("req-1")).status, "in_progress");
    assert.equal((await probeUrl(`${cdnBase}/img.png`, {})).width, 64);
    const saved = await download(`${cdnBase}/v.mp4`, { dest: join(dir, name), force: true, retries: 0 });
    assert.equal(saved.sha256, sha(video));
  }

  it("HTTP_PROXY: API calls, image probes and downloads go through it; the token only to the API", async () => {
    reset();
    const apiBase = `http://127.0.0.1:${apiPort}`;
    const cdnBase = `http://127.0.0.1:${cdnPort}`;
    await withProxyEnv({ HTTP_PROXY: proxy.url }, () => allThree(apiBase, cdnBase, "a.mp4"));
    const targets = proxy.requests.map((r) => r.url.split("?")[0]);
    assert.ok(targets.includes(`${apiBase}/v1/requests/req-1/status`), targets.join(" "));
    assert.ok(targets.includes(`${cdnBase}/img.png`), targets.join(" "));
    assert.ok(targets.includes(`${cdnBase}/v.mp4`), targets.join(" "));
    // Everything the origins saw came through the proxy.
    assert.equal(proxy.requests.length, api.length + cdn.length);
    assert.equal(proxy.tunnels.length, 0, "plain http is sent in absolute form, not tunnelled");
    // The token: on the API call only (plain http is cleartext to anyone on the path, a proxy too).
    for (const r of proxy.requests) {
      const toApi = r.url.startsWith(apiBase);
      assert.equal(r.headers.authorization === `Bearer ${TEST_TOKEN}`, toApi, r.url);
    }
    assert.ok(cdn.every((r) => r.authorization === undefined));
  });

  it("lower-case http_proxy is honoured too", async () => {
    reset();
    const cdnBase = `http://127.0.0.1:${cdnPort}`;
    await withProxyEnv({ http_proxy: proxy.url }, () =>
      allThree(`http://127.0.0.1:${apiPort}`, cdnBase, "b.mp4"),
    );
    assert.equal(proxy.requests.length, 3);
  });

  it("NO_PROXY keeps hosts direct: 127.0.0.1, localhost, host:port entries, lower case", async () => {
    const apiBase = `http://127.0.0.1:${apiPort}`;
    const cdnBase = `http://127.0.0.1:${cdnPort}`;
    const cases: Record<string, string>[] = [
      { HTTP_PROXY: proxy.url, NO_PROXY: "127.0.0.1" },
      { http_proxy: proxy.url, no_proxy: "example.com, 127.0.0.1" },
      { HTTP_PROXY: proxy.url, NO_PROXY: "*" },
    ];
    for (const vars of cases) {
      reset();
      await withProxyEnv(vars, () => allThree(apiBase, cdnBase, "c.mp4"));
      assert.equal(proxy.requests.length, 0, JSON.stringify(vars));
      assert.equal(api.length + cdn.length, 3);
    }
    // An entry with a port bypasses that port only; "localhost" matches the name, not 127.0.0.1.
    reset();
    await withProxyEnv({ HTTP_PROXY: proxy.url, no_proxy: `127.0.0.1:${cdnPort}` }, () =>
      allThree(apiBase, cdnBase, "d.mp4"),
    );
    assert.deepEqual(
      proxy.requests.map((r) => r.url.split("?")[0]),
      [`${apiBase}/v1/requests/req-1/status`],
    );
    reset();
    await withProxyEnv({ HTTP_PROXY: proxy.url, NO_PROXY: "localhost" }, () =>
      allThree(`http://localhost:${apiPort}`, cdnBase, "e.mp4"),
    );
    assert.deepEqual(
      proxy.requests.map((r) => new URL(r.url).pathname),
      ["/img.png", "/v.mp4"],
    );
    assert.ok(api.every((r) => r.host === `localhost:${apiPort}`));
  });

  it("the proxy variables follow undici's rules (lower case first, HTTP_PROXY for https as a fallback)", () => {
    const https = new URL("https://cdn.example/v.mp4");
    const http = new URL("http://cdn.example/v.mp4");
    assert.equal(proxyFor(https, { HTTPS_PROXY: "http://a:1" })?.host, "a:1");
    assert.equal(proxyFor(https, { HTTPS_PROXY: "http://a:1", https_proxy: "http://b:2" })?.host, "b:2");
    assert.equal(proxyFor(https, { HTTP_PROXY: "http://c:3" })?.host, "c:3");
    assert.equal(proxyFor(http, { HTTPS_PROXY: "http://a:1" }), undefined);
    assert.equal(proxyFor(https, { HTTPS_PROXY: "http://a:1", NO_PROXY: ".example" }), undefined);
    assert.equal(proxyFor(https, { HTTPS_PROXY: "http://a:1", NO_PROXY: "*.example" }), undefined);
    assert.equal(proxyFor(https, { HTTPS_PROXY: "http://a:1", NO_PROXY: "example:80" })?.host, "a:1");
    assert.equal(proxyFor(https, { HTTPS_PROXY: "http://a:1", NO_PROXY: "notcdn.example" })?.host, "a:1");
    assert.throws(() => proxyFor(https, { HTTPS_PROXY: "not a url" }), /not a URL/);
    assert.equal(proxyFor(https, { HTTPS_PROXY: "" }), undefined, "empty means unset");
  });

  it("an unreachable proxy or a refused CONNECT fails the download clearly, never as a success", async () => {
    await withProxyEnv({ HTTPS_PROXY: "http://127.0.0.1:1" }, async () => {
      await assert.rejects(
        download("https://127.0.0.1:9/v.mp4", { dest: join(dir, "f.mp4"), retries: 0 }),
        (error: unknown) =>
          (error as { code?: string }).code === "download_cut" && /ECONNREFUSED/.test(String(error)),
      );
    });
    reset();
    proxy.refuseConnect = 403;
    try {
      await withProxyEnv({ HTTPS_PROXY: proxy.url }, async () => {
        await assert.rejects(
          download("https://127.0.0.1:9/v.mp4", { dest: join(dir, "f.mp4") }),
          (error: unknown) =>
            (error as { code?: string }).code === "download_bad_response" && /HTTP 403/.test(String(error)),
        );
      });
    } finally {
      proxy.refuseConnect = undefined;
    }
    assert.equal(proxy.tunnels.length, 1, "a refusal is not retried");
    // A proxy variable that is not a URL: a clear error at once, not five resumptions.
    await withProxyEnv({ https_proxy: "proxy.corp:3128 oops" }, async () => {
      await assert.rejects(
        download("https://127.0.0.1:9/v.mp4", { dest: join(dir, "f.mp4"), retryDelayMs: 5_000 }),
        (error: unknown) =>
          (error as { code?: string }).code === "download_bad_response" &&
          (error as { cause?: { code?: string } }).cause?.code === "http_bad_proxy",
      );
    });
  });

  describe("HTTPS_PROXY with https origins (CONNECT)", () => {
    let httpsApi: import("node:https").Server;
    let httpsCdn: import("node:https").Server;
    const tls = {
      key: readFileSync(fixture("localhost-key.pem")),
      cert: readFileSync(fixture("localhost-cert.pem")),
    };

    before(async () => {
      httpsApi = createHttpsServer(tls, handler(api, image, video));
      httpsCdn = createHttpsServer(tls, handler(cdn, image, video));
      for (const s of [httpsApi, httpsCdn]) await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    });
    after(() => {
      for (const s of [httpsApi, httpsCdn]) {
        s.closeAllConnections();
        s.close();
      }
    });

    it("every call is tunnelled; the proxy never sees the token, the CDN never gets it", async () => {
      reset();
      const apiBase = `https://localhost:${(httpsApi.address() as AddressInfo).port}`;
      const cdnBase = `https://127.0.0.1:${(httpsCdn.address() as AddressInfo).port}`;
      // NODE_EXTRA_CA_CERTS is read at start-up only: the calls run in a child process.
      const child = spawn(
        process.execPath,
        [
          "--import",
          "tsx",
          fileURLToPath(new URL("../helpers/proxy-child.ts", import.meta.url)),
          apiBase,
          cdnBase,
          dir,
          TEST_TOKEN,
        ],
        {
          env: {
            ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/_proxy$/i.test(k))),
            https_proxy: proxy.url,
            NO_PROXY: "",
            NODE_EXTRA_CA_CERTS: fixture("localhost-cert.pem"),
            NODE_NO_WARNINGS: "1",
          },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let out = "";
      let err = "";
      child.stdout.on("data", (d) => {
        out += d;
      });
      child.stderr.on("data", (d) => {
        err += d;
      });
      const code = await new Promise<number | null>((r) => child.on("exit", r));
      assert.equal(code, 0, err);
      const result = JSON.parse(out.trim()) as { status: string; width: number; sha256: string };
      assert.deepEqual(result, { status: "in_progress", width: 64, bytes: video.length, sha256: sha(video) });

      assert.equal(proxy.requests.length, 0, "nothing in absolute form");
      const authorities = new Set(proxy.tunnels.map((t) => t.authority));
      assert.ok(authorities.has(new URL(apiBase).host), [...authorities].join(" "));
      assert.ok(authorities.has(new URL(cdnBase).host), [...authorities].join(" "));
      // The probe (the shared pool) and the download (its own socket client) each opened one.
      assert.ok(proxy.tunnels.filter((t) => t.authority === new URL(cdnBase).host).length >= 2);
      assert.ok(proxy.tunnels.every((t) => t.headers.authorization === undefined));
      const bytes = proxy.tunnelBytes();
      assert.ok(bytes.length > 0);
      assert.ok(!bytes.includes(TEST_TOKEN), "the token crossed the proxy in cleartext");
      assert.ok(!bytes.includes("Bearer"), "an Authorization header crossed the proxy in cleartext");
      // The API got the token (so the check above is not vacuous); the image host and CDN never did.
      assert.ok(api.some((r) => r.authorization === `Bearer ${TEST_TOKEN}`));
      assert.ok(cdn.length >= 2 && cdn.every((r) => r.authorization === undefined));
    });
  });
});
