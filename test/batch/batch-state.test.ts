// BatchState: the batch's identity and lease follow the real folder, not its spelling.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { BatchState, MARKER_FILE } from "../../src/batch/batch-state.js";
import { BatchLockedError, SqliteJobStore } from "../../src/store/index.js";
import { withRawDb } from "../helpers/sqlite.js";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "dreamina-state-"));
});
after(() => rm(dir, { recursive: true, force: true }));

/** A live process that is not this one: an owner the lock must respect. */
async function otherProcess(): Promise<{ pid: number; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
  await new Promise((resolve) => child.once("spawn", resolve));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    pid: child.pid!,
    stop: () => {
      child.kill();
      return exited;
    },
  };
}

describe("BatchState", () => {
  test("a symlinked spelling of the folder finds the same batch, even without the marker file", async () => {
    const journal = SqliteJobStore.open(join(dir, "j1.db"));
    try {
      await mkdir(join(dir, "real1"));
      await symlink(join(dir, "real1"), join(dir, "link1"));
      const first = await BatchState.open(journal, { outDir: join(dir, "real1") });
      await first.release();
      await rm(join(dir, "real1", MARKER_FILE));
      const second = await BatchState.open(journal, { outDir: `${join(dir, "link1")}/` });
      await second.release();
      assert.equal(second.batchId, first.batchId);
      assert.equal(second.info.outDir, first.info.outDir);
      assert.equal(second.info.resumed, true);
    } finally {
      await journal.close();
    }
  });

  test("a live owner of another batch in the same folder (same device and inode) locks it", async () => {
    const journal = SqliteJobStore.open(join(dir, "j2.db"));
    const other = await otherProcess();
    try {
      const out = join(dir, "real2");
      const first = await BatchState.open(journal, { outDir: out });
      await first.release();
      // Another process owns it under a path that does not resolve to ours (a bind mount, say).
      withRawDb(journal.location, (db) =>
        db
          .prepare("UPDATE batches SET out_dir = ?, owner_pid = ?, owner_host = ? WHERE batch_id = ?")
          .run("/mnt/elsewhere/renders", other.pid, hostname(), first.batchId),
      );
      await rm(join(out, MARKER_FILE));
      await assert.rejects(BatchState.open(journal, { outDir: out }), BatchLockedError);
      // A dry run only reads: never locked out.
      const readOnly = await BatchState.open(journal, { outDir: out, readOnly: true });
      await readOnly.release();
      await other.stop();
      const after = await BatchState.open(journal, { outDir: out });
      await after.release();
    } finally {
      await other.stop();
      await journal.close();
    }
  });
});
