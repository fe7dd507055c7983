// The protocol client against the sandbox's documented variants that are not the plain
// path: insufficient balance (402, 400002 on another status), error messages under
// `message` or `error`, unrouted paths and methods, and image fetches that fail for a reason
// the user has to see. Real HTTP to an in-process sandbox; both transports (TEST_FETCH).

import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import {
  InsufficientBalanceError,
  InvalidInputError,
  NotFoundError,
  RunComfyError,
  ServerError,
  SubmissionUnknownError,
  UnexpectedResponseError,
} from "../../src/api/errors.js";
import { interpretResponse } from "../../src/api/transport.js";
import { type Sandbox, startSandbox } from "../../src/sandbox/index.js";
import { MODEL_ID, ScriptedServer, TEST_TOKEN, testClient } from "../helpers/scripted-server.js";
import { dataUri, testImage } from "../sandbox/helpers.js";

let sandbox: Sandbox;
let image: string;

before(async () => {
  sandbox = await startSandbox({ quiet: true, timeScale: 600, imageFetch: { timeoutMs: 300 } });
  image = dataUri(await testImage(400, 400, 5));
});
after(() => sandbox.close());

const submitsSoFar = () => sandbox.requests().filter((e) => e.route === "submit").length;

describe("insufficient balance on submit", () => {
  const cases: [spec: string, status: number][] = [
    ["submit:balance=1", 402],
    ["submit:balance@400=1", 400],
    ["submit:error200@400002=1", 200],
  ];
  for (const [spec, status] of cases) {
    test(`${spec}: InsufficientBalanceError (HTTP ${status}), a definite refusal sent once`, async () => {
      sandbox.setFaults(spec);
      const jobsBefore = sandbox.jobs().length;
      const submitsBefore = submitsSoFar();
      try {
        const error = await testClient(sandbox)
          .submit(MODEL_ID, { prompt: "p", image_urls: [image] })
          .then(
            () => assert.fail("the submit should be refused"),
            (e: unknown) => e,
          );
        assert.ok(error instanceof InsufficientBalanceError, String(error));
        assert.ok(!(error instanceof SubmissionUnknownError), "a refusal is not an unknown outcome");
        assert.equal(error.status, status);
        assert.equal(error.errorCode, 400002);
        assert.equal(error.retryable, false);
        assert.match(error.message, /^Insufficient balance: /);
        assert.equal(submitsSoFar() - submitsBefore, 1, "not retried");
        assert.equal(sandbox.jobs().length, jobsBefore, "nothing was created");
      } finally {
        sandbox.setFaults(undefined);
      }
    });
  }
});

describe("error messages under `message` or `error`", () => {
  for (const key of ["message", "error"]) {
    test(`error-key=${key}: the service's message reaches every error class`, async () => {
      sandbox.setFaults(`error-key=${key}`);
      try {
        const client = testClient(sandbox);
        const missing = await client.status("no-such-request").catch((e: unknown) => e);
        assert.ok(missing instanceof NotFoundError);
        assert.equal(missing.errorCode, 404001);
        assert.match(missing.message, /Request no-such-request not found \(unknown, deleted or expired\)/);
        const said = (missing.body as Record<string, unknown>)[key];
        assert.equal(typeof said, "string");
        assert.ok(missing.message.includes(said as string), "the body's message is the error's message");

        const invalid = await client.submit(MODEL_ID, { prompt: "p" }).catch((e: unknown) => e);
        assert.ok(invalid instanceof InvalidInputError, String(invalid));
        assert.match(invalid.message, /The input does not match the model's schema/);
        assert.ok(invalid.detail.some((d) => d.field === "image_urls"));

        sandbox.setFaults(`error-key=${key},result:500=1`);
        const failing = await testClient(sandbox, { retry: { maxAttempts: 1 } })
          .result("no-such-request")
          .catch((e: unknown) => e);
        assert.ok(failing instanceof ServerError);
        assert.match(failing.message, /Internal server error\. \(HTTP 500, error_code 500001\)/);
      } finally {
        sandbox.setFaults(undefined);
      }
    });
  }
});

describe("unrouted answers carry an error_code", () => {
  test("a base URL with a wrong path: NotFoundError with the sandbox's code and the route it missed", async () => {
    const client = testClient({ url: `${sandbox.url}/not-the-api` });
    const error = await client.status("abc").catch((e: unknown) => e);
    assert.ok(error instanceof NotFoundError, String(error));
    assert.equal(error.status, 404);
    assert.equal(error.errorCode, 404002);
    assert.match(error.message, /No route for GET \/not-the-api\/v1\/requests\/abc\/status/);
  });

  test("a wrong method: the client reads the 405 as an unexpected response with its code", async () => {
    const response = await fetch(`${sandbox.url}/v1/requests/abc/cancel`, {
      headers: { authorization: `Bearer ${TEST_TOKEN}` },
    });
    const error = interpretResponse(response.status, response.headers, await response.text(), {
      kind: "read",
      method: "GET",
      requestId: "abc",
    });
    assert.ok(error instanceof UnexpectedResponseError, String(error));
    assert.equal(error.status, 405);
    assert.equal(error.errorCode, 405001);
    assert.match(error.message, /GET is not allowed on \/v1\/requests\/abc\/cancel; use POST/);
  });
});

describe("an image the service cannot fetch", () => {
  let host: Server;
  let origin: string;
  let closedPort: number;
  before(async () => {
    host = createServer((req, res) => {
      if (req.url === "/gone.jpg") res.writeHead(410).end();
      // Anything else: never answered.
    });
    await new Promise<void>((r) => host.listen(0, "127.0.0.1", r));
    origin = `http://127.0.0.1:${(host.address() as AddressInfo).port}`;
    closedPort = await ScriptedServer.freePort();
  });
  after(() => {
    host.closeAllConnections();
    host.close();
  });

  test("InvalidInputError whose detail names the cause: HTTP status, refused, DNS, timeout", async () => {
    const cases: [url: string, why: RegExp][] = [
      [`${origin}/gone.jpg`, /answered HTTP 410 Gone/],
      [`http://127.0.0.1:${closedPort}/a.jpg`, /connection refused by 127\.0\.0\.1:\d+/],
      [`http://${"y".repeat(64)}.invalid/a.jpg`, /DNS lookup failed for y+\.invalid/],
      [`${origin}/slow.jpg`, /timed out after 300 ms/],
    ];
    const client = testClient(sandbox);
    for (const [url, why] of cases) {
      const error = await client
        .submit(MODEL_ID, { prompt: "p", image_urls: [url] })
        .catch((e: unknown) => e);
      assert.ok(error instanceof InvalidInputError, `${url}: ${String(error)}`);
      assert.equal(error.status, 422);
      assert.equal(error.detail.length, 1);
      assert.equal(error.detail[0]?.field, "image_urls.0");
      assert.match(error.detail[0]?.message ?? "", why, url);
      assert.ok(error instanceof RunComfyError);
    }
  });
});
