/**
 * One WebSocket session: decode each message, dispatch it by `op`, keep the socket table, encode
 * events in the framing of the client's most recent message (DESIGN.md §2–4).
 *
 * @module
 */
import {
  decodeRequest,
  encodeEvent,
  encodeEventJson,
  type Framing,
  MsgType,
  ProtocolError,
  type Request,
  unreachable,
  type WireEvent,
  writeHeader,
} from "../protocol/mod.ts";
import { parseTarget, type Policy } from "../policy/mod.ts";
import type { Transport } from "../transport/mod.ts";
import { getLogger, type Logger } from "../log/mod.ts";
import { DEFAULT_SESSION_LIMITS, SERVER_ID_BASE, type SessionLimits } from "./options.ts";
import { StreamSocket } from "./stream_socket.ts";
import type { SessionContext, SocketEntry } from "./types.ts";
import { WireError } from "./wire_errors.ts";

/** The WebSocket as the session sees it. A browser-style `WebSocket` satisfies it. */
export interface WireChannel {
  /** Sends one message. May throw once the socket is closed (the session ignores that). */
  send(data: string | Uint8Array): void;
  /** Bytes queued by `send` and not yet written to the network. */
  readonly bufferedAmount: number;
}

/** What a session needs: its policy, network access and limits. */
export interface SessionOptions {
  /** Decides what the session may reach. */
  policy: Policy;
  /** Network access (the real one is `denoTransport()`). */
  transport: Transport;
  /** Limits; missing fields take {@linkcode DEFAULT_SESSION_LIMITS}. */
  limits?: Partial<SessionLimits>;
  /** Logger (default: the `session` logger). */
  log?: Logger;
  /** Label for log lines, e.g. the client's address. */
  label?: string;
}

/** Counters of a session, for logs and tests. */
export interface SessionStats {
  /** Entries (sockets, listeners, lookups) in the table now. */
  live: number;
  /** `max_connections` slots in use now (pending dials, sockets, listeners). */
  slots: number;
  /** Sockets opened over the session's life. */
  opened: number;
  /** Payload bytes client → network over the session's life. */
  bytesUp: number;
  /** Payload bytes network → client over the session's life. */
  bytesDown: number;
  /** Bytes queued for upstream peers now. */
  queuedBytes: number;
}

let nextSessionNumber = 1;

/**
 * A wasmnet session over one WebSocket. Feed it every message with {@linkcode Session.handle};
 * when the WebSocket closes, `await session.close()` (or `await using`), which ends every dial,
 * pump, socket, listener and timer of the session.
 *
 * Events it emits on the channel: `connected`, `data`, `closed`, `error`, `denied` (and, for the
 * ops of later milestones, `listening`, `accepted`, `data_from`, `resolved`, `udp_bound`).
 * It never throws from {@linkcode Session.handle}: bad input becomes an `error` event.
 */
export class Session implements AsyncDisposable {
  /** Session number for logs (1, 2, ...). */
  readonly number: number = nextSessionNumber++;
  readonly #channel: WireChannel;
  readonly #policy: Policy;
  readonly #log: Logger;
  readonly #label: string;
  readonly #limits: Readonly<SessionLimits>;
  readonly #table = new Map<number, SocketEntry>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  readonly #ctx: SessionContext;
  readonly #started = Date.now();
  #framing: Framing = "json";
  #slots = 0;
  #opened = 0;
  #queued = 0;
  #bytesUp = 0;
  #bytesDown = 0;
  #closed = false;
  #drainWaiters = new Set<() => void>();
  #drainTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param channel the WebSocket to send events on.
   * @param options policy, transport, limits, logger.
   */
  constructor(channel: WireChannel, options: SessionOptions) {
    this.#channel = channel;
    this.#policy = options.policy;
    this.#log = options.log ?? getLogger("session");
    this.#label = options.label ?? "";
    this.#limits = Object.freeze({ ...DEFAULT_SESSION_LIMITS, ...options.limits });
    this.#ctx = {
      limits: this.#limits,
      transport: options.transport,
      log: this.#log,
      emit: (ev) => this.#emit(ev),
      emitData: (id, frame, n) => this.#emitData(id, frame, n),
      drained: (signal) => this.#drained(signal),
      reserveQueue: (bytes) => {
        if (this.#queued + bytes > this.#limits.maxSessionQueueBytes) return false;
        this.#queued += bytes;
        return true;
      },
      releaseQueue: (bytes) => {
        this.#queued -= bytes;
      },
      opened: (entry) => {
        this.#opened++;
        this.#log.debug("socket open", { session: this.number, id: entry.id, dest: entry.dest });
      },
      release: (entry, ev) => this.#release(entry, ev),
      track: (task) => this.#track(task),
    };
    this.#log.info("session start", { session: this.number, client: this.#label || undefined });
  }

  /** The framing replies use now: that of the client's most recent message. */
  get framing(): Framing {
    return this.#framing;
  }

  /** Current counters. */
  get stats(): SessionStats {
    let bytesUp = this.#bytesUp;
    let bytesDown = this.#bytesDown;
    for (const e of this.#table.values()) {
      bytesUp += e.bytesUp;
      bytesDown += e.bytesDown;
    }
    return {
      live: this.#table.size,
      slots: this.#slots,
      opened: this.#opened,
      bytesUp,
      bytesDown,
      queuedBytes: this.#queued,
    };
  }

  /**
   * Handles one WebSocket message: a string is a JSON request, bytes a binary frame. Undecodable
   * input is answered with `error` id 0; nothing thrown escapes.
   */
  handle(message: string | Uint8Array | ArrayBuffer): void {
    if (this.#closed) return;
    const data = message instanceof ArrayBuffer ? new Uint8Array(message) : message;
    this.#framing = typeof data === "string" ? "json" : "binary";
    const size = typeof data === "string" ? data.length : data.byteLength;
    if (size > this.#limits.maxMessageBytes) {
      const err = new ProtocolError(
        this.#framing,
        WireError.tooLarge(size, this.#limits.maxMessageBytes),
      );
      this.#emit({ ev: "error", id: 0, msg: err.message });
      return;
    }
    let req: Request;
    try {
      req = decodeRequest(data);
    } catch (e) {
      const msg = e instanceof ProtocolError
        ? e.message
        : new ProtocolError(this.#framing, String(e)).message;
      this.#log.debug("bad request", { session: this.number, msg });
      this.#emit({ ev: "error", id: 0, msg });
      return;
    }
    try {
      this.#dispatch(req);
    } catch (e) {
      // A bug, not bad input: report it without killing the session.
      this.#log.error("request failed", { session: this.number, op: req.op, error: String(e) });
      this.#emit({ ev: "error", id: req.id, msg: "internal error" });
    }
  }

  #dispatch(req: Request): void {
    switch (req.op) {
      case "connect":
        return this.#connect(req.id, req.addr, req.port);
      case "send": {
        const entry = this.#table.get(req.id);
        if (!entry) {
          return this.#emit({ ev: "error", id: req.id, msg: WireError.unknownId(req.id) });
        }
        return entry.send(req.data);
      }
      case "close": {
        const entry = this.#table.get(req.id);
        if (!entry) {
          return this.#emit({ ev: "error", id: req.id, msg: WireError.unknownId(req.id) });
        }
        return entry.close();
      }
      case "connect_tls":
      case "connect_udp":
      case "bind":
      case "listen":
      case "send_to":
      case "resolve":
        return this.#emit({
          ev: "error",
          id: req.id,
          msg: WireError.unsupported(req.op, "not implemented by this server yet"),
        });
      default:
        return unreachable(req);
    }
  }

  /** Checks that `id` may name a new entry and a slot is free; emits the refusal otherwise. */
  #admit(id: number, counted: boolean): boolean {
    let msg: string | undefined;
    if (id >= SERVER_ID_BASE) msg = WireError.reservedId(id);
    else if (this.#table.has(id)) msg = WireError.idInUse(id);
    else if (counted && this.#slots >= this.#policy.maxConnections) {
      msg = WireError.maxConnections();
    }
    if (msg === undefined) return true;
    this.#emit({ ev: "error", id, msg });
    return false;
  }

  #connect(id: number, addr: string, port: number): void {
    if (!this.#admit(id, true)) return;
    const target = parseTarget(addr);
    if (target.kind === "invalid") {
      return this.#emit({ ev: "error", id, msg: WireError.invalidAddress(addr, target.reason) });
    }
    const verdict = this.#policy.checkTarget(target, port);
    if (!verdict.allowed) {
      this.#log.debug("denied", { session: this.number, id, addr, port, rule: verdict.rule });
      return this.#emit({ ev: "denied", id, msg: verdict.reason });
    }
    const socket = new StreamSocket(id, this.#ctx, `${addr}:${port}`);
    this.#table.set(id, socket);
    this.#slots++;
    this.#track(socket.dial(target, port, this.#policy));
  }

  #release(entry: SocketEntry, ev: WireEvent | undefined): void {
    if (this.#table.get(entry.id) === entry) this.#table.delete(entry.id);
    if (entry.counted) {
      entry.counted = false;
      this.#slots--;
    }
    this.#bytesUp += entry.bytesUp;
    this.#bytesDown += entry.bytesDown;
    if (ev) this.#emit(ev);
    this.#log.debug("socket end", {
      session: this.number,
      id: entry.id,
      dest: entry.dest,
      up: entry.bytesUp,
      down: entry.bytesDown,
      end: ev ? ev.ev : "session-end",
    });
  }

  #track(task: Promise<void>): void {
    const t = task.catch((e) => {
      this.#log.error("task failed", { session: this.number, error: String(e) });
    }).finally(() => this.#tasks.delete(t));
    this.#tasks.add(t);
  }

  #send(message: string | Uint8Array): void {
    if (this.#closed) return;
    try {
      this.#channel.send(message);
    } catch {
      // The WebSocket closed under us; the server calls close() next.
    }
  }

  #emit(ev: WireEvent): void {
    this.#send(encodeEvent(ev, this.#framing));
  }

  #emitData(id: number, frame: Uint8Array, n: number): void {
    if (this.#framing === "binary") {
      writeHeader(frame, MsgType.data, id);
      this.#send(frame.subarray(0, 9 + n));
    } else {
      this.#send(encodeEventJson({ ev: "data", id, data: frame.subarray(9, 9 + n) }));
    }
  }

  #drained(signal: AbortSignal): Promise<void> {
    if (this.#channel.bufferedAmount <= this.#limits.highWaterMarkBytes) return Promise.resolve();
    signal.throwIfAborted();
    return new Promise<void>((resolve, reject) => {
      const done = (): void => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = (): void => {
        this.#drainWaiters.delete(done);
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#drainWaiters.add(done);
      this.#pollDrain();
    });
  }

  #pollDrain(): void {
    if (this.#drainTimer !== undefined) return;
    this.#drainTimer = setTimeout(() => {
      this.#drainTimer = undefined;
      if (this.#drainWaiters.size === 0) return;
      if (this.#closed || this.#channel.bufferedAmount <= this.#limits.highWaterMarkBytes) {
        const waiters = [...this.#drainWaiters];
        this.#drainWaiters.clear();
        for (const w of waiters) w();
      } else {
        this.#pollDrain();
      }
    }, this.#limits.drainPollMs);
  }

  /**
   * Ends the session: cancels every dial, closes every socket and listener without emitting
   * events, stops timers, and resolves when every task of the session has finished. Idempotent.
   */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#abort.abort();
      for (const entry of [...this.#table.values()]) entry.finish(undefined);
      clearTimeout(this.#drainTimer);
      this.#drainTimer = undefined;
      const waiters = [...this.#drainWaiters];
      this.#drainWaiters.clear();
      for (const w of waiters) w();
      const s = this.stats;
      this.#log.info("session end", {
        session: this.number,
        sockets: s.opened,
        up: s.bytesUp,
        down: s.bytesDown,
        secs: ((Date.now() - this.#started) / 1000).toFixed(1),
      });
    }
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }

  /** Same as {@linkcode Session.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
