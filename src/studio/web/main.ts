// The studio page: views over one live job list fed by server-sent events. Reloading or a
// second tab shows the same state: everything comes from the server, nothing from the tab.

import type { StudioConfigView } from "../shapes.js";
import { connectLive, getJson } from "./api.js";
import { mountBatch } from "./batch.js";
import { leaveCompare, mountCompare, renderCompare } from "./compare.js";
import { byId, toast } from "./dom.js";
import { loadHistory, mountHistory } from "./history.js";
import { mountNewVideo } from "./new-video.js";
import { activeCount, mountQueue, renderQueue } from "./queue.js";
import { hideJob, mountResult, showJob } from "./result.js";
import { applyJob, applySnapshot, compare, onCompare, onJobs, setConfig } from "./state.js";

const VIEWS = ["new", "queue", "history", "job", "compare", "batch"] as const;
type View = (typeof VIEWS)[number];

function route(): void {
  const [name, arg] = location.hash.replace(/^#/, "").split("/");
  const view: View = (VIEWS as readonly string[]).includes(name ?? "") ? (name as View) : "new";
  for (const v of VIEWS) byId(`view-${v}`).hidden = v !== view;
  for (const link of document.querySelectorAll<HTMLAnchorElement>("#tabs a")) {
    link.classList.toggle(
      "active",
      link.dataset.view === view || (view === "job" && link.dataset.view === "history"),
    );
  }
  document.body.dataset.view = view;
  if (view !== "job") hideJob();
  if (view !== "compare") leaveCompare();
  if (view === "job" && arg && /^\d+$/.test(arg)) void showJob(Number(arg));
  if (view === "history") void loadHistory();
  if (view === "queue") renderQueue();
  if (view === "compare") renderCompare();
}

function counts(): void {
  const active = activeCount();
  byId("queue-count").textContent = active ? String(active) : "";
  byId("compare-count").textContent = compare.size ? String(compare.size) : "";
}

async function start(): Promise<void> {
  try {
    const config = await getJson<StudioConfigView>("/api/config");
    setConfig(config);
    byId("mode").textContent = config.sandbox
      ? "sandbox: offline, nothing is billed"
      : "RunComfy: jobs are billed";
    byId("mode").className = config.sandbox ? "mode sandbox" : "mode live";
  } catch (error) {
    toast(error instanceof Error ? error.message : String(error), "error");
  }
  mountNewVideo(byId("view-new"));
  mountQueue(byId("view-queue"));
  mountHistory(byId("view-history"));
  mountResult(byId("view-job"));
  mountCompare(byId("view-compare"));
  mountBatch(byId("view-batch"));
  onJobs(counts);
  onCompare(counts);
  connectLive({
    snapshot: applySnapshot,
    job: applyJob,
    status: (connected) => {
      const live = byId("live");
      live.textContent = connected ? "● live" : "○ reconnecting…";
      live.className = connected ? "live on" : "live off";
      document.body.dataset.live = connected ? "on" : "off";
    },
  });
  window.addEventListener("hashchange", route);
  route();
}

void start();
