// The model's identity, input and output shapes, and the small facts derived from them
// (defaults, duration, cost). Runtime-neutral: no Node imports.

import { inputSchema } from "./schema.js";

export const MODEL_ID = "bytedance/dreamina-3-0/pro/image-to-video";

export type Frames = 121 | 241;

export interface DreaminaInput {
  /** At most 800 characters (Unicode code points). */
  prompt: string;
  /** Exactly one public http(s) URL or a `data:image/jpeg|png;base64,...` URI. */
  image_urls: [string];
  /** Integer; -1 (the default) asks for a random seed. */
  seed?: number;
  /** 121 (about 5 s) or 241 (about 10 s). */
  frames?: Frames;
}

/** The model's output keys; this model fills `video` (or the first of `videos`). */
export interface DreaminaOutput {
  video?: string;
  videos?: string[];
  image?: string;
  images?: string[];
}

const props = inputSchema.properties;

export const DEFAULT_SEED: number = props.seed.default;
export const DEFAULT_FRAMES = props.frames.default as Frames;
export const FRAMES_VALUES: readonly Frames[] = props.frames.enum as Frames[];
export const PROMPT_MAX_LENGTH: number = props.prompt.maxLength;
/** The schema's own example prompt (handy for demos and smoke tests). */
export const EXAMPLE_PROMPT: string = props.prompt.default;
/** The schema's own example image URL. */
export const EXAMPLE_IMAGE_URL: string = props.image_urls.default[0]!;

/** Dreamina renders 24 frames per second: 121 frames is "≈5s" and 241 "≈10s" in the schema. */
export const FRAMES_PER_SECOND = 24;

/** The input with the schema's defaults filled in (what the service will actually use). */
export function withDefaults(input: DreaminaInput): Required<DreaminaInput> {
  return {
    ...input,
    seed: input.seed ?? DEFAULT_SEED,
    frames: input.frames ?? DEFAULT_FRAMES,
  };
}

/**
 * Video length in seconds for a frame count, to one decimal: 121 → 5, 241 → 10.
 * The extra frame is the first (the input image), so it is not counted as time.
 */
export function videoSeconds(frames: number = DEFAULT_FRAMES): number {
  if (!Number.isFinite(frames) || frames <= 0) return 0;
  return Math.round(((frames - 1) / FRAMES_PER_SECOND) * 10) / 10;
}

export interface CostParams {
  frames?: number;
  /** `base_price_usd` from the model detail endpoint. */
  basePriceUsd: number;
  /** `price_unit` from the model detail endpoint, e.g. `second`; anything else is per request. */
  priceUnit?: string | undefined;
}

const PER_SECOND_UNITS = new Set(["second", "seconds", "sec", "secs", "s", "per_second", "per second"]);

/** An estimate only: the service's `cost` (result with include_cost=true) is the bill. */
export function estimateCostUsd({ frames = DEFAULT_FRAMES, basePriceUsd, priceUnit }: CostParams): number {
  if (!Number.isFinite(basePriceUsd) || basePriceUsd < 0) {
    throw new RangeError(`basePriceUsd must be a non-negative number (got ${basePriceUsd})`);
  }
  const unit = (priceUnit ?? "").trim().toLowerCase();
  const amount = PER_SECOND_UNITS.has(unit) ? basePriceUsd * videoSeconds(frames) : basePriceUsd;
  // Strip binary float noise (0.1 * 3 = 0.30000000000000004) without rounding away real cents.
  return Math.round(amount * 1e6) / 1e6;
}

export interface DataUri {
  /** Lower-cased media type, e.g. `image/png` (empty when the URI names none). */
  mime: string;
  base64: boolean;
  /** The decoded payload. */
  bytes: Uint8Array;
}

/**
 * Parses a `data:` URI locally (no network). Returns undefined for anything that is not
 * a well-formed data URI, including base64 with characters outside the alphabet.
 */
export function parseDataUri(uri: string): DataUri | undefined {
  const match = /^data:([^,]*?),/i.exec(uri);
  if (!match) return undefined;
  const params = match[1]!.split(";").map((p) => p.trim());
  const base64 = params.length > 1 && params[params.length - 1]!.toLowerCase() === "base64";
  const mime = (params[0] ?? "").toLowerCase();
  const payload = uri.slice(match[0].length);
  if (base64) {
    const clean = payload.replace(/\s+/g, "");
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean) || clean.length % 4 === 1) return undefined;
    try {
      const binary = atob(clean);
      const bytes = new Uint8Array(binary.length);
      for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
      return { mime, base64, bytes };
    } catch {
      return undefined;
    }
  }
  return { mime, base64, bytes: percentDecode(payload) };
}

/** Byte-wise %XX decoding: `decodeURIComponent` would refuse (or re-encode) non-UTF-8 bytes. */
function percentDecode(text: string): Uint8Array {
  const out: number[] = [];
  const encoder = new TextEncoder();
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === "%" && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      out.push(Number.parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (ch.charCodeAt(0) < 0x80) {
      out.push(ch.charCodeAt(0));
    } else {
      out.push(...encoder.encode(ch));
    }
  }
  return Uint8Array.from(out);
}
