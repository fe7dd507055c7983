// The token goes to the configured API origin only, and never shows up in anything the
// client or its errors print, even when the server echoes it back.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { inspect } from "node:util";
import { RunComfyClient } from "../../src/api/client.js";
import {
  AuthenticationError,
  type RunComfyError,
  ServerError,
  SubmissionUnknownError,
  UnexpectedResponseError,
} from "../../src/api/errors.js";
import {
  MODEL_ID,
  type ScriptedServer,
  startPair,
  TEST_TOKEN,
  testClient,
} from "../helpers/scripted-server.js";

let api: ScriptedServer;
let other: ScriptedServer;
let closePair: () => Promise<void>;
before(async () => {
  ({ api, other, close: closePair } = await startPair());
});
after(() => closePair());

const ID = "req_sec";

function caught(p: Promise<unknown>): Promise<RunComfyError> {
  return p.then(
    () => assert.fail("expected an error"),
    (e: unknown) => e as RunComfyError,
  );
}

/** Every way an error (or client) can be shown, none of which may contain the token. */
function assertNoToken(value: unknown, token = TEST_TOKEN) {
  const views = [
    JSON.stringify(value),
    inspect(value, { depth: 10, showHidden: true }),
    String(value),
    value instanceof Error ? `${value.message}\n${value.stack}` : "",
    value instanceof Error ? JSON.stringify((value as RunComfyError).body) : "",
    value instanceof Error && value.cause ? inspect(value.cause, { depth: 10 }) : "",
  ];
  for (const view of views) assert.ok(!view.includes(token), `token leaked in: ${view.slice(0, 400)}`);
}

describe("origins", () => {
  test("status/result/cancel go to the configured base, never to URLs from the submit response", async () => {
    api.on("POST", `/v1/models/${MODEL_ID}`, {
      body: {
        request_id: ID,
        status_url: `${other.url}/v1/requests/${ID}/status`,
        result_url: `${other.url}/v1/requests/${ID}/result`,
        cancel_url: `${other.url}/v1/requests/${ID}/cancel`,
      },
    });
    api.on("GET", `/v1/requests/${ID}/status`, { body: { status: "completed" } });
    api.on("GET", `/v1/requests/${ID}/result`, {
      body: { status: "succeeded", output: { video: "https://c/v" } },
    });
    api.on("POST", `/v1/requests/${ID}/cancel`, { status: 202, body: { outcome: "not_cancellable" } });
    const client = testClient(api);
    const submitted = await client.submit(MODEL_ID, { prompt: "p" });
    assert.equal(submitted.statusUrl, `${other.url}/v1/requests/${ID}/status`, "reported as sent");
    await client.status(submitted.requestId);
    await client.result(submitted.requestId);
    await client.cancel(submitted.requestId);
    assert.deepEqual(
      api.requests.slice(-3).map((r) => `${r.method} ${r.path} ${r.hasAuthorization}`),
      [
        `GET /v1/requests/${ID}/status true`,
        `GET /v1/requests/${ID}/result true`,
        `POST /v1/requests/${ID}/cancel true`,
      ],
    );
    assert.equal(other.requests.length, 0, "the other origin received nothing");
  });

  for (const status of [301, 302, 307, 308]) {
    test(`a ${status} redirect to another origin is not followed`, async () => {
      const path = `/v1/requests/${ID}/status`;
      api.on("GET", path, { status, headers: { location: `${other.url}${path}` }, body: "" });
      const before = other.requests.length;
      const err = await caught(testClient(api, { retry: { maxAttempts: 1 } }).status(ID));
      assert.ok(err instanceof UnexpectedResponseError, `got ${err.name}`);
      assert.match(err.message, new RegExp(`HTTP ${status}`));
      assert.equal(other.requests.length, before);
      assert.equal(other.requests.filter((r) => r.hasAuthorization).length, 0);
    });
  }

  test("a redirect answering a submit is not followed (and not resent)", async () => {
    const path = `/v1/models/${MODEL_ID}`;
    const before = api.to(path).length;
    api.on("POST", path, { status: 307, headers: { location: `${other.url}${path}` }, body: "" });
    const err = await caught(testClient(api).submit(MODEL_ID, { prompt: "p" }));
    assert.ok(err instanceof SubmissionUnknownError, `got ${err.name}`);
    assert.equal(api.to(path).length, before + 1);
    assert.equal(other.requests.length, 0);
  });
});

describe("the token never leaks", () => {
  const echo = (status: number) => (req: { authorization: string | undefined }) => ({
    status,
    body: {
      error_code: status === 401 ? 400004 : undefined,
      error_message: `bad token ${req.authorization}`,
      detail: [{ loc: ["body", req.authorization], msg: `you sent ${req.authorization}` }],
      echo: { nested: [req.authorization] },
    },
  });

  test("the server is really echoing it (control)", async () => {
    api.on("GET", `/v1/requests/${ID}/status`, echo(401));
    const res = await fetch(`${api.url}/v1/requests/${ID}/status`, {
      headers: { Authorization: `Bearer ${TEST_TOKEN}` },
    });
    assert.ok((await res.text()).includes(TEST_TOKEN));
  });

  test("client: JSON.stringify and util.inspect", () => {
    const client = new RunComfyClient({ token: TEST_TOKEN, baseUrl: api.url });
    assertNoToken(client);
    assert.ok(JSON.stringify(client).includes(api.url), "still shows something useful");
    const fromFn = new RunComfyClient({ token: () => TEST_TOKEN, baseUrl: api.url });
    assertNoToken(fromFn);
  });

  for (const status of [401, 400, 422, 500]) {
    test(`a ${status} error that echoes the token`, async () => {
      api.on("GET", `/v1/requests/${ID}/status`, echo(status));
      const err = await caught(testClient(api, { retry: { maxAttempts: 1 } }).status(ID));
      assert.ok(err.message.includes("[REDACTED]"), err.message);
      assertNoToken(err);
    });
  }

  test("echoed in a non-JSON body, even where the body is cut short", async () => {
    api.on("GET", `/v1/requests/${ID}/status`, (req) => ({
      status: 502,
      body: `<html>${"x".repeat(1975)}${req.authorization}</html>`, // the token straddles char 2000
    }));
    const err = await caught(testClient(api, { retry: { maxAttempts: 1 } }).status(ID));
    assert.ok(err instanceof ServerError);
    assertNoToken(err);
    assertNoToken(err, TEST_TOKEN.slice(0, 8));
  });

  test("echoed as a JSON key", async () => {
    api.on("GET", `/v1/requests/${ID}/status`, () => ({ status: 500, body: { [TEST_TOKEN]: "yours?" } }));
    const err = await caught(testClient(api, { retry: { maxAttempts: 1 } }).status(ID));
    assertNoToken(err);
  });

  test("a submit whose outcome is unknown (cause chain included)", async () => {
    api.on("POST", `/v1/models/${MODEL_ID}`, echo(503));
    const err = await caught(testClient(api).submit(MODEL_ID, { prompt: "p" }));
    assert.ok(err instanceof SubmissionUnknownError);
    assertNoToken(err);
  });

  test("a token from a function (rotating) is redacted too", async () => {
    const rotating = "rc_rotating_SECRET_987654321";
    api.on("GET", `/v1/requests/${ID}/status`, echo(401));
    const err = await caught(testClient(api, { token: async () => rotating }).status(ID));
    assert.ok(err instanceof AuthenticationError);
    assertNoToken(err, rotating);
  });

  test("a token from the environment is redacted too", async () => {
    const fromEnv = "rc_env_SECRET_abcdefghijkl";
    const saved = process.env.RUNCOMFY_API_TOKEN;
    process.env.RUNCOMFY_API_TOKEN = fromEnv;
    try {
      api.on("GET", `/v1/requests/${ID}/status`, echo(401));
      const client = new RunComfyClient({ baseUrl: api.url, retry: { maxAttempts: 1 } });
      const err = await caught(client.status(ID));
      assert.equal(api.requests.at(-1)?.authorization, `Bearer ${fromEnv}`);
      assertNoToken(err, fromEnv);
      assertNoToken(client, fromEnv);
    } finally {
      if (saved === undefined) delete process.env.RUNCOMFY_API_TOKEN;
      else process.env.RUNCOMFY_API_TOKEN = saved;
    }
  });
});
