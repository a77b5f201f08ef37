/**
 * The browser load generator: headless Chromium (driven by playwright-core) downloads through a
 * wasmnet-protocol server from a page, the way a wasmnet client in a browser does. The page's own
 * `WebSocket` receives the `data` events (the page comes from a loopback HTTP server in this
 * process); JSON events are parsed and their base64 decoded with
 * `Uint8Array.fromBase64` (what `src/protocol/base64.ts` uses in Chromium 140+), binary frames are
 * viewed in place. Each system gets a fresh browser context and page; the download is timed from
 * the request until the last byte was decoded, after an unmeasured warm-up download.
 *
 * Usage: `deno run -A bench/loadgen_browser.ts '<BrowserConfig JSON>'`; prints one line per
 * system, `{"key": "...", "result": ScenarioResult}` or `{"key": "...", "error": "..."}`, then
 * `{"done": true}`.
 *
 * Chromium: `$WASMNET_CHROMIUM` or `/usr/bin/chromium` (`apt-get install -y chromium`).
 *
 * @module
 */
import type { ScenarioResult } from "./driver.ts";
import { MODE_DOWNLOAD } from "./_wire.ts";

/** One system the browser downloads through (a wasmnet-protocol server). */
export interface BrowserSystem {
  key: string;
  url: string;
  framing: "binary" | "json";
  /** The upstream peer (download mode). */
  host: string;
  port: number;
}

/** The browser load generator's command line (one JSON argument). */
export interface BrowserConfig {
  systems: BrowserSystem[];
  /** Bytes of the measured download. */
  bytes: number;
  /** Bytes of the unmeasured warm-up download (0: none). */
  warmup: number;
}

/** Chromium flags: quiet, sandbox-free headless in a container. */
export const CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

interface PageArgs extends BrowserSystem {
  bytes: number;
  warmup: number;
  mode: number;
}

/**
 * Runs in the page (serialised by playwright: it must not use anything from this module).
 * Resolves with the seconds of the measured download, or throws with the server's message.
 */
async function pageDownload(a: PageArgs): Promise<number> {
  type B64 = { fromBase64?: (s: string) => Uint8Array };
  const native = (Uint8Array as unknown as B64).fromBase64;
  const fromBase64 = native ?? ((s: string): Uint8Array => {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  });
  const binary = a.framing === "binary";
  const frame = (type: number, id: number, payload: Uint8Array): Uint8Array => {
    const out = new Uint8Array(9 + payload.byteLength);
    const dv = new DataView(out.buffer);
    dv.setUint8(0, type);
    dv.setUint32(5, id);
    out.set(payload, 9);
    return out;
  };
  const once = async (total: number): Promise<number> => {
    const ws = new WebSocket(a.url);
    ws.binaryType = "arraybuffer";
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`WebSocket to ${a.url} failed`));
    });
    const id = 1;
    const request = new Uint8Array(9);
    request[0] = a.mode;
    new DataView(request.buffer).setBigUint64(1, BigInt(total));
    let got = 0;
    let t0 = 0;
    const secs = await new Promise<number>((resolve, reject) => {
      const onEvent = (ev: string, data: Uint8Array | undefined, msg: string): void => {
        if (ev === "data" && data) {
          got += data.byteLength;
          if (got >= total) resolve((performance.now() - t0) / 1000);
        } else if (ev === "connected") {
          t0 = performance.now();
          ws.send(
            binary ? frame(0x04, id, request) : JSON.stringify({
              op: "send",
              id,
              data: btoa(String.fromCharCode(...request)),
            }),
          );
        } else if (ev === "closed" || ev === "error" || ev === "denied") {
          reject(new Error(`${ev} before the last byte: ${msg}`));
        }
      };
      ws.onmessage = (e: MessageEvent<ArrayBuffer | string>) => {
        if (typeof e.data === "string") {
          const ev = JSON.parse(e.data) as { ev: string; data?: string; msg?: string };
          onEvent(
            ev.ev,
            ev.data === undefined ? undefined : fromBase64(ev.data),
            ev.msg ?? "",
          );
        } else {
          const u8 = new Uint8Array(e.data);
          const names: Record<number, string> = {
            0x81: "connected",
            0x82: "data",
            0x85: "closed",
            0x86: "error",
            0x87: "denied",
          };
          const name = names[u8[0] ?? 0] ?? "other";
          const body = u8.subarray(9);
          onEvent(name, body, name === "data" ? "" : new TextDecoder().decode(body));
        }
      };
      ws.onclose = () => reject(new Error("WebSocket closed"));
      const addr = new TextEncoder().encode(a.host);
      const connect = new Uint8Array(2 + addr.byteLength);
      new DataView(connect.buffer).setUint16(0, a.port);
      connect.set(addr, 2);
      ws.send(
        binary
          ? frame(0x01, id, connect)
          : JSON.stringify({ op: "connect", id, addr: a.host, port: a.port }),
      );
    });
    ws.onclose = null;
    ws.close();
    return secs;
  };
  if (a.warmup > 0) await once(a.warmup);
  return await once(a.bytes);
}

async function main(cfg: BrowserConfig): Promise<void> {
  const say = (obj: unknown): void => {
    Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(obj) + "\n"));
  };
  // The page comes from a loopback HTTP server: Chromium's Local Network Access checks refuse a
  // WebSocket to 127.0.0.1 from about:blank or an intercepted (addressless) page.
  const web = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () =>
      new Response("<!doctype html><title>bench</title>", {
        headers: { "content-type": "text/html" },
      }),
  );
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({
    executablePath: Deno.env.get("WASMNET_CHROMIUM") ?? "/usr/bin/chromium",
    headless: true,
    args: [...CHROMIUM_ARGS],
  });
  try {
    for (const sys of cfg.systems) {
      const context = await browser.newContext();
      try {
        const page = await context.newPage();
        await page.goto(`http://127.0.0.1:${web.addr.port}/`);
        const secs = await page.evaluate(pageDownload, {
          ...sys,
          bytes: cfg.bytes,
          warmup: cfg.warmup,
          mode: MODE_DOWNLOAD,
        });
        const result: ScenarioResult = {
          rate: cfg.bytes / 2 ** 20 / secs,
          n: cfg.bytes,
          secs,
          errors: 0,
        };
        say({ key: sys.key, result });
      } catch (e) {
        say({ key: sys.key, error: String((e as Error).message ?? e).split("\n")[0] });
      } finally {
        await context.close();
      }
    }
  } finally {
    await browser.close();
    await web.shutdown();
  }
  say({ done: true });
}

if (import.meta.main) {
  await main(JSON.parse(Deno.args[0] ?? "{}") as BrowserConfig);
  Deno.exit(0);
}
