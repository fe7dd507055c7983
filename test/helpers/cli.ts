// End-to-end helpers: run `dreamina` as a user does (a child process with its own temp
// home, a fake token and NO_COLOR), start the sandbox (in-process or as a child process),
// and check what landed on disk (MP4 structure, sha256).
//
// The child runs bin/dreamina.js when dist/ is at least as new as every source file;
// otherwise the same main() from src through tsx (so a stale build never hides a fix).

import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { type Sandbox, type SandboxOptions, startSandbox } from "../../src/sandbox/index.js";

export const ROOT = process.cwd();
/** Long and distinctive, so a leak is easy to find in any output or file. */
export const FAKE_TOKEN = "rcTEST_6b1f0e93d24c4a7fb1e8a0c55d7e9f31_do-not-leak";

function newestMtime(dir: string, ext: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = statSync(path);
    if (st.isDirectory()) newest = Math.max(newest, newestMtime(path, ext));
    else if (name.endsWith(ext)) newest = Math.max(newest, st.mtimeMs);
  }
  return newest;
}

/** Whether every src/**\/*.ts has a dist/**\/*.js at least as new. */
function distIsFresh(): boolean {
  if (process.env.DREAMINA_CLI_FROM_SRC === "1") return false;
  const srcDir = join(ROOT, "src");
  const check = (dir: string): boolean => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const st = statSync(path);
      if (st.isDirectory()) {
        if (!check(path)) return false;
      } else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) {
        const built = join(ROOT, "dist", relative(srcDir, path).replace(/\.ts$/, ".js"));
        if (!existsSync(built) || statSync(built).mtimeMs < st.mtimeMs) return false;
      }
    }
    return true;
  };
  return existsSync(join(ROOT, "dist")) && newestMtime(join(ROOT, "dist"), ".js") > 0 && check(srcDir);
}

export const USE_BIN = distIsFresh();
/** tsx by absolute URL: the children run in temp dirs, where a bare "tsx" does not resolve. */
const TSX = import.meta.resolve("tsx");
const FROM_SRC = `const { main } = await import(${JSON.stringify(join(ROOT, "src/cli/main.ts"))});
process.exitCode = await main(["node", "dreamina", ...process.argv.slice(1)]);`;

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Every output of every child, for the "the token never shows" check. */
export const allOutputs: CliResult[] = [];

export interface TempHome {
  dir: string;
  /** $DREAMINA_HOME (the journal lives here). */
  dreaminaHome: string;
  journal: string;
  env: NodeJS.ProcessEnv;
  cleanup(): void;
}

/**
 * A fresh home: HOME, DREAMINA_HOME and XDG dirs in a temp dir, the fake token in
 * RUNCOMFY_API_TOKEN (unless `token: null`), nothing inherited that could point elsewhere.
 */
export function tempHome(options: { token?: string | null } = {}): TempHome {
  const dir = mkdtempSync(join(tmpdir(), "dreamina-e2e-"));
  const dreaminaHome = join(dir, "dreamina");
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    TMPDIR: process.env.TMPDIR,
    HOME: dir,
    XDG_CONFIG_HOME: join(dir, ".config"),
    XDG_DATA_HOME: join(dir, ".local/share"),
    DREAMINA_HOME: dreaminaHome,
    NO_COLOR: "1",
    NODE_NO_WARNINGS: "1",
    TERM: "dumb",
  };
  const token = options.token === undefined ? FAKE_TOKEN : options.token;
  if (token !== null) env.RUNCOMFY_API_TOKEN = token;
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key];
  return {
    dir,
    dreaminaHome,
    journal: join(dreaminaHome, "journal.db"),
    env,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface CliProcess {
  child: ChildProcess;
  /** Settles when the child exits. */
  done: Promise<CliResult>;
  stdout(): string;
  stderr(): string;
  /** Resolves with the match once stderr (or stdout) matches; rejects on exit or timeout. */
  waitFor(
    pattern: RegExp,
    options?: { timeoutMs?: number; stream?: "stdout" | "stderr" },
  ): Promise<RegExpMatchArray>;
}

export function spawnCli(args: string[], options: { env: NodeJS.ProcessEnv; cwd?: string }): CliProcess {
  const argv = USE_BIN
    ? [join(ROOT, "bin/dreamina.js"), ...args]
    : ["--import", TSX, "--input-type=module", "-e", FROM_SRC, "--", ...args];
  const child = spawn(process.execPath, argv, { cwd: options.cwd ?? ROOT, env: options.env });
  let stdout = "";
  let stderr = "";
  const listeners = new Set<() => void>();
  let exited = false;
  child.stdout?.on("data", (d) => {
    stdout += d;
    for (const l of listeners) l();
  });
  child.stderr?.on("data", (d) => {
    stderr += d;
    for (const l of listeners) l();
  });
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      exited = true;
      const result = { code, signal, stdout, stderr };
      allOutputs.push(result);
      for (const l of listeners) l();
      resolve(result);
    });
  });
  return {
    child,
    done,
    stdout: () => stdout,
    stderr: () => stderr,
    waitFor: (pattern, { timeoutMs = 20_000, stream = "stderr" } = {}) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const m = (stream === "stderr" ? stderr : stdout).match(pattern);
          if (m) {
            cleanup();
            resolve(m);
          } else if (exited) {
            cleanup();
            reject(new Error(`exited before ${pattern} appeared:\nstdout: ${stdout}\nstderr: ${stderr}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(`${pattern} did not appear in ${timeoutMs} ms:\nstdout: ${stdout}\nstderr: ${stderr}`),
          );
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      }),
  };
}

/** Runs `dreamina ...args` to the end. */
export function cli(args: string[], options: { env: NodeJS.ProcessEnv; cwd?: string }): Promise<CliResult> {
  return spawnCli(args, options).done;
}

/** Parses the one JSON document a --json run prints on stdout (fails loudly otherwise). */
export function parseJson<T = Record<string, unknown>>(result: CliResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch (error) {
    throw new Error(
      `stdout is not one JSON document (${(error as Error).message}):\n${result.stdout}\nstderr: ${result.stderr}`,
    );
  }
}

/** An in-process sandbox, quiet, fast by default: 121-frame jobs take ~1.2 s, 241-frame ~3 s. */
export function inProcessSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  return startSandbox({
    quiet: true,
    timeScale: 1,
    runTime: { 121: { meanMs: 1_200, jitterMs: 0 }, 241: { meanMs: 3_000, jitterMs: 0 } },
    ...options,
  });
}

export interface SandboxProcess {
  url: string;
  child: ChildProcess;
  stderr(): string;
  close(): Promise<void>;
}

/** Resolves once the sandbox has no queued or running job (so the next one starts at once). */
export async function idle(sandbox: Sandbox, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (sandbox.jobs().some((j) => j.state === "in_queue" || j.state === "in_progress")) {
    if (Date.now() > deadline) throw new Error("the sandbox stayed busy");
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `dreamina sandbox --json --port 0 ...`: its first stdout line is `{"url": ...}`. */
export async function sandboxProcess(args: string[], globalArgs: string[] = []): Promise<SandboxProcess> {
  const home = tempHome();
  const proc = spawnCli([...globalArgs, "sandbox", "--json", "--port", "0", ...args], { env: home.env });
  const [line] = await proc.waitFor(/^\{.*\}\n/, { stream: "stdout" });
  const url = (JSON.parse(line) as { url: string }).url;
  return {
    url,
    child: proc.child,
    stderr: proc.stderr,
    close: async () => {
      if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill("SIGTERM");
      await proc.done;
      home.cleanup();
    },
  };
}

export interface SandboxJob {
  id: string;
  state: string;
  frames: number;
  submitCount: number;
  error?: unknown;
  output?: { sha256: string; size: number; path: string };
}

export interface SandboxRequest {
  method: string;
  path: string;
  route: string;
  tokenPresent: boolean;
  status: number | undefined;
  fault: string | undefined;
  requestId: string | undefined;
}

/** GET <url>/__sandbox/jobs: the sandbox's own view, with the output's sha256. */
export async function sandboxJobs(url: string): Promise<SandboxJob[]> {
  const response = await fetch(`${url}/__sandbox/jobs`);
  return (await response.json()) as SandboxJob[];
}

/** GET <url>/__sandbox/requests: every request so far (never a token, only whether one came). */
export async function sandboxRequests(url: string): Promise<SandboxRequest[]> {
  const response = await fetch(`${url}/__sandbox/requests`);
  return (await response.json()) as SandboxRequest[];
}

export function sha256File(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/**
 * The top-level boxes of an MP4 file (type and size), walked by hand. Throws when a box
 * runs past the end of the file (a truncated download).
 */
export function mp4Boxes(path: string): { type: string; size: number }[] {
  const bytes = readFileSync(path);
  const boxes: { type: string; size: number }[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (at + 8 > bytes.length) throw new Error(`${path}: a box header is cut at byte ${at}`);
    let size = bytes.readUInt32BE(at);
    const type = bytes.toString("latin1", at + 4, at + 8);
    if (size === 1) size = Number(bytes.readBigUInt64BE(at + 8));
    else if (size === 0) size = bytes.length - at;
    if (size < 8 || at + size > bytes.length)
      throw new Error(`${path}: box ${type} at ${at} runs past the end`);
    boxes.push({ type, size });
    at += size;
  }
  return boxes;
}

/** A complete MP4: starts with ftyp, has moov and mdat, nothing cut. */
export function assertMp4(path: string): void {
  const types = mp4Boxes(path).map((b) => b.type);
  if (types[0] !== "ftyp") throw new Error(`${path}: first box is ${types[0]}, not ftyp`);
  for (const t of ["moov", "mdat"])
    if (!types.includes(t)) throw new Error(`${path}: no ${t} box (${types})`);
}

/** Everything readable under `dir` (journal files included), as one buffer per file. */
export function filesUnder(dir: string): { path: string; bytes: Buffer }[] {
  const out: { path: string; bytes: Buffer }[] = [];
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = statSync(path);
    if (st.isDirectory()) out.push(...filesUnder(path));
    else out.push({ path, bytes: readFileSync(path) });
  }
  return out;
}
