/**
 * Starting and stopping a stand-alone wasmnet server (`Deno.serve` + the Hono app).
 *
 * @module
 */
import { type AppOptions, createApp, SessionRegistry } from "./app.ts";
import { getLogger } from "../log/mod.ts";
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
export function startServer(options: ServerOptions = {}): Promise<WasmnetServer> {
  const registry = new SessionRegistry();
  const app = createApp(options, registry);
  const hostname = options.hostname ?? "0.0.0.0";
  const port = options.port ?? 9000;
  let http: Deno.HttpServer<Deno.NetAddr>;
  try {
    http = Deno.serve({
      hostname,
      port,
      onListen: () => {},
      onError: (err) => {
        log.error("http error", { error: String(err) });
        return new Response("internal error\n", { status: 500 });
      },
    }, app.fetch);
  } catch (err) {
    return registry.closeAll().then(() => Promise.reject(listenError(err, hostname, port)));
  }
  const addr = http.addr;
  // Where a client on this machine reaches the server (a wildcard address is not dialable).
  const reach = formatHostPort(
    addr.hostname === "0.0.0.0" ? "127.0.0.1" : addr.hostname === "::" ? "::1" : addr.hostname,
    addr.port,
  );
  log.info("listening", { addr: formatHostPort(addr.hostname, addr.port) });
  if (options.demo) log.info("demo page", { url: `http://${reach}/` });
  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      log.info("shutting down", { sessions: registry.size });
      const httpDone = http.shutdown();
      await registry.closeAll();
      await httpDone;
      log.info("stopped");
    })();
    return stopping;
  };
  options.signal?.addEventListener("abort", () => void shutdown(), { once: true });
  return Promise.resolve({
    addr: { hostname: addr.hostname, port: addr.port },
    url: `ws://${reach}/`,
    get sessions() {
      return registry.size;
    },
    get pool() {
      return registry.pool;
    },
    shutdown,
    finished: http.finished,
    [Symbol.asyncDispose]: shutdown,
  });
}

/**
 * Rewrites a `Deno.serve` failure's message to one line naming the address, keeping its class and
 * `code`: `Address already in use (os error 98)` becomes
 * `cannot listen on 127.0.0.1:9000: address already in use`.
 */
function listenError(err: unknown, hostname: string, port: number): unknown {
  if (!(err instanceof Error)) return err;
  const reason = err.message.replace(/\s*\(os error \d+\)$/, "").replace(/\.$/, "");
  const hint = err instanceof Deno.errors.PermissionDenied && port < 1024
    ? " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    : "";
  err.message = `cannot listen on ${formatHostPort(hostname, port)}: ${
    reason.charAt(0).toLowerCase() + reason.slice(1)
  }${hint}`;
  return err;
}
