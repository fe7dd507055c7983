import type { Command } from "commander";
import type { ActionRunner } from "../main.js";
import { registerBatch } from "./batch.js";
import { registerJobs } from "./jobs.js";
import { registerRequestCommands } from "./requests.js";
import { registerRunCommands } from "./run.js";
import { registerSandbox } from "./sandbox.js";
import { registerStudio } from "./studio.js";
import { registerValidate } from "./validate.js";

/** Each command module declares its flags here; its action imports what it needs lazily. */
export function registerCommands(program: Command, run: ActionRunner): void {
  registerRunCommands(program, run);
  registerRequestCommands(program, run);
  registerJobs(program, run);
  registerBatch(program, run);
  registerSandbox(program, run);
  registerValidate(program, run);
  registerStudio(program, run);
}
