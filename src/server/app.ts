/**
 * The HTTP side of wasmnet, and the only module that knows Hono: the WebSocket upgrade handler
 * (mountable on any route of any Hono app) and the stand-alone app with `/healthz`.
 *
 * @module
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { Policy } from "../policy/mod.ts";
import {
  Session,
  type SessionBandwidth,
  type SessionLimits,
  type WireChannel,
  WispSession,
  type WispSettings,
  WsproxySession,
} from "../session/mod.ts";
import { RateLimiter, TokenBucket } from "../limit/mod.ts";
import type { Transport } from "../transport/mod.ts";
import { ConnectionPool, pooledTransport } from "../pool/mod.ts";
import { getLogger } from "../log/mod.ts";
import { VERSION } from "../version.ts";
import { hostOfHostPort, type HostPort, parseHostPort } from "../protocol/mod.ts";
import { demoResponse } from "./demo/mod.ts";
import { metricsAllowed, ServerMetrics } from "./metrics.ts";
import { type Ticket, ticketChecker, type TicketOptions, ticketPolicy } from "./tickets.ts";
import { clientIpResolver, trustedProxyCheck } from "./client_ip.ts";
import { IpLimiter, type IpLimitOptions } from "./ip_limits.ts";
import type { TlsFiles } from "./adapter.ts";

const log = getLogger("server");

/** Options shared by {@linkcode wasmnet}, {@linkcode createApp} and `startServer`. */
export interface WasmnetOptions {
  /** Policy for every session (default: {@linkcode Policy.defaults}, the safe default deny list). */
  policy?: Policy;
  /**
   * Network access: the runtime's transport (`denoTransport()`, `bunTransport()`) or a fake.
   * Required by {@linkcode sessionFactory}; `startServer` and the CLI pass the runtime's.
   */
  transport?: Transport;
  /** Per-session limits (defaults: `DEFAULT_SESSION_LIMITS`). */
  limits?: Partial<SessionLimits>;
  /**
   * Bandwidth cap of each session per direction, Mbps (10^6 bit/s of payload); wins over the
   * policy's `max_bandwidth_mbps`. 0 = unlimited.
   */
  maxBandwidthMbps?: number;
  /**
   * Cap on the whole server per direction, all sessions together, Mbps; wins over the policy's
   * `max_server_bandwidth_mbps`. 0 = unlimited.
   */
  maxServerBandwidthMbps?: number;
  /**
   * Seconds between WebSocket pings; a client that does not answer is disconnected
   * (Deno's `idleTimeout`, default 120; 0 disables).
   */
  idleTimeoutSecs?: number;
  /**
   * Pre-dialled connection pool (default: none). After a session's TCP dial to a checked
   * `ip:port`, up to `perKey` spare, never-used connections to it are kept for `idleSecs`
   * seconds for the next dial (any session); at most `maxTotal` (default 256) over all targets.
   * One pool per {@linkcode SessionRegistry}; {@linkcode SessionRegistry.closeAll} closes it.
   * Disabled when `perKey` or `idleSecs` is 0.
   */
  pool?: { perKey: number; idleSecs: number; maxTotal?: number };
  /**
   * Web origins allowed to open a session, e.g. `["https://app.example.com"]` (default: any).
   * Browsers always send `Origin` on a WebSocket upgrade, so with a list set, any other web page
   * a user visits cannot drive the proxy (cross-site WebSocket hijacking); an upgrade from a
   * listed origin, or with no `Origin` header at all (non-browser clients), is accepted, anything
   * else gets 403. Compared case-insensitively, scheme + host + port, no trailing slash.
   */
  allowedOrigins?: readonly string[];
  /**
   * Most sessions (WebSockets) at once on this server (default: no limit). An upgrade beyond it
   * gets 503, so file descriptors stay bounded at about `maxSessions × max_connections × 2`.
   */
  maxSessions?: number;
  /**
   * Reverse proxies whose `X-Forwarded-For` / `Forwarded` (RFC 7239) headers name the client
   * (`--trust-proxy CIDR...`): CIDRs or addresses. The client address (logs, metrics, per-address
   * limits, `/metrics` access) is the peer's unless the peer is listed here. Default: none.
   */
  trustProxy?: readonly string[];
  /**
   * Limits per client address (after `trustProxy`): sessions at once, new sessions per minute
   * (beyond: HTTP 429 before the upgrade) and dials per minute (beyond: the dial gets `error`
   * `too many dials from IP (limit N per minute)`, Wisp CLOSE 0x49). Default: none.
   */
  ipLimits?: IpLimitOptions;
  /**
   * Where sessions, dials, bytes, the pool and the limiters are counted, served as `GET /metrics`
   * (Prometheus text format) to loopback peers (default: a new {@linkcode ServerMetrics} per
   * {@linkcode SessionRegistry}).
   */
  metrics?: ServerMetrics;
  /**
   * Require a signed ticket (a JWT, see `server/tickets.ts`) on every WebSocket upgrade, as
   * `?ticket=<jwt>` or a `Sec-WebSocket-Protocol` entry `wasmnet.ticket.<jwt>`. A missing,
   * expired, malformed or badly signed ticket gets HTTP 401 before the upgrade (the reason is
   * logged at `warn` with the client's address). A session's policy is the server policy narrowed
   * by the ticket's `allow` rules (`Policy.narrow`), its `max_connections` and own bandwidth cap
   * the smaller of the server's and the ticket's. Default: no tickets.
   */
  tickets?: TicketOptions;
  /**
   * Serve TLS (`wss://`, `https://`) with this certificate and key (PEM); reload them with
   * `WasmnetServer.reloadTls` (the CLI does on SIGHUP). Default: plain `ws://`/`http://`.
   */
  tls?: TlsFiles;
  /**
   * The Wisp personality (default: on at `/wisp/`); `false` turns it off (those paths then start
   * wasmnet sessions like any other). See {@linkcode WispServerOptions}.
   */
  wisp?: false | WispServerOptions;
}

/**
 * Wisp on the server's port: a WebSocket upgrade whose path is `prefix` (or any path under it
 * ending in `/`) speaks Wisp (MercuryWorkshop/wisp-protocol v1.2 and 2.0 draft 6: v2 when the
 * upgrade carries `Sec-WebSocket-Protocol`, whose first value is echoed), and
 * `<prefix><host>:<port>` is a wsproxy stream (one TCP connection per WebSocket).
 */
export interface WispServerOptions extends WispSettings {
  /** The path prefix, starting and ending with `/` (default `/wisp/`). */
  prefix?: string;
}

/** The default Wisp path prefix. */
export const DEFAULT_WISP_PREFIX = "/wisp/";

/**
 * Which personality an upgrade gets, from its path and `Sec-WebSocket-Protocol`, and (on a server
 * with tickets) the verified ticket. `protocol` is the subprotocol the adapter echoes in its
 * upgrade response (browsers fail a handshake that offered subprotocols and got none back): for
 * Wisp v2 the first offered; for wasmnet and wsproxy the ticket's `wasmnet.ticket.<jwt>` entry when
 * the ticket came that way.
 */
export type Route =
  & (
    | { readonly kind: "wasmnet"; readonly protocol?: string }
    | {
      readonly kind: "wisp";
      /** 2 when the upgrade offered a subprotocol, else 1. */
      readonly version: 1 | 2;
      /** The subprotocol to echo (the first offered), for v2. */
      readonly protocol?: string;
    }
    | {
      readonly kind: "wsproxy";
      readonly host: string;
      readonly port: number;
      readonly protocol?: string;
    }
  )
  & {
    /** The upgrade's verified ticket (servers with `WasmnetOptions.tickets` only). */
    readonly ticket?: Ticket;
    /** The client's address (after `trustProxy`), set by {@linkcode clientGate}. */
    readonly client?: string;
  };

/** Personality names, for logs and `/healthz`. */
export type ProtocolName = "wasmnet" | "wisp" | "wsproxy";

/**
 * A client connection of any personality as adapters and the registry see it: the wasmnet
 * {@linkcode Session}, a {@linkcode WispSession} or a {@linkcode WsproxySession}.
 */
export interface ClientSession {
  /** Session number for logs. */
  readonly number: number;
  /** Its personality. */
  readonly protocol: ProtocolName;
  /** Handles one WebSocket message; never throws. */
  handle(message: string | Uint8Array | ArrayBuffer): void;
  /** Ends it and every socket it holds; resolves when all its tasks ended. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@linkcode createApp} (and `startServer`): the session options plus the app's own. */
export interface AppOptions extends WasmnetOptions {
  /**
   * Serve the demo page (default false): a plain `GET /` answers a small page that opens TCP/TLS
   * sockets, sends text or hex, resolves names and shows policy denials and throughput through a
   * WebSocket to this same server; `GET /demo/*` answers its script, style sheet and the bundled
   * client. Each response carries a strict `Content-Security-Policy`, `nosniff` and
   * `Cache-Control: no-cache`. WebSocket upgrades on every path, `/` included, still start
   * sessions. With `allowedOrigins` set, list the server's own origin for the page to connect.
   */
  demo?: boolean;
}

/**
 * Closes a session's WebSocket with a status code and reason (RFC 6455 §7.4), resolving once the
 * close handshake is over (or given up on).
 */
export type CloseChannel = (code: number, reason: string) => Promise<void>;

/** Live sessions of one app or handler, for `/healthz` and shutdown. */
export class SessionRegistry {
  /** The metrics of this registry's sessions, pool and limiters (`GET /metrics`). */
  readonly metrics: ServerMetrics;
  readonly #sessions = new Map<ClientSession, CloseChannel>();
  #accepting = true;
  #pool: ConnectionPool | undefined;
  #policy: Policy | undefined;
  #ipLimiter: IpLimiter | undefined;
  readonly #clients = new Map<ClientSession, string>();

  /**
   * The policy in force for this registry's sessions: every new dial, lookup, bind and datagram
   * destination of every session reads it (open sockets keep running). Set it to reload.
   *
   * @throws {Error} when read before {@linkcode SessionRegistry.policyOr} or a set gave it one.
   */
  get policy(): Policy {
    if (this.#policy === undefined) throw new Error("the registry has no policy yet");
    return this.#policy;
  }

  /** Replaces the policy in force (hot reload: SIGHUP, `--watch-policy`). */
  set policy(policy: Policy) {
    this.#policy = policy;
  }

  /** The policy in force, set to `first` when there is none yet. */
  policyOr(first: Policy): Policy {
    return this.#policy ??= first;
  }

  /** @param metrics where its sessions report (default: a new {@linkcode ServerMetrics}). */
  constructor(metrics: ServerMetrics = new ServerMetrics()) {
    this.metrics = metrics;
  }

  /** Number of live sessions. */
  get size(): number {
    return this.#sessions.size;
  }

  /** False once {@linkcode SessionRegistry.closeAll} has started. */
  get accepting(): boolean {
    return this.#accepting;
  }

  /** The connection pool of this registry's sessions, if `WasmnetOptions.pool` enabled one. */
  get pool(): ConnectionPool | undefined {
    return this.#pool;
  }

  /**
   * Wraps `base` with this registry's connection pool, building the pool on first use (one
   * per registry, dialling with the first `base`); returns `base` when `settings` is undefined
   * or disables pooling.
   */
  pooled(base: Transport, settings: WasmnetOptions["pool"]): Transport {
    if (!settings || settings.perKey <= 0 || settings.idleSecs <= 0) return base;
    this.#pool ??= new ConnectionPool({
      perKey: settings.perKey,
      idleMs: settings.idleSecs * 1000,
      ...(settings.maxTotal !== undefined ? { maxTotal: settings.maxTotal } : {}),
      dial: (ip, port, signal) => base.connectTcp(ip, port, signal),
    });
    this.metrics.watchPool(this.#pool);
    return pooledTransport(base, this.#pool);
  }

  /** Live sessions per personality, e.g. `{ wasmnet: 2, wisp: 1, wsproxy: 0 }`. */
  byProtocol(): Record<ProtocolName, number> {
    const counts: Record<ProtocolName, number> = { wasmnet: 0, wisp: 0, wsproxy: 0 };
    for (const session of this.#sessions.keys()) counts[session.protocol]++;
    return counts;
  }

  /** Adds a session and the function that closes its WebSocket. */
  add(session: ClientSession, close: CloseChannel, client?: string): void {
    this.#sessions.set(session, close);
    if (client !== undefined) {
      this.#clients.set(session, client);
      this.#ipLimiter?.sessionStarted(client);
    }
  }

  /** Removes a session (after it closed). */
  delete(session: ClientSession): void {
    this.#sessions.delete(session);
    const client = this.#clients.get(session);
    if (client !== undefined) {
      this.#clients.delete(session);
      this.#ipLimiter?.sessionEnded(client);
    }
  }

  /**
   * The per-address limiter of this registry's sessions (built on first use from `limits`; one
   * per registry so every adapter and factory of a server shares it).
   */
  ipLimiter(limits: IpLimitOptions | undefined): IpLimiter {
    return this.#ipLimiter ??= new IpLimiter(limits ?? {});
  }

  /**
   * Stops accepting new sessions, ends every session (closing its sockets) and closes every
   * WebSocket with status 1001 (going away), then closes the connection pool. Resolves when
   * every session and the pool have finished.
   */
  async closeAll(): Promise<void> {
    this.#accepting = false;
    const all = [...this.#sessions];
    await Promise.all(all.map(async ([session, close]) => {
      await session.close();
      await close(1001, "server shutting down");
    }));
    await this.#pool?.close();
  }
}

/**
 * Builds the server's shared buckets (one per direction) once and returns a factory of each new
 * session's limiter chains: the session's own bucket, then the server's. A ticket's `mbps`
 * (`ticketMbps`) lowers the session's own bucket (the smaller cap wins; unlimited is the largest).
 */
function bandwidthFor(
  options: WasmnetOptions,
  policy: Policy,
  metrics: ServerMetrics,
): (ticketMbps?: number) => SessionBandwidth {
  const bucket = (mbps: number | undefined): TokenBucket[] =>
    mbps !== undefined && mbps > 0 ? [TokenBucket.fromMbps(mbps)] : [];
  const perSession = options.maxBandwidthMbps ?? policy.maxBandwidthMbps;
  const server = options.maxServerBandwidthMbps ?? policy.maxServerBandwidthMbps;
  const serverUp = bucket(server);
  const serverDown = bucket(server);
  const onWait = { up: metrics.limiterWait("up"), down: metrics.limiterWait("down") };
  return (ticketMbps) => {
    const own = ticketMbps === undefined || ticketMbps <= 0
      ? perSession
      : perSession === undefined || perSession <= 0
      ? ticketMbps
      : Math.min(perSession, ticketMbps);
    return {
      up: new RateLimiter([...bucket(own), ...serverUp], { onWait: onWait.up }),
      down: new RateLimiter([...bucket(own), ...serverDown], { onWait: onWait.down }),
    };
  };
}

/**
 * The peer's IP address of a plain HTTP request, from what each adapter passes as Hono's `env`:
 * `node:http` (`@hono/node-server`: `{ incoming }`), `Deno.serve` (`{ remoteAddr }`) or the Bun
 * adapter (`{ remoteAddr }`, from `server.requestIP`); undefined when unknown.
 */
export function remoteIpOf(c: Context): string | undefined {
  const env = c.env as {
    incoming?: { socket?: { remoteAddress?: string } };
    remoteAddr?: { hostname?: string };
  } | undefined;
  return env?.incoming?.socket?.remoteAddress ?? env?.remoteAddr?.hostname;
}

/** Whether the request asks for a WebSocket upgrade (`Upgrade: websocket`). */
export function isUpgrade(c: Context): boolean {
  return c.req.header("upgrade")?.toLowerCase() === "websocket";
}

/** Why an upgrade is refused: an HTTP status and a one-line text body. */
export interface Refusal {
  /**
   * 400 (a malformed wsproxy target), 401 (no valid ticket), 403 (origin not allowed; wsproxy on
   * a server that requires Wisp authentication), 429 (a per-address limit) or 503 (shutting
   * down, server full).
   */
  readonly status: 400 | 401 | 403 | 429 | 503;
  /** The response body, one line ending in a newline. */
  readonly body: string;
}

/**
 * The admission rules every server adapter applies to a WebSocket upgrade before it creates a
 * session: the Origin allow-list, shutdown, and the session cap. Logs each refusal at `warn`.
 *
 * @returns a function of the request's `Origin` header (undefined when absent) that returns the
 *   refusal, or undefined to admit.
 */
export function admission(
  options: WasmnetOptions,
  registry: SessionRegistry,
): (origin: string | undefined) => Refusal | undefined {
  const origins = options.allowedOrigins?.map((o) => o.toLowerCase().replace(/\/+$/, ""));
  return (origin) => {
    if (origins && origin !== undefined && !origins.includes(origin.toLowerCase())) {
      log.warn("upgrade refused: origin not allowed", { origin });
      return { status: 403, body: `wasmnet: origin ${origin} is not allowed\n` };
    }
    if (!registry.accepting) return { status: 503, body: "wasmnet: server shutting down\n" };
    if (options.maxSessions !== undefined && registry.size >= options.maxSessions) {
      log.warn("upgrade refused: max sessions reached", { sessions: registry.size });
      return { status: 503, body: `wasmnet: server full (${options.maxSessions} sessions)\n` };
    }
    return undefined;
  };
}

/**
 * Parses a wsproxy target `host:port` (`[v6]:port` for IPv6; percent-escapes decoded). Returns
 * undefined when it is not one (no port, a port outside 1–65535, an empty host).
 */
function wsproxyTarget(text: string): HostPort | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(text);
  } catch {
    return undefined;
  }
  const target = parseHostPort(decoded);
  return typeof target === "string" || target.host.includes("/") ? undefined : target;
}

/**
 * The upgrade router of a server: a function of the request's path and `Sec-WebSocket-Protocol`
 * header that answers which personality serves it ({@linkcode Route}), or a refusal (400 for a
 * malformed wsproxy target, 403 for wsproxy on a server whose Wisp requires authentication).
 * Paths outside the Wisp prefix (or every path, with `wisp: false`) are wasmnet's.
 */
export function router(
  options: WasmnetOptions,
): (path: string, protocols: string | undefined) => Route | Refusal {
  const wisp = options.wisp === false ? undefined : options.wisp ?? {};
  const prefix = wisp?.prefix ?? DEFAULT_WISP_PREFIX;
  const bare = prefix.replace(/\/+$/, "");
  return (path, protocols) => {
    if (wisp === undefined) return { kind: "wasmnet" };
    if (path !== bare && !path.startsWith(prefix)) return { kind: "wasmnet" };
    if (path === bare || path.endsWith("/")) {
      const offered = protocols?.split(",").map((p) => p.trim()).find((p) => p !== "");
      return offered === undefined
        ? { kind: "wisp", version: 1 }
        : { kind: "wisp", version: 2, protocol: offered };
    }
    if (wisp.users && wisp.users.size > 0) {
      return {
        status: 403,
        body: "wasmnet: wsproxy is disabled: this server's Wisp requires authentication\n",
      };
    }
    const target = wsproxyTarget(path.slice(prefix.length));
    if (target === undefined) {
      return {
        status: 400,
        body: `wasmnet: bad wsproxy target ${
          JSON.stringify(path.slice(prefix.length, prefix.length + 300))
        } (expected ${prefix}HOST:PORT)\n`,
      };
    }
    return { kind: "wsproxy", ...target };
  };
}

/**
 * The ticket check of a server's upgrades (`WasmnetOptions.tickets`), run after
 * {@linkcode admission} and {@linkcode router} and before the upgrade, the same on every adapter:
 * a function of their answer, the request URL (a path with its query, or absolute), its
 * `Sec-WebSocket-Protocol` header and the client's address (for the log). A refusal passes
 * through; a server without tickets gets the route back as is. Otherwise the ticket is verified
 * (`server/tickets.ts`): a bad one is a 401 with the one-line body
 * `wasmnet: ticket refused: <reason>` (logged at `warn` with the client and reason), a good one
 * returns the route with the ticket and, for wasmnet and wsproxy routes, the ticket's
 * subprotocol entry to echo. Never rejects.
 */
export function ticketGate(
  options: WasmnetOptions,
): (
  routed: Route | Refusal,
  url: string,
  protocols: string | undefined,
  client: string,
) => Promise<Route | Refusal> {
  const check = options.tickets === undefined ? undefined : ticketChecker(options.tickets);
  return async (routed, url, protocols, client) => {
    if (check === undefined || isRefusal(routed)) return routed;
    const result = await check(url, protocols);
    if (!result.ok) {
      log.warn("upgrade refused: bad ticket", { client, reason: result.reason });
      return { status: 401, body: `wasmnet: ticket refused: ${result.reason}\n` };
    }
    const { ticket } = result;
    log.debug("ticket accepted", { client, tenant: ticket.claims.sub, exp: ticket.claims.exp });
    if (routed.kind === "wisp" || ticket.protocol === undefined) return { ...routed, ticket };
    return { ...routed, ticket, protocol: ticket.protocol };
  };
}

/**
 * The client-address gate every adapter applies after routing and the ticket check: finds the
 * client's address (the peer's, or with `trustProxy` the one its trusted proxies name) and
 * applies the per-address session limits (429). The route it returns carries `client`, which
 * sessions log, count and rate-limit dials by.
 *
 * @throws {RangeError} (when built) for a bad `trustProxy` entry.
 */
export function clientGate(
  options: WasmnetOptions,
  registry: SessionRegistry,
): (
  routed: Route | Refusal,
  peer: string,
  header: (name: string) => string | undefined,
) => Route | Refusal {
  const resolve = clientIpResolver(options.trustProxy ?? []);
  const limiter = registry.ipLimiter(options.ipLimits);
  return (routed, peer, header) => {
    if (isRefusal(routed)) return routed;
    const client = resolve(peer, header);
    const why = limiter.active ? limiter.admitSession(client) : undefined;
    if (why !== undefined) {
      log.warn("upgrade refused: per-address limit", { client, reason: why });
      return { status: 429, body: `wasmnet: ${why}\n` };
    }
    return { ...routed, client };
  };
}

/** Whether a router's answer is a refusal. */
export function isRefusal(answer: Route | Refusal): answer is Refusal {
  return "status" in answer;
}

/**
 * Builds the sessions of one server or handler: each call makes a {@linkcode Session} on `channel`
 * with the shared policy, transport (pooled per registry), bandwidth buckets and limits, and
 * registers it with `close`. Call the returned session's `close()` when the WebSocket closes, then
 * `registry.delete(session)`.
 *
 * @throws {TypeError} when `options.transport` is not given.
 */
export function sessionFactory(
  options: WasmnetOptions,
  registry: SessionRegistry,
): (
  channel: WireChannel,
  label: string,
  close: CloseChannel,
  route?: Route,
) => ClientSession {
  // The registry's policy is the one in force (it may be reloaded); the options give the first.
  const policy = registry.policyOr(options.policy ?? Policy.defaults());
  const current = (): Policy => registry.policy;
  if (!options.transport) throw new TypeError("sessionFactory needs options.transport");
  const transport = registry.pooled(options.transport, options.pool);
  const bandwidth = bandwidthFor(options, policy, registry.metrics);
  const wisp = options.wisp === false ? {} : options.wisp ?? {};
  const limiter = registry.ipLimiter(options.ipLimits);
  return (channel, label, close, route = { kind: "wasmnet" }) => {
    const ticket = route.ticket;
    const client = route.client;
    // Behind a trusted proxy the client is the address it names (its port is not known).
    if (client !== undefined && hostOfHostPort(label) !== client) label = client;
    const common = {
      ...(client !== undefined && limiter.active
        ? { dialGate: () => limiter.admitDial(client) }
        : {}),
      // A ticket narrows the policy in force (re-narrowed when a reload swaps it).
      policy: ticket === undefined ? current : ticketPolicy(current, ticket),
      ...(ticket?.claims.sub !== undefined ? { tenant: ticket.claims.sub } : {}),
      transport,
      label,
      bandwidth: bandwidth(ticket?.claims.mbps),
      metrics: registry.metrics,
      ...(options.limits ? { limits: options.limits } : {}),
    };
    const session: ClientSession = route.kind === "wisp"
      ? new WispSession(channel, {
        ...common,
        wisp,
        version: route.version,
        closeChannel: close,
      })
      : route.kind === "wsproxy"
      ? new WsproxySession(channel, {
        ...common,
        host: route.host,
        port: route.port,
        closeChannel: close,
      })
      : new Session(channel, common);
    registry.add(session, close, client);
    return session;
  };
}

/**
 * The stand-alone wasmnet app: `GET /healthz` answers JSON
 * `{ "status": "ok", "version": "0.2.0", "sessions": 3 }`; with `demo`, a plain `GET /` answers
 * the demo page (see {@linkcode AppOptions.demo}); `upgrade`, when given, is mounted on every
 * other path (Deno's `wasmnet()` middleware: a WebSocket upgrade on any path starts a session);
 * any other request gets 426 Upgrade Required. Adapters that upgrade before the app (`ws`,
 * `Bun.serve`) pass no `upgrade`.
 */
export function createApp(
  options: AppOptions = {},
  registry: SessionRegistry = new SessionRegistry(),
  upgrade?: MiddlewareHandler,
): Hono {
  const app = new Hono();
  const trustedProxy = trustedProxyCheck(options.trustProxy ?? []);
  app.get("/metrics", async (c) => {
    const peer = remoteIpOf(c);
    if (!metricsAllowed(peer) && !(peer !== undefined && trustedProxy(peer))) {
      return c.text(
        "wasmnet: /metrics answers loopback and --trust-proxy peers only (see --metrics-listen)\n",
        403,
      );
    }
    const metrics = registry.metrics;
    return c.body(await metrics.render(), 200, { "content-type": metrics.contentType });
  });
  app.get(
    "/healthz",
    (c) =>
      c.json({
        status: registry.accepting ? "ok" : "stopping",
        version: VERSION,
        sessions: registry.size,
        protocols: registry.byProtocol(),
      }),
  );
  if (options.demo) {
    app.get("*", async (c, next) => {
      const page = isUpgrade(c) ? undefined : demoResponse(c.req.path);
      return page ?? await next();
    });
  }
  const fallback = (c: Context): Response => {
    c.header("Upgrade", "websocket");
    return c.text("wasmnet: this endpoint expects a WebSocket upgrade\n", 426);
  };
  if (upgrade) app.all("*", upgrade, fallback);
  else app.all("*", fallback);
  app.onError((err, c) => {
    log.error("request failed", { path: c.req.path, error: String(err) });
    return c.text("internal error\n", 500);
  });
  return app;
}
