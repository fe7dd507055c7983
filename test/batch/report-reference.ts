// The reports as they were built before they were streamed: each file whole, as one string.
// Kept as the reference the streamed files must equal byte for byte (report-stream.test.ts).

import { join, relative, sep } from "node:path";
import { redactSecrets } from "../../src/api/redact.js";
import type { BatchReport } from "../../src/batch/report.js";

/** report.json's text for `report`, as one string. */
export function referenceJson(report: unknown): string {
  return `${redactSecrets(JSON.stringify(report, (_k, v) => (v === undefined ? null : v), 2))}\n`;
}

const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

function escapeHtml(text: unknown): string {
  // Redacted before escaping: `'` becomes `&#39;`, whose `#` would end a URL's userinfo.
  return redactSecrets(String(text ?? "")).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);
}

/** A path relative to the report, as a URL: each segment percent-encoded. */
function relativeHref(outDir: string, file: string): string {
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

/** A base64 image data URI: nothing in it can end a CSS string or a <style> element. */
const THUMB_URI = /^data:image\/[a-z0-9.+-]+;base64,[A-Za-z0-9+/]*={0,2}$/i;

/** One CSS class per distinct thumbnail (by its data URI), in the order the rows first show them. */
function thumbnailClasses(report: BatchReport, thumbs: ReadonlyMap<string, string>): Map<string, string> {
  const classes = new Map<string, string>();
  for (const row of report.rows) {
    const uri = row.key === undefined ? undefined : thumbs.get(row.key);
    if (uri !== undefined && !classes.has(uri) && THUMB_URI.test(uri)) classes.set(uri, `t${classes.size}`);
  }
  return classes;
}

export function referenceHtml(report: BatchReport, thumbs: ReadonlyMap<string, string>): string {
  const t = report.totals;
  const classes = thumbnailClasses(report, thumbs);
  const thumbStyles = [...classes]
    .map(([uri, name]) => `.${name} { background-image: url("${uri}"); }`)
    .join("\n");
  const cards = report.rows
    .map((row) => {
      const thumb = row.key === undefined ? undefined : classes.get(thumbs.get(row.key) ?? "");
      const image = thumb
        ? `<div class="thumb pic ${thumb}" role="img" aria-label="input image"></div>`
        : row.image && /^https?:/i.test(row.image)
          ? `<a class="thumb none" href="${escapeHtml(row.image)}">remote image</a>`
          : `<div class="thumb none">no preview</div>`;
      const video =
        row.status === "done" && row.file
          ? `<video controls preload="metadata" src="${escapeHtml(relativeHref(report.outDir, row.file))}"></video>`
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
    })
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
${cards}
</main>
</body>
</html>
`;
}
