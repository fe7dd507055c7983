// The "Compare" view: 2 to 4 results side by side, played, paused and seeked together. The
// first video is the clock; the others are pulled back to it when they drift.

import type { JobView } from "../shapes.js";
import { h, replace } from "./dom.js";
import { seconds } from "./format.js";
import { compare, jobs, onCompare, toggleCompare } from "./state.js";

let root: HTMLElement | undefined;
let videos: HTMLVideoElement[] = [];
let frame: number | undefined;
const DRIFT_S = 0.08;

function sync(): void {
  const [clock, ...rest] = videos;
  if (!clock) return;
  for (const v of rest) {
    if (Math.abs(v.currentTime - clock.currentTime) > DRIFT_S && v.readyState >= 2)
      v.currentTime = clock.currentTime;
    if (clock.paused !== v.paused) void (clock.paused ? v.pause() : v.play().catch(() => {}));
  }
  const slider = root?.querySelector<HTMLInputElement>('input[type="range"]');
  if (slider && clock.duration) slider.value = String(clock.currentTime / clock.duration);
  frame = requestAnimationFrame(sync);
}

function tile(job: JobView | undefined, localId: number): HTMLElement {
  const video = h("video", {
    src: `/media/jobs/${localId}/video`,
    preload: "auto",
    muted: true,
    playsInline: true,
    loop: true,
    dataset: { testid: "compare-video" },
  });
  videos.push(video);
  return h(
    "figure",
    { class: "compare-tile" },
    video,
    h(
      "figcaption",
      {},
      h("strong", {}, `seed ${job?.seed ?? "?"}`),
      ` · ${seconds(job?.frames ?? null)} · `,
      h("span", { class: "prompt" }, job?.prompt ?? ""),
      " ",
      h("button", { type: "button", class: "link", onclick: () => toggleCompare(localId, false) }, "remove"),
    ),
  );
}

export function renderCompare(): void {
  if (!root) return;
  if (frame !== undefined) cancelAnimationFrame(frame);
  for (const v of videos) v.pause();
  videos = [];
  const picked = [...compare].filter((id) => jobs.get(id)?.hasVideo !== false);
  if (picked.length < 2) {
    replace(
      root,
      h(
        "p",
        {},
        `Pick 2 to 4 results to compare (${picked.length} picked): tick "compare" on them in the `,
        h("a", { href: "#history" }, "history"),
        " or on a result's page.",
      ),
    );
    return;
  }
  const tiles = picked.map((id) => tile(jobs.get(id), id));
  const playAll = () => {
    for (const v of videos) v.currentTime = videos[0]?.currentTime ?? 0;
    void Promise.all(videos.map((v) => v.play().catch(() => {})));
  };
  replace(
    root,
    h(
      "div",
      { class: "toolbar" },
      h("button", { type: "button", dataset: { testid: "play-all" }, onclick: playAll }, "▶ Play together"),
      h(
        "button",
        {
          type: "button",
          onclick: () => {
            for (const v of videos) v.pause();
          },
        },
        "❚❚ Pause",
      ),
      h(
        "button",
        {
          type: "button",
          onclick: () => {
            for (const v of videos) v.currentTime = 0;
          },
        },
        "⏮ Start",
      ),
      h("input", {
        type: "range",
        min: 0,
        max: 1,
        step: 0.001,
        value: 0,
        class: "scrub",
        oninput: (e: Event) => {
          const share = Number((e.target as HTMLInputElement).value);
          for (const v of videos) if (v.duration) v.currentTime = share * v.duration;
        },
      }),
    ),
    h("div", { class: `compare n${tiles.length}`, dataset: { testid: "compare" } }, ...tiles),
  );
  frame = requestAnimationFrame(sync);
}

export function mountCompare(element: HTMLElement): void {
  root = element;
  onCompare(() => {
    if (!root?.hidden) renderCompare();
  });
}

export function leaveCompare(): void {
  if (frame !== undefined) cancelAnimationFrame(frame);
  frame = undefined;
  for (const v of videos) v.pause();
}
