// `dreamina validate`: the model's rules applied to an image (and prompt, frames, seed)
// without calling the API, every violation listed. `--fit OUT` writes a fixed copy and
// checks that instead. sharp and the probe load inside the action, not at start-up.

import { type Command, Option } from "commander";
import type { ProbeResult } from "../../image/probe.js";
import type { ImageFacts } from "../../model/image-facts.js";
import type { ValidationReport, Violation } from "../../model/violation.js";
import type { ActionRunner } from "../action.js";
import { readPrompt } from "../arguments.js";
import { CliError } from "../cli-error.js";
import { EXIT, exitCodeFor, exitCodesHelp } from "../exit-codes.js";
import type { Factory } from "../factory.js";

export interface ValidateOptions {
  image: string;
  prompt?: string;
  promptFile?: string;
  frames?: string;
  seed?: string;
  fit?: string;
  ratio: "pad" | "crop";
  background: string;
  timeout: string;
}

export function registerValidate(program: Command, run: ActionRunner): void {
  program
    .command("validate")
    .description("check an image, prompt, frames and seed against the model's rules (offline: no API call)")
    .requiredOption("-i, --image <path|url>", "the input image: a local file, an http(s) URL or a data URI")
    .option("-p, --prompt <text>", "the prompt (at most 800 characters); not checked when omitted")
    .option("--prompt-file <path>", "read the prompt from a file")
    .option("--frames <n>", "121 (about 5 s) or 241 (about 10 s)")
    .option("--seed <n>", "an integer; -1 for random")
    .option(
      "--fit <out>",
      "write a copy of the image fixed to comply (JPEG/PNG, size, ratio) to OUT, and validate it",
    )
    .addOption(
      new Option("--ratio <how>", "with --fit: bring the ratio in by padding or by a centre crop")
        .choices(["pad", "crop"])
        .default("pad"),
    )
    .option(
      "--background <blur|colour>",
      "with --fit and --ratio pad: the fill, blur or a colour like '#000'",
      "blur",
    )
    .option("--timeout <ms>", "time limit for probing a URL", "20000")
    .addHelpText(
      "after",
      [
        "",
        "Exit 0 when valid, 65 when not (every violation is listed), 66 when the image cannot be read.",
        "",
        "Examples:",
        "  dreamina validate --image photo.jpg --prompt 'a slow pan' --frames 241",
        "  dreamina validate --image https://example.com/p.png --json",
        "  dreamina validate --image panorama.webp --fit panorama-fixed.jpg",
        exitCodesHelp("validate"),
      ].join("\n"),
    )
    .action((flags: ValidateOptions, self: Command) => run(self, (ctx) => runValidate(flags, ctx)));
}

function integerFlag(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value.trim());
  if (value.trim() === "" || !Number.isFinite(number)) {
    throw new CliError("usage", `--${name} must be a number (got ${JSON.stringify(value)})`);
  }
  return number; // 120 or 1.5 are numbers the rules then reject, with the rule's message
}

/** Offline: the factory's client, store and sandbox are never asked for. */
export async function runValidate(flags: ValidateOptions, ctx: Factory): Promise<number> {
  const { io } = ctx;
  const prompt = await readPrompt(flags);
  const frames = integerFlag(flags.frames, "frames");
  const seed = integerFlag(flags.seed, "seed");
  const timeoutMs = integerFlag(flags.timeout, "timeout") ?? 20_000;
  const [{ ImageProbeError, probeImage }, { validate }] = await Promise.all([
    import("../../image/probe.js"),
    import("../../model/validate.js"),
  ]);

  const problems: Violation[] = [];
  let probe: ProbeResult | undefined;
  try {
    probe = await probeImage(flags.image, { timeoutMs });
  } catch (error) {
    // The same code as run and submit give for this image (exit-codes.ts decides): an image
    // that cannot be read stops here; bytes that are not a usable image are one more violation.
    if (!(error instanceof ImageProbeError) || exitCodeFor(error) !== EXIT.dataError) throw error;
    problems.push({ path: "image_urls[0]", rule: error.code, message: error.message });
  }

  if (probe && !flags.fit) {
    // A local image is decoded in full, as run and submit insist before sending it.
    const { checkImageContent } = await import("../../image/prepare-input.js");
    problems.push(...(await checkImageContent(flags.image, probe, { timeoutMs })));
  }

  let fit: Record<string, unknown> | undefined;
  let checked: ProbeResult | undefined = probe;
  if (flags.fit && probe) {
    const out = flags.fit;
    const [{ fitImage, ImageFitError }, { loadImageBytes }, { rename, writeFile }] = await Promise.all([
      import("../../image/fit.js"),
      import("../../image/prepare-input.js"),
      import("node:fs/promises"),
    ]);
    const bytes = await loadImageBytes(flags.image, probe, { timeoutMs });
    const format = /\.jpe?g$/i.test(out) ? "jpeg" : /\.png$/i.test(out) ? "png" : undefined;
    let result: Awaited<ReturnType<typeof fitImage>>;
    try {
      result = await fitImage(bytes, {
        ratio: flags.ratio,
        background: flags.background,
        ...(format ? { format } : {}),
      });
    } catch (error) {
      if (error instanceof ImageFitError) {
        const wrapped = CliError.wrap(error, `cannot fit the image: ${error.message}`);
        wrapped.name = "CliError"; // as it always was in --json; the code is the fitter's
        throw wrapped;
      }
      throw error;
    }
    // Written beside the target and renamed, so OUT is never a half-written image.
    const part = `${out}.part`;
    await writeFile(part, result.bytes);
    await rename(part, out);
    checked = await probeImage(out);
    fit = {
      out,
      changed: result.changed,
      changes: result.changes,
      format: result.format,
      width: result.width,
      height: result.height,
      sizeBytes: result.bytes.length,
    };
  }

  // A local image is sent as a data URI; a placeholder of that form stands for it here.
  const isUrl = /^https?:\/\//i.test(flags.image.trim());
  const imageRef = isUrl && !fit ? flags.image.trim() : `data:image/${checked?.format ?? "jpeg"};base64,`;
  const input: Record<string, unknown> = { image_urls: [imageRef] };
  if (prompt !== undefined) input.prompt = prompt;
  if (frames !== undefined) input.frames = frames;
  if (seed !== undefined) input.seed = seed;

  const facts: ImageFacts | undefined = checked;
  const report: ValidationReport = validate(input, facts ? { image: facts } : {});
  report.violations = report.violations.filter((v) => !(v.path === "prompt" && v.rule === "required"));
  if (!facts) {
    // The probe already said why there are no facts; whatever was said about the placeholder is noise.
    report.violations = report.violations.filter((v) => v.path !== "image_urls[0]");
    report.warnings = report.warnings.filter((w) => w.path !== "image_urls[0]");
  }
  report.violations.push(...problems);
  for (const warning of [...(probe?.warnings ?? []), ...(fit ? (checked?.warnings ?? []) : [])]) {
    report.warnings.push({ path: "image_urls[0]", rule: "probe", message: warning });
  }
  report.valid = report.violations.length === 0;
  const exitCode = report.valid ? EXIT.ok : EXIT.dataError;

  if (io.json) {
    io.result({
      ok: report.valid,
      valid: report.valid,
      exitCode,
      image: probe ? summary(probe) : null,
      fit: fit ? { ...fit, image: checked ? summary(checked) : null } : null,
      promptChecked: prompt !== undefined,
      violations: report.violations,
      warnings: report.warnings,
    });
    return exitCode;
  }
  if (probe) io.out(`image    ${describe(probe)}`);
  if (fit) {
    io.out(`fit      ${fit.changed ? `wrote ${fit.out}` : `${fit.out} (already compliant, copied as is)`}`);
    for (const change of fit.changes as string[]) io.out(`         - ${change}`);
    if (checked) io.out(`checked  ${describe(checked)}`);
  }
  if (prompt === undefined) io.out("prompt   not given, not checked");
  for (const w of report.warnings) io.out([io.styled("yellow", "warning"), `  ${w.path}: ${w.message}`]);
  if (report.valid) {
    io.out([io.styled("green", "valid")]);
  } else {
    const n = report.violations.length;
    io.out([io.styled("red", `invalid: ${n} violation${n > 1 ? "s" : ""}`)]);
    for (const v of report.violations) io.out(`  ${v.path}  ${v.rule}  ${v.message}${detail(v)}`);
  }
  return exitCode;
}

function summary(probe: ProbeResult) {
  return {
    kind: probe.kind,
    source: probe.source,
    format: probe.format,
    width: probe.width ?? null,
    height: probe.height ?? null,
    sizeBytes: probe.sizeBytes ?? null,
    orientation: probe.orientation ?? null,
    bytesRead: probe.bytesRead,
  };
}

function describe(probe: ProbeResult): string {
  const size = probe.width !== undefined ? ` ${probe.width}x${probe.height}` : "";
  const bytes =
    probe.sizeBytes !== undefined ? `, ${probe.sizeBytes.toLocaleString("en-US")} bytes` : ", size unknown";
  const turn = probe.orientation && probe.orientation !== 1 ? `, EXIF orientation ${probe.orientation}` : "";
  return `${probe.source} (${probe.kind}): ${probe.format.toUpperCase()}${size}${bytes}${turn}`;
}

function detail(v: Violation): string {
  const parts: string[] = [];
  if (v.limit !== undefined) parts.push(`limit ${JSON.stringify(v.limit)}`);
  if (v.actual !== undefined)
    parts.push(`actual ${typeof v.actual === "number" ? v.actual : JSON.stringify(v.actual)}`);
  return parts.length ? `  (${parts.join(", ")})` : "";
}
