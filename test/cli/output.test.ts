// `-o` problems are found before paying: a read-only folder, a full disk, a dangling link, a
// name taken, a FIFO or a device, two runs to the same file. Each must exit before the submit
// (the sandbox's request log shows none). And when saving fails after a paid job anyway, the
// printed `dreamina wait` names a place that works, and does.
//
// Real child processes against a real sandbox; real FIFOs, device nodes and read-only or tiny
// filesystems (tmpfs mounts: the tests run as root, where chmod refuses nothing).

import assert from "node:assert/strict";
import { existsSync, lstatSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Sandbox } from "../../src/sandbox/index.js";
import {
  assertMp4,
  type CliResult,
  cli,
  inProcessSandbox,
  parseJson,
  sha256File,
  spawnCli,
  type TempHome,
  tempHome,
} from "../helpers/cli.js";
import { jpeg } from "../helpers/images.js";
import { mkfifo, mknodNull, mountTmpfs, remountReadOnly, SKIP_NO_MOUNT, unmount } from "../helpers/mounts.js";

let sandbox: Sandbox;
let home: TempHome;
let image: string;
const mounts: string[] = [];

function dreamina(args: string[]): Promise<CliResult> {
  return cli(["--base-url", sandbox.url, ...args], { env: home.env, cwd: home.dir });
}

function show(r: CliResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

function submits(): number {
  return sandbox.requests().filter((e) => e.route === "submit").length;
}

/** Runs `dreamina run ... -o <output> [extra]` and checks that it stopped before any submit. */
async function refusedBeforeSubmit(output: string, extra: string[] = []): Promise<CliResult> {
  const before = submits();
  const r = await dreamina(["run", "-i", image, "-p", "never sent", "-o", output, ...extra]);
  assert.notEqual(r.code, 0, show(r));
  assert.match(r.stderr, /\(nothing was sent\)/, show(r));
  assert.equal(submits(), before, "no submit reached the sandbox");
  return r;
}

before(async () => {
  sandbox = await inProcessSandbox({ workers: 3 });
  home = tempHome();
  image = join(home.dir, "photo.jpg");
  writeFileSync(image, await jpeg(800, 600));
});

after(async () => {
  await sandbox.close();
  for (const m of mounts) unmount(m);
  home.cleanup();
});

describe("-o is checked before the submit", () => {
  it("a read-only folder (file or directory target) exits 65 before the submit", async (t) => {
    const ro = join(home.dir, "read-only");
    if (!mountTmpfs(ro, { readOnly: true })) {
      t.skip(SKIP_NO_MOUNT);
      return;
    }
    mounts.push(ro);
    for (const output of [join(ro, "out.mp4"), `${ro}/`, join(ro, "sub", "out.mp4")]) {
      const r = await refusedBeforeSubmit(output);
      assert.equal(r.code, 65, show(r));
      assert.match(r.stderr, /read-only filesystem/);
    }
  });

  it("too little free space exits 75 before the submit, naming the free and needed sizes", async (t) => {
    const tiny = join(home.dir, "tiny-disk");
    if (!mountTmpfs(tiny, { sizeKiB: 1024 })) {
      t.skip(SKIP_NO_MOUNT);
      return;
    }
    mounts.push(tiny);
    const r = await refusedBeforeSubmit(join(tiny, "out.mp4"));
    assert.equal(r.code, 75, show(r));
    assert.match(r.stderr, /only 1\.0 MiB free in .*tiny-disk; a video needs up to 64\.0 MiB/);
  });

  it("a dangling symlink exits 65 before the submit, with or without --force, and stays as it was", async () => {
    const link = join(home.dir, "dangling.mp4");
    symlinkSync(join(home.dir, "no-such-dir", "x.mp4"), link);
    for (const extra of [[], ["--force"]]) {
      const r = await refusedBeforeSubmit(link, extra);
      assert.equal(r.code, 65, show(r));
      assert.match(
        r.stderr,
        /dangling\.mp4 is a symbolic link to .*no-such-dir\/x\.mp4, which does not exist/,
      );
      assert.ok(lstatSync(link).isSymbolicLink());
    }
  });

  it("an existing file exits 65 before the submit without --force", async () => {
    const taken = join(home.dir, "taken.mp4");
    writeFileSync(taken, "keep me");
    const r = await refusedBeforeSubmit(taken);
    assert.equal(r.code, 65, show(r));
    assert.match(r.stderr, /already exists: use --force/);
    assert.equal(readFileSync(taken, "utf8"), "keep me");
  });

  it("a FIFO exits 65 before the submit, with or without --force, and is still a FIFO", async () => {
    const fifo = join(home.dir, "pipe.mp4");
    mkfifo(fifo);
    for (const extra of [[], ["--force"]]) {
      const r = await refusedBeforeSubmit(fifo, extra);
      assert.equal(r.code, 65, show(r));
      assert.match(r.stderr, /pipe\.mp4 is a FIFO \(named pipe\), not a regular file/);
      assert.ok(lstatSync(fifo).isFIFO());
    }
  });

  it("a character device (a /dev/null twin in a temp dir) exits 65 with --force, untouched", async (t) => {
    const device = join(home.dir, "null-twin");
    if (!mknodNull(device)) {
      t.skip("SKIPPED: cannot create a device node here (needs root)");
      return;
    }
    const r = await refusedBeforeSubmit(device, ["--force"]);
    assert.equal(r.code, 65, show(r));
    assert.match(r.stderr, /is a character device, not a regular file/);
    const info = lstatSync(device);
    assert.ok(info.isCharacterDevice());
    assert.deepEqual(
      readdirSync(home.dir).filter((n) => n.startsWith("null-twin")),
      ["null-twin"],
      "no lock or part file beside it",
    );
  });

  it("two runs to the same -o: the second exits 75 before its submit; the first finishes", async () => {
    const target = join(home.dir, "shared.mp4");
    const first = spawnCli(["--base-url", sandbox.url, "run", "-i", image, "-p", "first", "-o", target], {
      env: home.env,
      cwd: home.dir,
    });
    await first.waitFor(/^submitted [\w-]+$/m);
    const before = submits();
    const second = await dreamina(["run", "-i", image, "-p", "second", "-o", target, "--force"]);
    assert.equal(second.code, 75, show(second));
    assert.match(second.stderr, /shared\.mp4 is being written by another dreamina process \(pid \d+/);
    assert.match(second.stderr, /\(nothing was sent\)/);
    assert.equal(submits(), before, "the second run sent nothing");
    const done = await first.done;
    assert.equal(done.code, 0, show(done));
    assertMp4(target);
    assert.equal(existsSync(`${target}.lock`), false, "the claim is released");
  });

  it("a claim left by a crashed run (its pid is gone) is taken over", async () => {
    const target = join(home.dir, "after-crash.mp4");
    writeFileSync(
      `${target}.lock`,
      JSON.stringify({ pid: 2_147_483_000, host: (await import("node:os")).hostname(), at: "x", token: "t" }),
    );
    const r = await dreamina(["run", "-i", image, "-p", "after a crash", "-o", target]);
    assert.equal(r.code, 0, show(r));
    assertMp4(target);
    assert.equal(existsSync(`${target}.lock`), false);
  });
});

describe("a paid job whose video cannot be saved", () => {
  it("the name taken while the job ran: the hint names another path, and `dreamina wait` there works", async () => {
    const target = join(home.dir, "taken-meanwhile.mp4");
    const run = spawnCli(
      [
        "--base-url",
        sandbox.url,
        "--json",
        "run",
        "-i",
        image,
        "-p",
        "the name is taken meanwhile",
        "-o",
        target,
      ],
      {
        env: home.env,
        cwd: home.dir,
      },
    );
    // Something (not a dreamina run) takes the name while the job runs.
    const deadline = Date.now() + 20_000;
    while (!existsSync(`${target}.lock`) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    mkfifo(target);
    const r = await run.done;
    assert.equal(r.code, 1, show(r));
    const doc = parseJson<{ error: { details: { requestId: string; resume: string; code: string } } }>(r);
    assert.equal(doc.error.details.code, "not_regular");
    const { requestId, resume } = doc.error.details;
    assert.match(r.stderr, /is done \(and billed\); only saving the video failed/);
    const fresh = /-o (\S+)$/.exec(resume)?.[1];
    assert.ok(fresh, resume);
    assert.notEqual(fresh, target);
    assert.equal(resume, `dreamina wait ${requestId} -o ${fresh}`);
    assert.ok(lstatSync(target).isFIFO(), "the FIFO was not replaced");

    const again = await dreamina(["wait", requestId, "-o", fresh]);
    assert.equal(again.code, 0, show(again));
    assertMp4(fresh);
    assert.equal(sha256File(fresh), sandbox.jobs().find((j) => j.id === requestId)?.output?.sha256);
    assert.equal(sandbox.jobs().find((j) => j.id === requestId)?.submitCount, 1);
  });

  it("the folder turned read-only while the job ran: the hint names a writable place, and it works", async (t) => {
    const folder = join(home.dir, "turns-read-only");
    if (!mountTmpfs(folder, { sizeKiB: 128 * 1024 })) {
      t.skip(SKIP_NO_MOUNT);
      return;
    }
    mounts.push(folder);
    const target = join(folder, "out.mp4");
    const run = spawnCli(
      ["--base-url", sandbox.url, "run", "-i", image, "-p", "the folder turns read-only", "-o", target],
      {
        env: home.env,
        cwd: home.dir,
      },
    );
    const [, requestId] = await run.waitFor(/^submitted ([\w-]+)$/m);
    remountReadOnly(folder);
    const r = await run.done;
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /cannot save the video to .*out\.mp4.*read-only filesystem/);
    const resume = new RegExp(`dreamina wait ${requestId} -o (\\S+)`).exec(r.stderr);
    assert.ok(resume, show(r));
    const fresh = resume[1]!;
    assert.ok(!fresh.startsWith(folder), fresh);

    const again = await dreamina(["wait", requestId!, "-o", fresh]);
    assert.equal(again.code, 0, show(again));
    assertMp4(fresh);
    assert.equal(sandbox.jobs().find((j) => j.id === requestId)?.submitCount, 1);
  });
});
