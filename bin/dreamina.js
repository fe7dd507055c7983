#!/usr/bin/env node
// Thin launcher: everything lives in the compiled CLI module.
import { main } from "../dist/cli/main.js";

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`dreamina: ${err?.stack ?? err}\n`);
    process.exitCode = 1;
  },
);
