/**
 * Test helpers for the Wisp personality: a minimal Wisp packet codec written from the spec
 * (MercuryWorkshop/wisp-protocol `protocol.md`, v1.2 on `main` and "2.0 draft 6" on `v2`) for
 * asserting bytes on the wire, a raw Wisp connection over Deno's `WebSocket`, and a promise-based
 * harness around the **unmodified** `@mercuryworkshop/wisp-js` 0.5.0 client (only run, never
 * copied: it is LGPL).
 *
 * Packet layout (both versions): `[type u8][stream id u32 LE][payload]`.
 *
 * @module
 */
import * as wispJs from "@mercuryworkshop/wisp-js/client";

/** Wisp packet types (`protocol.md`, "Packet Types"). */
export const PacketType = {
  CONNECT: 0x01,
  DATA: 0x02,
  CONTINUE: 0x03,
  CLOSE: 0x04,
  /** v2 only. */
  INFO: 0x05,
} as const;

/** Wisp stream types of a CONNECT packet. */
export const StreamType = { TCP: 0x01, UDP: 0x02 } as const;

/** The close reasons these tests expect (`protocol.md`, "Close Reasons"). */
export const CloseReason = {
  UNKNOWN: 0x01,
  VOLUNTARY: 0x02,
  NETWORK_ERROR: 0x03,
  INCOMPATIBLE_EXTENSIONS: 0x04,
  INVALID: 0x41,
  UNREACHABLE: 0x42,
  TIMEOUT: 0x43,
  REFUSED: 0x44,
  BLOCKED: 0x48,
  THROTTLED: 0x49,
  AUTH_BAD_PASSWORD: 0xc0,
  AUTH_BAD_SIGNATURE: 0xc1,
  AUTH_REQUIRED: 0xc2,
} as const;

/** Wisp v2 extension ids (`protocol.md` on `v2`, "Protocol Extensions"). */
export const ExtensionId = {
  UDP: 0x01,
  PASSWORD_AUTH: 0x02,
  KEY_AUTH: 0x03,
  MOTD: 0x04,
  STREAM_OPEN_CONFIRMATION: 0x05,
} as const;

/** One decoded Wisp packet; `payload` is a copy (safe to keep). */
export interface WispPacket {
  type: number;
  /** The stream id (`u32`); 0 is the connection itself. */
  streamId: number;
  payload: Uint8Array;
}

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

function view(u8: Uint8Array): DataView {
  return new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
}

/** Encodes `[type u8][streamId u32 LE][payload]`. */
export function encodePacket(type: number, streamId: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.byteLength);
  out[0] = type;
  view(out).setUint32(1, streamId, true);
  out.set(payload, 5);
  return out;
}

/**
 * Decodes one Wisp packet (a whole WebSocket binary message).
 *
 * @throws {RangeError} when `bytes` is shorter than the 5-byte header.
 */
export function decodePacket(bytes: Uint8Array): WispPacket {
  if (bytes.byteLength < 5) {
    throw new RangeError(`Cannot decode a Wisp packet of ${bytes.byteLength} bytes: under 5`);
  }
  return {
    type: bytes[0] ?? 0,
    streamId: view(bytes).getUint32(1, true),
    payload: bytes.slice(5),
  };
}

/** A CONNECT packet: `[stream type u8][port u16 LE][hostname UTF-8]`. */
export function connectPacket(
  streamId: number,
  streamType: number,
  host: string,
  port: number,
): Uint8Array {
  const name = enc.encode(host);
  const payload = new Uint8Array(3 + name.byteLength);
  payload[0] = streamType;
  view(payload).setUint16(1, port, true);
  payload.set(name, 3);
  return encodePacket(PacketType.CONNECT, streamId, payload);
}

/** A DATA packet carrying `data`. */
export function dataPacket(streamId: number, data: Uint8Array): Uint8Array {
  return encodePacket(PacketType.DATA, streamId, data);
}

/** A CLOSE packet: `[reason u8]`. */
export function closePacket(streamId: number, reason: number): Uint8Array {
  return encodePacket(PacketType.CLOSE, streamId, Uint8Array.of(reason));
}

/** A CONTINUE packet: `[buffer remaining u32 LE]`. */
export function continuePacket(streamId: number, bufferRemaining: number): Uint8Array {
  const payload = new Uint8Array(4);
  view(payload).setUint32(0, bufferRemaining, true);
  return encodePacket(PacketType.CONTINUE, streamId, payload);
}

/** One extension entry of an INFO packet: `[id u8][payload length u32 LE][payload]`. */
export interface InfoExtension {
  id: number;
  payload: Uint8Array;
}

/** A v2 INFO packet on stream 0: `[major u8][minor u8]` then the extension entries. */
export function infoPacket(major: number, minor: number, extensions: InfoExtension[]): Uint8Array {
  const size = extensions.reduce((n, e) => n + 5 + e.payload.byteLength, 2);
  const payload = new Uint8Array(size);
  payload[0] = major;
  payload[1] = minor;
  let at = 2;
  for (const e of extensions) {
    payload[at] = e.id;
    view(payload).setUint32(at + 1, e.payload.byteLength, true);
    payload.set(e.payload, at + 5);
    at += 5 + e.payload.byteLength;
  }
  return encodePacket(PacketType.INFO, 0, payload);
}

/** A decoded INFO payload. */
export interface Info {
  major: number;
  minor: number;
  extensions: InfoExtension[];
}

/**
 * Decodes an INFO payload.
 *
 * @throws {RangeError} when an extension entry runs past the end of the payload.
 */
export function decodeInfo(payload: Uint8Array): Info {
  if (payload.byteLength < 2) throw new RangeError("INFO payload under 2 bytes");
  const extensions: InfoExtension[] = [];
  let at = 2;
  while (at < payload.byteLength) {
    if (at + 5 > payload.byteLength) throw new RangeError(`INFO extension header cut at ${at}`);
    const len = view(payload).getUint32(at + 1, true);
    if (at + 5 + len > payload.byteLength) throw new RangeError(`INFO extension cut at ${at}`);
    extensions.push({ id: payload[at] ?? 0, payload: payload.slice(at + 5, at + 5 + len) });
    at += 5 + len;
  }
  return { major: payload[0] ?? 0, minor: payload[1] ?? 0, extensions };
}

/** The `u32 LE` of a CONTINUE payload. */
export function decodeContinue(payload: Uint8Array): number {
  if (payload.byteLength !== 4) throw new RangeError(`CONTINUE payload of ${payload.byteLength}`);
  return view(payload).getUint32(0, true);
}

/** The UTF-8 text of `bytes` (a MOTD payload). */
export function utf8(bytes: Uint8Array): string {
  return dec.decode(bytes);
}

/** How long the helpers here wait for something before failing (a hang guard, not a timing). */
export const WAIT_MS = 15_000;

/**
 * `promise`, or a rejection naming `what` after `ms`; the timer is always cleared (sanitizers).
 *
 * @throws {Error} `timed out after MS ms waiting for WHAT`.
 */
export async function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Concatenates `chunks`. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** A queue of values that a consumer awaits one by one; `end()` fails waiters and later takes. */
class Inbox<T> {
  #items: T[] = [];
  #waiters: { resolve(v: T): void; reject(e: Error): void }[] = [];
  #ended: Error | undefined;

  put(item: T): void {
    const w = this.#waiters.shift();
    if (w) w.resolve(item);
    else this.#items.push(item);
  }

  end(why: Error): void {
    this.#ended ??= why;
    for (const w of this.#waiters.splice(0)) w.reject(why);
  }

  take(what: string): Promise<T> {
    const item = this.#items.shift();
    if (item !== undefined) return Promise.resolve(item);
    if (this.#ended) return Promise.reject(this.#ended);
    return within(
      new Promise<T>((resolve, reject) => this.#waiters.push({ resolve, reject })),
      what,
    );
  }
}

/**
 * A raw Wisp connection over Deno's `WebSocket`, for asserting handshake bytes: every binary
 * message is decoded into a {@linkcode WispPacket}; a text message fails the next `next()`.
 */
export class RawWisp implements AsyncDisposable {
  readonly ws: WebSocket;
  readonly #inbox = new Inbox<WispPacket>();
  readonly #closed: Promise<CloseEvent>;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    ws.onmessage = (ev: MessageEvent): void => {
      if (ev.data instanceof ArrayBuffer) this.#inbox.put(decodePacket(new Uint8Array(ev.data)));
      else this.#inbox.end(new Error(`unexpected text message ${JSON.stringify(ev.data)}`));
    };
    this.#closed = new Promise((resolve) => {
      ws.onclose = (ev): void => {
        this.#inbox.end(new Error(`WebSocket closed (${ev.code} ${ev.reason})`));
        resolve(ev);
      };
    });
  }

  /**
   * Opens `url` (offering `protocols`, if any) and waits for the upgrade.
   *
   * @throws {Error} when the upgrade fails (the WebSocket errors or closes before opening).
   */
  static async open(url: string, protocols?: string | string[]): Promise<RawWisp> {
    const ws = protocols === undefined ? new WebSocket(url) : new WebSocket(url, protocols);
    const raw = new RawWisp(ws);
    const opened = new Promise<void>((resolve, reject) => {
      ws.onopen = (): void => resolve();
      ws.onerror = (ev): void =>
        reject(new Error(`WebSocket ${url} failed: ${(ev as ErrorEvent).message ?? "error"}`));
    });
    try {
      await within(opened, `the upgrade of ${url}`);
    } catch (e) {
      await raw.close();
      throw e;
    }
    ws.onerror = null;
    return raw;
  }

  /** Sends one packet (already encoded). */
  send(packet: Uint8Array): void {
    this.ws.send(packet);
  }

  /**
   * The next packet received.
   *
   * @throws {Error} when the connection closed first, or after {@linkcode WAIT_MS}.
   */
  next(): Promise<WispPacket> {
    return this.#inbox.take("a Wisp packet");
  }

  /** Resolves with the close event once the WebSocket has closed (by either side). */
  get closed(): Promise<CloseEvent> {
    return this.#closed;
  }

  /** Closes the WebSocket (if still open) and waits for its close event. */
  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) {
      this.ws.close();
    }
    await within(this.#closed, "the raw WebSocket to close");
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The wisp-js client. Its package has no types: these are the shapes of the parts used here
// (wisp-js 0.5.0, src/client/connection.mjs and src/extensions.mjs).

/** The `ws` WebSocket the client opens (only what the harness touches). */
interface JsWebSocket {
  readonly readyState: number;
  readonly protocol: string;
  addEventListener(type: "message", listener: (ev: { data: unknown }) => void): void;
}

/** A wisp-js `ClientStream`. */
export interface JsStream {
  readonly stream_id: number;
  send(data: Uint8Array): void;
  close(reason?: number): void;
  onmessage: (data: Uint8Array) => void;
  onclose: (reason: number) => void;
}

/** A wisp-js `ClientConnection`. */
export interface JsConnection {
  ws: JsWebSocket;
  wisp_version: number;
  server_motd: string | null | undefined;
  udp_enabled: boolean;
  max_buffer_size: number | null;
  onopen: () => void;
  onclose: () => void;
  onerror: () => void;
  create_stream(hostname: string, port: number, type?: "tcp" | "udp"): JsStream;
  close(): void;
}

/** A wisp-js extension object (opaque here). */
type JsExtension = { readonly id: number };

interface JsClientModule {
  client: {
    ClientConnection: new (
      url: string,
      options?: { wisp_version?: number; wisp_extensions?: JsExtension[] },
    ) => JsConnection;
  };
  extensions: {
    UDPExtension: new (o: { client_config: Record<string, never> }) => JsExtension;
    MOTDExtension: new (o: { client_config: Record<string, never> }) => JsExtension;
    PasswordAuthExtension: new (
      o: { client_config: { username: string; password: string } },
    ) => JsExtension;
  };
}

const js = wispJs as unknown as JsClientModule;

/** Options of {@linkcode WispJsSession.open}. */
export interface WispJsOptions {
  /** The Wisp version the client asks for (default 2, wisp-js's own default). */
  version?: 1 | 2;
  /**
   * Credentials for password auth (extension 0x02, sent in the client's INFO with wisp-js's
   * `PasswordAuthExtension`, beside UDP and MOTD). Only with `version` 2.
   */
  credentials?: { username: string; password: string };
}

/** Thrown by {@linkcode WispJsSession.open} when the connection ends before it opens. */
export class WispHandshakeError extends Error {
  /** The reason of the CLOSE the server sent on stream 0, if it sent one. */
  readonly closeReason: number | undefined;

  constructor(message: string, closeReason: number | undefined) {
    super(message);
    this.name = "WispHandshakeError";
    this.closeReason = closeReason;
  }
}

/**
 * One wisp-js `ClientConnection`, driven as an application would, with every packet it receives
 * also recorded (decoded) for assertions. Dispose it to close the WebSocket and wait for its end.
 */
export class WispJsSession implements AsyncDisposable {
  readonly conn: JsConnection;
  /** Every packet the client received, in order (from a listener beside the client's own). */
  readonly received: WispPacket[] = [];
  readonly #ended: Promise<void>;
  #isEnded = false;
  readonly #streams = new Set<WispJsStream>();

  private constructor(conn: JsConnection, ended: Promise<void>) {
    this.conn = conn;
    this.#ended = ended.then(() => {
      this.#isEnded = true;
    });
  }

  /**
   * Connects the wisp-js client to `url` (which must end in `/`) and waits for its `onopen`
   * (v1: the server's CONTINUE on stream 0; v2: INFO both ways, then that CONTINUE).
   *
   * @throws {WispHandshakeError} when the connection closes or fails before opening, with the
   *   reason of the server's CLOSE on stream 0 when there was one (e.g. 0xc0, 0xc2).
   */
  static async open(url: string, options: WispJsOptions = {}): Promise<WispJsSession> {
    const version = options.version ?? 2;
    const extensions = options.credentials === undefined ? undefined : [
      new js.extensions.UDPExtension({ client_config: {} }),
      new js.extensions.MOTDExtension({ client_config: {} }),
      new js.extensions.PasswordAuthExtension({ client_config: options.credentials }),
    ];
    const conn = new js.client.ClientConnection(url, {
      wisp_version: version,
      ...(extensions === undefined ? {} : { wisp_extensions: extensions }),
    });
    let resolveEnded = (): void => {};
    const ended = new Promise<void>((resolve) => resolveEnded = resolve);
    const session = new WispJsSession(conn, ended);
    session.#watch(conn.ws);
    const opened = new Promise<void>((resolve, reject) => {
      conn.onopen = (): void => resolve();
      const fail = (what: string) => (): void => {
        resolveEnded();
        const close = session.received.find((p) => p.streamId === 0 && p.type === PacketType.CLOSE);
        const reason = close?.payload[0];
        reject(
          new WispHandshakeError(
            `the wisp-js connection ${what} before opening${
              reason === undefined ? "" : ` (CLOSE reason 0x${reason.toString(16)})`
            }`,
            reason,
          ),
        );
      };
      conn.onclose = fail("closed");
      conn.onerror = fail("failed");
    });
    try {
      await within(opened, `the wisp-js client to open ${url}`);
    } catch (e) {
      await session.close();
      throw e;
    }
    conn.onclose = (): void => resolveEnded();
    conn.onerror = (): void => resolveEnded();
    // wisp-js falls back to v1 on a WebSocket error of a v2 attempt, with a new WebSocket.
    session.#watch(conn.ws);
    return session;
  }

  #watched = new WeakSet<JsWebSocket>();
  #watch(ws: JsWebSocket): void {
    if (this.#watched.has(ws)) return;
    this.#watched.add(ws);
    ws.addEventListener("message", (ev) => {
      if (ev.data instanceof ArrayBuffer) this.received.push(decodePacket(new Uint8Array(ev.data)));
    });
  }

  /** Whether the WebSocket has ended (closed or failed). */
  get ended(): boolean {
    return this.#isEnded;
  }

  /** Resolves once the WebSocket has ended (closed by either side, or failed). */
  get whenEnded(): Promise<void> {
    return this.#ended;
  }

  /** Opens a stream with wisp-js's `create_stream` (TCP by default). */
  stream(host: string, port: number, type: "tcp" | "udp" = "tcp"): WispJsStream {
    const s = new WispJsStream(this.conn.create_stream(host, port, type));
    this.#streams.add(s);
    return s;
  }

  /** Closes every open stream (reason 0x02), then the WebSocket, and waits for its end. */
  async close(): Promise<void> {
    for (const s of this.#streams) s.close();
    if (!this.#isEnded && this.conn.ws.readyState <= 1) this.conn.close();
    await within(this.#ended, "the wisp-js WebSocket to close");
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** One wisp-js stream: the DATA it receives, queued, and the reason it was closed with. */
export class WispJsStream {
  readonly js: JsStream;
  readonly #messages = new Inbox<Uint8Array>();
  #chunks: Uint8Array[] = [];
  #bytes = 0;
  #byteWaiters: { count: number; resolve(): void; reject(e: Error): void }[] = [];
  #closeReason: number | undefined;
  #closedByUs = false;
  readonly #closed: Promise<number>;

  constructor(stream: JsStream) {
    this.js = stream;
    this.#closed = new Promise((resolve) => {
      stream.onclose = (reason: number): void => {
        this.#closeReason = reason;
        const why = new Error(
          `stream ${stream.stream_id} closed with reason 0x${
            reason.toString(16)
          } after ${this.#bytes} bytes`,
        );
        this.#messages.end(why);
        for (const w of this.#byteWaiters.splice(0)) w.reject(why);
        resolve(reason);
      };
    });
    stream.onmessage = (data: Uint8Array): void => {
      const copy = data.slice();
      this.#chunks.push(copy);
      this.#bytes += copy.byteLength;
      this.#messages.put(copy);
      this.#byteWaiters = this.#byteWaiters.filter((w) => {
        if (this.#bytes < w.count) return true;
        w.resolve();
        return false;
      });
    };
  }

  /** Sends `data` as one DATA packet (wisp-js queues it while the server's credit is 0). */
  send(data: Uint8Array): void {
    this.js.send(data);
  }

  /** Bytes received so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * The next DATA payload (for UDP: one datagram).
   *
   * @throws {Error} when the stream closed first, or after {@linkcode WAIT_MS}.
   */
  next(): Promise<Uint8Array> {
    return this.#messages.take(`DATA on stream ${this.js.stream_id}`);
  }

  /**
   * Waits until `count` bytes have arrived and returns everything received (concatenated).
   *
   * @throws {Error} when the stream closes first, or after `ms`.
   */
  async receiveBytes(count: number, ms = WAIT_MS): Promise<Uint8Array> {
    if (this.#bytes < count) {
      if (this.#closeReason !== undefined) {
        throw new Error(`stream closed (0x${this.#closeReason.toString(16)}) at ${this.#bytes}`);
      }
      await within(
        new Promise<void>((resolve, reject) => this.#byteWaiters.push({ count, resolve, reject })),
        `${count} bytes on stream ${this.js.stream_id} (got ${this.#bytes})`,
        ms,
      );
    }
    return concatBytes(this.#chunks);
  }

  /** The reason of the CLOSE the server sent (0x03 when the connection ended first). */
  get closed(): Promise<number> {
    return within(this.#closed, `stream ${this.js.stream_id} to close`);
  }

  /** Whether the stream has been closed by the server (or its connection ended). */
  get closeReason(): number | undefined {
    return this.#closeReason;
  }

  /** Closes the stream from the client side (wisp-js sends CLOSE 0x02); idempotent. */
  close(): void {
    if (this.#closedByUs || this.#closeReason !== undefined) return;
    this.#closedByUs = true;
    this.js.close(CloseReason.VOLUNTARY);
  }
}

/**
 * A wsproxy client over Deno's `WebSocket` (`<prefix><host>:<port>`: one raw TCP stream, binary
 * messages both ways). {@linkcode WsproxyClient.connect} settles once the upgrade succeeded or
 * the WebSocket ended before opening (`opened` false: a refused upgrade).
 */
export class WsproxyClient implements AsyncDisposable {
  readonly ws: WebSocket;
  #opened = false;
  #chunks: Uint8Array[] = [];
  #bytes = 0;
  #text = 0;
  #waiters: { count: number; resolve(): void; reject(e: Error): void }[] = [];
  readonly #closed: Promise<CloseEvent>;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    ws.onmessage = (ev: MessageEvent): void => {
      if (!(ev.data instanceof ArrayBuffer)) {
        this.#text++;
        return;
      }
      const chunk = new Uint8Array(ev.data);
      this.#chunks.push(chunk);
      this.#bytes += chunk.byteLength;
      this.#waiters = this.#waiters.filter((w) => {
        if (this.#bytes < w.count) return true;
        w.resolve();
        return false;
      });
    };
    this.#closed = new Promise((resolve) => {
      ws.onclose = (ev): void => {
        const why = new Error(`wsproxy closed (${ev.code}) after ${this.#bytes} bytes`);
        for (const w of this.#waiters.splice(0)) w.reject(why);
        resolve(ev);
      };
    });
  }

  /** Opens `url` and waits until it is open or has ended (see `opened`). */
  static async connect(url: string): Promise<WsproxyClient> {
    const client = new WsproxyClient(new WebSocket(url));
    const opened = new Promise<boolean>((resolve) => {
      client.ws.onopen = (): void => resolve(true);
      void client.#closed.then(() => resolve(false));
    });
    client.ws.onerror = (): void => {}; // a refused upgrade ends in onclose
    client.#opened = await within(opened, `the wsproxy upgrade of ${url}`);
    return client;
  }

  /** Whether the upgrade succeeded. */
  get opened(): boolean {
    return this.#opened;
  }

  /** Bytes received so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Text messages received so far (wsproxy should send none). */
  get textMessages(): number {
    return this.#text;
  }

  /** Sends `data` as one binary message. */
  send(data: Uint8Array): void {
    this.ws.send(data);
  }

  /**
   * Waits until `count` bytes have arrived; returns everything received (concatenated).
   *
   * @throws {Error} when the WebSocket closes first, or after {@linkcode WAIT_MS}.
   */
  async receiveBytes(count: number): Promise<Uint8Array> {
    if (this.#bytes < count) {
      if (this.ws.readyState === WebSocket.CLOSED) {
        throw new Error(`wsproxy closed after ${this.#bytes} bytes`);
      }
      await within(
        new Promise<void>((resolve, reject) => this.#waiters.push({ count, resolve, reject })),
        `${count} bytes over wsproxy (got ${this.#bytes})`,
      );
    }
    return concatBytes(this.#chunks);
  }

  /** Resolves with the close event once the WebSocket has closed (by either side). */
  get closed(): Promise<CloseEvent> {
    return within(this.#closed, "the wsproxy WebSocket to close");
  }

  /** Closes the WebSocket (if not closed yet) and waits for its close event. */
  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) {
      this.ws.close();
    }
    await within(this.#closed, "the wsproxy WebSocket to close");
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
