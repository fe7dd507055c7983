// The studio's security rules at the HTTP level: the session key, Host and Origin checks
// (DNS rebinding, cross-site pages), POST-only state changes, the upload limit, no path from
// the browser reaching the file system, and the API token in no answer at all.

import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { jpeg } from "../helpers/images.js";
import { raw, STUDIO_TOKEN, type TestStudio, testStudio, withKey } from "./helpers.js";

describe("studio security", () => {
  let t: TestStudio;
  const answers: string[] = [];
  const record = <T extends { text: string; headers: Record<string, unknown> }>(r: T): T => {
    answers.push(r.text, JSON.stringify(r.headers));
    return r;
  };

  before(async () => {
    t = await testStudio({ maxUploadBytes: 200_000 });
  });
  after(async () => {
    // Every answer of this file, the page and its scripts included, never held the token.
    for (const text of answers) assert.ok(!text.includes(STUDIO_TOKEN), "the token is in an answer");
    await t.close();
  });

  it("refuses every request without the session key (401), the page and its API alike", async () => {
    for (const path of ["/", "/api/config", "/api/events", "/assets/main.js", "/api/history"]) {
      const r = record(await raw(t.studio, { path }));
      assert.equal(r.status, 401, path);
      assert.match(r.text, /session key/);
    }
    const wrong = record(await raw(t.studio, { path: "/api/config", headers: { "x-studio-key": "guess" } }));
    assert.equal(wrong.status, 401);
    const post = record(await raw(t.studio, { method: "POST", path: "/api/jobs", body: "{}" }));
    assert.equal(post.status, 401);
  });

  it("sets an HttpOnly, SameSite=Strict cookie from the key and takes the key out of the address", async () => {
    const r = record(await raw(t.studio, { path: `/?key=${t.studio.key}` }));
    assert.equal(r.status, 303);
    assert.equal(r.headers.location, "/");
    const cookie = String(r.headers["set-cookie"]);
    assert.match(cookie, new RegExp(`dreamina_studio_${t.studio.port}=${t.studio.key}`));
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    const page = record(
      await raw(t.studio, {
        path: "/",
        headers: { cookie: `dreamina_studio_${t.studio.port}=${t.studio.key}` },
      }),
    );
    assert.equal(page.status, 200);
    assert.match(page.text, /Dreamina studio/);
    assert.match(String(page.headers["content-security-policy"]), /default-src 'self'/);
    // The cookie of another port (another studio) is not this one's.
    const other = record(
      await raw(t.studio, { path: "/", headers: { cookie: `dreamina_studio_1=${t.studio.key}` } }),
    );
    assert.equal(other.status, 401);
  });

  it("refuses a foreign Host (DNS rebinding) with 403, even with the key", async () => {
    for (const host of [
      `evil.example:${t.studio.port}`,
      "127.0.0.1:1",
      `localhost.evil.example:${t.studio.port}`,
      "",
    ]) {
      const r = record(await raw(t.studio, { path: "/api/config", headers: withKey(t.studio, { host }) }));
      // No Host at all is refused by node itself (400) before the studio sees it.
      assert.equal(r.status, host === "" ? 400 : 403, `host ${JSON.stringify(host)}`);
    }
    const own = record(
      await raw(t.studio, {
        path: "/api/config",
        headers: withKey(t.studio, { host: `localhost:${t.studio.port}` }),
      }),
    );
    assert.equal(own.status, 200);
  });

  it("refuses a foreign Origin and cross-site fetches with 403, even with the key", async () => {
    for (const origin of [
      "https://evil.example",
      `http://evil.example:${t.studio.port}`,
      "null",
      `http://127.0.0.1:${t.studio.port}/x`,
    ]) {
      const r = record(
        await raw(t.studio, {
          method: "POST",
          path: "/api/jobs",
          headers: withKey(t.studio, { origin, "content-type": "application/json" }),
          body: "{}",
        }),
      );
      assert.equal(r.status, 403, origin);
    }
    const site = record(
      await raw(t.studio, {
        path: "/api/config",
        headers: withKey(t.studio, { "sec-fetch-site": "cross-site" }),
      }),
    );
    assert.equal(site.status, 403);
    const own = record(
      await raw(t.studio, { path: "/api/config", headers: withKey(t.studio, { origin: t.studio.origin }) }),
    );
    assert.equal(own.status, 200);
  });

  it("takes state-changing calls by POST only (405 otherwise), and reads by GET only", async () => {
    for (const path of [
      "/api/jobs",
      "/api/jobs/1/cancel",
      "/api/jobs/1/abandon",
      "/api/images",
      `/api/images/${"a".repeat(64)}/fit`,
      "/api/preflight-url",
    ]) {
      const r = record(await raw(t.studio, { path, headers: withKey(t.studio) }));
      assert.equal(r.status, 405, path);
      assert.equal(r.headers.allow, "POST");
    }
    const r = record(
      await raw(t.studio, { method: "POST", path: "/api/config", headers: withKey(t.studio) }),
    );
    assert.equal(r.status, 405);
    const del = record(
      await raw(t.studio, { method: "DELETE", path: "/api/jobs/1", headers: withKey(t.studio) }),
    );
    assert.equal(del.status, 405);
  });

  it("limits uploads (declared or streamed) and keeps nothing of a refused one", async () => {
    const big = Buffer.alloc(300_000, 7);
    const declared = record(
      await raw(t.studio, { method: "POST", path: "/api/images", headers: withKey(t.studio), body: big }),
    );
    assert.equal(declared.status, 413);
    const chunked = record(
      await raw(t.studio, {
        method: "POST",
        path: "/api/images",
        headers: withKey(t.studio, { "transfer-encoding": "chunked" }),
        body: big,
      }),
    );
    assert.equal(chunked.status, 413);
    const uploads = join(t.studio.dir, "uploads");
    let left: string[] = [];
    try {
      left = readdirSync(uploads);
    } catch {}
    assert.deepEqual(left, []);
    const ok = record(
      await raw(t.studio, {
        method: "POST",
        path: "/api/images",
        headers: withKey(t.studio),
        body: await jpeg(640, 480),
      }),
    );
    assert.equal(ok.status, 200, ok.text);
    const view = JSON.parse(ok.text);
    assert.match(view.id, /^[0-9a-f]{64}$/);
    assert.deepEqual(readdirSync(uploads), [`${view.id}.img`]);
  });

  it("never uses a path from the browser: traversal and odd names are 404", async () => {
    for (const path of [
      "/assets/..%2F..%2Fpackage.json",
      "/assets/../../package.json",
      "/assets/%2e%2e%2fsecurity.ts",
      "/assets/security.ts",
      "/media/images/..%2F..%2Fjournal.db",
      `/media/images/${"0".repeat(64)}`,
      "/api/images/..%2Fjournal.db",
      "/media/jobs/..%2F1/video",
      "/media/jobs/1/video",
    ]) {
      const r = record(await raw(t.studio, { path, headers: withKey(t.studio) }));
      assert.ok(r.status === 404 || r.status === 400, `${path}: ${r.status}`);
      assert.ok(!r.text.includes('"name": "dreamina-i2v"'), path);
    }
    const fit = record(
      await raw(t.studio, {
        method: "POST",
        path: "/api/images/..%2F..%2Fetc/fit",
        headers: withKey(t.studio, { "content-type": "application/json" }),
        body: "{}",
      }),
    );
    assert.equal(fit.status, 404);
  });

  it("refuses a submit without a usable image and answers in words", async () => {
    const r = record(
      await raw(t.studio, {
        method: "POST",
        path: "/api/jobs",
        headers: withKey(t.studio, { "content-type": "application/json" }),
        body: JSON.stringify({ image: { upload: "../../etc/passwd" }, prompt: "x", frames: 121 }),
      }),
    );
    assert.equal(r.status, 400);
    assert.match(JSON.parse(r.text).error.message, /choose an image/);
  });

  it("runs a job end to end over HTTP without the token in any answer", async () => {
    const up = record(
      await raw(t.studio, {
        method: "POST",
        path: "/api/images",
        headers: withKey(t.studio),
        body: await jpeg(640, 480),
      }),
    );
    const id = JSON.parse(up.text).id as string;
    const submit = record(
      await raw(t.studio, {
        method: "POST",
        path: "/api/jobs",
        headers: withKey(t.studio, { "content-type": "application/json" }),
        body: JSON.stringify({ image: { upload: id }, prompt: "a slow pan", frames: 121, seed: 7 }),
      }),
    );
    assert.equal(submit.status, 202, submit.text);
    const { requestId } = JSON.parse(submit.text) as { requestId: string };
    let job: { localId: number; state: string; hasVideo: boolean } | undefined;
    for (let i = 0; i < 600; i++) {
      const list = record(await raw(t.studio, { path: "/api/history", headers: withKey(t.studio) }));
      job = (
        JSON.parse(list.text).jobs as {
          requestId: string;
          localId: number;
          state: string;
          hasVideo: boolean;
        }[]
      ).find((j) => j.requestId === requestId);
      if (job?.hasVideo) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(job?.state, "succeeded");
    const detail = record(
      await raw(t.studio, { path: `/api/jobs/${job!.localId}`, headers: withKey(t.studio) }),
    );
    assert.match(detail.text, /"sha256":"[0-9a-f]{64}"/);
    const video = await raw(t.studio, {
      path: `/media/jobs/${job!.localId}/video`,
      headers: withKey(t.studio, { range: "bytes=0-99" }),
    });
    assert.equal(video.status, 206);
    assert.equal(video.body.length, 100);
    assert.match(String(video.headers["content-range"]), /^bytes 0-99\/\d+$/);
    assert.equal(video.body.subarray(4, 8).toString("latin1"), "ftyp");
    const events = record(await raw(t.studio, { path: "/api/config", headers: withKey(t.studio) }));
    assert.equal(JSON.parse(events.text).sandbox, true);
  });
});
