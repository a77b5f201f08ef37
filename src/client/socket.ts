/**
 * {@linkcode WasmnetSocket}: a TCP or TLS connection through a wasmnet server, as a pair of
 * WHATWG streams (the shape of Cloudflare's `connect()` sockets and `Deno.Conn`).
 *
 * @module
 */
import { Lifecycle, noop } from "./_lifecycle.ts";
import { WasmnetError } from "./errors.ts";
import type { OpenTcpOptions, WasmnetClient } from "./wasmnet_client.ts";

/** What is known about an open socket. */
export interface SocketInfo {
  /**
   * The peer as `1.2.3.4:5678` or `[::1]:5678`. Set for accepted connections (reported by the
   * server); absent for outbound ones (the protocol does not report the dialled address).
   */
  remoteAddress?: string;
}

/**
 * A TCP/TLS socket through a wasmnet server. Created by {@linkcode WasmnetClient.openTcp} and by
 * {@linkcode WasmnetListener} for accepted connections; not constructed directly.
 *
 * - `readable`: received bytes. Backpressure is local only: the protocol has no flow control, so
 *   when you stop reading the server keeps sending and chunks queue here. The queue's high-water
 *   mark is `highWaterMark` (default 64 KiB); past `maxBufferedBytes` (default 16 MiB) unread
 *   bytes the socket is closed and `readable` errors with `EOVERFLOW`. Cancelling it closes the
 *   socket.
 * - `writable`: each write resolves once the bytes are handed to the WebSocket and its buffer is
 *   below the client's `highWaterMark` (else after `client.drain()`). `close()` on it flushes,
 *   then half-closes the socket ({@linkcode WasmnetSocket.shutdown}: the peer gets a FIN and
 *   `readable` goes on until the peer closes); on a server without the `shutdown` extension it
 *   only flushes, and the socket stays open until `socket.close()` or the peer closes.
 *   `abort()` closes the socket.
 * - {@linkcode WasmnetSocket.startTls} upgrades the socket to TLS in place: the same `readable`
 *   and `writable` then carry the TLS session's plaintext.
 * - `opened`: resolves with {@linkcode SocketInfo} when connected; rejects with a
 *   {@linkcode WasmnetError} (`EDENIED`, `ESERVER`, `ECLOSED`, `EWEBSOCKET`) or the abort reason.
 * - `closed`: resolves when the socket ends cleanly (peer closed, or `close()`); rejects with the
 *   error that ended it otherwise. Both promises are pre-handled: an unobserved rejection is not an
 *   unhandled rejection.
 *
 * @example
 * ```ts ignore
 * const sock = client.openTcp("127.0.0.1", 7, { signal: AbortSignal.timeout(5000) });
 * await sock.opened;
 * const writer = sock.writable.getWriter();
 * await writer.write(new TextEncoder().encode("ping"));
 * const { value } = await sock.readable.getReader().read();
 * await sock.close();
 * ```
 */
export class WasmnetSocket {
  /** Bytes received from the peer; ends when the socket closes cleanly. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to send to the peer. */
  readonly writable: WritableStream<Uint8Array>;
  /** Resolves when the socket is connected. */
  readonly opened: Promise<SocketInfo>;
  /** Resolves when the socket has closed cleanly; rejects with what ended it otherwise. */
  readonly closed: Promise<void>;

  readonly #client: WasmnetClient;
  readonly #id: number;
  readonly #maxBufferedBytes: number;
  readonly #highWaterMark: number;
  readonly #life: Lifecycle<SocketInfo>;
  #readCtl: ReadableStreamDefaultController<Uint8Array> | undefined;
  #writeCtl: WritableStreamDefaultController | undefined;
  #readableDone = false;
  /** The write in flight (the stream runs one at a time), for `shutdown` to wait for. */
  #lastWrite: Promise<void> = Promise.resolve();
  /** A `startTls` in progress: writes wait for it. */
  #upgrading: Promise<void> | undefined;
  #shutDown = false;

  /**
   * @internal Use {@linkcode WasmnetClient.openTcp}.
   * @param client the client carrying the socket.
   * @param id the socket's protocol id.
   * @param opening settles when the server reports the socket open or failed; `null` when it is
   * already open (accepted connections).
   * @param info known socket info (`remoteAddress` of accepted connections).
   * @param options stream options and abort signal.
   */
  constructor(
    client: WasmnetClient,
    id: number,
    opening: Promise<unknown> | null,
    info: SocketInfo,
    options: Pick<OpenTcpOptions, "signal" | "highWaterMark" | "maxBufferedBytes">,
  ) {
    this.#client = client;
    this.#id = id;
    this.#highWaterMark = options.highWaterMark ?? 64 * 1024;
    this.#maxBufferedBytes = Math.max(options.maxBufferedBytes ?? 16 * 1024 * 1024, 1);
    this.#life = new Lifecycle({
      id,
      closer: client,
      noun: "socket",
      signal: options.signal,
      open: opening === null,
      onClose: (): void => this.#endStreams(),
      onEnd: (): void => this.#endStreams(),
      onFail: (err): void => this.#errorStreams(err),
    });
    this.opened = this.#life.opened;
    this.closed = this.#life.closed;

    this.readable = new ReadableStream<Uint8Array>(
      {
        start: (c): void => {
          this.#readCtl = c;
        },
        cancel: (): void => {
          this.#readableDone = true;
          void this.close();
        },
      },
      new ByteLengthQueuingStrategy({ highWaterMark: this.#highWaterMark }),
    );
    this.writable = new WritableStream<Uint8Array>({
      start: (c): void => {
        this.#writeCtl = c;
      },
      write: (chunk): Promise<void> => this.#lastWrite = this.#write(chunk),
      close: (): Promise<void> => this.#finish(),
      abort: (reason): void => this.#life.abort(reason),
    });

    if (id !== 0) {
      client.onData(id, (data) => this.#onData(data));
      client.onError(id, (_msg, err) => this.#life.fail(err));
      client.onClose(id, () => this.#life.finish());
    }
    if (opening === null) this.#life.startOpen(info);
    else this.#life.start(opening, () => info);
  }

  /** The socket's protocol id (server-assigned for accepted connections). */
  get id(): number {
    return this.#id;
  }

  /**
   * Closes the socket (cancelling a pending dial): `readable` ends after the chunks already
   * queued, `writable` errors. Resolves as `closed`, once the server confirms.
   */
  close(): Promise<void> {
    return this.#life.close();
  }

  /**
   * Upgrades the socket to TLS (protocol extension `start_tls`, see
   * {@linkcode WasmnetClient.startTls}): once it resolves, `readable` and `writable` (the same
   * objects) carry the TLS session's plaintext. Writes made while it runs wait for it and are
   * sent through TLS; if it fails they fail too (nothing leaves in plaintext). Data that arrived
   * before the call stays in `readable`, in order.
   *
   * @param servername name for SNI and certificate verification; default the host the socket was
   * opened with.
   * @throws {WasmnetError} `EUNSUPPORTED` (the server lacks the extension; the socket stays open
   * in plaintext), `ESERVER` (handshake failed: the socket is closed and its streams error; or
   * refused: already TLS, an accepted connection), `ECLOSED`, `EWEBSOCKET`.
   */
  startTls(servername?: string): Promise<void> {
    const run = (async (): Promise<void> => {
      if (this.#life.state === "opening") await this.opened;
      this.#life.assertOpen();
      await this.#lastWrite.catch(noop);
      await this.#client.startTls(this.#id, servername);
    })();
    const upgrading = run.finally(() => {
      if (this.#upgrading === upgrading) this.#upgrading = undefined;
    });
    upgrading.catch(noop);
    this.#upgrading = upgrading;
    return run;
  }

  /**
   * Half-closes the socket (protocol extension `shutdown`, see {@linkcode WasmnetClient.shutdown}),
   * after the writes already made: the peer gets a FIN (close_notify first on TLS), `readable`
   * goes on until the peer closes, and later writes fail with `ECLOSED`. `writable.close()` does
   * the same. On a server without the extension the socket stays fully open.
   */
  shutdown(): void {
    void this.#shutdown().catch(noop);
  }

  /** Closes the socket and waits until it is closed (errors ignored). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close().catch(noop);
  }

  async #write(chunk: Uint8Array): Promise<void> {
    // A write made while `startTls` runs waits for it (one made before does not: the upgrade
    // waits for that one).
    const upgrading = this.#upgrading;
    if (this.#life.state === "opening") await this.opened;
    if (upgrading) await upgrading;
    this.#life.assertOpen();
    if (this.#shutDown) {
      throw new WasmnetError("ECLOSED", "socket is shut down for writing", this.#id);
    }
    if (!this.#client.send(this.#id, chunk)) await this.#client.drain();
  }

  /** `writable.close()`: flush, then half-close. */
  async #finish(): Promise<void> {
    await this.#shutdown();
    await this.#client.drain();
  }

  async #shutdown(): Promise<void> {
    if (this.#shutDown) return;
    this.#shutDown = true;
    if (this.#life.state === "opening") await this.opened;
    await this.#lastWrite.catch(noop);
    if (this.#upgrading) await this.#upgrading.catch(noop);
    if (this.#life.state !== "open") return;
    this.#client.shutdown(this.#id);
  }

  #onData(data: Uint8Array): void {
    if (this.#readableDone || !this.#readCtl) return;
    this.#readCtl.enqueue(data);
    const queued = this.#highWaterMark - (this.#readCtl.desiredSize ?? 0);
    if (queued > this.#maxBufferedBytes) {
      const err = new WasmnetError(
        "EOVERFLOW",
        `more than ${this.#maxBufferedBytes} unread bytes; socket closed`,
        this.#id,
      );
      try {
        this.#client.close(this.#id);
      } catch { /* WebSocket already closed */ }
      this.#life.fail(err);
    }
  }

  #closeReadable(): void {
    if (this.#readableDone) return;
    this.#readableDone = true;
    try {
      this.#readCtl?.close();
    } catch { /* already closed or errored */ }
  }

  #errorWritable(err: unknown): void {
    try {
      this.#writeCtl?.error(err);
    } catch { /* already errored */ }
  }

  /** Clean end or `close()`: `readable` ends after queued chunks, `writable` errors. */
  #endStreams(): void {
    this.#closeReadable();
    this.#errorWritable(new WasmnetError("ECLOSED", "socket closed", this.#id));
  }

  /** Failed end: both streams error with `err`. */
  #errorStreams(err: unknown): void {
    if (!this.#readableDone) {
      this.#readableDone = true;
      try {
        this.#readCtl?.error(err);
      } catch { /* already closed */ }
    }
    this.#errorWritable(err);
  }
}
