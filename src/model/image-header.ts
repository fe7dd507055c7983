// What an image is, from its first bytes only: the format by magic bytes (never by file
// name or Content-Type, which lie), and for JPEG and PNG the stored width and height.
// Pure and runtime-neutral, so a probe can feed it a growing prefix and stop reading as
// soon as it says "complete". A JPEG whose metadata segments push the frame header far in
// is walked segment by segment instead (`sniffJpegFrom`): a reader seeks past each segment
// and never holds more than one segment's worth of bytes.

export type ImageFormat =
  | "jpeg"
  | "png"
  | "webp"
  | "gif"
  | "heic"
  | "avif"
  | "tiff"
  | "bmp"
  | "svg"
  | "html"
  | "text"
  | "unknown";

/**
 * - `complete`: everything this parser can learn is in the bytes given.
 * - `need_more`: the header goes on past the bytes given; `needBytes` says how far (a lower bound).
 * - `truncated`: the bytes were declared final but the header is not complete.
 * - `corrupt`: the structure is wrong (a bad marker, a missing IHDR...); `problem` says what.
 */
export type HeaderStatus = "complete" | "need_more" | "truncated" | "corrupt";

export interface ImageHeader {
  format: ImageFormat;
  status: HeaderStatus;
  /** Stored width (before any EXIF orientation). */
  width?: number;
  height?: number;
  /** EXIF orientation 1..8 (JPEG only), when an EXIF block says so. */
  orientation?: number;
  /** JPEG: SOF2/6/10/14 (progressive). */
  progressive?: boolean;
  /** PNG bits per sample; JPEG sample precision. */
  bitDepth?: number;
  /** PNG colour type (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA). */
  colorType?: number;
  /** PNG colour type 4/6 (tRNS is not looked for); WebP VP8X alpha flag. */
  hasAlpha?: boolean;
  /**
   * When `status` is `need_more`: the absolute offset the bytes must reach. For a prefix
   * (every format but a resumed JPEG), the prefix length worth supplying.
   */
  needBytes?: number;
  /**
   * JPEG `need_more`: where the walk goes on (see `sniffJpegFrom`), so that the bytes before
   * `resume.at` need not be kept.
   */
  resume?: JpegCursor;
  problem?: string;
}

/** Where a JPEG header walk stopped: the next marker segment, and what was learnt before it. */
export interface JpegCursor {
  /** Absolute offset of the next marker (or of the fill bytes before it). */
  at: number;
  orientation?: number | undefined;
}

export interface SniffOptions {
  /** The bytes are the whole file: an incomplete header is `truncated`, not `need_more`. */
  final?: boolean;
}

/**
 * The longest prefix a probe keeps for a format whose header is at its start (every format but
 * JPEG, whose segment chain is walked with `sniffJpegFrom` instead of being held).
 */
export const MAX_HEADER_BYTES = 1024 * 1024;

export function sniffImage(bytes: Uint8Array, options: SniffOptions = {}): ImageHeader {
  return finalise(sniff(bytes), bytes.length, options);
}

/**
 * Goes on with a JPEG header walk from `cursor` (a `resume` of an earlier result), given a
 * window of the file that starts at absolute offset `windowStart` (at most `cursor.at`).
 * Offsets in the result (`needBytes`, `resume.at`, problems) are absolute.
 */
export function sniffJpegFrom(
  window: Uint8Array,
  windowStart: number,
  cursor: JpegCursor,
  options: SniffOptions = {},
): ImageHeader {
  if (windowStart > cursor.at) throw new RangeError("the window starts after the cursor");
  return finalise(walkJpeg(window, windowStart, cursor), windowStart + window.length, options);
}

function finalise(header: ImageHeader, end: number, options: SniffOptions): ImageHeader {
  if (header.status === "need_more" && options.final) {
    const { resume: _resume, ...rest } = header;
    return {
      ...rest,
      status: "truncated",
      problem:
        header.problem ??
        `the data ends after ${end} bytes, before the ${header.format === "unknown" ? "file signature" : `${header.format.toUpperCase()} header`} is complete`,
    };
  }
  return header;
}

/** Human name of a format for messages. */
export function formatName(format: ImageFormat): string {
  const names: Record<ImageFormat, string> = {
    jpeg: "JPEG",
    png: "PNG",
    webp: "WebP",
    gif: "GIF",
    heic: "HEIC/HEIF",
    avif: "AVIF",
    tiff: "TIFF",
    bmp: "BMP",
    svg: "SVG",
    html: "HTML",
    text: "text",
    unknown: "unknown",
  };
  return names[format];
}

function startsWith(bytes: Uint8Array, signature: readonly number[], at = 0): boolean {
  if (bytes.length < at + signature.length) return false;
  for (let i = 0; i < signature.length; i++) if (bytes[at + i] !== signature[i]) return false;
  return true;
}

function ascii(bytes: Uint8Array, at: number, length: number): string {
  let s = "";
  for (let i = at; i < at + length && i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

const u16be = (b: Uint8Array, i: number) => (b[i]! << 8) | b[i + 1]!;
const u16le = (b: Uint8Array, i: number) => b[i]! | (b[i + 1]! << 8);
const u24le = (b: Uint8Array, i: number) => b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16);
const u32be = (b: Uint8Array, i: number) =>
  ((b[i]! << 24) >>> 0) + ((b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!);
const u32le = (b: Uint8Array, i: number) =>
  ((b[i + 3]! << 24) >>> 0) + ((b[i + 2]! << 16) | (b[i + 1]! << 8) | b[i]!);

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] as const;
/** Enough bytes to tell every format above apart (ftyp brands, RIFF chunk, markup). */
const SIGNATURE_BYTES = 32;

function sniff(bytes: Uint8Array): ImageHeader {
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return sniffJpeg(bytes);
  if (startsWith(bytes, PNG_SIGNATURE)) return sniffPng(bytes);
  if (ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 4) === "WEBP") return sniffWebp(bytes);
  if (ascii(bytes, 0, 6) === "GIF87a" || ascii(bytes, 0, 6) === "GIF89a") {
    if (bytes.length < 10) return { format: "gif", status: "need_more", needBytes: 10 };
    return { format: "gif", status: "complete", width: u16le(bytes, 6), height: u16le(bytes, 8) };
  }
  if (startsWith(bytes, [0x49, 0x49, 0x2a, 0x00]) || startsWith(bytes, [0x4d, 0x4d, 0x00, 0x2a])) {
    return { format: "tiff", status: "complete" };
  }
  if (ascii(bytes, 4, 4) === "ftyp") {
    const isobmff = sniffFtyp(bytes);
    if (isobmff) return isobmff;
  }
  if (ascii(bytes, 0, 2) === "BM" && bytes.length >= 18) {
    const dibSize = u32le(bytes, 14);
    if ([12, 40, 52, 56, 64, 108, 124].includes(dibSize)) {
      if (bytes.length < 26) return { format: "bmp", status: "need_more", needBytes: 26 };
      if (dibSize === 12)
        return { format: "bmp", status: "complete", width: u16le(bytes, 18), height: u16le(bytes, 20) };
      const height = u32le(bytes, 22) | 0; // negative means top-down rows
      return { format: "bmp", status: "complete", width: u32le(bytes, 18) | 0, height: Math.abs(height) };
    }
  }
  if (bytes.length < SIGNATURE_BYTES && couldBeSignaturePrefix(bytes)) {
    return { format: "unknown", status: "need_more", needBytes: SIGNATURE_BYTES };
  }
  const markup = sniffText(bytes);
  if (markup) return markup;
  return { format: "unknown", status: "complete" };
}

/** Whether a short prefix could still turn into a recognised signature with more bytes. */
function couldBeSignaturePrefix(bytes: Uint8Array): boolean {
  if (bytes.length === 0) return true;
  const candidates: readonly (readonly number[])[] = [
    [0xff, 0xd8, 0xff],
    PNG_SIGNATURE,
    [0x52, 0x49, 0x46, 0x46], // RIFF
    [0x47, 0x49, 0x46, 0x38], // GIF8
    [0x49, 0x49, 0x2a, 0x00],
    [0x4d, 0x4d, 0x00, 0x2a],
    [0x42, 0x4d], // BM
  ];
  for (const sig of candidates) {
    const n = Math.min(sig.length, bytes.length);
    let ok = true;
    for (let i = 0; i < n; i++) if (bytes[i] !== sig[i]) ok = false;
    if (ok) return true;
  }
  // ISO BMFF (HEIC/AVIF): a box size then "ftyp" at offset 4.
  if (bytes.length < 8) {
    const tail = ascii(bytes, 4, 4);
    if ("ftyp".startsWith(tail)) return true;
  } else if (ascii(bytes, 4, 4) === "ftyp") return true;
  // RIFF seen but "WEBP" not yet there.
  return ascii(bytes, 0, 4) === "RIFF" && bytes.length < 12;
}

// JPEG: a chain of marker segments; the frame header (SOFn) carries the size. Every
// segment before it (APPn with EXIF, ICC profiles, thumbnails; DQT; DHT; COM) is skipped
// by its length, so the parse needs only the bytes up to the SOF, and of those only each
// segment's first four bytes (all of an EXIF APP1, for the orientation).
function sniffJpeg(bytes: Uint8Array): ImageHeader {
  return walkJpeg(bytes, 0, { at: 2 });
}

/** `window` holds the file's bytes from absolute offset `base`; positions below are absolute. */
function walkJpeg(window: Uint8Array, base: number, cursor: JpegCursor): ImageHeader {
  const result: ImageHeader = { format: "jpeg", status: "need_more" };
  if (cursor.orientation !== undefined) result.orientation = cursor.orientation;
  const end = base + window.length;
  const at = (pos: number) => window[pos - base];
  const u16 = (pos: number) => (window[pos - base]! << 8) | window[pos - base + 1]!;
  const needMore = (pos: number, needBytes: number): ImageHeader => ({
    ...result,
    needBytes,
    resume: { at: pos, orientation: result.orientation },
  });
  let pos = cursor.at;
  for (;;) {
    // Markers may be preceded by any number of 0xFF fill bytes.
    while (pos + 1 < end && at(pos) === 0xff && at(pos + 1) === 0xff) pos++;
    if (pos + 2 > end) return needMore(pos, pos + 2);
    if (at(pos) !== 0xff) {
      return {
        ...result,
        status: "corrupt",
        problem: `no JPEG marker at byte ${pos} before the frame header`,
      };
    }
    const marker = at(pos + 1)!;
    // Standalone markers: TEM and RSTn carry no length.
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      pos += 2;
      continue;
    }
    if (marker === 0xd8 || marker === 0xd9 || marker === 0xda || marker === 0x00) {
      const what =
        marker === 0xda ? "image data starts" : marker === 0xd9 ? "the image ends" : "a stray marker appears";
      return {
        ...result,
        status: "corrupt",
        problem: `${what} (marker 0x${hex(marker)}) before any frame header (SOF)`,
      };
    }
    if (pos + 4 > end) return needMore(pos, pos + 4);
    const length = u16(pos + 2);
    if (length < 2) {
      return {
        ...result,
        status: "corrupt",
        problem: `JPEG segment 0x${hex(marker)} has an impossible length ${length}`,
      };
    }
    const segmentEnd = pos + 2 + length;
    // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC) which share the range.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (pos + 10 > end) return needMore(pos, pos + 10);
      if (length < 8) {
        return { ...result, status: "corrupt", problem: `JPEG frame header is too short (${length} bytes)` };
      }
      const height = u16(pos + 5);
      const width = u16(pos + 7);
      const header: ImageHeader = {
        ...result,
        status: "complete",
        width,
        height,
        bitDepth: at(pos + 4)!,
        progressive: marker === 0xc2 || marker === 0xc6 || marker === 0xca || marker === 0xce,
      };
      if (width === 0 || height === 0) {
        // Height 0 means "defined later by a DNL marker": legal but practically unseen.
        return {
          ...header,
          status: "corrupt",
          problem: `JPEG frame header declares a ${width}x${height} image`,
        };
      }
      return header;
    }
    if (marker === 0xe1 && result.orientation === undefined) {
      // Only an EXIF APP1 is read whole (for the orientation); XMP and others are skipped.
      if (pos + 10 > end) return needMore(pos, pos + 10);
      const exif = ascii(window, pos + 4 - base, 6) === "Exif\0\0";
      if (exif && segmentEnd > end) return needMore(pos, segmentEnd + 4);
      const orientation = exif
        ? exifOrientation(window.subarray(pos + 4 - base, segmentEnd - base))
        : undefined;
      if (orientation !== undefined) result.orientation = orientation;
    }
    pos = segmentEnd;
  }
}

/** EXIF orientation (tag 0x0112 in IFD0) from an APP1 payload, either byte order. */
export function exifOrientation(app1: Uint8Array): number | undefined {
  if (ascii(app1, 0, 6) !== "Exif\0\0") return undefined;
  const tiff = app1.subarray(6);
  if (tiff.length < 8) return undefined;
  const order = ascii(tiff, 0, 2);
  if (order !== "II" && order !== "MM") return undefined;
  const le = order === "II";
  const r16 = (i: number) => (le ? u16le(tiff, i) : u16be(tiff, i));
  const r32 = (i: number) => (le ? u32le(tiff, i) : u32be(tiff, i));
  if (r16(2) !== 42) return undefined;
  const ifd = r32(4);
  if (ifd + 2 > tiff.length) return undefined;
  const count = r16(ifd);
  for (let i = 0; i < count; i++) {
    const entry = ifd + 2 + i * 12;
    if (entry + 12 > tiff.length) return undefined;
    if (r16(entry) !== 0x0112) continue;
    const type = r16(entry + 2);
    // SHORT as it should be; some writers use LONG.
    const value = type === 3 ? r16(entry + 8) : type === 4 ? r32(entry + 8) : undefined;
    return value !== undefined && value >= 1 && value <= 8 ? value : undefined;
  }
  return undefined;
}

function sniffPng(bytes: Uint8Array): ImageHeader {
  // Signature (8), IHDR length and type (8), width, height (8), depth, colour type, ..., interlace.
  if (bytes.length < 29) return { format: "png", status: "need_more", needBytes: 33 };
  const type = ascii(bytes, 12, 4);
  if (type !== "IHDR" || u32be(bytes, 8) !== 13) {
    const hint = type === "CgBI" ? " (an Apple-optimised PNG that only Apple software decodes)" : "";
    return { format: "png", status: "corrupt", problem: `PNG does not start with an IHDR chunk${hint}` };
  }
  const width = u32be(bytes, 16);
  const height = u32be(bytes, 20);
  const colorType = bytes[25]!;
  const header: ImageHeader = {
    format: "png",
    status: "complete",
    width,
    height,
    bitDepth: bytes[24]!,
    colorType,
    hasAlpha: colorType === 4 || colorType === 6,
  };
  if (width === 0 || height === 0) {
    return { ...header, status: "corrupt", problem: `PNG header declares a ${width}x${height} image` };
  }
  return header;
}

/**
 * The first structural fault of a whole PNG file, for explaining why it does not decode: a
 * chunk cut short by the end of the data, a chunk whose CRC does not match, no IEND. Undefined
 * when the chunk chain is sound (then the fault is in the compressed pixel data itself).
 */
export function pngStructureProblem(bytes: Uint8Array): string | undefined {
  if (!startsWith(bytes, PNG_SIGNATURE)) return "the data does not start with the PNG signature";
  let pos: number = PNG_SIGNATURE.length;
  while (pos + 8 <= bytes.length) {
    const length = u32be(bytes, pos);
    const type = ascii(bytes, pos + 4, 4);
    const end = pos + 12 + length;
    if (end > bytes.length) {
      return `the data ends inside the ${type} chunk at byte ${pos} (${length} bytes declared, ${Math.max(0, bytes.length - pos - 8)} present): the PNG is truncated`;
    }
    if (crc32(bytes.subarray(pos + 4, end - 4)) !== u32be(bytes, end - 4)) {
      return `the ${type} chunk at byte ${pos} fails its CRC check: the PNG is damaged`;
    }
    if (type === "IEND") return undefined;
    pos = end;
  }
  return `the data ends at byte ${bytes.length} without an IEND chunk: the PNG is truncated`;
}

let crcTable: Uint32Array | undefined;

/** CRC-32 as PNG uses it (ISO 3309); the platform has none in every supported runtime. */
function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = crcTable[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function sniffWebp(bytes: Uint8Array): ImageHeader {
  if (bytes.length < 30) return { format: "webp", status: "need_more", needBytes: 30 };
  const chunk = ascii(bytes, 12, 4);
  if (chunk === "VP8X") {
    return {
      format: "webp",
      status: "complete",
      width: u24le(bytes, 24) + 1,
      height: u24le(bytes, 27) + 1,
      hasAlpha: (bytes[20]! & 0x10) !== 0,
    };
  }
  if (chunk === "VP8L" && bytes[20] === 0x2f) {
    const bits = u32le(bytes, 21);
    return {
      format: "webp",
      status: "complete",
      width: (bits & 0x3fff) + 1,
      height: ((bits >>> 14) & 0x3fff) + 1,
      hasAlpha: ((bits >>> 28) & 1) === 1,
    };
  }
  if (chunk === "VP8 " && startsWith(bytes, [0x9d, 0x01, 0x2a], 23)) {
    return {
      format: "webp",
      status: "complete",
      width: u16le(bytes, 26) & 0x3fff,
      height: u16le(bytes, 28) & 0x3fff,
      hasAlpha: false,
    };
  }
  return { format: "webp", status: "complete" };
}

const AVIF_BRANDS = new Set(["avif", "avis"]);
const HEIF_BRANDS = new Set(["heic", "heix", "hevc", "hevx", "heim", "heis", "hevm", "hevs", "mif1", "msf1"]);

function sniffFtyp(bytes: Uint8Array): ImageHeader | undefined {
  if (bytes.length < 12) return { format: "unknown", status: "need_more", needBytes: SIGNATURE_BYTES };
  const boxSize = u32be(bytes, 0);
  const brands = [ascii(bytes, 8, 4)];
  for (let i = 16; i + 4 <= Math.min(boxSize, bytes.length); i += 4) brands.push(ascii(bytes, i, 4));
  if (brands.some((b) => AVIF_BRANDS.has(b))) return { format: "avif", status: "complete" };
  if (brands.some((b) => HEIF_BRANDS.has(b))) return { format: "heic", status: "complete" };
  return undefined; // an MP4/MOV or another ISO BMFF file: not an image we know
}

/** HTML (error pages, "share" links) and other text answered where an image was expected. */
function sniffText(bytes: Uint8Array): ImageHeader | undefined {
  let start = 0;
  if (startsWith(bytes, [0xef, 0xbb, 0xbf])) start = 3;
  const head = ascii(bytes, start, 512).trimStart().toLowerCase();
  if (head.startsWith("<svg") || (head.startsWith("<?xml") && head.includes("<svg"))) {
    return { format: "svg", status: "complete" };
  }
  if (/^<(!doctype html|html|head|body|!--|meta|title|script|div|p[\s>]|h1)/.test(head)) {
    return { format: "html", status: "complete" };
  }
  if (head.length === 0) return undefined;
  const sample = bytes.subarray(start, Math.min(bytes.length, start + 512));
  // Text: no control characters and valid UTF-8 (JSON errors, "Access denied", a URL list...).
  for (const b of sample) if ((b < 0x20 && b !== 9 && b !== 10 && b !== 13) || b === 0x7f) return undefined;
  if (!isUtf8Prefix(sample)) return undefined;
  return head.includes("<html")
    ? { format: "html", status: "complete" }
    : { format: "text", status: "complete" };
}

/** Valid UTF-8, allowing a sequence cut at the end of the sample. */
function isUtf8Prefix(bytes: Uint8Array): boolean {
  for (let cut = 0; cut <= 3 && cut <= bytes.length; cut++) {
    try {
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, bytes.length - cut));
      return true;
    } catch {
      // try without the last bytes: a character may straddle the sample's end
    }
  }
  return false;
}

function hex(n: number): string {
  return n.toString(16).toUpperCase().padStart(2, "0");
}
