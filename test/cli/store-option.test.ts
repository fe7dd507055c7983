// The global --store option (and $DREAMINA_STORE, $DATABASE_URL): a SQLite path works like
// --journal for every command that touches the store; a store that cannot be used is a usage
// error (64) before anything is sent; commands that never touch the store never look at it.

import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Sandbox } from "../../src/sandbox/index.js";
import { type CliResult, cli, inProcessSandbox, parseJson, type TempHome, tempHome } from "../helpers/cli.js";
import { jpeg } from "../helpers/images.js";

let sandbox: Sandbox;
let home: TempHome;
let image: string;
const PG = "postgres://worker:pg-s3cret@127.0.0.1:1/renders";

function show(r: CliResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

function dreamina(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return cli(["--base-url", sandbox.url, ...args], { env: { ...home.env, ...env }, cwd: home.dir });
}

type Jobs = { jobs: { requestId: string | null }[] };

before(async () => {
  sandbox = await inProcessSandbox();
  home = tempHome();
  image = join(home.dir, "photo.jpg");
  writeFileSync(image, await jpeg(640, 480));
});

after(async () => {
  await sandbox.close();
  home.cleanup();
});

describe("--store", () => {
  it("a SQLite path: submit records there, jobs and status read it, the default journal is untouched", async () => {
    const store = join(home.dir, "team.db");
    const sub = await dreamina(["--store", store, "submit", "-i", image, "-p", "a slow pan"]);
    assert.equal(sub.code, 0, show(sub));
    const id = sub.stdout.trim();
    assert.ok(existsSync(store));
    assert.ok(!existsSync(home.journal), "the default journal was not created");

    const listed = await dreamina(["--json", "--store", store, "jobs"]);
    assert.equal(listed.code, 0, show(listed));
    assert.deepEqual(
      parseJson<Jobs>(listed).jobs.map((j) => j.requestId),
      [id],
    );
    // The same store named through the environment; the default journal knows nothing.
    const viaEnv = await dreamina(["--json", "jobs"], { DREAMINA_STORE: store });
    assert.deepEqual(
      parseJson<Jobs>(viaEnv).jobs.map((j) => j.requestId),
      [id],
    );
    const st = await dreamina(["--store", store, "status", id]);
    assert.equal(st.code, 0, show(st));
    const none = await dreamina(["--json", "jobs"]);
    assert.deepEqual(parseJson<Jobs>(none).jobs, []);
  });

  it("a store that cannot be used or reached fails before anything is sent, without its password", async () => {
    const before = sandbox.requests().length;
    const cases: [string[], NodeJS.ProcessEnv, number][] = [
      // A PostgreSQL server that cannot be reached: try again later (75), never its password.
      [["--store", PG, "jobs"], {}, 75],
      [["jobs"], { DATABASE_URL: PG }, 75],
      [["--store", "mysql://u@h/db", "cancel", "req-1"], {}, 64],
      [["--store", "a.db", "--journal", "b.db", "result", "req-1"], {}, 64],
      [["submit", "-i", image, "-p", "x"], { DREAMINA_STORE: PG }, 75],
    ];
    for (const [args, env, code] of cases) {
      const r = await dreamina(args, env);
      assert.equal(r.code, code, `${args.join(" ")}: ${show(r)}`);
      assert.doesNotMatch(r.stderr + r.stdout, /pg-s3cret/);
    }
    assert.equal(sandbox.requests().length, before, "nothing reached the service");
  });

  it("commands that never touch the store never look at it", async () => {
    const v = await dreamina(["validate", "-i", image, "-p", "a slow pan"], { DATABASE_URL: PG });
    assert.equal(v.code, 0, show(v));
    const help = await dreamina(["--store", "mysql://u@h/db", "validate", "-i", image]);
    assert.equal(help.code, 0, show(help));
  });
});
