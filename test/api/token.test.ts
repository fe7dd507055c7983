// Where the token comes from, in order, and what is said when there is none.

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { RunComfyClient } from "../../src/api/client.js";
import { MissingTokenError } from "../../src/api/errors.js";
import { redactSecrets } from "../../src/api/redact.js";
import { tokenFromEnv } from "../../src/api/token.js";
import { resolveToken, tokenFileCandidates } from "../../src/config/token-file.js";
import { ScriptedServer } from "../helpers/scripted-server.js";

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), "dreamina-token-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
/** A fresh set of config dirs (all empty) and an env pointing HOME at one of them. */
function dirs() {
  const base = join(root, String(++n));
  const d = { config: join(base, "config"), xdg: join(base, "xdg"), home: join(base, "home") };
  for (const p of Object.values(d)) mkdirSync(p, { recursive: true });
  return d;
}

function writeToken(dir: string, content: unknown) {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "token.json");
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content), { mode: 0o600 });
  return path;
}

describe("resolveToken order", () => {
  test("explicit beats everything", async () => {
    const d = dirs();
    writeToken(d.config, { access_token: "file_token_123456" });
    const env = { RUNCOMFY_API_TOKEN: "env_token_123456", RUNCOMFY_CONFIG_DIR: d.config, HOME: d.home };
    assert.deepEqual(await resolveToken("  explicit_123456 ", env), {
      token: "explicit_123456",
      source: "--token",
    });
  });

  test("RUNCOMFY_API_TOKEN, then RUNCOMFY_TOKEN, then RUNCOMFY_API_KEY (blank ones skipped)", async () => {
    const d = dirs();
    const all = {
      RUNCOMFY_API_TOKEN: "a_123456",
      RUNCOMFY_TOKEN: "b_123456",
      RUNCOMFY_API_KEY: "c_123456",
      HOME: d.home,
    };
    assert.deepEqual(await resolveToken(undefined, all), {
      token: "a_123456",
      source: "$RUNCOMFY_API_TOKEN",
    });
    assert.deepEqual(await resolveToken("", { ...all, RUNCOMFY_API_TOKEN: "  " }), {
      token: "b_123456",
      source: "$RUNCOMFY_TOKEN",
    });
    assert.deepEqual(await resolveToken(undefined, { RUNCOMFY_API_KEY: " c_123456\n", HOME: d.home }), {
      token: "c_123456",
      source: "$RUNCOMFY_API_KEY",
    });
  });

  test("the environment beats token.json", async () => {
    const d = dirs();
    writeToken(d.config, { access_token: "file_token_123456" });
    const env = { RUNCOMFY_API_KEY: "env_token_123456", RUNCOMFY_CONFIG_DIR: d.config, HOME: d.home };
    assert.equal((await resolveToken(undefined, env)).token, "env_token_123456");
  });

  test("token.json under $RUNCOMFY_CONFIG_DIR beats $XDG_CONFIG_HOME and ~/.config", async () => {
    const d = dirs();
    const path = writeToken(d.config, { access_token: "cfg_123456", refresh_token: "r" });
    writeToken(join(d.xdg, "runcomfy"), { access_token: "xdg_123456" });
    writeToken(join(d.home, ".config", "runcomfy"), { access_token: "home_123456" });
    const env = { RUNCOMFY_CONFIG_DIR: d.config, XDG_CONFIG_HOME: d.xdg, HOME: d.home };
    assert.deepEqual(await resolveToken(undefined, env), { token: "cfg_123456", source: path });
  });

  test("then $XDG_CONFIG_HOME/runcomfy beats ~/.config/runcomfy", async () => {
    const d = dirs();
    const path = writeToken(join(d.xdg, "runcomfy"), { access_token: "xdg_123456" });
    writeToken(join(d.home, ".config", "runcomfy"), { access_token: "home_123456" });
    assert.deepEqual(await resolveToken(undefined, { XDG_CONFIG_HOME: d.xdg, HOME: d.home }), {
      token: "xdg_123456",
      source: path,
    });
  });

  test("then ~/.config/runcomfy", async () => {
    const d = dirs();
    const path = writeToken(join(d.home, ".config", "runcomfy"), { access_token: "home_123456" });
    assert.deepEqual(await resolveToken(undefined, { HOME: d.home }), { token: "home_123456", source: path });
  });

  test("one directory, as the official tool picks it: a chosen profile never falls back", async () => {
    const d = dirs();
    writeToken(join(d.home, ".config", "runcomfy"), { access_token: "home_123456" });
    await assert.rejects(
      resolveToken(undefined, { RUNCOMFY_CONFIG_DIR: d.config, HOME: d.home }),
      MissingTokenError,
    );
    await assert.rejects(
      resolveToken(undefined, { XDG_CONFIG_HOME: d.xdg, HOME: d.home }),
      MissingTokenError,
    );
    assert.deepEqual(tokenFileCandidates({ XDG_CONFIG_HOME: d.xdg, HOME: d.home }), [
      join(d.xdg, "runcomfy", "token.json"),
    ]);
  });

  test("a malformed or empty token.json is skipped", async () => {
    for (const content of ["{not json", "null", "[]", JSON.stringify({ access_token: "  " }), ""]) {
      const d = dirs();
      writeToken(d.config, content);
      await assert.rejects(
        resolveToken(undefined, { RUNCOMFY_CONFIG_DIR: d.config, HOME: d.home }),
        MissingTokenError,
        content,
      );
    }
  });

  test("the resolved token is registered for redaction", async () => {
    const d = dirs();
    writeToken(d.config, { access_token: "file_secret_abcdef" });
    await resolveToken(undefined, { RUNCOMFY_CONFIG_DIR: d.config, HOME: d.home });
    assert.equal(redactSecrets("x file_secret_abcdef y"), "x [REDACTED] y");
  });
});

describe("MissingTokenError", () => {
  test("lists every place looked, in order, and no token", async () => {
    const d = dirs();
    // A token.json without a usable token, but with another secret-looking field.
    writeToken(join(d.xdg, "runcomfy"), { access_token: "", refresh_token: "refresh_SECRET_42" });
    const env = { XDG_CONFIG_HOME: d.xdg, HOME: d.home, RUNCOMFY_TOKEN: "   " };
    const err = await resolveToken(undefined, env).then(
      () => assert.fail("expected MissingTokenError"),
      (e: unknown) => e as MissingTokenError,
    );
    assert.ok(err instanceof MissingTokenError);
    assert.deepEqual(err.lookedIn, [
      "the --token option",
      "$RUNCOMFY_API_TOKEN",
      "$RUNCOMFY_TOKEN",
      "$RUNCOMFY_API_KEY",
      join(d.xdg, "runcomfy", "token.json"),
    ]);
    for (const place of err.lookedIn) assert.ok(err.message.includes(place), place);
    assert.ok(!err.message.includes("refresh_SECRET_42"));
    assert.ok(!JSON.stringify(err).includes("refresh_SECRET_42"));
  });

  test("the client without any token: MissingTokenError, nothing sent", async () => {
    const server = await ScriptedServer.start();
    const saved = { ...process.env };
    for (const name of ["RUNCOMFY_API_TOKEN", "RUNCOMFY_TOKEN", "RUNCOMFY_API_KEY"]) delete process.env[name];
    try {
      const err = await new RunComfyClient({ baseUrl: server.url }).status("r1").catch((e: unknown) => e);
      assert.ok(err instanceof MissingTokenError, String(err));
      assert.ok(err.lookedIn.includes("$RUNCOMFY_API_KEY"));
      // The core reads no files, but a user logged in with the official tool must learn that
      // the Node entry and the CLI would have found its token.json, and where.
      for (const place of [
        "token.json",
        "$RUNCOMFY_CONFIG_DIR",
        "$XDG_CONFIG_HOME/runcomfy",
        "~/.config/runcomfy",
        "dreamina-i2v/node",
        "CLI",
      ]) {
        assert.ok(err.message.includes(place), `names ${place}: ${err.message}`);
      }
      assert.ok(!err.lookedIn.some((p) => p.includes("token.json")), "it did not look there itself");
      const empty = await new RunComfyClient({ baseUrl: server.url, token: "  " })
        .status("r1")
        .catch((e) => e);
      assert.ok(empty instanceof MissingTokenError);
      assert.match(empty.message, /empty/);
      assert.equal(server.requests.length, 0);
    } finally {
      Object.assign(process.env, saved);
      await server.close();
    }
  });

  test("tokenFromEnv (runtime-neutral) follows the same order", () => {
    assert.equal(
      tokenFromEnv({ RUNCOMFY_API_KEY: "k_123456", RUNCOMFY_TOKEN: "t_123456" })?.token,
      "t_123456",
    );
    assert.equal(tokenFromEnv({}), undefined);
  });
});
