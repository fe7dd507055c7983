// `dreamina studio`: serves the local web studio (make, watch, compare and keep videos) until
// Ctrl-C. With --sandbox it runs on the in-process sandbox, offline and without a token.

import type { Command } from "commander";
import type { ActionRunner } from "../action.js";
import { CliError } from "../cli-error.js";
import { EXIT, exitCodesHelp } from "../exit-codes.js";
import { type Factory, storeTarget } from "../factory.js";

export interface StudioOptions {
  host: string;
  port: string;
  open?: boolean;
}

/** The platform's own "open this URL" command; nothing is installed for it. */
async function openBrowser(url: string): Promise<void> {
  const { spawn } = await import("node:child_process");
  const [command, args] =
    process.platform === "darwin"
      ? ["open", [url]]
      : process.platform === "win32"
        ? ["cmd", ["/c", "start", "", url]]
        : ["xdg-open", [url]];
  const child = spawn(command, args as string[], { stdio: "ignore", detached: true });
  child.on("error", () => {});
  child.unref();
}

export function registerStudio(program: Command, run: ActionRunner): void {
  program
    .command("studio")
    .description("a local web page to make, watch, compare and keep videos (on the same journal)")
    .option("--host <host>", "address to listen on (loopback unless you mean otherwise)", "127.0.0.1")
    .option("--port <port>", "port (0 picks a free one)", "0")
    .option("--open", "open the page in the default browser")
    .addHelpText(
      "after",
      [
        "",
        "The printed URL carries a session key: every request needs it (or the cookie it sets).",
        "",
        "Examples:",
        "  dreamina studio --sandbox --open     # offline, no token",
        "  dreamina studio --port 8765",
        exitCodesHelp("studio"),
      ].join("\n"),
    )
    .action((flags: StudioOptions, self: Command) => run(self, (ctx) => runStudio(flags, ctx)));
}

/** Serves the studio until SIGINT/SIGTERM; jobs it started keep their journal rows either way. */
export async function runStudio(flags: StudioOptions, ctx: Factory): Promise<number> {
  const { io } = ctx;
  const port = Number(flags.port);
  if (flags.port.trim() === "" || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new CliError("usage", `--port: invalid value ${JSON.stringify(flags.port)}`);
  }
  const sandbox = Boolean(ctx.options.sandbox);
  // Asked now, so that a missing token is said at start, not at the first submit.
  if (!sandbox) await ctx.token();
  const store = ctx.checkStore();
  const [{ startStudio }, client] = await Promise.all([import("../../studio/index.js"), ctx.client()]);
  const studio = await startStudio({
    client,
    journalPath: storeTarget(store),
    sandbox,
    host: flags.host,
    port,
    timeScale: ctx.timeScale,
    onError: (error) => io.warn(error instanceof Error ? error.message : String(error)),
  });
  if (io.json) io.stdout.write(`${JSON.stringify({ url: studio.url })}\n`);
  else io.out(studio.url);
  io.info(
    `studio at ${studio.origin}${sandbox ? " (sandbox: offline, nothing is billed)" : ""}; ` +
      "open the URL above. Ctrl-C to stop (jobs keep running; `dreamina jobs` lists them)",
  );
  if (!["127.0.0.1", "localhost", "::1"].includes(flags.host)) {
    io.warn(
      `listening on ${flags.host}, beyond this machine: whoever has the URL (with its key) can submit paid jobs`,
    );
  }
  if (flags.open) await openBrowser(studio.url);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
  });
  io.info(`${signal}: stopping the studio`);
  await studio.close();
  return EXIT.ok;
}
