/**
 * {@linkcode WasmnetListener}: a TCP listener on a wasmnet server, as an async iterable of
 * accepted {@linkcode WasmnetSocket}s.
 *
 * @module
 */
import { Lifecycle, noop } from "./_lifecycle.ts";
import { AsyncQueue, closingIterator } from "./_queue.ts";
import { WasmnetSocket } from "./socket.ts";
import type { OpenListenerOptions, WasmnetClient } from "./wasmnet_client.ts";

/** What is known about an open listener. */
export interface ListenerInfo {
  /** The bound port on the server (the actual one when 0 was asked). */
  port: number;
}

/**
 * A TCP listener on a wasmnet server, created by {@linkcode WasmnetClient.openListener}.
 *
 * Iterate it (`for await (const conn of listener)`) to get accepted sockets; each is already
 * open, with `opened` resolving to `{ remoteAddress }`. Iteration ends when the listener closes
 * and throws if it fails. At most `backlog` accepted sockets wait unread; further connections are
 * closed at once (and logged to the client's `debug` logger). Breaking out of the loop, or
 * `close()`, closes the listener and every accepted socket not yet taken (sockets already taken
 * stay open).
 *
 * @example
 * ```ts ignore
 * await using listener = client.openListener("0.0.0.0", 0);
 * const { port } = await listener.opened;
 * for await (const conn of listener) void conn.readable.pipeTo(conn.writable); // echo
 * ```
 */
export class WasmnetListener implements AsyncIterable<WasmnetSocket> {
  /** Resolves with the bound port once listening. */
  readonly opened: Promise<ListenerInfo>;
  /** Resolves when the listener has closed cleanly; rejects with what ended it otherwise. */
  readonly closed: Promise<void>;

  readonly #client: WasmnetClient;
  readonly #id: number;
  readonly #queue: AsyncQueue<WasmnetSocket>;
  readonly #socketOptions: NonNullable<OpenListenerOptions["socket"]>;
  readonly #life: Lifecycle<ListenerInfo>;

  /**
   * @internal Use {@linkcode WasmnetClient.openListener}.
   * @param bound settles with the bound port, or the failure.
   */
  constructor(
    client: WasmnetClient,
    id: number,
    bound: Promise<number>,
    backlog: number,
    options: OpenListenerOptions,
  ) {
    this.#client = client;
    this.#id = id;
    this.#queue = new AsyncQueue(Math.max(backlog, 1));
    this.#socketOptions = options.socket ?? {};
    this.#life = new Lifecycle({
      id,
      closer: client,
      noun: "listener",
      signal: options.signal,
      onClose: (): void => {
        this.#queue.close();
        this.#closeQueued();
      },
      onEnd: (): void => this.#queue.close(),
      onFail: (err): void => {
        this.#closeQueued();
        this.#queue.fail(err);
      },
    });
    this.opened = this.#life.opened;
    this.closed = this.#life.closed;
    if (id !== 0) {
      client.onAccept(id, (connId, remote) => this.#accept(connId, remote));
      client.onError(id, (_msg, err) => this.#life.fail(err));
      client.onClose(id, () => this.#life.finish());
    }
    this.#life.start(bound, (port) => ({ port }));
  }

  /** The listener's protocol id. */
  get id(): number {
    return this.#id;
  }

  /**
   * Closes the listener and the accepted sockets not yet taken from it. Resolves as `closed`.
   */
  close(): Promise<void> {
    return this.#life.close();
  }

  /** Closes the listener and waits until it is closed (errors ignored). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close().catch(noop);
  }

  /** Iterates accepted sockets; `return()` (breaking out of `for await`) closes the listener. */
  [Symbol.asyncIterator](): AsyncIterator<WasmnetSocket, undefined> {
    return closingIterator(this.#queue, () => this.close());
  }

  #accept(connId: number, remote: string): void {
    const sock = new WasmnetSocket(this.#client, connId, null, { remoteAddress: remote }, {
      ...this.#socketOptions,
    });
    const state = this.#life.state;
    if (state === "closing" || state === "closed" || !this.#queue.push(sock)) {
      this.#client._debug(`listener ${this.#id}: not accepting, closing connection ${connId}`);
      void sock.close().catch(noop);
    }
  }

  #closeQueued(): void {
    for (const sock of this.#queue.take()) void sock.close().catch(noop);
  }
}
