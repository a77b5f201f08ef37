/**
 * Node's `dgram` module (Node 22 API, https://nodejs.org/docs/latest-v22.x/api/dgram.html) over
 * a wasmnet server's UDP operations (`connect_udp`, `send`, `send_to`, `data_from`).
 *
 * Implemented: {@linkcode createSocket} (`"udp4"`, `"udp6"` or options), {@linkcode Socket} with
 * `bind`, `send` (every overload, string/Buffer/TypedArray/DataView/array messages), `connect`,
 * `disconnect`, `remoteAddress`, `address`, `close`, and the events `listening`, `connect`,
 * `message` (with `rinfo`), `error`, `close`; {@linkcode configure}.
 *
 * How the protocol shapes it:
 * - The server opens the UDP socket when the first datagram is sent (or on `connect`), with that
 *   destination as its default peer; `bind()` before that emits `listening` at once and
 *   `address().port` is 0 until the server socket exists (then the server's local port). A fixed
 *   local port cannot be chosen: `bind(port)` with a port other than 0 emits
 *   `ERR_FEATURE_UNAVAILABLE_ON_PLATFORM`.
 * - Datagrams arrive from the peers this socket has sent to (the server drops others): a UDP
 *   socket here is not an open inbound port.
 * - A connected socket (`connect`) delivers only its peer's datagrams, as Node's does.
 * - Multicast membership is not available (`addMembership` and friends throw
 *   `ERR_FEATURE_UNAVAILABLE_ON_PLATFORM`); `setBroadcast`, `setTTL`, `setMulticast*`, buffer
 *   sizes, `ref`/`unref` are accepted and do nothing.
 *
 * @example
 * ```ts ignore
 * import dgram from "./dgram.ts";
 * dgram.configure({ url: "ws://127.0.0.1:9000/" });
 * const sock = dgram.createSocket("udp4", (msg, rinfo) => console.log(msg, rinfo.address));
 * sock.send("ping", 7, "192.0.2.7");
 * ```
 *
 * @module
 */
// @ts-types="@types/events"
import EventEmitter from "events";
import { Buffer } from "buffer";
import type { WasmnetDatagramSocket } from "../client/mod.ts";
import { configure, type ConfigureOptions, sharedClient } from "./_client.ts";
import { nodeError, type NodeSystemError, toNodeError } from "./_errors.ts";
import { familyOf, isIPv6 } from "./_ip.ts";

export { configure, type ConfigureOptions };

/** `udp4` or `udp6`. */
export type SocketType = "udp4" | "udp6";

/** Options of {@linkcode createSocket} (Node 22 `dgram.SocketOptions`). */
export interface SocketOptions {
  /** `udp4` or `udp6`. */
  type: SocketType;
  /** Accepted, no effect. */
  reuseAddr?: boolean;
  /** Accepted, no effect. */
  reusePort?: boolean;
  /** Accepted, no effect. */
  ipv6Only?: boolean;
  /** Accepted, no effect. */
  recvBufferSize?: number;
  /** Accepted, no effect. */
  sendBufferSize?: number;
  /** Accepted, ignored: the server resolves destination names. */
  lookup?: unknown;
  /** Aborting closes the socket. */
  signal?: AbortSignal;
}

/** The sender of a received datagram (Node 22 `dgram.RemoteInfo`). */
export interface RemoteInfo {
  /** The sender's IP address. */
  address: string;
  /** `IPv4` or `IPv6`. */
  family: "IPv4" | "IPv6";
  /** The sender's port. */
  port: number;
  /** The datagram's size in bytes. */
  size: number;
}

/** An address as `address()`/`remoteAddress()` report it. */
export interface AddressInfo {
  /** The IP address. */
  address: string;
  /** `IPv4` or `IPv6`. */
  family: string;
  /** The port. */
  port: number;
}

/** Options of {@linkcode Socket.bind} (Node 22 `dgram.BindOptions`). */
export interface BindOptions {
  /** 0 or absent: the server picks. Other ports cannot be chosen (see the module doc). */
  port?: number;
  /** Accepted, ignored (the server binds its wildcard address). */
  address?: string;
  /** Accepted, no effect. */
  exclusive?: boolean;
  /** Not supported. */
  fd?: number;
}

/** A message: bytes, text, or a list of them (sent as one datagram). */
export type MessageData =
  | string
  | Uint8Array
  | DataView
  | ArrayBufferView
  | ReadonlyArray<string | Uint8Array | DataView | ArrayBufferView>;

/** Callback of {@linkcode Socket.send}: the error, or the bytes sent. */
export type SendCallback = (error: Error | null, bytes: number) => void;

const utf8 = new TextEncoder();

function bytesOf(part: string | ArrayBufferView): Uint8Array {
  if (typeof part === "string") return utf8.encode(part);
  return new Uint8Array(part.buffer, part.byteOffset, part.byteLength);
}

function toBytes(msg: MessageData): Uint8Array {
  if (!Array.isArray(msg)) return bytesOf(msg as string | ArrayBufferView);
  const parts = (msg as ReadonlyArray<string | ArrayBufferView>).map(bytesOf);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

function badPort(port: unknown): RangeError {
  return Object.assign(
    new RangeError(`Port should be > 0 and < 65536. Received ${String(port)}.`),
    { code: "ERR_SOCKET_BAD_PORT" },
  );
}

function checkPort(port: unknown): number {
  const n = typeof port === "string" && port.trim() !== "" ? Number(port) : port;
  if (typeof n !== "number" || !Number.isInteger(n) || n <= 0 || n > 65535) throw badPort(port);
  return n;
}

function unavailable(what: string): NodeSystemError {
  return nodeError(
    "ERR_FEATURE_UNAVAILABLE_ON_PLATFORM",
    `${what} is not available through wasmnet`,
  );
}

/**
 * A UDP socket through a wasmnet server (Node 22 `dgram.Socket`); see the module doc for what
 * the protocol changes. Extends `EventEmitter` (npm `events`).
 */
export class Socket extends EventEmitter {
  /** `udp4` or `udp6`. */
  readonly type: SocketType;
  #sock: WasmnetDatagramSocket | undefined;
  #localPort = 0;
  #bound = false;
  #connected: { address: string; port: number } | undefined;
  #connecting = false;
  #closed = false;
  #closeEmitted = false;

  /** @param options see {@linkcode SocketOptions}. */
  constructor(options: SocketType | SocketOptions) {
    super();
    const type = typeof options === "string" ? options : options.type;
    if (type !== "udp4" && type !== "udp6") {
      throw Object.assign(new TypeError(`Bad socket type specified. Valid types are: udp4, udp6`), {
        code: "ERR_SOCKET_BAD_TYPE",
      });
    }
    this.type = type;
    const signal = typeof options === "object" ? options.signal : undefined;
    if (signal !== undefined) {
      if (signal.aborted) queueMicrotask(() => this.close());
      else signal.addEventListener("abort", () => this.close(), { once: true });
    }
  }

  /**
   * Binds (Node 22 `socket.bind`): `(port?, address?, cb?)` or `(options, cb?)`; `cb` is added as
   * a `listening` listener. Only port 0 (any) is possible; see the module doc.
   *
   * @throws {Error} `ERR_SOCKET_ALREADY_BOUND` when already bound, `ERR_SOCKET_DGRAM_NOT_RUNNING`
   *   after `close()`.
   */
  bind(...args: unknown[]): this {
    this.#assertOpen();
    const last = args[args.length - 1];
    const cb = typeof last === "function" ? last as () => void : undefined;
    const first = args[0];
    const port = first !== null && typeof first === "object"
      ? (first as BindOptions).port
      : (typeof first === "function" ? undefined : first);
    if (this.#bound) {
      throw nodeError("ERR_SOCKET_ALREADY_BOUND", "Socket is already bound");
    }
    if (cb !== undefined) this.once("listening", cb);
    if (port !== undefined && port !== null && Number(port) !== 0) {
      const err = unavailable(`binding UDP port ${String(port)}`);
      queueMicrotask(() => this.emit("error", err));
      return this;
    }
    this.#markBound();
    return this;
  }

  /**
   * Associates the socket with one peer (Node 22 `socket.connect`): later `send`s omit the
   * destination, and only that peer's datagrams are delivered. Emits `connect` (and calls `cb`)
   * once the server socket is open, or `error`.
   *
   * @throws {Error} `ERR_SOCKET_DGRAM_IS_CONNECTED` when already connected.
   * @throws {RangeError} `ERR_SOCKET_BAD_PORT` for a port outside 1-65535.
   */
  connect(port: number, address?: string | (() => void), callback?: () => void): void {
    this.#assertOpen();
    if (this.#connected !== undefined || this.#connecting) {
      throw nodeError("ERR_SOCKET_DGRAM_IS_CONNECTED", "Already connected");
    }
    const p = checkPort(port);
    const cb = typeof address === "function" ? address : callback;
    const host = typeof address === "string" && address !== "" ? address : this.#loopback();
    if (cb !== undefined) this.once("connect", cb);
    this.#markBound();
    this.#connecting = true;
    const sock = this.#open(host, p);
    sock.opened.then(() => {
      this.#connecting = false;
      if (this.#closed) return;
      this.#connected = { address: host, port: p };
      this.emit("connect");
    }, (e: unknown) => {
      this.#connecting = false;
      if (!this.#closed) this.emit("error", toNodeError(e, "connect", "connect", host, p));
    });
  }

  /** Forgets the connected peer (Node 22 `socket.disconnect`). */
  disconnect(): void {
    this.#assertOpen();
    if (this.#connected === undefined) {
      throw nodeError("ERR_SOCKET_DGRAM_NOT_CONNECTED", "Not connected");
    }
    this.#connected = undefined;
  }

  /**
   * The connected peer (Node 22 `socket.remoteAddress`).
   *
   * @throws {Error} `ERR_SOCKET_DGRAM_NOT_CONNECTED` when not connected.
   */
  remoteAddress(): AddressInfo {
    const c = this.#connected;
    if (c === undefined) throw nodeError("ERR_SOCKET_DGRAM_NOT_CONNECTED", "Not connected");
    return { address: c.address, family: familyOf(c.address), port: c.port };
  }

  /**
   * The local address: the wildcard address of the type, and the server's local port (0 until
   * the server socket is open).
   *
   * @throws {Error} `ERR_SOCKET_DGRAM_NOT_RUNNING` when not bound or closed.
   */
  address(): AddressInfo {
    if (!this.#bound || this.#closed) {
      throw nodeError("ERR_SOCKET_DGRAM_NOT_RUNNING", "Not running");
    }
    const address = this.type === "udp4" ? "0.0.0.0" : "::";
    return { address, family: familyOf(address), port: this.#localPort };
  }

  /**
   * Sends one datagram (Node 22 `socket.send`): `(msg, port?, address?, cb?)`,
   * `(msg, offset, length, port?, address?, cb?)`; a connected socket omits port and address.
   * `address` defaults to the loopback address of the type (as Node). `cb(err, bytes)` runs once
   * the datagram is handed to the WebSocket; without `cb`, failures are emitted as `error`.
   *
   * @throws {RangeError} `ERR_SOCKET_BAD_PORT` for a port outside 1-65535 (unconnected).
   * @throws {Error} `ERR_SOCKET_DGRAM_NOT_RUNNING` after `close()`.
   */
  send(msg: MessageData, port?: number, address?: string, callback?: SendCallback): void;
  send(msg: MessageData, port?: number, callback?: SendCallback): void;
  send(msg: MessageData, callback?: SendCallback): void;
  send(
    msg: MessageData,
    offset: number,
    length: number,
    port?: number,
    address?: string,
    callback?: SendCallback,
  ): void;
  send(msg: MessageData, offset: number, length: number, callback?: SendCallback): void;
  send(msg: MessageData, ...args: unknown[]): void {
    this.#assertOpen();
    const last = args[args.length - 1];
    const cb = typeof last === "function" ? last as SendCallback : undefined;
    const rest = cb === undefined ? args : args.slice(0, -1);
    let data = toBytes(msg);
    // (msg, offset, length, ...) when msg is bytes and two numbers follow.
    if (
      typeof msg !== "string" && !Array.isArray(msg) && typeof rest[0] === "number" &&
      typeof rest[1] === "number" &&
      (this.#connected !== undefined ? rest.length === 2 : rest.length >= 3)
    ) {
      data = data.subarray(rest[0], rest[0] + rest[1]);
      rest.splice(0, 2);
    }
    let host: string;
    let port: number;
    const connected = this.#connected;
    if (connected !== undefined) {
      if (rest.length > 0 && rest[0] !== undefined) {
        throw nodeError("ERR_SOCKET_DGRAM_IS_CONNECTED", "Already connected");
      }
      host = connected.address;
      port = connected.port;
    } else {
      port = checkPort(rest[0]);
      host = typeof rest[1] === "string" && rest[1] !== "" ? rest[1] : this.#loopback();
    }
    this.#markBound();
    const size = data.byteLength;
    const copy = data.slice();
    let sent: Promise<void>;
    if (this.#sock === undefined) sent = this.#open(host, port).send(copy);
    else if (connected !== undefined && this.#sockPeer === `${host}|${port}`) {
      sent = this.#sock.send(copy);
    } else sent = this.#sock.sendTo(host, port, copy);
    sent.then(() => cb?.(null, size), (e: unknown) => {
      const err = toNodeError(e, "send", "send", host, port);
      if (cb !== undefined) cb(err, 0);
      else if (!this.#closed) this.emit("error", err);
    });
  }

  /**
   * Closes the socket (Node 22 `socket.close`); `close` is emitted once it is closed. `cb` is
   * added as a `close` listener.
   */
  close(callback?: () => void): this {
    if (callback !== undefined) this.once("close", callback);
    if (this.#closed) return this;
    this.#closed = true;
    const sock = this.#sock;
    if (sock === undefined) queueMicrotask(() => this.#emitClose());
    else void sock.close().catch(() => undefined).then(() => this.#emitClose());
    return this;
  }

  /** Closes the socket and waits for `close`. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#closeEmitted) return;
    const closed = new Promise<void>((resolve) => this.once("close", () => resolve()));
    this.close();
    await closed;
  }

  /** Accepted, no effect. */
  setBroadcast(_flag: boolean): void {}
  /** Accepted, no effect; returns `ttl`. */
  setTTL(ttl: number): number {
    return ttl;
  }
  /** Accepted, no effect; returns `ttl`. */
  setMulticastTTL(ttl: number): number {
    return ttl;
  }
  /** Accepted, no effect; returns `flag`. */
  setMulticastLoopback(flag: boolean): boolean {
    return flag;
  }
  /** Accepted, no effect. */
  setMulticastInterface(_iface: string): void {}
  /** Not available: throws `ERR_FEATURE_UNAVAILABLE_ON_PLATFORM`. */
  addMembership(_group: string, _iface?: string): never {
    throw unavailable("multicast membership");
  }
  /** Not available: throws `ERR_FEATURE_UNAVAILABLE_ON_PLATFORM`. */
  dropMembership(_group: string, _iface?: string): never {
    throw unavailable("multicast membership");
  }
  /** Not available: throws `ERR_FEATURE_UNAVAILABLE_ON_PLATFORM`. */
  addSourceSpecificMembership(_source: string, _group: string, _iface?: string): never {
    throw unavailable("multicast membership");
  }
  /** Not available: throws `ERR_FEATURE_UNAVAILABLE_ON_PLATFORM`. */
  dropSourceSpecificMembership(_source: string, _group: string, _iface?: string): never {
    throw unavailable("multicast membership");
  }
  /** Accepted, no effect. */
  setRecvBufferSize(_size: number): void {}
  /** Accepted, no effect. */
  setSendBufferSize(_size: number): void {}
  /** 0: unknown. */
  getRecvBufferSize(): number {
    return 0;
  }
  /** 0: unknown. */
  getSendBufferSize(): number {
    return 0;
  }
  /** 0: sends are handed to the WebSocket at once. */
  getSendQueueSize(): number {
    return 0;
  }
  /** 0. */
  getSendQueueCount(): number {
    return 0;
  }
  /** Accepted, no effect. */
  ref(): this {
    return this;
  }
  /** Accepted, no effect. */
  unref(): this {
    return this;
  }

  #sockPeer = "";

  #loopback(): string {
    return this.type === "udp4" ? "127.0.0.1" : "::1";
  }

  #assertOpen(): void {
    if (this.#closed) throw nodeError("ERR_SOCKET_DGRAM_NOT_RUNNING", "Not running");
  }

  #markBound(): void {
    if (this.#bound) return;
    this.#bound = true;
    queueMicrotask(() => {
      if (!this.#closed) this.emit("listening");
    });
  }

  /** Opens the server socket with `host:port` as its default peer (once). */
  #open(host: string, port: number): WasmnetDatagramSocket {
    if (this.#sock !== undefined) return this.#sock;
    const sock = sharedClient().openUdp(host, port);
    this.#sock = sock;
    this.#sockPeer = `${host}|${port}`;
    sock.opened.then(({ localPort }) => (this.#localPort = localPort), () => undefined);
    void this.#receive(sock, host, port);
    return sock;
  }

  async #receive(sock: WasmnetDatagramSocket, host: string, port: number): Promise<void> {
    try {
      for await (const d of sock) {
        const c = this.#connected;
        if (this.#closed) continue;
        if (c !== undefined && (c.port !== d.port || !sameHost(c.address, d.addr))) continue;
        const msg = Buffer.from(d.data.buffer, d.data.byteOffset, d.data.byteLength);
        const rinfo: RemoteInfo = {
          address: d.addr,
          family: isIPv6(d.addr) ? "IPv6" : "IPv4",
          port: d.port,
          size: d.data.byteLength,
        };
        this.emit("message", msg, rinfo);
      }
    } catch (e) {
      if (!this.#closed) {
        this.#closed = true;
        this.emit("error", toNodeError(e, "io", "recvmsg", host, port));
      }
    }
    this.#closed = true;
    this.#emitClose();
  }

  #emitClose(): void {
    if (this.#closeEmitted) return;
    this.#closeEmitted = true;
    this.emit("close");
  }
}

/** Whether a connected peer's address (maybe a name) is the sender's IP. */
function sameHost(peer: string, sender: string): boolean {
  if (peer === sender) return true;
  // A name was connected to: the server resolved it; accept the sender (we cannot compare).
  return !isIPv6(peer) && !/^\d+\.\d+\.\d+\.\d+$/.test(peer);
}

/**
 * Creates a UDP socket (Node 22 `dgram.createSocket`): `(type, cb?)` or `(options, cb?)`; `cb` is
 * added as a `message` listener.
 *
 * @throws {TypeError} `ERR_SOCKET_BAD_TYPE` for a type other than `udp4`/`udp6`.
 */
export function createSocket(
  type: SocketType | SocketOptions,
  callback?: (msg: Buffer, rinfo: RemoteInfo) => void,
): Socket {
  const sock = new Socket(type);
  if (callback !== undefined) sock.on("message", callback);
  return sock;
}

/** The module as one object, for code compiled to CommonJS (`require("dgram")` reads `.default`). */
const dgram: {
  Socket: typeof Socket;
  createSocket: typeof createSocket;
  configure: typeof configure;
} = { Socket, createSocket, configure };
export default dgram;
