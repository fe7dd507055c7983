// Every image of a batch checked once (checkImage: header, rules, full decode), from
// validation to the last submit. A local file is known by its identity (device, inode, size,
// mtime and ctime, in nanoseconds), however it is spelled: a file used by 100 rows, or by two
// paths through a symlink, is read, sniffed and decoded once, and a file changed since it was
// checked has a new identity, so it is checked again (nothing stale is ever sent). The file
// the probe opened must be the one stat'ed, or its verdict is not kept. URLs and data URIs
// are known by their text.
//
// What is held: every checked image's verdict without its bytes (a few hundred bytes each),
// and, within a budget, the bytes or the data URI built from them, so rows sending the same
// image share one string. An image whose bytes were let go is checked again when next sent,
// as the price of a bounded memory.

import { statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type CheckedImage, checkImage, withoutBytes } from "../image/check.js";
import { toDataUri } from "../image/prepare-input.js";
import { ImageProbeError, type ProbeOptions } from "../image/probe.js";
import { identityFromStat } from "../image/probe-core.js";

interface Entry {
  /** Where it is kept in the maps (see keyOf). */
  key: string;
  /** The file identity stat'ed before the check ("" for a URL or a data URI). */
  identity: string;
  checked: Promise<CheckedImage>;
  /** Set once checked: the bytes (until the first data URI is built), then the data URI. */
  bytes?: Uint8Array | undefined;
  imageUrl?: string | undefined;
  /** What the payload counted for in the budget when it was last accounted. */
  heldWeight?: number;
}

export interface ImageCacheOptions {
  /** Images whose bytes or data URI are held. Default 64. */
  maxEntries?: number;
  /** Bytes (or data URI characters) held in all. Default 64 Mi. */
  maxChars?: number;
  /** Verdicts held (without bytes). Default 100,000. */
  maxVerdicts?: number;
}

export class ImageCache {
  readonly #entries = new Map<string, Entry>();
  /** Entries holding bytes or a data URI, oldest first. */
  readonly #held = new Map<string, Entry>();
  readonly #maxEntries: number;
  readonly #maxChars: number;
  readonly #maxVerdicts: number;
  #chars = 0;

  constructor(options: ImageCacheOptions = {}) {
    this.#maxEntries = options.maxEntries ?? 64;
    this.#maxChars = options.maxChars ?? 64 * 1024 * 1024;
    this.#maxVerdicts = options.maxVerdicts ?? 100_000;
  }

  /** Images whose bytes or data URI are held. */
  get size(): number {
    return this.#held.size;
  }

  /**
   * The checked image for `source` (a path, a file: URL, a URL, a data URI), checked now unless
   * an unchanged one is known. Rejects with the probe's error, as checkImage does.
   */
  check(source: string, options: ProbeOptions = {}): Promise<CheckedImage> {
    return this.#entry(source, options, false).checked;
  }

  /**
   * The image URL to send (the URL, or the data URI shared by every row) and its verdict. An
   * image whose bytes were let go is checked again: what is sent is always what was checked.
   * Only for an image the rules accept (one they refuse was not kept in memory).
   */
  async imageUrl(
    source: string,
    options: ProbeOptions = {},
  ): Promise<{ checked: CheckedImage; url: string }> {
    let entry = this.#entry(source, options, false);
    let checked = await entry.checked;
    if (checked.url !== undefined) return { checked, url: checked.url };
    if (entry.imageUrl === undefined && entry.bytes === undefined) {
      entry = this.#entry(source, options, true);
      checked = await entry.checked;
    }
    let url = entry.imageUrl;
    if (url === undefined) {
      if (entry.bytes === undefined) {
        // Refused by the rules (never read whole), or a file that keeps changing under us.
        throw new ImageProbeError("truncated", `${checked.source} changed while it was being read`, {
          source: checked.source,
        });
      }
      // Built for the first row that sends it; the bytes are let go for the string.
      url = toDataUri(entry.bytes, checked.facts.format);
      entry.imageUrl = url;
      entry.bytes = undefined;
      this.#account(entry.key, entry);
    }
    this.#touch(entry.key, entry);
    return { checked, url };
  }

  clear(): void {
    this.#entries.clear();
    this.#held.clear();
    this.#chars = 0;
  }

  #entry(source: string, options: ProbeOptions, fresh: boolean): Entry {
    const { key, identity } = keyOf(source);
    const known = this.#entries.get(key);
    if (known && !fresh) return known;
    if (known) this.#drop(key, known);
    const entry: Entry = { key, identity: identity ?? "", checked: Promise.resolve(undefined as never) };
    entry.checked = checkImage(source, { ...options, keepBytes: "if-valid" }).then(
      (checked) => {
        if (this.#entries.get(key) !== entry) return withoutBytes(checked);
        if (identity !== undefined && checked.probe.fileIdentity !== identity) {
          // The file changed between the stat and the read: this verdict is this caller's
          // only, never one for the identity stat'ed.
          this.#drop(key, entry);
        } else {
          entry.bytes = checked.bytes;
          this.#account(key, entry);
        }
        return withoutBytes(checked);
      },
      (error: unknown) => {
        // An abort says nothing about the image: the next caller checks it again.
        if (options.signal?.aborted && this.#entries.get(key) === entry) this.#drop(key, entry);
        throw error;
      },
    );
    // Settled by whoever awaits it; never an unhandled rejection for a cached failure.
    entry.checked.catch(() => {});
    this.#entries.set(key, entry);
    if (this.#entries.size > this.#maxVerdicts) {
      const [oldest, value] = this.#entries.entries().next().value as [string, Entry];
      this.#drop(oldest, value);
    }
    return entry;
  }

  /** Counts the entry's payload against the budget, letting go of the oldest held ones. */
  #account(key: string, entry: Entry): void {
    if (this.#held.get(key) === entry) {
      this.#held.delete(key);
      this.#chars -= entry.heldWeight ?? 0;
    }
    const weight = entry.imageUrl?.length ?? entry.bytes?.length ?? 0;
    if (weight === 0 || weight > this.#maxChars / 4) {
      // Too big to share (or nothing to hold): the next row checks it again.
      entry.bytes = undefined;
      entry.imageUrl = undefined;
      entry.heldWeight = 0;
      return;
    }
    entry.heldWeight = weight;
    this.#held.set(key, entry);
    this.#chars += weight;
    for (const [key, value] of this.#held) {
      if (this.#held.size <= this.#maxEntries && this.#chars <= this.#maxChars) break;
      this.#release(key, value);
    }
  }

  #touch(key: string, entry: Entry): void {
    if (this.#held.get(key) !== entry) return;
    this.#held.delete(key);
    this.#held.set(key, entry);
  }

  #release(key: string, entry: Entry): void {
    if (this.#held.get(key) === entry) {
      this.#held.delete(key);
      this.#chars -= entry.heldWeight ?? 0;
    }
    entry.bytes = undefined;
    entry.imageUrl = undefined;
    entry.heldWeight = 0;
  }

  #drop(key: string, entry: Entry): void {
    this.#release(key, entry);
    if (this.#entries.get(key) === entry) this.#entries.delete(key);
  }
}

/**
 * Where an image's verdict is kept: a local file by its identity (however it is spelled: a
 * symlink, a second path), anything else by its text and, for a path that could not be
 * stat'ed, why (a file that appears later is checked then). Synchronous on purpose: one stat
 * takes microseconds, less than sending it to the libuv pool (a cost paid on every row).
 */
function keyOf(source: string): { key: string; identity?: string } {
  const text = source.trim();
  const other = (state: string) => ({ key: `${state}\0${source}` });
  if (/^data:/i.test(text) || /^https?:\/\//i.test(text)) return other("text");
  let path = source;
  if (/^file:/i.test(text)) {
    try {
      path = fileURLToPath(text);
    } catch {
      return other("text");
    }
  } else if (/^[a-z][a-z0-9+.-]+:\/\//i.test(text)) {
    return other("text");
  }
  try {
    const s = statSync(path, { bigint: true, throwIfNoEntry: false });
    if (!s) return other("absent");
    if (!s.isFile()) return other("not-a-file");
    const identity = identityFromStat(s);
    return { key: `file:${identity}`, identity };
  } catch {
    return other("unreadable");
  }
}
