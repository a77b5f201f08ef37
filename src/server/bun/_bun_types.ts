/**
 * The few shapes of Bun's server API that the Bun adapter uses, declared here so that Bun-only
 * code type-checks under Deno without `@types/bun` (Bun 1.4.5; reference: https://bun.com/reference/bun/Serve,
 * `ServerWebSocket`, `WebSocketHandler`). Only what `server/bun/mod.ts` calls is declared.
 *
 * @module
 */

/** An address as Bun reports it (`server.requestIP()`, `server.address`). */
export interface BunSocketAddress {
  /** The IP address, e.g. `127.0.0.1`, `::1`. */
  readonly address: string;
  /** `IPv4` or `IPv6`. */
  readonly family: string;
  /** The port. */
  readonly port: number;
}

/**
 * Outcome of a `ServerWebSocket` send (Bun's `ServerWebSocketSendStatus`): `-1` queued behind
 * backpressure (still sent, later), `0` dropped (closed socket or past `backpressureLimit`; an
 * empty payload also gives 0), `> 0` bytes written now.
 */
export type BunSendStatus = number;

/** A server-side WebSocket of `Bun.serve` (uWebSockets underneath). */
export interface BunServerWebSocket<T> {
  /** What `server.upgrade(req, { data })` attached. */
  readonly data: T;
  /** RFC 6455 state, as the browser's `readyState`: 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: 0 | 1 | 2 | 3;
  /** How binary messages reach `message` (`nodebuffer` by default). */
  binaryType: "nodebuffer" | "arraybuffer" | "uint8array";
  /** Sends a text message (UTF-8). */
  sendText(data: string, compress?: boolean): BunSendStatus;
  /** Sends a binary message (the view's bytes only). */
  sendBinary(data: Uint8Array, compress?: boolean): BunSendStatus;
  /**
   * Sends a close frame with `code` and `reason` (RFC 6455 §5.5.1) and closes; Bun calls the
   * `close` handler before this returns.
   */
  close(code?: number, reason?: string): void;
  /** Drops the connection at once, without a close frame. */
  terminate(): void;
  /**
   * Runs `callback`, holding every send it makes in one buffer that is written once it returns
   * (one syscall for many messages).
   */
  cork<R>(callback: (ws: BunServerWebSocket<T>) => R): R;
  /** Bytes queued for this socket and not yet written to the network. */
  getBufferedAmount(): number;
  /**
   * Stops reading the socket, so the client sees TCP backpressure; the idle timeout is suspended
   * until {@linkcode BunServerWebSocket.resume}. Sending still works.
   */
  pause(): void;
  /** Reads the socket again after {@linkcode BunServerWebSocket.pause}. */
  resume(): void;
}

/** `Bun.serve`'s `websocket` option: the handlers and limits of every upgraded socket. */
export interface BunWebSocketHandler<T> {
  /** Called once the handshake is done. */
  open?(ws: BunServerWebSocket<T>): void;
  /** A whole message (fragments joined): text as a string, binary per `ws.binaryType`. */
  message(ws: BunServerWebSocket<T>, message: string | Uint8Array): void;
  /** Called once, when the socket has closed (any reason); `code` 1006 when no close frame. */
  close?(ws: BunServerWebSocket<T>, code: number, reason: string): void;
  /** Called when the socket's send buffer has drained after backpressure. */
  drain?(ws: BunServerWebSocket<T>): void;
  /** Called when one of the other handlers throws. */
  error?(ws: BunServerWebSocket<T>, error: Error): void;
  /** Largest message, bytes; a larger one closes the socket with 1009 (default 16 MiB). */
  maxPayloadLength?: number;
  /** Seconds without data received before the socket is closed (default 120, at most 960, 0 off). */
  idleTimeout?: number;
  /** Bytes a socket may have queued before sends are dropped (0: no limit; default 16 MiB). */
  backpressureLimit?: number;
  /** Close the socket (1006, no close frame) when a send hits `backpressureLimit`. */
  closeOnBackpressureLimit?: boolean;
  /** permessage-deflate (RFC 7692). */
  perMessageDeflate?: boolean;
  /** Ping automatically before `idleTimeout` runs out (default true). */
  sendPings?: boolean;
}

/** Options of `Bun.serve` as the adapter passes them. */
export interface BunServeOptions<T> {
  /** Address to listen on. */
  hostname: string;
  /** Port; 0 picks a free one. */
  port: number;
  /**
   * Seconds an HTTP connection may sit idle (keep-alive between requests) before Bun closes it
   * (default 10, at most 255, 0 disables). WebSockets use `websocket.idleTimeout` instead.
   */
  idleTimeout?: number;
  /** Every HTTP request; returns nothing after a successful `server.upgrade`. */
  fetch(
    req: Request,
    server: BunServer<T>,
  ): Response | Promise<Response> | Promise<Response | undefined> | undefined;
  /** Called when `fetch` throws or rejects. */
  error?(error: Error): Response | Promise<Response>;
  /** WebSocket handlers and limits. */
  websocket: BunWebSocketHandler<T>;
  /** Serve TLS with this certificate chain and key (PEM). */
  tls?: { cert: string; key: string };
}

/** A server made by `Bun.serve`. */
export interface BunServer<T> {
  /** The bound port. */
  readonly port: number;
  /** The host name as given. */
  readonly hostname: string;
  /** The bound address (null for a Unix socket). */
  readonly address: BunSocketAddress | null;
  /**
   * Upgrades `req` to a WebSocket with `data` attached; false when it is not a valid WebSocket
   * upgrade (RFC 6455 §4.2.1), in which case the caller must answer it.
   */
  upgrade(req: Request, options: { data: T; headers?: HeadersInit }): boolean;
  /** The client's address for `req`, or null (e.g. a closed socket). */
  requestIP(req: Request): BunSocketAddress | null;
  /**
   * Stops listening and closes idle HTTP connections; resolves once every connection (WebSockets
   * included) has ended. `closeActiveConnections` closes those too (WebSockets with 1001).
   */
  stop(closeActiveConnections?: boolean): Promise<void>;
  /**
   * Replaces the handlers for new requests (Bun 1.4.5 accepts a `tls` field here but keeps the
   * certificate it started with).
   */
  reload(options: BunServeOptions<T>): void;
}

/** The part of the `Bun` global the adapter uses. */
export interface BunApi {
  /** Bun's version, e.g. `1.4.5`. */
  readonly version: string;
  /**
   * Listens and serves.
   *
   * @throws {Error} the listen error with a Node-style `code` (`EADDRINUSE`, `EADDRNOTAVAIL`,
   *   `EACCES`, ...); an unresolvable host name also gives `EADDRNOTAVAIL`.
   */
  serve<T>(options: BunServeOptions<T>): BunServer<T>;
}

/**
 * The `Bun` global.
 *
 * @throws {TypeError} when not running on Bun.
 */
export function bunGlobal(): BunApi {
  const bun = (globalThis as unknown as { Bun?: BunApi }).Bun;
  if (bun === undefined) throw new TypeError("the Bun server adapter needs the Bun runtime");
  return bun;
}
