/**
 * The one {@linkcode WasmnetClient} shared by `net`, `tls`, `dns` and `dgram`, its configuration,
 * and the adapter over the client's protocol extensions (`start_tls`, `shutdown`).
 *
 * Private to `src/node/`; each module re-exports {@linkcode configure}.
 *
 * @module
 */
import { WasmnetClient, type WasmnetSocket } from "../client/mod.ts";

/** Options of {@linkcode configure}. */
export interface ConfigureOptions {
  /**
   * WebSocket URL of the wasmnet server (`ws:` or `wss:`). The client is created lazily, on the
   * first socket, lookup or listener, and again after its WebSocket has closed.
   */
  url?: string | URL;
  /** Use binary frames (default `true`; `false` for JSON text frames). Only with `url`. */
  binary?: boolean;
  /**
   * A client to use instead of one made from `url`. It is used as it is: never disconnected, and
   * never replaced when its WebSocket closes (configure again to replace it).
   */
  client?: WasmnetClient;
}

/**
 * Shape of the global environment default: `globalThis.WASMNET_URL` is the server URL used when
 * {@linkcode configure} was never called with a `url` or `client`.
 */
export interface WasmnetGlobal {
  /** WebSocket URL of the wasmnet server. */
  WASMNET_URL?: string;
}

interface State {
  options: ConfigureOptions;
  client: WasmnetClient | undefined;
  /** True once `client` (one we made) has closed: the next use makes a new one. */
  stale: boolean;
}

const state: State = { options: {}, client: undefined, stale: false };

/**
 * Configures the wasmnet server used by the `net`, `tls`, `dns` and `dgram` modules (one shared
 * client for all four). Synchronous; nothing connects until the first use.
 *
 * Calling it again replaces the configuration: a client this module made earlier is
 * disconnected (its sockets close), a client passed as `client` is left alone. `configure({})`
 * returns to the environment default, `globalThis.WASMNET_URL`.
 *
 * @example
 * ```ts ignore
 * import net from "./net.ts";
 * net.configure({ url: "wss://proxy.example/" });
 * const sock = net.connect(6379, "redis.internal");
 * ```
 *
 * @throws {TypeError} when `url` and `client` are both given.
 */
export function configure(options: ConfigureOptions): void {
  if (options.url !== undefined && options.client !== undefined) {
    throw new TypeError("configure: give either url or client, not both");
  }
  const old = state.client;
  if (old !== undefined && state.options.client !== old) old.disconnect();
  state.options = { ...options };
  state.client = options.client;
  state.stale = false;
}

/**
 * The shared client: the configured `client`, or one made from the configured `url` (else
 * `globalThis.WASMNET_URL`), made on first use and remade once its WebSocket has closed.
 *
 * @throws {Error} code `ERR_WASMNET_NOT_CONFIGURED` when there is no client, URL or
 *   `globalThis.WASMNET_URL`.
 */
export function sharedClient(): WasmnetClient {
  if (state.client !== undefined && !state.stale) return state.client;
  if (state.options.client !== undefined) return state.options.client;
  const url = state.options.url ?? (globalThis as WasmnetGlobal).WASMNET_URL;
  if (url === undefined || url === "") {
    throw Object.assign(
      new Error(
        "wasmnet is not configured: call configure({ url }) or set globalThis.WASMNET_URL",
      ),
      { code: "ERR_WASMNET_NOT_CONFIGURED" },
    );
  }
  const client = new WasmnetClient(url, { binary: state.options.binary ?? true });
  state.client = client;
  state.stale = false;
  void client.closed.then(() => {
    if (state.client === client) state.stale = true;
  });
  return client;
}

// ── protocol extensions ───────────────────────────────────────────────────────────────────────
// `WasmnetSocket.startTls` and `WasmnetSocket.shutdown` wrap the client's `start_tls` and
// `shutdown` extensions. The node modules reach them through these two functions only.

/**
 * Upgrades an open socket to TLS on the server (`start_tls` extension); the server verifies the
 * certificate against `servername` (default: the host the socket was opened with).
 *
 * @throws {WasmnetError} `EUNSUPPORTED` from a server without the extension (the socket stays
 *   open in plaintext), `ESERVER` for a failed or refused handshake, `ECLOSED`, `EWEBSOCKET`.
 */
export function startTls(sock: WasmnetSocket, servername: string | undefined): Promise<void> {
  return servername === undefined ? sock.startTls() : sock.startTls(servername);
}

/**
 * Half-closes an open socket after the writes already made (`shutdown` extension: FIN upstream,
 * reading continues until the peer closes). On a server without the extension the socket stays
 * fully open.
 */
export function shutdown(sock: WasmnetSocket): void {
  sock.shutdown();
}
