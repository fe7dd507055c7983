#!/usr/bin/env node
// Runs every test/**/*.test.ts file with Node's own test runner (TypeScript through tsx).
// Node 20's --test does not expand globs itself, so the file list is gathered here.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function collect(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...collect(path));
    else if (name.endsWith(".test.ts")) out.push(path);
  }
  return out;
}

// Tests talk to servers on 127.0.0.1 and localhost, and nothing bypasses a proxy for loopback by
// default: with a proxy in the environment (a corporate machine), keep loopback direct. The proxy
// tests set their own variables.
const proxyVars = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"];
if (proxyVars.some((name) => process.env[name])) {
  for (const name of ["NO_PROXY", "no_proxy"]) {
    process.env[name] = [process.env[name], "127.0.0.1", "localhost", "[::1]"].filter(Boolean).join(",");
  }
}

const filter = process.argv.slice(2);
const files = collect("test").filter((f) => filter.length === 0 || filter.some((s) => f.includes(s)));
const run = (list, env = {}) =>
  spawnSync(
    process.execPath,
    ["--import", "tsx", "--test", "--test-concurrency=2", "--test-reporter=spec", ...list],
    { stdio: "inherit", env: { ...process.env, NODE_NO_WARNINGS: "1", ...env } },
  ).status ?? 1;

let status = run(files);
// The protocol client's tests again, on the undici transport (nodeFetch, src/http/node-fetch.ts) instead of the global
// fetch: both must behave the same (test/helpers/scripted-server.ts reads TEST_FETCH).
const clientTests = files.filter((f) => f.startsWith(join("test", "api")) && !f.endsWith("bundle.test.ts"));
if (clientTests.length > 0) {
  console.log("\n# the protocol client's tests again, with TEST_FETCH=node (nodeFetch on undici)\n");
  status = Math.max(status, run(clientTests, { TEST_FETCH: "node" }));
}
process.exit(status);
