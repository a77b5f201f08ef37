/**
 * One proxied stream socket (TCP; TLS later): dial under the policy, then two pumps that fail
 * independently — client → upstream through a bounded queue with awaited writes, and
 * upstream → client with backpressure from the WebSocket.
 *
 * @module
 */
import { HEADER_BYTES, type WireEvent } from "../protocol/mod.ts";
import type { Policy, Target } from "../policy/mod.ts";
import type { StreamConn } from "../transport/mod.ts";
import { describe, WireError } from "./wire_errors.ts";
import type { SessionContext, SocketEntry } from "./types.ts";

const FIRST_READ_BYTES = 16 * 1024;

/** A client's TCP socket through the proxy. Emits exactly one terminal event. */
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

  /**
   * @param id client id of the socket.
   * @param ctx the owning session's services.
   * @param dest `addr:port` as requested, for logs until the socket is dialled.
   */
  constructor(readonly id: number, ctx: SessionContext, dest: string) {
    this.#ctx = ctx;
    this.dest = dest;
  }

  /** True until the socket emitted its terminal event. */
  get live(): boolean {
    return this.#state !== "done";
  }

  /**
   * Resolves `target` (unless it is an IP), checks every address against `policy`, dials the
   * first checked address that answers, then emits `connected` and starts the pumps. Never
   * throws: failures end the socket with `denied` or `error`.
   */
  async dial(target: Target, port: number, policy: Policy): Promise<void> {
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), policy.connectionTimeoutMs);
    const signal = AbortSignal.any([this.#abort.signal, timeout.signal]);
    let conn: StreamConn | undefined;
    let stage = "lookup";
    try {
      let ips: string[];
      if (target.kind === "ip") {
        ips = [target.ip];
      } else {
        try {
          ips = await this.#ctx.transport.lookup(target.name, signal);
        } catch (e) {
          if (signal.aborted) throw e;
          return this.finish({
            ev: "error",
            id: this.id,
            msg: WireError.lookupFailed(target.name, describe(e)),
          });
        }
        for (const ip of ips) {
          const verdict = policy.checkResolved(target.name, ip, port);
          if (!verdict.allowed) {
            return this.finish({ ev: "denied", id: this.id, msg: verdict.reason });
          }
        }
      }
      stage = "connect";
      let lastError: unknown;
      for (const ip of ips) {
        try {
          conn = await this.#ctx.transport.connectTcp(ip, port, signal);
          this.dest = ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
          break;
        } catch (e) {
          if (signal.aborted) throw e;
          lastError = e;
        }
      }
      if (conn === undefined) {
        const dest = ips.length === 1
          ? `${ips[0]}:${port}`
          : `${this.dest} (${ips.length} addresses)`;
        return this.finish({
          ev: "error",
          id: this.id,
          msg: WireError.connectFailed(dest, describe(lastError)),
        });
      }
    } catch (e) {
      if (this.#state === "done") return; // closed by the client or the session
      const msg = timeout.signal.aborted
        ? WireError.timedOut()
        : stage === "lookup"
        ? WireError.lookupFailed(target.kind === "name" ? target.name : target.ip, describe(e))
        : WireError.ioFailed(describe(e));
      return this.finish({ ev: "error", id: this.id, msg });
    } finally {
      clearTimeout(timer);
    }
    if (this.#state === "done") {
      conn.close();
      return;
    }
    this.#conn = conn;
    this.#state = "open";
    this.#ctx.opened(this);
    this.#ctx.emit({ ev: "connected", id: this.id });
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
    if (this.#state !== "open") return;
    this.#state = "closing";
    if (this.#queue.length === 0) {
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
        if (this.#state === "closing") return this.finish({ ev: "closed", id: this.id });
        await new Promise<void>((resolve) => this.#wakeWriter = resolve);
        continue;
      }
      try {
        let off = 0;
        while (off < chunk.byteLength) {
          off += await conn.write(off === 0 ? chunk : chunk.subarray(off));
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
    const max = this.#ctx.limits.maxReadBytes;
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
      this.bytesDown += n;
      this.#ctx.emitData(this.id, frame, n);
      if (n === frame.byteLength - HEADER_BYTES && frame.byteLength - HEADER_BYTES < max) {
        frame = new Uint8Array(HEADER_BYTES + Math.min(max, 2 * (frame.byteLength - HEADER_BYTES)));
      }
    }
  }
}
