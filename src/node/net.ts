/**
 * Node's `net` module (Node 22 API, https://nodejs.org/docs/latest-v22.x/api/net.html) over a
 * wasmnet server: TCP sockets and listeners in a browser, for a bundler alias `net → this`.
 *
 * Implemented: {@linkcode Socket} (a real `stream.Duplex` from npm `readable-stream`),
 * {@linkcode connect} / {@linkcode createConnection} (every overload), {@linkcode Server} /
 * {@linkcode createServer} (over `bind`/`listen`), {@linkcode isIP} / {@linkcode isIPv4} /
 * {@linkcode isIPv6}, and {@linkcode configure} (the wasmnet server; shared with `tls`, `dns`,
 * `dgram`). Not implemented (no wasmnet operation carries them): IPC paths (`path` options:
 * `ERR_FEATURE_UNAVAILABLE_ON_PLATFORM`), `BlockList`, `SocketAddress`, `localAddress`/
 * `localPort` choice, and the auto-select-family settings.
 *
 * Errors are `Error`s with Node's `code`, `errno`, `syscall`, `address` and `port`; their message
 * is Node's followed by ` - wasmnet: <server text>`, so a policy denial (`EACCES`) names the rule.
 *
 * @example
 * ```ts ignore
 * import net from "./net.ts";
 * net.configure({ url: "ws://127.0.0.1:9000/" });
 * const sock = net.connect(7, "127.0.0.1", () => sock.end("hi"));
 * sock.on("data", (b) => console.log(b.toString()));
 * ```
 *
 * @module
 */
// @ts-types="./_readable_stream.d.ts"
import { Duplex } from "readable-stream";
// @ts-types="@types/events"
import EventEmitter from "events";
import { Buffer } from "buffer";
import type { WasmnetClient, WasmnetListener, WasmnetSocket } from "../client/mod.ts";
import { configure, type ConfigureOptions, sharedClient, shutdown, startTls } from "./_client.ts";
import { nodeError, type NodeSystemError, toNodeError } from "./_errors.ts";
import { familyOf, isIP, isIPv4, isIPv6, splitHostPort } from "./_ip.ts";

export { configure, type ConfigureOptions, isIP, isIPv4, isIPv6 };

/** An address as `address()` reports it (Node 22 `net.AddressInfo`). */
export interface AddressInfo {
  /** The IP address. */
  address: string;
  /** `IPv4` or `IPv6`. */
  family: string;
  /** The port. */
  port: number;
}

/** One result of a lookup with `all: true` (Node 22 `dns.LookupAddress`). */
export interface LookupAddress {
  /** The IP address. */
  address: string;
  /** 4 or 6. */
  family: number;
}

/** Options passed to a custom {@linkcode LookupFunction}. */
export interface LookupOneOptions {
  /** 0, 4 or 6. */
  family?: number;
  /** `getaddrinfo` hints (ignored by the server). */
  hints?: number;
  /** Return every address. */
  all?: boolean;
}

/** A custom `lookup` (Node 22 `net.connect` option `lookup`, the shape of `dns.lookup`). */
export type LookupFunction = (
  hostname: string,
  options: LookupOneOptions,
  callback: (err: Error | null, address: string | LookupAddress[], family?: number) => void,
) => void;

/** Options of `new Socket()` (Node 22 `net.SocketConstructorOpts`). */
export interface SocketConstructorOpts {
  /** Keep the writable side open after the peer's end (default `false`). See {@linkcode Socket}. */
  allowHalfOpen?: boolean;
  /** Accepted for compatibility (a wasmnet socket is always readable and writable). */
  readable?: boolean;
  /** Accepted for compatibility. */
  writable?: boolean;
  /** Aborting destroys the socket with an `AbortError`. */
  signal?: AbortSignal;
  /** Not supported (there are no file descriptors): throws `ERR_FEATURE_UNAVAILABLE_ON_PLATFORM`. */
  fd?: number;
}

/** TCP options of `connect` (Node 22 `net.TcpSocketConnectOpts`). */
export interface TcpSocketConnectOpts {
  /** Remote port, 1-65535 (a numeric string is accepted, as in Node). */
  port: number | string;
  /** Remote host name or IP address; default `localhost`. The server resolves names. */
  host?: string;
  /** Ignored: the server picks its local address. */
  localAddress?: string;
  /** Ignored: the server picks its local port. */
  localPort?: number;
  /** Passed to a custom `lookup`; otherwise ignored (the server resolves). */
  family?: number;
  /** Passed to a custom `lookup`. */
  hints?: number;
  /**
   * A custom lookup: called for a host that is not an IP address; the socket then connects to
   * the address it returns (the server checks that address against its policy).
   */
  lookup?: LookupFunction;
  /** Accepted: the server sets TCP_NODELAY on every upstream socket. */
  noDelay?: boolean;
  /** Accepted, no effect (the protocol cannot set keep-alive). */
  keepAlive?: boolean;
  /** Accepted, no effect. */
  keepAliveInitialDelay?: number;
  /** Idle timeout in ms: as `socket.setTimeout(timeout)`. */
  timeout?: number;
  /** Accepted, no effect (the server dials). */
  autoSelectFamily?: boolean;
  /** Accepted, no effect. */
  autoSelectFamilyAttemptTimeout?: number;
}

/** IPC options of `connect` (not supported: there is no wasmnet operation for them). */
export interface IpcSocketConnectOpts {
  /** A Unix socket path. Connecting fails with `ERR_FEATURE_UNAVAILABLE_ON_PLATFORM`. */
  path: string;
  /** Idle timeout in ms. */
  timeout?: number;
}

/** Options of {@linkcode Socket.connect}. */
export type SocketConnectOpts = TcpSocketConnectOpts | IpcSocketConnectOpts;

/** Options of {@linkcode connect} (Node 22 `net.NetConnectOpts`). */
export type NetConnectOpts = SocketConnectOpts & SocketConstructorOpts;

/** The arguments of the `connect` overloads. */
export type ConnectArgs =
  | [options: NetConnectOpts, connectListener?: () => void]
  | [port: number | string, host?: string, connectListener?: () => void]
  | [port: number | string, connectListener?: () => void]
  | [path: string, connectListener?: () => void];

/** Options of {@linkcode createServer} (Node 22 `net.ServerOpts`). */
export interface ServerOpts {
  /** `allowHalfOpen` of accepted sockets (default `false`). */
  allowHalfOpen?: boolean;
  /** Accepted sockets start paused. */
  pauseOnConnect?: boolean;
  /** Accepted, no effect (the server sets TCP_NODELAY). */
  noDelay?: boolean;
  /** Accepted, no effect. */
  keepAlive?: boolean;
  /** Accepted, no effect. */
  keepAliveInitialDelay?: number;
  /** Accepted, no effect. */
  highWaterMark?: number;
}

/** Options of {@linkcode Server.listen} (Node 22 `net.ListenOptions`). */
export interface ListenOptions {
  /** Port on the wasmnet server's host; 0 (default) picks a free one, if the policy allows it. */
  port?: number;
  /** Address to bind on the server's host; default `0.0.0.0` (must pass `bind_addrs`). */
  host?: string;
  /** Backlog sent with `listen`, and most accepted sockets queued. Default 128. */
  backlog?: number;
  /** Not supported: listening fails with `ERR_FEATURE_UNAVAILABLE_ON_PLATFORM`. */
  path?: string;
  /** Accepted, no effect. */
  exclusive?: boolean;
  /** Accepted, no effect. */
  ipv6Only?: boolean;
  /** Aborting closes the server. */
  signal?: AbortSignal;
}

type Callback = (error?: Error | null) => void;

function noop(): void {}

/** Node's `ERR_SOCKET_BAD_PORT` check; returns the port as a number. */
function validatePort(port: unknown, allowZero: boolean): number {
  const n = typeof port === "string" && port.trim() !== "" ? Number(port) : port;
  if (
    typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 65535 ||
    (n === 0 && !allowZero)
  ) {
    const err = new RangeError(
      `Port should be ${allowZero ? ">=" : ">"} 0 and < 65536. Received ${String(port)}.`,
    );
    throw Object.assign(err, { code: "ERR_SOCKET_BAD_PORT" });
  }
  return n;
}

function unavailable(what: string): NodeSystemError {
  return nodeError(
    "ERR_FEATURE_UNAVAILABLE_ON_PLATFORM",
    `${what} is not available through wasmnet`,
  );
}

/**
 * Normalizes the `connect` overloads to `[options, listener]` (Node's `normalizeArgs`).
 *
 * @example
 * ```ts
 * import { normalizeConnectArgs } from "./net.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(normalizeConnectArgs([80, "example.com"])[0], { port: 80, host: "example.com" });
 * ```
 */
export function normalizeConnectArgs(
  args: unknown[],
): [NetConnectOpts, (() => void) | undefined] {
  const last = args[args.length - 1];
  const cb = typeof last === "function" ? last as () => void : undefined;
  const first = args[0];
  if (first !== null && typeof first === "object") return [first as NetConnectOpts, cb];
  if (typeof first === "string" && !/^\s*\d+\s*$/.test(first)) {
    return [{ path: first }, cb];
  }
  const opts: TcpSocketConnectOpts = { port: first as number | string };
  if (typeof args[1] === "string") opts.host = args[1];
  return [opts, cb];
}

/** What a {@linkcode Handle} delivers to its owner socket. */
interface HandleOwner {
  _wasmnetData(chunk: Uint8Array): boolean;
  _wasmnetEnd(): void;
  _wasmnetError(err: unknown): void;
}

/**
 * One wasmnet socket under a {@linkcode Socket}: reads it only while the owner wants data (the
 * `_read` pull), writes through its writer. The owner changes on a TLS upgrade.
 */
class Handle {
  readonly sock: WasmnetSocket;
  owner: HandleOwner;
  /** The wasmnet socket has ended (either side closed it, or it failed). */
  ended = false;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #wanted = false;
  #reading = false;

  constructor(sock: WasmnetSocket, owner: HandleOwner) {
    this.sock = sock;
    this.owner = owner;
    this.#reader = sock.readable.getReader();
    this.#writer = sock.writable.getWriter();
    this.#reader.closed.catch(noop);
    this.#writer.closed.catch(noop);
    sock.closed.then(() => (this.ended = true), () => (this.ended = true));
  }

  /** The owner wants more data (its `_read` was called). */
  read(): void {
    this.#wanted = true;
    if (!this.#reading) void this.#pump();
  }

  /** Resolves once the bytes are handed to the WebSocket and its buffer has drained enough. */
  write(chunk: Uint8Array): Promise<void> {
    return this.#writer.write(chunk);
  }

  /** Closes the wasmnet socket (cancels a pending dial). */
  close(): void {
    this.ended = true;
    void this.sock.close().catch(noop);
  }

  async #pump(): Promise<void> {
    this.#reading = true;
    try {
      while (this.#wanted) {
        const r = await this.#reader.read();
        if (r.done) {
          this.#wanted = false;
          this.ended = true;
          this.owner._wasmnetEnd();
          return;
        }
        this.#wanted = false; // set again by a `_read` during the push
        if (this.owner._wasmnetData(r.value)) this.#wanted = true;
      }
    } catch (e) {
      this.#wanted = false;
      this.ended = true;
      this.owner._wasmnetError(e);
    } finally {
      this.#reading = false;
    }
  }
}

/** How a socket secures itself (TLS sockets only). */
export interface TlsTarget {
  /** SNI and verification name; `undefined`: the host. */
  servername: string | undefined;
}

/**
 * A TCP socket through a wasmnet server, in the shape of Node 22's `net.Socket`: a
 * `stream.Duplex` (npm `readable-stream`) emitting `lookup`, `connect`, `ready`, `data`, `end`,
 * `drain`, `timeout`, `error` and `close(hadError)`.
 *
 * - Writes: a `write` callback runs once its bytes are handed to the WebSocket and the client's
 *   buffer is below its high-water mark (`client.drain()` otherwise), so `write()` returns
 *   `false` and `drain` follows the real backpressure of the path to the peer.
 * - Reads: the wasmnet socket is read only while this stream wants data (paused → not read).
 *   The protocol has no flow control, so unread bytes wait in the client (up to 16 MiB; past
 *   that the socket fails with `ENOBUFS`).
 * - `end()` half-closes through the `shutdown` extension (FIN upstream after the writes,
 *   reading continues until the peer ends); a server without the extension leaves the socket
 *   fully open until the peer closes it (or `destroy()`). The peer's end closes the whole wasmnet
 *   socket (the protocol reports `closed`), so with `allowHalfOpen: true` writes after `end`
 *   fail with `EPIPE`.
 * - `setNoDelay`, `setKeepAlive`, `ref`, `unref` are accepted and do nothing: the server sets
 *   TCP_NODELAY itself and the protocol has no keep-alive option.
 * - `remoteAddress`/`remoteFamily`: the IP dialled when the host was an IP address (or came from
 *   a custom `lookup`), the peer of accepted sockets; `undefined` for a name the server resolved
 *   (the protocol does not report the address). `localAddress`/`localPort` are `undefined`.
 * - `bytesRead`/`bytesWritten` count payload bytes (TLS: plaintext), as Node does.
 */
export class Socket extends Duplex {
  /** True while connecting (Node 22 `socket.connecting`). */
  connecting = false;
  /** Payload bytes received. */
  bytesRead = 0;
  /** Payload bytes handed to the server. */
  bytesWritten = 0;
  /** The idle timeout set by `setTimeout` (ms), or `undefined`. */
  timeout: number | undefined = undefined;

  #handle: Handle | undefined;
  #host: string | undefined;
  #port: number | undefined;
  #remoteAddress: string | undefined;
  #readWanted = false;
  #hadError = false;
  #gate: Promise<void> | undefined;
  #openGate: () => void = noop;
  #failGate: (err: unknown) => void = noop;
  #timer: ReturnType<typeof globalThis.setTimeout> | undefined;
  #upgradedTo: Socket | undefined;
  #upgradedFrom: Socket | undefined;

  /** @param options see {@linkcode SocketConstructorOpts}. */
  constructor(options: SocketConstructorOpts = {}) {
    super({ allowHalfOpen: options.allowHalfOpen === true });
    if (options.fd !== undefined) throw unavailable("a file descriptor");
    const signal = options.signal;
    if (signal !== undefined) {
      const abort = (): void => {
        this.destroy(Object.assign(new Error("The operation was aborted"), {
          name: "AbortError",
          code: "ABORT_ERR",
          cause: signal.reason,
        }));
      };
      if (signal.aborted) queueMicrotask(abort);
      else {
        signal.addEventListener("abort", abort, { once: true });
        this.once("close", () => signal.removeEventListener("abort", abort));
      }
    }
  }

  /**
   * Connects (Node 22 `socket.connect`): `(options, cb?)`, `(port, host?, cb?)`, `(path, cb?)`.
   * `cb` is added as a `connect` listener.
   *
   * @throws {RangeError} `ERR_SOCKET_BAD_PORT` for a port outside 1-65535.
   */
  connect(...args: ConnectArgs): this {
    const [options, cb] = normalizeConnectArgs(args);
    if (cb !== undefined) this.once("connect", cb);
    this._wasmnetConnect(options, undefined);
    return this;
  }

  /** Always `true` once connecting or connected; `false` before (Node 22 `socket.pending`). */
  get pending(): boolean {
    return this.#handle === undefined || this.connecting;
  }

  /** `opening`, `open`, `readOnly`, `writeOnly` or `closed` (Node 22 `socket.readyState`). */
  get readyState(): "opening" | "open" | "readOnly" | "writeOnly" | "closed" {
    if (this.connecting) return "opening";
    if (this.readable && this.writable) return "open";
    if (this.readable) return "readOnly";
    if (this.writable) return "writeOnly";
    return "closed";
  }

  /** The peer's IP address, when known (see {@linkcode Socket}). */
  get remoteAddress(): string | undefined {
    return this.destroyed && this.#handle === undefined ? undefined : this.#remoteAddress;
  }

  /** `IPv4`/`IPv6` of {@linkcode Socket.remoteAddress}, when known. */
  get remoteFamily(): string | undefined {
    const a = this.remoteAddress;
    return a === undefined ? undefined : familyOf(a);
  }

  /** The peer's port. */
  get remotePort(): number | undefined {
    return this.#port;
  }

  /** Always `undefined`: the server does not report its local address. */
  get localAddress(): string | undefined {
    return undefined;
  }

  /** Always `undefined`: the server does not report its local port for TCP. */
  get localPort(): number | undefined {
    return undefined;
  }

  /** Always `undefined`. */
  get localFamily(): string | undefined {
    return undefined;
  }

  /** Bytes queued for writing (deprecated in Node; `writableLength`). */
  get bufferSize(): number {
    return this.writableLength;
  }

  /** The local address: always `{}` (unknown; Node returns `{}` for an unbound socket). */
  address(): AddressInfo | Record<string, never> {
    return {};
  }

  /**
   * Emits `timeout` after `ms` of inactivity (no data read or written); 0 disables it. `cb` is
   * added as a `timeout` listener (removed with `ms` 0). The socket is not closed: listeners
   * decide (Node 22 `socket.setTimeout`).
   */
  setTimeout(ms: number, cb?: () => void): this {
    if (cb !== undefined) {
      if (ms === 0) this.removeListener("timeout", cb);
      else this.once("timeout", cb);
    }
    this.timeout = ms > 0 ? ms : undefined;
    this.#touch();
    return this;
  }

  /** Accepted, no effect: the server sets TCP_NODELAY on every upstream socket. */
  setNoDelay(_noDelay?: boolean): this {
    return this;
  }

  /** Accepted, no effect: the protocol has no keep-alive option. */
  setKeepAlive(_enable?: boolean, _initialDelay?: number): this {
    return this;
  }

  /** Accepted, no effect (nothing here keeps a process alive). */
  ref(): this {
    return this;
  }

  /** Accepted, no effect. */
  unref(): this {
    return this;
  }

  /** Destroys the socket (Node sends RST; wasmnet closes it, which the server ends with FIN). */
  resetAndDestroy(): this {
    return this.destroy();
  }

  /** Ends the writable side, then destroys once everything is flushed (Node `destroySoon`). */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once("finish", () => this.destroy());
  }

  /** Emits `close` with Node's `hadError` argument. */
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === "close" && args.length === 0) return super.emit("close", this.#hadError);
    return super.emit(event, ...args);
  }

  // ── stream implementation ────────────────────────────────────────────────────────────────

  /** @internal */
  override _read(_size: number): void {
    if (this.#handle !== undefined && this.#upgradedTo === undefined) this.#handle.read();
    else this.#readWanted = true;
  }

  /** @internal */
  override _write(chunk: Uint8Array, _encoding: string, callback: Callback): void {
    const go = (): void => {
      const h = this.#handle;
      if (h === undefined || this.#upgradedTo !== undefined) {
        return callback(nodeError("ERR_SOCKET_CLOSED", "Socket is closed"));
      }
      h.write(chunk).then(() => {
        this.bytesWritten += chunk.byteLength;
        this.#touch();
        callback();
      }, (e: unknown) => callback(this.#ioError(e, "write")));
    };
    if (this.#gate !== undefined) this.#gate.then(go, (e: unknown) => callback(e as Error));
    else go();
  }

  /** @internal */
  override _final(callback: Callback): void {
    const go = (): void => {
      const h = this.#handle;
      if (h === undefined || h.ended || this.#upgradedTo !== undefined) return callback();
      shutdown(h.sock);
      callback();
    };
    if (this.#gate !== undefined) this.#gate.then(go, () => callback());
    else go();
  }

  /** @internal */
  override _destroy(err: Error | null, callback: (error: Error | null) => void): void {
    this.#hadError = err !== null && err !== undefined;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.connecting = false;
    this.#failGate(err ?? nodeError("ERR_SOCKET_CLOSED", "Socket is closed"));
    const up = this.#upgradedTo;
    const from = this.#upgradedFrom;
    if (up !== undefined) up.destroy();
    else this.#handle?.close();
    if (from !== undefined && !from.destroyed) from.destroy();
    callback(err);
  }

  // ── wasmnet plumbing (used by net, tls and Server; not part of Node's API) ──────────────────

  /** @internal Data from the handle. */
  _wasmnetData(chunk: Uint8Array): boolean {
    if (this.destroyed) return false;
    this.bytesRead += chunk.byteLength;
    this.#touch();
    return this.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  }

  /** @internal The handle ended cleanly. */
  _wasmnetEnd(): void {
    if (!this.destroyed) this.push(null);
  }

  /** @internal The handle failed. */
  _wasmnetError(err: unknown): void {
    if (!this.destroyed) this.destroy(this.#ioError(err, "read"));
  }

  /**
   * @internal Starts connecting: resolves nothing itself; `tls` set makes it a TLS connection
   * (`connect_tls`, or `connect` + `start_tls` when `servername` differs from the host).
   */
  protected _wasmnetConnect(options: NetConnectOpts, tls: TlsTarget | undefined): void {
    if ("path" in options && options.path !== undefined) {
      const err = unavailable(`connecting to an IPC path (${options.path})`);
      queueMicrotask(() => this.destroy(err));
      return;
    }
    const tcp = options as TcpSocketConnectOpts & SocketConstructorOpts;
    const port = validatePort(tcp.port, false);
    const host = tcp.host === undefined || tcp.host === "" ? "localhost" : tcp.host;
    if (this.connecting || this.#handle !== undefined) {
      throw nodeError("ERR_SOCKET_CONNECTING", "Socket is already connecting or connected");
    }
    this.connecting = true;
    this.#host = host;
    this.#port = port;
    this.#remoteAddress = isIP(host) !== 0 ? host : undefined;
    this.#armGate();
    if (tcp.timeout !== undefined) this.setTimeout(tcp.timeout);
    let client: WasmnetClient;
    try {
      client = sharedClient();
    } catch (e) {
      queueMicrotask(() => this.destroy(e as Error));
      return;
    }
    const lookup = tcp.lookup;
    if (lookup === undefined || isIP(host) !== 0) {
      this.#dial(client, host, port, tls, false);
      return;
    }
    const lookupOptions: LookupOneOptions = { all: false };
    if (tcp.family !== undefined) lookupOptions.family = tcp.family;
    if (tcp.hints !== undefined) lookupOptions.hints = tcp.hints;
    lookup(host, lookupOptions, (err, address, family) => {
      const addr = Array.isArray(address) ? address[0]?.address : address;
      this.emit("lookup", err, addr, family, host);
      if (this.destroyed) return;
      if (err !== null || addr === undefined) {
        this.destroy(err ?? nodeError("ENOTFOUND", `getaddrinfo ENOTFOUND ${host}`));
        return;
      }
      this.#remoteAddress = addr;
      this.#dial(client, addr, port, tls, true);
    });
  }

  /** @internal Emits the connected events (TLS sockets add `secureConnect`). */
  protected _wasmnetConnected(): void {
    this.emit("connect");
    this.emit("ready");
  }

  /** @internal Makes this socket the one an accepted wasmnet connection arrives on. */
  _wasmnetAccept(sock: WasmnetSocket, remote: string): void {
    const { address, port } = splitHostPort(remote);
    this.#remoteAddress = address;
    this.#port = port;
    this.#host = address;
    this.#adopt(new Handle(sock, this));
  }

  /**
   * @internal Takes over `old`'s wasmnet socket and upgrades it with `start_tls` (the TLS
   * upgrade of `tls.connect({ socket })`). `old` stays open but silent; destroying either
   * destroys both.
   */
  protected _wasmnetUpgrade(old: Socket, servername: string | undefined): void {
    this.connecting = true;
    this.#armGate();
    this.#upgradedFrom = old;
    old.#upgradedTo = this;
    this.#port = old.#port;
    this.#host = old.#host;
    this.#remoteAddress = old.#remoteAddress;
    const name = servername ?? old.#host;
    const take = (): void => {
      const h = old.#handle;
      if (this.destroyed) return;
      if (h === undefined || old.destroyed) {
        this.destroy(nodeError("ERR_SOCKET_CLOSED", "Socket is closed"));
        return;
      }
      h.owner = this;
      this.#handle = h;
      if (this.#readWanted) h.read();
      startTls(h.sock, name).then(() => this.#connected(), (e: unknown) => {
        const code = (e as { code?: unknown }).code;
        const err = code === "EUNSUPPORTED"
          ? nodeError(
            "ERR_WASMNET_START_TLS_UNSUPPORTED",
            `tls.connect({ socket }) needs a wasmnet server with the start_tls extension - ` +
              `wasmnet: ${(e as Error).message}`,
            { cause: e },
          )
          : toNodeError(e, "connect", "connect", this.#host, this.#port);
        if (!this.destroyed) this.destroy(err);
      });
    };
    if (old.connecting) {
      const onConnect = (): void => {
        old.removeListener("close", onClose);
        take();
      };
      const onClose = (): void => {
        old.removeListener("connect", onConnect);
        take();
      };
      old.once("connect", onConnect);
      old.once("close", onClose);
    } else queueMicrotask(take);
  }

  // ── private ──────────────────────────────────────────────────────────────────────────────

  #armGate(): void {
    this.#gate = new Promise<void>((resolve, reject) => {
      this.#openGate = resolve;
      this.#failGate = reject;
    });
    this.#gate.catch(noop);
  }

  #adopt(h: Handle): void {
    this.#handle = h;
    this.connecting = false;
    if (this.#readWanted) h.read();
  }

  #dial(
    client: WasmnetClient,
    addr: string,
    port: number,
    tls: TlsTarget | undefined,
    lookedUp: boolean,
  ): void {
    const direct = tls !== undefined &&
      (tls.servername === undefined || tls.servername === addr);
    const sock = client.openTcp(addr, port, { tls: direct });
    const h = new Handle(sock, this);
    this.#handle = h;
    if (this.#readWanted) h.read();
    sock.opened.then(async () => {
      if (this.destroyed) return;
      if (tls !== undefined && !direct) {
        try {
          await startTls(sock, tls.servername);
        } catch (e) {
          if (!this.destroyed) this.destroy(toNodeError(e, "connect", "connect", addr, port));
          return;
        }
        if (this.destroyed) return;
      }
      if (!lookedUp && isIP(addr) === 0) this.emit("lookup", null, undefined, undefined, addr);
      this.#connected();
    }, (e: unknown) => {
      if (this.destroyed) return;
      const err = toNodeError(e, "connect", "connect", addr, port);
      if (!lookedUp && isIP(addr) === 0 && err.code === "ENOTFOUND") {
        this.emit("lookup", err, undefined, undefined, addr);
      }
      if (!this.destroyed) this.destroy(err);
    });
  }

  #connected(): void {
    this.connecting = false;
    this.#touch();
    this.#openGate();
    this.#gate = undefined;
    this._wasmnetConnected();
  }

  #ioError(e: unknown, syscall: string): NodeSystemError {
    return toNodeError(e, "io", syscall);
  }

  #touch(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const ms = this.timeout;
    if (ms === undefined || this.destroyed) return;
    this.#timer = globalThis.setTimeout(() => {
      this.#timer = undefined;
      this.emit("timeout");
    }, ms);
  }
}

/** Node's `net.Stream`: an alias of {@linkcode Socket}. */
export const Stream: typeof Socket = Socket;

/**
 * Creates a {@linkcode Socket} and connects it (Node 22 `net.connect`): `(options, cb?)`,
 * `(port, host?, cb?)`, `(path, cb?)` (IPC paths fail with
 * `ERR_FEATURE_UNAVAILABLE_ON_PLATFORM`). `cb` is added as a `connect` listener.
 *
 * @throws {RangeError} `ERR_SOCKET_BAD_PORT` for a port outside 1-65535.
 */
export function connect(options: NetConnectOpts, connectionListener?: () => void): Socket;
export function connect(
  port: number | string,
  host?: string,
  connectionListener?: () => void,
): Socket;
export function connect(port: number | string, connectionListener?: () => void): Socket;
export function connect(...args: unknown[]): Socket {
  const [options, cb] = normalizeConnectArgs(args);
  const ctor: SocketConstructorOpts = {};
  const o = options as SocketConstructorOpts;
  if (o.allowHalfOpen !== undefined) ctor.allowHalfOpen = o.allowHalfOpen;
  if (o.signal !== undefined) ctor.signal = o.signal;
  const sock = new Socket(ctor);
  return cb === undefined ? sock.connect(options) : sock.connect(options, cb);
}

/** Node 22 `net.createConnection`: the same function as {@linkcode connect}. */
export const createConnection: typeof connect = connect;

/**
 * A TCP listener on the wasmnet server (Node 22 `net.Server`), over the `bind` and `listen`
 * operations. Emits `listening`, `connection` (an accepted {@linkcode Socket}), `error` and
 * `close` (after `close()`, once every accepted socket has closed).
 *
 * The listener lives on the server's host, subject to its policy (`bind_addrs`, `bind_ports`);
 * a refusal is an `error` with code `EACCES` naming the rule.
 */
export class Server extends EventEmitter {
  /** Accepted, not enforced (Node 22 `server.maxConnections`). */
  maxConnections: number | undefined = undefined;
  readonly #options: ServerOpts;
  readonly #connections = new Set<Socket>();
  #listener: WasmnetListener | undefined;
  #address: AddressInfo | undefined;
  #listening = false;
  #closing = false;

  /**
   * @param options see {@linkcode ServerOpts}.
   * @param connectionListener added as a `connection` listener.
   */
  constructor(
    options?: ServerOpts | ((socket: Socket) => void),
    connectionListener?: (socket: Socket) => void,
  ) {
    super();
    const listener = typeof options === "function" ? options : connectionListener;
    this.#options = typeof options === "object" && options !== null ? options : {};
    if (listener !== undefined) this.on("connection", listener);
  }

  /** True while listening. */
  get listening(): boolean {
    return this.#listening;
  }

  /**
   * Starts listening (Node 22 `server.listen`): `(port?, host?, backlog?, cb?)` or
   * `(options, cb?)`; `cb` is added as a `listening` listener. A path (IPC) fails with
   * `ERR_FEATURE_UNAVAILABLE_ON_PLATFORM`.
   */
  listen(...args: unknown[]): this {
    const last = args[args.length - 1];
    const cb = typeof last === "function" ? last as () => void : undefined;
    const rest = cb === undefined ? args : args.slice(0, -1);
    let opts: ListenOptions;
    if (rest[0] !== null && typeof rest[0] === "object") opts = rest[0] as ListenOptions;
    else if (typeof rest[0] === "string" && !/^\s*\d+\s*$/.test(rest[0])) opts = { path: rest[0] };
    else {
      opts = {};
      if (rest[0] !== undefined && rest[0] !== null) opts.port = Number(rest[0]);
      if (typeof rest[1] === "string") opts.host = rest[1];
      const backlog = typeof rest[1] === "number" ? rest[1] : rest[2];
      if (typeof backlog === "number") opts.backlog = backlog;
    }
    if (cb !== undefined) this.once("listening", cb);
    if (this.#listener !== undefined) {
      throw nodeError(
        "ERR_SERVER_ALREADY_LISTEN",
        "Listen method has been called more than once without closing.",
      );
    }
    if (opts.path !== undefined) {
      const err = unavailable(`listening on an IPC path (${opts.path})`);
      queueMicrotask(() => this.emit("error", err));
      return this;
    }
    const port = validatePort(opts.port ?? 0, true);
    const host = opts.host ?? "0.0.0.0";
    let client: WasmnetClient;
    try {
      client = sharedClient();
    } catch (e) {
      queueMicrotask(() => this.emit("error", e));
      return this;
    }
    const listener = client.openListener(host, port, { backlog: opts.backlog ?? 128 });
    this.#listener = listener;
    this.#closing = false;
    if (opts.signal !== undefined) {
      const signal = opts.signal;
      if (signal.aborted) queueMicrotask(() => this.close());
      else signal.addEventListener("abort", () => this.close(), { once: true });
    }
    listener.opened.then(({ port: bound }) => {
      if (this.#listener !== listener) return;
      this.#listening = true;
      this.#address = { address: host, family: familyOf(host), port: bound };
      this.emit("listening");
      void this.#accept(listener, host, bound);
    }, (e: unknown) => {
      if (this.#listener !== listener) return;
      this.#listener = undefined;
      this.emit("error", toNodeError(e, "bind", "listen", host, port));
    });
    return this;
  }

  /** The bound address (`port` is the real one), or `null` when not listening. */
  address(): AddressInfo | null {
    return this.#listening && this.#address !== undefined ? { ...this.#address } : null;
  }

  /**
   * Stops accepting; `close` is emitted once every accepted socket has closed too. `cb` gets
   * `ERR_SERVER_NOT_RUNNING` when the server was not listening (Node 22 `server.close`).
   */
  close(cb?: (err?: Error) => void): this {
    const listener = this.#listener;
    if (listener === undefined) {
      const err = nodeError("ERR_SERVER_NOT_RUNNING", "Server is not running.");
      if (cb !== undefined) queueMicrotask(() => cb(err));
      return this;
    }
    if (cb !== undefined) this.once("close", cb);
    this.#listener = undefined;
    this.#listening = false;
    this.#closing = true;
    void listener.close().catch(noop).then(() => this.#maybeClosed());
    return this;
  }

  /** Calls `cb(null, n)` with the number of open accepted sockets. */
  getConnections(cb: (err: Error | null, count: number) => void): this {
    const n = this.#connections.size;
    queueMicrotask(() => cb(null, n));
    return this;
  }

  /** Accepted, no effect. */
  ref(): this {
    return this;
  }

  /** Accepted, no effect. */
  unref(): this {
    return this;
  }

  /** Closes the server and waits for `close`. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#listener === undefined && !this.#closing) return;
    const closed = new Promise<void>((resolve) => this.once("close", () => resolve()));
    if (this.#listener !== undefined) this.close();
    await closed;
  }

  async #accept(listener: WasmnetListener, host: string, port: number): Promise<void> {
    try {
      for await (const conn of listener) {
        const info = await conn.opened.catch(() => undefined);
        if (info === undefined) continue;
        const sock = new Socket({ allowHalfOpen: this.#options.allowHalfOpen === true });
        sock._wasmnetAccept(conn, info.remoteAddress ?? "");
        if (this.#options.pauseOnConnect === true) sock.pause();
        this.#connections.add(sock);
        sock.once("close", () => {
          this.#connections.delete(sock);
          this.#maybeClosed();
        });
        this.emit("connection", sock);
      }
    } catch (e) {
      if (this.#listener === listener) {
        this.#listener = undefined;
        this.#listening = false;
        this.#closing = true;
        this.emit("error", toNodeError(e, "bind", "accept", host, port));
        this.#maybeClosed();
      }
    }
  }

  #maybeClosed(): void {
    if (!this.#closing || this.#connections.size > 0) return;
    this.#closing = false;
    this.emit("close");
  }
}

/**
 * Creates a {@linkcode Server} (Node 22 `net.createServer`): `(options?, connectionListener?)`.
 */
export function createServer(
  options?: ServerOpts | ((socket: Socket) => void),
  connectionListener?: (socket: Socket) => void,
): Server {
  return new Server(options, connectionListener);
}

/** Node 22 `net.getDefaultAutoSelectFamily`: always `false` (the server dials). */
export function getDefaultAutoSelectFamily(): boolean {
  return false;
}

/** Node 22 `net.setDefaultAutoSelectFamily`: accepted, no effect. */
export function setDefaultAutoSelectFamily(_value: boolean): void {}

/** The module as one object, for code compiled to CommonJS (`require("net")` reads `.default`). */
const net: {
  Socket: typeof Socket;
  Stream: typeof Socket;
  Server: typeof Server;
  connect: typeof connect;
  createConnection: typeof connect;
  createServer: typeof createServer;
  isIP: typeof isIP;
  isIPv4: typeof isIPv4;
  isIPv6: typeof isIPv6;
  getDefaultAutoSelectFamily: typeof getDefaultAutoSelectFamily;
  setDefaultAutoSelectFamily: typeof setDefaultAutoSelectFamily;
  configure: typeof configure;
} = {
  Socket,
  Stream,
  Server,
  connect,
  createConnection,
  createServer,
  isIP,
  isIPv4,
  isIPv6,
  getDefaultAutoSelectFamily,
  setDefaultAutoSelectFamily,
  configure,
};
export default net;
