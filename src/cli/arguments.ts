// Arguments and flags that several commands share, checked the same way everywhere: a request
// id (status, result, cancel, wait, jobs show) and the prompt (run, submit, validate).

import { InvalidArgumentError } from "commander";
import { isRequestId, REQUEST_ID_RULE } from "../api/request-id.js";
import { CliError, inputFileError } from "./cli-error.js";

/**
 * Commander's parser for a request id argument: a malformed one is a usage error (64) caught
 * while the command line is parsed, before anything is opened or sent.
 */
export function requestIdArgument(value: string): string {
  if (!isRequestId(value)) {
    throw new InvalidArgumentError(
      `request ids match ${REQUEST_ID_RULE} (1 to 128 letters, digits, _ or -).`,
    );
  }
  return value;
}

export interface PromptFlags {
  prompt?: string;
  promptFile?: string;
}

/** Far more than any prompt (at most 800 characters); reading stops here (a wrong path to a huge file, /dev/zero). */
const MAX_PROMPT_FILE_BYTES = 64 * 1024;

/**
 * The prompt from --prompt or --prompt-file (read as UTF-8, surrounding whitespace trimmed; a
 * pipe such as `<(...)` works too), or undefined when neither was given. Both at once is a
 * usage error; a prompt file that cannot be read is an unreadable input (66), like an image.
 */
export async function readPrompt(flags: PromptFlags): Promise<string | undefined> {
  if (flags.prompt !== undefined && flags.promptFile !== undefined) {
    throw new CliError("usage", "give either --prompt or --prompt-file, not both");
  }
  if (flags.promptFile === undefined) return flags.prompt;
  const { open } = await import("node:fs/promises");
  let bytes: Buffer;
  try {
    const handle = await open(flags.promptFile, "r");
    try {
      const buffer = Buffer.alloc(MAX_PROMPT_FILE_BYTES + 1);
      let length = 0;
      for (;;) {
        const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
        if (bytesRead === 0) break;
        length += bytesRead;
        if (length > MAX_PROMPT_FILE_BYTES) break;
      }
      bytes = buffer.subarray(0, length);
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw inputFileError("--prompt-file", flags.promptFile, error);
  }
  if (bytes.length > MAX_PROMPT_FILE_BYTES) {
    throw new CliError(
      "bad_data",
      `--prompt-file ${flags.promptFile} is larger than ${MAX_PROMPT_FILE_BYTES} bytes; a prompt is at most 800 characters`,
    );
  }
  return bytes.toString("utf8").trim();
}
