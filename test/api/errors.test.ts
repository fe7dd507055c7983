// Every error the contract names, mapped to its class, over a real socket.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  AuthenticationError,
  InsufficientBalanceError,
  InvalidInputError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
  type RunComfyError,
  ServerError,
  SubmissionUnknownError,
  UnexpectedResponseError,
} from "../../src/api/errors.js";
import { MODEL_ID, type ScriptedResponse, ScriptedServer, testClient } from "../helpers/scripted-server.js";

let server: ScriptedServer;
before(async () => {
  server = await ScriptedServer.start();
});
after(() => server.close());

const ID = "req_err";
const STATUS = `/v1/requests/${ID}/status`;
const noRetry = { retry: { maxAttempts: 1 } };

async function statusError(response: ScriptedResponse): Promise<RunComfyError> {
  server.on("GET", STATUS, response);
  const before = server.to(STATUS).length;
  const err = await testClient(server, noRetry)
    .status(ID)
    .then(
      () => assert.fail("expected an error"),
      (e: unknown) => e as RunComfyError,
    );
  assert.equal(server.to(STATUS).length, before + 1);
  return err;
}

type Row = [string, ScriptedResponse, new (...args: never[]) => RunComfyError, number | undefined];
const rows: Row[] = [
  [
    "401",
    { status: 401, body: { error_code: 400004, error_message: "token revoked" } },
    AuthenticationError,
    400004,
  ],
  ["401 without a body", { status: 401 }, AuthenticationError, undefined],
  [
    "200 carrying 400004",
    { status: 200, body: { error_code: 400004, message: "inactive" } },
    AuthenticationError,
    400004,
  ],
  ["403", { status: 403, body: { error: "forbidden" } }, PermissionDeniedError, undefined],
  [
    "403001",
    { status: 403, body: { error_code: 403001, error_message: "not yours" } },
    PermissionDeniedError,
    403001,
  ],
  ["404", { status: 404, body: { message: "no such thing" } }, NotFoundError, undefined],
  ["404001", { status: 404, body: { error_code: 404001, error_message: "expired" } }, NotFoundError, 404001],
  ["402", { status: 402, body: { error_message: "top up" } }, InsufficientBalanceError, undefined],
  [
    "400002",
    { status: 400, body: { error_code: 400002, error_message: "balance" } },
    InsufficientBalanceError,
    400002,
  ],
  [
    "400001",
    { status: 400, body: { error_code: 400001, error_message: "bad model" } },
    InvalidInputError,
    400001,
  ],
  ["plain 400", { status: 400, body: { error_message: "bad" } }, InvalidInputError, undefined],
  ["429", { status: 429, body: { error_message: "slow down" } }, RateLimitError, undefined],
  ["500", { status: 500, body: { error_message: "boom" } }, ServerError, undefined],
  ["503", { status: 503, body: "" }, ServerError, undefined],
  ["418", { status: 418, body: { error_message: "teapot" } }, UnexpectedResponseError, undefined],
  [
    "200 with an unknown error_code",
    { status: 200, body: { error_code: 999999 } },
    UnexpectedResponseError,
    999999,
  ],
];

describe("error code → class", () => {
  for (const [name, response, cls, code] of rows) {
    test(name, async () => {
      const err = await statusError(response);
      assert.ok(err instanceof cls, `${name}: got ${err.name}: ${err.message}`);
      assert.equal(err.name, cls.name);
      assert.equal(err.status, response.status);
      assert.equal(err.errorCode, code);
      assert.equal(err.requestId, ID);
      assert.match(err.message, new RegExp(`HTTP ${response.status}`));
      const sent = response.body as Record<string, unknown> | undefined;
      const text = sent?.error_message ?? sent?.message ?? sent?.error;
      if (typeof text === "string") assert.ok(err.message.includes(text), err.message);
    });
  }

  test("error_message wins over message and error", async () => {
    const err = await statusError({ status: 400, body: { error: "c", message: "b", error_message: "a" } });
    assert.match(err.message, /Invalid input: a /);
  });

  test("422 with a detail array → InvalidInputError.detail with field paths", async () => {
    const detail = [
      { loc: ["body", "image_urls", 0], msg: "must be a JPEG or PNG", type: "value_error" },
      { loc: ["body", "prompt"], msg: "too long" },
      { field: "frames", message: "must be 121 or 241" },
      "something general",
    ];
    const err = await statusError({ status: 422, body: { error_message: "schema", detail } });
    assert.ok(err instanceof InvalidInputError);
    assert.deepEqual(
      err.detail.map((d) => [d.field, d.message]),
      [
        ["image_urls.0", "must be a JPEG or PNG"],
        ["prompt", "too long"],
        ["frames", "must be 121 or 241"],
        [undefined, "something general"],
      ],
    );
    assert.deepEqual(err.detail[0]?.raw, detail[0]);
    assert.deepEqual((err.toJSON() as { detail: unknown[] }).detail.length, 4);
  });

  test("429 Retry-After → RateLimitError.retryAfterMs", async () => {
    const err = await statusError({ status: 429, headers: { "retry-after": "7" }, body: {} });
    assert.ok(err instanceof RateLimitError);
    assert.equal(err.retryAfterMs, 7000);
    assert.equal(err.retryable, true);
  });

  test("HTML 502 from a gateway: ServerError naming the HTTP status, HTML not dumped into the message", async () => {
    const html = "<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>";
    const err = await statusError({ status: 502, headers: { "content-type": "text/html" }, body: html });
    assert.ok(err instanceof ServerError);
    assert.match(err.message, /HTTP 502/);
    assert.match(err.message, /HTML/);
    assert.ok(!err.message.includes("<h1>"));
    assert.equal(err.body, html);
    assert.equal(err.retryable, true);
  });

  test("empty body on 200 → UnexpectedResponseError", async () => {
    const err = await statusError({ status: 200, body: "" });
    assert.ok(err instanceof UnexpectedResponseError);
    assert.match(err.message, /empty body/);
    assert.match(err.message, /HTTP 200/);
  });

  test("malformed JSON on 200 → UnexpectedResponseError", async () => {
    const err = await statusError({
      status: 200,
      headers: { "content-type": "application/json" },
      body: '{"status":',
    });
    assert.ok(err instanceof UnexpectedResponseError);
    assert.match(err.message, /not a JSON object/);
  });

  test("a JSON array on 200 → UnexpectedResponseError", async () => {
    const err = await statusError({ status: 200, body: "[1,2]" });
    assert.ok(err instanceof UnexpectedResponseError);
  });

  test("a long non-JSON body is kept, truncated", async () => {
    const err = await statusError({ status: 500, body: "x".repeat(5000) });
    assert.equal(typeof err.body, "string");
    assert.equal((err.body as string).length, 2000);
  });
});

describe("errors on submit", () => {
  const path = `/v1/models/${MODEL_ID}`;

  async function submitError(response: ScriptedResponse): Promise<RunComfyError> {
    server.on("POST", path, response);
    return testClient(server)
      .submit(MODEL_ID, { prompt: "p" })
      .then(
        () => assert.fail("expected an error"),
        (e: unknown) => e as RunComfyError,
      );
  }

  const definite: [string, ScriptedResponse, new (...args: never[]) => RunComfyError][] = [
    ["401", { status: 401, body: { error_code: 400004 } }, AuthenticationError],
    ["402", { status: 402, body: {} }, InsufficientBalanceError],
    [
      "422",
      { status: 422, body: { detail: [{ loc: ["body", "prompt"], msg: "required" }] } },
      InvalidInputError,
    ],
    ["400001", { status: 400, body: { error_code: 400001 } }, InvalidInputError],
    ["200 carrying 400002", { status: 200, body: { error_code: 400002 } }, InsufficientBalanceError],
  ];
  for (const [name, response, cls] of definite) {
    test(`${name}: a definite refusal keeps its class`, async () => {
      const before = server.to(path).length;
      const err = await submitError(response);
      assert.ok(err instanceof cls, `got ${err.name}`);
      assert.equal(server.to(path).length, before + 1);
    });
  }

  test("200 without request_id → SubmissionUnknownError with input, model id, time", async () => {
    const t0 = Date.now();
    const err = await submitError({ status: 200, body: { status: "in_queue" } });
    assert.ok(err instanceof SubmissionUnknownError, `got ${err.name}`);
    assert.equal(err.modelId, MODEL_ID);
    assert.deepEqual(err.input, { prompt: "p" });
    assert.ok(err.at.getTime() >= t0 && err.at.getTime() <= Date.now());
    assert.equal(err.retryable, false);
    assert.deepEqual(err.body, { status: "in_queue" });
  });

  test("200 with an unusable request_id → SubmissionUnknownError", async () => {
    const err = await submitError({ status: 200, body: { request_id: "../../etc" } });
    assert.ok(err instanceof SubmissionUnknownError);
  });

  test("200 with a body that is not JSON → SubmissionUnknownError", async () => {
    const err = await submitError({ status: 200, body: "OK" });
    assert.ok(err instanceof SubmissionUnknownError, `got ${err.name}`);
    assert.ok(err.cause instanceof UnexpectedResponseError);
  });
});
