// A report written as it is produced, never held whole: text goes to a temporary file in the
// same folder (in chunks of about 64 KB), which is flushed to disk and then renamed into place,
// so a reader sees the old report or the new one, never half of one. A failure (a full disk)
// removes the temporary file.

import { type FileHandle, open, rename, rm } from "node:fs/promises";

const CHUNK = 64 * 1024;

/** Writes `path` atomically from what `produce` passes to `write`, in order. */
export async function writeAtomically(
  path: string,
  produce: (write: (text: string) => Promise<void>) => Promise<void>,
): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  let handle: FileHandle | undefined;
  try {
    handle = await open(tmp, "w");
    const file = handle;
    let parts: string[] = [];
    let pending = 0;
    const flush = async () => {
      if (parts.length === 0) return;
      const bytes = Buffer.from(parts.join(""), "utf8");
      parts = [];
      pending = 0;
      for (let at = 0; at < bytes.length; ) {
        at += (await file.write(bytes, at, bytes.length - at)).bytesWritten;
      }
    };
    await produce(async (text) => {
      parts.push(text);
      pending += text.length;
      if (pending >= CHUNK) await flush();
    });
    await flush();
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(tmp, path);
  } catch (error) {
    // A full disk leaves a truncated temporary file: never left behind.
    await handle?.close().catch(() => {});
    await rm(tmp, { force: true }).catch(() => {});
    throw error;
  }
}
