// Shared by the sandbox tests: plain fetch helpers (not the SDK client: the sandbox is
// checked against the contract, not against our own reading of it) and test images.

import sharp from "sharp";

/** Response JSON as the tests read it: shapes are asserted field by field. */
// biome-ignore lint/suspicious/noExplicitAny: tests inspect arbitrary JSON
export type Body = any;

export const MODEL_PATH = "/v1/models/bytedance/dreamina-3-0/pro/image-to-video";

export function auth(token = "token-a"): Record<string, string> {
  return { authorization: `Bearer ${token}`, "content-type": "application/json" };
}

/** A gradient JPEG, distinct per `tint`, small enough to render fast. */
export async function testImage(width = 480, height = 360, tint = 0, format: "jpeg" | "png" = "jpeg") {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      raw[i] = (x * 255) / width;
      raw[i + 1] = (y * 255) / height;
      raw[i + 2] = (tint * 37 + ((x ^ y) & 63)) % 256;
    }
  }
  const image = sharp(raw, { raw: { width, height, channels: 3 } });
  return format === "png" ? image.png().toBuffer() : image.jpeg({ quality: 85 }).toBuffer();
}

export function dataUri(bytes: Buffer, mime = "image/jpeg"): string {
  return `data:${mime};base64,${bytes.toString("base64")}`;
}

export async function submit(base: string, input: unknown, token = "token-a") {
  const response = await fetch(`${base}${MODEL_PATH}`, {
    method: "POST",
    headers: auth(token),
    body: JSON.stringify(input),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Body };
}

export async function getJson(url: string, token: string | undefined = "token-a") {
  const response = await fetch(url, { headers: token === undefined ? {} : auth(token) });
  const text = await response.text();
  let body: Body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: response.status, headers: response.headers, body, text };
}

export async function postJson(url: string, token: string | undefined = "token-a") {
  const response = await fetch(url, { method: "POST", headers: token === undefined ? {} : auth(token) });
  return { status: response.status, body: (await response.json()) as Body };
}

/** Polls status until it leaves in_queue/in_progress (or the deadline passes). */
export async function waitDone(base: string, id: string, token = "token-a", deadlineMs = 20_000) {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const s = await getJson(`${base}/v1/requests/${id}/status`, token);
    if (s.status === 200 && s.body.status !== "in_queue" && s.body.status !== "in_progress") return s.body;
    if (Date.now() > until) throw new Error(`job ${id} still ${s.body?.status} after ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
