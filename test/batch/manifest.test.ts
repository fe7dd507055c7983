// Manifest parsing: JSONL and CSV, line numbers for every problem, row keys.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { deriveRowKey, parseManifest } from "../../src/batch/manifest.js";

describe("JSONL manifests", () => {
  test("rows keep their line numbers; blank lines and comments are skipped", () => {
    const text = [
      '{"image": "a.jpg", "prompt": "one"}',
      "",
      "# a comment",
      '{"image": "https://example.com/b.png", "prompt": "two", "frames": 241, "seed": 7, "name": "second"}',
    ].join("\n");
    const m = parseManifest(text, { format: "jsonl", baseDir: "/data" });
    assert.equal(m.problems.length, 0);
    assert.equal(m.rows.length, 2);
    assert.equal(m.rows[0]!.line, 1);
    assert.equal(m.rows[0]!.imageSource, "/data/a.jpg");
    assert.equal(m.rows[0]!.imageIsUrl, false);
    assert.equal(m.rows[1]!.line, 4);
    assert.equal(m.rows[1]!.imageIsUrl, true);
    assert.equal(m.rows[1]!.frames, 241);
    assert.equal(m.rows[1]!.seed, 7);
    assert.equal(m.rows[1]!.name, "second");
  });

  test("bad lines are reported with their line numbers", () => {
    const text = [
      '{"image": "a.jpg", "prompt": "ok"}',
      "{not json",
      "[1, 2]",
      '{"prompt": "no image"}',
      '{"image": "c.jpg", "prompt": "x", "frames": "many"}',
      '{"image": "d.jpg", "prompt": "y", "name": "../escape"}',
      '{"image": "e.jpg"}',
    ].join("\r\n");
    const m = parseManifest(text, { format: "jsonl" });
    assert.equal(m.rows.length, 1);
    assert.deepEqual(
      m.problems.map((p) => p.line),
      [2, 3, 4, 5, 6, 7],
    );
    assert.match(m.problems[0]!.message, /JSON/);
    assert.equal(m.problems[3]!.field, "frames");
    assert.equal(m.problems[4]!.field, "name");
    assert.equal(m.problems[5]!.field, "prompt");
    assert.equal(m.problems[5]!.message, "prompt is required");
  });

  test("a blank prompt is a row: the model's own rule refuses it when the row is validated", () => {
    const m = parseManifest('{"image": "e.jpg", "prompt": "  "}\nimage,prompt', { format: "jsonl" });
    assert.equal(m.rows[0]?.prompt, "  ");
  });

  test("duplicate rows and clashing ids or names are refused", () => {
    const text = [
      '{"image": "a.jpg", "prompt": "same"}',
      '{"image": "a.jpg", "prompt": "same", "frames": 121, "seed": -1}',
      '{"image": "b.jpg", "prompt": "p", "id": "x"}',
      '{"image": "c.jpg", "prompt": "q", "id": "x"}',
      '{"image": "d.jpg", "prompt": "r", "name": "out"}',
      '{"image": "e.jpg", "prompt": "s", "name": "OUT"}',
    ].join("\n");
    const m = parseManifest(text, { format: "jsonl" });
    assert.deepEqual(
      m.problems.map((p) => p.line),
      [2, 4, 6],
    );
    assert.match(m.problems[0]!.message, /duplicate of line 1/);
    assert.match(m.problems[1]!.message, /already used on line 3/);
    assert.equal(m.rows.length, 3);
  });
});

describe("CSV manifests", () => {
  test("quotes, commas and newlines inside fields; line numbers are where a row starts", () => {
    const text = [
      "image,prompt,frames,seed,name",
      'a.jpg,"A street, at dusk, ""golden""",121,3,first',
      "",
      'b.jpg,"two lines',
      'of prompt",241,,second',
      "c.jpg,plain,,,",
    ].join("\n");
    const m = parseManifest(text, { format: "csv", baseDir: "/m" });
    assert.deepEqual(m.problems, []);
    assert.equal(m.rows.length, 3);
    assert.equal(m.rows[0]!.prompt, 'A street, at dusk, "golden"');
    assert.equal(m.rows[0]!.line, 2);
    assert.equal(m.rows[0]!.seed, 3);
    assert.equal(m.rows[1]!.prompt, "two lines\nof prompt");
    assert.equal(m.rows[1]!.line, 4);
    assert.equal(m.rows[1]!.frames, 241);
    assert.equal(m.rows[1]!.seed, undefined);
    assert.equal(m.rows[2]!.line, 6);
    assert.equal(m.rows[2]!.frames, undefined);
    assert.match(m.rows[2]!.name, /^c-/);
  });

  test("CRLF files: line numbers stay right after quoted fields that contain CRLF", () => {
    const lines = [
      "image,prompt,frames,name",
      'a.jpg,"first line',
      'second line",121,one',
      "",
      "# a comment",
      'b.jpg,"three',
      "lines",
      'of prompt",,two',
      "c.jpg,plain,,three",
      'd.jpg,"x",12.5,four',
    ];
    for (const eol of ["\n", "\r\n"]) {
      const m = parseManifest(lines.join(eol), { format: "csv", baseDir: "/m" });
      const where = `with ${JSON.stringify(eol)} line ends`;
      assert.deepEqual(
        m.rows.map((r) => [r.name, r.line]),
        [
          ["one", 2],
          ["two", 6],
          ["three", 9],
        ],
        where,
      );
      // Quoted content is kept as written (the row key depends on it).
      assert.equal(m.rows[0]!.prompt, `first line${eol}second line`, where);
      assert.deepEqual(
        m.problems.map((p) => [p.line, p.field]),
        [[10, "frames"]],
        where,
      );
    }
  });

  test("bad values are reported with their line", () => {
    const text = ["image,prompt,frames", "a.jpg,ok,121", ",no image,121", "b.jpg,bad frames,12.5"].join("\n");
    const m = parseManifest(text, { format: "csv" });
    assert.equal(m.rows.length, 1);
    assert.deepEqual(
      m.problems.map((p) => [p.line, p.field]),
      [
        [3, "image"],
        [4, "frames"],
      ],
    );
  });

  test("an unterminated quote is a problem, not a crash", () => {
    const m = parseManifest('image,prompt\na.jpg,"never closed\n', { format: "csv" });
    assert.equal(m.rows.length, 0);
    assert.equal(m.problems.length, 1);
    assert.match(m.problems[0]!.message, /CSV/);
  });
});

describe("output file names", () => {
  test("a default name never carries path separators or markup from the id", () => {
    const ids = [
      "/../../vid",
      "/../../../",
      "..\\..\\x",
      "<img src=x onerror=alert(1)>",
      "a\u0000b\u202e",
      "shot-001",
    ];
    const text = ids.map((id, i) => JSON.stringify({ image: `dir/img${i}.jpg`, prompt: "p", id })).join("\n");
    const m = parseManifest(text, { format: "jsonl", baseDir: "/m" });
    assert.deepEqual(m.problems, []);
    for (const row of m.rows) {
      assert.doesNotMatch(
        row.name,
        /[/\\<>"\u0000-\u001f\u202e]/,
        `${JSON.stringify(row.key)} -> ${row.name}`,
      );
      assert.ok(!row.name.startsWith("."), row.name);
      assert.match(row.name, /^img\d-/);
    }
    // Plain ids keep the name they always had.
    assert.equal(m.rows[5]!.name, "img5-shot-001");
  });

  test("a given name that is not a plain file name is refused with its line, field and value", () => {
    const names = ["../escape", "a/b", "<b>bold</b>", ".hidden", "tab\there", "nul", "x".repeat(201)];
    const text = [
      JSON.stringify({ image: "a.jpg", prompt: "p", name: "café ok" }),
      ...names.map((name, i) => JSON.stringify({ image: `i${i}.jpg`, prompt: "p", name })),
    ].join("\n");
    const m = parseManifest(text, { format: "jsonl" });
    assert.deepEqual(
      m.rows.map((r) => r.name),
      ["café ok"],
    );
    assert.deepEqual(
      m.problems.map((p) => [p.line, p.field]),
      names.map((_, i) => [i + 2, "name"]),
    );
    assert.match(m.problems[2]!.message, /"<b>bold<\/b>"/);
  });
});

describe("row keys", () => {
  test("derived from the effective input: defaults filled in, order-independent", () => {
    assert.equal(
      deriveRowKey({ image: "a.jpg", prompt: "p" }),
      deriveRowKey({ image: "a.jpg", prompt: "p", frames: 121, seed: -1 }),
    );
    assert.notEqual(
      deriveRowKey({ image: "a.jpg", prompt: "p" }),
      deriveRowKey({ image: "a.jpg", prompt: "q" }),
    );
    const a = parseManifest('{"image":"x.jpg","prompt":"1"}\n{"image":"y.jpg","prompt":"2"}', {
      format: "jsonl",
    });
    const b = parseManifest('{"image":"y.jpg","prompt":"2"}\n{"image":"x.jpg","prompt":"1"}', {
      format: "jsonl",
    });
    assert.equal(a.rows[0]!.key, b.rows[1]!.key);
    assert.notEqual(a.digest, b.digest);
  });

  test("an explicit id is the key", () => {
    const m = parseManifest('{"image":"x.jpg","prompt":"1","id":"row-1"}', { format: "jsonl" });
    assert.equal(m.rows[0]!.key, "row-1");
    assert.equal(m.rows[0]!.keyGiven, true);
  });
});
