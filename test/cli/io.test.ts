// Io, the one way commands print: control characters are shown as escapes (never obeyed by the
// terminal), newlines kept where a message has them, secrets redacted, colour only from Io.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Io, printable } from "../../src/cli/io.js";

/** A stream that keeps what is written (and says it is a terminal when asked to). */
function sink(isTTY = false) {
  const chunks: string[] = [];
  const stream = {
    isTTY,
    write(chunk: string) {
      chunks.push(chunk);
      return true;
    },
  } as unknown as NodeJS.WriteStream;
  return { stream, text: () => chunks.join("") };
}

const HOSTILE = "a\u001b]0;pwned\u0007b\u001b[2J\rc\u009bd\u202eevil\u0000";

describe("printable", () => {
  test("ESC, BEL, CR, C1, NUL and bidi overrides become visible escapes", () => {
    assert.equal(printable(HOSTILE), "a\\x1b]0;pwned\\x07b\\x1b[2J\\rc\\x9bd\\u202eevil\\x00");
  });

  test("newlines and tabs are kept in messages, escaped in one-line fields", () => {
    assert.equal(printable("one\n\ttwo"), "one\n\ttwo");
    assert.equal(printable("one\n\ttwo", { inline: true }), "one\\n\\ttwo");
  });

  test("text without control characters is unchanged (and printable twice is printable once)", () => {
    const text = "plain · text – with ünïcode 🎬";
    assert.equal(printable(text), text);
    assert.equal(printable(printable(HOSTILE)), printable(HOSTILE));
  });

  test("URL passwords are redacted too", () => {
    assert.equal(printable("http://u:pw@h/x.jpg"), "http://[REDACTED]@h/x.jpg");
  });
});

describe("Io", () => {
  test("out, info, warn, error and debug never write a raw control character", () => {
    const out = sink();
    const err = sink();
    const io = new Io({ verbose: true }, out.stream, err.stream);
    io.out(HOSTILE);
    io.info(HOSTILE);
    io.warn(HOSTILE);
    io.error(`line one ${HOSTILE}\nline two`);
    io.debug(HOSTILE);
    const control = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202e]/;
    assert.doesNotMatch(out.text(), control);
    assert.doesNotMatch(err.text(), control);
    assert.match(err.text(), /error: line one a\\x1b\]0;pwned\\x07b.*\nline two\n/);
  });

  test("--json: the document is JSON (escapes by itself) and redacted", () => {
    const out = sink();
    const io = new Io({ json: true }, out.stream, sink().stream);
    io.result({ prompt: HOSTILE, image: "http://u:pw@h/x.jpg" });
    const parsed = JSON.parse(out.text());
    assert.equal(parsed.prompt, HOSTILE, "the data itself is intact");
    assert.equal(parsed.image, "http://[REDACTED]@h/x.jpg");
    assert.doesNotMatch(out.text(), /[\u0000-\u0009\u000b-\u001f]/);
  });

  test("colour comes from Io's styled pieces only: an escape in the text is shown, not obeyed", () => {
    const out = sink(true);
    const io = new Io({}, out.stream, sink(true).stream);
    io.out([io.styled("green", "valid"), " \u001b[31mnot red"]);
    const text = out.text();
    assert.ok(text.endsWith(" \\x1b[31mnot red\n"), JSON.stringify(text));
    assert.ok(!text.includes("\u001b[31m"), JSON.stringify(text));
  });
});
