/**
 * The server adapter with read backpressure: `node:http` for HTTP and the npm `ws` library for
 * WebSockets (RFC 6455). `Deno.upgradeWebSocket` reads every message as fast as the client sends it
 * and cannot be paused; `ws` can (`WebSocket.pause()`/`resume()`, which stop reading the client's
 * TCP connection, so the client's own `bufferedAmount` grows), enforces the message size as frames
 * arrive (`maxPayload`, fragments counted, close 1009), closes 1007 on invalid UTF-8, and lets the
 * server wait for its close handshake at shutdown (1001).
 *
 * `ws` reads the environment variable `WS_NO_BUFFER_UTIL` when it loads, so it is imported only
 * when that read is permitted ({@linkcode canUseWs}); the Deno adapter falls back to `Deno.serve`
 * otherwise. This adapter is for Deno: Bun swaps npm `ws` for its own, whose server side has no
 * `pause()`; Bun has `Bun.serve` (`server/bun/`).
 *
 * @module
 */
import http from "node:http";
import https from "node:https";
import process from "node:process";
import type { Duplex } from "node:stream";
import type { Buffer } from "node:buffer";
import { getRequestListener } from "@hono/node-server";
// @ts-types="npm:@types/ws@^8.18.1"
import type { RawData, WebSocket, WebSocketServer } from "ws";
import { admission, clientGate, isRefusal, router, sessionFactory, ticketGate } from "../app.ts";
import type { Listening, ListenRequest } from "../adapter.ts";
import type { WireChannel } from "../../session/mod.ts";
import { DEFAULT_SESSION_LIMITS } from "../../session/mod.ts";
import { formatHostPort } from "../../protocol/mod.ts";
import { getLogger } from "../../log/mod.ts";

const log = getLogger("server");

/** How long shutdown waits for a client to answer the close frame before dropping it, in ms. */
const CLOSE_HANDSHAKE_MS = 2000;
/** How long a WebSocket closed for a protocol error (1009, 1007, 1002) lingers unread, in ms. */
const ERROR_CLOSE_MS = 1000;

/** Whether `ws` may be loaded: it reads `WS_NO_BUFFER_UTIL`, which needs that env permission. */
export function canUseWs(): boolean {
  try {
    return Deno.permissions.querySync({ name: "env", variable: "WS_NO_BUFFER_UTIL" }).state ===
      "granted";
  } catch {
    return false;
  }
}

/** A `ws` WebSocket as a session's {@linkcode WireChannel}, with read backpressure. */
class WsChannel implements WireChannel {
  readonly #ws: WebSocket;
  /** Whether the session asked to stop reading (kept apart from ws's own pause state). */
  paused = false;
  /** Whether the socket is corked until the next tick. */
  #corked = false;

  constructor(ws: WebSocket) {
    this.#ws = ws;
  }

  send(data: string | Uint8Array): void {
    if (this.#ws.readyState !== this.#ws.OPEN) return;
    // Events of one turn of the event loop leave in one write: cork the TCP socket at the first
    // and uncork once the current work is done (ws corks around each frame too; corks nest).
    // `_socket` is ws's underlying `net.Socket` (not in its typings). Measured with
    // `deno task bench:profile connect_rate binary`: writev 22% → 13% of the server's time and
    // connect+close 3,050 → 3,900/s; the 64 B round trip is unchanged.
    const socket = (this.#ws as unknown as { _socket?: Duplex })._socket;
    if (!this.#corked && socket !== undefined) {
      this.#corked = true;
      socket.cork();
      process.nextTick(() => {
        this.#corked = false;
        socket.uncork();
      });
    }
    this.#ws.send(data);
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  pauseReading(): void {
    this.paused = true;
    this.#ws.pause();
  }

  resumeReading(): void {
    this.paused = false;
    this.#ws.resume();
  }
}

/**
 * Listens on `hostname:port` with `node:http`: upgrades (any path) go through the admission rules
 * to a new session over `ws`; other requests go to `app` (`/healthz`, the demo page, 426).
 *
 * @throws {Error} (rejects) the listen error with Node's `code` (`EADDRINUSE`, `EADDRNOTAVAIL`,
 *   `EACCES`, `ENOTFOUND`, ...).
 */
export async function listenNodeWs(request: ListenRequest): Promise<Listening> {
  const { options, registry, hostname, port } = request;
  const app = request.app();
  const { WebSocketServer: Server } = await import("ws") as {
    WebSocketServer: typeof WebSocketServer;
  };
  const maxPayload = options.limits?.maxMessageBytes ?? DEFAULT_SESSION_LIMITS.maxMessageBytes;
  /** The subprotocol each admitted upgrade echoes (read by `handleProtocols`). */
  const echoes = new WeakMap<http.IncomingMessage, string>();
  const wss = new Server({
    noServer: true,
    maxPayload,
    perMessageDeflate: false,
    clientTracking: false,
    // The route's subprotocol (Wisp v2's, or a ticket's entry), else ws's default: the first.
    handleProtocols: (offered: Set<string>, req: http.IncomingMessage) =>
      echoes.get(req) ?? offered.values().next().value ?? false,
    skipUTF8Validation: false,
  });
  const admit = admission(options, registry);
  const route = router(options);
  const checkTicket = ticketGate(options);
  const checkClient = clientGate(options, registry);
  const newSession = sessionFactory(options, registry);
  const heartbeatMs = (options.idleTimeoutSecs ?? 120) * 1000;
  // The global Request/Response stay Deno's own (Deno.serve and user code need them).
  const listener = getRequestListener(app.fetch, { overrideGlobalObjects: false });
  const tls = options.tls;
  const server = tls
    ? https.createServer({ cert: tls.cert, key: tls.key }, listener)
    : http.createServer(listener);

  server.on("upgrade", async (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => {}); // a reset during the handshake must not crash the server
    if (req.headers.upgrade?.toLowerCase() !== "websocket") {
      return refuse(socket, 400, "bad upgrade");
    }
    const protocols = req.headers["sec-websocket-protocol"];
    const routed = checkClient(
      await checkTicket(
        admit(req.headers.origin) ??
          route(new URL(req.url ?? "/", "http://localhost").pathname, protocols),
        req.url ?? "/",
        protocols,
        req.socket.remoteAddress ?? "",
      ),
      req.socket.remoteAddress ?? "",
      (name) => {
        const value = req.headers[name];
        return Array.isArray(value) ? value.join(", ") : value;
      },
    );
    if (isRefusal(routed)) return refuse(socket, routed.status, routed.body);
    if (routed.protocol !== undefined) echoes.set(req, routed.protocol);
    const label = req.socket.remoteAddress === undefined
      ? ""
      : formatHostPort(req.socket.remoteAddress, req.socket.remotePort ?? 0);
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const channel = new WsChannel(ws);
      let closed: Promise<void> | undefined;
      const ended = new Promise<void>((resolve) => ws.once("close", () => resolve()));
      const session = newSession(channel, label, (code, reason) => {
        closed ??= (async () => {
          // Read again, so the client's close frame is seen even if uploads had paused reading.
          if (channel.paused) ws.resume();
          ws.close(code, reason);
          const timer = setTimeout(() => ws.terminate(), CLOSE_HANDSHAKE_MS);
          await ended;
          clearTimeout(timer);
        })();
        return closed;
      }, routed);
      let alive = true;
      const heartbeat = heartbeatMs > 0
        ? setInterval(() => {
          // A paused session does not read pongs: only an unpaused, silent client is dead.
          if (!alive && !channel.paused) return ws.terminate();
          alive = false;
          ws.ping();
        }, heartbeatMs)
        : undefined;
      ws.on("pong", () => alive = true);
      ws.on("message", (data: RawData, isBinary: boolean) => {
        alive = true;
        const bytes = data as Buffer; // one Buffer: fragments are joined (binaryType nodebuffer)
        session.handle(isBinary ? bytes : bytes.toString("utf8"));
      });
      let dropTimer: ReturnType<typeof setTimeout> | undefined;
      ws.on("error", (err: Error & { code?: string }) => {
        // ws has already queued the close frame (1009 too large, 1007 invalid UTF-8, 1002). It
        // would now read and discard whatever the client still sends until the close handshake
        // ends (up to 30 s): a hostile client could make it churn through gigabytes. Stop reading
        // instead (the close frame still goes out), and drop the connection shortly after. ws
        // resumes the socket on the next tick after an error, so pause after that.
        setTimeout(() => ws.pause(), 0);
        dropTimer ??= setTimeout(() => ws.terminate(), ERROR_CLOSE_MS);
        log.info("websocket closed on error", {
          session: session.number,
          code: err.code,
          error: err.message,
        });
      });
      ws.once("close", () => {
        clearTimeout(dropTimer);
        clearInterval(heartbeat);
        void session.close().finally(() => registry.delete(session));
      });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: hostname, port }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err: Error) => log.error("http error", { error: String(err) }));
  const address = server.address();
  const addr = typeof address === "object" && address !== null
    ? { hostname: address.address, port: address.port }
    : { hostname, port };
  let closing: Promise<void> | undefined;
  return {
    addr,
    ...(tls
      ? {
        reloadTls: (files) =>
          (server as https.Server).setSecureContext({ cert: files.cert, key: files.key }),
      }
      : {}),
    close: () =>
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

/** Answers a refused upgrade with a plain HTTP response and closes the connection. */
function refuse(socket: Duplex, status: number, body: string): void {
  const reason = status === 401
    ? "Unauthorized"
    : status === 403
    ? "Forbidden"
    : status === 503
    ? "Service Unavailable"
    : "Bad Request";
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${new TextEncoder().encode(body).byteLength}\r\nConnection: close\r\n\r\n` +
      body,
  );
}
