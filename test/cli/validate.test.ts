// `dreamina validate` as a user runs it: a child process, its exit code and its output.
// It runs bin/dreamina.js when dist/ holds a build of this command that is newer than its
// source; otherwise the same main() from src through tsx (the build may be mid-change).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { sniffImage } from "../../src/model/image-header.js";
import { damagedImages, fixtures, hugePng, jpeg } from "../helpers/images.js";

const ROOT = process.cwd();
const built = join(ROOT, "dist/cli/commands/validate.js");
const useBin =
  process.env.DREAMINA_CLI_FROM_SRC !== "1" &&
  existsSync(built) &&
  statSync(built).mtimeMs >= statSync(join(ROOT, "src/cli/commands/validate.ts")).mtimeMs;
const FROM_SRC = `const { main } = await import(${JSON.stringify(join(ROOT, "src/cli/main.ts"))});
process.exitCode = await main(["node", "dreamina", ...process.argv.slice(1)]);`;

function dreamina(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const argv = useBin
    ? [join(ROOT, "bin/dreamina.js"), ...args]
    : ["--import", "tsx", "--input-type=module", "-e", FROM_SRC, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1", NODE_NO_WARNINGS: "1", RUNCOMFY_API_TOKEN: "" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe(`dreamina validate (${useBin ? "bin/dreamina.js" : "src via tsx"})`, () => {
  it("exits 0 for a valid image and prompt", async () => {
    const f = await fixtures();
    const { code, stdout } = await dreamina(
      "validate",
      "--image",
      f.path("ok.jpg"),
      "--prompt",
      "a slow pan",
      "--frames",
      "241",
    );
    assert.equal(code, 0, stdout);
    assert.match(stdout, /JPEG 800x600, 3,\d{3} bytes/);
    assert.match(stdout, /^valid$/m);
  });

  it("exits 65 and lists every violation", async () => {
    const f = await fixtures();
    const { code, stdout } = await dreamina(
      "validate",
      "--image",
      f.path("ratio-0.33.jpg"),
      "--prompt",
      "x".repeat(801),
      "--frames",
      "120",
      "--seed",
      "1.5",
    );
    assert.equal(code, 65);
    assert.match(stdout, /invalid: 4 violations/);
    for (const rule of ["maxLength", "seed  type", "frames  enum", "width/height>"])
      assert.ok(stdout.includes(rule), rule);
    assert.match(stdout, /The ratio of long side to short side must be greater than 0\.33\./);
  });

  it("applies the boundaries literally: 4,700,000 bytes and 320 px fail, one less byte and 321 px pass", async () => {
    const f = await fixtures();
    assert.equal((await dreamina("validate", "-i", f.path("size-4699999.jpg"))).code, 0);
    const heavy = await dreamina("validate", "-i", f.path("size-4700000.jpg"));
    assert.equal(heavy.code, 65);
    assert.match(heavy.stdout, /File size must be less than 4\.7 MB\./);
    assert.equal((await dreamina("validate", "-i", f.path("w321.jpg"))).code, 0);
    assert.equal((await dreamina("validate", "-i", f.path("w320.jpg"))).code, 65);
  });

  it("prints one JSON document with --json", async () => {
    const f = await fixtures();
    const { code, stdout } = await dreamina("validate", "--image", f.path("webp-named.jpg"), "--json");
    assert.equal(code, 65);
    const doc = JSON.parse(stdout);
    assert.equal(doc.valid, false);
    assert.equal(doc.exitCode, 65);
    assert.deepEqual(
      doc.violations.map((v: { rule: string }) => v.rule),
      ["format"],
    );
    assert.equal(doc.image.format, "webp");
    assert.equal(doc.promptChecked, false);
  });

  it("exits 66 when the file does not exist", async () => {
    const f = await fixtures();
    const { code, stderr } = await dreamina("validate", "--image", f.path("nope.jpg"));
    assert.equal(code, 66);
    assert.match(stderr, /no such file/);
  });

  it("reports an HTML page or a truncated header as violations (65)", async () => {
    const f = await fixtures();
    const html = await dreamina("validate", "--image", f.path("page.html"), "--json");
    assert.equal(html.code, 65);
    assert.equal(JSON.parse(html.stdout).violations[0].rule, "html");
    const cut = await dreamina("validate", "--image", f.path("truncated-header.jpg"));
    assert.equal(cut.code, 65);
    assert.match(cut.stdout, /truncated/);
  });

  it("decodes a local image in full: a JPEG cut in half or a PNG with garbage pixels is refused (65)", async () => {
    const f = await fixtures();
    const damaged = await damagedImages();
    const half = join(f.dir, "cli-half.jpg");
    const garbage = join(f.dir, "cli-garbage.png");
    writeFileSync(half, damaged.halfJpeg);
    writeFileSync(garbage, damaged.garbagePngGoodCrc);
    const cut = await dreamina("validate", "--image", half, "--prompt", "p", "--json");
    assert.equal(cut.code, 65, cut.stdout);
    const doc = JSON.parse(cut.stdout);
    assert.deepEqual(
      doc.violations.map((v: { path: string; rule: string }) => `${v.path}:${v.rule}`),
      ["image_urls[0]:decode"],
    );
    assert.match(doc.violations[0].message, /does not decode fully: .*cut off/);
    const bad = await dreamina("validate", "--image", garbage);
    assert.equal(bad.code, 65, bad.stdout);
    assert.match(
      bad.stdout,
      /image_urls\[0\] {2}decode {2}the image does not decode fully: the PNG's compressed pixel data/,
    );
  });

  it("--fit names the pixel limit and the image's pixel count for a huge image", async () => {
    const f = await fixtures();
    const huge = join(f.dir, "cli-huge.png");
    writeFileSync(huge, hugePng(30_000, 30_000));
    const r = await dreamina("validate", "--image", huge, "--fit", join(f.dir, "cli-huge-fit.jpg"));
    assert.equal(r.code, 65, r.stderr);
    assert.match(r.stderr, /30000x30000 \(900,000,000 pixels\), more than the 268,402,689 pixels/);
    assert.doesNotMatch(r.stderr, /cannot decode PNG/);
  });

  it("exits 64 on a non-numeric --frames", async () => {
    const f = await fixtures();
    assert.equal((await dreamina("validate", "--image", f.path("ok.jpg"), "--frames", "many")).code, 64);
  });

  it("--fit writes a compliant image and validates it", async () => {
    const f = await fixtures();
    const out = join(f.dir, "fixed.jpg");
    const { code, stdout } = await dreamina(
      "validate",
      "--image",
      f.path("ratio-3.0.jpg"),
      "--fit",
      out,
      "--json",
    );
    assert.equal(code, 0, stdout);
    const doc = JSON.parse(stdout);
    assert.equal(doc.fit.changed, true);
    assert.deepEqual([doc.fit.image.width, doc.fit.image.height], [3000, 1001]);
    const header = sniffImage(readFileSync(out), { final: true });
    assert.deepEqual([header.format, header.width, header.height], ["jpeg", 3000, 1001]);
    assert.equal(existsSync(`${out}.part`), false);
    const again = await dreamina(
      "validate",
      "--image",
      f.path("webp-named.jpg"),
      "--fit",
      join(f.dir, "fixed.png"),
    );
    assert.equal(again.code, 0, again.stdout);
    assert.match(again.stdout, /converted WebP to PNG/);
  });

  it("--prompt-file: the prompt is read from the file and checked, like run and submit", async () => {
    const f = await fixtures();
    const good = join(f.dir, "prompt.txt");
    writeFileSync(good, "  a slow pan across the street\n");
    const ok = await dreamina("validate", "--image", f.path("ok.jpg"), "--prompt-file", good, "--json");
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.equal(JSON.parse(ok.stdout).promptChecked, true);
    const long = join(f.dir, "long-prompt.txt");
    writeFileSync(long, "x".repeat(801));
    const tooLong = await dreamina("validate", "--image", f.path("ok.jpg"), "--prompt-file", long);
    assert.equal(tooLong.code, 65, tooLong.stdout);
    assert.match(tooLong.stdout, /^ {2}prompt {2}/m);
    const both = await dreamina("validate", "--image", f.path("ok.jpg"), "-p", "x", "--prompt-file", good);
    assert.equal(both.code, 64, both.stderr);
    const missing = await dreamina(
      "validate",
      "--image",
      f.path("ok.jpg"),
      "--prompt-file",
      join(f.dir, "nope.txt"),
    );
    assert.equal(missing.code, 66, missing.stderr);
    assert.match(missing.stderr, /cannot read --prompt-file .*nope\.txt: no such file/);
  });

  describe("with a URL (local server)", () => {
    let server: Server;
    let base: string;
    const authorizations: (string | undefined)[] = [];

    before(async () => {
      const photo = await jpeg(1000, 700);
      server = createServer((req, res) => {
        authorizations.push(req.headers.authorization);
        if (req.url === "/photo.jpg") {
          res.writeHead(200, { "content-type": "image/jpeg", "content-length": photo.length });
          res.end(photo);
        } else {
          res.writeHead(404);
          res.end();
        }
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });

    after(async () => {
      await new Promise((resolve) => server.close(resolve));
      assert.ok(authorizations.length >= 2);
      assert.deepEqual(authorizations.filter(Boolean), [], "an image host received an Authorization header");
    });

    it("probes the URL without a token even when one is configured", async () => {
      const { code, stdout } = await dreamina(
        "validate",
        "--image",
        `${base}/photo.jpg`,
        "--token",
        "sk-secret-token",
        "--json",
      );
      assert.equal(code, 0, stdout);
      const doc = JSON.parse(stdout);
      assert.deepEqual([doc.image.kind, doc.image.width, doc.image.height], ["url", 1000, 700]);
      // A local address and plain http are things the real service could not fetch: warned.
      assert.ok(doc.warnings.some((w: { rule: string }) => w.rule === "public_url"));
    });

    it("exits 66 on a 404", async () => {
      assert.equal((await dreamina("validate", "--image", `${base}/missing.jpg`)).code, 66);
    });
  });
});
