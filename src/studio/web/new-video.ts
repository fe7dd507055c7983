// The "New video" view: an image (dropped, chosen or by URL) with its preflight at once, the
// fitted version beside it on one click, then prompt, length, seed and the price before submit.

import type { FitView, PreflightView } from "../shapes.js";
import { ApiError, getJson, postJson, uploadImage } from "./api.js";
import { byId, h, replace, toast } from "./dom.js";
import { bytes, estimate, usd } from "./format.js";
import { config, onPrefill, type Prefill } from "./state.js";

interface Form {
  current: PreflightView | undefined;
  fit: FitView | undefined;
  seedMode: "random" | "fixed";
}

const form: Form = { current: undefined, fit: undefined, seedMode: "random" };

function imageSource(view: PreflightView): string | undefined {
  if (!view.previewable) return undefined;
  return view.id ? `/media/images/${view.id}` : (view.url ?? undefined);
}

function factsTable(view: PreflightView): HTMLElement {
  const f = view.facts;
  const rows: [string, string][] = [
    ["Format", f.format],
    ["File size", bytes(f.bytes)],
    ["Width × height", f.width !== null && f.height !== null ? `${f.width} × ${f.height}` : "unknown"],
    ["Ratio", f.ratio !== null ? String(f.ratio) : "unknown"],
  ];
  return h(
    "dl",
    { class: "facts", dataset: { testid: "facts" } },
    ...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
  );
}

function verdict(view: PreflightView): HTMLElement {
  if (view.valid) {
    return h("p", { class: "ok", dataset: { testid: "verdict" } }, "✓ The model accepts this image.");
  }
  return h(
    "div",
    { class: "problems", dataset: { testid: "verdict" } },
    h(
      "p",
      { class: "bad" },
      `✗ The model refuses this image (${view.violations.length} rule${view.violations.length === 1 ? "" : "s"} broken):`,
    ),
    h(
      "ul",
      { class: "violations", dataset: { testid: "violations" } },
      ...view.violations.map((v) => h("li", {}, v.message)),
    ),
  );
}

function imageCard(view: PreflightView, title: string): HTMLElement {
  const src = imageSource(view);
  return h(
    "figure",
    { class: "image-card" },
    h("figcaption", {}, title),
    src ? h("img", { src, alt: title, class: "preview" }) : h("div", { class: "preview none" }, "no preview"),
    factsTable(view),
    verdict(view),
    view.warnings.length ? h("ul", { class: "warnings" }, ...view.warnings.map((w) => h("li", {}, w))) : null,
  );
}

function renderPreflight(): void {
  const box = byId("preflight");
  const view = form.current;
  if (!view) {
    replace(box);
    return;
  }
  if (form.fit) {
    const fitted = form.fit.fitted;
    replace(
      box,
      h(
        "div",
        { class: "side-by-side", dataset: { testid: "fit-compare" } },
        imageCard(form.fit.original, "Original"),
        imageCard(fitted, "Fitted (used)"),
      ),
      h("ul", { class: "changes" }, ...form.fit.changes.map((c) => h("li", {}, c))),
      h(
        "button",
        {
          type: "button",
          class: "link",
          onclick: () => {
            form.current = form.fit?.original;
            form.fit = undefined;
            renderPreflight();
          },
        },
        "Use the original instead",
      ),
    );
  } else {
    const fixes = view.valid
      ? null
      : h(
          "div",
          { class: "fix" },
          h("span", {}, "Fix it: "),
          h(
            "button",
            { type: "button", dataset: { testid: "fit-pad" }, onclick: () => void fit("pad") },
            "Fit (pad)",
          ),
          h(
            "button",
            { type: "button", dataset: { testid: "fit-crop" }, onclick: () => void fit("crop") },
            "Fit (crop)",
          ),
        );
    replace(box, imageCard(view, "Your image"), fixes);
  }
  updateSubmit();
}

async function fit(ratio: "pad" | "crop"): Promise<void> {
  const view = form.current;
  if (!view) return;
  try {
    const result = view.id
      ? await postJson<FitView>(`/api/images/${view.id}/fit`, { ratio })
      : await postJson<FitView>("/api/fit-url", { url: view.url, ratio });
    form.fit = result;
    form.current = result.fitted;
    renderPreflight();
  } catch (error) {
    toast(error instanceof Error ? error.message : String(error), "error");
  }
}

async function takeFile(file: File | Blob): Promise<void> {
  const limit = config?.maxUploadBytes ?? Number.POSITIVE_INFINITY;
  if (file.size > limit) {
    toast(`That file is ${bytes(file.size)}; the studio takes images up to ${bytes(limit)}.`, "error");
    return;
  }
  replace(byId("preflight"), h("p", { class: "muted" }, "Checking the image…"));
  try {
    form.fit = undefined;
    form.current = await uploadImage(file);
  } catch (error) {
    form.current = undefined;
    toast(error instanceof Error ? error.message : String(error), "error");
  }
  renderPreflight();
}

async function takeUrl(url: string): Promise<void> {
  if (!url.trim()) return;
  replace(byId("preflight"), h("p", { class: "muted" }, "Checking the image at that address…"));
  try {
    form.fit = undefined;
    form.current = await postJson<PreflightView>("/api/preflight-url", { url: url.trim() });
  } catch (error) {
    form.current = undefined;
    replace(byId("preflight"));
    toast(error instanceof Error ? error.message : String(error), "error");
  }
  renderPreflight();
}

function promptLength(): number {
  return [...(byId<HTMLTextAreaElement>("prompt").value ?? "")].length;
}

function frames(): number {
  const checked = document.querySelector<HTMLInputElement>('input[name="frames"]:checked');
  return checked ? Number(checked.value) : 121;
}

function updateSubmit(): void {
  const max = config?.promptMaxLength ?? 800;
  const length = promptLength();
  const counter = byId("prompt-count");
  counter.textContent = `${length} / ${max}`;
  counter.className = length > max ? "count over" : "count";
  const price = config ? estimate(config.price, frames()) : undefined;
  const cost = byId("cost");
  cost.textContent =
    price === undefined
      ? ""
      : `This video costs about ${usd(price)} (${usd(config!.price.basePriceUsd)} per ${config!.price.priceUnit}` +
        `${config!.price.source === "default" ? ", the published price" : ""})${config!.sandbox ? "; on the sandbox nothing is billed" : ""}.`;
  const prompt = byId<HTMLTextAreaElement>("prompt").value;
  const ready = Boolean(form.current?.valid) && prompt.trim().length > 0 && length <= max;
  const button = byId<HTMLButtonElement>("submit");
  button.disabled = !ready;
  button.textContent = price === undefined ? "Make the video" : `Make the video (${usd(price)})`;
}

async function submit(event: Event): Promise<void> {
  event.preventDefault();
  const view = form.current;
  if (!view?.valid) return;
  const button = byId<HTMLButtonElement>("submit");
  button.disabled = true;
  const seedText = byId<HTMLInputElement>("seed").value.trim();
  const seed = form.seedMode === "fixed" && seedText !== "" ? Number(seedText) : null;
  try {
    const body = {
      image: view.id ? { upload: view.id } : { url: view.url },
      prompt: byId<HTMLTextAreaElement>("prompt").value,
      frames: frames(),
      seed,
    };
    const { requestId } = await postJson<{ requestId: string }>("/api/jobs", body);
    toast(`Submitted (request ${requestId}). It is in the queue.`);
    location.hash = "#queue";
  } catch (error) {
    const words =
      error instanceof ApiError && error.violations.length
        ? error.violations.map((v) => v.message).join("; ")
        : "";
    toast(`${error instanceof Error ? error.message : String(error)}${words ? ` ${words}` : ""}`, "error");
  } finally {
    updateSubmit();
  }
}

function setSeedMode(mode: "random" | "fixed"): void {
  form.seedMode = mode;
  byId<HTMLInputElement>("seed").disabled = mode === "random";
  byId<HTMLInputElement>(`seed-${mode}`).checked = true;
}

async function applyPrefill(p: Prefill): Promise<void> {
  byId<HTMLTextAreaElement>("prompt").value = p.prompt;
  const radio = document.querySelector<HTMLInputElement>(`input[name="frames"][value="${p.frames}"]`);
  if (radio) radio.checked = true;
  byId<HTMLInputElement>("seed").value = p.seed === null ? "" : String(p.seed);
  setSeedMode(p.seed === null ? "random" : "fixed");
  form.fit = undefined;
  form.current = undefined;
  if (p.image && "upload" in p.image) {
    try {
      form.current = await getJson<PreflightView>(`/api/images/${p.image.upload}`);
    } catch {
      toast("The image of that job is no longer in the studio: choose it again.", "error");
    }
  } else if (p.image) {
    byId<HTMLInputElement>("image-url").value = p.image.url;
    await takeUrl(p.image.url);
    return;
  }
  renderPreflight();
}

export function mountNewVideo(root: HTMLElement): void {
  const fileInput = h("input", {
    type: "file",
    id: "file",
    accept: "image/*",
    onchange: () => {
      const file = fileInput.files?.[0];
      if (file) void takeFile(file);
    },
  });
  const drop = h(
    "label",
    { class: "drop", for: "file", dataset: { testid: "drop" } },
    h("strong", {}, "Drop an image here"),
    h("span", {}, " or click to choose one (JPEG or PNG; anything else can be fitted)"),
    fileInput,
  );
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const file = e.dataTransfer?.files[0];
    if (file) void takeFile(file);
  });
  const urlInput = h("input", {
    type: "url",
    id: "image-url",
    placeholder: "…or paste an image URL (https://…)",
  });
  const max = config?.promptMaxLength ?? 800;
  replace(
    root,
    h(
      "form",
      { class: "new-video", onsubmit: (e: Event) => void submit(e) },
      h(
        "div",
        { class: "col" },
        drop,
        h(
          "div",
          { class: "url-row" },
          urlInput,
          h("button", { type: "button", onclick: () => void takeUrl(urlInput.value) }, "Check"),
        ),
        h("div", { id: "preflight" }),
      ),
      h(
        "div",
        { class: "col" },
        h(
          "label",
          { for: "prompt" },
          "Prompt ",
          h("span", { id: "prompt-count", class: "count" }, `0 / ${max}`),
        ),
        h("textarea", {
          id: "prompt",
          rows: 6,
          placeholder: "What happens in the video: the motion, the camera, the light…",
          oninput: updateSubmit,
        }),
        h(
          "fieldset",
          { class: "frames" },
          h("legend", {}, "Length"),
          ...(
            config?.frames ?? [
              { value: 121, seconds: 5 },
              { value: 241, seconds: 10 },
            ]
          ).map((f, i) =>
            h(
              "label",
              {},
              h("input", {
                type: "radio",
                name: "frames",
                value: String(f.value),
                checked: i === 0,
                onchange: updateSubmit,
              }),
              ` ≈${f.seconds} s (${f.value} frames)`,
            ),
          ),
        ),
        h(
          "fieldset",
          { class: "seed" },
          h("legend", {}, "Seed"),
          h(
            "label",
            {},
            h("input", {
              type: "radio",
              name: "seed-mode",
              id: "seed-random",
              checked: true,
              onchange: () => setSeedMode("random"),
            }),
            " random",
          ),
          h(
            "label",
            {},
            h("input", {
              type: "radio",
              name: "seed-mode",
              id: "seed-fixed",
              onchange: () => setSeedMode("fixed"),
            }),
            " fixed: ",
          ),
          h("input", { type: "number", id: "seed", step: 1, min: 0, disabled: true, placeholder: "e.g. 42" }),
        ),
        h("p", { id: "cost", class: "cost", dataset: { testid: "cost" } }),
        h("button", { type: "submit", id: "submit", class: "primary", disabled: true }, "Make the video"),
      ),
    ),
  );
  updateSubmit();
  onPrefill((p) => void applyPrefill(p));
}
