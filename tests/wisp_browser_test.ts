// The unmodified npm libcurl.js and epoxy-tls in a real headless Chromium against the real
// server's Wisp personality: `fetch` of a loopback HTTP page over Wisp (`/wisp/`, one WebSocket
// for all streams; libcurl.js speaks v1, epoxy v1 and v2) and over wsproxy
// (`/wisp/127.0.0.1:PORT`, one WebSocket per TCP stream), and a destination the policy denies.
// The page and the packages' files (read from Deno's npm cache) come from a loopback HTTP server.
// Needs Debian's `chromium` (`.ci/run` installs it); when it is missing the test FAILS with the
// install command, it never passes silently.
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import type { WasmnetServer } from "../mod.ts";
import { loopbackPolicy, sessionsReach, startTestServer } from "./helpers/server.ts";
import { startHttpServer } from "./helpers/echo_servers.ts";
import { launchChromium } from "./helpers/browser.ts";
import {
  type ObservedSocket,
  type PageFetchResult,
  startClientPage,
} from "./helpers/libcurl_page.ts";

type PageFns = Record<string, (...args: unknown[]) => Promise<unknown>>;

/** A hang guard for one call into the page (not a timing assertion). */
const CALL_TIMEOUT_MS = 30_000;

/**
 * Calls the page's function `fn` with `args` (JSON-able) and returns its result; fails after
 * {@linkcode CALL_TIMEOUT_MS}.
 */
async function call(page: Page, fn: string, ...args: unknown[]): Promise<PageFetchResult> {
  const result = page.evaluate(
    ([name, rest]) => (globalThis as unknown as PageFns)[name as string]?.(...(rest as unknown[])),
    [fn, args] as const,
  ) as Promise<PageFetchResult>;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${fn}(${args.join(", ")}) hung`)), CALL_TIMEOUT_MS);
  });
  try {
    return await Promise.race([result, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs `body` with a fresh Chromium page on the client page; fails on any page error. Once the
 * browser has closed, waits until `server` has no session left (the browser's WebSockets ended).
 */
async function withPage(server: WasmnetServer, body: (page: Page) => Promise<void>): Promise<void> {
  await using site = await startClientPage();
  const browser = await launchChromium();
  const errors: string[] = [];
  try {
    const page = await browser.newPage();
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(site.url);
    await page.waitForFunction("globalThis.ready === true");
    await body(page);
  } finally {
    await browser.close();
  }
  assert.deepEqual(errors, []);
  await sessionsReach(server, 0, "the browser's WebSockets are closed");
}

/** The Wisp endpoint of `server` (the default prefix). */
function wispUrl(server: WasmnetServer): string {
  return server.url.replace(/\/$/, "") + "/wisp/";
}

/** A socket as the page saw it, still open when the call returned, with no Wisp CLOSE. */
function openSocket(url: string, offered: string[] | null = null, protocol = ""): ObservedSocket {
  return { url, offered, protocol, closeCode: null, closeReason: null, wispCloses: [] };
}

Deno.test("wisp browser: libcurl.js fetches a loopback page over Wisp (v1, one WebSocket)", async () => {
  const text = `hello over wisp ${crypto.randomUUID()}\n`;
  await using http = await startHttpServer(text);
  await using server = await startTestServer();
  const wisp = wispUrl(server);
  await withPage(server, async (page) => {
    const url = `http://127.0.0.1:${http.port}/wisp`;
    const first = await call(page, "curlFetch", "wisp", wisp, url);
    // libcurl.js offers no subprotocol, so this is Wisp v1 on the prefix itself.
    assert.deepEqual(first, { status: 200, body: text, error: null, sockets: [openSocket(wisp)] });
    // A new libcurl session, so a new TCP connection: a second stream on the same WebSocket.
    const second = await call(page, "curlFetch", "wisp", wisp, url);
    assert.deepEqual(second, { status: 200, body: text, error: null, sockets: [] });
  });
  assert.equal(http.requests, 2);
});

Deno.test("wisp browser: libcurl.js fetches a loopback page over wsproxy (one WebSocket per stream)", async () => {
  const text = `hello over wsproxy ${crypto.randomUUID()}\n`;
  await using http = await startHttpServer(text);
  await using server = await startTestServer();
  const wsproxy = `${wispUrl(server)}127.0.0.1:${http.port}`;
  await withPage(server, async (page) => {
    for (const round of [1, 2]) {
      // A new libcurl session each round, so a new TCP connection: a new WebSocket.
      const got = await call(
        page,
        "curlFetch",
        "wsproxy",
        wispUrl(server),
        `http://127.0.0.1:${http.port}/`,
      );
      assert.deepEqual(got, {
        status: 200,
        body: text,
        error: null,
        sockets: [openSocket(wsproxy)],
      }, `round ${round}`);
    }
  });
  assert.equal(http.requests, 2);
});

Deno.test("wisp browser: libcurl.js cannot reach a destination the policy denies (Wisp 0x48, wsproxy 1008)", async () => {
  await using http = await startHttpServer("must not be reached\n");
  const rule = `127.0.0.1:${http.port}`;
  await using server = await startTestServer({ policy: loopbackPolicy({ deny: [rule] }) });
  const wisp = wispUrl(server);
  const url = `http://127.0.0.1:${http.port}/`;
  await withPage(server, async (page) => {
    const overWisp = await call(page, "curlFetch", "wisp", wisp, url);
    // libcurl.js's error code depends on when it notices (7: could not connect, 52: nothing
    // received, ...); what the server said is the CLOSE reason (wsproxy: the close code) below.
    assert.match(overWisp.error ?? "", /Request failed with error code \d+/);
    assert.deepEqual(overWisp.sockets, [{ ...openSocket(wisp), wispCloses: [0x48] }]);

    const overWsproxy = await call(page, "curlFetch", "wsproxy", wisp, url);
    // The WebSocket opens, then closes with 1008 once the dial is denied.
    assert.match(overWsproxy.error ?? "", /Request failed with error code \d+/);
    assert.deepEqual(overWsproxy.sockets, [{
      ...openSocket(`${wisp}${rule}`),
      closeCode: 1008,
      closeReason: `denied: ${rule} is denied by rule "${rule}"`,
    }]);
  });
  assert.equal(http.requests, 0);
});

Deno.test("wisp browser: epoxy-tls fetches a loopback page over Wisp v1 and v2 (subprotocol echoed)", async () => {
  const text = `hello over epoxy ${crypto.randomUUID()}\n`;
  await using http = await startHttpServer(text);
  await using server = await startTestServer();
  const wisp = wispUrl(server);
  await withPage(server, async (page) => {
    for (const v2 of [false, true]) {
      const what = v2 ? "v2" : "v1";
      const got = await call(page, "epoxyFetch", wisp, `http://127.0.0.1:${http.port}/`, v2);
      assert.deepEqual([got.status, got.body, got.error], [200, text, null], what);
      assert.equal(got.sockets.length, 1, what);
      const socket = got.sockets[0] as ObservedSocket;
      assert.equal(socket.url, wisp, what);
      assert.deepEqual(socket.wispCloses, [], what);
      if (v2) {
        // epoxy offers one random subprotocol; v2 needs the server to echo it.
        assert.ok(Array.isArray(socket.offered) && socket.offered.length === 1, what);
        assert.equal(socket.protocol, socket.offered[0], what);
      } else {
        assert.deepEqual([socket.offered, socket.protocol], [null, ""], what);
      }
    }
  });
  assert.equal(http.requests, 2);
});
