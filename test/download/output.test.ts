// The output checks and claims on real files: devices and FIFOs refused before anything is
// written near them, dangling links, claims between processes (a dead owner's claim taken over
// by exactly one of several racing processes, claims gone after process.exit()), and the
// fallback place suggested after a failed save.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import {
  checkOutput,
  claimOutput,
  MIN_FREE_BYTES,
  OutputError,
  recoveryOutputPath,
} from "../../src/download/output.js";
import { mkfifo, mountTmpfs, SKIP_NO_MOUNT, unmount } from "../helpers/mounts.js";

const outputUrl = pathToFileURL(resolve("src/download/output.ts")).href;
let dir: string;
let n = 0;
const mounts: string[] = [];
const fresh = () => {
  const d = join(dir, `case-${++n}`);
  mkdirSync(d, { recursive: true });
  return d;
};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "dreamina-output-"));
});
after(async () => {
  for (const m of mounts) unmount(m);
  await rm(dir, { recursive: true, force: true });
});

function rejectsWith(code: string, pattern?: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof OutputError, String(error));
    assert.equal(error.code, code, error.message);
    if (pattern) assert.match(error.message, pattern);
    return true;
  };
}

/**
 * A child process that claims `file`, prints "won" or the error code, then holds the claim
 * for 3 s or exits at once. With `go`, it first waits for that file to exist, so that several
 * children claim at the same instant.
 */
function claimer(file: string, then: "hold" | "exit", go?: string): ChildProcess {
  const script = `
    const { existsSync } = await import("node:fs");
    const { claimOutput } = await import(${JSON.stringify(outputUrl)});
    const [file, go] = process.argv.slice(-2);
    if (go !== "-") {
      process.stdout.write("ready\\n");
      while (!existsSync(go)) await new Promise((r) => setTimeout(r, 1));
    }
    try {
      await claimOutput(file, { minFreeBytes: 0 });
      process.stdout.write("won\\n");
      ${then === "exit" ? "process.exit(0);" : "setTimeout(() => {}, 3000);"}
    } catch (error) {
      process.stdout.write((error.code ?? error.message) + "\\n");
    }
  `;
  return spawn(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "-e", script, "--", file, go ?? "-"],
    { cwd: process.cwd(), stdio: ["ignore", "pipe", "inherit"] },
  );
}

function outputOf(child: ChildProcess): Promise<string> {
  let out = "";
  child.stdout?.on("data", (d) => {
    out += String(d);
  });
  return new Promise((r) => child.on("exit", () => r(out.trim())));
}

describe("checkOutput", () => {
  it("refuses /dev/null, with force too, before creating anything in /dev", async () => {
    const before = readdirSync("/dev").filter((n) => n.includes("dreamina") || n.startsWith("null."));
    await assert.rejects(
      checkOutput("/dev/null", { force: true }),
      rejectsWith("not_regular", /character device/),
    );
    await assert.rejects(claimOutput("/dev/null", { force: true }), rejectsWith("not_regular"));
    const afterwards = readdirSync("/dev").filter((n) => n.includes("dreamina") || n.startsWith("null."));
    assert.deepEqual(afterwards, before);
  });

  it("refuses a FIFO and a dangling link (force or not); a link to a folder is that folder", async () => {
    const d = fresh();
    mkfifo(join(d, "pipe.mp4"));
    symlinkSync(join(d, "nowhere", "x.mp4"), join(d, "dangling.mp4"));
    symlinkSync(join(d, "loop-b"), join(d, "loop-a"));
    symlinkSync(join(d, "loop-a"), join(d, "loop-b"));
    mkdirSync(join(d, "real"));
    symlinkSync(join(d, "real"), join(d, "to-dir"));
    for (const force of [false, true]) {
      await assert.rejects(checkOutput(join(d, "pipe.mp4"), { force }), rejectsWith("not_regular", /FIFO/));
      await assert.rejects(
        checkOutput(join(d, "dangling.mp4"), { force }),
        rejectsWith("dangling_link", /nowhere\/x\.mp4, which does not exist/),
      );
      await assert.rejects(checkOutput(join(d, "loop-a"), { force }), rejectsWith("dangling_link", /a loop/));
    }
    assert.deepEqual(await checkOutput(join(d, "to-dir")), {
      file: undefined,
      dir: join(d, "to-dir"),
      force: false,
    });
  });

  it("an existing file needs force; a missing folder is created; a file in the way of a folder is refused", async () => {
    const d = fresh();
    writeFileSync(join(d, "taken.mp4"), "x");
    await assert.rejects(checkOutput(join(d, "taken.mp4")), rejectsWith("exists", /use --force/));
    assert.equal((await checkOutput(join(d, "taken.mp4"), { force: true })).file, join(d, "taken.mp4"));
    const nested = join(d, "a", "b", "out.mp4");
    assert.deepEqual(await checkOutput(nested), { file: nested, dir: join(d, "a", "b"), force: false });
    assert.ok(existsSync(join(d, "a", "b")));
    assert.deepEqual(readdirSync(join(d, "a", "b")), [], "the probe file is gone");
    await assert.rejects(checkOutput(join(d, "taken.mp4", "x.mp4")), rejectsWith("not_directory"));
    await assert.rejects(checkOutput(`${join(d, "taken.mp4")}/`), rejectsWith("not_directory"));
  });

  it("a read-only folder and a nearly full disk are refused (real mounts)", async (t) => {
    const ro = join(dir, "ro-mount");
    const tiny = join(dir, "tiny-mount");
    if (!mountTmpfs(ro, { readOnly: true })) {
      t.skip(SKIP_NO_MOUNT);
      return;
    }
    mounts.push(ro);
    await assert.rejects(checkOutput(join(ro, "x.mp4")), rejectsWith("not_writable", /read-only filesystem/));
    await assert.rejects(checkOutput(join(ro, "new", "x.mp4")), rejectsWith("not_writable", /read-only/));
    assert.ok(mountTmpfs(tiny, { sizeKiB: 2048 }));
    mounts.push(tiny);
    await assert.rejects(checkOutput(join(tiny, "x.mp4")), rejectsWith("no_space", /64\.0 MiB/));
    assert.equal(MIN_FREE_BYTES, 64 * 1024 * 1024);
    // Without the space guess (after a paid job: try anyway), it passes.
    assert.equal((await checkOutput(join(tiny, "x.mp4"), { minFreeBytes: 0 })).dir, tiny);
  });
});

describe("claimOutput", () => {
  it("a second claim on the same file is busy until the first is released", async () => {
    const file = join(fresh(), "one.mp4");
    const first = await claimOutput(file);
    await assert.rejects(claimOutput(file), rejectsWith("busy", /another dreamina process \(pid \d+/));
    await first.release();
    await first.release(); // idempotent
    assert.equal(existsSync(`${file}.lock`), false);
    const second = await claimOutput(file);
    await second.release();
  });

  it("releasing a claim leaves alone a lock that replaced it (removed and created again meanwhile)", async () => {
    const file = join(fresh(), "replaced.mp4");
    const claim = await claimOutput(file);
    // Someone removed our lock by hand and another claim was made: that one is not ours to remove.
    unlinkSync(`${file}.lock`);
    const other = JSON.stringify({ pid: 1, host: "elsewhere", at: "now", token: "theirs" });
    writeFileSync(`${file}.lock`, `${other}\n`);
    await claim.release();
    assert.equal(readFileSync(`${file}.lock`, "utf8"), `${other}\n`);
  });

  it("another live process's claim is busy; after it exits (process.exit) the claim is gone", async () => {
    const file = join(fresh(), "held.mp4");
    const holder = claimer(file, "hold");
    const held = outputOf(holder);
    const deadline = Date.now() + 10_000;
    while (!existsSync(`${file}.lock`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await assert.rejects(claimOutput(file), rejectsWith("busy"));
    holder.kill("SIGTERM");
    await held;
    const exiting = claimer(join(dirname(file), "exits.mp4"), "exit");
    assert.equal(await outputOf(exiting), "won");
    assert.equal(existsSync(`${join(dirname(file), "exits.mp4")}.lock`), false, "removed on process.exit()");
  });

  it("a dead process's claim is taken over by exactly one of several processes racing for it", async () => {
    const file = join(fresh(), "contested.mp4");
    writeFileSync(
      `${file}.lock`,
      JSON.stringify({ pid: 2_147_483_000, host: hostname(), at: "then", token: "dead" }),
    );
    // They all wait for the same signal, then claim at once: a real race for the dead claim.
    const go = join(dirname(file), "go");
    const children = Array.from({ length: 5 }, () => claimer(file, "hold", go));
    const outputs = children.map(outputOf);
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((ready) => {
            child.stdout?.on("data", (d) => {
              if (String(d).includes("ready")) ready();
            });
          }),
      ),
    );
    writeFileSync(go, "");
    const results = (await Promise.all(outputs)).map((out) => out.split("\n").at(-1));
    assert.deepEqual(
      results.filter((r) => r === "won"),
      ["won"],
      results.join(","),
    );
    assert.ok(
      results.every((r) => r === "won" || r === "busy"),
      results.join(","),
    );
    assert.deepEqual(
      readdirSync(dirname(file)).filter((n) => n.includes(".stale-")),
      [],
      "nothing left aside",
    );
  });

  it("an unreadable claim is respected while fresh (being written), taken over once old", async () => {
    const file = join(fresh(), "torn.mp4");
    writeFileSync(`${file}.lock`, "");
    await assert.rejects(claimOutput(file), rejectsWith("busy"));
    const { utimesSync } = await import("node:fs");
    const old = new Date(Date.now() - 60_000);
    utimesSync(`${file}.lock`, old, old);
    const claim = await claimOutput(file);
    await claim.release();
  });
});

describe("recoveryOutputPath", () => {
  it("skips the folder that failed and folders that fail the checks; never an existing name", async () => {
    const d = fresh();
    const failed = join(d, "failed");
    const good = join(d, "good");
    mkdirSync(failed);
    mkdirSync(good);
    writeFileSync(join(good, "dreamina-req_1.mp4"), "an earlier one");
    writeFileSync(join(d, "a-file"), "not a folder");
    const path = await recoveryOutputPath("req_1", {
      avoidDir: failed,
      candidates: [failed, join(d, "a-file"), good],
    });
    assert.equal(path, join(good, "dreamina-req_1-1.mp4"));
    // A hostile id cannot climb out of the folder.
    const hostile = await recoveryOutputPath("../../etc/x", { candidates: [good] });
    assert.equal(hostile, join(good, "dreamina-______etc_x.mp4"));
  });
});

function dirname(path: string): string {
  return resolve(path, "..");
}
