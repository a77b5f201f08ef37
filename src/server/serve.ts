/**
 * Starting and stopping a stand-alone wasmnet server, on any runtime: the Hono app for plain HTTP
 * and the runtime's {@linkcode ServerAdapter} for sessions (given by the caller; the CLI's runtime
 * module picks it).
 *
 * @module
 */
import { type AppOptions, createApp, SessionRegistry } from "./app.ts";
import type { Listening, ServerAdapter, TlsFiles } from "./adapter.ts";
import { checkTlsFiles } from "./tls_files.ts";
import { getLogger } from "../log/mod.ts";
import type { Transport } from "../transport/mod.ts";
import type { ConnectionPool } from "../pool/mod.ts";
import { formatHostPort } from "../protocol/mod.ts";
import { Policy } from "../policy/mod.ts";
import { listenMetrics, type MetricsListener } from "./metrics.ts";

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
   * Also serve `GET /metrics` on this address to any peer (`--metrics-listen HOST:PORT`; port 0
   * picks a free one), with `node:http`. Default: only the main port's loopback-only `/metrics`.
   */
  metricsListen?: { hostname: string; port: number };
  /** The runtime's HTTP + WebSocket server (`denoAdapter()`, `bunAdapter()`). */
  adapter: ServerAdapter;
  /**
   * The one transport of the whole server (`denoTransport()`, `bunTransport()`), so its lookup
   * and dial bounds are the server's, whichever part of the app dials through it.
   */
  transport: Transport;
}

/** A running server. */
export interface WasmnetServer extends AsyncDisposable {
  /** The address it listens on (the real port when 0 was asked). */
  readonly addr: { hostname: string; port: number };
  /**
   * `ws://host:port/` (`wss://` with TLS) for clients (`host` is `127.0.0.1` when listening on
   * `0.0.0.0`).
   */
  readonly url: string;
  /** Number of live sessions. */
  readonly sessions: number;
  /** The connection pool when `pool` was set (for its `stats`); closed by shutdown. */
  readonly pool: ConnectionPool | undefined;
  /** The `--metrics-listen` address (the real port when 0 was asked), when one was asked. */
  readonly metricsAddr?: { readonly hostname: string; readonly port: number } | undefined;
  /**
   * The policy in force. Setting it reloads: new dials, lookups, binds and datagram destinations
   * of every session (open ones too) use it; open sockets keep running. Bandwidth and
   * `max_connections` keys apply to sessions that start afterwards.
   */
  policy: Policy;
  /**
   * Replaces the TLS certificate and key for new connections; open sessions keep theirs (the CLI
   * calls it on SIGHUP).
   *
   * @throws {Error} when the server does not serve TLS, the adapter cannot reload (`Deno.serve`),
   *   or the certificate or key is invalid or do not match (`checkTlsFiles`; the old ones stay in
   *   use).
   */
  reloadTls(tls: TlsFiles): void;
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
 * @throws {Error} (as a rejection) the adapter's listen error — an OS error class (`AddrInUse`,
 * `AddrNotAvailable`, `PermissionDenied`, ...) or a Node `code` (`EADDRINUSE`, ...) — for addresses
 * that cannot be listened on or resolved. Each keeps its class and `code`, with a one-line message
 * that names the address: `cannot listen on 127.0.0.1:9000: address already in use` (IPv6 as
 * `[::1]:9000`).
 *
 * @example
 * ```ts ignore
 * import { startServer } from "./mod.ts";
 * import { denoAdapter } from "./deno/mod.ts";
 * import { denoTransport } from "../transport/deno/mod.ts";
 * await using server = await startServer({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   adapter: denoAdapter(),
 *   transport: denoTransport(),
 * });
 * console.log(server.url); // ws://127.0.0.1:40123/
 * ```
 */
export async function startServer(options: ServerOptions): Promise<WasmnetServer> {
  const { adapter } = options;
  if (options.tls) checkTlsFiles(options.tls);
  const registry = new SessionRegistry(options.metrics);
  registry.policy = options.policy ?? Policy.defaults();
  const hostname = options.hostname ?? "0.0.0.0";
  const port = options.port ?? 9000;
  let http: Listening;
  try {
    http = await adapter.listen({
      options,
      registry,
      hostname,
      port,
      app: (upgrade) => createApp(options, registry, upgrade),
    });
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
  log.info("listening", { addr: formatHostPort(addr.hostname, addr.port), server: adapter.name });
  options.transport.announceIcmp?.();
  if (!adapter.readBackpressure) {
    log.warn(
      'no read backpressure: uploads that outrun their upstream end with "send queue full"; ' +
        "on Deno, allow env WS_NO_BUFFER_UTIL (read by npm ws) to serve with ws",
    );
  }
  if (options.demo) log.info("demo page", { url: `${options.tls ? "https" : "http"}://${reach}/` });
  let metricsHttp: MetricsListener | undefined;
  if (options.metricsListen) {
    const { hostname: mHost, port: mPort } = options.metricsListen;
    try {
      metricsHttp = await listenMetrics(registry.metrics, mHost, mPort);
    } catch (err) {
      await http.close();
      await registry.closeAll();
      throw err;
    }
    log.info("metrics listening", {
      addr: formatHostPort(metricsHttp.addr.hostname, metricsHttp.addr.port),
    });
  }
  let finish = (): void => {};
  const finished = new Promise<void>((resolve) => finish = resolve);
  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      log.info("shutting down", { sessions: registry.size });
      const httpDone = http.close();
      await registry.closeAll();
      await httpDone;
      await metricsHttp?.close();
      log.info("stopped");
      finish();
    })();
    return stopping;
  };
  // A signal that fired while the server was starting stops it now (the event has passed).
  if (options.signal?.aborted) void shutdown();
  else options.signal?.addEventListener("abort", () => void shutdown(), { once: true });
  return {
    addr,
    url: `${options.tls ? "wss" : "ws"}://${reach}/`,
    get sessions() {
      return registry.size;
    },
    get pool() {
      return registry.pool;
    },
    metricsAddr: metricsHttp?.addr,
    get policy(): Policy {
      return registry.policy;
    },
    reloadTls(tls: TlsFiles): void {
      if (!http.reloadTls) throw new Error("the server does not serve TLS (start it with tls)");
      checkTlsFiles(tls);
      http.reloadTls(tls);
    },
    set policy(policy: Policy) {
      registry.policy = policy;
    },
    shutdown,
    finished,
    [Symbol.asyncDispose]: shutdown,
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
  const denied = err.name === "PermissionDenied" || code === "EACCES";
  const hint = denied && port < 1024 ? " (ports below 1024 need root or CAP_NET_BIND_SERVICE)" : "";
  err.message = `cannot listen on ${formatHostPort(hostname, port)}: ${
    reason.charAt(0).toLowerCase() + reason.slice(1)
  }${hint}`;
  return err;
}
