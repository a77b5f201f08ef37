/**
 * Table entries that carry no data: an inbound TCP listener (`bind`, `listen`; events
 * `listening`, `accepted`) and a pending `resolve` lookup (event `resolved`).
 *
 * `bind` opens the listener and answers `listening` with the real port (port 0 picks one);
 * accepting starts at once, as in wasmnet 0.1.3. `listen` answers `listening` again with the real
 * port (wasmnet sent port 0); its backlog is a documented no-op, because Deno does not expose the
 * listen backlog.
 *
 * @module
 */
import { formatHostPort } from "../protocol/mod.ts";
import type { Policy, Target } from "../policy/mod.ts";
import type { StreamConn, StreamListener } from "../transport/mod.ts";
import { CLOSED, deny, fail, type SessionContext } from "./types.ts";
import { describe, WireError } from "./wire_errors.ts";
import { NO_ADDRESSES, withTimeout } from "./resolve.ts";
import { Entry } from "./_entry.ts";

/** Called for each accepted connection with its remote `host:port`. */
export type AcceptHandler = (listenerId: number, conn: StreamConn, remote: string) => void;

/** A client's TCP listener on the server. */
export class ListenerEntry extends Entry {
  /** Kind tag for the socket table. */
  readonly kind = "listener";
  /** Connections accepted. */
  accepted = 0;

  #listener: StreamListener | undefined;
  readonly #opening: Promise<StreamListener> | undefined;
  readonly #onAccept: AcceptHandler;
  /** `listen` requests that arrived before the listener was bound (answered once it is). */
  #earlyListens = 0;

  /**
   * @param id client id of the listener.
   * @param ctx the owning session's services.
   * @param listener the open listener, or the promise of it (a transport whose listen completes
   * asynchronously, such as `node:net`'s).
   * @param onAccept registers each accepted connection with the session.
   * @param dest the requested `ip:port`, for logs and the `bind ... failed` message.
   */
  constructor(
    id: number,
    ctx: SessionContext,
    listener: StreamListener | Promise<StreamListener>,
    onAccept: AcceptHandler,
    dest: string,
  ) {
    super(id, ctx, dest, true);
    if (listener instanceof Promise) this.#opening = listener;
    else this.#bound(listener);
    this.#onAccept = onAccept;
  }

  /** The bound port (0 until the listener is bound). */
  get port(): number {
    return this.#listener?.addr.port ?? 0;
  }

  /**
   * Answers `listening` with the bound port and starts the accept loop: at once when the listener
   * is already bound, else once it is (or ends with `bind to IP:PORT failed: ...`).
   */
  start(): void {
    this.socketKind = "listener";
    this.ctx.opened(this);
    if (this.#listener !== undefined) return this.#listening(this.#listener);
    this.ctx.track((this.#opening ?? Promise.reject(new Error("no listener"))).then(
      (listener) => {
        if (!this.live) return void closeListener(listener); // ended while binding
        this.#bound(listener);
        this.#listening(listener);
      },
      (e: unknown) => this.end(fail(WireError.bindFailed(this.dest, describe(e)))),
    ));
  }

  /** The client's `listen`: answers `listening` again (now, or once the listener is bound). */
  listen(): void {
    if (this.#listener === undefined) this.#earlyListens++;
    else this.ctx.emit({ ev: "listening", id: this.id, port: this.port });
  }

  /** The accept loop, once listening. */
  #loop: Promise<void> | undefined;
  /** Whether the client's `close` is waiting for the accept loop to end. */
  #closing = false;

  #bound(listener: StreamListener): void {
    this.#listener = listener;
    const addr = listener.addr;
    this.dest = formatHostPort(addr.hostname, addr.port);
  }

  #listening(listener: StreamListener): void {
    for (let i = 0; i <= this.#earlyListens; i++) {
      this.ctx.emit({ ev: "listening", id: this.id, port: this.port });
    }
    this.#earlyListens = 0;
    this.#loop = this.#acceptLoop(listener);
    this.ctx.track(this.#loop);
  }

  async #acceptLoop(listener: StreamListener): Promise<void> {
    while (this.live) {
      let conn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (this.live && !this.#closing) this.end(fail(WireError.ioFailed(describe(e))));
        return;
      }
      if (!this.live || this.#closing) {
        conn.close();
        return;
      }
      try {
        conn.setNoDelay?.(true);
      } catch {
        // not a TCP connection
      }
      this.accepted++;
      const remote = conn.remoteAddr;
      this.#onAccept(this.id, conn, formatHostPort(remote.hostname, remote.port));
    }
  }

  /**
   * The client's `close`: stops accepting and answers `closed` once the listening socket is really
   * closed — after the pending `accept` has returned, because a runtime may keep the socket open
   * until its pending accept is cancelled (Deno 2.9.6 until the next turn of its event loop), and a
   * connect in that gap would still succeed after `closed`. A second `close` meanwhile gets
   * `socket N is closing`. Accepted sockets stay open.
   */
  close(): void {
    if (this.#closing) return this.ctx.report(this.id, fail(WireError.closing(this.id)));
    const listener = this.#listener;
    const loop = this.#loop;
    if (listener === undefined || loop === undefined) return this.end(CLOSED);
    this.#closing = true;
    closeListener(listener);
    void loop.finally(() => this.end(CLOSED));
  }

  /** Closes the listening socket. */
  protected teardown(): void {
    if (this.#listener) closeListener(this.#listener);
  }
}

function closeListener(listener: StreamListener): void {
  try {
    listener.close();
  } catch {
    // already closed
  }
}

/** A pending `resolve`: registered so its id counts as live and `close` can cancel it. */
export class LookupEntry extends Entry {
  /** Kind tag for the socket table. */
  readonly kind = "lookup";

  /** @param id client id. @param ctx session services. @param name the name, for logs. */
  constructor(id: number, ctx: SessionContext, name: string) {
    super(id, ctx, name, false);
  }

  /**
   * Looks `target` up (A and AAAA) within `policy.connectionTimeoutMs` and ends with `resolved`
   * holding the answers the policy lets the client see ({@linkcode Policy.checkLookupAnswer}),
   * `denied` when it lets none through, or `error` when the lookup fails or times out. The name
   * itself must already have passed {@linkcode Policy.checkLookup}. Never throws.
   */
  run(target: Target, policy: Policy): Promise<void> {
    const label = target.kind === "name" ? target.name : target.ip;
    return withTimeout(this.signal, policy.connectionTimeoutMs, async (signal, timedOut) => {
      let addrs: string[];
      try {
        addrs = target.kind === "ip" ? [target.ip] : await this.ctx.transport.lookup(label, signal);
      } catch (e) {
        return this.end(
          fail(WireError.lookupFailed(label, timedOut() ? "timed out" : describe(e))),
        );
      }
      if (addrs.length === 0) return this.end(fail(WireError.lookupFailed(label, NO_ADDRESSES)));
      const denied: { reason: string; rule: string }[] = [];
      const allowed = addrs.filter((ip) => {
        const v = policy.checkLookupAnswer(label, ip);
        if (!v.allowed) denied.push(v);
        return v.allowed;
      });
      if (allowed.length > 0) return this.end({ ev: "resolved", addrs: allowed });
      this.end(deny(denied[0]?.reason ?? `no allowed addresses for ${label}`, denied[0]?.rule));
    });
  }

  /** The client's `close`: cancels the lookup and answers `closed`. */
  close(): void {
    this.end(CLOSED);
  }

  /** Nothing to release: ending aborts the lookup's signal. */
  protected teardown(): void {}
}
