/**
 * The server's Prometheus metrics (npm `prom-client`, text exposition format 0.0.4): the
 * {@linkcode SessionMetrics} sink every session reports to, plus the connection pool, the bandwidth
 * limiters and the log output, read when scraped. Served as `GET /metrics` on the main port to
 * loopback peers ({@linkcode metricsAllowed}) and on `--metrics-listen HOST:PORT` to anyone
 * ({@linkcode listenMetrics}).
 *
 * `prom-client` runs unchanged on Deno, on Bun and in the `bun build --compile` binary: its
 * `cluster` import is lazy (only `AggregatorRegistry` loads it, which wasmnet does not use) and
 * `perf_hooks` is read only by the optional process metrics.
 *
 * Metrics (all names prefixed `wasmnet_`):
 *
 * | name | type | labels | what |
 * | --- | --- | --- | --- |
 * | `wasmnet_sessions` | gauge | `protocol` (wasmnet, wisp, wsproxy), `tenant` | sessions open now |
 * | `wasmnet_sessions_opened_total` | counter | `protocol` | sessions started |
 * | `wasmnet_sockets` | gauge | `kind` (tcp, tls, udp, listener) | sockets open now |
 * | `wasmnet_dials_total` | counter | `result` (connected, denied, refused, timeout, error) | `connect`/`connect_tls` outcomes |
 * | `wasmnet_dial_duration_seconds` | histogram | `result` | request → connected (TCP + TLS) or refusal |
 * | `wasmnet_denials_total` | counter | `rule` | policy denials (dials, lookups, binds, datagrams) by deciding rule |
 * | `wasmnet_bytes_total` | counter | `direction` (up, down) | payload bytes, counted as they flow |
 * | `wasmnet_limiter_wait_seconds` | histogram | `direction` | bandwidth limiter waits (`_count` = waits) |
 * | `wasmnet_pool_hits_total`, `wasmnet_pool_misses_total` | counter | | connection pool acquires |
 * | `wasmnet_pool_idle_connections` | gauge | | pre-dialled connections idle now |
 * | `wasmnet_read_pauses_total` | counter | | times a session stopped reading its WebSocket (upload backpressure) |
 * | `wasmnet_log_lines_dropped_total` | counter | | log lines dropped because stdout/stderr was not drained |
 * | `wasmnet_build_info` | gauge | `version` | 1 |
 *
 * @module
 */
import http from "node:http";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { DialResult, Direction, SessionMetrics, SocketKind } from "../session/mod.ts";
import type { ConnectionPool } from "../pool/mod.ts";
import { droppedLogLines, getLogger } from "../log/mod.ts";
import { formatHostPort } from "../protocol/mod.ts";
import { trustedProxyCheck } from "./client_ip.ts";
import { VERSION } from "../version.ts";

const log = getLogger("server");

/** Upper bounds of the dial latency buckets, seconds (1 ms to 10 s). */
const DIAL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Upper bounds of the limiter wait buckets, seconds. */
const WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5];

const PROTOCOLS = ["wasmnet", "wisp", "wsproxy"] as const;
const KINDS: readonly SocketKind[] = ["tcp", "tls", "udp", "listener"];
const RESULTS: readonly DialResult[] = ["connected", "denied", "refused", "timeout", "error"];

/** Options of {@linkcode ServerMetrics}. */
export interface ServerMetricsOptions {
  /**
   * Also export prom-client's process metrics (CPU, resident memory, open file descriptors, event
   * loop lag, heap), prefixed `wasmnet_` (default false; the CLI turns them on).
   */
  processMetrics?: boolean;
}

/**
 * The metrics of one server (see the module doc for the list). Sessions report to it as their
 * {@linkcode SessionMetrics} sink; hot counters (bytes) are plain numbers read at scrape time.
 */
export class ServerMetrics implements SessionMetrics {
  /** The prom-client registry holding every metric of this server. */
  readonly registry: Registry = new Registry();
  /** Open sessions by `protocol` and `tenant`. */
  readonly #sessions = new Map<string, { protocol: string; tenant: string; open: number }>();
  readonly #opened: Counter<"protocol">;
  readonly #sockets: Gauge<"kind">;
  readonly #dials: Counter<"result">;
  readonly #dialSeconds: Histogram<"result">;
  readonly #denials: Counter<"rule">;
  readonly #limiterWaits: Histogram<"direction">;
  readonly #pools = new Set<ConnectionPool>();
  #bytesUp = 0;
  #bytesDown = 0;
  #readPauses = 0;

  /** @param options process metrics on or off. */
  constructor(options: ServerMetricsOptions = {}) {
    const registers = [this.registry];
    const sessions = this.#sessions;
    new Gauge({
      name: "wasmnet_sessions",
      help: "WebSocket sessions open now, by protocol personality and tenant (ticket subject).",
      labelNames: ["protocol", "tenant"] as const,
      registers,
      collect(): void {
        this.reset();
        for (const p of PROTOCOLS) this.set({ protocol: p, tenant: "" }, 0);
        for (const [key, s] of sessions) {
          if (s.open === 0 && s.tenant !== "") sessions.delete(key);
          else this.set({ protocol: s.protocol, tenant: s.tenant }, s.open);
        }
      },
    });
    this.#opened = new Counter({
      name: "wasmnet_sessions_opened_total",
      help: "WebSocket sessions started, by protocol personality.",
      labelNames: ["protocol"] as const,
      registers,
    });
    for (const p of PROTOCOLS) this.#opened.inc({ protocol: p }, 0);
    this.#sockets = new Gauge({
      name: "wasmnet_sockets",
      help: "Sockets open now (dialled or accepted streams, UDP sockets, listeners), by kind.",
      labelNames: ["kind"] as const,
      registers,
    });
    for (const kind of KINDS) this.#sockets.set({ kind }, 0);
    this.#dials = new Counter({
      name: "wasmnet_dials_total",
      help: "connect/connect_tls dials by result (cancelled dials are not counted).",
      labelNames: ["result"] as const,
      registers,
    });
    for (const result of RESULTS) this.#dials.inc({ result }, 0);
    this.#dialSeconds = new Histogram({
      name: "wasmnet_dial_duration_seconds",
      help: "Time from a dial request to connected (TCP, and TLS handshake) or to its refusal.",
      labelNames: ["result"] as const,
      buckets: DIAL_BUCKETS,
      registers,
    });
    this.#denials = new Counter({
      name: "wasmnet_denials_total",
      help: "Policy denials (dials, resolved addresses, lookups, binds, datagrams) by rule.",
      labelNames: ["rule"] as const,
      registers,
    });
    const bytes = (): { up: number; down: number } => ({
      up: this.#bytesUp,
      down: this.#bytesDown,
    });
    new Counter({
      name: "wasmnet_bytes_total",
      help: "Payload bytes relayed, up (client to network) and down, counted as they flow.",
      labelNames: ["direction"] as const,
      registers,
      collect(): void {
        this.reset();
        const b = bytes();
        this.inc({ direction: "up" }, b.up);
        this.inc({ direction: "down" }, b.down);
      },
    });
    this.#limiterWaits = new Histogram({
      name: "wasmnet_limiter_wait_seconds",
      help: "Waits for bandwidth limiter tokens (per session and server caps), by direction.",
      labelNames: ["direction"] as const,
      buckets: WAIT_BUCKETS,
      registers,
    });
    for (const direction of ["up", "down"]) this.#limiterWaits.zero({ direction });
    const pools = this.#pools;
    const poolSum = (key: "hits" | "misses" | "idle"): number => {
      let n = 0;
      for (const pool of pools) n += pool.stats[key];
      return n;
    };
    // Pool counters are the pools' own (ConnectionPool.stats), read when scraped.
    const fromPools = (name: string, help: string, key: "hits" | "misses"): void => {
      new Counter({
        name,
        help,
        registers,
        collect(): void {
          this.reset();
          this.inc(poolSum(key));
        },
      });
    };
    fromPools(
      "wasmnet_pool_hits_total",
      "Dials served by a pre-dialled pooled connection.",
      "hits",
    );
    fromPools("wasmnet_pool_misses_total", "Dials the connection pool had to dial.", "misses");
    new Gauge({
      name: "wasmnet_pool_idle_connections",
      help: "Pre-dialled connections idle in the pool now.",
      registers,
      collect(): void {
        this.set(poolSum("idle"));
      },
    });
    const pauses = (): number => this.#readPauses;
    new Counter({
      name: "wasmnet_read_pauses_total",
      help: "Times a session stopped reading its WebSocket (upload backpressure).",
      registers,
      collect(): void {
        this.reset();
        this.inc(pauses());
      },
    });
    new Counter({
      name: "wasmnet_log_lines_dropped_total",
      help: "Log lines dropped because stdout or stderr was not drained.",
      registers,
      collect(): void {
        this.reset();
        this.inc(droppedLogLines());
      },
    });
    new Gauge({
      name: "wasmnet_build_info",
      help: "The wasmnet version, as a label; always 1.",
      labelNames: ["version"] as const,
      registers,
    }).set({ version: VERSION }, 1);
    if (options.processMetrics) {
      collectDefaultMetrics({ register: this.registry, prefix: "wasmnet_" });
    }
  }

  /** The `Content-Type` of {@linkcode ServerMetrics.render}'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every metric in the Prometheus text format. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** Reads `pool`'s hit, miss and idle counts at every scrape. */
  watchPool(pool: ConnectionPool): void {
    this.#pools.add(pool);
  }

  /** A limiter's `onWait` for `direction` (see `RateLimiter`). */
  limiterWait(direction: Direction): (seconds: number) => void {
    return (seconds) => this.#limiterWaits.observe({ direction }, seconds);
  }

  /** {@inheritDoc SessionMetrics.sessionOpened} */
  sessionOpened(protocol: string, tenant: string): void {
    const family = protocolFamily(protocol);
    const key = `${family}\n${tenant}`;
    const entry = this.#sessions.get(key);
    if (entry) entry.open++;
    else this.#sessions.set(key, { protocol: family, tenant, open: 1 });
    this.#opened.inc({ protocol: family });
  }

  /** {@inheritDoc SessionMetrics.sessionClosed} */
  sessionClosed(protocol: string, tenant: string): void {
    const entry = this.#sessions.get(`${protocolFamily(protocol)}\n${tenant}`);
    if (entry && entry.open > 0) entry.open--;
  }

  /** {@inheritDoc SessionMetrics.socketOpened} */
  socketOpened(kind: SocketKind): void {
    this.#sockets.inc({ kind });
  }

  /** {@inheritDoc SessionMetrics.socketClosed} */
  socketClosed(kind: SocketKind): void {
    this.#sockets.dec({ kind });
  }

  /** {@inheritDoc SessionMetrics.dialed} */
  dialed(result: DialResult, seconds: number): void {
    this.#dials.inc({ result });
    this.#dialSeconds.observe({ result }, seconds);
  }

  /** {@inheritDoc SessionMetrics.denied} */
  denied(rule: string): void {
    this.#denials.inc({ rule });
  }

  /** {@inheritDoc SessionMetrics.bytes} */
  bytes(direction: Direction, n: number): void {
    if (direction === "up") this.#bytesUp += n;
    else this.#bytesDown += n;
  }

  /** {@inheritDoc SessionMetrics.readPaused} */
  readPaused(): void {
    this.#readPauses++;
  }
}

/** `wisp v2` → `wisp`: the personality of a session's logged protocol name. */
function protocolFamily(protocol: string): string {
  const space = protocol.indexOf(" ");
  return space < 0 ? protocol : protocol.slice(0, space);
}

/**
 * Whether a peer at `remoteIp` may read `/metrics` on the main port: loopback peers only
 * (`127.0.0.0/8`, `::1`, and `::ffff:127.x.y.z`); an unknown address (undefined) is refused.
 *
 * This is the one hook for widening it: `--trust-proxy CIDR...` peers are to be admitted here too.
 *
 * @example
 * ```ts
 * import { metricsAllowed } from "./metrics.ts";
 * metricsAllowed("127.0.0.1"); // true
 * metricsAllowed("192.0.2.7"); // false
 * ```
 */
export function metricsAllowed(remoteIp: string | undefined): boolean {
  return remoteIp !== undefined && isLoopback(remoteIp.replace(/%.*$/, ""));
}

/** Loopback addresses, any spelling (IPv4-mapped too), through the trusted-proxy CIDR check. */
const isLoopback = trustedProxyCheck(["127.0.0.0/8", "::1/128"]);

/** A running `--metrics-listen` server. */
export interface MetricsListener {
  /** The bound address (the real port when 0 was asked). */
  readonly addr: { readonly hostname: string; readonly port: number };
  /** Stops listening; resolves once closed. Idempotent. */
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` of `metrics` to any peer on `hostname:port` (`--metrics-listen`), with
 * `node:http` (on Deno and on Bun); any other path gets 404, another method 405. Keep it on an
 * internal address.
 *
 * @throws {Error} (rejects) the listen error (`EADDRINUSE`, ...), with a message naming the
 *   address: `cannot listen on 127.0.0.1:9100 for metrics: ...`.
 */
export async function listenMetrics(
  metrics: ServerMetrics,
  hostname: string,
  port: number,
): Promise<MetricsListener> {
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
      res.end("wasmnet: only /metrics is served here\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { "content-type": "text/plain; charset=utf-8", allow: "GET, HEAD" });
      res.end("wasmnet: GET /metrics\n");
      return;
    }
    metrics.render().then((text) => {
      res.writeHead(200, { "content-type": metrics.contentType });
      res.end(req.method === "HEAD" ? undefined : text);
    }, (e: unknown) => {
      log.error("metrics failed", { error: String(e) });
      res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
      res.end("internal error\n");
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: Error) => {
      e.message = `cannot listen on ${formatHostPort(hostname, port)} for metrics: ${e.message}`;
      reject(e);
    });
    server.listen({ host: hostname, port }, () => resolve());
  });
  server.on("error", (e: Error) => log.error("metrics http error", { error: String(e) }));
  const address = server.address();
  const addr = typeof address === "object" && address !== null
    ? { hostname: address.address, port: address.port }
    : { hostname, port };
  let closing: Promise<void> | undefined;
  return {
    addr,
    close: () =>
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
