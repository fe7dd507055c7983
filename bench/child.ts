// Runs one side of the batch bench (our batch, or the bare baseline) in a child process of its
// own, so that its CPU time and memory are measured without the sandbox's, and reads back the
// one JSON line it prints last.

import { spawn, spawnSync } from "node:child_process";

/**
 * `script` is the bench's client (bundled JS, or tsx and the source); `flag` picks the side
 * (`--client` or `--floor`) and `params` its settings. Diagnostics through the environment:
 * BENCH_CLIENT_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the child alone;
 * BENCH_CLIENT_WRAPPER (e.g. "strace -f -c -o /tmp/client.strace") runs it under a tool;
 * BENCH_PIN=1 (Linux, taskset) keeps the sandbox on CPU 0 and the child on CPU 1, so that the
 * two do not take each other's core and the child's CPU time is less noisy.
 */
export function runChild<T>(script: readonly string[], flag: string, params: object): Promise<T> {
  const nodeArgs = (process.env.BENCH_CLIENT_NODE_ARGS ?? "").split(" ").filter(Boolean);
  const wrapper = (process.env.BENCH_CLIENT_WRAPPER ?? "").split(" ").filter(Boolean);
  const pin = pinning();
  const argv = [...nodeArgs, ...script, flag, JSON.stringify(params)];
  const launch = pin ? ["taskset", "-c", pin.client, process.execPath, ...argv] : [process.execPath, ...argv];
  const [program, ...args] = [...wrapper, ...launch] as [string, ...string[]];
  return new Promise<T>((resolve, reject) => {
    const child = spawn(program, args, { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      try {
        if (code !== 0 && code !== 1) throw new Error(`${flag} child exited ${code}`);
        const outLines = out.trim().split("\n");
        // Anything else the child printed (e.g. --trace-gc) goes to stderr.
        if (outLines.length > 1) process.stderr.write(`${outLines.slice(0, -1).join("\n")}\n`);
        resolve(JSON.parse(outLines.pop() ?? "") as T);
      } catch (error) {
        reject(error);
      }
    });
  });
}

/** BENCH_PIN=1: pins this process (the sandbox) to CPU 0 and returns the CPU list for the child. */
function pinning(): { client: string } | undefined {
  if (!process.env.BENCH_PIN) return undefined;
  const result = spawnSync("taskset", ["-a", "-p", "-c", "0", String(process.pid)], { stdio: "ignore" });
  if (result.status !== 0) {
    process.stderr.write("BENCH_PIN: taskset failed, not pinning\n");
    return undefined;
  }
  return { client: "1" };
}
