// Downloads of finished jobs' videos, beside the jobs in flight: a few at once, three attempts
// each, all stopped at once by an interrupt. A downloaded video settles its row (done).

import { AbortError } from "../api/errors.js";
import { isDiskFull } from "./disk-full.js";
import { fetchRowVideo } from "./fetch-video.js";
import { OutputPathError } from "./output-files.js";
import { type RowRun, releaseSettled } from "./row-run.js";
import type { BatchRunContext } from "./run-context.js";

/** Downloads the row's video (its `outputUrl`) when a slot is free; the row is "downloading" until then. */
export function startDownload(ctx: BatchRunContext, r: RowRun): void {
  r.phase = "downloading";
  ctx.downloads.run(() => download(ctx, r));
}

async function download(ctx: BatchRunContext, r: RowRun): Promise<void> {
  if (ctx.stopping) {
    r.phase = "pending";
    r.notRunReason = "interrupted";
    return;
  }
  const url = r.outputUrl;
  if (!url) {
    ctx.fail(r, "download", new Error("the job succeeded but its result names no output URL"));
    return;
  }
  if (ctx.diskFull) {
    ctx.waitForSpace(r);
    return;
  }
  let lastError: unknown;
  let downloaded = false;
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      const got = await fetchRowVideo(ctx.files!, {
        url,
        name: r.row.name,
        rowKey: r.row.key,
        signal: ctx.downloads.signal,
        onDiskFull: (path) => ctx.noteDiskFull(path),
      });
      const { file, note } = got;
      ctx.files!.record(file, r.row.key);
      r.file = file;
      r.bytes = got.bytes;
      r.sha256 = got.sha256;
      r.downloadedAt = Date.now();
      const requestId = r.requestId!;
      const done = {
        state: "done" as const,
        line: r.row.line,
        name: r.row.name,
        requestId,
        estimateUsd: r.estimateUsd,
        costUsd: r.costUsd,
        file,
        bytes: got.bytes,
        sha256: got.sha256,
      };
      ctx.commits.defer({
        kind: "file",
        requestId,
        file: { path: got.path, url, bytes: got.bytes, sha256: got.sha256 },
      });
      ctx.commits.defer({ kind: "batch_row", batchId: ctx.batchId, rowKey: r.row.key, outcome: done });
      r.phase = "done";
      r.settledNow = true;
      releaseSettled(r);
      ctx.emit({
        type: "downloaded",
        row: r.ref,
        requestId: r.requestId!,
        path: got.path,
        bytes: got.bytes,
        sha256: got.sha256,
        resumed: got.resumed,
      });
      ctx.emit({
        type: "row-done",
        row: r.ref,
        requestId: r.requestId!,
        costUsd: r.costUsd,
        file,
        sha256: got.sha256,
        note,
      });
      downloaded = true;
      break;
    } catch (error) {
      lastError = error;
      if (error instanceof OutputPathError) break;
      if (isDiskFull(error)) {
        ctx.waitForSpace(r);
        return;
      }
      if (ctx.stopping || error instanceof AbortError) {
        r.phase = "pending";
        r.notRunReason = "interrupted";
        return;
      }
      const code = (error as { code?: string }).code;
      if (
        code === "download_http_status" &&
        [403, 404, 410].includes((error as { status?: number }).status ?? 0)
      )
        break;
      await new Promise((res) => setTimeout(res, 200 * attempt));
    }
  }
  // Outside the attempts: an error thrown by the hook is no failed download.
  if (downloaded) ctx.onRowSettled?.(r);
  else ctx.fail(r, "download", lastError);
}
