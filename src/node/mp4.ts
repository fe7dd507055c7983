// A structural check of an MP4 file: its top-level boxes must parse exactly to the end of the
// file, `ftyp` must come first (after at most a few padding boxes) and a `moov` must exist.
// This catches what a byte count cannot: a body cut short while the server declared no length,
// an HTML error page served with status 200, a file assembled from two different versions.
// Only box headers are read (a few bytes each), never the media.

import { open } from "node:fs/promises";

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

export class Mp4StructureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Mp4StructureError";
  }
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
  if (size < 8) {
    const head = await read(0, Math.min(size, 64));
    throw new Mp4StructureError(`${size} bytes: too short for an MP4 (${describeNonMp4(head)})`);
  }
  const head = await read(0, 64);
  const what = describeNonMp4(head);
  if (what !== "not an MP4 file") throw new Mp4StructureError(`this is ${what}, not an MP4`);
  const boxes: Mp4Box[] = [];
  let offset = 0;
  while (offset < size) {
    if (boxes.length >= MAX_BOXES) throw new Mp4StructureError(`more than ${MAX_BOXES} top-level boxes`);
    if (size - offset < 8) {
      throw new Mp4StructureError(`${size - offset} stray bytes after the last box at offset ${offset}`);
    }
    const header = Buffer.from(await read(offset, 16));
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
    if (offset + boxSize > size) {
      throw new Mp4StructureError(
        `box "${type}" at offset ${offset} needs ${boxSize} bytes but the file ends ` +
          `${offset + boxSize - size} bytes early: the file is truncated`,
      );
    }
    boxes.push({ type, offset, size: boxSize });
    offset += boxSize;
  }
  const ftypIndex = boxes.findIndex((b) => b.type === "ftyp");
  if (ftypIndex < 0) throw new Mp4StructureError("no ftyp box: not an MP4");
  if (boxes.slice(0, ftypIndex).some((b) => !BEFORE_FTYP.has(b.type))) {
    throw new Mp4StructureError(`ftyp box is not first (found after "${boxes[0]?.type}")`);
  }
  const moovIndex = boxes.findIndex((b) => b.type === "moov");
  if (moovIndex < 0) throw new Mp4StructureError("no moov box: the MP4 is incomplete or damaged");
  const mdatIndex = boxes.findIndex((b) => b.type === "mdat");
  const ftyp = boxes[ftypIndex]!;
  const brand = Buffer.from(await read(ftyp.offset + 8, 4)).toString("latin1");
  return { boxes, majorBrand: brand, faststart: mdatIndex < 0 || moovIndex < mdatIndex };
}
