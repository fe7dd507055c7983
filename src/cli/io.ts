// How every command talks to the user: results on stdout, progress and diagnostics on
// stderr, one JSON document with --json, colour only on a terminal and without NO_COLOR.

import { styleText } from "node:util";
import { redactSecrets } from "../api/redact.js";

export interface GlobalOptions {
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  baseUrl?: string;
  sandbox?: boolean;
  journal?: string;
  token?: string;
}

export class Io {
  readonly json: boolean;
  readonly quiet: boolean;
  readonly verbose: boolean;
  readonly stdout: NodeJS.WriteStream;
  readonly stderr: NodeJS.WriteStream;
  /** Whether live (redrawn) progress may be drawn on stderr. */
  readonly live: boolean;
  readonly color: boolean;

  constructor(options: GlobalOptions, stdout = process.stdout, stderr = process.stderr) {
    this.json = Boolean(options.json);
    this.quiet = Boolean(options.quiet);
    this.verbose = Boolean(options.verbose);
    this.stdout = stdout;
    this.stderr = stderr;
    this.live = Boolean(stderr.isTTY) && !this.quiet && process.env.TERM !== "dumb";
    this.color = Boolean(stderr.isTTY) && !("NO_COLOR" in process.env) && process.env.TERM !== "dumb";
  }

  /** A result line for humans (stdout); suppressed with --json. */
  out(line: string): void {
    if (!this.json) this.stdout.write(`${redactSecrets(line)}\n`);
  }

  /** The one JSON document of a --json run. */
  result(value: unknown): void {
    this.stdout.write(`${JSON.stringify(redactSecrets(value), null, 2)}\n`);
  }

  /** Progress and notes (stderr); suppressed with -q. */
  info(line: string): void {
    if (!this.quiet) this.stderr.write(`${redactSecrets(line)}\n`);
  }

  debug(line: string): void {
    if (this.verbose) this.stderr.write(`${redactSecrets(line)}\n`);
  }

  /** Errors always reach stderr, even with -q. */
  error(line: string): void {
    this.stderr.write(`${this.style("red", "error:")} ${redactSecrets(line)}\n`);
  }

  warn(line: string): void {
    if (!this.quiet) this.stderr.write(`${this.style("yellow", "warning:")} ${redactSecrets(line)}\n`);
  }

  style(format: Parameters<typeof styleText>[0], text: string): string {
    return this.color ? styleText(format, text) : text;
  }
}
