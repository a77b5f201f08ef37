/**
 * Outbound TCP through Bun's native socket API (`Bun.connect`), used by the Bun transport when
 * it runs under Bun: about a third less CPU per connect+write+close than `node:net` in Bun 1.4.5,
 * and no `Duplex` stream between the socket and the reader. The few Bun shapes used are declared
 * here so that this file type-checks under Deno without `@types/bun` (Bun 1.4.5; reference:
 * https://bun.com/docs/api/tcp, `Socket`, `SocketHandler`, `TCPSocketConnectOptions`).
 *
 * Measured Bun 1.4.5 behaviour this relies on: `write()` returns the bytes the kernel took and
 * keeps nothing (a partial write leaves the rest to the caller, and `drain` fires once more can
 * be written; -1 once the socket is closed or shut down); the `data` handler's `Buffer` is a
 * fresh copy each time (it stays valid after the handler returns); `pause()` stops reading from
 * the kernel (a socket nobody reads stops at well under 1 MiB queued); `end()` closes the file
 * descriptor at once with a FIN, while `terminate()` resets the connection (RST); a reset by the
 * peer arrives as the `close` handler's error (`code` `ECONNRESET`); a refused dial rejects the
 * `Bun.connect` promise with an `Error` whose `code` is `ECONNREFUSED`.
 *
 * @module
 */
import type { AcceptedConn, NetAddr } from "../types.ts";
import { BadResource, osError } from "../errors.ts";
import { ReceiveQueue } from "../_receive_queue.ts";
import { tcpAddr } from "../_node_conn.ts";

/** A connected TCP socket of `Bun.connect` (only what {@linkcode BunSocketConn} uses). */
export interface BunTcpSocket {
  /** What `Bun.connect({ data })` attached: the connection that owns the socket. */
  readonly data: BunSocketConn;
  /** Writes what the kernel takes now; returns that many bytes (0 when full), -1 once closed. */
  write(data: Uint8Array): number;
  /** Half-closes: sends FIN, keeps reading. */
  shutdown(): void;
  /** Closes at once with a FIN (nothing is buffered by Bun for a plain TCP socket). */
  end(): void;
  /** Stops reading from the kernel until `resume()`. */
  pause(): void;
  /** Reads from the kernel again. */
  resume(): void;
  /** Sets TCP_NODELAY; returns whether it was set. */
  setNoDelay(on?: boolean): boolean;
  /** The peer's IP address. */
  readonly remoteAddress: string;
  /** The peer's port. */
  readonly remotePort: number;
  /** The local IP address. */
  readonly localAddress: string;
  /** The local port. */
  readonly localPort: number;
}

/** The handlers of `Bun.connect` (shared by every socket; the socket's `data` says whose). */
interface BunSocketHandlers {
  open(socket: BunTcpSocket): void;
  data(socket: BunTcpSocket, data: Uint8Array): void;
  drain(socket: BunTcpSocket): void;
  end(socket: BunTcpSocket): void;
  close(socket: BunTcpSocket, error?: Error): void;
  error(socket: BunTcpSocket, error: Error): void;
  connectError(socket: BunTcpSocket, error: Error): void;
}

/** `Bun.connect` (TCP, no TLS). */
export interface BunConnectApi {
  /**
   * Dials `hostname:port`; resolves the socket after its `open` handler ran, rejects with the
   * OS error (`code` `ECONNREFUSED`, ...) after `connectError` ran.
   */
  connect(options: {
    hostname: string;
    port: number;
    allowHalfOpen: boolean;
    data: BunSocketConn;
    socket: BunSocketHandlers;
  }): Promise<BunTcpSocket>;
}

/** The `Bun` global when running under Bun, else `undefined`. */
export function bunConnectApi(): BunConnectApi | undefined {
  const bun = (globalThis as { Bun?: Partial<BunConnectApi> }).Bun;
  return typeof bun?.connect === "function" ? bun as BunConnectApi : undefined;
}

/** A write waiting for `drain`: what is left of it, and how to settle it. */
interface PendingWrite {
  rest: Uint8Array;
  readonly total: number;
  readonly resolve: (n: number) => void;
  readonly reject: (e: unknown) => void;
}

/**
 * A `Bun.connect` socket as a `StreamConn` (an {@linkcode AcceptedConn}), with the guarantees of
 * `NodeSocketConn`:
 *
 * - `read()` copies queued chunks into the caller's buffer (several at once when they fit; what
 *   does not fit stays queued). From `READ_HIGH_WATER_BYTES` (256 KiB) queued bytes on
 *   the socket is paused (no reads from the kernel, so TCP flow control slows the peer down)
 *   until `read()` has taken the queue below half. `null` at the end of the stream (the peer's
 *   FIN; half-open: writing still works).
 * - `write()` resolves `data.byteLength` once the kernel took all of it (partial writes are
 *   continued on `drain`, in order), so a slow peer slows the writer down. `data` is not copied:
 *   the caller must not change it before the promise settles.
 * - `closeWrite()` half-closes (FIN after the pending writes) and resolves once sent, or at once
 *   when the connection is closed or failed. Never rejects.
 * - `close()` closes the socket at once (FIN, as `net.Socket.destroy()` and `Deno.TcpConn.close()`
 *   do); a pending `read()` or `write()` rejects with {@linkcode BadResource}. A second `close()`
 *   does nothing.
 *
 * Errors are worded as Deno words the same OS error ({@linkcode osError}): a reset is an `Error`
 * named `ConnectionReset` with message `Connection reset by peer (os error 104)`.
 *
 * Made only by {@linkcode dialBunSocket}.
 */
export class BunSocketConn implements AcceptedConn {
  #remoteAddr: NetAddr | undefined;
  #localAddr: NetAddr | undefined;
  #sock: BunTcpSocket | undefined;
  /** Received chunks; the socket is paused from 256 KiB queued on, resumed below half. */
  readonly #received = new ReceiveQueue({
    stop: () => this.#sock?.pause(),
    restart: () => {
      if (!this.#gone) this.#sock?.resume();
    },
  }, "the TCP connection is closed");
  /** The socket is gone (closed by the peer, a failure, or `close()`). */
  #gone = false;
  #closed = false;
  readonly #writes: PendingWrite[] = [];
  /** `closeWrite()` callers waiting for the pending writes before the FIN. */
  #shutdowns: (() => void)[] = [];
  #shutdown = false;

  /**
   * The peer's address, read from the socket on first use (each of Bun's address properties is
   * a `getpeername`/`getsockname` call, which a relayed dial never needs).
   */
  get remoteAddr(): NetAddr {
    return this.#remoteAddr ??= tcpAddr(this.#sock?.remoteAddress, this.#sock?.remotePort);
  }

  /** The local address, read from the socket on first use. */
  get localAddr(): NetAddr {
    return this.#localAddr ??= tcpAddr(this.#sock?.localAddress, this.#sock?.localPort);
  }

  /** Received bytes queued for `read()` (at most about 256 KiB plus one read's worth). */
  get queuedBytes(): number {
    return this.#received.queuedBytes;
  }

  /** The handlers of every socket this module dials. */
  static readonly handlers: BunSocketHandlers = {
    open: (sock) => sock.data.#open(sock),
    data: (sock, data) => sock.data.#data(data),
    drain: (sock) => sock.data.#drain(),
    end: (sock) => sock.data.#received.end(),
    close: (sock, error) => sock.data.#lost(error),
    error: (sock, error) => sock.data.#lost(error),
    connectError: () => {}, // the `Bun.connect` promise rejects with the same error
  };

  #open(sock: BunTcpSocket): void {
    this.#sock = sock;
    if (this.#closed) { // aborted while dialing
      sock.end();
      return;
    }
    sock.setNoDelay(true); // Bun 1.4.5 sets it too (strace); kept so no Bun version can Nagle
  }

  #data(chunk: Uint8Array): void {
    this.#received.push(chunk); // ignored once closed
  }

  /** The socket closed (`error` set when it failed): settles every pending operation. */
  #lost(error: Error | undefined): void {
    this.#gone = true;
    if (error !== undefined) this.#received.fail(osError(error));
    this.#received.end();
    if (this.#writes.length > 0) {
      const e = this.#received.error ?? brokenPipe();
      for (const w of this.#writes.splice(0)) w.reject(e);
    }
    this.#settleShutdowns();
  }

  #drain(): void {
    const sock = this.#sock;
    if (sock === undefined || this.#closed) return;
    for (let w = this.#writes[0]; w !== undefined; w = this.#writes[0]) {
      const n = sock.write(w.rest);
      if (n < 0) return this.#lost(undefined);
      if (n < w.rest.byteLength) {
        w.rest = w.rest.subarray(n);
        return;
      }
      this.#writes.shift();
      w.resolve(w.total);
    }
    if (this.#shutdowns.length > 0) {
      this.#sock?.shutdown();
      this.#settleShutdowns();
    }
  }

  /**
   * Reads into `buffer`; resolves the byte count, or `null` at the end of the stream.
   *
   * @throws {BadResource} once closed; the connection's error (e.g. `ConnectionReset`) when it
   * failed.
   */
  read(buffer: Uint8Array): Promise<number | null> {
    return this.#received.read(buffer);
  }

  /** Takes up to `max` queued bytes with `headroom` in front (see `StreamConn.readChunk`). */
  readChunk(headroom: number, max: number): Promise<Uint8Array | null> {
    return this.#received.readChunk(headroom, max);
  }

  /**
   * Writes all of `data`; resolves `data.byteLength` once the kernel took all of it. The caller
   * must not change `data` before then (it is not copied).
   *
   * @throws {BadResource} once closed; the connection's error (`ConnectionReset`, ...) when it
   * failed; `BrokenPipe` (`Broken pipe (os error 32)`) after `closeWrite()` or once the socket
   * is gone.
   */
  write(data: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(new BadResource("the TCP connection is closed"));
    if (this.#received.error !== undefined) return Promise.reject(this.#received.error);
    const sock = this.#sock;
    if (sock === undefined || this.#gone || this.#shutdown) return Promise.reject(brokenPipe());
    if (data.byteLength === 0) return Promise.resolve(0);
    let rest = data;
    if (this.#writes.length === 0) {
      const n = sock.write(data);
      if (n === data.byteLength) return Promise.resolve(n);
      if (n < 0) {
        this.#lost(undefined);
        return Promise.reject(this.#received.error ?? brokenPipe());
      }
      rest = data.subarray(n);
    }
    return new Promise<number>((resolve, reject) => {
      this.#writes.push({ rest, total: data.byteLength, resolve, reject });
    });
  }

  /**
   * Half-closes the write side (FIN after the pending writes); resolves once sent, or at once
   * when the connection is already closed or failed. Never rejects. Reading goes on.
   */
  closeWrite(): Promise<void> {
    if (this.#closed || this.#gone || this.#sock === undefined || this.#shutdown) {
      return Promise.resolve();
    }
    this.#shutdown = true;
    if (this.#writes.length === 0) {
      this.#sock.shutdown();
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => this.#shutdowns.push(resolve));
  }

  /** Sets TCP_NODELAY (default on). */
  setNoDelay(on = true): void {
    if (!this.#closed && !this.#gone) this.#sock?.setNoDelay(on);
  }

  /**
   * Closes the socket at once (a FIN; unsent writes are dropped; call `closeWrite()` first for a
   * clean end). Pending reads and writes reject with `BadResource`. A second call does nothing.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#received.close();
    if (this.#writes.length > 0) {
      const closed = new BadResource("the TCP connection is closed");
      for (const w of this.#writes.splice(0)) w.reject(closed);
    }
    this.#settleShutdowns();
    if (!this.#gone) this.#sock?.end(); // runs the close handler: settles nothing more
  }

  #settleShutdowns(): void {
    if (this.#shutdowns.length === 0) return;
    for (const done of this.#shutdowns.splice(0)) done();
  }
}

/** `EPIPE` as Deno words it: `BrokenPipe`, `Broken pipe (os error 32)`. */
function brokenPipe(): unknown {
  return osError(Object.assign(new Error("write EPIPE"), { code: "EPIPE" }));
}

/**
 * One `Bun.connect` dial: `result` settles with the connection or the error (at once with
 * `signal.reason` on abort); `done` settles once `Bun.connect` has (the slot's lifetime). A
 * socket that opens after an abort is closed at once.
 *
 * @throws {Error} (as `result`) named as Deno names the OS error (`ConnectionRefused`,
 * `Connection refused (os error 111)`, ...), `signal.reason` on abort, or `Bun.connect`'s own
 * error for a bad address or port.
 */
export function dialBunSocket(
  bun: BunConnectApi,
  ip: string,
  port: number,
  signal: AbortSignal,
): { result: Promise<BunSocketConn>; done: Promise<void> } {
  const conn = new BunSocketConn();
  let connecting: Promise<BunTcpSocket>;
  try {
    connecting = bun.connect({
      hostname: ip,
      port,
      allowHalfOpen: true,
      data: conn,
      socket: BunSocketConn.handlers,
    });
  } catch (e) {
    return { result: Promise.reject(osError(e)), done: Promise.resolve() };
  }
  const { promise: result, resolve, reject } = Promise.withResolvers<BunSocketConn>();
  let settled = false;
  const onAbort = (): void => {
    settled = true;
    conn.close(); // the socket, if it opens later, is closed in `open`
    reject(signal.reason);
  };
  signal.addEventListener("abort", onAbort, { once: true });
  const done = connecting.then(() => {
    signal.removeEventListener("abort", onAbort);
    if (settled) return;
    settled = true;
    resolve(conn);
  }, (e: unknown) => {
    signal.removeEventListener("abort", onAbort);
    if (settled) return;
    settled = true;
    conn.close();
    reject(osError(e));
  });
  return { result, done };
}
