// How every command talks to the user: results on stdout, progress and diagnostics on
// stderr, one JSON document with --json, colour only on a terminal and without NO_COLOR.
// Everything printed for people passes through `printable`: secrets redacted, and control
// characters from prompts, file names or the service shown as escapes instead of obeyed.

import { styleText } from "node:util";
import { redactSecrets } from "../api/redact.js";

export interface GlobalOptions {
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  baseUrl?: string;
  sandbox?: boolean;
  journal?: string;
  /** A PostgreSQL URL or a SQLite path (see store-spec.ts). */
  store?: string;
  token?: string;
}

export type StyleFormat = Parameters<typeof styleText>[0];

/** A piece of a line to colour. Only Io turns it into escape sequences, after the text is made printable. */
export interface Styled {
  readonly format: StyleFormat;
  readonly text: string;
}

/** A line: plain text, or plain and styled pieces. */
export type Line = string | readonly (string | Styled)[];

// C0 controls but tab and newline, DEL, C1 controls (a lone 0x9b is a CSI on some terminals),
// and the bidirectional overrides that can reorder what is shown.
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const CONTROL_OR_LINE_BREAK = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

function escapeControl(char: string): string {
  const named = NAMED[char];
  if (named) return named;
  const code = char.charCodeAt(0);
  return code < 0x100
    ? `\\x${code.toString(16).padStart(2, "0")}`
    : `\\u${code.toString(16).padStart(4, "0")}`;
}

/**
 * Text that is safe to show on a terminal: secrets (tokens, URL passwords) redacted and
 * control characters written as escapes (`\x1b`, `\u202e`). Newlines and tabs are kept
 * unless `inline` (a one-line field), where they are escaped too.
 */
export function printable(text: string, options: { inline?: boolean } = {}): string {
  const redacted = redactSecrets(text);
  return redacted.replace(options.inline ? CONTROL_OR_LINE_BREAK : CONTROL, escapeControl);
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

  constructor(
    options: GlobalOptions,
    stdout: NodeJS.WriteStream = process.stdout,
    stderr: NodeJS.WriteStream = process.stderr,
  ) {
    this.json = Boolean(options.json);
    this.quiet = Boolean(options.quiet);
    this.verbose = Boolean(options.verbose);
    this.stdout = stdout;
    this.stderr = stderr;
    this.live = Boolean(stderr.isTTY) && !this.quiet && process.env.TERM !== "dumb";
    this.color = Boolean(stderr.isTTY) && !("NO_COLOR" in process.env) && process.env.TERM !== "dumb";
  }

  /** A result line for humans (stdout); suppressed with --json. */
  out(line: Line): void {
    if (!this.json) this.stdout.write(`${this.#render(line)}\n`);
  }

  /** The one JSON document of a --json run (JSON escapes control characters by itself). */
  result(value: unknown): void {
    // The value pass reaches plain objects; the text pass whatever a toJSON() produced.
    this.stdout.write(`${redactSecrets(JSON.stringify(redactSecrets(value), null, 2))}\n`);
  }

  /** Progress and notes (stderr); suppressed with -q. */
  info(line: Line): void {
    if (!this.quiet) this.stderr.write(`${this.#render(line)}\n`);
  }

  debug(line: Line): void {
    if (this.verbose) this.stderr.write(`${this.#render(line)}\n`);
  }

  /** Errors always reach stderr, even with -q. */
  error(line: Line): void {
    this.stderr.write(`${this.#render([this.styled("red", "error:"), " ", ...pieces(line)])}\n`);
  }

  warn(line: Line): void {
    if (!this.quiet) {
      this.stderr.write(`${this.#render([this.styled("yellow", "warning:"), " ", ...pieces(line)])}\n`);
    }
  }

  /** A piece of a line to show in colour (when colour is on). */
  styled(format: StyleFormat, text: string): Styled {
    return { format, text };
  }

  #render(line: Line): string {
    return pieces(line)
      .map((piece) => {
        if (typeof piece === "string") return printable(piece);
        const text = printable(piece.text);
        return this.color ? styleText(piece.format, text) : text;
      })
      .join("");
  }
}

function pieces(line: Line): readonly (string | Styled)[] {
  return typeof line === "string" ? [line] : line;
}
