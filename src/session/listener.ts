/**
 * An inbound TCP listener (`bind`, `listen`; events `listening`, `accepted`).
 *
 * `bind` opens the listener and answers `listening` with the real port (port 0 picks one);
 * accepting starts at once, as in wasmnet 0.1.3. `listen` answers `listening` again with the real
 * port (wasmnet sent port 0); its backlog is a documented no-op, because Deno does not expose the
 * listen backlog.
 *
 * @module
 */
import type { WireEvent } from "../protocol/mod.ts";
import type { StreamConn, StreamListener } from "../transport/mod.ts";
import type { SessionContext, SocketEntry } from "./types.ts";
import { describe, WireError } from "./wire_errors.ts";

/** Called for each accepted connection; returns false when the session refused it. */
export type AcceptHandler = (listenerId: number, conn: StreamConn, remote: string) => void;

/** A client's TCP listener on the server. */
export class ListenerEntry implements SocketEntry {
  /** Kind tag for the socket table. */
  readonly kind = "listener";
  /** Holds a `max_connections` slot until released. */
  counted = true;
  /** Local `ip:port`. */
  dest: string;
  /** Unused for listeners (accepted sockets count their own bytes). */
  bytesUp = 0;
  /** Unused for listeners. */
  bytesDown = 0;
  /** Connections accepted. */
  accepted = 0;

  readonly #ctx: SessionContext;
  readonly #listener: StreamListener;
  readonly #onAccept: AcceptHandler;
  #live = true;

  /**
   * @param id client id of the listener.
   * @param ctx the owning session's services.
   * @param listener the open listener.
   * @param onAccept registers each accepted connection with the session.
   */
  constructor(
    readonly id: number,
    ctx: SessionContext,
    listener: StreamListener,
    onAccept: AcceptHandler,
  ) {
    this.#ctx = ctx;
    this.#listener = listener;
    this.#onAccept = onAccept;
    const addr = listener.addr as Deno.NetAddr;
    this.dest = addr.hostname.includes(":")
      ? `[${addr.hostname}]:${addr.port}`
      : `${addr.hostname}:${addr.port}`;
  }

  /** The bound port. */
  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  /** Starts the accept loop. */
  start(): void {
    this.#ctx.opened(this);
    this.#ctx.track(this.#acceptLoop());
  }

  async #acceptLoop(): Promise<void> {
    while (this.#live) {
      let conn;
      try {
        conn = await this.#listener.accept();
      } catch (e) {
        if (!this.#live) return;
        return this.finish({ ev: "error", id: this.id, msg: WireError.ioFailed(describe(e)) });
      }
      if (!this.#live) {
        conn.close();
        return;
      }
      try {
        conn.setNoDelay?.(true);
      } catch {
        // not a TCP connection
      }
      this.accepted++;
      const remote = conn.remoteAddr as Deno.NetAddr;
      const text = remote.hostname.includes(":")
        ? `[${remote.hostname}]:${remote.port}`
        : `${remote.hostname}:${remote.port}`;
      this.#onAccept(this.id, conn, text);
    }
  }

  /** A listener carries no data. */
  send(): void {
    this.#ctx.emit({
      ev: "error",
      id: this.id,
      msg: WireError.wrongKind("send", this.id, "listener"),
    });
  }

  /** The client's `close`: stops accepting and answers `closed`. Accepted sockets stay open. */
  close(): void {
    this.finish({ ev: "closed", id: this.id });
  }

  /** Ends the listener once, emitting `ev` unless undefined. */
  finish(ev: WireEvent | undefined): void {
    if (!this.#live) return;
    this.#live = false;
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
    this.#ctx.release(this, ev);
  }
}

/** A pending `resolve`: registered so its id counts as live and `close` can cancel it. */
export class LookupEntry implements SocketEntry {
  /** Kind tag for the socket table. */
  readonly kind = "lookup";
  /** Lookups do not take a `max_connections` slot. */
  counted = false;
  /** The name being resolved. */
  dest: string;
  /** Unused. */
  bytesUp = 0;
  /** Unused. */
  bytesDown = 0;
  /** Aborts the lookup. */
  readonly abort = new AbortController();
  readonly #ctx: SessionContext;
  #live = true;

  /** @param id client id. @param ctx session services. @param name the name. */
  constructor(readonly id: number, ctx: SessionContext, name: string) {
    this.#ctx = ctx;
    this.dest = name;
  }

  /** True until answered or cancelled. */
  get live(): boolean {
    return this.#live;
  }

  /** A lookup carries no data. */
  send(): void {
    this.#ctx.emit({
      ev: "error",
      id: this.id,
      msg: WireError.wrongKind("send", this.id, "lookup"),
    });
  }

  /** The client's `close`: cancels the lookup and answers `closed`. */
  close(): void {
    this.finish({ ev: "closed", id: this.id });
  }

  /** Ends the lookup once, emitting `ev` (its answer) unless undefined. */
  finish(ev: WireEvent | undefined): void {
    if (!this.#live) return;
    this.#live = false;
    this.abort.abort();
    this.#ctx.release(this, ev);
  }
}
