// The test PostgreSQL harness itself: a real server answers, each database starts empty and is
// separate from the others, and the server is gone after stop().
import assert from "node:assert/strict";
import { after, test } from "node:test";
import pg from "pg";
import { skipWithoutPostgres, startTestPostgres, type TestPostgres } from "../helpers/postgres.js";

const server = await startTestPostgres();
const skip = skipWithoutPostgres(server);
const pgServer = server as TestPostgres;

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

after(async () => {
  if (!skip) await pgServer.stop();
});

test("a real PostgreSQL answers on loopback, with no password in the URL", { skip }, async () => {
  const url = new URL(pgServer.url);
  assert.equal(url.password, "");
  if (!process.env.DREAMINA_TEST_PG_URL) assert.equal(url.hostname, "127.0.0.1");
  const [row] = await query<{ v: string }>(pgServer.url, "SELECT current_setting('server_version_num') AS v");
  assert.ok(Number(row?.v) >= 150000, `server version ${row?.v}`);
});

test("each fresh database is separate and starts empty", { skip }, async () => {
  await query(pgServer.url, "CREATE TABLE marker (x int)");
  const other = await pgServer.freshDatabase();
  assert.notEqual(other, pgServer.url);
  const tables = await query<{ n: string }>(
    other,
    "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public'",
  );
  assert.equal(Number(tables[0]?.n), 0);
});

test("stop() really stops the server", {
  skip: skip || (process.env.DREAMINA_TEST_PG_URL ? "external server" : false),
}, async () => {
  const probe = await startTestPostgres();
  assert.notEqual(typeof probe, "string");
  const p = probe as TestPostgres;
  await query(p.url, "SELECT 1");
  await p.stop();
  await assert.rejects(query(p.url, "SELECT 1"));
});
