// One checked image per job: `prepare`/`run` read, sniff and decode the image once (counted by
// the image module), fitting included; checkImage's value carries the facts and verdicts that
// every later step uses.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { checkImage } from "../../src/image/check.js";
import { loadImageBytes } from "../../src/image/load.js";
import { probeImage } from "../../src/image/probe.js";
import { imageStats, resetImageStats } from "../../src/image/stats.js";
import { Dreamina } from "../../src/node/dreamina.js";
import type { Sandbox } from "../../src/sandbox/index.js";
import { FAKE_TOKEN, inProcessSandbox } from "../helpers/cli.js";
import { damagedImages, noise } from "../helpers/images.js";

let sandbox: Sandbox;
let dir: string;

before(async () => {
  sandbox = await inProcessSandbox({ workers: 2 });
  dir = mkdtempSync(join(tmpdir(), "dreamina-checked-"));
});
after(async () => {
  await sandbox.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("one checked image per job", () => {
  it("checkImage: facts, ratio, rules and decode verdict, the bytes kept only when asked", async () => {
    const path = join(dir, "a.jpg");
    writeFileSync(path, await noise(700, 400));
    resetImageStats();
    const checked = await checkImage(path);
    assert.equal(checked.valid, true);
    assert.deepEqual(
      { ...checked.facts, ratio: checked.ratio },
      {
        format: "jpeg",
        width: 700,
        height: 400,
        sizeBytes: checked.facts.sizeBytes,
        orientation: undefined,
        source: path,
        ratio: 1.75,
      },
    );
    assert.deepEqual(checked.decode, { ok: true });
    assert.equal(checked.bytes, undefined);
    assert.deepEqual(imageStats(), { checks: 1, headerReads: 1, wholeReads: 1, decodeChecks: 1, decodes: 1 });
    assert.ok(!("bytes" in JSON.parse(JSON.stringify(checked))));

    const damaged = join(dir, "half.jpg");
    writeFileSync(damaged, (await damagedImages()).halfJpeg);
    const bad = await checkImage(damaged, { keepBytes: true });
    assert.equal(bad.valid, false);
    assert.deepEqual(
      bad.decodeViolations.map((v) => v.rule),
      ["decode"],
    );
    assert.ok(bad.bytes && bad.bytes.length === bad.facts.sizeBytes);
  });

  it("a file rewritten between its header read and its whole read is refused, not mixed", async () => {
    const path = join(dir, "swap.jpg");
    const first = await noise(640, 480);
    writeFileSync(path, first);
    const probe = await probeImage(path);
    assert.ok(probe.bytes.length < first.length, "the probe read only a prefix");
    // Same length, other bytes: only the file's identity (mtime, ctime) tells.
    const second = Buffer.from(first);
    second[second.length - 100] = (second[second.length - 100]! + 1) & 0xff;
    await new Promise((resolve) => setTimeout(resolve, 5));
    writeFileSync(path, second);
    await assert.rejects(loadImageBytes(path, probe), /changed while it was being read/);
  });

  it("run(): the image is read and decoded once, and sent", async () => {
    const path = join(dir, "run.jpg");
    writeFileSync(path, await noise(720, 480));
    const dreamina = new Dreamina({ baseUrl: sandbox.url, token: FAKE_TOKEN, journal: false });
    resetImageStats();
    const video = await dreamina.run({ image: path, prompt: "a slow pan", frames: 121 }, { download: false });
    assert.equal(video.result.status, "succeeded");
    assert.deepEqual(imageStats(), { checks: 1, headerReads: 1, wholeReads: 1, decodeChecks: 1, decodes: 1 });
  });

  it("run() with fit: the image is decoded once, fitted, and the fitted copy is not checked again", async () => {
    const path = join(dir, "wide.jpg");
    writeFileSync(path, await noise(1600, 400));
    const dreamina = new Dreamina({ baseUrl: sandbox.url, token: FAKE_TOKEN, journal: false });
    resetImageStats();
    const video = await dreamina.run(
      { image: path, prompt: "a slow pan", frames: 121 },
      { download: false, fit: { ratio: "crop" } },
    );
    assert.equal(video.result.status, "succeeded");
    assert.deepEqual(imageStats(), { checks: 1, headerReads: 1, wholeReads: 1, decodeChecks: 1, decodes: 1 });
  });
});
