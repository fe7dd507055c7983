// `dreamina studio` as a command: prints its URL with the session key, serves the page to it,
// stops cleanly on SIGINT (exit 0), and without --sandbox asks for the token at start (77).

import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, describe, it } from "node:test";
import { spawnCli, type TempHome, tempHome } from "../helpers/cli.js";

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; cookie: string }> {
  return new Promise((resolve, reject) => {
    request(url, { headers, agent: false }, (res) => {
      res.resume();
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, cookie: String(res.headers["set-cookie"] ?? "") }),
      );
    })
      .on("error", reject)
      .end();
  });
}

describe("dreamina studio", () => {
  let home: TempHome;
  before(() => {
    home = tempHome({ token: null });
  });
  after(() => home.cleanup());

  it("--sandbox: prints the URL with its key, serves it, and stops on SIGINT with exit 0", async () => {
    const child = spawnCli(["studio", "--sandbox", "--port", "0"], { env: home.env, cwd: home.dir });
    const [url] = await child.waitFor(/^http:\/\/127\.0\.0\.1:\d+\/\?key=[\w-]+$/m, {
      stream: "stdout",
      timeoutMs: 60_000,
    });
    const origin = url.slice(0, url.indexOf("/?key="));
    assert.equal((await get(`${origin}/`)).status, 401);
    const withKey = await get(url);
    assert.equal(withKey.status, 303);
    assert.match(withKey.cookie, /HttpOnly/);
    child.child.kill("SIGINT");
    const done = await child.done;
    assert.equal(done.code, 0, done.stderr);
    assert.match(done.stderr, /stopping the studio/);
  });

  it("without --sandbox and without a token: exit 77 at start", async () => {
    const done = await spawnCli(["studio"], { env: home.env, cwd: home.dir }).done;
    assert.equal(done.code, 77, done.stderr);
    assert.match(done.stderr, /token/i);
  });
});
