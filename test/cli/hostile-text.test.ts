// Text the user or the service controls is shown, never obeyed, and never leaks a secret:
// terminal escapes in prompts, names and paths appear as `\x1b`-style escapes in `jobs`,
// `jobs show`, batch messages and error messages; the password of an image URL
// (`http://user:pass@host/...`) appears nowhere: stderr, --json, report.json, report.html.

import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Sandbox } from "../../src/sandbox/index.js";
import { type CliResult, cli, inProcessSandbox, parseJson, type TempHome, tempHome } from "../helpers/cli.js";
import { jpeg } from "../helpers/images.js";

let sandbox: Sandbox;
let home: TempHome;
let image: string;

/** Retitles the terminal (OSC 0 … BEL), clears it (CSI 2J), a C1 CSI and a right-to-left override. */
const HOSTILE = "pan\u001b]0;pwned\u0007\u001b[2J\u009b31m\u202eleft";
const SHOWN = "pan\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u202eleft";
// Every control character but newline (tab is not used here).
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
const PASSWORD = "s3cret-pa55";

function show(r: CliResult): string {
  return `exit ${r.code}\nstdout: ${JSON.stringify(r.stdout)}\nstderr: ${JSON.stringify(r.stderr)}`;
}

function dreamina(args: string[]): Promise<CliResult> {
  return cli(["--base-url", sandbox.url, ...args], { env: home.env, cwd: home.dir });
}

function assertNoRawControl(r: CliResult): void {
  assert.doesNotMatch(r.stdout, RAW_CONTROL, show(r));
  assert.doesNotMatch(r.stderr, RAW_CONTROL, show(r));
}

before(async () => {
  sandbox = await inProcessSandbox();
  home = tempHome();
  image = join(home.dir, "photo.jpg");
  writeFileSync(image, await jpeg(800, 600));
});

after(async () => {
  await sandbox.close();
  home.cleanup();
});

describe("control characters are shown, not obeyed", () => {
  it("jobs and jobs show print a hostile prompt escaped, on one line", async () => {
    const sub = await dreamina(["submit", "-i", image, "-p", `${HOSTILE}\nstate        succeeded`]);
    assert.equal(sub.code, 0, show(sub));
    const id = sub.stdout.trim();

    const list = await dreamina(["jobs"]);
    assert.equal(list.code, 0, show(list));
    assertNoRawControl(list);
    assert.ok(list.stdout.includes(SHOWN), show(list));

    const one = await dreamina(["jobs", "show", id]);
    assert.equal(one.code, 0, show(one));
    assertNoRawControl(one);
    assert.ok(one.stdout.includes(`prompt       ${SHOWN}\\nstate        succeeded\n`), show(one));
    assert.equal(one.stdout.match(/^state /gm)?.length, 1, "a newline in the prompt forges no line");

    // The JSON keeps the data as it is (JSON escapes it).
    const json = await dreamina(["jobs", "show", id, "--json"]);
    assert.equal(
      parseJson<{ job: { prompt: string } }>(json).job.prompt,
      `${HOSTILE}\nstate        succeeded`,
    );
  });

  it("error messages show a hostile path escaped", async () => {
    const r = await dreamina(["run", "-i", join(home.dir, `${HOSTILE}.jpg`), "-p", "x"]);
    assert.equal(r.code, 66, show(r));
    assertNoRawControl(r);
    assert.ok(r.stderr.includes(`${SHOWN}.jpg: no such file`), show(r));
  });

  it("batch: invalid-row messages, failure lines and the summary show hostile text escaped", async () => {
    const manifest = join(home.dir, "hostile.jsonl");
    const rows = [
      { image: `${HOSTILE}.jpg`, prompt: "missing image" },
      // A name may hold C1 and bidi controls (a file name can): the row fails on the service.
      { image, prompt: "fails", name: "evil\u009b2J\u202eend" },
    ];
    writeFileSync(manifest, `${rows.map((row) => JSON.stringify(row)).join("\n")}\n`);
    sandbox.setFaults("job:fail=1");
    let r: CliResult;
    try {
      r = await dreamina(["batch", manifest, "--out", join(home.dir, "hostile-out"), "--skip-invalid"]);
    } finally {
      sandbox.setFaults(undefined);
    }
    assert.equal(r.code, 1, show(r));
    assertNoRawControl(r);
    assert.ok(r.stderr.includes(`${SHOWN}.jpg`), show(r));
    assert.ok(`${r.stderr}${r.stdout}`.includes("evil\\x9b2J\\u202eend"), show(r));
  });
});

describe("URL passwords are redacted everywhere", () => {
  const url = () => `http://user:${PASSWORD}@127.0.0.1:9/photo.jpg`;

  it("validate, run and submit: not on stderr, not in --json; the exit code says input, not service", async () => {
    for (const command of [
      ["validate", "-i", url()],
      ["run", "-i", url(), "-p", "x"],
      ["submit", "-i", url(), "-p", "x"],
    ]) {
      for (const json of [[], ["--json"]]) {
        const r = await dreamina([...json, ...command]);
        // An input problem (the URL cannot be fetched: 66; refused as a source: 65), never 69.
        assert.ok(r.code === 66 || r.code === 65, show(r));
        assert.ok(!`${r.stdout}${r.stderr}`.includes(PASSWORD), show(r));
        assert.ok(`${r.stdout}${r.stderr}`.includes("http://[REDACTED]@127.0.0.1:9/photo.jpg"), show(r));
      }
    }
  });

  it("batch: not on stderr or stdout, not in --json, report.json or report.html", async () => {
    const manifest = join(home.dir, "password.jsonl");
    const out = join(home.dir, "password-out");
    writeFileSync(
      manifest,
      `${JSON.stringify({ image: url(), prompt: "private" })}\n${JSON.stringify({ image, prompt: "public" })}\n`,
    );
    for (const json of [[], ["--json"]]) {
      const r = await dreamina([...json, "batch", manifest, "--out", out, "--skip-invalid"]);
      assert.equal(r.code, 1, show(r));
      assert.ok(!`${r.stdout}${r.stderr}`.includes(PASSWORD), show(r));
    }
    for (const name of ["report.json", "report.html"]) {
      const text = readFileSync(join(out, name), "utf8");
      assert.ok(!text.includes(PASSWORD), `${name} holds the password`);
      assert.ok(text.includes("http://[REDACTED]@127.0.0.1:9/photo.jpg"), `${name} names the URL`);
    }
  });
});
