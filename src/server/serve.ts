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
 * @throws {Deno.errors.AddrInUse} when the port is taken; other `Deno.errors` for bad addresses.
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
  const http = Deno.serve({
    hostname: options.hostname ?? "0.0.0.0",
    port: options.port ?? 9000,
    onListen: () => {},
    onError: (err) => {
      log.error("http error", { error: String(err) });
      return new Response("internal error\n", { status: 500 });
    },
  }, app.fetch);
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
