// One job's page: the video (served with byte ranges, so seeking works) beside its input image
// and settings; download, "again with a new seed", "edit and run"; and the whole record:
// state changes with times and queue positions, files with sha256, cost.

import type { JobDetailView } from "../shapes.js";
import { getJson } from "./api.js";
import { h, replace, toast } from "./dom.js";
import { bytes, label, seconds, usd, when } from "./format.js";
import { follow } from "./queue.js";
import { compare, onJobs, prefillFrom, requestPrefill, thumbSource, toggleCompare } from "./state.js";

let root: HTMLElement | undefined;
let shown: number | undefined;
let shownStamp = "";

function settings(job: JobDetailView): HTMLElement {
  const rows: [string, string][] = [
    ["State", label(job.state)],
    ["Length", `${seconds(job.frames)} (${job.frames ?? "?"} frames)`],
    ["Seed", job.seed === null ? "?" : String(job.seed)],
    ["Cost", job.cost === null ? "not known yet" : usd(job.cost)],
    ["Request id", job.requestId ?? "none (the submit's outcome is unknown)"],
    ["Created", when(job.createdAt)],
    ["Finished", when(job.finishedAt)],
  ];
  return h("dl", { class: "facts" }, ...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function player(job: JobDetailView): HTMLElement {
  if (job.hasVideo) {
    return h("video", {
      class: "player",
      src: `/media/jobs/${job.localId}/video`,
      controls: true,
      preload: "auto",
      playsInline: true,
      loop: true,
      dataset: { testid: "player" },
    });
  }
  const why =
    job.state === "succeeded"
      ? "The video is not on this machine (downloaded elsewhere, or moved)."
      : (job.error ?? `This job is ${label(job.state)}.`);
  return h("div", { class: "player none" }, why);
}

function render(job: JobDetailView): void {
  if (!root) return;
  const src = thumbSource(job);
  const pick = h("input", {
    type: "checkbox",
    checked: compare.has(job.localId),
    disabled: !job.hasVideo,
    onchange: (e: Event) => {
      const box = e.target as HTMLInputElement;
      if (!toggleCompare(job.localId, box.checked)) {
        box.checked = false;
        toast("Compare takes at most 4 videos.", "error");
      }
    },
  });
  replace(
    root,
    h("p", {}, h("a", { href: "#history" }, "← History")),
    h(
      "div",
      { class: "result", dataset: { testid: "result", localId: String(job.localId) } },
      h("div", { class: "result-video" }, player(job)),
      h(
        "div",
        { class: "result-side" },
        src
          ? h("img", { class: "input-image", src, alt: "input image" })
          : h("div", { class: "input-image none" }, "input image not kept"),
        h("p", { class: "prompt", dataset: { testid: "result-prompt" } }, job.prompt),
        settings(job),
        h(
          "div",
          { class: "actions" },
          job.hasVideo
            ? h(
                "a",
                { class: "button", href: `/media/jobs/${job.localId}/video?download=1`, download: "" },
                "Download",
              )
            : null,
          h(
            "button",
            {
              type: "button",
              dataset: { testid: "again" },
              onclick: () => {
                requestPrefill(prefillFrom(job, false));
                location.hash = "#new";
              },
            },
            "Again with a new seed",
          ),
          h(
            "button",
            {
              type: "button",
              dataset: { testid: "edit" },
              onclick: () => {
                requestPrefill(prefillFrom(job, true));
                location.hash = "#new";
              },
            },
            "Edit and run",
          ),
          job.orphaned
            ? h(
                "button",
                {
                  type: "button",
                  dataset: { testid: "follow" },
                  onclick: (e: Event) => void follow(job, e.currentTarget as HTMLButtonElement),
                },
                job.state === "succeeded" ? "Fetch the video" : "Follow it here",
              )
            : null,
          h("label", { class: "pick" }, pick, " compare"),
        ),
        job.error ? h("p", { class: "error" }, job.error) : null,
      ),
    ),
    h("h3", {}, "Record"),
    h(
      "table",
      { class: "transitions", dataset: { testid: "transitions" } },
      h("thead", {}, h("tr", {}, h("th", {}, "When"), h("th", {}, "State"), h("th", {}, "Queue position"))),
      h(
        "tbody",
        {},
        ...job.transitions.map((t) =>
          h(
            "tr",
            {},
            h("td", {}, when(t.at)),
            h("td", {}, label(t.status)),
            h("td", {}, t.queuePosition === null ? "" : String(t.queuePosition)),
          ),
        ),
      ),
    ),
    job.files.length
      ? h(
          "table",
          { class: "files", dataset: { testid: "files" } },
          h("thead", {}, h("tr", {}, h("th", {}, "File"), h("th", {}, "Size"), h("th", {}, "sha256"))),
          h(
            "tbody",
            {},
            ...job.files.map((f) =>
              h(
                "tr",
                {},
                h("td", {}, f.path + (f.exists ? "" : " (gone)")),
                h("td", {}, bytes(f.bytes)),
                h("td", { class: "mono" }, f.sha256 ?? ""),
              ),
            ),
          ),
        )
      : null,
    h("p", { class: "muted" }, `Model ${job.model} on ${job.service}`),
  );
}

export async function showJob(localId: number): Promise<void> {
  shown = localId;
  try {
    const job = await getJson<JobDetailView>(`/api/jobs/${localId}`);
    if (shown !== localId) return;
    shownStamp = `${job.updatedAt}|${job.state}|${job.hasVideo}`;
    render(job);
  } catch (error) {
    if (root)
      replace(root, h("p", { class: "error" }, error instanceof Error ? error.message : String(error)));
  }
}

export function hideJob(): void {
  shown = undefined;
}

export function mountResult(element: HTMLElement): void {
  root = element;
  onJobs((changed) => {
    if (shown === undefined) return;
    if (changed && changed.localId !== shown) return;
    // A video already playing is not reloaded for a change that does not touch it.
    if (changed && `${changed.updatedAt}|${changed.state}|${changed.hasVideo}` === shownStamp) return;
    void showJob(shown);
  });
}
