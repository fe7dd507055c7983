// The JobStore contract on SQLite: a fresh file per case.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { openJobStore } from "../../src/store/index.js";
import { describeJobStoreContract } from "./contract.js";

let dir: string;
let n = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "dreamina-contract-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describeJobStoreContract("sqlite", async (options) => {
  const path = join(dir, `case-${++n}`, "journal.db");
  return {
    store: await openJobStore(path, options),
    connect: () => openJobStore(path),
    spec: path,
    cleanup: async () => {},
  };
});
