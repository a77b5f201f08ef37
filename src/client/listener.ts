/**
 * {@linkcode WasmnetListener}: a TCP listener on a wasmnet server, as an async iterable of
 * accepted {@linkcode WasmnetSocket}s.
 *
 * @module
 */
import { AsyncQueue } from "./_queue.ts";
import { WasmnetError } from "./errors.ts";
import { WasmnetSocket } from "./socket.ts";
import type { OpenListenerOptions, WasmnetClient } from "./wasmnet_client.ts";

/** What is known about an open listener. */
export interface ListenerInfo {
  /** The bound port on the server (the actual one when 0 was asked). */
  port: number;
}

function noop(): void {}

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
  readonly #signal: AbortSignal | undefined;
  readonly #socketOptions: NonNullable<OpenListenerOptions["socket"]>;
  #state: "opening" | "open" | "closing" | "closed" = "opening";
  #resolveOpened: (info: ListenerInfo) => void = noop;
  #rejectOpened: (e: unknown) => void = noop;
  #resolveClosed: () => void = noop;
  #rejectClosed: (e: unknown) => void = noop;
  readonly #onAbort = (): void => this.#abort(this.#signal?.reason);

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
    this.#signal = options.signal;
    this.#socketOptions = options.socket ?? {};
    this.opened = new Promise((resolve, reject) => {
      this.#resolveOpened = resolve;
      this.#rejectOpened = reject;
    });
    this.closed = new Promise((resolve, reject) => {
      this.#resolveClosed = resolve;
      this.#rejectClosed = reject;
    });
    this.opened.catch(noop);
    this.closed.catch(noop);
    if (id !== 0) {
      client.onAccept(id, (connId, remote) => this.#accept(connId, remote));
      client.onError(id, (_msg, err) => this.#fail(err));
      client.onClose(id, () => this.#finish());
    }
    bound.then(
      (port) => {
        if (this.#state !== "opening") return;
        this.#state = "open";
        this.#resolveOpened({ port });
      },
      (e: unknown) => {
        if (this.#state === "closing") this.#finish();
        else this.#fail(e);
      },
    );
    if (this.#signal) {
      if (this.#signal.aborted) this.#abort(this.#signal.reason);
      else this.#signal.addEventListener("abort", this.#onAbort, { once: true });
    }
  }

  /** The listener's protocol id. */
  get id(): number {
    return this.#id;
  }

  /**
   * Closes the listener and the accepted sockets not yet taken from it. Resolves as `closed`.
   */
  close(): Promise<void> {
    if (this.#state === "closed" || this.#state === "closing") return this.closed;
    const wasOpening = this.#state === "opening";
    this.#state = "closing";
    this.#queue.close();
    this.#closeQueued();
    if (wasOpening) this.#rejectOpened(new WasmnetError("ECLOSED", "listener closed", this.#id));
    try {
      this.#client.close(this.#id);
    } catch {
      this.#finish();
    }
    return this.closed;
  }

  /** Closes the listener and waits until it is closed (errors ignored). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close().catch(noop);
  }

  /** Iterates accepted sockets; `return()` (breaking out of `for await`) closes the listener. */
  [Symbol.asyncIterator](): AsyncIterator<WasmnetSocket, undefined> {
    return {
      next: (): Promise<IteratorResult<WasmnetSocket, undefined>> => this.#queue.next(),
      return: async (): Promise<IteratorResult<WasmnetSocket, undefined>> => {
        await this.close().catch(noop);
        return { value: undefined, done: true };
      },
    };
  }

  #accept(connId: number, remote: string): void {
    const sock = new WasmnetSocket(this.#client, connId, null, { remoteAddress: remote }, {
      ...this.#socketOptions,
    });
    if (this.#state === "closing" || this.#state === "closed" || !this.#queue.push(sock)) {
      this.#client._debug(`listener ${this.#id}: not accepting, closing connection ${connId}`);
      void sock.close().catch(noop);
    }
  }

  #closeQueued(): void {
    for (const sock of this.#queue.take()) void sock.close().catch(noop);
  }

  #abort(reason: unknown): void {
    if (this.#state === "closed") return;
    if (this.#state !== "closing") {
      try {
        this.#client.close(this.#id);
      } catch { /* WebSocket already closed */ }
    }
    this.#fail(reason);
  }

  #finish(): void {
    if (this.#state === "closed") return;
    const wasOpening = this.#state === "opening";
    this.#state = "closed";
    this.#signal?.removeEventListener("abort", this.#onAbort);
    this.#queue.close();
    if (wasOpening) this.#rejectOpened(new WasmnetError("ECLOSED", "listener closed", this.#id));
    this.#resolveClosed();
  }

  #fail(err: unknown): void {
    if (this.#state === "closed") return;
    const wasClosing = this.#state === "closing";
    this.#state = "closed";
    this.#signal?.removeEventListener("abort", this.#onAbort);
    this.#closeQueued();
    this.#queue.fail(err);
    this.#rejectOpened(err);
    if (wasClosing) this.#resolveClosed();
    else this.#rejectClosed(err);
  }
}
