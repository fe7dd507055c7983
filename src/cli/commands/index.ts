import type { Command } from "commander";
import type { ActionRunner } from "../main.js";

/** Each command module declares its flags here; its action imports what it needs lazily. */
export function registerCommands(program: Command, run: ActionRunner): void {
  void program;
  void run;
}
