// `npm run bench`: every benchmark in one run, each printing ours against its baseline
// measured in the same run. `npm run bench -- probe polling` runs only those.
// Exits non-zero when any target is missed.

type BenchMain = (argv?: string[]) => Promise<unknown>;

const benches: Record<string, () => Promise<{ main: BenchMain }>> = {
  startup: () => import("./startup.js"),
  probe: () => import("./probe.js"),
  sandbox: () => import("./sandbox.js"),
  polling: () => import("./polling.js"),
  download: () => import("./download.js"),
  batch: () => import("./batch.js"),
  store: () => import("./store.js"),
  shared: () => import("./shared-batch.js"),
  studio: () => import("./studio.js"),
};

/** Arguments each bench gets here (the polling bench also runs for real against the sandbox). */
const args: Record<string, string[]> = { polling: ["--real"] };

/** Each bench's main() reports success as true, an exit code of 0, or nothing (no target). */
function passed(outcome: unknown): boolean {
  if (typeof outcome === "boolean") return outcome;
  if (typeof outcome === "number") return outcome === 0;
  return true;
}

const wanted = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const names = wanted.length > 0 ? wanted : Object.keys(benches);
const failed: string[] = [];
for (const name of names) {
  const load = benches[name];
  if (!load) {
    console.error(`unknown bench "${name}" (known: ${Object.keys(benches).join(", ")})`);
    process.exit(64);
  }
  console.log(`\n=== ${name} ===`);
  const { main } = await load();
  if (!passed(await main(args[name] ?? []))) failed.push(name);
}
console.log(failed.length === 0 ? "\nall benchmark targets met" : `\ntargets missed: ${failed.join(", ")}`);
process.exitCode = failed.length === 0 ? 0 : 1;
