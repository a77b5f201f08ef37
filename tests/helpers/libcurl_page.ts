/**
 * A loopback web server for the real Wisp clients in headless Chromium: one page that loads the
 * unmodified npm packages `libcurl.js` and `@mercuryworkshop/epoxy-tls` (their JS and wasm, read
 * from Deno's npm cache) and exposes small functions the test calls with `page.evaluate`. The page
 * also records every WebSocket the clients open (URL, offered and negotiated subprotocol), so a
 * test can tell Wisp (one WebSocket to the prefix) from wsproxy (one WebSocket per TCP stream).
 *
 * The type-only imports below put both packages into this module's graph, so `deno cache` (and
 * `deno test`) download them; nothing of theirs runs in Deno.
 *
 * @module
 */
import type * as _libcurl from "libcurl.js";
import type * as _epoxy from "@mercuryworkshop/epoxy-tls/epoxy";
import { fileURLToPath as fromFileUrl } from "node:url";

/** A file of an npm package served by {@linkcode startClientPage}. */
interface Asset {
  /** A specifier deno.json's imports map to a file of the package (its exports). */
  specifier: string;
  /** The served file, relative to the file `specifier` resolves to; that file itself if absent. */
  sibling?: string;
  /** Its `content-type`. */
  type: string;
}

/** URL path → package file. */
const ASSETS: Readonly<Record<string, Asset>> = {
  "/libcurl/libcurl.mjs": { specifier: "libcurl.js", type: "text/javascript" },
  "/libcurl/libcurl.wasm": { specifier: "libcurl.js/libcurl.wasm", type: "application/wasm" },
  "/epoxy/epoxy.js": { specifier: "@mercuryworkshop/epoxy-tls/epoxy", type: "text/javascript" },
  "/epoxy/epoxy.wasm": {
    specifier: "@mercuryworkshop/epoxy-tls/epoxy",
    sibling: "epoxy.wasm",
    type: "application/wasm",
  },
};

/**
 * The page (plain JS in the browser). Functions it defines, each resolving to a
 * {@linkcode PageFetchResult} (a failed fetch resolves too, with `error` set):
 * - `curlFetch(transport, proxyUrl, url)`: `libcurl.transport = transport` (`"wisp"` or
 *   `"wsproxy"`), `libcurl.set_websocket(proxyUrl)`, then `fetch(url)` in a new `HTTPSession`
 *   (so on a new connection).
 * - `epoxyFetch(wispUrl, url, v2)`: `fetch(url)` with a new `EpoxyClient` on `wispUrl`
 *   (`wisp_v2` = `v2`), freed afterwards.
 */
const PAGE = `<!doctype html><meta charset="utf-8"><title>wisp clients</title>
<script type="module">
// Every WebSocket the clients open, observed (not changed) through a subclass.
const opened = [];
const closing = []; // per entry of opened: resolves on its close event
const NativeWebSocket = globalThis.WebSocket;
globalThis.WebSocket = class extends NativeWebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    const entry = {
      url: String(url), offered: protocols ?? null, protocol: null, closeCode: null,
      closeReason: null, wispCloses: [],
    };
    opened.push(entry);
    const wisp = entry.url.endsWith("/");
    this.addEventListener("open", () => { entry.protocol = this.protocol; });
    closing.push(new Promise((resolve) => {
      this.addEventListener("close", (e) => {
        entry.closeCode = e.code;
        entry.closeReason = e.reason;
        resolve();
      });
    }));
    this.addEventListener("message", (e) => {
      // A Wisp CLOSE packet: [0x04][stream u32 LE][reason u8].
      if (!wisp || !(e.data instanceof ArrayBuffer) || e.data.byteLength !== 6) return;
      const view = new DataView(e.data);
      if (view.getUint8(0) === 0x04) entry.wispCloses.push(view.getUint8(5));
    });
  }
};

async function run(fetching) {
  opened.length = 0;
  closing.length = 0;
  const out = { status: null, body: null, error: null, sockets: null };
  try {
    const res = await fetching();
    out.status = res.status;
    out.body = await res.text();
  } catch (e) {
    out.error = String(e);
    // A failed stream ends its wsproxy WebSocket; the client may fail before the close event.
    const ends = closing.filter((_, i) => !opened[i].url.endsWith("/"));
    await Promise.race([Promise.all(ends), new Promise((r) => setTimeout(r, 5000))]);
  }
  out.sockets = structuredClone(opened);
  return out;
}

const { libcurl } = await import("/libcurl/libcurl.mjs");
await libcurl.load_wasm("/libcurl/libcurl.wasm");
// Never closed while the page lives: libcurl.js 0.7.4 may close a new session's socket when
// another session was closed just before it (seen as the client's CLOSE right after its CONNECT).
const sessions = [];

globalThis.curlFetch = (transport, proxyUrl, url) => run(() => {
  libcurl.transport = transport;
  libcurl.set_websocket(proxyUrl);
  const session = new libcurl.HTTPSession();
  sessions.push(session);
  return session.fetch(url);
});

const epoxy = await import("/epoxy/epoxy.js");
await epoxy.default({ module_or_path: "/epoxy/epoxy.wasm" });

globalThis.epoxyFetch = (wispUrl, url, v2) => run(async () => {
  const options = new epoxy.EpoxyClientOptions();
  options.wisp_v2 = v2;
  const client = new epoxy.EpoxyClient(wispUrl, options);
  try {
    const res = await client.fetch(url, {});
    // Read the body before free(), as a Response the caller reads later might need the client.
    return new Response(await res.arrayBuffer(), { status: res.status });
  } finally {
    client.free();
  }
});
globalThis.ready = true;
</script>`;

/** A WebSocket a client opened during one call, as the page observed it. */
export interface ObservedSocket {
  /** The URL the client opened. */
  url: string;
  /** The subprotocols it offered (`null`: none passed). */
  offered: string | string[] | null;
  /** The subprotocol the server chose (`""`: none); `null` if it never opened. */
  protocol: string | null;
  /** The close code (RFC 6455), `null` while still open when the call returned. */
  closeCode: number | null;
  /** The close reason, `null` while still open. */
  closeReason: string | null;
  /** Reasons of the Wisp CLOSE packets the server sent (Wisp endpoints only, not wsproxy). */
  wispCloses: number[];
}

/** What `curlFetch` and `epoxyFetch` resolve to in the page. */
export interface PageFetchResult {
  /** The HTTP status the client saw; `null` when the fetch failed. */
  status: number | null;
  /** The response body as text; `null` when the fetch failed. */
  body: string | null;
  /** The client's error (`String(e)`) when the fetch failed, else `null`. */
  error: string | null;
  /** The WebSockets the client opened during the call, in order. */
  sockets: ObservedSocket[];
}

/** The running page server. */
export interface ClientPage extends AsyncDisposable {
  /** `http://127.0.0.1:PORT/`: open it and wait for `globalThis.ready === true`. */
  readonly url: string;
  /** Stops the server and waits until it has finished. Idempotent. */
  close(): Promise<void>;
}

/**
 * Reads a file of an npm package from Deno's npm cache: `import.meta.resolve(specifier)` (a
 * `file:` URL into the cache, since the type-only imports above put the packages into this
 * module's graph), or the file `sibling` beside it. When the package is not in the cache yet (a
 * fresh machine running with `--no-check`, where type-only imports are not downloaded), runs
 * `deno cache` on this module once and tries again.
 *
 * @throws {Error} when the specifier does not resolve to a `file:` URL, or the file is still
 *   missing after `deno cache`.
 */
export async function readPackageFile(
  specifier: string,
  sibling?: string,
): Promise<Uint8Array<ArrayBuffer>> {
  const path = (): string => {
    const resolved = import.meta.resolve(specifier);
    if (!resolved.startsWith("file:")) {
      throw new Error(`Cannot read npm file "${specifier}": it resolves to ${resolved}`);
    }
    return fromFileUrl(sibling === undefined ? resolved : new URL(sibling, resolved));
  };
  try {
    return await Deno.readFile(path());
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  await cacheThisModule();
  return await Deno.readFile(path());
}

let caching: Promise<void> | undefined;

/** `deno cache` of this module (once per process): downloads the packages it type-imports. */
function cacheThisModule(): Promise<void> {
  caching ??= (async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["cache", fromFileUrl(import.meta.url)],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`deno cache failed: ${new TextDecoder().decode(out.stderr)}`);
    }
  })();
  return caching;
}

/**
 * Serves the client page and the packages' files on `127.0.0.1:0` (plain HTTP; any other path is
 * a 404). The files are read into memory before the server starts.
 *
 * @throws {Error} from {@linkcode readPackageFile}.
 */
export async function startClientPage(): Promise<ClientPage> {
  const files = new Map<string, { bytes: Uint8Array<ArrayBuffer>; type: string }>();
  for (const [path, { specifier, sibling, type }] of Object.entries(ASSETS)) {
    files.set(path, { bytes: await readPackageFile(specifier, sibling), type });
  }
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen(): void {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/") {
      return new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } });
    }
    const file = files.get(path);
    if (file === undefined) return new Response("not found", { status: 404 });
    return new Response(file.bytes, { headers: { "content-type": file.type } });
  });
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await server.shutdown();
      await server.finished;
    })();
    return closing;
  };
  return { url: `http://127.0.0.1:${server.addr.port}/`, close, [Symbol.asyncDispose]: close };
}
