/**
 * The Bun server adapter: `Bun.serve` with its `websocket` handlers (uWebSockets underneath),
 * behaving like Deno's `node:http` + npm `ws` adapter (`server/deno/_node_ws.ts`):
 *
 * - A WebSocket upgrade on any path goes through `admission()` (Origin allow-list, shutdown,
 *   session cap; a refusal is answered as plain HTTP with its status and body), then
 *   `server.upgrade()`; every other request goes to the Hono app (`/healthz`, demo page, 426).
 * - Read backpressure: a session that holds too much for its upstream sockets calls
 *   `ws.pause()`, which stops reading the client's TCP connection (the client's own
 *   `bufferedAmount` grows; measured in `tests/bun_server_test.ts`), and `ws.resume()` later.
 *   Bun suspends the idle timeout while paused, as the `ws` adapter skips the ping check of a
 *   paused session.
 * - Message size: `maxPayloadLength` is the session's `maxMessageBytes`, counted as frames
 *   arrive (fragments summed); a larger message closes the socket with 1009 (RFC 6455 §7.4.1).
 *   Invalid UTF-8 in a text message closes it with 1007 (§8.1). Neither reaches the session, and
 *   nothing of the message is kept. Unlike the `ws` adapter (which stops reading and drops the
 *   connection after 1 s), uWebSockets then reads and discards whatever the client still sends
 *   until the client closes or its timeout, min(`idleTimeout`, about 16 s), runs out (measured:
 *   44 GiB discarded in 16 s by a client that kept streaming); Bun offers no way to stop it.
 * - Idle clients: Bun pings on its own and closes a socket that has received nothing (data or
 *   pong) for `idleTimeout` seconds — `idleTimeoutSecs` (default 120, 0 disables), clamped to
 *   Bun's maximum of 960. The `ws` adapter pings every `idleTimeoutSecs` and drops a client that
 *   has not answered by the next ping (so after 1–2 intervals); Bun drops it after about one
 *   (uWebSockets checks timeouts every 4 s).
 * - Send buffer: the session keeps the WebSocket's buffered bytes near `highWaterMarkBytes` by
 *   polling `bufferedAmount` (`getBufferedAmount()`) before each upstream read, so the session,
 *   not Bun, is in charge: `backpressureLimit` is only a backstop at
 *   {@linkcode sendBufferLimit} (64 MiB by default, far above the 4 MiB mark plus one 256 KiB
 *   read per socket), and `closeOnBackpressureLimit` is off, so that instead of Bun's abrupt 1006
 *   a send past it closes the socket with 1011 `send buffer limit` after what was queued. No
 *   `drain` handler: the session's drain poller re-reads the buffered amount itself.
 * - Shutdown: `close()` is `server.stop()`, which stops listening, closes idle HTTP connections
 *   at once and resolves when the last WebSocket has closed; the registry closes every session
 *   with 1001. Bun calls the `close` handler inside `ws.close()`, before the client has answered,
 *   so `close()` then lingers (at most 2 s) until those connections are really gone (see
 *   `lingerForCloseHandshakes`).
 *
 * @module
 */
import { isIP } from "node:net";
import process from "node:process";
import { lookup } from "node:dns/promises";
import { readFile } from "node:fs/promises";
import {
  admission,
  clientGate,
  type ClientSession,
  isRefusal,
  type Route,
  router,
  sessionFactory,
  ticketGate,
} from "../app.ts";
import type { Listening, ListenRequest, ServerAdapter, TlsFiles } from "../adapter.ts";
import type { WireChannel } from "../../session/mod.ts";
import { DEFAULT_SESSION_LIMITS, type SessionLimits } from "../../session/mod.ts";
import { formatHostPort } from "../../protocol/mod.ts";
import { getLogger } from "../../log/mod.ts";
import {
  bunGlobal,
  type BunServeOptions,
  type BunServer,
  type BunServerWebSocket,
} from "./_bun_types.ts";

const log = getLogger("server");

/** Bun's largest WebSocket `idleTimeout`, in seconds (a larger one makes `Bun.serve` throw). */
export const MAX_IDLE_TIMEOUT_SECS = 960;
/** How long a close waits for Bun to report the socket closed before dropping it, in ms. */
const CLOSE_HANDSHAKE_MS = 2000;
/** The smallest send-buffer backstop, in bytes (see {@linkcode sendBufferLimit}). */
const MIN_SEND_BUFFER_LIMIT = 64 * 1024 * 1024;
/**
 * Seconds an idle keep-alive HTTP connection stays open: 5, as `node:http`'s `keepAliveTimeout`
 * in the `ws` adapter (Bun's default is 10).
 */
const HTTP_IDLE_SECS = 5;
/** `ServerWebSocket.readyState` of an open socket. */
const OPEN = 1;

/**
 * The WebSocket idle timeout for Bun, in whole seconds: `idleTimeoutSecs` (default 120; 0
 * disables) rounded up and clamped to 0–{@linkcode MAX_IDLE_TIMEOUT_SECS}.
 */
export function bunIdleTimeout(idleTimeoutSecs: number | undefined): number {
  const secs = idleTimeoutSecs ?? 120;
  if (!(secs > 0)) return 0;
  return Math.min(MAX_IDLE_TIMEOUT_SECS, Math.ceil(secs));
}

/**
 * The send-buffer backstop per WebSocket (Bun's `backpressureLimit`), in bytes: 16 × the
 * session's `highWaterMarkBytes`, at least 64 MiB. The session keeps the buffer near its mark;
 * a send past this closes the socket with 1011.
 */
export function sendBufferLimit(limits: Partial<SessionLimits> | undefined): number {
  const mark = limits?.highWaterMarkBytes ?? DEFAULT_SESSION_LIMITS.highWaterMarkBytes;
  return Math.max(MIN_SEND_BUFFER_LIMIT, 16 * mark);
}

/** What each upgraded socket carries (`ws.data`). */
interface SocketState {
  /** The client's `host:port`, for the log. */
  readonly label: string;
  /** Which personality serves the socket. */
  readonly route: Route;
  /** The session, from `open` on. */
  session?: ClientSession;
  /** The channel the session sends on. */
  channel?: BunChannel;
  /** Set once Bun has called `close`. */
  closed: boolean;
  /** Resolves {@linkcode SocketState.ended}. */
  markEnded: () => void;
  /** Resolves once Bun has called `close`. */
  readonly ended: Promise<void>;
  /** The close started by the session's `CloseChannel`, once started. */
  closing?: Promise<void>;
}

/** A Bun `ServerWebSocket` as a session's {@linkcode WireChannel}, with read backpressure. */
class BunChannel implements WireChannel {
  readonly #ws: BunServerWebSocket<SocketState>;
  readonly #limit: number;
  /** Whether the session asked to stop reading. */
  paused = false;
  /** Set once a send was dropped: the stream is broken, later sends are dropped too. */
  #failed = false;

  constructor(ws: BunServerWebSocket<SocketState>, limit: number) {
    this.#ws = ws;
    this.#limit = limit;
  }

  /**
   * Queues a message; the messages of one turn of the event loop leave together, corked into one
   * write (`ServerWebSocket.cork`), as the `ws` adapter corks until the next tick. Measured with
   * `deno task bench:profile connect_rate binary --runtime bun`: `sendBinary` (one write each) was
   * the second-largest self time.
   */
  send(data: string | Uint8Array): void {
    if (this.#failed || this.#ws.readyState !== OPEN) return;
    if (this.#pending.length === 0) process.nextTick(this.#flushSoon);
    this.#pending.push(data);
    this.#pendingBytes += typeof data === "string" ? data.length : data.byteLength;
  }

  /** Messages queued in this turn, and their size (UTF-16 units for text, bytes for binary). */
  #pending: (string | Uint8Array)[] = [];
  #pendingBytes = 0;
  readonly #flushSoon = (): void => this.flush();

  /** Writes the queued messages now, in one corked write (before a close, too). */
  flush(): void {
    const batch = this.#pending;
    if (batch.length === 0) return;
    this.#pending = [];
    this.#pendingBytes = 0;
    const ws = this.#ws;
    if (this.#failed || ws.readyState !== OPEN) return;
    let dropped = false;
    const write = (): void => {
      for (const data of batch) {
        // -1: queued behind backpressure (the session watches bufferedAmount); > 0: written;
        // 0: dropped past backpressureLimit.
        const status = typeof data === "string" ? ws.sendText(data) : ws.sendBinary(data);
        const size = typeof data === "string" ? data.length : data.byteLength;
        if (status === 0 && size > 0) {
          dropped = true;
          return;
        }
      }
    };
    if (batch.length === 1) write();
    else ws.cork(write);
    if (!dropped) return;
    // Dropped past backpressureLimit: the client would miss a message. Close after what is
    // queued, outside the session's own call (Bun calls the close handler synchronously).
    this.#failed = true;
    log.warn("websocket send buffer over its limit", {
      session: ws.data.session?.number,
      buffered: ws.getBufferedAmount(),
      limit: this.#limit,
    });
    queueMicrotask(() => {
      if (ws.readyState === OPEN) ws.close(1011, "send buffer limit");
    });
  }

  /** Bytes Bun holds for the client plus the messages queued in this turn. */
  get bufferedAmount(): number {
    return this.#ws.readyState === OPEN ? this.#ws.getBufferedAmount() + this.#pendingBytes : 0;
  }

  pauseReading(): void {
    this.paused = true;
    if (this.#ws.readyState === OPEN) this.#ws.pause();
  }

  resumeReading(): void {
    this.paused = false;
    if (this.#ws.readyState === OPEN) this.#ws.resume();
  }
}

/**
 * The Bun server adapter (see the module doc). Its `listen` rejects with Bun's error and its
 * Node-style `code` (`EADDRINUSE`, `EADDRNOTAVAIL`, `EACCES`, ...), or `ENOTFOUND`/`EAI_AGAIN`
 * from a look-up when the host name does not resolve; `startServer` words it as
 * `cannot listen on HOST:PORT: <reason>`.
 *
 * @throws {TypeError} (from `listen`, as a rejection) when not running on Bun.
 */
export function bunAdapter(): ServerAdapter {
  return { name: "bun", readBackpressure: true, listen: listenBun };
}

/** `Bun.serve` on `hostname:port`: upgrades to sessions, other requests to the app. */
async function listenBun(request: ListenRequest): Promise<Listening> {
  const { options, registry, hostname, port } = request;
  const bun = bunGlobal();
  const app = request.app();
  const admit = admission(options, registry);
  const route = router(options);
  const checkTicket = ticketGate(options);
  const checkClient = clientGate(options, registry);
  const newSession = sessionFactory(options, registry);
  const limit = sendBufferLimit(options.limits);
  const idleTimeout = bunIdleTimeout(options.idleTimeoutSecs);
  if ((options.idleTimeoutSecs ?? 0) > MAX_IDLE_TIMEOUT_SECS) {
    log.warn("idle timeout above Bun's maximum", {
      asked: options.idleTimeoutSecs,
      secs: idleTimeout,
    });
  }

  let server: BunServer<SocketState>;
  const tls = options.tls;
  let serveOptions: BunServeOptions<SocketState>;
  try {
    serveOptions = {
      hostname,
      ...(tls ? { tls: { cert: tls.cert, key: tls.key } } : {}),
      port,
      idleTimeout: HTTP_IDLE_SECS,
      async fetch(req, server): Promise<Response | undefined> {
        if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
          // The peer's address, as Deno.serve gives it (read by `remoteIpOf` for /metrics).
          const peer = server.requestIP(req);
          return app.fetch(req, peer ? { remoteAddr: { hostname: peer.address } } : undefined);
        }
        const admitted = admit(req.headers.get("origin") ?? undefined);
        const protocols = req.headers.get("sec-websocket-protocol") ?? undefined;
        const ip = server.requestIP(req);
        const routed = checkClient(
          await checkTicket(
            admitted ?? route(new URL(req.url).pathname, protocols),
            req.url,
            protocols,
            ip?.address ?? "",
          ),
          ip?.address ?? "",
          (name) => req.headers.get(name) ?? undefined,
        );
        if (isRefusal(routed)) {
          return new Response(routed.body, {
            status: routed.status,
            headers: { "content-type": "text/plain; charset=utf-8", connection: "close" },
          });
        }
        let markEnded = (): void => {};
        const ended = new Promise<void>((resolve) => markEnded = resolve);
        const data: SocketState = {
          label: ip ? formatHostPort(ip.address, ip.port) : "",
          route: routed,
          closed: false,
          markEnded,
          ended,
        };
        // Wisp v2's subprotocol and a ticket's entry are echoed (browsers fail the handshake
        // otherwise).
        const echo = routed.protocol;
        const upgraded = echo === undefined
          ? server.upgrade(req, { data })
          : server.upgrade(req, { data, headers: { "Sec-WebSocket-Protocol": echo } });
        if (upgraded) return undefined;
        return new Response("wasmnet: bad WebSocket upgrade\n", {
          status: 400,
          headers: { "content-type": "text/plain; charset=utf-8", connection: "close" },
        });
      },
      error(err): Response {
        log.error("http error", { error: String(err) });
        return new Response("internal error\n", { status: 500 });
      },
      websocket: {
        maxPayloadLength: options.limits?.maxMessageBytes ??
          DEFAULT_SESSION_LIMITS.maxMessageBytes,
        idleTimeout,
        sendPings: true,
        perMessageDeflate: false,
        backpressureLimit: limit,
        closeOnBackpressureLimit: false,
        open(ws): void {
          ws.binaryType = "uint8array";
          const state = ws.data;
          // An upgrade admitted just before shutdown began: the registry will not close it.
          if (!registry.accepting) {
            ws.close(1001, "server shutting down");
            return;
          }
          const channel = new BunChannel(ws, limit);
          state.channel = channel;
          state.session = newSession(
            channel,
            state.label,
            (code, reason) =>
              state.closing ??= (async () => {
                if (state.closed) return;
                channel.flush(); // what the session sent this turn goes before the close frame
                // Read again, so nothing of the client's is left unread behind the close.
                if (channel.paused) ws.resume();
                ws.close(code, reason);
                if (state.closed) return;
                const timer = setTimeout(() => ws.terminate(), CLOSE_HANDSHAKE_MS);
                await state.ended;
                clearTimeout(timer);
              })(),
            state.route,
          );
        },
        message(ws, message): void {
          ws.data.session?.handle(message);
        },
        close(ws, code, reason): void {
          const state = ws.data;
          state.closed = true;
          state.markEnded();
          const session = state.session;
          if (session === undefined) return;
          // Bun reports a close it made itself for a protocol error or timeout as 1006 with a
          // reason (`Received too big message`, `Received invalid UTF-8`, `WebSocket timed out
          // from inactivity`); the client got 1009/1007 or nothing.
          if (code === 1006 && reason !== "") {
            log.info("websocket closed on error", { session: session.number, error: reason });
          }
          void session.close().finally(() => registry.delete(session));
        },
        error(ws, err): void {
          log.error("websocket handler failed", {
            session: ws.data.session?.number,
            error: String(err),
          });
        },
      },
    };
    server = bun.serve<SocketState>(serveOptions);
  } catch (err) {
    throw await explainListenError(err, hostname);
  }
  const addr = server.address ?? { address: hostname, port: server.port };
  let closing: Promise<void> | undefined;
  return {
    addr: { hostname: addr.address, port: addr.port },
    ...(tls
      ? {
        // Measured with Bun 1.4.5: `server.reload({ tls })` is accepted but new connections keep
        // the old certificate, and a second `Bun.serve` on the port (`reusePort`) stops taking
        // connections when the first one stops listening.
        reloadTls: (_files: TlsFiles) => {
          throw new Error(
            "Bun.serve cannot change its certificate while listening: restart the server " +
              "(or terminate TLS in a reverse proxy)",
          );
        },
      }
      : {}),
    close: () =>
      closing ??= (async () => {
        await server.stop(false);
        await lingerForCloseHandshakes(addr.port, CLOSE_HANDSHAKE_MS);
      })(),
  };
}

/**
 * Waits (at most `ms`) until no connection to `port` is held open any more. Bun calls a
 * WebSocket's `close` handler, and `server.stop()` resolves, as soon as the close frame is
 * queued; uWebSockets then still reads (and discards) what the client sends until the client's
 * own close frame (RFC 6455 §7.1.1). A process that exits before that resets the connection
 * (its receive buffer is not empty) and a client in the middle of an upload sees 1006 instead
 * of 1001, so shutdown lingers, as the `ws` adapter waits for its close handshakes. Bun exposes
 * no close-complete event: the sockets are found in `/proc/self/net/tcp{,6}` (local port `port`,
 * not listening, still attached to a file: inode ≠ 0). Where that is unavailable (not Linux) it
 * returns at once.
 */
async function lingerForCloseHandshakes(port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const open = await heldConnections(port);
    if (open === undefined || open === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  log.info("close handshakes unfinished at shutdown", { waitedMs: ms });
}

/** Connections on local port `port` attached to a socket file (ours), or undefined off Linux. */
async function heldConnections(port: number): Promise<number | undefined> {
  let count = 0;
  let found = false;
  for (const table of ["/proc/self/net/tcp", "/proc/self/net/tcp6"]) {
    let text: string;
    try {
      text = await readFile(table, "utf8");
    } catch {
      continue;
    }
    found = true;
    // `sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode`
    for (const line of text.split("\n").slice(1)) {
      const [, local, , state, , , , , , inode] = line.trim().split(/\s+/);
      if (local === undefined || inode === undefined || inode === "0" || state === "0A") continue;
      if (Number.parseInt(local.slice(local.lastIndexOf(":") + 1), 16) === port) count++;
    }
  }
  return found ? count : undefined;
}

/**
 * Bun reports a host name that does not resolve as `EADDRNOTAVAIL`, like an address of another
 * machine; a look-up tells them apart, so the error says `no address found for the host name`
 * (`ENOTFOUND`) as on Deno.
 */
async function explainListenError(err: unknown, hostname: string): Promise<unknown> {
  const code = (err as { code?: unknown } | null)?.code;
  if (code !== "EADDRNOTAVAIL" || isIP(hostname) !== 0) return err;
  try {
    await lookup(hostname);
    return err;
  } catch (lookupErr) {
    return lookupErr instanceof Error && "code" in lookupErr ? lookupErr : err;
  }
}
