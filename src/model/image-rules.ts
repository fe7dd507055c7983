// The schema's image rules read as data: a `validation_rule` is a metric and a comparison, its
// `validation_value` a decimal limit. Compared as exact fractions (no float error at a limit),
// and turned into numeric limits for code that has to produce a compliant image.

import { imageValidations } from "./schema.js";

const RULE =
  /^\s*(file_size_mb|file_size_kb|file_size_bytes|width_pixels|height_pixels|width\/height|height\/width)\s*(<=|>=|==|!=|<|>|=)\s*$/;

export type Metric =
  | "file_size_mb"
  | "file_size_kb"
  | "file_size_bytes"
  | "width_pixels"
  | "height_pixels"
  | "width/height"
  | "height/width";
export type Operator = "<" | "<=" | ">" | ">=" | "=" | "==" | "!=";

export interface ParsedRule {
  metric: Metric;
  operator: Operator;
}

export function parseValidationRule(rule: string): ParsedRule | undefined {
  const match = RULE.exec(rule);
  return match ? { metric: match[1] as Metric, operator: match[2] as Operator } : undefined;
}

/** A finite decimal limit (4.7, 0.33, 4096) as an exact fraction. */
export function decimalFraction(value: number): [bigint, bigint] | undefined {
  if (!Number.isFinite(value)) return undefined;
  const text = String(value);
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text);
  if (!match) {
    // Exponent notation (1e-7, 1e21): the binary value is exact, if not what a person typed.
    const scale = 10n ** 30n;
    return [BigInt(Math.round(value * 1e30)), scale];
  }
  const decimals = match[3] ?? "";
  const numerator = BigInt(`${match[1]}${match[2]}${decimals}`);
  return [numerator, 10n ** BigInt(decimals.length)];
}

/** Whether `actual operator limit` holds, both exact fractions with positive denominators. */
export function compareFractions(
  actual: [bigint, bigint],
  operator: Operator,
  limit: [bigint, bigint],
): boolean {
  // Denominators are positive, so cross-multiplying keeps the order.
  const left = actual[0] * limit[1];
  const right = limit[0] * actual[1];
  switch (operator) {
    case "<":
      return left < right;
    case "<=":
      return left <= right;
    case ">":
      return left > right;
    case ">=":
      return left >= right;
    case "=":
    case "==":
      return left === right;
    case "!=":
      return left !== right;
  }
}

/** The numeric image limits, read from the schema (for code that has to produce a compliant image). */
export interface ImageLimits {
  /** Largest allowed file size in bytes (inclusive). */
  maxBytes: number;
  /** Largest allowed width and height (inclusive). */
  maxWidth: number;
  maxHeight: number;
  /** Smallest allowed width and height (inclusive). */
  minWidth: number;
  minHeight: number;
  /** Exclusive bounds of width/height (`< maxRatio`, `> minRatio`), as exact fractions [numerator, denominator]. */
  maxRatio: [bigint, bigint];
  minRatio: [bigint, bigint];
}

export function imageLimits(): ImageLimits {
  const limits: ImageLimits = {
    maxBytes: Number.MAX_SAFE_INTEGER,
    maxWidth: Number.MAX_SAFE_INTEGER,
    maxHeight: Number.MAX_SAFE_INTEGER,
    minWidth: 1,
    minHeight: 1,
    maxRatio: [BigInt(Number.MAX_SAFE_INTEGER), 1n],
    minRatio: [0n, 1n],
  };
  for (const rule of imageValidations) {
    const parsed = parseValidationRule(rule.validation_rule);
    const fraction = decimalFraction(rule.validation_value);
    if (!parsed || !fraction) continue;
    const strict = parsed.operator === "<" || parsed.operator === ">";
    const upper = parsed.operator === "<" || parsed.operator === "<=";
    const lower = parsed.operator === ">" || parsed.operator === ">=";
    const scale =
      parsed.metric === "file_size_mb" ? 1_000_000n : parsed.metric === "file_size_kb" ? 1_000n : 1n;
    // The largest (smallest) integer that passes: exact, from the fraction.
    const [num, den] = [fraction[0] * scale, fraction[1]];
    const largest = Number(strict ? ceilDiv(num, den) - 1n : num / den);
    const smallest = Number(strict ? num / den + 1n : ceilDiv(num, den));
    switch (parsed.metric) {
      case "file_size_mb":
      case "file_size_kb":
      case "file_size_bytes":
        if (upper) limits.maxBytes = Math.min(limits.maxBytes, largest);
        break;
      case "width_pixels":
        if (upper) limits.maxWidth = Math.min(limits.maxWidth, largest);
        if (lower) limits.minWidth = Math.max(limits.minWidth, smallest);
        break;
      case "height_pixels":
        if (upper) limits.maxHeight = Math.min(limits.maxHeight, largest);
        if (lower) limits.minHeight = Math.max(limits.minHeight, smallest);
        break;
      case "width/height":
        if (upper) limits.maxRatio = fraction;
        if (lower) limits.minRatio = fraction;
        break;
      default:
        break;
    }
  }
  return limits;
}

function ceilDiv(a: bigint, b: bigint): bigint {
  return (a + b - 1n) / b;
}
