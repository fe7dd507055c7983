// Start-up cost of the CLI: `dreamina --version` against a bare `node -e 0`, same run.
// Target: within 2x. Heavy modules (sharp, SQLite, the renderer) must load only on demand.

import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const bin = fileURLToPath(new URL("../bin/dreamina.js", import.meta.url));

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

function time(args: string[], runs: number): number {
  const samples: number[] = [];
  for (let i = 0; i < runs + 2; i++) {
    const start = process.hrtime.bigint();
    const result = spawnSync(process.execPath, args, { stdio: "ignore" });
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (result.status !== 0) throw new Error(`${args.join(" ")} exited with ${result.status}`);
    if (i >= 2) samples.push(ms); // the first runs warm the file cache
  }
  return median(samples);
}

export async function main(): Promise<boolean> {
  const runs = 15;
  const baseline = time(["-e", "0"], runs);
  const ours = time([bin, "--version"], runs);
  const help = time([bin, "run", "--help"], runs);
  const ratio = ours / baseline;
  console.log("\n## CLI start-up (median of %d runs)", runs);
  console.log("| command | ms |");
  console.log("|---|---|");
  console.log(`| node -e 0 (baseline) | ${baseline.toFixed(1)} |`);
  console.log(`| dreamina --version | ${ours.toFixed(1)} |`);
  console.log(`| dreamina run --help | ${help.toFixed(1)} |`);
  const pass = ratio <= 2;
  console.log(
    `dreamina --version / node -e 0 = ${ratio.toFixed(2)}x (target <= 2x): ${pass ? "PASS" : "FAIL"}`,
  );
  return pass;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then((ok) => {
    process.exitCode = ok ? 0 : 1;
  });
}
