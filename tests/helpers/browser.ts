/**
 * Headless Chromium for the real-browser tests, driven by playwright-core. Needs Debian's
 * `chromium` (`.ci/run` installs it); when it is missing, {@linkcode launchChromium} FAILS with
 * the install command, it never lets a test pass silently.
 *
 * @module
 */
import type { Browser } from "playwright-core";

// playwright-core's bundled `is-wsl` probes /proc/sys/fs/binfmt_misc/WSLInterop when the module
// loads, which Deno only allows under --allow-all; this variable defers that probe (it is never
// needed for a local Chromium), so the tests run with the test task's narrower permissions.
Deno.env.set("__IS_WSL_TEST__", "1");
const { chromium } = await import("playwright-core");

/** The Chromium binary: `$WASMNET_CHROMIUM`, else Debian's `/usr/bin/chromium`. */
export const CHROMIUM: string = Deno.env.get("WASMNET_CHROMIUM") ?? "/usr/bin/chromium";

/** Command-line flags for a quiet, sandbox-free headless Chromium in a container. */
export const CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--disable-background-networking",
  "--no-first-run",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * Fails unless {@linkcode CHROMIUM} exists.
 *
 * @throws {Error} naming the install command (`apt-get install -y chromium`).
 */
export function requireChromium(): void {
  try {
    Deno.statSync(CHROMIUM);
  } catch {
    throw new Error(
      `Chromium not found at ${CHROMIUM}. Install it with: apt-get update && apt-get install -y chromium ` +
        "(or point WASMNET_CHROMIUM at a Chromium binary). The browser test does not skip.",
    );
  }
}

/**
 * Launches headless Chromium ({@linkcode CHROMIUM} with {@linkcode CHROMIUM_ARGS}). Close it with
 * `await browser.close()` in a `finally`, so the test's resource sanitizer passes.
 *
 * @throws {Error} from {@linkcode requireChromium} when Chromium is missing, or playwright's
 * launch error.
 */
export function launchChromium(extraArgs: readonly string[] = []): Promise<Browser> {
  requireChromium();
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
}
