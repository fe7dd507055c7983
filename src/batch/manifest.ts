// Batch manifests: JSONL (one JSON object a line) or CSV (a header line, then rows; parsed
// by csv-parse, so quotes, commas and newlines inside fields work). Every row keeps the line
// it starts on, so every problem can be reported as "line N".
//
// Row fields: image (a path relative to the manifest, or an http(s)/data URL), prompt,
// optional frames, seed, name (output file stem) and id (the row key; by default a hash of
// the row's effective input, so reordering or appending rows never changes a row's key).

import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { basename, dirname, extname, isAbsolute, resolve } from "node:path";
import { parse as parseCsv } from "csv-parse/sync";
import { portableText, sanitizeStem } from "./output-files.js";

export const MANIFEST_FIELDS = ["image", "prompt", "frames", "seed", "name", "id"] as const;
const DEFAULT_FRAMES = 121;
const DEFAULT_SEED = -1;

export interface ManifestRow {
  /** 1-based line of the manifest where the row starts. */
  line: number;
  /** The row key: `id` when given, else derived from the row's content. */
  key: string;
  /** Whether `key` came from the manifest's `id`. */
  keyGiven: boolean;
  /** As written in the manifest. */
  image: string;
  /** An absolute path for a local file, or the URL as written. */
  imageSource: string;
  imageIsUrl: boolean;
  prompt: string;
  frames: number | undefined;
  seed: number | undefined;
  /** Output file stem (without `.mp4`). */
  name: string;
  /** Fields this tool does not know (kept, and warned about). */
  extra: Record<string, unknown>;
}

export interface ManifestProblem {
  line: number;
  /** The field at fault, when there is one. */
  field?: string | undefined;
  message: string;
  /** What the line says, as far as it could be read: a report shows the line as a row. */
  row?: ProblemRow | undefined;
}

/** The readable fields of a line that did not become a row. */
export interface ProblemRow {
  key?: string | undefined;
  name?: string | undefined;
  image?: string | undefined;
  prompt?: string | undefined;
}

export interface Manifest {
  /** Absolute path, or undefined when parsed from text. */
  path: string | undefined;
  format: "jsonl" | "csv";
  /** sha256 of the manifest's bytes. */
  digest: string;
  rows: ManifestRow[];
  /** Lines that could not become a row, and rows that clash with each other. */
  problems: ManifestProblem[];
  warnings: ManifestProblem[];
}

export interface ParseManifestOptions {
  format?: "jsonl" | "csv" | undefined;
  /** Directory that relative image paths are resolved against (the manifest's). */
  baseDir?: string | undefined;
  path?: string | undefined;
}

/** Reads and parses a manifest file; the format follows the extension (.csv, else JSONL). */
export async function readManifest(
  path: string,
  options: { format?: "jsonl" | "csv" } = {},
): Promise<Manifest> {
  const absolute = resolve(path);
  const text = await readFile(absolute);
  const format = options.format ?? (extname(absolute).toLowerCase() === ".csv" ? "csv" : "jsonl");
  return parseManifest(text, { format, baseDir: dirname(absolute), path: absolute });
}

export function parseManifest(content: string | Uint8Array, options: ParseManifestOptions = {}): Manifest {
  const bytes = typeof content === "string" ? Buffer.from(content, "utf8") : Buffer.from(content);
  const digest = createHash("sha256").update(bytes).digest("hex");
  let text = bytes.toString("utf8");
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const format = options.format ?? guessFormat(text);
  const baseDir = options.baseDir ?? process.cwd();
  const problems: ManifestProblem[] = [];
  const warnings: ManifestProblem[] = [];
  const records = format === "csv" ? csvRecords(text, problems) : jsonlRecords(text, problems);
  const rows: ManifestRow[] = [];
  for (const { line, record } of records) {
    const row = toRow(line, record, baseDir, problems, warnings);
    if (row) rows.push(row);
  }
  checkClashes(rows, problems);
  problems.sort((a, b) => a.line - b.line);
  return { path: options.path, format, digest, rows, problems, warnings };
}

function guessFormat(text: string): "jsonl" | "csv" {
  const first = text.split(/\r?\n/).find((l) => l.trim() !== "" && !l.trim().startsWith("#"));
  return first?.trim().startsWith("{") ? "jsonl" : "csv";
}

interface RawRecord {
  line: number;
  record: Record<string, unknown>;
}

function jsonlRecords(text: string, problems: ManifestProblem[]): RawRecord[] {
  const out: RawRecord[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] ?? "").replace(/\r$/, "");
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#") || trimmed.startsWith("//")) continue;
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch (error) {
      problems.push({ line: i + 1, message: `not valid JSON: ${(error as Error).message}` });
      continue;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      problems.push({ line: i + 1, message: "each line must be a JSON object" });
      continue;
    }
    out.push({ line: i + 1, record: value as Record<string, unknown> });
  }
  return out;
}

interface CsvInfoRecord {
  record: string[];
  /** `bytes`: where the record ends (after its line break), a byte offset into the input. */
  info: { bytes: number };
}

function csvRecords(text: string, problems: ManifestProblem[]): RawRecord[] {
  // Parsed as a Buffer, without csv-parse's `columns`: every record, the header included, then
  // carries the byte offset where it ends, and line numbers are counted from those offsets.
  // csv-parse's own `info.lines` counts a CRLF inside a quoted field as two lines.
  const input = Buffer.from(text, "utf8");
  let parsed: CsvInfoRecord[];
  try {
    parsed = parseCsv(input, {
      info: true,
      skip_empty_lines: true,
      comment: "#",
      comment_no_infix: true,
      relax_column_count: true,
      trim: false,
      bom: true,
    }) as unknown as CsvInfoRecord[];
  } catch (error) {
    const err = error as Error & { lines?: number };
    problems.push({ line: err.lines ?? 1, message: `CSV cannot be read: ${err.message}` });
    return [];
  }
  const [header, ...entries] = parsed;
  if (!header) return [];
  const columns = header.record.map((h) => h.trim().toLowerCase());
  const lines = new LineCounter(input, text);
  let previousEnd = header.info.bytes;
  const out: RawRecord[] = [];
  for (const entry of entries) {
    const line = lines.firstContentLine(previousEnd, entry.info.bytes);
    previousEnd = entry.info.bytes;
    const record: Record<string, unknown> = {};
    // As csv-parse's `columns` would: by header position, fields past the header dropped.
    columns.forEach((column, i) => {
      const value = entry.record[i];
      if (value === undefined) return;
      if (column === "" && value === "") return;
      record[column] = value;
    });
    out.push({ line, record });
  }
  return out;
}

/** 1-based line numbers of byte offsets in a manifest, counted forward (offsets only grow). */
class LineCounter {
  readonly #bytes: Buffer;
  readonly #lines: string[];
  #offset = 0;
  #line = 1;

  constructor(bytes: Buffer, text: string) {
    this.#bytes = bytes;
    this.#lines = text.split("\n");
  }

  /** The line holding byte `offset`. */
  lineAt(offset: number): number {
    for (; this.#offset < offset && this.#offset < this.#bytes.length; this.#offset++) {
      if (this.#bytes[this.#offset] === 0x0a) this.#line++;
    }
    return this.#line;
  }

  /**
   * Where a record spanning bytes [start, end) begins: its first line that is neither blank nor
   * a comment (csv-parse skips those between records).
   */
  firstContentLine(start: number, end: number): number {
    let line = this.lineAt(start);
    const last = this.lineAt(Math.max(start, end - 1));
    while (line < last && this.#skippable(line)) line++;
    return line;
  }

  #skippable(line: number): boolean {
    const text = (this.#lines[line - 1] ?? "").replace(/\r$/, "");
    return text.trim() === "" || text.startsWith("#");
  }
}

function text(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return value.trim() === "" ? undefined : value;
  if (typeof value === "number") return String(value);
  return undefined;
}

function integer(
  value: unknown,
  field: string,
  line: number,
  problems: ManifestProblem[],
): number | undefined | null {
  if (value === undefined || value === null || (typeof value === "string" && value.trim() === "")) {
    return undefined;
  }
  const n = typeof value === "number" ? value : typeof value === "string" ? Number(value.trim()) : Number.NaN;
  if (!Number.isSafeInteger(n)) {
    problems.push({ line, field, message: `${field} must be an integer (got ${JSON.stringify(value)})` });
    return null;
  }
  return n;
}

const URL_PATTERN = /^(https?:|data:)/i;
const KNOWN: ReadonlySet<string> = new Set(MANIFEST_FIELDS);
// Aliases people are likely to write.
const ALIASES: Record<string, string> = { image_url: "image", image_path: "image", path: "image", key: "id" };

function toRow(
  line: number,
  input: Record<string, unknown>,
  baseDir: string,
  problems: ManifestProblem[],
  warnings: ManifestProblem[],
): ManifestRow | undefined {
  const record: Record<string, unknown> = {};
  const extra: Record<string, unknown> = {};
  for (const [k0, v] of Object.entries(input)) {
    const k = ALIASES[k0] ?? k0;
    if (KNOWN.has(k)) record[k] = v;
    else extra[k0] = v;
  }
  if (Object.keys(extra).length > 0) {
    warnings.push({ line, message: `unknown field(s) ignored: ${Object.keys(extra).join(", ")}` });
  }
  const before = problems.length;
  const image = text(record.image);
  if (!image) problems.push({ line, field: "image", message: "image is required (a path or a URL)" });
  const prompt = typeof record.prompt === "string" ? record.prompt : "";
  if (record.prompt === undefined || record.prompt === null) {
    problems.push({ line, field: "prompt", message: "prompt is required" });
  } else if (typeof record.prompt !== "string") {
    problems.push({ line, field: "prompt", message: "prompt must be a string" });
  }
  // A blank prompt is refused by the model's own rule when the row is validated (validateRow),
  // with the same message run, submit and validate give.
  const frames = integer(record.frames, "frames", line, problems);
  const seed = integer(record.seed, "seed", line, problems);
  const id = text(record.id);
  let name = text(record.name);
  if (name !== undefined) {
    name = name
      .trim()
      .normalize("NFC")
      .replace(/\.mp4$/i, "");
    const safe = sanitizeStem(name);
    if (safe !== name) {
      problems.push({
        line,
        field: "name",
        message:
          `name must be a plain file name (no path separators, control or reserved characters, ` +
          `no leading dot, at most 200 bytes): got ${JSON.stringify(name)}` +
          (safe ? `; for example ${JSON.stringify(safe)}` : ""),
      });
    }
  }
  if (problems.length > before || !image) {
    const row: ProblemRow = {
      key: id,
      name,
      image,
      prompt: typeof record.prompt === "string" ? record.prompt : undefined,
    };
    for (const problem of problems.slice(before)) problem.row = row;
    return undefined;
  }

  const imageIsUrl = URL_PATTERN.test(image);
  const imageSource = imageIsUrl || isAbsolute(image) ? image : resolve(baseDir, image);
  const key = id ?? deriveRowKey({ image, prompt, frames: frames ?? undefined, seed: seed ?? undefined });
  return {
    line,
    key,
    keyGiven: id !== undefined,
    image,
    imageSource,
    imageIsUrl,
    prompt,
    frames: frames ?? undefined,
    seed: seed ?? undefined,
    name: name ?? defaultName(image, imageIsUrl, key),
    extra,
  };
}

/** A key for a row without an `id`: the hash of its effective input (defaults filled in). */
export function deriveRowKey(row: { image: string; prompt: string; frames?: number; seed?: number }): string {
  const canonical = JSON.stringify([
    row.image,
    row.prompt,
    row.frames ?? DEFAULT_FRAMES,
    row.seed ?? DEFAULT_SEED,
  ]);
  return `r-${createHash("sha256").update(canonical).digest("hex").slice(0, 20)}`;
}

/**
 * `<image stem>-<start of the key>`, both reduced to portable characters: the id is the user's
 * text, and nothing from it may reach a path unchecked (an id "/../../x" once wrote outside
 * --out). For ids of letters, digits, dots, dashes and underscores the name is what it always was.
 */
function defaultName(image: string, isUrl: boolean, key: string): string {
  let stem = "video";
  if (!isUrl) stem = basename(image, extname(image));
  else if (!/^data:/i.test(image)) {
    try {
      const last = new URL(image).pathname.split("/").filter(Boolean).pop() ?? "";
      stem = basename(decodeURIComponent(last), extname(last)) || "video";
    } catch {
      stem = "video";
    }
  }
  stem = portableText(stem)
    .replace(/^[._]+/, "")
    .slice(0, 60);
  const keyPart = portableText(key.replace(/^r-/, "").slice(0, 10));
  // The stem starts with a letter or digit ("video" at worst), so something always remains.
  return sanitizeStem(`${stem || "video"}-${keyPart}`);
}

/** Two rows with the same key, or writing to the same file, cannot both run. */
function checkClashes(rows: ManifestRow[], problems: ManifestProblem[]): void {
  const byKey = new Map<string, ManifestRow>();
  const byName = new Map<string, ManifestRow>();
  const clashing = new Set<ManifestRow>();
  for (const row of rows) {
    const sameKey = byKey.get(row.key);
    if (sameKey) {
      problems.push({
        line: row.line,
        row: problemRow(row),
        field: row.keyGiven ? "id" : undefined,
        message: row.keyGiven
          ? `id ${JSON.stringify(row.key)} is already used on line ${sameKey.line}`
          : `duplicate of line ${sameKey.line} (same image, prompt, frames and seed); give one an id to run both`,
      });
      clashing.add(row);
      continue;
    }
    byKey.set(row.key, row);
    const nameKey = row.name.toLowerCase();
    const sameName = byName.get(nameKey);
    if (sameName) {
      problems.push({
        line: row.line,
        row: problemRow(row),
        field: "name",
        message: `output name ${JSON.stringify(row.name)} is already used on line ${sameName.line}`,
      });
      clashing.add(row);
      continue;
    }
    byName.set(nameKey, row);
  }
  if (clashing.size > 0) {
    const kept = rows.filter((r) => !clashing.has(r));
    rows.length = 0;
    rows.push(...kept);
  }
}

function problemRow(row: ManifestRow): ProblemRow {
  return { key: row.key, name: row.name, image: row.image, prompt: row.prompt };
}
