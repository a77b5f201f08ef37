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

/** A file a test page serves: its body and content type. */
export interface PageFile {
  /** The bytes or text. */
  readonly body: string | Uint8Array;
  /** The `content-type`, e.g. `text/javascript`. */
  readonly type: string;
}

/** A page open in headless Chromium (see {@linkcode openPage}). */
export interface OpenPage extends AsyncDisposable {
  /** The playwright page. */
  readonly page: import("playwright-core").Page;
  /** Uncaught errors the page raised so far (`pageerror`), as text. */
  readonly errors: string[];
  /**
   * Calls the page's `globalThis[fn](...args)` (an async function the page defined) and resolves
   * its result (structured-cloned by playwright).
   */
  call(fn: string, ...args: unknown[]): Promise<unknown>;
}

/**
 * Serves `html` at `/` and `files` at their paths from a loopback HTTP server, launches headless
 * Chromium, opens the page and waits until it sets `globalThis.ready = true` (10 s at most).
 * `await using` closes the browser and the server.
 *
 * @param html the page (any path not in `files` answers it).
 * @param files other paths (e.g. `/wasmnet-client.js`).
 * @param options `headers` added to every response (e.g. COOP/COEP for cross-origin isolation).
 * @throws {Error} from {@linkcode launchChromium}, or playwright's when the page never gets ready.
 */
export async function openPage(
  html: string,
  files: Readonly<Record<string, PageFile>> = {},
  options: { headers?: Readonly<Record<string, string>> } = {},
): Promise<OpenPage> {
  const extra = options.headers ?? {};
  const web = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen(): void {} }, (req) => {
    const file = files[new URL(req.url).pathname];
    const body = file?.body ?? html;
    return new Response(body as BodyInit, {
      headers: { "content-type": file?.type ?? "text/html; charset=utf-8", ...extra },
    });
  });
  let browser: Browser | undefined;
  try {
    browser = await launchChromium();
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`http://127.0.0.1:${web.addr.port}/`);
    await page.waitForFunction("globalThis.ready === true", undefined, { timeout: 10_000 });
    const opened = browser;
    return {
      page,
      errors,
      call: (fn, ...args) =>
        page.evaluate(
          ([name, rest]) =>
            (globalThis as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[
              name as string
            ]?.(...(rest as unknown[])),
          [fn, args] as const,
        ),
      [Symbol.asyncDispose]: async () => {
        await opened.close();
        await web.shutdown();
      },
    };
  } catch (e) {
    await browser?.close();
    await web.shutdown();
    throw e;
  }
}

/**
 * Page JavaScript: `readAll(readable, limit)` reads a `ReadableStream` of bytes until `limit`
 * bytes or its end and resolves them joined in one `Uint8Array` (for test pages' inline modules).
 */
export const READ_ALL_JS = `async function readAll(readable, limit) {
  const reader = readable.getReader();
  const chunks = [];
  let n = 0;
  while (n < limit) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
    n += value.length;
  }
  reader.releaseLock();
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.length; }
  return out;
}
`;
