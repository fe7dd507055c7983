// A real headless Chromium for the studio's end-to-end tests: the one shipped inside the
// @sparticuz/chromium npm package (nothing to install by hand), driven by playwright-core.
// When no browser can be launched the tests say so loudly and skip, except under CI=true,
// where they fail.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";

export const SCREENSHOTS = join(process.cwd(), "test-output", "studio-screenshots");

export interface Launched {
  browser: Browser | undefined;
  /** Why there is none. */
  reason: string | undefined;
}

export async function launchChromium(): Promise<Launched> {
  try {
    const chromium = (await import("@sparticuz/chromium")).default;
    const { chromium: playwright } = await import("playwright-core");
    const executablePath = process.env.DREAMINA_TEST_CHROMIUM ?? (await chromium.executablePath());
    // Its Lambda flags, less the ones that would make this browser unlike a person's: one process
    // for everything (a second context takes the first down) and the same-origin policy off.
    const unlike = new Set([
      "--single-process",
      "--disable-web-security",
      "--allow-running-insecure-content",
    ]);
    const args = chromium.args.filter((arg: string) => !unlike.has(arg));
    const browser = await playwright.launch({ executablePath, args, headless: true });
    return { browser, reason: undefined };
  } catch (error) {
    const reason = `no headless Chromium could be launched: ${error instanceof Error ? error.message : String(error)}`;
    if (process.env.CI === "true") throw new Error(`${reason} (CI=true: the browser tests must run)`);
    process.stderr.write(`\n*** SKIPPING the studio's browser tests: ${reason} ***\n\n`);
    return { browser: undefined, reason };
  }
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Drops bytes on an element as a file, the way a person drags one from the desktop. */
export async function dropFile(
  page: Page,
  selector: string,
  bytes: Buffer,
  name: string,
  type: string,
): Promise<void> {
  const transfer = await page.evaluateHandle(
    ({ base64, name, type }) => {
      const data = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([data], name, { type }));
      return dt;
    },
    { base64: bytes.toString("base64"), name, type },
  );
  await page.dispatchEvent(selector, "drop", { dataTransfer: transfer });
}
