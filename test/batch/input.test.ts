// The per-row input with a RowInputCache: one data URI string shared by every row sending the
// same unchanged file, and never a stale one once the file changed.

import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { prepareRowInput, RowInputCache } from "../../src/batch/input.js";
import { parseManifest } from "../../src/batch/manifest.js";
import { PreflightError } from "../../src/run/errors.js";
import { gradient, type Workspace, workspace } from "./helpers.js";

let ws: Workspace;
before(async () => {
  ws = await workspace(2);
});
after(async () => {
  await ws.cleanup();
});

function manifestRows(rows: Record<string, unknown>[]) {
  return parseManifest(rows.map((r) => JSON.stringify(r)).join("\n"), { baseDir: ws.dir }).rows;
}

describe("prepareRowInput with a RowInputCache", () => {
  it("gives the same input as without the cache, sharing one data URI string", async () => {
    const rows = manifestRows([
      { image: ws.images[0], prompt: "first", seed: 1 },
      { image: ws.images[0], prompt: "second", seed: 2, frames: 241 },
    ]);
    const cache = new RowInputCache();
    const a = await prepareRowInput(rows[0]!, { cache });
    const b = await prepareRowInput(rows[1]!, { cache });
    assert.deepEqual(a, await prepareRowInput(rows[0]!));
    assert.deepEqual(b, await prepareRowInput(rows[1]!));
    assert.equal(cache.size, 1);
    assert.ok(Object.is(a.image_urls[0], b.image_urls[0]), "one shared string");
  });

  it("reads the file again once it changed, and still refuses an invalid row", async () => {
    const name = "images/changing.jpg";
    await writeFile(join(ws.dir, name), await gradient(480, 360, 1));
    const [row] = manifestRows([{ image: name, prompt: "p", seed: 1 }]);
    const cache = new RowInputCache();
    const before = await prepareRowInput(row!, { cache });
    await writeFile(join(ws.dir, name), await gradient(480, 360, 7));
    const afterChange = await prepareRowInput(row!, { cache });
    assert.notEqual(afterChange.image_urls[0], before.image_urls[0]);
    assert.deepEqual(afterChange, await prepareRowInput(row!));
    // Now too small for the model: refused even though an earlier version was cached.
    await writeFile(join(ws.dir, name), await gradient(300, 300, 2));
    await assert.rejects(prepareRowInput(row!, { cache }), PreflightError);
    // A cached image with a row whose own fields break a rule: refused too.
    const [bad] = manifestRows([{ image: ws.images[1], prompt: "ok", seed: 1 }]);
    await prepareRowInput(bad!, { cache });
    await assert.rejects(prepareRowInput({ ...bad!, prompt: "x".repeat(801) }, { cache }), PreflightError);
  });
});
