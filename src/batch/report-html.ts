// report.html: a self-contained contact sheet that opens from disk: per row a small JPEG
// thumbnail of the input, the prompt (HTML-escaped), the status and a playable <video> whose src
// is relative to the report. Each distinct thumbnail is written once, as a data URI in a CSS class
// that every card showing it refers to: 10,000 rows sending the same few images do not repeat an
// image 10,000 times. The page is written card by card (never held whole), so its size costs no
// memory: the head, one card per row, the tail.

import { readFile } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { redactSecrets } from "../api/redact.js";
import type { BatchReport, ReportRow } from "./report.js";
import { writeAtomically } from "./report-file.js";

/** The report's rows in order, as many times as asked (the page reads them twice). */
export type ReportRows = () => Iterable<ReportRow> | AsyncIterable<ReportRow>;

/** What the page shows above the rows. */
export type HtmlReportHead = Pick<
  BatchReport,
  "batchId" | "manifest" | "outDir" | "generatedAt" | "interrupted" | "totals"
>;

const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

export function escapeHtml(text: unknown): string {
  // Redacted before escaping: `'` becomes `&#39;`, whose `#` would end a URL's userinfo.
  return redactSecrets(String(text ?? "")).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);
}

/** A path relative to the report, as a URL: each segment percent-encoded. */
export function relativeHref(outDir: string, file: string): string {
  const rel = relative(outDir, join(outDir, file));
  return rel
    .split(sep)
    .map((s) => encodeURIComponent(s))
    .join("/");
}

function errorText(error: unknown): string {
  if (error === undefined || error === null) return "";
  if (typeof error === "string") return error;
  // An invalid row carries its list of problems: one line each, as a person reads them.
  if (Array.isArray(error)) return error.map(errorText).join("\n");
  const record = error as {
    message?: unknown;
    field?: unknown;
    rule?: unknown;
    limit?: unknown;
    actual?: unknown;
  };
  if (typeof record.message === "string") {
    const where = typeof record.field === "string" ? `${record.field}: ` : "";
    const values =
      record.limit !== undefined && record.actual !== undefined
        ? ` (${String(record.rule ?? "limit")} ${JSON.stringify(record.limit)}, actual ${JSON.stringify(record.actual)})`
        : "";
    return `${where}${record.message}${values}`;
  }
  return JSON.stringify(error);
}

export interface HtmlReportOptions {
  /** Thumbnail box, px. Default 160. */
  thumbSize?: number;
  /** Thumbnails made at once. Default 8. */
  concurrency?: number;
  /** Skip thumbnails (sharp missing, or not wanted). */
  thumbnails?: boolean;
}

/**
 * Thumbnails as JPEG data URIs, keyed like `images` (row key → local path or data URI).
 * Rows sharing an image share one thumbnail. Failures leave the row without one.
 */
export async function makeThumbnails(
  images: ReadonlyMap<string, string>,
  options: HtmlReportOptions = {},
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let sharp: typeof import("sharp");
  try {
    sharp = (await import("sharp")).default;
  } catch {
    return out;
  }
  const size = options.thumbSize ?? 160;
  const bySource = new Map<string, string[]>();
  for (const [key, source] of images) {
    if (/^https?:/i.test(source)) continue; // never fetched for a report: stays self-contained
    const list = bySource.get(source) ?? [];
    list.push(key);
    bySource.set(source, list);
  }
  const sources = [...bySource.keys()];
  let next = 0;
  const worker = async () => {
    while (next < sources.length) {
      const source = sources[next++]!;
      try {
        const input = source.startsWith("data:")
          ? Buffer.from(source.slice(source.indexOf(",") + 1), "base64")
          : await readFile(source);
        const jpeg = await sharp(input, { failOn: "none" })
          .rotate()
          .resize(size, size, { fit: "inside", withoutEnlargement: true })
          .jpeg({ quality: 60, mozjpeg: true })
          .toBuffer();
        const uri = `data:image/jpeg;base64,${jpeg.toString("base64")}`;
        for (const key of bySource.get(source) ?? []) out.set(key, uri);
      } catch {
        // No thumbnail for this one.
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 8) }, worker));
  return out;
}

/** A base64 image data URI: nothing in it can end a CSS string or a <style> element. */
const THUMB_URI = /^data:image\/[a-z0-9.+-]+;base64,[A-Za-z0-9+/]*={0,2}$/i;

/** One CSS class per distinct thumbnail (by its data URI), in the order the rows first show them. */
export async function thumbnailClasses(
  rows: ReportRows,
  thumbs: ReadonlyMap<string, string>,
): Promise<Map<string, string>> {
  const classes = new Map<string, string>();
  if (thumbs.size === 0) return classes;
  for await (const row of rows()) addThumbnailClass(classes, row, thumbs);
  return classes;
}

function addThumbnailClass(
  classes: Map<string, string>,
  row: ReportRow,
  thumbs: ReadonlyMap<string, string>,
): void {
  const uri = row.key === undefined ? undefined : thumbs.get(row.key);
  if (uri !== undefined && !classes.has(uri) && THUMB_URI.test(uri)) classes.set(uri, `t${classes.size}`);
}

/** The page up to and including `<main>`, with one CSS class per distinct thumbnail. */
export function renderHtmlHead(report: HtmlReportHead, classes: ReadonlyMap<string, string>): string {
  const t = report.totals;
  const thumbStyles = [...classes]
    .map(([uri, name]) => `.${name} { background-image: url("${uri}"); }`)
    .join("\n");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dreamina batch ${escapeHtml(report.batchId)}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; background: #fafafa; color: #222; }
header p { margin: .2rem 0; color: #555; }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 1rem; margin-top: 1rem; }
.card { background: #fff; border: 1px solid #ddd; border-left: 5px solid #999; border-radius: 6px; padding: .7rem; }
.card.done { border-left-color: #2a9d4b; } .card.failed, .card.invalid { border-left-color: #d33; }
.card.unknown { border-left-color: #e0a000; }
.media { display: flex; gap: .5rem; align-items: flex-start; }
.thumb { width: 160px; max-height: 160px; background-color: #eee; flex: none; }
.thumb.pic { height: 160px; background-position: center; background-size: contain; background-repeat: no-repeat; }
video, .video { width: 240px; max-height: 240px; background: #111; }
.none { display: flex; align-items: center; justify-content: center; min-height: 90px; color: #888; background: #eee; }
h2 { font-size: 15px; margin: .5rem 0 .2rem; word-break: break-all; }
.status { text-transform: uppercase; font-size: 11px; padding: 1px 5px; border-radius: 3px; background: #eee; }
.done .status { background: #d7f2de; } .failed .status, .invalid .status { background: #fbdcdc; }
.prompt { white-space: pre-wrap; margin: .3rem 0; }
.meta { color: #666; font-size: 12px; margin: .1rem 0; word-break: break-all; }
.error { color: #b00; font-size: 12px; white-space: pre-wrap; word-break: break-word; }
</style>
<style>
${thumbStyles}
</style>
</head>
<body>
<header>
<h1>dreamina batch</h1>
<p>batch ${escapeHtml(report.batchId)}${report.manifest ? ` · manifest ${escapeHtml(report.manifest)}` : ""}</p>
<p>${t.rows} rows: ${t.done} done, ${t.failed} failed, ${t.invalid} invalid, ${t.unknown} unknown, ${t.notRun} not run · cost $${t.costUsd.toFixed(2)} (estimated $${t.estimatedUsd.toFixed(2)})${report.interrupted ? " · interrupted" : ""}</p>
<p>generated ${escapeHtml(report.generatedAt)}</p>
</header>
<main>
`;
}

/** The page after the last card. */
export const HTML_TAIL = "\n</main>\n</body>\n</html>\n";

/** One row's card (`classes`: the thumbnails' CSS classes, by data URI). */
export function renderCard(
  row: ReportRow,
  outDir: string,
  classes: ReadonlyMap<string, string>,
  thumbs: ReadonlyMap<string, string>,
): string {
  const thumb = row.key === undefined ? undefined : classes.get(thumbs.get(row.key) ?? "");
  const image = thumb
    ? `<div class="thumb pic ${thumb}" role="img" aria-label="input image"></div>`
    : row.image && /^https?:/i.test(row.image)
      ? `<a class="thumb none" href="${escapeHtml(row.image)}">remote image</a>`
      : `<div class="thumb none">no preview</div>`;
  const video =
    row.status === "done" && row.file
      ? `<video controls preload="metadata" src="${escapeHtml(relativeHref(outDir, row.file))}"></video>`
      : `<div class="video none">${escapeHtml(row.status)}</div>`;
  const meta = [
    `line ${row.line}`,
    row.frames ? `${row.frames} frames` : "",
    row.seed !== undefined ? `seed ${row.seed}` : "",
    row.costUsd !== undefined ? `$${row.costUsd.toFixed(2)}` : "",
    row.timings.durationMs !== undefined ? `${(row.timings.durationMs / 1000).toFixed(1)} s` : "",
  ]
    .filter(Boolean)
    .join(" · ");
  const error = errorText(row.error);
  return `<article class="card ${escapeHtml(row.status)}">
  <div class="media">${image}${video}</div>
  <h2><span class="status">${escapeHtml(row.status)}</span> ${escapeHtml(row.name ?? `line ${row.line}`)}</h2>
  <p class="prompt">${escapeHtml(row.prompt)}</p>
  <p class="meta">${escapeHtml(meta)}</p>
  ${row.requestId ? `<p class="meta">request ${escapeHtml(row.requestId)}</p>` : ""}
  ${error ? `<p class="error">${escapeHtml(error)}</p>` : ""}
</article>`;
}

/** The whole page as one string (for a report small enough to hold; the run streams it). */
export function renderHtml(report: BatchReport, thumbs: ReadonlyMap<string, string>): string {
  const classes = new Map<string, string>();
  for (const row of report.rows) addThumbnailClass(classes, row, thumbs);
  const cards = report.rows.map((row) => renderCard(row, report.outDir, classes, thumbs));
  return `${renderHtmlHead(report, classes)}${cards.join("\n")}${HTML_TAIL}`;
}

/** Writes report.html from `rows`, card by card; returns its path. */
export async function writeHtmlRows(
  outDir: string,
  head: HtmlReportHead,
  rows: ReportRows,
  thumbs: ReadonlyMap<string, string>,
): Promise<string> {
  const path = join(outDir, "report.html");
  const classes = await thumbnailClasses(rows, thumbs);
  await writeAtomically(path, async (write) => {
    await write(renderHtmlHead(head, classes));
    let first = true;
    for await (const row of rows()) {
      const card = renderCard(row, head.outDir, classes, thumbs);
      // Cards are separated by a newline, as the whole page joins them.
      await write(first ? card : `\n${card}`);
      first = false;
    }
    await write(HTML_TAIL);
  });
  return path;
}

/** report.html for a report held in memory, with thumbnails of `images` (row key → path or data URI). */
export async function writeHtmlReport(
  outDir: string,
  report: BatchReport,
  images: ReadonlyMap<string, string>,
  options: HtmlReportOptions = {},
): Promise<string> {
  const thumbs =
    options.thumbnails === false ? new Map<string, string>() : await makeThumbnails(images, options);
  return await writeHtmlRows(outDir, report, () => report.rows, thumbs);
}
