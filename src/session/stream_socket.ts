/**
 * One proxied stream socket (TCP, TLS, or an accepted inbound connection): dial under the policy,
 * then two pumps that fail
 * independently — client → upstream through a bounded queue with awaited writes, and
 * upstream → client with backpressure from the WebSocket.
 *
 * @module
 */
import { HEADER_BYTES, type WireEvent } from "../protocol/mod.ts";
import type { Policy, Target } from "../policy/mod.ts";
import type { StreamConn } from "../transport/mod.ts";
import { describe, WireError } from "./wire_errors.ts";
import { hostPort, resolveChecked, withTimeout } from "./resolve.ts";
import type { SessionContext, SocketEntry } from "./types.ts";

const FIRST_READ_BYTES = 16 * 1024;
/** Largest piece a bandwidth-limited pump reads or writes at once, so sockets take turns. */
const LIMITED_PIECE_BYTES = 16 * 1024;

/**
 * A client's TCP or TLS socket through the proxy, or an accepted inbound connection. Emits
 * exactly one terminal event.
 */
export class StreamSocket implements SocketEntry {
  /** Kind tag for the socket table. */
  readonly kind = "stream";
  /** Whether this socket holds a `max_connections` slot. Cleared exactly once on release. */
  counted = true;
  /** Destination as `ip:port` once dialled, the requested `addr:port` before. */
  dest: string;
  /** Payload bytes client → upstream. */
  bytesUp = 0;
  /** Payload bytes upstream → client. */
  bytesDown = 0;
  /** Bytes queued for upstream and not yet written. */
  queuedBytes = 0;

  readonly #ctx: SessionContext;
  readonly #abort = new AbortController();
  #state: "dialing" | "open" | "closing" | "done" = "dialing";
  #conn: StreamConn | undefined;
  #queue: Uint8Array[] = [];
  #wakeWriter: (() => void) | undefined;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  #tls = false;
  readonly #announce: boolean;

  /**
   * @param id client id of the socket.
   * @param ctx the owning session's services.
   * @param dest `addr:port` as requested, for logs until the socket is dialled.
   * @param announce emit `connected` when open (false for accepted connections, which are
   * announced by `accepted`).
   */
  constructor(readonly id: number, ctx: SessionContext, dest: string, announce = true) {
    this.#ctx = ctx;
    this.dest = dest;
    this.#announce = announce;
  }

  /** True until the socket emitted its terminal event. */
  get live(): boolean {
    return this.#state !== "done";
  }

  /**
   * Resolves `target` (unless it is an IP), checks every address against `policy`, dials the
   * first checked address that answers (then, for TLS, runs the handshake with the client's
   * host name for SNI and verification), emits `connected` and starts the pumps. The whole dial
   * is bounded by `connection_timeout_secs`. Never throws: failures end the socket with `denied`
   * or `error`.
   */
  async dial(target: Target, port: number, policy: Policy, tls: boolean): Promise<void> {
    const { transport } = this.#ctx;
    const conn = await withTimeout(
      this.#abort.signal,
      policy.connectionTimeoutMs,
      async (signal, timedOut): Promise<StreamConn | undefined> => {
        let stage: "lookup" | "connect" | "tls" = "lookup";
        try {
          const resolved = await resolveChecked(target, port, policy, transport, signal);
          if (!resolved.ok) {
            this.finish({ ev: resolved.ev, id: this.id, msg: resolved.msg });
            return undefined;
          }
          stage = "connect";
          let tcp: StreamConn | undefined;
          let lastError: unknown;
          for (const ip of resolved.ips) {
            try {
              tcp = await transport.connectTcp(ip, port, signal);
              this.dest = hostPort(ip, port);
              break;
            } catch (e) {
              if (signal.aborted) throw e;
              lastError = e;
            }
          }
          if (tcp === undefined) {
            const ips = resolved.ips;
            const dest = ips.length === 1
              ? hostPort(ips[0] ?? "", port)
              : `${this.dest} (${ips.length} addresses)`;
            this.finish({
              ev: "error",
              id: this.id,
              msg: WireError.connectFailed(dest, describe(lastError)),
            });
            return undefined;
          }
          if (!tls) return tcp;
          stage = "tls";
          const serverName = target.kind === "name" ? target.name : target.ip;
          return await transport.startTls(tcp, serverName, signal);
        } catch (e) {
          if (!this.live) return undefined; // closed by the client or the session
          const name = target.kind === "name" ? target.name : target.ip;
          const msg = timedOut()
            ? WireError.timedOut()
            : stage === "lookup"
            ? WireError.lookupFailed(name, describe(e))
            : stage === "tls"
            ? WireError.tlsFailed(name, this.dest, describe(e))
            : WireError.ioFailed(describe(e));
          this.finish({ ev: "error", id: this.id, msg });
          return undefined;
        }
      },
    );
    if (conn === undefined) return;
    if (!this.live) {
      conn.close();
      return;
    }
    this.#tls = tls;
    this.#start(conn);
  }

  /**
   * Takes over an accepted inbound connection: the socket is open at once. The caller has
   * already emitted `accepted`.
   */
  adopt(conn: StreamConn): void {
    this.#start(conn);
  }

  #start(conn: StreamConn): void {
    this.#conn = conn;
    this.#state = "open";
    this.#ctx.opened(this);
    if (this.#announce) this.#ctx.emit({ ev: "connected", id: this.id });
    this.#ctx.track(this.#writeLoop(conn));
    this.#ctx.track(this.#readLoop(conn));
  }

  /**
   * Queues bytes for the upstream peer, in order. Before `connected` they wait for the dial.
   * Exceeding the socket's or the session's queue bound ends the socket with `error`.
   */
  send(data: Uint8Array): void {
    if (this.#state === "done") return;
    if (this.#state === "closing") {
      this.#ctx.emit({ ev: "error", id: this.id, msg: WireError.closing(this.id) });
      return;
    }
    if (data.byteLength === 0) return;
    const { maxSocketQueueBytes, maxSessionQueueBytes } = this.#ctx.limits;
    if (this.queuedBytes + data.byteLength > maxSocketQueueBytes) {
      return this.finish({
        ev: "error",
        id: this.id,
        msg: WireError.queueFull(this.id, maxSocketQueueBytes),
      });
    }
    if (!this.#ctx.reserveQueue(data.byteLength)) {
      return this.finish({
        ev: "error",
        id: this.id,
        msg: WireError.sessionQueueFull(this.id, maxSessionQueueBytes),
      });
    }
    this.queuedBytes += data.byteLength;
    this.#queue.push(data);
    this.#wake();
  }

  /**
   * The client's `close`: a dial is cancelled at once; an open socket first writes what is
   * queued (for at most `closeLingerMs`), then closes, then emits `closed`.
   */
  close(): void {
    if (this.#state === "dialing") {
      this.finish({ ev: "closed", id: this.id });
      return;
    }
    if (this.#state === "closing") {
      this.#ctx.emit({ ev: "error", id: this.id, msg: WireError.closing(this.id) });
      return;
    }
    if (this.#state !== "open") return;
    this.#state = "closing";
    if (this.#queue.length === 0 && !this.#tls) {
      this.finish({ ev: "closed", id: this.id });
      return;
    }
    this.#lingerTimer = setTimeout(
      () => this.finish({ ev: "closed", id: this.id }),
      this.#ctx.limits.closeLingerMs,
    );
    this.#wake();
  }

  /**
   * Ends the socket once: cancels the dial and pumps, closes the connection, frees the queue and
   * the `max_connections` slot, and emits `ev` (none when the session itself is ending).
   */
  finish(ev: WireEvent | undefined): void {
    if (this.#state === "done") return;
    this.#state = "done";
    this.#abort.abort();
    clearTimeout(this.#lingerTimer);
    this.#ctx.releaseQueue(this.queuedBytes);
    this.queuedBytes = 0;
    this.#queue = [];
    this.#wake();
    try {
      this.#conn?.close();
    } catch {
      // already closed by the runtime
    }
    this.#ctx.release(this, ev);
  }

  #wake(): void {
    const wake = this.#wakeWriter;
    this.#wakeWriter = undefined;
    wake?.();
  }

  async #writeLoop(conn: StreamConn): Promise<void> {
    while (this.#state !== "done") {
      const chunk = this.#queue[0];
      if (chunk === undefined) {
        if (this.#state === "closing") {
          if (this.#tls) {
            try {
              await conn.closeWrite?.(); // TLS close_notify
            } catch {
              // the peer is gone; closing anyway
            }
          }
          return this.finish({ ev: "closed", id: this.id });
        }
        await new Promise<void>((resolve) => this.#wakeWriter = resolve);
        continue;
      }
      try {
        const { up } = this.#ctx.bandwidth;
        const piece = up.buckets.length === 0
          ? chunk.byteLength
          : Math.min(LIMITED_PIECE_BYTES, up.minBurstBytes);
        let off = 0;
        while (off < chunk.byteLength) {
          const end = Math.min(chunk.byteLength, off + piece);
          if (up.buckets.length > 0) await up.take(end - off, this.#abort.signal);
          while (off < end) off += await conn.write(chunk.subarray(off, end));
        }
      } catch (e) {
        if (!this.live) return;
        return this.finish({ ev: "error", id: this.id, msg: WireError.ioFailed(describe(e)) });
      }
      if (!this.live) return;
      this.#queue.shift();
      this.queuedBytes -= chunk.byteLength;
      this.#ctx.releaseQueue(chunk.byteLength);
      this.bytesUp += chunk.byteLength;
    }
  }

  async #readLoop(conn: StreamConn): Promise<void> {
    const { down } = this.#ctx.bandwidth;
    // Limited: read at most one burst (≤ 16 KiB) at a time, so sockets of a session take turns.
    const max = down.buckets.length === 0
      ? this.#ctx.limits.maxReadBytes
      : Math.min(this.#ctx.limits.maxReadBytes, LIMITED_PIECE_BYTES, down.minBurstBytes);
    let frame = new Uint8Array(HEADER_BYTES + Math.min(FIRST_READ_BYTES, max));
    const signal = this.#abort.signal;
    while (this.#state === "open") {
      try {
        await this.#ctx.drained(signal);
      } catch {
        return; // aborted
      }
      let n: number | null;
      try {
        n = await conn.read(frame.subarray(HEADER_BYTES));
      } catch (e) {
        if (this.#state !== "open") return;
        return this.finish({ ev: "error", id: this.id, msg: WireError.ioFailed(describe(e)) });
      }
      if (this.#state !== "open") return; // closing: data after `close` is dropped
      if (n === null) return this.finish({ ev: "closed", id: this.id });
      if (down.buckets.length > 0) {
        try {
          await down.take(n, signal);
        } catch {
          return; // aborted
        }
        if (this.#state !== "open") return;
      }
      this.bytesDown += n;
      this.#ctx.emitData(this.id, frame, n);
      if (n === frame.byteLength - HEADER_BYTES && frame.byteLength - HEADER_BYTES < max) {
        frame = new Uint8Array(HEADER_BYTES + Math.min(max, 2 * (frame.byteLength - HEADER_BYTES)));
      }
    }
  }
}
