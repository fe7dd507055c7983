// The same condition gives the same exit code in every command where it can occur, and each
// command's --help and the README's table list every code the command can return (one list,
// COMMAND_EXIT_CODES, that the codes seen here must fall in).

import assert from "node:assert/strict";
import { chmodSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { createServer as createNetServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { COMMAND_EXIT_CODES, type CommandName } from "../../src/cli/exit-codes.js";
import { type CliResult, cli, ROOT, type TempHome, tempHome } from "../helpers/cli.js";
import { HTML_PAGE, jpeg } from "../helpers/images.js";

let home: TempHome;
let noToken: TempHome;
let imageServer: Server;
let imageBase: string;
let refusedBase: string;
const files = {
  image: "",
  missing: "",
  directory: "",
  loop: "",
  unreadable: "",
  prompt: "",
  manifest: "",
};

async function closedPort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

before(async () => {
  home = tempHome();
  noToken = tempHome({ token: null });
  files.image = join(home.dir, "photo.jpg");
  writeFileSync(files.image, await jpeg(800, 600));
  files.missing = join(home.dir, "missing.jpg");
  files.directory = join(home.dir, "a-directory.jpg");
  mkdirSync(files.directory);
  files.loop = join(home.dir, "loop-a.jpg");
  symlinkSync(join(home.dir, "loop-b.jpg"), files.loop);
  symlinkSync(files.loop, join(home.dir, "loop-b.jpg"));
  files.unreadable = join(home.dir, "unreadable.jpg");
  writeFileSync(files.unreadable, await jpeg(800, 600));
  chmodSync(files.unreadable, 0o000);
  files.prompt = join(home.dir, "prompt.txt");
  writeFileSync(files.prompt, "a slow pan\n");
  files.manifest = join(home.dir, "shots.jsonl");
  writeFileSync(files.manifest, `${JSON.stringify({ image: files.image, prompt: "x" })}\n`);

  const jpegBytes = await jpeg(800, 600);
  imageServer = createServer((req, res) => {
    if (req.url === "/ok.jpg") res.writeHead(200, { "content-type": "image/jpeg" }).end(jpegBytes);
    else if (req.url === "/page.jpg") res.writeHead(200, { "content-type": "text/html" }).end(HTML_PAGE);
    else if (req.url === "/broken.jpg") res.writeHead(500).end("oops");
    else if (req.url === "/private.jpg") res.writeHead(403).end("no");
    else res.writeHead(404).end("not found");
  });
  await new Promise<void>((resolve) => imageServer.listen(0, "127.0.0.1", resolve));
  imageBase = `http://127.0.0.1:${(imageServer.address() as { port: number }).port}`;
  refusedBase = `http://127.0.0.1:${await closedPort()}`;
});

after(async () => {
  await new Promise((resolve) => imageServer.close(resolve));
  home.cleanup();
  noToken.cleanup();
});

interface Run {
  command: CommandName;
  args: string[];
  home?: TempHome;
}

interface Condition {
  name: string;
  code: number;
  /** What the output must say (the condition named, not something else). */
  says: RegExp;
  runs: Run[];
}

/**
 * A fresh -o for each run: the runs of a condition go at once, and two runs claiming the same
 * output file would (rightly) refuse each other.
 */
let outputs = 0;
const never = () => `never-${++outputs}.mp4`;

/** The three commands that read an image (and a prompt). Nothing can be sent: the API refuses connections. */
function imageCommands(image: string, extra: string[] = ["-p", "x"]): Run[] {
  return [
    { command: "validate", args: ["validate", "-i", image, ...extra] },
    { command: "run", args: ["run", "-i", image, ...extra, "-o", never()] },
    { command: "submit", args: ["submit", "-i", image, ...extra] },
  ];
}

/** The commands that take a request id (jobs show takes a local id too). */
function idCommands(id: string): Run[] {
  return [
    { command: "status", args: ["status", id] },
    { command: "result", args: ["result", id] },
    { command: "cancel", args: ["cancel", id] },
    { command: "wait", args: ["wait", id] },
    { command: "jobs", args: ["jobs", "show", id] },
  ];
}

function conditions(): Condition[] {
  const uid = process.getuid?.();
  return [
    {
      name: "an unknown option, named before any missing required option",
      code: 64,
      says: /unknown option '--bogus'/,
      runs: [
        { command: "run", args: ["run", "--bogus"] },
        { command: "run", args: ["run", "-i", files.image, "-p", "x", "--bogus"] },
        { command: "submit", args: ["submit", "--bogus"] },
        { command: "validate", args: ["validate", "--bogus"] },
        { command: "wait", args: ["wait", "abc", "--bogus"] },
        { command: "status", args: ["status", "abc", "--bogus"] },
        { command: "result", args: ["result", "abc", "--bogus"] },
        { command: "cancel", args: ["cancel", "abc", "--bogus"] },
        { command: "jobs", args: ["jobs", "--bogus"] },
        { command: "jobs", args: ["jobs", "show", "1", "--bogus"] },
        { command: "batch", args: ["batch", files.manifest, "--bogus"] },
        { command: "sandbox", args: ["sandbox", "--bogus"] },
      ],
    },
    {
      name: "a malformed request id (a space)",
      code: 64,
      says: /\[A-Za-z0-9_-\]\{1,128\}/,
      runs: idCommands("a b"),
    },
    {
      name: "a malformed request id (a path, 129 characters)",
      code: 64,
      says: /\[A-Za-z0-9_-\]\{1,128\}/,
      runs: [
        { command: "cancel", args: ["cancel", "../x"] },
        { command: "status", args: ["status", "a".repeat(129)] },
        { command: "wait", args: ["wait", "x/../../y"] },
      ],
    },
    {
      name: "a bad flag value",
      code: 64,
      says: /--(give-up-after|timeout|frames|concurrency|limit)/,
      runs: [
        { command: "run", args: ["run", "-i", files.image, "-p", "x", "--give-up-after", "0"] },
        { command: "wait", args: ["wait", "abc", "--give-up-after", "soon"] },
        { command: "validate", args: ["validate", "-i", files.image, "--frames", "many"] },
        { command: "batch", args: ["batch", files.manifest, "--out", "o", "--concurrency", "0"] },
        { command: "jobs", args: ["jobs", "--limit", "-1"] },
      ],
    },
    {
      name: "both --prompt and --prompt-file",
      code: 64,
      says: /either --prompt or --prompt-file/,
      runs: imageCommands(files.image, ["-p", "x", "--prompt-file", files.prompt]),
    },
    {
      name: "a local image that does not exist",
      code: 66,
      says: /missing\.jpg: no such file/,
      runs: imageCommands(files.missing),
    },
    {
      name: "a directory as the image",
      code: 66,
      says: /a-directory\.jpg (is a directory|is not a regular file)/,
      runs: imageCommands(files.directory),
    },
    {
      name: "a symlink loop as the image",
      code: 66,
      says: /loop-a\.jpg cannot be read: ELOOP/,
      runs: imageCommands(files.loop),
    },
    ...(uid === 0
      ? [] // root reads a mode-000 file anyway
      : [
          {
            name: "an unreadable image",
            code: 66,
            says: /unreadable\.jpg cannot be read: EACCES/,
            runs: imageCommands(files.unreadable),
          },
        ]),
    {
      name: "an image URL answering 404",
      code: 66,
      says: /gone\.jpg: not found \(HTTP 404\)/,
      runs: imageCommands(`${imageBase}/gone.jpg`),
    },
    {
      name: "an image URL answering 403 or 500",
      code: 66,
      says: /(private|broken)\.jpg: HTTP (403|500)/,
      runs: [...imageCommands(`${imageBase}/private.jpg`), ...imageCommands(`${imageBase}/broken.jpg`)],
    },
    {
      name: "an image URL that refuses connections",
      code: 66,
      says: /cannot connect \(ECONNREFUSED\)/,
      runs: imageCommands(`${refusedBase}/x.jpg`),
    },
    {
      name: "an image URL that serves an HTML page",
      code: 65,
      says: /HTML/,
      runs: imageCommands(`${imageBase}/page.jpg`),
    },
    {
      name: "a prompt file that does not exist, or is a directory",
      code: 66,
      says: /cannot read --prompt-file .*(no such file|it is a directory)/,
      runs: [
        ...imageCommands(files.image, ["--prompt-file", files.missing]),
        ...imageCommands(files.image, ["--prompt-file", files.directory]),
      ],
    },
    {
      name: "a manifest that does not exist, is a directory or a symlink loop",
      code: 66,
      says: /cannot read the manifest .*(no such file|it is a directory|symbolic links)/,
      runs: [files.missing, files.directory, files.loop].map((m) => ({
        command: "batch" as const,
        args: ["batch", m, "--out", "o"],
      })),
    },
    {
      name: "the API refuses connections",
      code: 69,
      says: /ECONNREFUSED/,
      runs: [
        { command: "status", args: ["status", "abc"] },
        { command: "result", args: ["result", "abc"] },
        { command: "cancel", args: ["cancel", "abc"] },
        { command: "submit", args: ["submit", "-i", files.image, "-p", "x"] },
        { command: "run", args: ["run", "-i", files.image, "-p", "x", "-o", never()] },
        { command: "wait", args: ["wait", "abc", "--give-up-after", "1"] },
      ],
    },
    {
      name: "no token anywhere",
      code: 77,
      says: /No RunComfy API token found/,
      runs: [
        { command: "status", args: ["status", "abc"] },
        { command: "result", args: ["result", "abc"] },
        { command: "cancel", args: ["cancel", "abc"] },
        { command: "submit", args: ["submit", "-i", files.image, "-p", "x"] },
        { command: "run", args: ["run", "-i", files.image, "-p", "x", "-o", never()] },
        { command: "wait", args: ["wait", "abc"] },
      ].map((run) => ({ ...run, home: noToken }) as Run),
    },
  ];
}

/** Runs `fn` over `items`, `limit` at a time (the children are whole Node processes). */
async function pool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return out;
}

function show(r: CliResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

describe("exit codes", () => {
  it("each condition gives the same code in every command where it can occur, within the command's listed codes", async () => {
    const cases = conditions().flatMap((condition) => condition.runs.map((run) => ({ condition, run })));
    const results = await pool(cases, 4, ({ run }) => {
      const h = run.home ?? home;
      return cli(["--base-url", refusedBase, ...run.args], { env: h.env, cwd: h.dir });
    });
    const wrong: string[] = [];
    results.forEach((r, i) => {
      const { condition, run } = cases[i]!;
      const label = `${condition.name}: dreamina ${run.args.join(" ")}`;
      if (r.code !== condition.code) wrong.push(`${label}\n  expected ${condition.code}; ${show(r)}`);
      else if (!condition.says.test(r.stderr + r.stdout))
        wrong.push(`${label}\n  the output does not match ${condition.says}; ${show(r)}`);
      if (!(COMMAND_EXIT_CODES[run.command] as readonly number[]).includes(r.code ?? -1)) {
        wrong.push(`${label}\n  exit ${r.code} is not among ${run.command}'s listed codes`);
      }
      if (/TypeError|at .*\.ts:\d+/.test(r.stderr))
        wrong.push(`${label}\n  a crash, not a message: ${r.stderr}`);
    });
    assert.deepEqual(wrong, []);
  });

  it("every command's --help lists exactly the codes it can return", async () => {
    const commands = Object.keys(COMMAND_EXIT_CODES) as CommandName[];
    const results = await pool(commands, 4, (command) =>
      cli([command, "--help"], { env: home.env, cwd: home.dir }),
    );
    results.forEach((r, i) => {
      const command = commands[i]!;
      assert.equal(r.code, 0, show(r));
      const section = r.stdout.split("\nExit codes:\n")[1];
      assert.ok(section, `${command} --help has an "Exit codes:" section:\n${r.stdout}`);
      const listed = [...section.matchAll(/^ +(\d+) {2}/gm)].map((m) => Number(m[1]));
      assert.deepEqual(listed, [...COMMAND_EXIT_CODES[command]], command);
    });
  });

  it("the README's table lists, per command, every code it can return", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const section = readme.split("\n## Exit codes\n")[1]?.split("\n## ")[0] ?? "";
    const table = new Map(
      [...section.matchAll(/^\| `(\w+)` \| ([\d, ]+) \|$/gm)].map((m) => [
        m[1],
        m[2]!.split(",").map((c) => Number(c.trim())),
      ]),
    );
    assert.deepEqual(Object.fromEntries(table), COMMAND_EXIT_CODES);
    for (const code of new Set(Object.values(COMMAND_EXIT_CODES).flat())) {
      assert.match(section, new RegExp(`^\\| ${code} \\| `, "m"), `the meaning of ${code} is in the table`);
    }
  });
});
