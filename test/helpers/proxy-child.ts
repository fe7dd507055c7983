// Run in a child process by test/http/proxy.test.ts, with HTTPS_PROXY and NODE_EXTRA_CA_CERTS
// (read only at start-up, hence the child) in its environment: one API call, one image probe
// and one download, each to an https origin, printed as JSON.

import { join } from "node:path";
import { RunComfyClient } from "../../src/api/client.js";
import { download } from "../../src/download/download.js";
import { nodeFetch } from "../../src/http/node-fetch.js";
import { probeUrl } from "../../src/image/probe-url.js";

const [apiUrl, cdnUrl, dir, token] = process.argv.slice(2) as [string, string, string, string];
const client = new RunComfyClient({ token, baseUrl: apiUrl, fetch: nodeFetch, retry: { maxAttempts: 1 } });
const status = await client.status("req-1");
const probe = await probeUrl(`${cdnUrl}/img.png`, {});
const saved = await download(`${cdnUrl}/v.mp4`, { dest: join(dir, "https.mp4"), retries: 0 });
process.stdout.write(
  `${JSON.stringify({ status: status.status, width: probe.width, bytes: saved.bytes, sha256: saved.sha256 })}\n`,
);
