// The "Queue" view: every job in the journal that is not finished, live, whoever started it
// (this page, the CLI, a batch); submissions whose outcome is unknown apart, with what that
// means and what can be done; and the most recent finished ones.

import type { JobView } from "../shapes.js";
import { postJson } from "./api.js";
import { type Child, h, replace, toast } from "./dom.js";
import { ACTIVE, CANCELLABLE, label, progressLine, usd } from "./format.js";
import { jobs, newestFirst, onJobs, prefillFrom, requestPrefill, thumbSource } from "./state.js";

const RECENT = 12;
let root: HTMLElement | undefined;

function thumb(job: JobView): HTMLElement {
  const src = thumbSource(job);
  return src ? h("img", { class: "thumb", src, alt: "" }) : h("div", { class: "thumb none" });
}

function progressBar(job: JobView, now: number): HTMLProgressElement | null {
  if (job.state !== "in_progress" && job.state !== "completed") return null;
  const since = Date.parse(job.startedAt ?? job.submittedAt ?? job.createdAt);
  const share = Math.min(1, (now - since) / Math.max(1, job.expectedMs));
  return h("progress", { max: 1, value: share });
}

async function cancel(job: JobView, button: HTMLButtonElement): Promise<void> {
  button.disabled = true;
  try {
    const { outcome } = await postJson<{ outcome: string }>(`/api/jobs/${job.localId}/cancel`);
    toast(
      outcome === "cancelled"
        ? "Cancelled: nothing is billed."
        : `The service answered: ${outcome.replace("_", " ")}.`,
    );
  } catch (error) {
    toast(error instanceof Error ? error.message : String(error), "error");
    button.disabled = false;
  }
}

export async function follow(job: JobView, button: HTMLButtonElement): Promise<void> {
  button.disabled = true;
  try {
    await postJson(`/api/jobs/${job.localId}/follow`);
    toast(job.state === "succeeded" ? "Fetching the video." : "The studio follows this job now.");
  } catch (error) {
    toast(error instanceof Error ? error.message : String(error), "error");
    button.disabled = false;
  }
}

function jobCard(job: JobView, now: number, extra: Child[] = []): HTMLElement {
  const actions: Child[] = [];
  if (CANCELLABLE.has(job.state)) {
    const button: HTMLButtonElement = h(
      "button",
      { type: "button", dataset: { testid: "cancel" }, onclick: () => void cancel(job, button) },
      "Cancel",
    );
    actions.push(button);
  }
  if (job.orphaned) {
    const button: HTMLButtonElement = h(
      "button",
      { type: "button", dataset: { testid: "follow" }, onclick: () => void follow(job, button) },
      job.state === "succeeded" ? "Fetch the video" : "Follow it here",
    );
    actions.push(button);
  }
  if (job.state === "succeeded" || job.state === "failed") {
    actions.push(h("a", { href: `#job/${job.localId}` }, job.state === "succeeded" ? "Open" : "Details"));
  }
  return h(
    "article",
    {
      class: `job state-${job.state}`,
      dataset: {
        testid: "queue-job",
        state: job.state,
        localId: String(job.localId),
        requestId: job.requestId ?? "",
      },
    },
    thumb(job),
    h(
      "div",
      { class: "job-body" },
      h("p", { class: "prompt" }, job.prompt || "(no prompt)"),
      h(
        "p",
        { class: "meta" },
        h("span", { class: `badge ${job.state}` }, label(job.state)),
        " ",
        h("span", { class: "progress-line", dataset: { testid: "progress" } }, progressLine(job, now)),
        job.ownedHere
          ? null
          : h("span", { class: "muted" }, job.batchId ? " · from a batch" : " · from another process"),
      ),
      progressBar(job, now),
      job.error ? h("p", { class: "error", dataset: { testid: "job-error" } }, job.error) : null,
      job.orphaned && job.state !== "succeeded"
        ? h(
            "p",
            { class: "explain" },
            "No process follows this job any more (the one that submitted it has ended).",
          )
        : null,
      ...extra,
    ),
    h("div", { class: "job-actions" }, ...actions),
  );
}

function unknownCard(job: JobView, now: number): HTMLElement {
  return jobCard(job, now, [
    h(
      "p",
      { class: "explain" },
      "The answer to this submit was lost, so nobody knows whether the service accepted it. It may be running and billed. It was not sent again, and will not be.",
    ),
    h(
      "div",
      { class: "unknown-actions" },
      h(
        "button",
        {
          type: "button",
          onclick: async () => {
            try {
              await postJson(`/api/jobs/${job.localId}/abandon`);
              toast("Set aside. It stays in the history.");
            } catch (error) {
              toast(error instanceof Error ? error.message : String(error), "error");
            }
          },
        },
        "I checked: set it aside",
      ),
      h(
        "button",
        {
          type: "button",
          class: "danger",
          onclick: () => {
            if (!confirm("Submit the same input again? If the first one was accepted, you pay twice."))
              return;
            requestPrefill(prefillFrom(job, true));
            location.hash = "#new";
          },
        },
        "Run it again (may bill twice)",
      ),
    ),
  ]);
}

/**
 * Cards are kept while their job does not change: a live update must not swap the button
 * under a person's pointer (or a test's) for an identical new one.
 */
const cards = new Map<string, { stamp: string; el: HTMLElement }>();

function card(job: JobView, now: number, make: (job: JobView, now: number) => HTMLElement): HTMLElement {
  const key = `${make === unknownCard ? "u" : "j"}${job.localId}`;
  const stamp = JSON.stringify([
    job.updatedAt,
    job.state,
    job.queuePosition,
    job.error,
    job.orphaned,
    job.ownedHere,
    job.hasVideo,
    job.cost,
  ]);
  const hit = cards.get(key);
  if (hit && hit.stamp === stamp) return hit.el;
  const el = make(job, now);
  cards.set(key, { stamp, el });
  return el;
}

export function renderQueue(): void {
  if (!root) return;
  const now = Date.now();
  const all = newestFirst();
  const unknown = all.filter((j) => j.state === "submission_unknown");
  const active = all.filter((j) => ACTIVE.has(j.state)).reverse();
  const finished = all
    .filter((j) => !ACTIVE.has(j.state) && j.state !== "submission_unknown")
    .slice(0, RECENT);
  const cost = finished.reduce((sum, j) => sum + (j.cost ?? 0), 0);
  replace(
    root,
    unknown.length
      ? h(
          "section",
          { class: "unknown", dataset: { testid: "unknown" } },
          h("h2", {}, `Needs a decision (${unknown.length})`),
          ...unknown.map((j) => card(j, now, unknownCard)),
        )
      : null,
    h(
      "section",
      { dataset: { testid: "active" } },
      h("h2", {}, `In progress (${active.length})`),
      active.length
        ? null
        : h(
            "p",
            { class: "muted" },
            "Nothing is waiting. Make a new video, or start one from the CLI: it shows up here.",
          ),
      ...active.map((j) => card(j, now, jobCard)),
    ),
    h(
      "section",
      { dataset: { testid: "finished" } },
      h("h2", {}, "Finished recently", cost ? h("span", { class: "muted" }, ` · ${usd(cost)}`) : null),
      ...finished.map((j) => card(j, now, jobCard)),
    ),
  );
}

export function activeCount(): number {
  return newestFirst().filter((j) => ACTIVE.has(j.state) || j.state === "submission_unknown").length;
}

export function mountQueue(element: HTMLElement): void {
  root = element;
  onJobs(() => renderQueue());
  // The elapsed times move on between events: only those lines are redrawn.
  window.setInterval(() => {
    if (!root || root.hidden) return;
    const now = Date.now();
    for (const article of root.querySelectorAll<HTMLElement>(
      'article[data-state="in_progress"], article[data-state="completed"]',
    )) {
      const job = jobs.get(Number(article.dataset.localId));
      if (!job) continue;
      const line = article.querySelector('[data-testid="progress"]');
      if (line) line.textContent = progressLine(job, now);
      const bar = article.querySelector("progress");
      const fresh = progressBar(job, now);
      if (bar && fresh) bar.value = fresh.value;
    }
  }, 1000);
  renderQueue();
}
