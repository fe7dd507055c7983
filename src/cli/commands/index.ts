// Every command, one module each: an options type, one `runX(options, ctx)` and a `registerX`
// that declares its flags to commander. Modules load light; each action imports what it needs.

import type { Command } from "commander";
import type { ActionRunner } from "../action.js";
import { registerBatch } from "./batch.js";
import { registerCancel } from "./cancel.js";
import { registerJobs } from "./jobs.js";
import { registerResult } from "./result.js";
import { registerRun } from "./run.js";
import { registerSandbox } from "./sandbox.js";
import { registerStatus } from "./status.js";
import { registerStore } from "./store.js";
import { registerStudio } from "./studio.js";
import { registerSubmit } from "./submit.js";
import { registerValidate } from "./validate.js";
import { registerWait } from "./wait.js";

/** In the order --help lists them (the order they always had). */
export function registerCommands(program: Command, run: ActionRunner): void {
  registerRun(program, run);
  registerSubmit(program, run);
  registerWait(program, run);
  registerStatus(program, run);
  registerResult(program, run);
  registerCancel(program, run);
  registerJobs(program, run);
  registerBatch(program, run);
  registerSandbox(program, run);
  registerValidate(program, run);
  registerStudio(program, run);
  registerStore(program, run);
}
