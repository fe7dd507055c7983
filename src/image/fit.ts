// Auto-fit: turn any image sharp can read into one the model accepts (JPEG/PNG, size,
// dimensions and ratio within the schema's rules), changing as little as possible. An image
// that already complies is returned byte for byte. sharp is loaded on first use only, so the
// CLI starts without it.
//
// Output format: JPEG, except PNG when the input is a PNG or has transparency (lossless stays
// lossless, alpha is kept). A PNG that cannot get under the size limit (even as a palette
// PNG) becomes a JPEG, unless PNG was asked for explicitly, in which case it is scaled down.

import type { Sharp } from "sharp";
import { DreaminaError } from "../api/dreamina-error.js";
import { checkImageFacts } from "../model/image-facts.js";
import { formatName, type ImageFormat, type ImageHeader, sniffImage } from "../model/image-header.js";
import { type ImageLimits, imageLimits } from "../model/image-rules.js";
import { checkDecodes, type DecodeCheck, loadSharp, MAX_DECODE_PIXELS } from "./decode-check.js";

export type FitFormat = "jpeg" | "png";

export interface FitOptions {
  /** How to bring a ratio outside (0.33, 3) in: pad (default) or centre crop. */
  ratio?: "pad" | "crop";
  /** Padding: "blur" (default: a blurred, darkened copy of the image) or a CSS colour ("#000", "white"). */
  background?: "blur" | string;
  /** Output format; by default JPEG, or PNG for PNG or transparent input. */
  format?: FitFormat;
}

export interface FitResult {
  bytes: Uint8Array;
  format: FitFormat;
  width: number;
  height: number;
  /** False when the input already complied and is returned untouched. */
  changed: boolean;
  /** What was done, in order, for people ("scaled 5000x3000 → 4096x2458", ...). */
  changes: string[];
}

export type ImageFitErrorCode =
  | "unsupported_format"
  | "decode_failed"
  | "too_many_pixels"
  | "cannot_fit"
  | "bad_option";

export class ImageFitError extends DreaminaError {
  static override readonly code: ImageFitErrorCode = "cannot_fit";
  declare readonly code: ImageFitErrorCode;
  constructor(code: ImageFitErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, { code, cause: options?.cause });
  }
}

export interface FitPlan {
  width: number;
  height: number;
  /** How the source is mapped onto width x height. */
  mode: "keep" | "scale" | "pad" | "crop";
}

const ratioBelow = (w: number, h: number, [p, q]: [bigint, bigint]) => BigInt(w) * q < p * BigInt(h);
const ratioAbove = (w: number, h: number, [p, q]: [bigint, bigint]) => BigInt(w) * q > p * BigInt(h);

/** Whether a width x height satisfies every dimension rule (exact arithmetic). */
export function dimensionsComply(
  width: number,
  height: number,
  limits: ImageLimits = imageLimits(),
): boolean {
  return (
    width >= limits.minWidth &&
    width <= limits.maxWidth &&
    height >= limits.minHeight &&
    height <= limits.maxHeight &&
    ratioBelow(width, height, limits.maxRatio) &&
    ratioAbove(width, height, limits.minRatio)
  );
}

/**
 * The output size for a (display-oriented) source size: the ratio fixed first (by padding the
 * short side or cropping the long one), then one scale factor for the size limits, then
 * one-pixel nudges for whatever rounding broke. Pure, so it is property-tested.
 */
export function planFit(
  width: number,
  height: number,
  ratio: "pad" | "crop" = "pad",
  limits: ImageLimits = imageLimits(),
): FitPlan {
  if (!(Number.isSafeInteger(width) && Number.isSafeInteger(height) && width > 0 && height > 0)) {
    throw new RangeError(`bad image size ${width}x${height}`);
  }
  if (dimensionsComply(width, height, limits)) return { width, height, mode: "keep" };
  const { maxRatio, minRatio } = limits;
  const ratioOk = ratioBelow(width, height, maxRatio) && ratioAbove(width, height, minRatio);
  let w = width;
  let h = height;
  if (!ratioOk && ratio === "pad") {
    // Smallest taller (or wider) canvas strictly inside the ratio bounds.
    if (!ratioBelow(w, h, maxRatio)) h = Number((BigInt(w) * maxRatio[1]) / maxRatio[0]) + 1;
    else w = Number((minRatio[0] * BigInt(h)) / minRatio[1]) + 1;
  } else if (!ratioOk) {
    // Largest centre crop strictly inside the ratio bounds.
    if (!ratioBelow(w, h, maxRatio)) w = Number(ceilDiv(maxRatio[0] * BigInt(h), maxRatio[1])) - 1;
    else h = Number(ceilDiv(BigInt(w) * minRatio[1], minRatio[0])) - 1;
  }
  let factor = Math.min(1, limits.maxWidth / w, limits.maxHeight / h);
  if (w * factor < limits.minWidth || h * factor < limits.minHeight) {
    factor = Math.max(limits.minWidth / w, limits.minHeight / h);
  }
  w = Math.max(1, Math.round(w * factor));
  h = Math.max(1, Math.round(h * factor));
  const grow = ratio === "pad" || ratioOk;
  for (let i = 0; i < 8 && !dimensionsComply(w, h, limits); i++) {
    w = Math.min(Math.max(w, limits.minWidth), limits.maxWidth);
    h = Math.min(Math.max(h, limits.minHeight), limits.maxHeight);
    if (!ratioBelow(w, h, maxRatio)) {
      if (grow && h < limits.maxHeight) h++;
      else w--;
    } else if (!ratioAbove(w, h, minRatio)) {
      if (grow && w < limits.maxWidth) w++;
      else h--;
    }
  }
  if (!dimensionsComply(w, h, limits)) {
    throw new ImageFitError("cannot_fit", `no size satisfies the rules for a ${width}x${height} image`);
  }
  return { width: w, height: h, mode: ratioOk ? "scale" : ratio };
}

function ceilDiv(a: bigint, b: bigint): bigint {
  return (a + b - 1n) / b;
}

type SharpModule = typeof import("sharp");

const JPEG_QUALITIES = [90, 84, 78, 70, 62, 54, 46, 38];

/** What a caller already learnt about the input (see checkImage): not sniffed or decoded again. */
export interface KnownImage {
  header: ImageHeader;
  decode?: DecodeCheck | undefined;
}

export async function fitImage(
  input: Uint8Array,
  options: FitOptions = {},
  known?: KnownImage,
): Promise<FitResult> {
  const ratio = options.ratio ?? "pad";
  if (ratio !== "pad" && ratio !== "crop")
    throw new ImageFitError("bad_option", `ratio must be "pad" or "crop"`);
  if (options.format !== undefined && options.format !== "jpeg" && options.format !== "png") {
    throw new ImageFitError("bad_option", `format must be "jpeg" or "png"`);
  }
  const limits = imageLimits();
  const header = known?.header ?? sniffImage(input, { final: true });
  if (header.format === "html" || header.format === "text") {
    throw new ImageFitError("unsupported_format", `the data is ${formatName(header.format)}, not an image`);
  }
  // Decoded in full first: a damaged image is neither passed through nor re-encoded (a fitted
  // copy would hide the damage in a grey band, and be paid for).
  const decoded = known?.decode ?? (await checkDecodes(input, header));
  if (!decoded.ok) throw decodeError(decoded, header.format);
  if ((header.format === "jpeg" || header.format === "png") && header.status === "complete") {
    const report = checkImageFacts({ ...header, sizeBytes: input.length });
    if (report.valid && (options.format === undefined || options.format === header.format)) {
      return {
        bytes: input,
        format: header.format,
        width: header.width!,
        height: header.height!,
        changed: false,
        changes: [],
      };
    }
  }

  const sharp = await loadSharp();
  const source = () => sharp(input, { failOn: "error", limitInputPixels: MAX_DECODE_PIXELS, pages: 1 });
  let meta: Awaited<ReturnType<Sharp["metadata"]>>;
  try {
    meta = await source().metadata();
    if (!meta.width || !meta.height) throw new Error("no dimensions");
  } catch (error) {
    // Rare: checkDecodes read it a moment ago.
    throw new ImageFitError(
      "decode_failed",
      `cannot read the image (${formatName(header.format)}): ${(error as Error).message}`,
      { cause: error },
    );
  }

  const changes: string[] = [];
  const inputFormat = meta.format === "heif" ? header.format : (meta.format ?? header.format);
  // GIFs and some WebPs decode with an alpha channel that is fully opaque: only real transparency counts.
  const hasAlpha = Boolean(meta.hasAlpha) && !(await source().stats()).isOpaque;
  const wantPng =
    options.format === "png" || (options.format === undefined && (header.format === "png" || hasAlpha));
  let format: FitFormat = wantPng ? "png" : "jpeg";
  if ((meta.pages ?? 1) > 1) changes.push(`took the first of ${meta.pages} frames`);
  const orientation = meta.orientation ?? 1;
  const swap = orientation >= 5 && orientation <= 8;
  let width = swap ? meta.height : meta.width;
  let height = swap ? meta.width : meta.height;
  if (orientation !== 1)
    changes.push(
      `applied EXIF orientation ${orientation} (${meta.width}x${meta.height} shown as ${width}x${height})`,
    );

  const background = options.background ?? "blur";
  let raw = await render(
    sharp,
    source,
    planFit(width, height, ratio, limits),
    width,
    height,
    background,
    hasAlpha && format === "png",
    changes,
  );
  for (let attempt = 0; ; attempt++) {
    width = raw.info.width;
    height = raw.info.height;
    const encoded = await encode(sharp, raw, format, limits.maxBytes, options.format === "png", background);
    if (encoded) {
      if (encoded.format !== format) {
        changes.push(`a PNG could not get under ${limits.maxBytes + 1} bytes, so it became a JPEG`);
        format = encoded.format;
      }
      if (inputFormat !== format)
        changes.push(`converted ${formatName(header.format)} to ${formatName(format)}`);
      changes.push(`encoded as ${encoded.note} (${input.length} → ${encoded.bytes.length} bytes)`);
      const check = checkImageFacts({ format, width, height, sizeBytes: encoded.bytes.length });
      if (!check.valid) {
        throw new ImageFitError(
          "cannot_fit",
          `the fitted image still breaks: ${check.violations.map((v) => v.message).join(" ")}`,
        );
      }
      return { bytes: new Uint8Array(encoded.bytes), format, width, height, changed: true, changes };
    }
    // Quality alone did not reach the byte limit: 85% of the size, still within the rules.
    const plan = planFit(
      Math.max(1, Math.round(width * 0.85)),
      Math.max(1, Math.round(height * 0.85)),
      "pad",
      limits,
    );
    if (attempt >= 6 || plan.width >= width) {
      throw new ImageFitError(
        "cannot_fit",
        `the image cannot be made smaller than ${limits.maxBytes + 1} bytes`,
      );
    }
    changes.push(
      `scaled ${width}x${height} → ${plan.width}x${plan.height} to get under ${limits.maxBytes + 1} bytes`,
    );
    const { channels } = raw.info;
    raw = await sharp(raw.data, { raw: { width, height, channels: channels as 1 | 2 | 3 | 4 } })
      .resize(plan.width, plan.height, { fit: "fill" })
      .raw()
      .toBuffer({ resolveWithObject: true });
  }
}

function decodeError(check: DecodeCheck & { ok: false }, format: ImageFormat): ImageFitError {
  if (check.reason === "pixels") {
    return new ImageFitError("too_many_pixels", check.problem);
  }
  if (format === "jpeg" || format === "png" || format === "unknown") {
    return new ImageFitError("decode_failed", `the image does not decode fully: ${check.problem}`);
  }
  const hint =
    format === "heic"
      ? " (this sharp build decodes AVIF but not HEVC-coded HEIC; export the photo as JPEG)"
      : ` (damaged, or a variant this sharp build cannot decode; convert it to PNG or JPEG first)`;
  return new ImageFitError(
    "unsupported_format",
    `cannot read the image (${formatName(format)}): ${check.problem}${hint}`,
  );
}

async function render(
  sharp: SharpModule,
  source: () => Sharp,
  plan: FitPlan,
  width: number,
  height: number,
  background: string,
  keepAlpha: boolean,
  changes: string[],
): Promise<{ data: Buffer; info: { width: number; height: number; channels: number } }> {
  const { width: W, height: H } = plan;
  let pipeline: Sharp;
  try {
    pipeline = source().rotate();
    if (plan.mode === "keep") {
      // Right size already; only the format, the orientation or the byte size needs work.
    } else if (plan.mode === "scale") {
      pipeline = pipeline.resize(W, H, { fit: "fill" });
      changes.push(`scaled ${width}x${height} → ${W}x${H}`);
    } else if (plan.mode === "crop") {
      pipeline = pipeline.resize(W, H, { fit: "cover", position: "centre" });
      changes.push(
        `cropped the centre of ${width}x${height} (scaled if needed) → ${W}x${H} (ratio within the limits)`,
      );
    } else if (plan.mode === "pad") {
      const scaled = W !== width && H !== height;
      changes.push(
        `${scaled ? "scaled and padded" : "padded"} ${width}x${height} → ${W}x${H} with ${background === "blur" ? "a blurred fill" : background} (ratio within the limits)`,
      );
      if (background === "blur") {
        const content = await source().rotate().resize(W, H, { fit: "inside" }).toBuffer();
        // Blurring a small copy and scaling it up is as soft and far cheaper than a huge sigma.
        const small = await source()
          .rotate()
          .resize(Math.max(8, Math.ceil(W / 16)), Math.max(8, Math.ceil(H / 16)), { fit: "cover" })
          .blur(2)
          .modulate({ brightness: 0.8 })
          .toBuffer();
        pipeline = sharp(small)
          .resize(W, H, { fit: "fill" })
          .composite([{ input: content, gravity: "centre" }]);
      } else {
        pipeline = pipeline.resize(W, H, { fit: "contain", background });
      }
    }
    if (!keepAlpha)
      pipeline = pipeline.flatten({ background: background === "blur" ? "#ffffff" : background });
    const out = await pipeline.raw().toBuffer({ resolveWithObject: true });
    return { data: out.data, info: out.info };
  } catch (error) {
    if (error instanceof ImageFitError) throw error;
    const message = (error as Error).message;
    if (/colou?r|background/i.test(message)) {
      throw new ImageFitError(
        "bad_option",
        `bad background colour ${JSON.stringify(background)}: ${message}`,
        { cause: error },
      );
    }
    throw new ImageFitError("decode_failed", `cannot process the image: ${message}`, { cause: error });
  }
}

async function encode(
  sharp: SharpModule,
  raw: { data: Buffer; info: { width: number; height: number; channels: number } },
  format: FitFormat,
  maxBytes: number,
  pngRequired: boolean,
  background: string,
): Promise<{ bytes: Buffer; format: FitFormat; note: string } | undefined> {
  const image = () =>
    sharp(raw.data, {
      raw: { width: raw.info.width, height: raw.info.height, channels: raw.info.channels as 1 | 2 | 3 | 4 },
    });
  if (format === "png") {
    const lossless = await image().png({ compressionLevel: 9, adaptiveFiltering: true }).toBuffer();
    if (lossless.length <= maxBytes) return { bytes: lossless, format, note: "PNG" };
    for (const quality of [90, 70]) {
      const palette = await image().png({ compressionLevel: 9, palette: true, quality }).toBuffer();
      if (palette.length <= maxBytes)
        return { bytes: palette, format, note: `palette PNG (quality ${quality})` };
    }
    if (pngRequired) return undefined;
  }
  for (const quality of JPEG_QUALITIES) {
    const jpeg = await image()
      .flatten({ background: background === "blur" ? "#ffffff" : background })
      .jpeg({ quality, chromaSubsampling: "4:2:0" })
      .toBuffer();
    if (jpeg.length <= maxBytes) return { bytes: jpeg, format: "jpeg", note: `JPEG quality ${quality}` };
  }
  return undefined;
}
