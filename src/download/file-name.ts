// The file name of a download: from the URL, sanitised, and free in the folder (claimed so that
// two downloads never pick the same one).

import { readFile } from "node:fs/promises";
import { basename, extname, join } from "node:path";
import { checkFileTarget, lockOutputFile, OutputError } from "./output.js";
import { exists, type PartMeta } from "./part-file.js";

const WINDOWS_RESERVED = /^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$/i;
const MAX_NAME_BYTES = 200;

/**
 * A safe file name from untrusted text: no path separators or traversal, no control or bidi
 * characters, not hidden, not empty, not a Windows device name, at most 200 bytes, and (unless
 * `ensureExt` is empty) ending in `.mp4`.
 */
export function sanitizeFileName(raw: string, ensureExt = ".mp4", fallback = "video"): string {
  let name = raw
    .normalize("NFC")
    .replace(/[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g, "")
    .replace(/[/\\<>:"|?*]/g, "_")
    .trim();
  // No leading dots (hidden files, "..") and no trailing dots or spaces (Windows drops them).
  name = name.replace(/^[.\s]+/, "").replace(/[.\s]+$/, "");
  if (WINDOWS_RESERVED.test(name)) name = `_${name}`;
  if (name === "" || name === "_") name = fallback;
  if (ensureExt && !name.toLowerCase().endsWith(ensureExt.toLowerCase())) name += ensureExt;
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) {
    const ext = extname(name);
    let stem = name.slice(0, name.length - ext.length);
    while (Buffer.byteLength(stem + ext) > MAX_NAME_BYTES) stem = Array.from(stem).slice(0, -1).join("");
    name = stem + ext;
  }
  return name;
}

/** The sanitized last path segment of `url`. */
export function fileNameFromUrl(url: string | URL, ensureExt = ".mp4"): string {
  let segment = "";
  try {
    const parsed = typeof url === "string" ? new URL(url) : url;
    segment =
      parsed.pathname
        .split("/")
        .filter((s) => s !== "")
        .pop() ?? "";
  } catch {}
  let decoded = segment;
  try {
    decoded = decodeURIComponent(segment);
  } catch {}
  // A decoded segment may contain "/" or "\" (from %2F): keep only its last part.
  decoded = decoded.split(/[/\\]/).pop() ?? "";
  return sanitizeFileName(decoded, ensureExt);
}

/**
 * A name in `dir` for the video at `url` (from the URL), claimed for this process. Without
 * `force` a name that is taken (a file, a link, another download's `.part` or claim) is skipped
 * for "name (1).mp4" and so on; with it the URL's name is used, and must be a regular file if
 * anything is there.
 */
export async function chooseNameIn(
  dir: string,
  url: URL,
  force: boolean,
  expectMp4: boolean,
): Promise<{ path: string; lock: { release(): Promise<void> } }> {
  const name = fileNameFromUrl(url, expectMp4 ? ".mp4" : "");
  const first = join(dir, name);
  if (force) {
    await checkFileTarget(first, true);
    return { path: first, lock: await lockOutputFile(first) };
  }
  const ext = extname(name);
  const stem = basename(name, ext);
  for (let n = 0; n < 10_000; n++) {
    const candidate = n === 0 ? first : join(dir, `${stem} (${n})${ext}`);
    if ((await exists(candidate)) || (await partOfAnotherUrl(candidate, url.href))) continue;
    try {
      return { path: candidate, lock: await lockOutputFile(candidate) };
    } catch (error) {
      if (error instanceof OutputError && error.code === "busy") continue;
      throw error;
    }
  }
  throw new OutputError("exists", `no free name for ${name} in ${dir}`, dir);
}

/** Whether `<path>.part` is another URL's download in progress (or left over): not ours to take. */
async function partOfAnotherUrl(path: string, url: string): Promise<boolean> {
  try {
    const meta = JSON.parse(await readFile(`${path}.part.json`, "utf8")) as PartMeta;
    return meta.url !== url;
  } catch {
    // No metadata: a small download in progress (or left over) whose URL we cannot know.
    return exists(`${path}.part`);
  }
}
