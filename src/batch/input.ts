// The model input for one row, built at submit time (not during validation, so a 10,000-row
// batch never holds 10,000 data URIs): prepareInput turns a local image into a data URI and
// re-checks every rule against what will actually be sent.
//
// A batch often sends the same few images in many rows. With a RowInputCache, a local image
// whose file is unchanged since it was last read (same device, inode, size, mtime and ctime,
// nanoseconds) is not read, probed and base64-encoded again: its data URI (one string, shared
// by every row that sends it) and its probe facts are reused, and the row's whole input is
// still validated against those facts before anything is sent.

import { statSync } from "node:fs";
import { prepareInput } from "../image/prepare-input.js";
import { type Frames, withDefaults } from "../model/input.js";
import { type ImageFacts, validate } from "../model/validate.js";
import { PreflightError } from "../run/errors.js";
import type { ManifestRow } from "./manifest.js";

interface CachedImage {
  /** dev:ino:size:mtimeNs:ctimeNs of the file when it was read. */
  identity: string;
  imageUrl: string;
  facts: ImageFacts;
  warnings: string[];
}

/** Local images already turned into data URIs, by path (most recently used last). */
export class RowInputCache {
  readonly #images = new Map<string, CachedImage>();
  readonly #maxEntries: number;
  readonly #maxChars: number;
  #chars = 0;

  /** Default: at most 64 images and 64 M characters of data URIs held. */
  constructor(options: { maxEntries?: number; maxChars?: number } = {}) {
    this.#maxEntries = options.maxEntries ?? 64;
    this.#maxChars = options.maxChars ?? 64 * 1024 * 1024;
  }

  get size(): number {
    return this.#images.size;
  }

  get(path: string, identity: string): CachedImage | undefined {
    const hit = this.#images.get(path);
    if (!hit) return undefined;
    this.#images.delete(path);
    if (hit.identity !== identity) {
      this.#chars -= hit.imageUrl.length;
      return undefined;
    }
    this.#images.set(path, hit);
    return hit;
  }

  set(path: string, image: CachedImage): void {
    const old = this.#images.get(path);
    if (old) {
      this.#images.delete(path);
      this.#chars -= old.imageUrl.length;
    }
    if (image.imageUrl.length > this.#maxChars / 4) return;
    this.#images.set(path, image);
    this.#chars += image.imageUrl.length;
    for (const [key, value] of this.#images) {
      if (this.#images.size <= this.#maxEntries && this.#chars <= this.#maxChars) break;
      this.#images.delete(key);
      this.#chars -= value.imageUrl.length;
    }
  }

  clear(): void {
    this.#images.clear();
    this.#chars = 0;
  }
}

export async function prepareRowInput(
  row: ManifestRow,
  options: { signal?: AbortSignal | undefined; cache?: RowInputCache | undefined } = {},
) {
  const path = options.cache && isPlainPath(row) ? row.imageSource : undefined;
  let identity: string | undefined;
  if (path !== undefined && options.cache) {
    identity = fileIdentity(path);
    const hit = identity === undefined ? undefined : options.cache.get(path, identity);
    if (hit) return inputFromCache(row, hit);
  }
  const prepared = await prepareInput(
    {
      prompt: row.prompt,
      image: row.imageSource,
      ...(row.seed === undefined ? {} : { seed: row.seed }),
      ...(row.frames === undefined ? {} : { frames: row.frames as Frames }),
    },
    options.signal ? { signal: options.signal } : {},
  );
  // The image may have changed since validation: nothing invalid is ever sent.
  if (!prepared.report.valid) throw new PreflightError(prepared.report);
  const imageUrl = prepared.input.image_urls[0];
  if (path !== undefined && identity !== undefined && options.cache && typeof imageUrl === "string") {
    // The identity is the one taken BEFORE the file was read: a change while it was read makes
    // the next row miss and read it again.
    const image = prepared.image;
    options.cache.set(path, {
      identity,
      imageUrl,
      facts: {
        format: image.format,
        width: image.width,
        height: image.height,
        sizeBytes: image.sizeBytes,
        orientation: image.orientation,
        source: image.source,
      },
      warnings: [...image.warnings],
    });
  }
  return prepared.input;
}

/** What prepareInput would build for this row, from an image read for an earlier row. */
function inputFromCache(row: ManifestRow, image: CachedImage) {
  const input = withDefaults({
    prompt: row.prompt,
    image_urls: [image.imageUrl],
    ...(row.seed === undefined ? {} : { seed: row.seed }),
    ...(row.frames === undefined ? {} : { frames: row.frames as Frames }),
  });
  const report = validate(input, { image: image.facts });
  if (!report.valid) {
    for (const warning of image.warnings) {
      report.warnings.push({ path: "image_urls[0]", rule: "probe", message: warning });
    }
    throw new PreflightError(report);
  }
  return input;
}

/** A local path that prepareInput reads as a file (not a URL, a data URI or a file: URL). */
function isPlainPath(row: ManifestRow): boolean {
  if (row.imageIsUrl) return false;
  const text = row.imageSource.trim();
  return text !== "" && !/^(data|file):/i.test(text) && !/^[a-z][a-z0-9+.-]+:\/\//i.test(text);
}

/**
 * Synchronous on purpose: one stat of a local file takes microseconds, far less than sending
 * it to the libuv pool and waking a thread for it (a cost paid on every row).
 */
function fileIdentity(path: string): string | undefined {
  try {
    const s = statSync(path, { bigint: true, throwIfNoEntry: false });
    if (!s) return undefined;
    if (!s.isFile()) return undefined;
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch {
    // prepareInput reports the error.
    return undefined;
  }
}
