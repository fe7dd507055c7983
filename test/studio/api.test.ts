// The studio's API beyond security: an image by URL (probed, then fitted by downloading it into
// the studio's folder), byte ranges, and a submission whose outcome is unknown (never resent,
// set aside only on purpose).

import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { jpeg } from "../helpers/images.js";
import { raw, type TestStudio, testStudio, withKey } from "./helpers.js";

const json = (t: TestStudio, path: string, body: unknown) =>
  raw(t.studio, {
    method: "POST",
    path,
    headers: withKey(t.studio, { "content-type": "application/json" }),
    body: JSON.stringify(body),
  });

describe("studio API", () => {
  let t: TestStudio;
  let images: Server;
  let imageBase = "";
  const served = new Map<string, Buffer>();

  before(async () => {
    t = await testStudio();
    served.set("/wide.jpg", await jpeg(2400, 400));
    served.set("/ok.jpg", await jpeg(640, 480));
    images = createServer((req, res) => {
      const body = served.get(req.url ?? "");
      if (!body) return void res.writeHead(404).end();
      res.writeHead(200, { "content-type": "image/jpeg", "content-length": body.length }).end(body);
    });
    await new Promise<void>((resolve) => images.listen(0, "127.0.0.1", resolve));
    imageBase = `http://127.0.0.1:${(images.address() as AddressInfo).port}`;
  });
  after(async () => {
    await t.close();
    await new Promise((resolve) => images.close(resolve));
  });

  it("probes an image URL without keeping it, and fits one by downloading it into the studio", async () => {
    const ok = await json(t, "/api/preflight-url", { url: `${imageBase}/ok.jpg` });
    assert.equal(ok.status, 200, ok.text);
    const view = JSON.parse(ok.text);
    assert.equal(view.id, null);
    assert.equal(view.valid, true);
    assert.deepEqual([view.facts.width, view.facts.height], [640, 480]);

    const wide = JSON.parse((await json(t, "/api/preflight-url", { url: `${imageBase}/wide.jpg` })).text);
    assert.equal(wide.valid, false);
    assert.match(
      wide.violations.map((v: { message: string }) => v.message).join(" "),
      /ratio.*\(this image: 6\)/i,
    );
    const fit = await json(t, "/api/fit-url", { url: `${imageBase}/wide.jpg`, ratio: "crop" });
    assert.equal(fit.status, 200, fit.text);
    const fitted = JSON.parse(fit.text);
    assert.equal(fitted.fitted.valid, true);
    assert.ok(fitted.fitted.facts.width / fitted.fitted.facts.height < 3);
    const image = await raw(t.studio, {
      path: `/media/images/${fitted.fitted.id}`,
      headers: withKey(t.studio),
    });
    assert.equal(image.status, 200);
    assert.equal(image.headers["content-type"], "image/jpeg");

    const missing = await json(t, "/api/preflight-url", { url: `${imageBase}/nothing.jpg` });
    assert.equal(missing.status, 422);
    assert.match(JSON.parse(missing.text).error.message, /404/);
    const notHttp = await json(t, "/api/preflight-url", { url: "file:///etc/passwd" });
    assert.equal(notHttp.status, 400);
  });

  it("answers byte ranges, suffix ranges and an unsatisfiable one", async () => {
    const upload = await raw(t.studio, {
      method: "POST",
      path: "/api/images",
      headers: withKey(t.studio),
      body: served.get("/ok.jpg")!,
    });
    const id = JSON.parse(upload.text).id as string;
    const size = served.get("/ok.jpg")!.length;
    const tail = await raw(t.studio, {
      path: `/media/images/${id}`,
      headers: withKey(t.studio, { range: "bytes=-10" }),
    });
    assert.equal(tail.status, 206);
    assert.deepEqual(tail.body, served.get("/ok.jpg")!.subarray(size - 10));
    const beyond = await raw(t.studio, {
      path: `/media/images/${id}`,
      headers: withKey(t.studio, { range: `bytes=${size}-` }),
    });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers["content-range"], `bytes */${size}`);
  });

  it("a submit whose answer is lost is shown as unknown, never resent, and set aside only on purpose", async () => {
    const upload = await raw(t.studio, {
      method: "POST",
      path: "/api/images",
      headers: withKey(t.studio),
      body: served.get("/ok.jpg")!,
    });
    const id = JSON.parse(upload.text).id as string;
    t.sandbox.setFaults("submit:lost=1#1");
    try {
      const r = await json(t, "/api/jobs", {
        image: { upload: id },
        prompt: "lost answer",
        frames: 121,
        seed: 3,
      });
      assert.equal(r.status, 502, r.text);
      assert.equal(JSON.parse(r.text).error.code, "submission_unknown");
    } finally {
      t.sandbox.setFaults(undefined);
    }
    const submits = t.sandbox.requests().filter((q) => q.method === "POST" && q.path.includes("dreamina"));
    assert.equal(submits.length, 1, "sent once, never again");
    const history = JSON.parse(
      (await raw(t.studio, { path: "/api/history?state=submission_unknown", headers: withKey(t.studio) }))
        .text,
    );
    assert.equal(history.jobs.length, 1);
    const job = history.jobs[0];
    assert.equal(job.prompt, "lost answer");
    const cancel = await json(t, `/api/jobs/${job.localId}/cancel`, {});
    assert.equal(cancel.status, 409);
    const abandon = await json(t, `/api/jobs/${job.localId}/abandon`, {});
    assert.equal(abandon.status, 200, abandon.text);
    const detail = JSON.parse(
      (await raw(t.studio, { path: `/api/jobs/${job.localId}`, headers: withKey(t.studio) })).text,
    );
    assert.equal(detail.state, "abandoned");
    const again = await json(t, `/api/jobs/${job.localId}/abandon`, {});
    assert.equal(again.status, 409);
  });
});
