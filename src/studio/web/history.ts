// The "History" view: every job, newest first, as a grid of poster frames; filter by state,
// search by prompt, the total spent; pick results to compare.

import type { JobView, TotalsView } from "../shapes.js";
import { getJson } from "./api.js";
import { h, replace, toast } from "./dom.js";
import { label, STATE_LABEL, seconds, usd, when } from "./format.js";
import { compare, onJobs, thumbSource, toggleCompare } from "./state.js";

let root: HTMLElement | undefined;
let grid: HTMLElement | undefined;
let summary: HTMLElement | undefined;
let stateFilter = "";
let query = "";
let timer: number | undefined;

function poster(job: JobView): HTMLElement {
  const src = thumbSource(job);
  // The first frame of the video is the input image, so it is the poster where the studio has it.
  if (src) return h("img", { class: "poster", src, alt: "", loading: "lazy" });
  if (job.hasVideo) {
    return h("video", {
      class: "poster",
      src: `/media/jobs/${job.localId}/video#t=0.1`,
      preload: "metadata",
      muted: true,
    });
  }
  return h("div", { class: "poster none" }, label(job.state));
}

function card(job: JobView): HTMLElement {
  const pick = job.hasVideo
    ? h(
        "label",
        { class: "pick", onclick: (e: Event) => e.stopPropagation() },
        h("input", {
          type: "checkbox",
          checked: compare.has(job.localId),
          dataset: { testid: "pick" },
          onchange: (e: Event) => {
            const box = e.target as HTMLInputElement;
            if (!toggleCompare(job.localId, box.checked)) {
              box.checked = false;
              toast("Compare takes at most 4 videos.", "error");
            }
          },
        }),
        " compare",
      )
    : null;
  return h(
    "a",
    {
      class: `card state-${job.state}`,
      href: `#job/${job.localId}`,
      dataset: { testid: "history-card", localId: String(job.localId), state: job.state },
    },
    poster(job),
    h("span", { class: `badge ${job.state}` }, label(job.state)),
    h("p", { class: "prompt" }, job.prompt || "(no prompt)"),
    h(
      "p",
      { class: "meta" },
      `${seconds(job.frames)} · seed ${job.seed ?? "?"} · ${job.cost === null ? "" : `${usd(job.cost)} · `}${when(job.createdAt)}`,
    ),
    pick,
  );
}

export async function loadHistory(): Promise<void> {
  if (!grid || !summary) return;
  const params = new URLSearchParams();
  if (stateFilter) params.set("state", stateFilter);
  if (query) params.set("q", query);
  try {
    const { jobs, totals } = await getJson<{ jobs: JobView[]; totals: TotalsView }>(`/api/history?${params}`);
    summary.textContent = `${totals.jobs} job${totals.jobs === 1 ? "" : "s"} · ${usd(totals.costUsd)} spent`;
    replace(grid, ...(jobs.length ? jobs.map(card) : [h("p", { class: "muted" }, "No job matches.")]));
  } catch (error) {
    toast(error instanceof Error ? error.message : String(error), "error");
  }
}

export function mountHistory(element: HTMLElement): void {
  root = element;
  const select = h(
    "select",
    {
      dataset: { testid: "state-filter" },
      onchange: (e: Event) => {
        stateFilter = (e.target as HTMLSelectElement).value;
        void loadHistory();
      },
    },
    h("option", { value: "" }, "every state"),
    ...Object.entries(STATE_LABEL).map(([value, text]) => h("option", { value }, text)),
  );
  const search = h("input", {
    type: "search",
    placeholder: "search the prompts",
    dataset: { testid: "search" },
    oninput: (e: Event) => {
      query = (e.target as HTMLInputElement).value.trim();
      window.clearTimeout(timer);
      timer = window.setTimeout(() => void loadHistory(), 250);
    },
  });
  summary = h("span", { class: "summary", dataset: { testid: "totals" } });
  grid = h("div", { class: "grid", dataset: { testid: "history" } });
  replace(
    root,
    h(
      "div",
      { class: "toolbar" },
      select,
      search,
      summary,
      h("a", { href: "#compare", class: "button" }, "Compare the picked ones"),
    ),
    grid,
  );
  onJobs(() => {
    if (root?.hidden) return;
    window.clearTimeout(timer);
    timer = window.setTimeout(() => void loadHistory(), 300);
  });
}
