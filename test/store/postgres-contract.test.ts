// The JobStore contract on a real PostgreSQL: the same suite as SQLite, a fresh database per case
// on one server for the file.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { openJobStore } from "../../src/store/index.js";
import { skipWithoutPostgres, startTestPostgres, type TestPostgres } from "../helpers/postgres.js";
import { describeJobStoreContract } from "./contract.js";

const server = await startTestPostgres();
const skip = skipWithoutPostgres(server);
const pgServer = server as TestPostgres;
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "dreamina-pg-contract-"));
  // Request ids kept on this machine when the server cannot take them go here, not in $HOME.
  process.env.DREAMINA_HOME = dir;
});
after(async () => {
  if (!skip) await pgServer.stop();
  await rm(dir, { recursive: true, force: true });
});

if (!skip) {
  describeJobStoreContract("postgres", async (options) => {
    const url = await pgServer.freshDatabase();
    return {
      store: await openJobStore(url, options),
      connect: () => openJobStore(url),
      spec: url,
      cleanup: async () => {},
    };
  });
}
