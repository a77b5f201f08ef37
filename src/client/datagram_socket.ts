/**
 * {@linkcode WasmnetDatagramSocket}: a UDP socket on a wasmnet server, as an async iterable of
 * datagrams.
 *
 * @module
 */
import { Lifecycle, noop } from "./_lifecycle.ts";
import { AsyncQueue, closingIterator } from "./_queue.ts";
import type { OpenUdpOptions, SendData, WasmnetClient } from "./wasmnet_client.ts";

/** A received datagram and its sender. */
export interface Datagram {
  /** The payload. */
  data: Uint8Array;
  /** The sender's IP address, e.g. `192.0.2.1` or `2001:db8::1`. */
  addr: string;
  /** The sender's port. */
  port: number;
}

/** What is known about an open UDP socket. */
export interface DatagramInfo {
  /** The socket's local port on the server. */
  localPort: number;
}

/**
 * A UDP socket through a wasmnet server, created by {@linkcode WasmnetClient.openUdp}. Its
 * default destination (for `send`) is the `addr:port` it was opened with.
 *
 * Iterate it (`for await (const { data, addr, port } of sock)`) to receive datagrams; iteration
 * ends when the socket closes and throws if it fails. Unread datagrams queue up to
 * `maxQueuedDatagrams` (default 1024); further ones are dropped (UDP semantics) and logged to the
 * client's `debug` logger. Breaking out of the loop closes the socket.
 *
 * `opened` resolves with {@linkcode DatagramInfo}; `opened`, `closed`, `send` and `sendTo` reject
 * as {@linkcode WasmnetSocket}'s do.
 *
 * @example
 * ```ts ignore
 * await using sock = client.openUdp("192.0.2.53", 53);
 * await sock.send(query);
 * for await (const { data } of sock) { handle(data); break; }
 * ```
 */
export class WasmnetDatagramSocket implements AsyncIterable<Datagram> {
  /** Resolves when the server has bound the socket. */
  readonly opened: Promise<DatagramInfo>;
  /** Resolves when the socket has closed cleanly; rejects with what ended it otherwise. */
  readonly closed: Promise<void>;

  readonly #client: WasmnetClient;
  readonly #id: number;
  readonly #addr: string;
  readonly #port: number;
  readonly #queue: AsyncQueue<Datagram>;
  readonly #life: Lifecycle<DatagramInfo>;
  #dropped = 0;

  /**
   * @internal Use {@linkcode WasmnetClient.openUdp}.
   * @param opening settles with the server-side local port (`udp_bound`) or the failure.
   */
  constructor(
    client: WasmnetClient,
    id: number,
    opening: Promise<number>,
    addr: string,
    port: number,
    options: OpenUdpOptions,
  ) {
    this.#client = client;
    this.#id = id;
    this.#addr = addr;
    this.#port = port;
    this.#queue = new AsyncQueue(Math.max(options.maxQueuedDatagrams ?? 1024, 1));
    this.#life = new Lifecycle({
      id,
      closer: client,
      noun: "socket",
      signal: options.signal,
      onClose: (): void => this.#queue.close(),
      onEnd: (): void => this.#queue.close(),
      onFail: (err): void => this.#queue.fail(err),
    });
    this.opened = this.#life.opened;
    this.closed = this.#life.closed;
    if (id !== 0) {
      client.onDataFrom(
        id,
        (data, from, fromPort) => this.#push({ data, addr: from, port: fromPort }),
      );
      client.onData(id, (data) => this.#push({ data, addr: this.#addr, port: this.#port }));
      client.onError(id, (_msg, err) => this.#life.fail(err));
      client.onClose(id, () => this.#life.finish());
    }
    this.#life.start(opening, (localPort) => ({ localPort }));
  }

  /** The socket's protocol id. */
  get id(): number {
    return this.#id;
  }

  /**
   * Sends a datagram to the default destination. Resolves once handed to the WebSocket with its
   * buffer below the client's high-water mark.
   *
   * @throws {WasmnetError} `ECLOSED` when the socket is closed, or why it failed to open.
   */
  async send(data: SendData): Promise<void> {
    if (this.#life.state === "opening") await this.opened;
    this.#life.assertOpen();
    if (!this.#client.send(this.#id, data)) await this.#client.drain();
  }

  /**
   * Sends a datagram to `addr:port` (an IP address or hostname, subject to the server's policy;
   * a refusal arrives as an error that closes the socket on servers that report it).
   *
   * @throws {WasmnetError} as {@linkcode WasmnetDatagramSocket.send}.
   */
  async sendTo(addr: string, port: number, data: SendData): Promise<void> {
    if (this.#life.state === "opening") await this.opened;
    this.#life.assertOpen();
    if (!this.#client.sendTo(this.#id, addr, port, data)) await this.#client.drain();
  }

  /** Closes the socket; iteration ends after queued datagrams. Resolves as `closed`. */
  close(): Promise<void> {
    return this.#life.close();
  }

  /** Closes the socket and waits until it is closed (errors ignored). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close().catch(noop);
  }

  /** Iterates received datagrams; `return()` (breaking out of `for await`) closes the socket. */
  [Symbol.asyncIterator](): AsyncIterator<Datagram, undefined> {
    return closingIterator(this.#queue, () => this.close());
  }

  #push(d: Datagram): void {
    if (this.#life.state === "closed" || this.#life.state === "closing") return;
    if (!this.#queue.push(d)) {
      this.#dropped++;
      this.#client._debug(`udp id ${this.#id}: queue full, datagram dropped (${this.#dropped})`);
    }
  }
}
