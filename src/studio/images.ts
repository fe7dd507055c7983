// The studio's images: uploads (and fitted copies) kept in its own folder, named by the
// sha256 of their bytes, so a name from the browser never reaches the file system; and the
// preflight facts the page shows (format, size, dimensions, ratio, every rule broken).

import { createHash, randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { DreaminaError } from "../api/dreamina-error.js";
import { checkDecodes, decodeViolation } from "../image/decode-check.js";
import { type FitOptions, fitImage } from "../image/fit.js";
import { loadImageBytes } from "../image/prepare-input.js";
import { type ProbeResult, probeImage } from "../image/probe.js";
import { checkImageFacts } from "../model/image-facts.js";
import { formatName, sniffImage } from "../model/image-header.js";
import type { Violation } from "../model/violation.js";
import type { FitView, ImageFactsView, PreflightView, RuleProblem } from "./shapes.js";

export const DEFAULT_MAX_UPLOAD_BYTES = 40 * 1024 * 1024;
const ID = /^[0-9a-f]{64}$/;
const WEB_FORMATS: Record<string, string> = {
  jpeg: "image/jpeg",
  png: "image/png",
  webp: "image/webp",
  gif: "image/gif",
  avif: "image/avif",
};

export class UploadTooLargeError extends DreaminaError {
  static override readonly code: string = "upload_too_large";
}

export function isImageId(id: string): boolean {
  return ID.test(id);
}

function problem(v: Violation): RuleProblem {
  const actual =
    v.actual === undefined || typeof v.actual === "object" ? "" : ` (this image: ${String(v.actual)})`;
  return { rule: v.rule, message: `${v.message}${actual}` };
}

function factsOf(probe: ProbeResult): ImageFactsView {
  const width = probe.width ?? null;
  const height = probe.height ?? null;
  return {
    format: formatName(probe.format) ?? probe.format,
    bytes: probe.sizeBytes ?? null,
    width,
    height,
    ratio: width && height ? Math.round((width / height) * 1000) / 1000 : null,
  };
}

export class ImageStore {
  readonly dir: string;
  readonly maxBytes: number;

  constructor(dir: string, maxBytes = DEFAULT_MAX_UPLOAD_BYTES) {
    this.dir = dir;
    this.maxBytes = maxBytes;
  }

  pathOf(id: string): string | undefined {
    return isImageId(id) ? join(this.dir, `${id}.img`) : undefined;
  }

  /** Streams a body into the folder (never more than maxBytes), named by its sha256. */
  async save(body: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>): Promise<string> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const temp = join(this.dir, `.upload-${randomBytes(8).toString("hex")}`);
    const handle = await open(temp, "wx", 0o600);
    const hash = createHash("sha256");
    let total = 0;
    try {
      for await (const chunk of body as AsyncIterable<Uint8Array>) {
        total += chunk.byteLength;
        if (total > this.maxBytes) {
          throw new UploadTooLargeError(`images are limited to ${this.maxBytes} bytes here`);
        }
        hash.update(chunk);
        await handle.write(chunk);
      }
      await handle.close();
    } catch (error) {
      await handle.close().catch(() => {});
      await rm(temp, { force: true });
      throw error;
    }
    const id = hash.digest("hex");
    await rename(temp, join(this.dir, `${id}.img`));
    return id;
  }

  async saveBytes(bytes: Uint8Array): Promise<string> {
    return this.save([bytes] as unknown as AsyncIterable<Uint8Array>);
  }

  async read(id: string): Promise<Uint8Array | undefined> {
    const path = this.pathOf(id);
    if (!path) return undefined;
    try {
      return await readFile(path);
    } catch {
      return undefined;
    }
  }

  /** The content type to show an upload with, when browsers can show it. */
  async webType(id: string): Promise<string | undefined> {
    const path = this.pathOf(id);
    if (!path) return undefined;
    try {
      const handle = await open(path, "r");
      try {
        const head = Buffer.alloc(4096);
        const { bytesRead } = await handle.read(head, 0, head.length, 0);
        return WEB_FORMATS[sniffImage(head.subarray(0, bytesRead)).format];
      } finally {
        await handle.close();
      }
    } catch {
      return undefined;
    }
  }

  /** The preflight of a stored upload: its facts, then every rule it breaks (a full decode included). */
  async preflight(id: string): Promise<PreflightView | undefined> {
    const path = this.pathOf(id);
    const bytes = path && (await this.read(id));
    if (!bytes) return undefined;
    const probe = await probeImage(bytes);
    const report = checkImageFacts(probe);
    const violations = report.violations.map(problem);
    if (report.valid) {
      const decoded = await checkDecodes(bytes);
      if (!decoded.ok) violations.push(problem(decodeViolation(decoded)));
    }
    return {
      id,
      url: null,
      facts: factsOf(probe),
      valid: violations.length === 0,
      violations,
      warnings: [...report.warnings.map((w) => w.message), ...probe.warnings],
      previewable: WEB_FORMATS[probe.format] !== undefined,
    };
  }

  /** A URL is probed (a few ranged requests), not downloaded. */
  async preflightUrl(url: string): Promise<PreflightView> {
    const probe = await probeImage(url);
    const report = checkImageFacts(probe);
    return {
      id: null,
      url,
      facts: factsOf(probe),
      valid: report.valid,
      violations: report.violations.map(problem),
      warnings: [...report.warnings.map((w) => w.message), ...probe.warnings],
      previewable: true,
    };
  }

  /** Downloads a URL's image into the folder (to fit it). */
  async importUrl(url: string): Promise<string> {
    const probe = await probeImage(url);
    if (probe.sizeBytes !== undefined && probe.sizeBytes > this.maxBytes) {
      throw new UploadTooLargeError(`images are limited to ${this.maxBytes} bytes here`);
    }
    return this.saveBytes(await loadImageBytes(url, probe));
  }

  /** The fitted copy of an upload, stored beside it, with both preflights. */
  async fit(id: string, options: FitOptions): Promise<FitView | undefined> {
    const bytes = await this.read(id);
    const original = await this.preflight(id);
    if (!bytes || !original) return undefined;
    const fitted = await fitImage(bytes, options);
    const fittedId = fitted.changed ? await this.saveBytes(fitted.bytes) : id;
    const view = await this.preflight(fittedId);
    if (!view) return undefined;
    return { original, fitted: view, changes: fitted.changes };
  }
}
