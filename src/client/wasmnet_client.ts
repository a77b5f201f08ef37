/**
 * {@linkcode WasmnetClient}: one WebSocket to a wasmnet server, carrying many TCP, TLS and UDP
 * sockets, listeners and DNS lookups. Its id-based API has the names, arguments and result
 * shapes of wasmnet 0.1.3's npm client; the `open*` methods add a stream API in the shape of
 * Cloudflare's `connect()` and `Deno.connect`.
 *
 * Runs in browsers, Deno and Node 22 (anything with a WHATWG `WebSocket`).
 *
 * @module
 */
import { decodeEvent, encodeRequest, type Request, unreachable } from "../protocol/mod.ts";
import type { Framing, WireEvent } from "../protocol/mod.ts";
import { DrainPoller } from "../limit/drain.ts";
import { WasmnetError } from "./errors.ts";
import { WasmnetSocket } from "./socket.ts";
import { WasmnetDatagramSocket } from "./datagram_socket.ts";
import { WasmnetListener } from "./listener.ts";

/** Bytes to send: strings are encoded as UTF-8 (in both framings); views are sent as they are. */
export type SendData = string | Uint8Array | ArrayBuffer | ArrayBufferView;

/** Called with data received on a socket. `data` is a view valid for as long as you keep it. */
export type DataCallback = (data: Uint8Array) => void;
/** Called with a datagram received on a UDP socket, and the sender's IP address and port. */
export type DataFromCallback = (data: Uint8Array, addr: string, port: number) => void;
/** Called once when a socket or listener has ended (cleanly, with an error, or by disconnect). */
export type CloseCallback = () => void;
/**
 * Called when a listener accepts a connection: `connId` is the server-assigned id (≥ 2^52 on
 * this server) of the new TCP socket, usable with `send`, `onData`, `close`, ...; `remote` is the
 * peer as `1.2.3.4:5678` or `[::1]:5678`.
 */
export type AcceptCallback = (connId: number, remote: string) => void;
/**
 * Called when an open socket or listener fails: the server sent an `error` event for it, or the
 * WebSocket closed without {@linkcode WasmnetClient.disconnect}. `msg` is the server's message;
 * `error` carries it with a code. `onClose` is called right after.
 */
export type ErrorCallback = (msg: string, error: WasmnetError) => void;
/** Debug logger: receives events that would otherwise be dropped silently. */
export type DebugLogger = (message: string, details?: unknown) => void;

/** Result of `bind` and `connectUdp`: the id and the port the server bound (never 0). */
export interface ListenResult {
  /** The listener's or UDP socket's id. */
  id: number;
  /** The local port on the server. */
  port: number;
}

/** How the WebSocket closed. */
export interface DisconnectInfo {
  /** WebSocket close code (1000 normal, 1006 abnormal, ...). */
  code: number;
  /** Close reason text sent by the closing side. */
  reason: string;
  /** Whether the closing handshake completed. */
  wasClean: boolean;
}

/** A WebSocket constructor (the global one by default). */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocket;

/** Options of {@linkcode WasmnetClient}. All sizes are bytes. */
export interface WasmnetClientOptions {
  /**
   * Use binary frames instead of JSON text. The server answers in the framing of the most recent
   * request it received, so one client uses one framing. Default `false` (JSON, like wasmnet).
   */
  binary?: boolean;
  /** WebSocket subprotocols to offer. */
  protocols?: string | string[];
  /**
   * `send`/`sendTo` return `false` once the WebSocket's `bufferedAmount` (plus requests queued
   * while connecting) is at or above this. Default 1 MiB.
   */
  highWaterMark?: number;
  /** {@linkcode WasmnetClient.drain} resolves when the buffered amount is at or below this. Default 256 KiB. */
  lowWaterMark?: number;
  /** How often `drain()` polls `bufferedAmount` (no event reports it), in milliseconds. Default 4. */
  drainPollMs?: number;
  /**
   * Most bytes received for one socket before any `onData`/`onDataFrom` handler is registered;
   * beyond it the socket is closed with an `EOVERFLOW` error. Default 16 MiB.
   */
  maxUnclaimedBytes?: number;
  /** Receives events for unknown ids, undecodable messages, id-0 errors. Default: no-op. */
  debug?: DebugLogger;
  /** WebSocket implementation; default `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
}

/** Options of {@linkcode WasmnetClient.openTcp}. Sizes are bytes. */
export interface OpenTcpOptions {
  /** Wrap the connection in TLS (the server verifies the certificate against `addr`). */
  tls?: boolean;
  /**
   * Aborting closes the socket at any time: a pending dial is cancelled and `opened` rejects;
   * an open socket's streams error and `closed` rejects, all with `signal.reason`.
   */
  signal?: AbortSignal;
  /** `readable`'s queuing high-water mark. Default 64 KiB. */
  highWaterMark?: number;
  /**
   * Most unread bytes `readable` holds. The server keeps sending while you don't read (the
   * protocol has no flow control); beyond this the socket is closed with `EOVERFLOW`.
   * Default 16 MiB.
   */
  maxBufferedBytes?: number;
}

/** Options of {@linkcode WasmnetClient.openUdp}. */
export interface OpenUdpOptions {
  /** Aborting closes the socket; `opened`/`closed` reject with `signal.reason`. */
  signal?: AbortSignal;
  /** Most unread datagrams kept; further ones are dropped (and logged to `debug`). Default 1024. */
  maxQueuedDatagrams?: number;
}

/** Options of {@linkcode WasmnetClient.openListener}. */
export interface OpenListenerOptions {
  /** `listen` backlog sent to the server, and most accepted sockets queued unread. Default 128. */
  backlog?: number;
  /** Aborting closes the listener; `opened`/`closed` reject with `signal.reason`. */
  signal?: AbortSignal;
  /** Options for every accepted socket's `readable`. */
  socket?: Pick<OpenTcpOptions, "highWaterMark" | "maxBufferedBytes">;
}

type Kind = "tcp" | "udp" | "listener" | "lookup" | "ping";

/** The protocol extensions of this server (README "Wire protocol"). */
export type Extension = "start_tls" | "shutdown" | "ping";

/** Options of {@linkcode WasmnetClient.ping}. */
export interface PingOptions {
  /** ICMP sequence number, an integer 0–65535 (default 0). */
  seq?: number;
  /** Echo payload (a string is sent as UTF-8; default empty). */
  data?: SendData;
  /** How long the server waits for the reply, in ms: an integer 1–60000 (default 1000). */
  timeoutMs?: number;
}

/** The echo reply of {@linkcode WasmnetClient.ping}. */
export interface PingReply {
  /** The replying address. */
  source: string;
  /** The sequence number, as sent. */
  seq: number;
  /** ICMP type: 0 (echo reply), 129 for ICMPv6. */
  type: number;
  /** ICMP code (0). */
  code: number;
  /** Round-trip time measured by the server, in milliseconds. */
  rttMs: number;
  /** The echoed payload. */
  data: Uint8Array;
}

interface Settle {
  resolve: (ev: WireEvent) => void;
  reject: (e: WasmnetError) => void;
}

interface Entry {
  kind: Kind;
  settle: Settle | undefined;
  closing: boolean;
  /** A `start_tls` waiting for its `connected`. */
  upgrade: Settle | undefined;
  /** `shutdown` was sent: no more `send`s. */
  shut: boolean;
  onData: DataCallback | undefined;
  onDataFrom: DataFromCallback | undefined;
  onClose: CloseCallback | undefined;
  onAccept: AcceptCallback | undefined;
  onError: ErrorCallback | undefined;
  unclaimed: Array<{ data: Uint8Array; addr?: string; port?: number }>;
  unclaimedBytes: number;
  unclaimedAccepts: Array<[number, string]>;
}

/** Client ids stay below 2^52; the server assigns accepted connections ids in [2^52, 2^53). */
const CLIENT_ID_LIMIT = 2 ** 52;
const MAX_UNCLAIMED_ACCEPTS = 1024;
const utf8 = new TextEncoder();

function toBytes(data: SendData): Uint8Array {
  if (typeof data === "string") return utf8.encode(data);
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function newEntry(kind: Kind, settle: Settle | undefined): Entry {
  return {
    kind,
    settle,
    closing: false,
    upgrade: undefined,
    shut: false,
    onData: undefined,
    onDataFrom: undefined,
    onClose: undefined,
    onAccept: undefined,
    onError: undefined,
    unclaimed: [],
    unclaimedBytes: 0,
    unclaimedAccepts: [],
  };
}

function noop(): void {}

/**
 * The extension an `error` for id 0 refuses as an unknown op, or undefined. That is how a server
 * without the extensions answers them: this server before them says
 * `invalid request: unknown op "start_tls"` / `invalid binary frame: unknown message type: 0x0a`,
 * wasmnet 0.1.3 `invalid request: unknown variant \`start_tls\`, expected one of ...` and the
 * same binary text. No other id-0 error names these ops or type bytes.
 */
function refusedExtension(msg: string): Extension | undefined {
  if (!/^invalid (?:request|binary frame): /.test(msg)) return undefined;
  if (/\bstart_tls\b|unknown message type: 0x0a\b/i.test(msg)) return "start_tls";
  if (/\bshutdown\b|unknown message type: 0x0b\b/i.test(msg)) return "shutdown";
  if (/unknown (?:op|variant) ["`]ping["`]|unknown message type: 0x0c\b/i.test(msg)) return "ping";
  return undefined;
}

/** The prefix of this server's non-terminal refusal of a `start_tls` (`WireError.startTlsRefused`). */
const START_TLS_REFUSED = /^start_tls refused on socket \d+: /;

/**
 * A wasmnet client: one WebSocket carrying many sockets.
 *
 * Id-based API (compatible with wasmnet 0.1.3's npm client): `connect`, `connectTls`,
 * `connectUdp`, `bind` return ids; `send`, `sendTo`, `close`, `listen` take them; `onData`,
 * `onDataFrom`, `onClose`, `onAccept`, `onError` register per-id callbacks. Differences from
 * wasmnet's client (all fixes):
 * - `resolve` rejects on `error`/`denied`; every pending promise rejects with a
 *   {@linkcode WasmnetError} (`EWEBSOCKET`) when the WebSocket closes.
 * - An `error` event on an open socket calls `onError(msg, error)` then `onClose()`.
 * - Strings are UTF-8 in both framings.
 * - `send`/`sendTo` return `false` when the WebSocket buffer is above `highWaterMark`: then
 *   `await client.drain()` before sending more.
 * - Events for unknown ids, undecodable messages and id-0 errors go to the `debug` logger.
 * - Client ids count up from 1 and stay below 2^52, skipping ids in use.
 *
 * Stream API: {@linkcode WasmnetClient.openTcp}, {@linkcode WasmnetClient.openUdp},
 * {@linkcode WasmnetClient.openListener}.
 *
 * @example
 * ```ts ignore
 * const client = new WasmnetClient("ws://localhost:9000", { binary: true });
 * await client.ready();
 * const id = await client.connect("example.com", 80);
 * client.onData(id, (data) => console.log(new TextDecoder().decode(data)));
 * client.onClose(id, () => client.disconnect());
 * client.send(id, "GET / HTTP/1.0\r\nHost: example.com\r\n\r\n");
 * ```
 */
export class WasmnetClient {
  /** True when this client uses binary frames, false for JSON text. */
  readonly binary: boolean;
  /** Resolves when the WebSocket has closed (never rejects). */
  readonly closed: Promise<DisconnectInfo>;

  readonly #ws: WebSocket;
  readonly #framing: Framing;
  readonly #entries = new Map<number, Entry>();
  readonly #debug: DebugLogger;
  readonly #highWaterMark: number;
  readonly #lowWaterMark: number;
  readonly #drain: DrainPoller;
  readonly #maxUnclaimedBytes: number;
  readonly #ready: Promise<void>;
  #resolveReady: () => void = noop;
  #rejectReady: (e: WasmnetError) => void = noop;
  #resolveClosed: (info: DisconnectInfo) => void = noop;
  #nextId = 1;
  #outbox: Array<string | Uint8Array> = [];
  #outboxBytes = 0;
  #open = false;
  #ended = false;
  #userDisconnect = false;
  /** What is known of the server's extensions: true (it answered one), false (unknown op). */
  readonly #support = new Map<Extension, boolean>();

  /**
   * Opens the WebSocket to `url` (`ws:` or `wss:`) and starts connecting.
   * Requests made before it is open are queued and sent once it opens.
   *
   * @param url WebSocket URL of the wasmnet server.
   * @param options framing, buffer limits, debug logger; see {@linkcode WasmnetClientOptions}.
   */
  constructor(url: string | URL, options: WasmnetClientOptions = {}) {
    this.binary = options.binary === true;
    this.#framing = this.binary ? "binary" : "json";
    this.#debug = options.debug ?? noop;
    this.#highWaterMark = options.highWaterMark ?? 1024 * 1024;
    this.#lowWaterMark = Math.min(options.lowWaterMark ?? 256 * 1024, this.#highWaterMark);
    this.#drain = new DrainPoller(this, {
      lowWaterMark: this.#lowWaterMark,
      pollMs: options.drainPollMs ?? 4,
    });
    this.#maxUnclaimedBytes = options.maxUnclaimedBytes ?? 16 * 1024 * 1024;
    this.#ready = new Promise<void>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.#ready.catch(noop); // observed by ready(); never an unhandled rejection
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    const Ctor = options.WebSocket ?? globalThis.WebSocket;
    const ws = options.protocols === undefined
      ? new Ctor(String(url))
      : new Ctor(String(url), options.protocols);
    ws.binaryType = "arraybuffer";
    ws.onopen = (): void => this.#onOpen();
    ws.onmessage = (e: MessageEvent): void => this.#onMessage(e.data);
    ws.onerror = (): void => this.#rejectReady(this.#wsError("WebSocket error"));
    ws.onclose = (e: CloseEvent): void => this.#onWsClose(e.code, e.reason, e.wasClean);
    this.#ws = ws;
  }

  /**
   * Resolves when the WebSocket is open.
   *
   * @throws {WasmnetError} `EWEBSOCKET` when it fails to open or closes first.
   */
  ready(): Promise<void> {
    return this.#ready;
  }

  /**
   * Bytes waiting to be sent: the WebSocket's `bufferedAmount` plus requests queued while it is
   * still connecting.
   */
  get bufferedAmount(): number {
    return this.#ws.bufferedAmount + this.#outboxBytes;
  }

  /**
   * Resolves when {@linkcode WasmnetClient.bufferedAmount} is at or below `lowWaterMark`
   * (immediately if it already is). The buffer is shared by all sockets of this client.
   *
   * @throws {WasmnetError} `EWEBSOCKET` when the WebSocket closes first (or is closed).
   */
  drain(): Promise<void> {
    if (this.#ended || this.#userDisconnect) {
      return Promise.reject(this.#wsError("WebSocket is closed"));
    }
    return this.#drain.wait();
  }

  /**
   * Opens a TCP connection to `addr:port` (a hostname or IP address) via the server.
   *
   * @returns the socket id, once the server reports `connected`.
   * @throws {WasmnetError} `EDENIED` (policy), `ESERVER` (dial failed, timeout, ...), `ECLOSED`
   * (closed before it connected), `EWEBSOCKET` (the WebSocket closed).
   */
  connect(addr: string, port: number): Promise<number> {
    return this.#start("tcp", (id) => ({ op: "connect", id, addr, port })).promise.then((ev) =>
      ev.id
    );
  }

  /**
   * Opens a TLS connection to `addr:port`; the server verifies the certificate against `addr`.
   *
   * @returns the socket id, once the TLS handshake is complete.
   * @throws {WasmnetError} as {@linkcode WasmnetClient.connect}; TLS failures are `ESERVER`.
   */
  connectTls(addr: string, port: number): Promise<number> {
    return this.#start("tcp", (id) => ({ op: "connect_tls", id, addr, port })).promise.then((
      ev,
    ) => ev.id);
  }

  /**
   * Opens a UDP socket on the server whose default destination (for `send`) is `addr:port`.
   * Datagrams arrive through `onDataFrom(id, cb)`.
   *
   * @returns `{ id, port }`: the socket id and the server-side local port.
   * @throws {WasmnetError} as {@linkcode WasmnetClient.connect}.
   */
  connectUdp(addr: string, port: number): Promise<ListenResult> {
    return this.#start("udp", (id) => ({ op: "connect_udp", id, addr, port })).promise.then(
      (ev) => ({ id: ev.id, port: ev.ev === "udp_bound" ? ev.port : 0 }),
    );
  }

  /**
   * Binds a TCP listener on the server at `addr:port` (port 0: any free port, if the policy's
   * `bind_ports` allows it). Accepted connections arrive through `onAccept(id, cb)`; call
   * `listen(id)` to start accepting on servers that wait for it.
   *
   * @returns `{ id, port }`: the listener id and the bound port.
   * @throws {WasmnetError} as {@linkcode WasmnetClient.connect}.
   */
  bind(addr: string, port: number): Promise<ListenResult> {
    return this.#start("listener", (id) => ({ op: "bind", id, addr, port })).promise.then(
      (ev) => ({ id: ev.id, port: ev.ev === "listening" ? ev.port : 0 }),
    );
  }

  /**
   * Sends `listen` for a bound listener (fire and forget, as in wasmnet).
   *
   * @param backlog pending-connection backlog; default 128.
   * @throws {WasmnetError} `EWEBSOCKET` when the WebSocket is closed.
   */
  listen(id: number, backlog = 128): void {
    this.#send({ op: "listen", id, backlog });
  }

  /**
   * Sends bytes on a TCP/TLS socket (or to a UDP socket's default destination). Strings are
   * UTF-8. Data sent before `connected` is queued by the server, in order.
   *
   * @returns `true` while the buffer is below `highWaterMark`; `false` means "await
   * {@linkcode WasmnetClient.drain} before sending more" (the data was still sent).
   * @throws {WasmnetError} `EWEBSOCKET` when the WebSocket is closed; `ECLOSED` after
   * {@linkcode WasmnetClient.shutdown} of `id`.
   */
  send(id: number, data: SendData): boolean {
    if (this.#entries.get(id)?.shut) {
      throw new WasmnetError("ECLOSED", `socket ${id} is shut down for writing`, id);
    }
    this.#send({ op: "send", id, data: toBytes(data) });
    return this.bufferedAmount < this.#highWaterMark;
  }

  /**
   * Sends one datagram from UDP socket `id` to `addr:port`.
   *
   * @returns as {@linkcode WasmnetClient.send}.
   * @throws {WasmnetError} `EWEBSOCKET` when the WebSocket is closed.
   * @throws {RangeError} when `addr` is longer than 65535 UTF-8 bytes (binary framing).
   */
  sendTo(id: number, addr: string, port: number, data: SendData): boolean {
    this.#send({ op: "send_to", id, addr, port, data: toBytes(data) });
    return this.bufferedAmount < this.#highWaterMark;
  }

  /**
   * Closes a socket or listener (a pending dial is cancelled). `onClose` is called when the
   * server confirms with `closed` (or `error`). No-op once the WebSocket is closed.
   */
  close(id: number): void {
    const entry = this.#entries.get(id);
    if (entry) entry.closing = true;
    if (this.#ended || this.#userDisconnect) return;
    this.#send({ op: "close", id });
  }

  /**
   * Upgrades open TCP socket `id` to TLS (protocol extension `start_tls`): the server writes what
   * was sent before, runs the TLS client handshake over the connection with `servername` for SNI
   * and certificate verification (default: the host the socket was opened with; an IP is
   * verified against the certificate's IP addresses, without SNI) and the server's trusted CAs,
   * then everything on `id` is TLS plaintext. For STARTTLS protocols (SMTP, IMAP, PostgreSQL,
   * MySQL): send the protocol's request, read its go-ahead, then call this.
   *
   * Bytes sent after the call wait on the server and go through TLS. Await it before sending
   * anything secret: a server without the extension ignores the request and would send them in
   * plaintext.
   *
   * @param id an open TCP socket (not TLS, not an accepted connection).
   * @param servername the name to verify; default the socket's host.
   * @returns resolves when the server reports `connected` again (handshake done).
   * @throws {WasmnetError} `EUNSUPPORTED` when the server does not support `start_tls` (it
   * answered it as an unknown op; the socket goes on in plaintext); `ESERVER` when the
   * handshake failed (the socket is closed: `onError`/`onClose` follow) or the server refused the
   * request (already TLS, an accepted connection, ...: the socket goes on as it was); `ECLOSED`
   * when `id` is not an open socket or closes first; `EWEBSOCKET` when the WebSocket closes.
   */
  startTls(id: number, servername?: string): Promise<void> {
    const entry = this.#entries.get(id);
    if (!entry || entry.kind !== "tcp" || entry.settle || entry.closing) {
      return Promise.reject(new WasmnetError("ECLOSED", `socket ${id} is not open`, id));
    }
    if (this.#support.get("start_tls") === false) return Promise.reject(unsupported(id));
    if (entry.upgrade) {
      return Promise.reject(
        new WasmnetError("ESERVER", `a start_tls is already in progress on socket ${id}`, id),
      );
    }
    const done = new Promise<WireEvent>((resolve, reject) => entry.upgrade = { resolve, reject });
    try {
      this.#send(servername ? { op: "start_tls", id, servername } : { op: "start_tls", id });
    } catch (e) {
      entry.upgrade = undefined;
      return Promise.reject(e);
    }
    return done.then(noop);
  }

  /**
   * Half-closes socket `id` (protocol extension `shutdown`): the server writes what was sent,
   * then closes the write side of the upstream connection (TCP FIN; for TLS close_notify, then
   * FIN), and data keeps arriving until the peer closes (then `onClose`). Later `send`s on `id`
   * throw `ECLOSED`. A server without the extension answers with an `error` for id 0 (logged to
   * `debug`) and the socket stays fully open, as before. No-op once the WebSocket is closed.
   */
  shutdown(id: number): void {
    const entry = this.#entries.get(id);
    if (entry) entry.shut = true;
    if (this.#ended || this.#userDisconnect || this.#support.get("shutdown") === false) return;
    this.#send({ op: "shutdown", id });
  }

  /**
   * What this client knows of the server's support for a protocol extension: `true` once the
   * server carried one out (`start_tls` answered `connected`), `false` once it answered one as an
   * unknown op, `undefined` before either (the extensions need no negotiation: a refused
   * request is the detection).
   */
  supports(extension: Extension): boolean | undefined {
    return this.#support.get(extension);
  }

  /**
   * Sends one ICMP echo request to `addr` (a host name or an IP address) from the server
   * (protocol extension `ping`) and resolves with the reply. The server checks `addr` against its
   * policy as for `connect` (a name is resolved once and every address checked; the first one is
   * pinged) and waits `timeoutMs` for the reply.
   *
   * @example
   * ```ts ignore
   * const reply = await client.ping("127.0.0.1", { seq: 1, data: "hi", timeoutMs: 500 });
   * console.log(`${reply.source}: seq=${reply.seq} time=${reply.rttMs.toFixed(3)} ms`);
   * ```
   *
   * @throws {RangeError} when `seq` or `timeoutMs` is out of range.
   * @throws {WasmnetError} `EDENIED` (the policy refused `addr`); `ESERVER` (`ping timed out
   *   after N ms`, the name did not resolve, ICMP is unavailable on the server, ...);
   *   `EUNSUPPORTED` when the server does not support `ping` (it answered it as an unknown op,
   *   as wasmnet 0.1.3 and older servers do); `EWEBSOCKET` when the WebSocket closes first.
   */
  ping(addr: string, options: PingOptions = {}): Promise<PingReply> {
    const seq = options.seq ?? 0;
    const timeoutMs = options.timeoutMs ?? 1000;
    if (!Number.isInteger(seq) || seq < 0 || seq > 0xffff) {
      return Promise.reject(new RangeError(`ping seq must be an integer 0-65535, got ${seq}`));
    }
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 60_000) {
      return Promise.reject(
        new RangeError(`ping timeoutMs must be an integer 1-60000, got ${timeoutMs}`),
      );
    }
    if (this.#support.get("ping") === false) return Promise.reject(unsupportedPing(0));
    const data = toBytes(options.data ?? new Uint8Array());
    return this.#tryStart("ping", (id) => ({
      op: "ping",
      id,
      addr,
      seq,
      data,
      timeout_ms: timeoutMs,
    })).promise.then((ev) => {
      if (ev.ev !== "pong") throw new WasmnetError("ESERVER", `unexpected ${ev.ev}`, ev.id);
      return {
        source: ev.source,
        seq: ev.seq,
        type: ev.type,
        code: ev.code,
        rttMs: ev.rtt_ms,
        data: ev.data,
      };
    });
  }

  /**
   * Resolves a hostname to IP addresses via the server (subject to its policy).
   *
   * @returns the addresses, e.g. `["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]`.
   * @throws {WasmnetError} `EDENIED`, `ESERVER` (lookup failed), `EWEBSOCKET`.
   */
  resolve(name: string): Promise<string[]> {
    return this.#start("lookup", (id) => ({ op: "resolve", id, name })).promise.then((ev) =>
      ev.ev === "resolved" ? ev.addrs : []
    );
  }

  /**
   * Registers the data callback of socket `id`. Data received before registration is buffered
   * (up to `maxUnclaimedBytes`) and delivered now. Unknown ids are logged to `debug`.
   */
  onData(id: number, callback: DataCallback): void {
    const entry = this.#entry(id, "onData");
    if (!entry) return;
    entry.onData = callback;
    this.#flushUnclaimed(entry);
  }

  /**
   * Registers the datagram callback of UDP socket `id`. Datagrams received before registration
   * are buffered and delivered now.
   */
  onDataFrom(id: number, callback: DataFromCallback): void {
    const entry = this.#entry(id, "onDataFrom");
    if (!entry) return;
    entry.onDataFrom = callback;
    this.#flushUnclaimed(entry);
  }

  /**
   * Registers the callback called once when socket or listener `id` ends: `closed` event,
   * `error` event (after `onError`), or WebSocket close.
   */
  onClose(id: number, callback: CloseCallback): void {
    const entry = this.#entry(id, "onClose");
    if (entry) entry.onClose = callback;
  }

  /**
   * Registers the callback called when an open socket or listener fails: an `error` event, or
   * the WebSocket closing without `disconnect()`. `onClose` follows. Without it, such errors go
   * to the `debug` logger.
   */
  onError(id: number, callback: ErrorCallback): void {
    const entry = this.#entry(id, "onError");
    if (entry) entry.onError = callback;
  }

  /**
   * Registers the accept callback of listener `id`. Connections accepted before registration are
   * delivered now.
   */
  onAccept(id: number, callback: AcceptCallback): void {
    const entry = this.#entry(id, "onAccept");
    if (!entry) return;
    entry.onAccept = callback;
    for (const [connId, remote] of entry.unclaimedAccepts.splice(0)) callback(connId, remote);
  }

  /**
   * Closes the WebSocket, ending every socket: pending promises reject (`EWEBSOCKET`), open
   * sockets get `onClose` (not `onError`). Await {@linkcode WasmnetClient.closed} to know when it
   * is done.
   */
  disconnect(): void {
    this.#userDisconnect = true;
    if (this.#ws.readyState === 0 || this.#ws.readyState === 1) this.#ws.close(1000);
  }

  /** Disconnects and waits for the WebSocket to close. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.disconnect();
    await this.closed;
  }

  /**
   * Opens a TCP (or TLS) connection as a stream socket. Returns at once; `opened` resolves when
   * it is connected.
   *
   * @example
   * ```ts ignore
   * const sock = client.openTcp("example.com", 443, { tls: true });
   * const writer = sock.writable.getWriter();
   * await writer.write(new TextEncoder().encode("GET / HTTP/1.0\r\nHost: example.com\r\n\r\n"));
   * for await (const chunk of sock.readable) console.log(chunk.byteLength);
   * ```
   */
  openTcp(addr: string, port: number, options: OpenTcpOptions = {}): WasmnetSocket {
    const op = options.tls === true ? "connect_tls" : "connect";
    const started = this.#tryStart("tcp", (id) => ({ op, id, addr, port }));
    return new WasmnetSocket(this, started.id, started.promise, {}, options);
  }

  /** Opens a UDP socket with `addr:port` as its default destination, as a datagram socket. */
  openUdp(addr: string, port: number, options: OpenUdpOptions = {}): WasmnetDatagramSocket {
    const started = this.#tryStart("udp", (id) => ({ op: "connect_udp", id, addr, port }));
    const bound = started.promise.then((ev) => ev.ev === "udp_bound" ? ev.port : 0);
    return new WasmnetDatagramSocket(this, started.id, bound, addr, port, options);
  }

  /**
   * Binds a TCP listener at `addr:port` and starts accepting (`bind`, then `listen`); iterate it
   * for accepted {@linkcode WasmnetSocket}s.
   */
  openListener(addr: string, port: number, options: OpenListenerOptions = {}): WasmnetListener {
    const backlog = options.backlog ?? 128;
    const started = this.#tryStart("listener", (id) => ({ op: "bind", id, addr, port }));
    const bound = started.promise.then((ev) => {
      this.listen(ev.id, backlog);
      return ev.ev === "listening" ? ev.port : 0;
    });
    return new WasmnetListener(this, started.id, bound, backlog, options);
  }

  /** @internal Logs through the `debug` option (used by the stream sockets). */
  _debug(message: string, details?: unknown): void {
    this.#debug(message, details);
  }

  // ── internals ─────────────────────────────────────────────────────────

  #wsError(message: string): WasmnetError {
    return new WasmnetError("EWEBSOCKET", message);
  }

  #entry(id: number, what: string): Entry | undefined {
    const entry = this.#entries.get(id);
    if (!entry) this.#debug(`${what}: unknown id ${id}`);
    return entry;
  }

  #allocId(): number {
    while (this.#entries.has(this.#nextId)) this.#nextId++;
    if (this.#nextId >= CLIENT_ID_LIMIT) throw new RangeError("client ids exhausted (2^52)");
    return this.#nextId++;
  }

  #send(req: Request): void {
    if (this.#ended || this.#userDisconnect) throw this.#wsError("WebSocket is closed");
    const frame = encodeRequest(req, this.#framing);
    if (this.#open) {
      this.#ws.send(frame);
    } else {
      this.#outbox.push(frame);
      this.#outboxBytes += typeof frame === "string" ? frame.length : frame.byteLength;
    }
  }

  /** Registers a pending entry and sends its request. Throws when the WebSocket is closed. */
  #start(kind: Kind, make: (id: number) => Request): { id: number; promise: Promise<WireEvent> } {
    let settle: Settle | undefined;
    const promise = new Promise<WireEvent>((resolve, reject) => (settle = { resolve, reject }));
    const id = this.#allocId();
    this.#entries.set(id, newEntry(kind, settle));
    try {
      this.#send(make(id));
    } catch (e) {
      this.#entries.delete(id);
      return { id, promise: Promise.reject(e) };
    }
    return { id, promise };
  }

  #tryStart(
    kind: Kind,
    make: (id: number) => Request,
  ): { id: number; promise: Promise<WireEvent> } {
    try {
      return this.#start(kind, make);
    } catch (e) {
      return { id: 0, promise: Promise.reject(e) };
    }
  }

  #onOpen(): void {
    this.#open = true;
    const frames = this.#outbox;
    this.#outbox = [];
    this.#outboxBytes = 0;
    for (const f of frames) this.#ws.send(f);
    this.#resolveReady();
  }

  #onMessage(raw: unknown): void {
    let ev: WireEvent;
    try {
      if (typeof raw === "string") ev = decodeEvent(raw);
      else if (raw instanceof ArrayBuffer) ev = decodeEvent(new Uint8Array(raw));
      else {
        this.#debug("ignoring a WebSocket message that is neither text nor ArrayBuffer", raw);
        return;
      }
    } catch (e) {
      this.#debug(`undecodable event: ${(e as Error).message}`);
      return;
    }
    this.#dispatch(ev);
  }

  #dispatch(ev: WireEvent): void {
    const entry = this.#entries.get(ev.id);
    if (ev.ev === "error" && ev.id === 0 && !entry) {
      const refused = refusedExtension(ev.msg);
      if (refused !== undefined) return this.#unsupported(refused, ev.msg);
    }
    if (!entry) {
      const detail = ev.ev === "error" || ev.ev === "denied" ? `: ${ev.msg}` : "";
      this.#debug(`${ev.ev} event for unknown id ${ev.id}${detail}`, ev);
      return;
    }
    if (entry.upgrade && this.#upgradeEvent(entry, ev)) return;
    switch (ev.ev) {
      case "connected":
        return this.#opened(entry, ev, "tcp");
      case "udp_bound":
        return this.#opened(entry, ev, "udp");
      case "listening":
        // A second `listening` answers our `listen` request for an open listener: nothing to do.
        if (entry.kind === "listener" && !entry.settle) return;
        return this.#opened(entry, ev, "listener");
      case "resolved":
        if (entry.kind !== "lookup" || !entry.settle) return this.#unexpected(ev);
        this.#entries.delete(ev.id);
        return entry.settle.resolve(ev);
      case "pong":
        if (entry.kind !== "ping" || !entry.settle) return this.#unexpected(ev);
        this.#entries.delete(ev.id);
        this.#support.set("ping", true);
        return entry.settle.resolve(ev);
      case "data":
        return this.#deliver(ev.id, entry, { data: ev.data });
      case "data_from":
        return this.#deliver(ev.id, entry, { data: ev.data, addr: ev.addr, port: ev.port });
      case "accepted":
        return this.#accepted(entry, ev.conn_id, ev.remote);
      case "closed":
        return this.#end(ev.id, entry, undefined);
      case "error":
        return this.#end(ev.id, entry, new WasmnetError("ESERVER", ev.msg, ev.id));
      case "denied":
        return this.#end(ev.id, entry, new WasmnetError("EDENIED", ev.msg, ev.id));
      default:
        return unreachable(ev);
    }
  }

  /**
   * An event for a socket with a pending `start_tls`: `connected` completes it; a refusal of
   * the request rejects it and leaves the socket as it was (true: handled). An ending event
   * rejects it, then ends the socket as usual (false).
   */
  #upgradeEvent(entry: Entry, ev: WireEvent): boolean {
    const upgrade = entry.upgrade;
    if (!upgrade) return false;
    if (ev.ev === "connected" && !entry.settle) {
      entry.upgrade = undefined;
      this.#support.set("start_tls", true);
      upgrade.resolve(ev);
      return true;
    }
    if (ev.ev === "error" && START_TLS_REFUSED.test(ev.msg)) {
      entry.upgrade = undefined;
      this.#support.set("start_tls", true);
      upgrade.reject(new WasmnetError("ESERVER", ev.msg, ev.id));
      return true;
    }
    if (ev.ev === "closed" || ev.ev === "error" || ev.ev === "denied") {
      entry.upgrade = undefined;
      upgrade.reject(
        ev.ev === "closed"
          ? new WasmnetError("ECLOSED", `socket ${ev.id} closed during start_tls`, ev.id)
          : new WasmnetError(ev.ev === "error" ? "ESERVER" : "EDENIED", ev.msg, ev.id),
      );
    }
    return false;
  }

  /** The server answered an extension as an unknown op: every pending one of it fails. */
  #unsupported(extension: Extension, msg: string): void {
    this.#support.set(extension, false);
    this.#debug(`the server does not support ${extension}: ${msg}`);
    if (extension === "ping") {
      for (const [id, entry] of [...this.#entries]) {
        if (entry.kind !== "ping" || !entry.settle) continue;
        this.#entries.delete(id);
        entry.settle.reject(unsupportedPing(id));
      }
      return;
    }
    if (extension !== "start_tls") return;
    for (const [id, entry] of this.#entries) {
      const upgrade = entry.upgrade;
      if (!upgrade) continue;
      entry.upgrade = undefined;
      upgrade.reject(unsupported(id));
    }
  }

  #unexpected(ev: WireEvent): void {
    this.#debug(`unexpected ${ev.ev} event for id ${ev.id}`, ev);
  }

  #opened(entry: Entry, ev: WireEvent, kind: Kind): void {
    if (entry.kind !== kind || !entry.settle) return this.#unexpected(ev);
    const settle = entry.settle;
    entry.settle = undefined;
    settle.resolve(ev);
  }

  #deliver(
    id: number,
    entry: Entry,
    item: { data: Uint8Array; addr?: string; port?: number },
  ): void {
    if (entry.kind === "udp" && item.addr !== undefined && entry.onDataFrom) {
      return entry.onDataFrom(item.data, item.addr, item.port ?? 0);
    }
    if (entry.onData) return entry.onData(item.data);
    if (entry.kind === "listener" || entry.kind === "lookup") {
      return this.#debug(`data event for non-socket id ${id}`);
    }
    entry.unclaimed.push(item);
    entry.unclaimedBytes += item.data.byteLength;
    if (entry.unclaimedBytes > this.#maxUnclaimedBytes && !entry.closing) {
      this.#debug(`id ${id}: more than ${this.#maxUnclaimedBytes} unclaimed bytes; closing`);
      const err = new WasmnetError(
        "EOVERFLOW",
        `more than ${this.#maxUnclaimedBytes} bytes received with no data handler`,
        id,
      );
      entry.unclaimed = [];
      entry.unclaimedBytes = 0;
      this.close(id);
      this.#fail(id, entry, err);
    }
  }

  #flushUnclaimed(entry: Entry): void {
    for (let item = entry.unclaimed[0]; item !== undefined; item = entry.unclaimed[0]) {
      const toFrom = entry.kind === "udp" && item.addr !== undefined ? entry.onDataFrom : undefined;
      if (!toFrom && !entry.onData) return;
      entry.unclaimed.shift();
      entry.unclaimedBytes -= item.data.byteLength;
      if (toFrom) toFrom(item.data, item.addr ?? "", item.port ?? 0);
      else entry.onData?.(item.data);
    }
  }

  #accepted(listener: Entry, connId: number, remote: string): void {
    if (listener.kind !== "listener" || listener.settle) {
      return this.#debug(`accepted event for non-listener id`, { connId, remote });
    }
    if (this.#entries.has(connId)) {
      // Only a server that breaks the id contract (wasmnet 0.1.3's `id * 1e6 + n`) gets here.
      return this.#debug(`accepted conn_id ${connId} collides with an id in use; ignored`);
    }
    this.#entries.set(connId, newEntry("tcp", undefined));
    if (listener.onAccept) return listener.onAccept(connId, remote);
    if (listener.unclaimedAccepts.length >= MAX_UNCLAIMED_ACCEPTS) {
      this.#debug(`too many unclaimed accepted connections; closing ${connId}`);
      return this.close(connId);
    }
    listener.unclaimedAccepts.push([connId, remote]);
  }

  /** Ends an entry on `closed` (err undefined), `error` or `denied`. */
  #end(id: number, entry: Entry, err: WasmnetError | undefined): void {
    this.#entries.delete(id);
    const upgrade = entry.upgrade;
    entry.upgrade = undefined;
    upgrade?.reject(err ?? new WasmnetError("ECLOSED", `socket ${id} closed`, id));
    if (entry.settle) {
      const settle = entry.settle;
      entry.settle = undefined;
      return settle.reject(
        err ?? new WasmnetError("ECLOSED", `id ${id} closed before it opened`, id),
      );
    }
    if (err) this.#fail(id, entry, err);
    else entry.onClose?.();
  }

  /** Reports an error on an open entry (onError, else debug), then onClose. */
  #fail(id: number, entry: Entry, err: WasmnetError): void {
    this.#entries.delete(id);
    const upgrade = entry.upgrade;
    entry.upgrade = undefined;
    upgrade?.reject(err);
    const onClose = entry.onClose;
    entry.onClose = undefined;
    if (entry.onError) entry.onError(err.message, err);
    else this.#debug(`id ${id} failed: ${err.message}`, err);
    onClose?.();
  }

  #onWsClose(code: number, reason: string, wasClean: boolean): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#open = false;
    this.#outbox = [];
    this.#outboxBytes = 0;
    const why = this.#userDisconnect
      ? "disconnected"
      : `WebSocket closed (code ${code}${reason ? `, ${reason}` : ""})`;
    this.#rejectReady(this.#wsError(why));
    this.#drain.close(this.#wsError(why));
    const entries = [...this.#entries];
    this.#entries.clear();
    const thrown: unknown[] = [];
    for (const [id, entry] of entries) {
      try {
        const err = new WasmnetError("EWEBSOCKET", why, id);
        const upgrade = entry.upgrade;
        entry.upgrade = undefined;
        upgrade?.reject(err);
        if (entry.settle) entry.settle.reject(err);
        else if (this.#userDisconnect) entry.onClose?.();
        else this.#fail(id, entry, err);
      } catch (e) {
        thrown.push(e);
      }
    }
    this.#resolveClosed({ code, reason, wasClean });
    // A throwing callback must not stop the others from being told; rethrow afterwards.
    for (const e of thrown) {
      queueMicrotask(() => {
        throw e;
      });
    }
  }
}

/** The rejection of a `start_tls` the server does not support. */
function unsupported(id: number): WasmnetError {
  return new WasmnetError(
    "EUNSUPPORTED",
    "the server does not support start_tls (a wasmnet protocol extension)",
    id,
  );
}

/** The rejection of a `ping` the server does not support. */
function unsupportedPing(id: number): WasmnetError {
  return new WasmnetError(
    "EUNSUPPORTED",
    "the server does not support ping (a wasmnet protocol extension)",
    id,
  );
}
