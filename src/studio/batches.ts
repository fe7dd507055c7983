// Batches from the page: a manifest (JSONL or CSV) and its images are uploaded into a folder of
// the studio's own, checked (the batch's dry run: every invalid row with line, rule, limit and
// value; the estimated cost), then run with a budget by the batch runner, on the same journal.
// A local image of a row is looked up by its file name among the uploaded images only: no path
// written in the manifest is ever opened as it is.

import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import type { RunComfyClient } from "../api/client.js";
import { type BatchEvent, parseManifest, runBatch } from "../batch/index.js";
import type { Manifest } from "../batch/manifest.js";
import { sanitizeFileName } from "../download/file-name.js";
import type { JobStore as Journal } from "../store/index.js";
import { StudioRequestError } from "./jobs.js";
import type { BatchView } from "./shapes.js";

export interface BatchFile {
  name: string;
  bytes: Uint8Array;
}

interface Batch {
  view: BatchView;
  dir: string;
  manifest: Manifest;
  run: ReturnType<typeof runBatch> | undefined;
}

const text = (value: unknown): string | null =>
  value === undefined || value === null ? null : typeof value === "string" ? value : JSON.stringify(value);

export class StudioBatches {
  readonly #dir: string;
  readonly #client: RunComfyClient;
  readonly #journal: Journal;
  readonly #timeScale: number | undefined;
  readonly #batches = new Map<string, Batch>();
  readonly #stop = new AbortController();
  readonly #running = new Set<Promise<void>>();
  readonly #onChange: () => void;

  constructor(options: {
    dir: string;
    client: RunComfyClient;
    journal: Journal;
    timeScale: number | undefined;
    onChange: () => void;
  }) {
    this.#dir = options.dir;
    this.#client = options.client;
    this.#journal = options.journal;
    this.#timeScale = options.timeScale;
    this.#onChange = options.onChange;
  }

  get(id: string): BatchView | undefined {
    const batch = this.#batches.get(id);
    if (!batch) return undefined;
    if (batch.run) batch.view.counts = batch.run.counts();
    return batch.view;
  }

  reportPath(id: string): string | undefined {
    const batch = this.#batches.get(id);
    return batch?.view.hasReport ? join(batch.dir, "out", "report.html") : undefined;
  }

  /** A video of the batch's output folder, by a plain `.mp4` file name (nothing else is served). */
  videoPath(id: string, name: string): string | undefined {
    const batch = this.#batches.get(id);
    if (!batch || name !== basename(name) || name.startsWith(".") || !name.toLowerCase().endsWith(".mp4")) {
      return undefined;
    }
    return join(batch.dir, "out", name);
  }

  /** Keeps the files, parses the manifest and runs the dry run. */
  async create(manifest: BatchFile, images: BatchFile[]): Promise<BatchView> {
    const format = /\.csv$/i.test(manifest.name) ? "csv" : "jsonl";
    const id = `${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, "")}-${randomBytes(3).toString("hex")}`;
    const dir = join(this.#dir, id);
    const imagesDir = join(dir, "images");
    await mkdir(imagesDir, { recursive: true, mode: 0o700 });
    await writeFile(join(dir, `manifest.${format}`), manifest.bytes, { mode: 0o600 });
    const names = new Set<string>();
    for (const image of images) {
      const name = sanitizeFileName(basename(image.name), "", "image");
      if (names.has(name)) throw new StudioRequestError(400, `two images are named ${name}`);
      names.add(name);
      await writeFile(join(imagesDir, name), image.bytes, { mode: 0o600, flag: "wx" });
    }
    const parsed = parseManifest(manifest.bytes, {
      format,
      baseDir: imagesDir,
      path: join(dir, `manifest.${format}`),
    });
    for (const row of parsed.rows) {
      if (!row.imageIsUrl)
        row.imageSource = join(imagesDir, sanitizeFileName(basename(row.image), "", "image"));
    }
    const view: BatchView = {
      id,
      manifestName: sanitizeFileName(basename(manifest.name), "", "manifest"),
      rows: parsed.rows.length + parsed.problems.length,
      valid: 0,
      invalid: [],
      estimatedUsd: 0,
      state: "checked",
      budgetUsd: null,
      counts: null,
      summary: null,
      hasReport: false,
      error: null,
    };
    const batch: Batch = { view, dir, manifest: parsed, run: undefined };
    const dry = runBatch(parsed, this.#options(dir, { dryRun: true, skipInvalid: true }));
    for await (const event of dry) this.#collect(view, event);
    const summary = await dry.summary;
    view.valid = summary.valid;
    view.estimatedUsd = summary.estimatedUsd;
    this.#batches.set(id, batch);
    return view;
  }

  /** Runs the valid rows, never committing more than the budget. */
  start(id: string, budgetUsd: number | null): BatchView {
    const batch = this.#batches.get(id);
    if (!batch) throw new StudioRequestError(404, "no such batch");
    if (batch.run) throw new StudioRequestError(409, "this batch has already started");
    if (batch.view.valid === 0) throw new StudioRequestError(409, "no row of this batch is valid");
    batch.view.state = "running";
    batch.view.budgetUsd = budgetUsd;
    const run = runBatch(
      batch.manifest,
      this.#options(batch.dir, {
        skipInvalid: true,
        budgetUsd: budgetUsd ?? undefined,
        signal: this.#stop.signal,
      }),
    );
    batch.run = run;
    const following = (async () => {
      try {
        for await (const event of run) {
          if (event.type === "report") batch.view.hasReport = event.html !== undefined;
          this.#onChange();
        }
        const s = await run.summary;
        batch.view.summary = {
          done: s.done,
          failed: s.failed,
          unknown: s.unknown,
          notRun: s.notRun,
          costUsd: s.costUsd,
          exitCode: s.exitCode,
        };
        batch.view.state = "finished";
      } catch (error) {
        batch.view.state = "failed";
        batch.view.error = error instanceof Error ? error.message : String(error);
      }
      batch.view.counts = run.counts();
      this.#onChange();
    })();
    this.#running.add(following);
    void following.finally(() => this.#running.delete(following));
    return batch.view;
  }

  /** Stops submitting; jobs in flight are left resumable (the same manifest picks them up). */
  async close(): Promise<void> {
    this.#stop.abort(new Error("the studio is closing"));
    await Promise.allSettled([...this.#running]);
  }

  #options(dir: string, extra: Partial<Parameters<typeof runBatch>[1]>): Parameters<typeof runBatch>[1] {
    return {
      client: this.#client,
      journal: this.#journal,
      outDir: join(dir, "out"),
      timeScale: this.#timeScale,
      thumbnails: true,
      ...extra,
    };
  }

  #collect(view: BatchView, event: BatchEvent): void {
    if (event.type !== "row-invalid") return;
    for (const p of event.problems) {
      view.invalid.push({
        line: event.line,
        field: p.field ?? null,
        rule: p.rule ?? null,
        limit: text(p.limit),
        value: text(p.actual),
        message: p.message,
      });
    }
  }
}
