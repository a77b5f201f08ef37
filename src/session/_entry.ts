/**
 * The base of every session table entry: the once-only end path.
 *
 * @module
 */
import type { Ending, EntryInfo, SessionContext } from "./types.ts";
import type { SocketKind } from "./metrics.ts";

/**
 * The abort reason of every ended entry: one shared value, because building a `DOMException` per
 * ended socket showed up in connect+close profiles. Nothing inspects it beyond "aborted".
 */
const ENDED: Error = new Error("the socket has ended");

/**
 * A socket, listener or pending lookup in a session's table. Whatever ends it — the client's
 * `close`, the peer, an error, the policy, the session closing — goes through
 * {@linkcode Entry.end}, which runs once: it aborts the entry's signal (cancelling dials, pumps,
 * lookups and limiter waits), lets the subclass release its resources, then has the session free
 * the id and the `max_connections` slot and send the one terminal event.
 */
export abstract class Entry implements EntryInfo {
  /** What the entry is (the discriminant of the session's table union). */
  abstract readonly kind: "stream" | "udp" | "listener" | "lookup" | "ping";
  /** Whether the entry holds a `max_connections` slot; cleared exactly once on release. */
  counted: boolean;
  /** Destination or local address, for logs (the resolved `ip:port` once dialled). */
  dest: string;
  /** The request that made it (the session sets it; see {@linkcode EntryInfo.op}). */
  op: string;
  /** The destination as the client sent it, for logs. */
  readonly requested: string;
  /** What it is as an open socket, set when it opens. */
  socketKind: SocketKind | undefined = undefined;
  /** When it opened, ms since the epoch (0 before). */
  openedAt = 0;
  /** Payload bytes client → network. */
  bytesUp = 0;
  /** Payload bytes network → client. */
  bytesDown = 0;
  /** The owning session's services. */
  protected readonly ctx: SessionContext;
  readonly #abort = new AbortController();

  /**
   * @param id the id the entry is registered under.
   * @param ctx the owning session's services.
   * @param dest destination or local address, for logs.
   * @param counted whether the entry takes a `max_connections` slot.
   */
  constructor(readonly id: number, ctx: SessionContext, dest: string, counted: boolean) {
    this.ctx = ctx;
    this.dest = dest;
    this.requested = dest;
    this.op = "";
    this.counted = counted;
  }

  /** True until the entry ended. */
  get live(): boolean {
    return !this.#abort.signal.aborted;
  }

  /** Aborts when the entry ends: every wait of the entry listens to it. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** The client's `close`. */
  abstract close(): void;

  /**
   * Ends the entry once and sends the event for `ending` (none when undefined: the session is
   * ending). Later calls do nothing.
   */
  end(ending: Ending | undefined): void {
    if (!this.live) return;
    this.#abort.abort(ENDED);
    this.teardown();
    this.ctx.release(this, ending);
  }

  /** Releases the entry's resources (sockets, timers, queues); called once, from `end`. */
  protected abstract teardown(): void;
}
