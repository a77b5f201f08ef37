/**
 * One proxied stream socket (TCP, TLS, or an accepted inbound connection): dial under the policy,
 * then two pumps that fail independently, each a pipe `source → throttle → sink`
 * (DESIGN.md §2 steps 5–6):
 * - up: the client's queued `send`s → `throttle(bandwidth.up)` → awaited upstream writes;
 * - down: upstream reads (paused while the WebSocket is above its high-water mark) →
 *   `throttle(bandwidth.down)` → `data` events.
 *
 * The protocol extensions act on the pumps: `start_tls` stops both (the up pump once the bytes
 * queued before it are written, the down pump before its next read, or handing its read in
 * flight to TLS), runs the TLS handshake over the connection and starts them again over TLS;
 * `shutdown` ends the up pump with a FIN once the queue is written, and the down pump reads on.
 *
 * @module
 */
import { formatHostPort } from "../protocol/mod.ts";
import type { Policy, Target } from "../policy/mod.ts";
import type { StreamConn } from "../transport/mod.ts";
import { throttle } from "../limit/mod.ts";
import { describe, WireError } from "./wire_errors.ts";
import { resolveChecked, withTimeout } from "./resolve.ts";
import { causeOf, CLOSED, fail, type Refusal, type SessionContext } from "./types.ts";
import { dialResult } from "./metrics.ts";
import { Entry } from "./_entry.ts";
import { HandoverConn } from "./_handover_conn.ts";

/**
 * First and smallest upstream read size in bytes. A busy socket's reads double up to
 * `maxReadBytes` while they come back full (1 KiB → 64 KiB in 6 reads) and halve again while they
 * come back at most a quarter full, so an idle socket's pending read holds 1 KiB, not 256.
 */
const MIN_READ_BYTES = 1024;
/**
 * Bytes in front of each read's payload: room for a frame header (the binary `data` header is
 * `HEADER_BYTES`, 9; Wisp's is 5), rounded up to 16 so the payload starts 16-byte aligned. The
 * alignment is for speed: copies into the buffer from an aligned source (Bun's received `Buffer`,
 * copied by `StreamConn.readChunk`) take glibc's fast `memmove` path on x86-64; misaligned by 9
 * they fall to `rep movsb`, measured 4–5× slower on 64 KiB copies with Bun 1.4.5 on AMD EPYC.
 */
const READ_HEADROOM = 16;

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
  /** The next `Deno.TcpConn`-style read's buffer size in bytes (see `#nextRead`). */
  #readSize = MIN_READ_BYTES;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  #tls = false;
  readonly #announce: boolean;
  /** The host the socket was opened with (name or IP): `start_tls`'s default servername. */
  #host = "";
  /** The client's `shutdown`: no more sends; a FIN once the queue is written. */
  #shut = false;
  /** The up pump has ended after the FIN of a `shutdown` (nothing more to write). */
  #writeDone = false;
  /** A `start_tls` in progress: its servername and handshake time bound. */
  #upgrade: { servername: string; timeoutMs: number } | undefined;
  /** The handshake of {@linkcode StreamSocket.#upgrade} has started. */
  #upgrading = false;
  /** The up pump stopped for the upgrade (every byte queued before `start_tls` written). */
  #upStopped = false;
  /** The down pump will emit no more `data` before the upgrade. */
  #downStopped = false;
  /** `send`s after `start_tls`: written over TLS once the handshake is done. */
  #later: Uint8Array[] = [];
  /** The down pump's read in flight (with its buffer): handed to TLS at `start_tls`. */
  #parked:
    | { read: Promise<number | null>; buffer: Uint8Array }
    | { chunk: Promise<Uint8Array | null> }
    | undefined;

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
    const { transport, metrics } = this.ctx;
    const name = target.kind === "name" ? target.name : target.ip;
    this.#host = name;
    const started = performance.now();
    const seconds = (): number => (performance.now() - started) / 1000;
    // Every refusal of the dial ends the socket through here, so it is counted once.
    const refuse = (refusal: Refusal): undefined => {
      metrics.dialed(dialResult(refusal), seconds());
      this.end(refusal);
      return undefined;
    };
    // The whole dial is bounded by one timer that ends the socket (aborting `this.signal`, which
    // every step listens to): no controller of its own, no `AbortSignal.any` per dial.
    const signal = this.signal;
    const timer = setTimeout(() => {
      if (this.live) refuse(fail(WireError.timedOut(), "timeout"));
    }, policy.connectionTimeoutMs);
    const conn = await (async (): Promise<StreamConn | undefined> => {
      let stage: "lookup" | "connect" | "tls" = "lookup";
      try {
        const resolved = await resolveChecked(target, port, policy, transport, signal);
        if (!resolved.ok) return refuse(resolved.refusal);
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
          return refuse(
            fail(WireError.connectFailed(dest, describe(lastError)), causeOf(lastError)),
          );
        }
        if (!tls) return tcp;
        stage = "tls";
        return await transport.startTls(tcp, name, signal);
      } catch (e) {
        if (!this.live) return undefined; // closed by the client, the session or the timer
        return refuse(
          stage === "lookup"
            ? fail(WireError.lookupFailed(name, describe(e)), "unreachable")
            : stage === "tls"
            ? fail(WireError.tlsFailed(name, this.dest, describe(e)))
            : fail(WireError.ioFailed(describe(e)), causeOf(e)),
        );
      } finally {
        clearTimeout(timer);
      }
    })();
    if (conn === undefined) return;
    if (!this.live) {
      conn.close();
      return;
    }
    metrics.dialed("connected", seconds());
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
    this.socketKind = this.#tls ? "tls" : "tcp";
    this.ctx.opened(this);
    if (this.#announce) this.ctx.emit({ ev: "connected", id: this.id });
    this.#pumps(conn);
  }

  #pumps(conn: StreamConn): void {
    this.#readSize = MIN_READ_BYTES;
    this.ctx.track(this.#upPump(conn));
    this.ctx.track(this.#downPump(conn));
  }

  /**
   * Queues bytes for the upstream peer, in order. Before `connected` they wait for the dial;
   * during a `start_tls` they wait for the handshake (and go through TLS). Exceeding the
   * socket's or the session's queue bound ends the socket with `error`; a `send` after `close`
   * or `shutdown` is answered with a non-terminal `error`.
   */
  send(data: Uint8Array): void {
    if (!this.live) return;
    if (this.#state === "closing") {
      return this.ctx.report(this.id, fail(WireError.closing(this.id)));
    }
    if (this.#shut) return this.ctx.report(this.id, fail(WireError.shutDown(this.id)));
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
    if (this.#upgrade !== undefined) {
      this.#later.push(data); // written over TLS once the handshake is done
      return;
    }
    this.#queue.push(data);
    this.#wake();
  }

  /**
   * The client's `shutdown` (extension): no more sends; once every queued byte is written, the
   * write side of the upstream connection is closed (TCP FIN; for TLS, close_notify then FIN),
   * and reading goes on until the peer closes (then `closed`). Before `connected` it waits for
   * the dial. No event answers it; a second one does nothing; after `close`, `error`.
   */
  shutdown(): void {
    if (!this.live) return;
    if (this.#state === "closing") {
      return this.ctx.report(this.id, fail(WireError.closing(this.id)));
    }
    if (this.#shut) return;
    this.#shut = true;
    this.#wake();
  }

  /**
   * The client's `start_tls` (extension): once every byte queued before it is written and the
   * down pump has stopped (a read in flight is handed to TLS, so no byte of the handshake is
   * sent as `data`), runs the TLS client handshake over the connection with `servername` (SNI
   * and verification; default the host the socket was opened with), bounded by `timeoutMs`, then
   * emits `connected` again and carries the socket's bytes through TLS. A failed handshake ends
   * the socket with `error` (`TLS handshake with NAME (IP:PORT) failed: ...`). Refused with a
   * non-terminal `error` (the socket goes on as it was) on a socket that is not open, already
   * TLS, shut down, an accepted connection, or in another `start_tls`.
   *
   * @param servername normalised name or IP (the session parsed it), or undefined.
   * @param timeoutMs the handshake's time bound (`connection_timeout_secs`).
   */
  startTls(servername: string | undefined, timeoutMs: number): void {
    if (!this.live) return;
    if (this.#state === "closing") {
      return this.ctx.report(this.id, fail(WireError.closing(this.id)));
    }
    const why = this.#startTlsRefusal();
    if (why !== undefined) {
      return this.ctx.report(this.id, fail(WireError.startTlsRefused(this.id, why), "invalid"));
    }
    this.#upgrade = { servername: servername ?? this.#host, timeoutMs };
    // A read in flight now settles after the request: its bytes are the peer's answer to TLS.
    this.#downStopped = this.#parked !== undefined;
    this.#wake();
  }

  /** Why `start_tls` cannot run on this socket now, or undefined when it can. */
  #startTlsRefusal(): string | undefined {
    if (!this.#announce) {
      return "it is an accepted connection (TLS as a client needs an outbound socket)";
    }
    if (this.#state === "dialing") return "it is not connected yet (wait for connected)";
    if (this.#tls) return "it already speaks TLS";
    if (this.#upgrade !== undefined) return "a start_tls is already in progress";
    if (this.#shut) return "it is shut down for writing";
    return undefined;
  }

  /** Starts the handshake once both pumps have stopped for it. */
  #maybeUpgrade(conn: StreamConn): void {
    const upgrade = this.#upgrade;
    if (upgrade === undefined || this.#upgrading || !this.#upStopped || !this.#downStopped) return;
    if (!this.live || conn !== this.#conn) return;
    this.#upgrading = true;
    this.ctx.track(this.#runUpgrade(conn, upgrade.servername, upgrade.timeoutMs));
  }

  async #runUpgrade(conn: StreamConn, servername: string, timeoutMs: number): Promise<void> {
    const parked = this.#parked;
    this.#parked = undefined;
    const handed = parked === undefined ? conn : new HandoverConn(
      conn,
      "chunk" in parked
        ? parked.chunk
        : parked.read.then((n) => n === null ? null : parked.buffer.subarray(0, n)),
    );
    let tls: StreamConn;
    let timedOut = false;
    try {
      tls = await withTimeout(this.signal, timeoutMs, async (signal, isTimedOut) => {
        try {
          return await this.ctx.transport.startTls(handed, servername, signal);
        } catch (e) {
          timedOut = isTimedOut();
          throw e;
        }
      });
    } catch (e) {
      if (!this.live) return; // closed by the client or the session
      const detail = timedOut ? "timed out" : describe(e);
      this.end(
        fail(WireError.tlsFailed(servername, this.dest, detail), timedOut ? "timeout" : "network"),
      );
      return;
    }
    if (!this.live) {
      tls.close();
      return;
    }
    this.#conn = tls;
    this.#tls = true;
    this.ctx.metrics.socketClosed("tcp");
    this.socketKind = "tls";
    this.ctx.metrics.socketOpened("tls");
    this.#upgrade = undefined;
    this.#upgrading = false;
    this.#upStopped = false;
    this.#downStopped = false;
    this.#queue = this.#later;
    this.#later = [];
    this.ctx.emit({ ev: "connected", id: this.id });
    this.#pumps(tls);
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
    // A `start_tls` in progress is cancelled, as a dial is; after a `shutdown`'s FIN there is
    // nothing left to write. `queuedBytes` counts chunks still queued and the one the up pump
    // is writing.
    if (this.#upgrade !== undefined || this.#writeDone) return this.end(CLOSED);
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
    this.#later = [];
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

  /**
   * The client's next queued chunk, in order (waiting while the queue is empty); undefined once
   * the queue is empty and the client closed, shut down, or asked for `start_tls`, or the socket
   * ended.
   */
  async #nextQueued(): Promise<Uint8Array | undefined> {
    while (this.live) {
      const chunk = this.#queue.shift();
      if (chunk !== undefined) return chunk;
      if (this.#state === "closing" || this.#upgrade !== undefined || this.#shut) return undefined;
      await new Promise<void>((resolve) => this.#wakeWriter = resolve);
    }
    return undefined;
  }

  /** {@linkcode StreamSocket.#nextQueued} as an async iterable, for the throttle pipe. */
  async *#queued(): AsyncGenerator<Uint8Array, void, undefined> {
    for (let chunk = await this.#nextQueued(); chunk; chunk = await this.#nextQueued()) {
      yield chunk;
    }
  }

  /**
   * Client → upstream: queue → throttle(up) → awaited writes; then, after `close`, close_notify
   * (TLS) and `closed`; after `shutdown`, a FIN (close_notify first for TLS) while reading goes
   * on; at `start_tls`, hands over to the handshake.
   */
  async #upPump(conn: StreamConn): Promise<void> {
    // Unlimited (the common case), the queue is pulled directly: the pipe would only pass its
    // chunks through, and each layer costs an idle socket its suspended generator and promises.
    const { up } = this.ctx.bandwidth;
    const piped = up.buckets.length > 0
      ? throttle(this.#queued(), up, { signal: this.signal })
      : undefined;
    const next = piped ? pull(piped) : () => this.#nextQueued();
    try {
      for (let piece = await next(); piece; piece = await next()) {
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
    } finally {
      await piped?.return?.().catch(() => {});
    }
    if (!this.live) return;
    if (this.#state === "open" && this.#upgrade !== undefined) {
      this.#upStopped = true;
      return this.#maybeUpgrade(conn);
    }
    if (this.#tls || this.#shut) {
      try {
        await conn.closeWrite?.(); // TLS close_notify, then FIN
      } catch (e) {
        // Closing: the peer is gone, close anyway. Shut down: the connection failed.
        if (this.#state === "open" && this.live) {
          return this.end(fail(WireError.ioFailed(describe(e))));
        }
      }
      if (!this.live) return;
    }
    if (this.#state === "closing") return this.end(CLOSED);
    this.#writeDone = true; // shut down: the down pump reads until the peer closes
  }

  /**
   * The next upstream read (undefined at the end of the stream, once the socket is no longer
   * open, or at `start_tls`), into a new buffer with `READ_HEADROOM` bytes in front (so a binary
   * `data` frame is sent without copying, and the channel may keep the bytes), waiting before
   * each read while the WebSocket is above its high-water mark. A connection with `readChunk`
   * (bytes queued by events: Bun, `node:net`, TLS) allocates each buffer at the size it has,
   * up to `max`. Otherwise (`Deno.TcpConn`: the kernel copies into the buffer) reads start at
   * 1 KiB, double while they come back full, up to `max`, and halve (not below 1 KiB) while they
   * come back at most a quarter full.
   */
  async #nextRead(conn: StreamConn, max: number): Promise<Uint8Array | undefined> {
    if (this.#state !== "open" || !this.live || this.#upgrade !== undefined) return undefined;
    await this.ctx.drained(this.signal);
    if (this.#upgrade !== undefined) return undefined;
    let bytes: Uint8Array | null;
    try {
      if (conn.readChunk) {
        const read = conn.readChunk(READ_HEADROOM, max);
        this.#parked = { chunk: read };
        bytes = await read;
      } else {
        const size = Math.min(this.#readSize, max);
        const buffer = new Uint8Array(READ_HEADROOM + size).subarray(READ_HEADROOM);
        const read = conn.read(buffer);
        this.#parked = { read, buffer };
        const n = await read;
        bytes = n === null ? null : buffer.subarray(0, n);
        if (n !== null) this.#adaptReadSize(n, size, max);
      }
    } catch (e) {
      if (this.#upgrade !== undefined || conn !== this.#conn) return undefined; // TLS gets it
      this.#parked = undefined;
      throw e;
    }
    // After `start_tls` the read's bytes belong to TLS (the handover takes `#parked`).
    if (this.#upgrade !== undefined || conn !== this.#conn) return undefined;
    this.#parked = undefined;
    return bytes ?? undefined;
  }

  /** Doubles the next read's size after a full read of `size`, halves it after a sparse one. */
  #adaptReadSize(n: number, size: number, max: number): void {
    const min = Math.min(MIN_READ_BYTES, max);
    if (n === size && size < max) this.#readSize = Math.min(max, 2 * size);
    else if (n <= size / 4 && size > min) this.#readSize = Math.max(min, size / 2);
  }

  /** {@linkcode StreamSocket.#nextRead} as an async iterable, for the throttle pipe. */
  async *#reads(conn: StreamConn, max: number): AsyncGenerator<Uint8Array, void, undefined> {
    for (let c = await this.#nextRead(conn, max); c; c = await this.#nextRead(conn, max)) yield c;
  }

  /** Upstream → client: reads → throttle(down) → `data` events; EOF → `closed`. */
  async #downPump(conn: StreamConn): Promise<void> {
    const { down } = this.ctx.bandwidth;
    // Limited: read at most one piece at a time, so the throttle never splits (the headroom stays
    // in front of every chunk) and sockets of a session take turns.
    const max = Math.min(this.ctx.limits.maxReadBytes, down.pieceBytes);
    // Unlimited, reads are pulled directly (as the up pump's queue); limited, through the pipe.
    // Reads never exceed `max`.
    const piped = down.buckets.length > 0
      ? throttle(this.#reads(conn, max), down, { signal: this.signal, maxChunkBytes: max })
      : undefined;
    const next = piped ? pull(piped) : () => this.#nextRead(conn, max);
    try {
      for (let chunk = await next(); chunk; chunk = await next()) {
        if (this.#state !== "open" || !this.live) return; // closing: data after `close` is dropped
        if (chunk.byteLength === 0) continue;
        this.bytesDown += chunk.byteLength;
        this.ctx.emitData(this.id, chunk);
      }
    } catch (e) {
      if (conn !== this.#conn) return;
      if (this.#state === "open" && this.live) this.end(fail(WireError.ioFailed(describe(e))));
      return;
    } finally {
      await piped?.return?.().catch(() => {});
    }
    if (conn !== this.#conn) return; // the connection before `start_tls`
    if (this.#state === "open" && this.live && this.#upgrade !== undefined) {
      this.#downStopped = true;
      return this.#maybeUpgrade(conn);
    }
    if (this.#state === "open" && this.live) this.end(CLOSED);
  }
}

/**
 * `it.next()` as a pull function: the next value, undefined once done. The pumps read pipes and
 * their direct sources through the same shape.
 */
function pull(it: AsyncIterator<Uint8Array>): () => Promise<Uint8Array | undefined> {
  return async () => {
    const r = await it.next();
    return r.done ? undefined : r.value;
  };
}
