// `dreamina store import` end to end on a real PostgreSQL: jobs submitted into an SQLite journal
// by the CLI arrive in the shared store (where `jobs --store` lists them), a second import adds
// nothing, the target must be PostgreSQL, and the password never shows.

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Sandbox } from "../../src/sandbox/index.js";
import { type CliResult, cli, inProcessSandbox, parseJson, type TempHome, tempHome } from "../helpers/cli.js";
import { jpeg } from "../helpers/images.js";
import { skipWithoutPostgres, startTestPostgres, type TestPostgres } from "../helpers/postgres.js";

const server = await startTestPostgres();
const skip = skipWithoutPostgres(server);
let sandbox: Sandbox;
let home: TempHome;
let image: string;
let url: string;

function show(r: CliResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

function dreamina(args: string[]): Promise<CliResult> {
  return cli(["--base-url", sandbox.url, ...args], { env: home.env, cwd: home.dir });
}

type Imported = { jobs: { imported: number; skipped: number }; into: string };
type Jobs = { jobs: { requestId: string | null; prompt: string | null }[] };

before(async () => {
  if (skip) return;
  sandbox = await inProcessSandbox();
  home = tempHome();
  image = join(home.dir, "photo.jpg");
  writeFileSync(image, await jpeg(640, 480));
  url = await (server as TestPostgres).freshDatabase();
});

after(async () => {
  if (skip) return;
  await sandbox.close();
  home.cleanup();
  await (server as TestPostgres).stop();
});

describe("dreamina store import", { skip }, () => {
  it("copies the journal's jobs once; a second import adds nothing; jobs --store lists them", async () => {
    const journal = join(home.dir, "journal.db");
    const ids: string[] = [];
    for (const prompt of ["first shot", "second shot"]) {
      const r = await dreamina(["--journal", journal, "--json", "submit", "-i", image, "-p", prompt]);
      assert.equal(r.code, 0, show(r));
      ids.push(parseJson<{ requestId: string }>(r).requestId);
    }
    const first = await dreamina(["--store", url, "--json", "store", "import", journal]);
    assert.equal(first.code, 0, show(first));
    assert.deepEqual(parseJson<Imported>(first).jobs, { imported: 2, skipped: 0 });
    const again = await dreamina(["--store", url, "--json", "store", "import", journal]);
    assert.equal(again.code, 0, show(again));
    assert.deepEqual(parseJson<Imported>(again).jobs, { imported: 0, skipped: 2 });

    const listed = await dreamina(["--store", url, "--json", "jobs"]);
    assert.equal(listed.code, 0, show(listed));
    const jobs = parseJson<Jobs>(listed).jobs;
    assert.deepEqual(jobs.map((j) => j.requestId).sort(), [...ids].sort());
  });

  it("refuses a SQLite target (64) and a missing journal (66), naming the problem", async () => {
    const sqlite = await dreamina(["--store", join(home.dir, "other.db"), "store", "import", "x.db"]);
    assert.equal(sqlite.code, 64, show(sqlite));
    assert.match(sqlite.stderr, /must be a PostgreSQL store/);
    const missing = await dreamina(["--store", url, "store", "import", join(home.dir, "nope.db")]);
    assert.equal(missing.code, 66, show(missing));
    assert.match(missing.stderr, /nope\.db/);
  });
});
