// What the studio's API sends to the page. Types only (and erased at compile time), so the
// browser code can import them without pulling any Node module into the page.

/** Facts about an image, in the words the page shows. */
export interface ImageFactsView {
  format: string;
  bytes: number | null;
  width: number | null;
  height: number | null;
  /** width / height, to three decimals. */
  ratio: number | null;
}

export interface RuleProblem {
  rule: string;
  message: string;
}

export interface PreflightView {
  /** The stored upload (sha256 of its bytes), or null for a URL that was only probed. */
  id: string | null;
  url: string | null;
  facts: ImageFactsView;
  valid: boolean;
  violations: RuleProblem[];
  warnings: string[];
  /** Whether the page can show this image (a URL the browser may load, or an upload in a web format). */
  previewable: boolean;
}

export interface FitView {
  original: PreflightView;
  fitted: PreflightView;
  changes: string[];
}

export type JobInputView =
  | { kind: "upload"; id: string }
  | { kind: "url"; url: string }
  | { kind: "inline"; sha256: string; bytes: number }
  | { kind: "none" };

export interface JobView {
  localId: number;
  requestId: string | null;
  state: string;
  prompt: string;
  frames: number | null;
  seed: number | null;
  createdAt: string;
  submittedAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  updatedAt: string;
  queuePosition: number | null;
  /** Expected run time (ms), from the journal's history or the model's usual time. */
  expectedMs: number;
  cost: number | null;
  /** The service's job error, or the last error met for it, in words. */
  error: string | null;
  input: JobInputView;
  /** A downloaded video the studio can serve. */
  hasVideo: boolean;
  batchId: string | null;
  /** Started by this studio (and followed by it), or by another process. */
  ownedHere: boolean;
  /**
   * Accepted and not finished (or finished without its video here), and no process on this
   * machine follows it any more: the studio can follow it and fetch the video.
   */
  orphaned: boolean;
}

export interface TransitionView {
  status: string;
  queuePosition: number | null;
  at: string;
}

export interface FileView {
  path: string;
  bytes: number | null;
  sha256: string | null;
  at: string;
  exists: boolean;
}

export interface JobDetailView extends JobView {
  transitions: TransitionView[];
  files: FileView[];
  outputUrls: string[];
  model: string;
  service: string;
}

export interface PriceView {
  basePriceUsd: number;
  priceUnit: string;
  source: "service" | "default";
}

export interface StudioConfigView {
  sandbox: boolean;
  promptMaxLength: number;
  frames: { value: number; seconds: number }[];
  price: PriceView;
  maxUploadBytes: number;
}

export interface TotalsView {
  jobs: number;
  costUsd: number;
}

export type LiveEvent =
  | { type: "snapshot"; jobs: JobView[]; totals: TotalsView }
  | { type: "job"; job: JobView; totals: TotalsView };

export interface ApiErrorBody {
  error: { code: string; message: string; violations?: RuleProblem[] };
}

export interface InvalidRowView {
  line: number;
  field: string | null;
  rule: string | null;
  limit: string | null;
  value: string | null;
  message: string;
}

/** A batch's counts, as the batch runner keeps them. */
export interface BatchCountsView {
  total: number;
  invalid: number;
  pending: number;
  queued: number;
  running: number;
  downloading: number;
  done: number;
  failed: number;
  unknown: number;
  skipped: number;
  spentUsd: number;
  committedUsd: number;
}

export interface BatchView {
  id: string;
  manifestName: string;
  rows: number;
  valid: number;
  invalid: InvalidRowView[];
  estimatedUsd: number;
  state: "checked" | "running" | "finished" | "failed";
  budgetUsd: number | null;
  counts: BatchCountsView | null;
  summary: {
    done: number;
    failed: number;
    unknown: number;
    notRun: number;
    costUsd: number;
    exitCode: number;
  } | null;
  hasReport: boolean;
  error: string | null;
}
