// Where a batch writes, against the real sandbox: hostile ids never write outside --out.

import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join, relative } from "node:path";
import { after, before, describe, test } from "node:test";
import * as h from "./helpers.js";

let ws: h.Workspace;
before(async () => {
  ws = await h.workspace(3);
});
after(() => ws.cleanup());

/** Every file under `dir`, relative to it. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

describe("batch: output paths", () => {
  test("ids with path traversal or markup only ever name files inside --out", async () => {
    const sb = await h.sandbox();
    const journal = h.journal(ws.dir);
    try {
      const root = join(ws.dir, "ids");
      const out = join(root, "a", "b", "out");
      const ids = ["/../../vid", "/../../../", "<b>x</b>"];
      const path = await h.writeJsonl(
        join(ws.dir, "ids.jsonl"),
        ids.map((id, i) => ({ image: ws.images[i], prompt: `id ${i}`, seed: 1, id })),
      );
      const { summary } = await h.drive(path, { sb, journal, outDir: out });
      assert.equal(summary.exitCode, 0, JSON.stringify(summary.failures));
      assert.equal(summary.done, 3);
      const files = await filesUnder(root);
      const videos = files.filter((f) => f.endsWith(".mp4"));
      assert.equal(videos.length, 3, files.join(", "));
      for (const f of files) assert.ok(f.startsWith(join("a", "b", "out") + "/"), `${f} is outside --out`);
      for (const f of videos) assert.doesNotMatch(f.slice("a/b/out/".length), /[<>/]/);
    } finally {
      journal.close();
      await sb.close();
    }
  });
});
