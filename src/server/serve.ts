/**
 * Starting and stopping a stand-alone wasmnet server: the Hono app for plain HTTP and a WebSocket
 * adapter for sessions — `node:http` + npm `ws` (read backpressure, see `_node_ws.ts`), or
 * `Deno.serve` + `Deno.upgradeWebSocket` when `ws` may not be loaded.
 *
 * @module
 */
import type { Hono } from "hono";
import { type AppOptions, createApp, SessionRegistry } from "./app.ts";
import { canUseWs, listenNodeWs } from "./_node_ws.ts";
import { getLogger } from "../log/mod.ts";
import { denoTransport } from "../transport/mod.ts";
import type { ConnectionPool } from "../pool/mod.ts";
import { formatHostPort } from "../protocol/mod.ts";

const log = getLogger("server");

/** Options of {@linkcode startServer}. */
export interface ServerOptions extends AppOptions {
  /** Address to listen on (default `0.0.0.0`). */
  hostname?: string;
  /** Port to listen on (default 9000; 0 picks a free port). */
  port?: number;
  /** Shuts the server down when aborted. */
  signal?: AbortSignal;
  /**
   * Serve WebSockets with read backpressure (`node:http` + npm `ws`): a session whose upstream
   * sockets hold more than `uploadHighWaterBytes` stops reading its client until they drain.
   * Default: on when the env permission for `WS_NO_BUFFER_UTIL` is granted (`ws` reads it when it
   * loads), else off with a warning: `Deno.upgradeWebSocket`, whose reads cannot be paused, so a
   * client that outruns its upstream fills the per-socket queue and that socket ends with `error`.
   */
  readBackpressure?: boolean;
}

/** A running server. */
export interface WasmnetServer extends AsyncDisposable {
  /** The address it listens on (the real port when 0 was asked). */
  readonly addr: { hostname: string; port: number };
  /** `ws://host:port/` for clients (`host` is `127.0.0.1` when listening on `0.0.0.0`). */
  readonly url: string;
  /** Number of live sessions. */
  readonly sessions: number;
  /** The connection pool when `pool` was set (for its `stats`); closed by shutdown. */
  readonly pool: ConnectionPool | undefined;
  /**
   * Stops accepting, closes every session, socket and WebSocket, and resolves when the HTTP
   * server has finished. Idempotent.
   */
  shutdown(): Promise<void>;
  /** Resolves when the server has stopped (after {@linkcode WasmnetServer.shutdown}). */
  readonly finished: Promise<void>;
}

/**
 * Starts a wasmnet server and resolves once it listens.
 *
 * @throws {Deno.errors.AddrInUse} (as a rejection) when the port is taken; other `Deno.errors`
 * (`AddrNotAvailable`, `PermissionDenied`, `NotCapable`, ...) or `Error` for addresses that cannot
 * be listened on or resolved. Each keeps Deno's class and `code`, with a one-line message that
 * names the address: `cannot listen on 127.0.0.1:9000: address already in use` (IPv6 as
 * `[::1]:9000`).
 *
 * @example
 * ```ts ignore
 * import { startServer } from "./mod.ts";
 * await using server = await startServer({ hostname: "127.0.0.1", port: 0 });
 * console.log(server.url); // ws://127.0.0.1:40123/
 * ```
 */
export async function startServer(given: ServerOptions = {}): Promise<WasmnetServer> {
  // One transport for the whole server, so its lookup and dial bounds are the server's, whichever
  // part of the app (the `ws` adapter, the upgrade middleware, the pool) dials through it.
  const options = { ...given, transport: given.transport ?? denoTransport() };
  const registry = new SessionRegistry();
  const hostname = options.hostname ?? "0.0.0.0";
  const port = options.port ?? 9000;
  const backpressure = options.readBackpressure ?? canUseWs();
  let http: Listening;
  try {
    http = backpressure
      ? await listenNodeWs(createApp(options, registry), options, registry, hostname, port)
      : listenDeno(createApp(options, registry), hostname, port);
  } catch (err) {
    await registry.closeAll();
    throw listenError(err, hostname, port);
  }
  const addr = http.addr;
  // Where a client on this machine reaches the server (a wildcard address is not dialable).
  const reach = formatHostPort(
    addr.hostname === "0.0.0.0" ? "127.0.0.1" : addr.hostname === "::" ? "::1" : addr.hostname,
    addr.port,
  );
  log.info("listening", { addr: formatHostPort(addr.hostname, addr.port) });
  if (!backpressure) {
    log.warn(
      'no read backpressure: uploads that outrun their upstream end with "send queue full"; ' +
        "allow env WS_NO_BUFFER_UTIL (read by npm ws) to serve with ws",
    );
  }
  if (options.demo) log.info("demo page", { url: `http://${reach}/` });
  let finish = (): void => {};
  const finished = new Promise<void>((resolve) => finish = resolve);
  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      log.info("shutting down", { sessions: registry.size });
      const httpDone = http.close();
      await registry.closeAll();
      await httpDone;
      log.info("stopped");
      finish();
    })();
    return stopping;
  };
  options.signal?.addEventListener("abort", () => void shutdown(), { once: true });
  return {
    addr,
    url: `ws://${reach}/`,
    get sessions() {
      return registry.size;
    },
    get pool() {
      return registry.pool;
    },
    shutdown,
    finished,
    [Symbol.asyncDispose]: shutdown,
  };
}

/** A listening HTTP server, whichever adapter runs it. */
interface Listening {
  readonly addr: { hostname: string; port: number };
  /** Stops listening; resolves once the listener has closed. */
  close(): Promise<void>;
}

/** `Deno.serve` with the app; sessions through the app's `Deno.upgradeWebSocket` middleware. */
function listenDeno(app: Hono, hostname: string, port: number): Listening {
  const http = Deno.serve({
    hostname,
    port,
    onListen: () => {},
    onError: (err) => {
      log.error("http error", { error: String(err) });
      return new Response("internal error\n", { status: 500 });
    },
  }, app.fetch);
  return {
    addr: { hostname: http.addr.hostname, port: http.addr.port },
    close: () => http.shutdown(),
  };
}

/** Node-style listen error codes → the reason text Deno's own errors carry. */
const NODE_REASONS: Readonly<Record<string, string>> = {
  EADDRINUSE: "address already in use",
  EADDRNOTAVAIL: "cannot assign requested address",
  // Deno's node:http reports an address of another machine as EINVAL.
  EINVAL: "cannot assign requested address",
  EACCES: "permission denied",
  ENOTFOUND: "no address found for the host name",
  EAI_AGAIN: "temporary failure in name resolution",
};

/**
 * Rewrites a listen failure's message to one line naming the address, keeping its class and
 * `code`: `Address already in use (os error 98)` (`Deno.serve`) or `listen EADDRINUSE: address
 * already in use 127.0.0.1:9000` (`node:http`) becomes
 * `cannot listen on 127.0.0.1:9000: address already in use`.
 */
function listenError(err: unknown, hostname: string, port: number): unknown {
  if (!(err instanceof Error)) return err;
  const code = (err as { code?: unknown }).code;
  const reason = typeof code === "string" && NODE_REASONS[code] !== undefined
    ? NODE_REASONS[code]
    : err.message.replace(/\s*\(os error \d+\)$/, "").replace(/\.$/, "");
  const denied = err instanceof Deno.errors.PermissionDenied || code === "EACCES";
  const hint = denied && port < 1024 ? " (ports below 1024 need root or CAP_NET_BIND_SERVICE)" : "";
  err.message = `cannot listen on ${formatHostPort(hostname, port)}: ${
    reason.charAt(0).toLowerCase() + reason.slice(1)
  }${hint}`;
  return err;
}
