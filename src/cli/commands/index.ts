import type { Command } from "commander";
import type { ActionRunner } from "../main.js";
import { registerRequestCommands } from "./requests.js";
import { registerSandbox } from "./sandbox.js";

/** Each command module declares its flags here; its action imports what it needs lazily. */
export function registerCommands(program: Command, run: ActionRunner): void {
  registerRequestCommands(program, run);
  registerSandbox(program, run);
}
