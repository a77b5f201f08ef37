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
 *   below the client's `highWaterMark` (else after `client.drain()`). `close()` on it only flushes:
 *   the protocol has no half-close, so the socket stays open until `socket.close()` or the peer
 *   closes. `abort()` closes the socket.
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
      write: (chunk): Promise<void> => this.#write(chunk),
      close: (): Promise<void> => this.#flush(),
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

  /** Closes the socket and waits until it is closed (errors ignored). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close().catch(noop);
  }

  async #write(chunk: Uint8Array): Promise<void> {
    if (this.#life.state === "opening") await this.opened;
    this.#life.assertOpen();
    if (!this.#client.send(this.#id, chunk)) await this.#client.drain();
  }

  async #flush(): Promise<void> {
    if (this.#life.state === "opening") await this.opened;
    await this.#client.drain();
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
