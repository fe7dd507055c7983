// The "Batch" view: a manifest (JSONL or CSV) and its images, checked first (every invalid row
// with its line, rule, limit and value; the estimated cost), then started with a budget, its
// progress followed, its report opened.

import type { BatchView } from "../shapes.js";
import { ApiError, getJson, postJson } from "./api.js";
import { h, replace, toast } from "./dom.js";
import { usd } from "./format.js";

let root: HTMLElement | undefined;
let result: HTMLElement | undefined;
let timer: number | undefined;

async function check(manifest: File | undefined, images: FileList | null): Promise<void> {
  if (!manifest || !result) {
    toast("Choose a manifest (.jsonl or .csv) first.", "error");
    return;
  }
  const form = new FormData();
  form.append("manifest", manifest, manifest.name);
  for (const image of images ?? []) form.append("images", image, image.name);
  replace(result, h("p", { class: "muted" }, "Checking every row…"));
  try {
    const response = await fetch("/api/batches", { method: "POST", body: form });
    const body = await response.json();
    if (!response.ok) throw new ApiError(response.status, body);
    show(body as BatchView);
  } catch (error) {
    replace(result);
    toast(error instanceof Error ? error.message : String(error), "error");
  }
}

function invalidTable(view: BatchView): HTMLElement | null {
  if (view.invalid.length === 0) return h("p", { class: "ok" }, "✓ Every row is valid.");
  return h(
    "table",
    { dataset: { testid: "batch-invalid" } },
    h(
      "thead",
      {},
      h("tr", {}, ...["Line", "Field", "Rule", "Limit", "Value", "What is wrong"].map((t) => h("th", {}, t))),
    ),
    h(
      "tbody",
      {},
      ...view.invalid.map((p) =>
        h(
          "tr",
          {},
          h("td", {}, String(p.line)),
          h("td", {}, p.field ?? ""),
          h("td", {}, p.rule ?? ""),
          h("td", {}, p.limit ?? ""),
          h("td", {}, p.value ?? ""),
          h("td", {}, p.message),
        ),
      ),
    ),
  );
}

function progress(view: BatchView): HTMLElement | null {
  const c = view.counts;
  if (!c) return null;
  const settled = c.done + c.failed + c.skipped;
  const planned = Math.max(1, c.total - c.invalid);
  return h(
    "div",
    { class: "batch-progress", dataset: { testid: "batch-progress" } },
    h("progress", { max: planned, value: settled }),
    h(
      "p",
      {},
      `${c.done} done · ${c.failed} failed · ${c.running} running · ${c.queued} queued · ${c.pending} waiting · ` +
        `${c.unknown} unknown · spent ${usd(c.spentUsd)}`,
    ),
  );
}

function show(view: BatchView): void {
  if (!result) return;
  const budget = h("input", {
    type: "number",
    min: 0,
    step: 0.01,
    value: String(view.estimatedUsd),
    dataset: { testid: "batch-budget" },
  });
  const start =
    view.state === "checked" && view.valid > 0
      ? h(
          "div",
          { class: "toolbar" },
          h("label", {}, "Budget (US$) ", budget),
          h(
            "button",
            {
              type: "button",
              class: "primary",
              dataset: { testid: "batch-start" },
              onclick: async () => {
                try {
                  const value = budget.value.trim() === "" ? null : Number(budget.value);
                  show(await postJson<BatchView>(`/api/batches/${view.id}/start`, { budgetUsd: value }));
                  follow(view.id);
                } catch (error) {
                  toast(error instanceof Error ? error.message : String(error), "error");
                }
              },
            },
            `Run ${view.valid} valid row${view.valid === 1 ? "" : "s"}`,
          ),
        )
      : null;
  const summary = view.summary
    ? h(
        "p",
        { dataset: { testid: "batch-summary" } },
        `Finished: ${view.summary.done} done, ${view.summary.failed} failed, ${view.summary.notRun} not run` +
          `${view.summary.unknown ? `, ${view.summary.unknown} unknown` : ""}; cost ${usd(view.summary.costUsd)}.`,
      )
    : null;
  replace(
    result,
    h(
      "p",
      { dataset: { testid: "batch-check" } },
      `${view.manifestName}: ${view.rows} row${view.rows === 1 ? "" : "s"}, ${view.valid} valid, ` +
        `${view.rows - view.valid} invalid; estimated cost ${usd(view.estimatedUsd)}.`,
    ),
    invalidTable(view),
    start,
    progress(view),
    summary,
    view.error ? h("p", { class: "error" }, view.error) : null,
    view.hasReport
      ? h(
          "a",
          { class: "button", href: `/media/batches/${view.id}/report.html`, target: "_blank" },
          "Open the report",
        )
      : null,
  );
}

function follow(id: string): void {
  window.clearInterval(timer);
  timer = window.setInterval(async () => {
    try {
      const view = await getJson<BatchView>(`/api/batches/${id}`);
      show(view);
      if (view.state !== "running") window.clearInterval(timer);
    } catch (error) {
      window.clearInterval(timer);
      toast(error instanceof Error ? error.message : String(error), "error");
    }
  }, 700);
}

export function mountBatch(element: HTMLElement): void {
  root = element;
  const manifest = h("input", {
    type: "file",
    accept: ".jsonl,.csv,.json,.txt",
    dataset: { testid: "batch-manifest" },
  });
  const images = h("input", {
    type: "file",
    accept: "image/*",
    multiple: true,
    dataset: { testid: "batch-images" },
  });
  result = h("div", { class: "batch-result" });
  replace(
    root,
    h(
      "p",
      { class: "muted" },
      "A manifest has one row a line (JSONL) or a CSV with a header: image, prompt, and optionally frames, seed, " +
        "name, id. Add the images the rows name; a row's image is matched by its file name. URLs work too.",
    ),
    h(
      "div",
      { class: "toolbar" },
      h("label", {}, "Manifest ", manifest),
      h("label", {}, "Images ", images),
      h(
        "button",
        {
          type: "button",
          dataset: { testid: "batch-check-button" },
          onclick: () => void check(manifest.files?.[0], images.files),
        },
        "Check (dry run)",
      ),
    ),
    result,
  );
}
