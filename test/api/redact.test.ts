// redactSecrets scrubs the userinfo of every URL (`user:password@`), in plain text, in values
// deep in objects, and in JSON or HTML text, without eating what follows the URL.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { redactSecrets } from "../../src/api/redact.js";

describe("URL userinfo", () => {
  test("user and password, user only, token only: replaced, host and path kept", () => {
    assert.equal(
      redactSecrets("fetching http://user:s3cret@img.example:8080/x.jpg now"),
      "fetching http://[REDACTED]@img.example:8080/x.jpg now",
    );
    assert.equal(redactSecrets("https://tok_123@h/x?y=1"), "https://[REDACTED]@h/x?y=1");
    assert.equal(redactSecrets("ftp://u:p@h"), "ftp://[REDACTED]@h");
  });

  test("a password holding @ : ' or % is redacted whole (URL parsers split at the last @)", () => {
    const url = "https://me:p@ss:w'rd%21@host.example/a.png";
    assert.equal(new URL(url).host, "host.example", "the host really is after the last @");
    assert.equal(redactSecrets(url), "https://[REDACTED]@host.example/a.png");
  });

  test("an @ after the authority (path, query, e-mail elsewhere) is left alone", () => {
    for (const text of [
      "https://host/users/@me",
      "https://host/x?mail=a@b.c",
      "https://host#frag@x",
      "see https://host and mail me@example.com",
      "no url here: me@example.com",
    ]) {
      assert.equal(redactSecrets(text), text);
    }
  });

  test("deep in objects and arrays, keys included; JSON text stays valid JSON", () => {
    const value = {
      image: "http://u:pw@h/i.jpg",
      list: [{ deep: "see https://a:b@c/d" }],
      "http://k:v@h/": 1,
    };
    const redacted = redactSecrets(value);
    assert.doesNotMatch(JSON.stringify(redacted), /pw|a:b|k:v/);
    assert.equal(redacted.image, "http://[REDACTED]@h/i.jpg");
    const compact = JSON.stringify({ a: "http://host", b: "x@y", c: "http://u:pw@h/i" });
    const text = redactSecrets(compact);
    assert.deepEqual(JSON.parse(text), { a: "http://host", b: "x@y", c: "http://[REDACTED]@h/i" });
  });

  test("HTML attributes and text: the quote or tag ends the URL", () => {
    const html = `<a href="http://u:pw@h/x.jpg">http://u:pw@h/x.jpg</a><p>write to a@b</p>`;
    assert.equal(
      redactSecrets(html),
      `<a href="http://[REDACTED]@h/x.jpg">http://[REDACTED]@h/x.jpg</a><p>write to a@b</p>`,
    );
  });

  test("idempotent, and a multi-megabyte data URI is passed over quickly", () => {
    const once = redactSecrets("http://u:pw@h/x");
    assert.equal(redactSecrets(once), once);
    // One flat string, as a body read from a file or a socket is: a concatenation is a rope that
    // V8 flattens on first use, a copy of 10 MB inside the timing (0.1 to 0.8 s on a loaded machine).
    const dataUri = Buffer.from(
      `data:image/jpeg;base64,${Buffer.alloc(8_000_000, 7).toString("base64")}`,
    ).toString("latin1");
    const started = performance.now();
    assert.equal(redactSecrets(dataUri), dataUri);
    assert.ok(performance.now() - started < 500, "no regex crawl over base64");
  });
});
