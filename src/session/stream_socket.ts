/**
 * One proxied stream socket (TCP, TLS, or an accepted inbound connection): dial under the policy,
 * then two pumps that fail independently, each a pipe `source → throttle → sink`
 * (DESIGN.md §2 steps 5–6):
 * - up: the client's queued `send`s → `throttle(bandwidth.up)` → awaited upstream writes;
 * - down: upstream reads (paused while the WebSocket is above its high-water mark) →
 *   `throttle(bandwidth.down)` → `data` events.
 *
 * @module
 */
import { formatHostPort, HEADER_BYTES } from "../protocol/mod.ts";
import type { Policy, Target } from "../policy/mod.ts";
import type { StreamConn } from "../transport/mod.ts";
import { throttle } from "../limit/mod.ts";
import { describe, WireError } from "./wire_errors.ts";
import { resolveChecked, withTimeout } from "./resolve.ts";
import { causeOf, CLOSED, fail, type SessionContext } from "./types.ts";
import { Entry } from "./_entry.ts";

/**
 * First and smallest upstream read size in bytes. A busy socket's reads double up to
 * `maxReadBytes` while they come back full (1 KiB → 64 KiB in 6 reads) and halve again while they
 * come back at most a quarter full, so an idle socket's pending read holds 1 KiB, not 256.
 */
const MIN_READ_BYTES = 1024;

/**
 * A client's TCP or TLS socket through the proxy, or an accepted inbound connection. Ends with
 * exactly one terminal event.
 */
export class StreamSocket extends Entry {
  /** Kind tag for the socket table. */
  readonly kind = "stream";
  /** Bytes queued for upstream and not yet written. */
  queuedBytes = 0;

  #state: "dialing" | "open" | "closing" = "dialing";
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
  constructor(id: number, ctx: SessionContext, dest: string, announce = true) {
    super(id, ctx, dest, true);
    this.#announce = announce;
  }

  /**
   * Resolves `target` (unless it is an IP), checks every address against `policy`, dials the
   * first checked address that answers (then, for TLS, runs the handshake with the client's
   * host name for SNI and verification), emits `connected` and starts the pumps. The whole dial
   * is bounded by `connection_timeout_secs`. Never throws: failures end the socket with `denied`
   * or `error`.
   */
  async dial(target: Target, port: number, policy: Policy, tls: boolean): Promise<void> {
    const { transport } = this.ctx;
    const name = target.kind === "name" ? target.name : target.ip;
    const conn = await withTimeout(
      this.signal,
      policy.connectionTimeoutMs,
      async (signal, timedOut): Promise<StreamConn | undefined> => {
        let stage: "lookup" | "connect" | "tls" = "lookup";
        try {
          const resolved = await resolveChecked(target, port, policy, transport, signal);
          if (!resolved.ok) {
            this.end(resolved.refusal);
            return undefined;
          }
          stage = "connect";
          let tcp: StreamConn | undefined;
          let lastError: unknown;
          for (const ip of resolved.ips) {
            try {
              tcp = await transport.connectTcp(ip, port, signal);
              this.dest = formatHostPort(ip, port);
              break;
            } catch (e) {
              if (signal.aborted) throw e;
              lastError = e;
            }
          }
          if (tcp === undefined) {
            const ips = resolved.ips;
            const dest = ips.length === 1
              ? formatHostPort(ips[0] ?? "", port)
              : `${this.dest} (${ips.length} addresses)`;
            this.end(fail(WireError.connectFailed(dest, describe(lastError)), causeOf(lastError)));
            return undefined;
          }
          if (!tls) return tcp;
          stage = "tls";
          return await transport.startTls(tcp, name, signal);
        } catch (e) {
          if (!this.live) return undefined; // closed by the client or the session
          this.end(
            timedOut()
              ? fail(WireError.timedOut(), "timeout")
              : stage === "lookup"
              ? fail(WireError.lookupFailed(name, describe(e)), "unreachable")
              : stage === "tls"
              ? fail(WireError.tlsFailed(name, this.dest, describe(e)))
              : fail(WireError.ioFailed(describe(e)), causeOf(e)),
          );
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
    this.ctx.opened(this);
    if (this.#announce) this.ctx.emit({ ev: "connected", id: this.id });
    this.ctx.track(this.#upPump(conn));
    this.ctx.track(this.#downPump(conn));
  }

  /**
   * Queues bytes for the upstream peer, in order. Before `connected` they wait for the dial.
   * Exceeding the socket's or the session's queue bound ends the socket with `error`.
   */
  send(data: Uint8Array): void {
    if (!this.live) return;
    if (this.#state === "closing") {
      return this.ctx.report(this.id, fail(WireError.closing(this.id)));
    }
    if (data.byteLength === 0) return;
    const { maxSocketQueueBytes, maxSessionQueueBytes } = this.ctx.limits;
    if (this.queuedBytes + data.byteLength > maxSocketQueueBytes) {
      return this.end(
        fail(
          WireError.queueFull(this.id, maxSocketQueueBytes, this.ctx.overflowReason()),
          "limit",
        ),
      );
    }
    if (!this.ctx.reserveQueue(data.byteLength)) {
      return this.end(
        fail(
          WireError.sessionQueueFull(this.id, maxSessionQueueBytes, this.ctx.overflowReason()),
          "limit",
        ),
      );
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
    if (!this.live) return;
    if (this.#state === "dialing") return this.end(CLOSED);
    if (this.#state === "closing") {
      return this.ctx.report(this.id, fail(WireError.closing(this.id)));
    }
    this.#state = "closing";
    // `queuedBytes` counts chunks still queued and the one the up pump is writing.
    if (this.queuedBytes === 0 && !this.#tls) return this.end(CLOSED);
    this.#lingerTimer = setTimeout(() => this.end(CLOSED), this.ctx.limits.closeLingerMs);
    this.#wake();
  }

  /** Cancels the linger timer, frees the queue and its budget, closes the connection. */
  protected teardown(): void {
    clearTimeout(this.#lingerTimer);
    this.ctx.releaseQueue(this.queuedBytes);
    this.queuedBytes = 0;
    this.#queue = [];
    this.#wake();
    try {
      this.#conn?.close();
    } catch {
      // already closed by the runtime
    }
  }

  #wake(): void {
    const wake = this.#wakeWriter;
    this.#wakeWriter = undefined;
    wake?.();
  }

  /** The client's queued chunks, in order; ends once the client closed and the queue is empty. */
  async *#queued(): AsyncGenerator<Uint8Array, void, undefined> {
    while (this.live) {
      const chunk = this.#queue.shift();
      if (chunk !== undefined) yield chunk;
      else if (this.#state === "closing") return;
      else await new Promise<void>((resolve) => this.#wakeWriter = resolve);
    }
  }

  /** Client → upstream: queue → throttle(up) → awaited writes; then close_notify and `closed`. */
  async #upPump(conn: StreamConn): Promise<void> {
    try {
      const pieces = throttle(this.#queued(), this.ctx.bandwidth.up, { signal: this.signal });
      for await (const piece of pieces) {
        let off = 0;
        while (off < piece.byteLength) off += await conn.write(piece.subarray(off));
        if (!this.live) return;
        this.queuedBytes -= piece.byteLength;
        this.ctx.releaseQueue(piece.byteLength);
        this.bytesUp += piece.byteLength;
        this.ctx.written(this.id, piece.byteLength);
      }
    } catch (e) {
      if (this.live) this.end(fail(WireError.ioFailed(describe(e))));
      return;
    }
    if (!this.live) return;
    if (this.#tls) {
      try {
        await conn.closeWrite?.(); // TLS close_notify
      } catch {
        // the peer is gone; closing anyway
      }
    }
    this.end(CLOSED);
  }

  /**
   * Upstream reads, each into a new buffer with `HEADER_BYTES` of headroom (so a binary `data`
   * frame is sent without copying, and the channel may keep the bytes), waiting before each read
   * while the WebSocket is above its high-water mark. Reads start at 1 KiB, double while they come
   * back full, up to `max`, and halve (not below 1 KiB) while they come back at most a quarter full.
   */
  async *#reads(conn: StreamConn, max: number): AsyncGenerator<Uint8Array, void, undefined> {
    const min = Math.min(MIN_READ_BYTES, max);
    let size = min;
    while (this.#state === "open" && this.live) {
      await this.ctx.drained(this.signal);
      const frame = new Uint8Array(HEADER_BYTES + size);
      const n = await conn.read(frame.subarray(HEADER_BYTES));
      if (n === null) return;
      yield frame.subarray(HEADER_BYTES, HEADER_BYTES + n);
      if (n === size && size < max) size = Math.min(max, 2 * size);
      else if (n <= size / 4 && size > min) size = Math.max(min, size / 2);
    }
  }

  /** Upstream → client: reads → throttle(down) → `data` events; EOF → `closed`. */
  async #downPump(conn: StreamConn): Promise<void> {
    const { down } = this.ctx.bandwidth;
    // Limited: read at most one piece at a time, so the throttle never splits (the headroom stays
    // in front of every chunk) and sockets of a session take turns.
    const max = Math.min(this.ctx.limits.maxReadBytes, down.pieceBytes);
    try {
      // Reads never exceed `max`; unlimited, the pipe passes them straight through.
      const chunks = throttle(this.#reads(conn, max), down, {
        signal: this.signal,
        ...(down.buckets.length > 0 ? { maxChunkBytes: max } : {}),
      });
      for await (const chunk of chunks) {
        if (this.#state !== "open" || !this.live) return; // closing: data after `close` is dropped
        this.bytesDown += chunk.byteLength;
        this.ctx.emitData(this.id, chunk);
      }
    } catch (e) {
      if (this.#state === "open" && this.live) this.end(fail(WireError.ioFailed(describe(e))));
      return;
    }
    if (this.#state === "open" && this.live) this.end(CLOSED);
  }
}
