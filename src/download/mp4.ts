// A structural check of an MP4 file: its top-level boxes must parse exactly to the end of the
// file, `ftyp` must come first (after at most a few padding boxes) and a `moov` must exist.
// This catches what a byte count cannot: a body cut short while the server declared no length,
// an HTML error page served with status 200, a file assembled from two different versions.
// Only box headers are read (a few bytes each), never the media.

import { open } from "node:fs/promises";
import { DreaminaError } from "../api/dreamina-error.js";

export interface Mp4Box {
  type: string;
  offset: number;
  size: number;
}

export interface Mp4Summary {
  boxes: Mp4Box[];
  /** The `ftyp` major brand, e.g. `isom`. */
  majorBrand: string;
  /** Whether `moov` comes before `mdat` (fast start: playable while downloading). */
  faststart: boolean;
}

/** A file that is not a whole MP4 (a download turns it into DownloadError `download_not_mp4`). */
export class Mp4StructureError extends DreaminaError {
  static override readonly code: string = "mp4_malformed";
}

/** Boxes that may legitimately precede `ftyp` (none should, but some muxers pad). */
const BEFORE_FTYP = new Set(["free", "skip", "wide"]);
/** A real file has a handful of top-level boxes; a garbage file must not make us loop for long. */
const MAX_BOXES = 10_000;

/** What the first bytes of a file that is not an MP4 most likely are, for the error message. */
export function describeNonMp4(head: Uint8Array): string {
  const text = Buffer.from(head.subarray(0, 64)).toString("latin1").trimStart().toLowerCase();
  if (text.startsWith("<!doctype html") || text.startsWith("<html") || text.startsWith("<head")) {
    return "an HTML page";
  }
  if (text.startsWith("<?xml") || text.startsWith("<error")) return "an XML document";
  if (text.startsWith("{") || text.startsWith("[")) return "JSON";
  if (head.length === 0) return "an empty file";
  return "not an MP4 file";
}

/** Check the structure of the MP4 at `path`; throws {@link Mp4StructureError} with the reason. */
export async function checkMp4File(path: string): Promise<Mp4Summary> {
  const handle = await open(path, "r");
  try {
    const { size } = await handle.stat();
    return await checkMp4Structure(size, async (offset, length) => {
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, offset);
      return buffer.subarray(0, bytesRead);
    });
  } finally {
    await handle.close();
  }
}

/** The same check over any random-access source (`read` may return fewer bytes at the end). */
export async function checkMp4Structure(
  size: number,
  read: (offset: number, length: number) => Promise<Uint8Array>,
): Promise<Mp4Summary> {
  const head = Buffer.from(await read(0, Math.min(size, 64)));
  checkHead(head, size);
  const boxes: Mp4Box[] = [];
  let offset = 0;
  while (offset < size) {
    const box = parseBoxHeader(Buffer.from(await read(offset, 16)), offset, size, boxes.length);
    boxes.push(box);
    offset += box.size;
  }
  const ftyp = boxes.find((b) => b.type === "ftyp");
  const brand = ftyp ? Buffer.from(await read(ftyp.offset + 8, 4)).toString("latin1") : "";
  return summarize(boxes, brand);
}

/**
 * The same check on a file as it streams by, fed its bytes in order from byte 0: only the box
 * headers are looked at, so nothing needs reading back from the disk afterwards.
 */
export class Mp4StreamCheck {
  /** The first bytes, to say what a file that is not an MP4 is. */
  readonly #head = Buffer.alloc(64);
  #headLength = 0;
  /** Bytes seen so far. */
  #position = 0;
  /** Where the next box header starts. */
  #next = 0;
  /** The bytes of that header gathered so far (16 cover a 64-bit size and the ftyp brand). */
  readonly #header = Buffer.alloc(16);
  #headerLength = 0;
  /** A box of size 0 ("to the end of the file") was seen: nothing after it is a header. */
  #toEnd = false;
  readonly #boxes: Mp4Box[] = [];
  #brand = "";
  #error: Mp4StructureError | undefined;

  feed(chunk: Uint8Array): void {
    if (this.#headLength < this.#head.length) {
      const take = Math.min(this.#head.length - this.#headLength, chunk.byteLength);
      this.#head.set(chunk.subarray(0, take), this.#headLength);
      this.#headLength += take;
    }
    let i = 0;
    while (i < chunk.byteLength && !this.#toEnd && this.#error === undefined) {
      const at = this.#position + i;
      if (this.#headerLength === 0 && at < this.#next) {
        i += Math.min(chunk.byteLength - i, this.#next - at);
        continue;
      }
      const take = Math.min(this.#header.length - this.#headerLength, chunk.byteLength - i);
      this.#header.set(chunk.subarray(i, i + take), this.#headerLength);
      this.#headerLength += take;
      i += take;
      if (this.#headerLength === this.#header.length) this.#takeBox(Number.POSITIVE_INFINITY);
    }
    this.#position += chunk.byteLength;
  }

  /** The verdict, once every byte has been fed; throws {@link Mp4StructureError}. */
  finish(): Mp4Summary {
    const size = this.#position;
    checkHead(this.#head.subarray(0, this.#headLength), size);
    while (this.#headerLength > 0 && this.#error === undefined && !this.#toEnd) this.#takeBox(size);
    if (this.#error) throw this.#error;
    const last = this.#boxes.at(-1);
    if (last && this.#toEnd) last.size = size - last.offset;
    if (last && last.offset + last.size > size) throw truncated(last, size);
    return summarize(this.#boxes, this.#brand);
  }

  /** Parses the header gathered at #next (`size`: the file size once known, else infinity). */
  #takeBox(size: number): void {
    try {
      const header = this.#header.subarray(0, this.#headerLength);
      const box = parseBoxHeader(header, this.#next, size, this.#boxes.length);
      this.#boxes.push(box);
      if (box.type === "ftyp" && this.#brand === "" && header.length >= 12 && box.size >= 12) {
        this.#brand = header.toString("latin1", 8, 12);
      }
      if (!Number.isFinite(box.size)) {
        this.#toEnd = true;
        return;
      }
      // Header bytes past this box's end (a box shorter than 16 bytes) start the next header.
      const rest = Math.max(0, this.#headerLength - box.size);
      this.#header.copy(this.#header, 0, this.#headerLength - rest, this.#headerLength);
      this.#headerLength = rest;
      this.#next += box.size;
    } catch (error) {
      this.#error = error as Mp4StructureError;
    }
  }
}

/** A file too short to be an MP4, or one whose first bytes say it is something else. */
function checkHead(head: Uint8Array, size: number): void {
  if (size < 8) throw new Mp4StructureError(`${size} bytes: too short for an MP4 (${describeNonMp4(head)})`);
  const what = describeNonMp4(head);
  if (what !== "not an MP4 file") throw new Mp4StructureError(`this is ${what}, not an MP4`);
}

/**
 * The box whose header starts `header` (8 bytes at least, 16 for a 64-bit size) at `offset` of
 * a file of `size` bytes (infinity while streaming: a size-0 box then gets an infinite size, to
 * be settled at the end). Throws {@link Mp4StructureError} for anything malformed.
 */
function parseBoxHeader(header: Buffer, offset: number, size: number, boxesSoFar: number): Mp4Box {
  if (boxesSoFar >= MAX_BOXES) throw new Mp4StructureError(`more than ${MAX_BOXES} top-level boxes`);
  if (header.length < 8) {
    throw new Mp4StructureError(`${size - offset} stray bytes after the last box at offset ${offset}`);
  }
  const type = header.toString("latin1", 4, 8);
  if (!/^[\x20-\x7e]{4}$/.test(type)) {
    if (offset === 0) throw new Mp4StructureError(`this is ${describeNonMp4(header)}, not an MP4`);
    throw new Mp4StructureError(`unreadable box type at offset ${offset}: the file is damaged`);
  }
  let boxSize = header.readUInt32BE(0);
  let headerSize = 8;
  if (boxSize === 1) {
    if (header.length < 16) throw new Mp4StructureError(`box "${type}" at ${offset} is cut short`);
    const large = header.readBigUInt64BE(8);
    if (large > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new Mp4StructureError(`box "${type}" at ${offset} declares an absurd size`);
    }
    boxSize = Number(large);
    headerSize = 16;
  } else if (boxSize === 0) {
    // "Extends to the end of the file": only meaningful for the last box.
    boxSize = size - offset;
  }
  if (boxSize < headerSize) {
    throw new Mp4StructureError(`box "${type}" at offset ${offset} declares ${boxSize} bytes`);
  }
  const box = { type, offset, size: boxSize };
  if (offset + boxSize > size) throw truncated(box, size);
  return box;
}

function truncated(box: Mp4Box, size: number): Mp4StructureError {
  return new Mp4StructureError(
    `box "${box.type}" at offset ${box.offset} needs ${box.size} bytes but the file ends ` +
      `${box.offset + box.size - size} bytes early: the file is truncated`,
  );
}

/** The rules on the list of top-level boxes: ftyp first, a moov somewhere. */
function summarize(boxes: Mp4Box[], majorBrand: string): Mp4Summary {
  const ftypIndex = boxes.findIndex((b) => b.type === "ftyp");
  if (ftypIndex < 0) throw new Mp4StructureError("no ftyp box: not an MP4");
  if (boxes.slice(0, ftypIndex).some((b) => !BEFORE_FTYP.has(b.type))) {
    throw new Mp4StructureError(`ftyp box is not first (found after "${boxes[0]?.type}")`);
  }
  const moovIndex = boxes.findIndex((b) => b.type === "moov");
  if (moovIndex < 0) throw new Mp4StructureError("no moov box: the MP4 is incomplete or damaged");
  const mdatIndex = boxes.findIndex((b) => b.type === "mdat");
  return { boxes, majorBrand, faststart: mdatIndex < 0 || moovIndex < mdatIndex };
}
