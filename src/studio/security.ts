// The studio is a local server that can spend money, so every request proves three things
// before anything else runs: it is addressed to this studio by a name we know (DNS rebinding
// turns a foreign name into 127.0.0.1), it does not come from another site's page (Origin,
// Sec-Fetch-Site), and it carries the session key printed at start (as a query, a header, or
// the cookie set from it). State-changing routes take POST only.

import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { networkInterfaces } from "node:os";
import type { Context, MiddlewareHandler } from "hono";
import { getCookie, setCookie } from "hono/cookie";

export const KEY_HEADER = "x-studio-key";

export function newSessionKey(): string {
  return randomBytes(24).toString("base64url");
}

/** The cookie is per port: browsers share cookies between ports of one host. */
export function cookieName(port: number): string {
  return `dreamina_studio_${port}`;
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

export function sameKey(given: string | undefined, key: string): boolean {
  if (typeof given !== "string" || given.length === 0 || given.length > 256) return false;
  return timingSafeEqual(digest(given), digest(key));
}

const WILDCARDS = new Set(["0.0.0.0", "::", "[::]"]);
const LOOPBACK_NAMES = ["127.0.0.1", "localhost", "[::1]"];

function hostForm(address: string): string {
  return address.includes(":") && !address.startsWith("[") ? `[${address}]` : address;
}

/**
 * The `host:port` values a request may name. Loopback names always; the bound address; and,
 * when bound to every interface, each interface's address (never an arbitrary DNS name).
 */
export function allowedHosts(boundHost: string, port: number): Set<string> {
  const names = new Set<string>(LOOPBACK_NAMES);
  if (!WILDCARDS.has(boundHost)) names.add(hostForm(boundHost).toLowerCase());
  else {
    for (const list of Object.values(networkInterfaces())) {
      for (const info of list ?? []) names.add(hostForm(info.address).toLowerCase());
    }
  }
  return new Set([...names].map((name) => `${name}:${port}`));
}

function refuse(c: Context, status: 401 | 403, message: string): Response {
  c.header("cache-control", "no-store");
  return c.json(
    { error: { code: status === 401 ? "studio_key_required" : "studio_forbidden", message } },
    status,
  );
}

export interface GuardOptions {
  key: string;
  port: () => number;
  hosts: () => Set<string>;
}

/** Host, Origin and session key, for every request (the page itself included). */
export function guard(options: GuardOptions): MiddlewareHandler {
  return async (c, next) => {
    const hosts = options.hosts();
    // The Host the client really sent: the adapter makes one up for a request without any.
    const incoming = (c.env as { incoming?: { headers: Record<string, unknown> } } | undefined)?.incoming;
    const sent = incoming ? incoming.headers.host : c.req.header("host");
    const host = (typeof sent === "string" ? sent : "").toLowerCase();
    if (!hosts.has(host)) return refuse(c, 403, "this studio only answers to its own address");
    const origin = c.req.header("origin");
    if (origin !== undefined && !isOwnOrigin(origin, hosts)) {
      return refuse(c, 403, "requests from other sites are refused");
    }
    if (c.req.header("sec-fetch-site") === "cross-site") {
      return refuse(c, 403, "requests from other sites are refused");
    }
    const name = cookieName(options.port());
    const fromQuery = c.req.query("key");
    const given = c.req.header(KEY_HEADER) ?? fromQuery ?? getCookie(c, name);
    if (!sameKey(given, options.key)) {
      return refuse(c, 401, "a session key is needed: open the URL that `dreamina studio` printed");
    }
    if (fromQuery !== undefined) {
      // The key moves into a cookie the page's scripts cannot read, and out of the address bar.
      setCookie(c, name, options.key, { httpOnly: true, sameSite: "Strict", path: "/" });
      if (c.req.method === "GET" && c.req.path === "/") return c.redirect("/", 303);
    }
    await next();
  };
}

function isOwnOrigin(origin: string, hosts: Set<string>): boolean {
  try {
    const url = new URL(origin);
    return url.protocol === "http:" && hosts.has(url.host.toLowerCase()) && origin === url.origin;
  } catch {
    return false;
  }
}

/** Headers on every answer: no framing, no sniffing, nothing loaded from elsewhere but images by URL. */
export function securityHeaders(): MiddlewareHandler {
  return async (c, next) => {
    await next();
    if (c.res.headers.has("content-security-policy"))
      return void c.header("x-content-type-options", "nosniff");
    c.header(
      "content-security-policy",
      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data: https: http:; " +
        "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; " +
        "frame-ancestors 'none'",
    );
    c.header("x-content-type-options", "nosniff");
    c.header("x-frame-options", "DENY");
    c.header("referrer-policy", "no-referrer");
    c.header("cross-origin-resource-policy", "same-origin");
    if (!c.res.headers.has("cache-control")) c.header("cache-control", "no-store");
  };
}
