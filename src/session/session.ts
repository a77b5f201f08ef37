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
  formatHostPort,
  type Framing,
  HEADER_BYTES,
  hostOfHostPort,
  MsgType,
  ProtocolError,
  type Request,
  unreachable,
  type WireEvent,
  writeHeader,
} from "../protocol/mod.ts";
import { parseTarget, type Policy, type Target } from "../policy/mod.ts";
import type { StreamConn, Transport } from "../transport/mod.ts";
import { getLogger, logFormat, type Logger } from "../log/mod.ts";
import { DEFAULT_SESSION_LIMITS, SERVER_ID_BASE, type SessionLimits } from "./options.ts";
import { StreamSocket } from "./stream_socket.ts";
import { UdpSocket } from "./udp_socket.ts";
import { ListenerEntry, LookupEntry } from "./listener.ts";
import { PingEntry } from "./ping.ts";
import {
  type Cause,
  deny,
  type Ending,
  endingCause,
  type EntryInfo,
  eventFor,
  fail,
  type Refusal,
  type SessionBandwidth,
  type SessionContext,
} from "./types.ts";
import { DrainPoller, RateLimiter } from "../limit/mod.ts";
import { describe, WireError } from "./wire_errors.ts";
import { NO_METRICS, type SessionMetrics } from "./metrics.ts";

/** An entry of a session's table, discriminated by `kind`. */
type TableEntry = StreamSocket | UdpSocket | ListenerEntry | LookupEntry | PingEntry;

/**
 * The WebSocket as the session sees it. A browser-style `WebSocket` satisfies it (without read
 * backpressure); the server's `ws` adapter adds `pauseReading`/`resumeReading`.
 */
export interface WireChannel {
  /**
   * Sends one message. May throw once the socket is closed (the session ignores that). The
   * session never reuses the bytes it passes, so an implementation may keep them without copying.
   */
  send(data: string | Uint8Array): void;
  /** Bytes queued by `send` and not yet written to the network. */
  readonly bufferedAmount: number;
  /**
   * Stops reading the client's messages (so TCP flow control pushes back on the client) until
   * {@linkcode WireChannel.resumeReading}. Called when the bytes the session holds for upstream
   * sockets pass `uploadHighWaterBytes`. A channel without it gets no read backpressure: the
   * queue bounds then end a socket whose client outruns its upstream.
   */
  pauseReading?(): void;
  /** Resumes reading after {@linkcode WireChannel.pauseReading}, once the queue is back under `uploadLowWaterBytes`. */
  resumeReading?(): void;
}

/**
 * How a session's events reach its client, for protocol personalities other than wasmnet's own
 * (Wisp, wsproxy: `session/wisp_session.ts`, `session/wsproxy_session.ts`). Without one, the
 * session encodes wasmnet events (JSON or binary, README "Protocol") on its {@linkcode WireChannel}.
 */
export interface SessionWire {
  /**
   * Every event except `data`: `connected`, `udp_bound`, `data_from`, `closed`, `error`,
   * `denied`, `listening`, `accepted`, `resolved`. `cause` classifies an `error` (see
   * {@linkcode Cause}); undefined for the others. `ends` is true for the one terminal event of an
   * id (its entry ended, or a request to open it was refused), false for events that leave it
   * as it was (e.g. `connected`, or an `error` for one dropped datagram).
   */
  event(ev: WireEvent, cause: Cause | undefined, ends: boolean): void;
  /**
   * A stream socket's upstream bytes: `payload` is a view with `HEADER_BYTES` (9) bytes of
   * headroom in its buffer just before it (a header may be written there and the frame sent
   * without copying); the wire may keep it.
   */
  data(id: number, payload: Uint8Array): void;
  /** `bytes` of stream socket `id`'s queued upload reached the upstream peer. */
  written?(id: number, bytes: number): void;
}

/** What a session needs: its policy, network access and limits. */
export interface SessionOptions {
  /**
   * Decides what the session may reach: a policy, or a function that returns the policy in force
   * now (read at every dial, lookup, bind and datagram destination, so a server that reloads its
   * policy, or narrows it per session with a ticket, changes what new dials may reach while open
   * sockets keep running).
   */
  policy: Policy | (() => Policy);
  /** Network access (the real one is `denoTransport()`). */
  transport: Transport;
  /** Limits; missing fields take {@linkcode DEFAULT_SESSION_LIMITS}. */
  limits?: Partial<SessionLimits>;
  /** Logger (default: the `session` logger). */
  log?: Logger;
  /**
   * Bandwidth limiter chains (default: unlimited). The server builds them from
   * `max_bandwidth_mbps` (per session) and `max_server_bandwidth_mbps` (shared by all sessions).
   */
  bandwidth?: SessionBandwidth;
  /** Label for log lines, e.g. the client's address. */
  label?: string;
  /**
   * Asked before every dial (`connect`, `connect_tls`, `connect_udp`, and so Wisp CONNECT): a
   * message refuses it (`error` with that message and cause `limit`), undefined lets it go. The
   * server's per-address dial rate (`--max-dials-per-ip-per-min`).
   */
  dialGate?: () => string | undefined;
  /**
   * Where events go (default: wasmnet's encoding on the channel). The channel still gives
   * `bufferedAmount` (download backpressure) and `pauseReading`/`resumeReading` (upload).
   */
  wire?: SessionWire;
  /** The protocol name in log lines (default `wasmnet`). */
  protocol?: string;
  /**
   * The tenant the session belongs to (a ticket's subject), in every log line of the session and
   * in metrics labels (default "": none).
   */
  tenant?: string;
  /**
   * Where the session reports what it does (sessions, sockets, dials, denials, bytes, read
   * pauses); default: nowhere. The server passes its Prometheus metrics (`src/server/metrics.ts`).
   */
  metrics?: SessionMetrics;
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
 * The level of `socket open` and `socket close` lines: `info` in the JSON audit log
 * (`--log-format json`), `debug` in text logs (two lines per connection would cost a busy
 * server's connect rate for a log nobody parses; denials stay at `info` in both).
 */
function socketLineLevel(): "info" | "debug" {
  return logFormat() === "json" ? "info" : "debug";
}

/**
 * UTF-8 byte length of `text` (what arrived on the wire). Exact when it could exceed `limit`;
 * otherwise any value ≤ `limit` (a UTF-16 unit is at most 3 UTF-8 bytes), so the common case
 * costs nothing.
 */
function utf8Length(text: string, limit: number): number {
  if (text.length * 3 <= limit) return text.length;
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4; // surrogate pair
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** Whole seconds and milliseconds since `start` (ms since the epoch), e.g. `1.234`. */
function secondsSince(start: number): string {
  return ((Date.now() - start) / 1000).toFixed(3);
}

/**
 * A wasmnet session over one WebSocket. Feed it every message with {@linkcode Session.handle};
 * when the WebSocket closes, `await session.close()` (or `await using`), which ends every dial,
 * pump, socket, listener and timer of the session.
 *
 * Events it emits on the channel (DESIGN.md §3): `connected`, `data`, `closed`, `error`, `denied`,
 * `listening`, `accepted`, `data_from`, `resolved`, `udp_bound`. It never throws from
 * {@linkcode Session.handle}: bad input becomes an `error` event.
 */
export class Session implements AsyncDisposable {
  /** Session number for logs (1, 2, ...). */
  readonly number: number = nextSessionNumber++;
  /** Protocol name (for the server's registry and `/healthz`). */
  readonly protocol = "wasmnet";
  readonly #channel: WireChannel;
  readonly #policyOf: () => Policy;
  readonly #log: Logger;
  readonly #label: string;
  readonly #limits: Readonly<SessionLimits>;
  readonly #table = new Map<number, TableEntry>();
  /** Tasks (pumps, dials) still running; `close()` waits until none are. */
  #tasks = 0;
  /** What `close()` waits on (every caller the same) until `#tasks` reaches 0. */
  #idle: PromiseWithResolvers<void> | undefined;
  readonly #abort = new AbortController();
  readonly #ctx: SessionContext;
  readonly #started = Date.now();
  #framing: Framing = "json";
  #nextConnId = SERVER_ID_BASE;
  #slots = 0;
  /** `resolve` lookups running now (until the lookup task ends, even after `close`). */
  #lookups = 0;
  #opened = 0;
  #queued = 0;
  #bytesUp = 0;
  #bytesDown = 0;
  #closed = false;
  /** Whether the channel was asked to stop reading (upload backpressure). */
  #readPaused = false;
  readonly #drain: DrainPoller;
  readonly #wire: SessionWire | undefined;
  readonly #dialGate: (() => string | undefined) | undefined;
  readonly #metrics: SessionMetrics;
  readonly #protocol: string;
  readonly #tenant: string;
  /** The fields every audit line of the session starts with (session, protocol, tenant, ip). */
  readonly #who: Readonly<Record<string, string | number>>;

  /**
   * @param channel the WebSocket to send events on.
   * @param options policy, transport, limits, logger.
   */
  constructor(channel: WireChannel, options: SessionOptions) {
    this.#channel = channel;
    const policy = options.policy;
    this.#policyOf = typeof policy === "function" ? policy : () => policy;
    this.#log = options.log ?? getLogger("session");
    this.#label = options.label ?? "";
    this.#wire = options.wire;
    this.#dialGate = options.dialGate;
    this.#metrics = options.metrics ?? NO_METRICS;
    this.#protocol = options.protocol ?? "wasmnet";
    this.#tenant = options.tenant ?? "";
    this.#who = {
      session: this.number,
      protocol: this.#protocol,
      tenant: this.#tenant,
      ip: hostOfHostPort(this.#label),
    };
    this.#limits = Object.freeze({ ...DEFAULT_SESSION_LIMITS, ...options.limits });
    this.#drain = new DrainPoller(channel, {
      lowWaterMark: this.#limits.highWaterMarkBytes / 2,
      pollMs: this.#limits.drainPollMs,
    });
    this.#ctx = {
      limits: this.#limits,
      transport: options.transport,
      bandwidth: options.bandwidth ?? { up: new RateLimiter([]), down: new RateLimiter([]) },
      log: this.#log,
      metrics: this.#metrics,
      emit: (ev) => this.#emit(ev),
      report: (id, refusal, dest) => {
        if (refusal.ev === "denied") {
          const entry = this.#table.get(id);
          this.#denied(
            id,
            entry?.kind === "udp" ? "send_to" : entry?.op ?? "",
            dest ?? "",
            refusal,
          );
        }
        this.#report(id, refusal);
      },
      emitData: (id, payload) => {
        this.#metrics.bytes("down", payload.byteLength);
        this.#emitData(id, payload);
      },
      drained: (signal) => this.#drained(signal),
      reserveQueue: (bytes) => {
        if (this.#queued + bytes > this.#limits.maxSessionQueueBytes) return false;
        this.#queued += bytes;
        if (!this.#readPaused && this.#queued > this.#limits.uploadHighWaterBytes) {
          this.#readPaused = this.#channel.pauseReading !== undefined;
          if (this.#readPaused) this.#metrics.readPaused();
          this.#channel.pauseReading?.();
        }
        return true;
      },
      overflowReason: () =>
        this.#channel.pauseReading === undefined
          ? WireError.noReadBackpressure()
          : this.#readPaused
          ? WireError.ignoredBackpressure()
          : "",
      releaseQueue: (bytes) => {
        this.#queued -= bytes;
        if (this.#readPaused && this.#queued <= this.#limits.uploadLowWaterBytes) {
          this.#readPaused = false;
          if (!this.#closed) this.#channel.resumeReading?.();
        }
      },
      written: (id, bytes) => {
        this.#metrics.bytes("up", bytes);
        this.#wire?.written?.(id, bytes);
      },
      opened: (entry) => {
        this.#opened++;
        entry.openedAt = Date.now();
        if (entry.socketKind !== undefined) this.#metrics.socketOpened(entry.socketKind);
        const level = socketLineLevel();
        if (!this.#log.enabled(level)) return;
        this.#log[level]("socket open", {
          ...this.#who,
          id: entry.id,
          op: entry.op,
          dest: entry.requested,
          addr: entry.dest,
          kind: entry.socketKind,
        });
      },
      release: (entry, ending) => this.#release(entry, ending),
      track: (task) => this.#track(task),
    };
    this.#metrics.sessionOpened(this.#protocol, this.#tenant);
    this.#log.info("session start", { ...this.#who, client: this.#label || undefined });
  }

  /** The policy in force now (see {@linkcode SessionOptions.policy}). */
  get #policy(): Policy {
    return this.#policyOf();
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
    const size = typeof data === "string"
      ? utf8Length(data, this.#limits.maxMessageBytes)
      : data.byteLength;
    if (size > this.#limits.maxMessageBytes) {
      const err = new ProtocolError(
        this.#framing,
        WireError.tooLarge(size, this.#limits.maxMessageBytes),
      );
      return this.#report(0, fail(err.message));
    }
    let req: Request;
    try {
      req = decodeRequest(data);
    } catch (e) {
      const msg = e instanceof ProtocolError
        ? e.message
        : new ProtocolError(this.#framing, String(e)).message;
      this.#log.debug("bad request", { session: this.number, msg });
      return this.#report(0, fail(msg));
    }
    this.request(req);
  }

  /**
   * Runs one decoded request (what {@linkcode Session.handle} does after decoding; protocol
   * personalities translate their own packets into these). Never throws: refusals and failures
   * become events.
   */
  request(req: Request): void {
    if (this.#closed) return;
    try {
      this.#dispatch(req);
    } catch (e) {
      // A bug, not bad input: report it without killing the session.
      this.#log.error("request failed", { session: this.number, op: req.op, error: String(e) });
      this.#report(req.id, fail("internal error"));
    }
  }

  #dispatch(req: Request): void {
    switch (req.op) {
      case "connect":
      case "connect_tls":
        return this.#connect(req.id, req.addr, req.port, req.op === "connect_tls");
      case "connect_udp":
        return this.#connectUdp(req.id, req.addr, req.port);
      case "bind":
        return this.#bind(req.id, req.addr, req.port);
      case "resolve":
        return this.#resolve(req.id, req.name);
      case "send": {
        const entry = this.#entry(req.id);
        if (entry?.kind === "stream" || entry?.kind === "udp") return entry.send(req.data);
        return this.#wrongKind("send", entry);
      }
      case "close":
        return this.#entry(req.id)?.close();
      case "send_to": {
        const entry = this.#entry(req.id);
        if (entry?.kind === "udp") return entry.sendTo(req.addr, req.port, req.data);
        return this.#wrongKind("send_to", entry);
      }
      case "listen": {
        // The backlog is a no-op: Deno does not expose it. Accepting started at `bind`.
        const entry = this.#entry(req.id);
        if (entry?.kind === "listener") return entry.listen();
        return this.#wrongKind("listen", entry);
      }
      case "start_tls":
        return this.#startTls(req.id, req.servername);
      case "shutdown": {
        const entry = this.#entry(req.id);
        if (entry?.kind === "stream") return entry.shutdown();
        return this.#wrongKind("shutdown", entry);
      }
      case "ping": {
        // Extension: one ICMP echo (session/ping.ts), checked like a connect's target.
        if (!this.#admit(req.id, true)) return;
        const target = this.#target(req.id, req.addr);
        if (!target) return;
        const entry = new PingEntry(req.id, this.#ctx, req.addr);
        entry.op = "ping";
        this.#register(entry);
        return this.#track(entry.run(target, this.#policy, req));
      }
      default:
        return unreachable(req);
    }
  }

  /**
   * `start_tls` (extension): upgrades stream socket `id` to TLS with `servername` (default: the
   * host it was opened with). No policy check: the peer is the one already checked and
   * connected; the log line names the upgrade.
   */
  #startTls(id: number, servername: string | undefined): void {
    const entry = this.#entry(id);
    if (entry?.kind !== "stream") return this.#wrongKind("start_tls", entry);
    let name: string | undefined;
    if (servername !== undefined) {
      const target = this.#target(id, servername);
      if (!target) return;
      name = target.kind === "name" ? target.name : target.ip;
    }
    this.#log.debug("start_tls", {
      session: this.number,
      id,
      dest: entry.dest,
      servername: name ?? "(the socket's host)",
    });
    entry.startTls(name, this.#policy.connectionTimeoutMs);
  }

  /** The live entry `id`, or undefined after answering `unknown id`. */
  #entry(id: number): TableEntry | undefined {
    const entry = this.#table.get(id);
    if (!entry) this.#report(id, fail(WireError.unknownId(id)));
    return entry;
  }

  /** Answers an op sent to an entry of the wrong kind (nothing when `entry` is unknown). */
  #wrongKind(op: string, entry: TableEntry | undefined): void {
    if (entry) this.#report(entry.id, fail(WireError.wrongKind(op, entry.id, entry.kind)));
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
    this.#report(id, fail(msg, msg === WireError.maxConnections() ? "limit" : "invalid"));
    return false;
  }

  /** Parses `addr`, answering `error` when it is not a host name or IP address. */
  #target(id: number, addr: string): Target | undefined {
    const target = parseTarget(addr);
    if (target.kind !== "invalid") return target;
    this.#report(id, fail(WireError.invalidAddress(addr, target.reason), "invalid"));
    return undefined;
  }

  #register(entry: TableEntry): void {
    this.#table.set(entry.id, entry);
    if (entry.counted) this.#slots++;
  }

  /** The dial gate's refusal for `id`, if any (answered here). */
  #gated(id: number): boolean {
    const why = this.#dialGate?.();
    if (why === undefined) return false;
    this.#report(id, fail(why, "limit"));
    return true;
  }

  #connect(id: number, addr: string, port: number, tls: boolean): void {
    if (!this.#admit(id, true) || this.#gated(id)) return;
    const target = this.#target(id, addr);
    if (!target) return;
    // The policy check (name, then every resolved address) happens once, inside dial.
    const socket = new StreamSocket(id, this.#ctx, `${addr}:${port}`);
    socket.op = tls ? "connect_tls" : "connect";
    this.#register(socket);
    this.#track(socket.dial(target, port, this.#policy, tls));
  }

  #connectUdp(id: number, addr: string, port: number): void {
    if (!this.#admit(id, true) || this.#gated(id)) return;
    const socket = new UdpSocket(id, this.#ctx, this.#policyOf, `${addr}:${port}`);
    socket.op = "connect_udp";
    this.#register(socket);
    this.#track(socket.open(addr, port));
  }

  #bind(id: number, addr: string, port: number): void {
    if (!this.#admit(id, true)) return;
    const target = this.#target(id, addr);
    if (!target) return;
    if (target.kind !== "ip") {
      return this.#report(
        id,
        fail(WireError.invalidAddress(addr, "bind needs an IP address, not a host name")),
      );
    }
    const verdict = this.#policy.checkBind(target.ip, port);
    if (!verdict.allowed) {
      const refusal = deny(verdict.reason, verdict.rule);
      this.#denied(id, "bind", formatHostPort(addr, port), refusal);
      return this.#report(id, refusal);
    }
    let listener;
    try {
      listener = this.#ctx.transport.listenTcp(target.ip, port);
    } catch (e) {
      return this.#report(
        id,
        fail(WireError.bindFailed(formatHostPort(target.ip, port), describe(e))),
      );
    }
    const entry = new ListenerEntry(
      id,
      this.#ctx,
      listener,
      (lid, conn, remote) => this.#accepted(lid, conn, remote),
      formatHostPort(target.ip, port),
    );
    entry.op = "bind";
    this.#register(entry);
    entry.start(); // answers `listening` (at once, or once an asynchronous listen is bound)
  }

  #accepted(listenerId: number, conn: StreamConn, remote: string): void {
    if (this.#closed || this.#slots >= this.#policy.maxConnections) {
      this.#log.warn("inbound connection refused: max connections reached", {
        session: this.number,
        listener: listenerId,
        remote,
      });
      try {
        conn.close();
      } catch {
        // already closed
      }
      return;
    }
    const connId = this.#nextConnId++;
    const socket = new StreamSocket(connId, this.#ctx, remote, false);
    socket.op = "accept";
    this.#register(socket);
    this.#emit({ ev: "accepted", id: listenerId, conn_id: connId, remote });
    socket.adopt(conn);
  }

  #resolve(id: number, name: string): void {
    if (!this.#admit(id, false)) return;
    const target = this.#target(id, name);
    if (!target) return;
    const verdict = this.#policy.checkLookup(target);
    if (!verdict.allowed) {
      const refusal = deny(verdict.reason, verdict.rule);
      this.#denied(id, "resolve", name, refusal);
      return this.#report(id, refusal);
    }
    if (this.#lookups >= this.#limits.maxPendingLookups) {
      return this.#report(
        id,
        fail(WireError.tooManyLookups(this.#limits.maxPendingLookups), "limit"),
      );
    }
    const entry = new LookupEntry(id, this.#ctx, name);
    entry.op = "resolve";
    this.#register(entry);
    this.#lookups++;
    this.#track(entry.run(target, this.#policy).finally(() => this.#lookups--));
  }

  #release(entry: EntryInfo, ending: Ending | undefined): void {
    if (this.#table.get(entry.id) === entry) this.#table.delete(entry.id);
    if (entry.counted) {
      entry.counted = false;
      this.#slots--;
    }
    this.#bytesUp += entry.bytesUp;
    this.#bytesDown += entry.bytesDown;
    if (entry.socketKind !== undefined) this.#metrics.socketClosed(entry.socketKind);
    if (ending?.ev === "denied") this.#denied(entry.id, entry.op, entry.requested, ending);
    if (ending) this.#emit(eventFor(entry.id, ending), endingCause(ending), true);
    // Only what was open is logged as closed (a refused dial or lookup has its own line).
    const level = socketLineLevel();
    if (entry.openedAt === 0 || !this.#log.enabled(level)) return;
    this.#log[level]("socket close", {
      ...this.#who,
      id: entry.id,
      op: entry.op,
      dest: entry.requested,
      addr: entry.dest,
      kind: entry.socketKind,
      up: entry.bytesUp,
      down: entry.bytesDown,
      secs: secondsSince(entry.openedAt),
      end: ending ? ending.ev : "session-end",
      error: ending?.ev === "error" ? ending.msg : undefined,
    });
  }

  /**
   * Counts and logs (at `info`) a policy denial of `op` on `dest` (as the client sent it): the
   * audit line `socket denied` with the verdict's rule and reason.
   */
  #denied(id: number, op: string, dest: string, refusal: Refusal): void {
    const rule = refusal.rule ?? "";
    this.#metrics.denied(rule);
    if (!this.#log.enabled("info")) return;
    this.#log.info("socket denied", { ...this.#who, id, op, dest, rule, reason: refusal.msg });
  }

  /**
   * Counts `task` until it settles. The two handlers are the session's own (no closures or
   * promise chains per task: a socket runs two pumps for its whole life).
   */
  #track(task: Promise<void>): void {
    this.#tasks++;
    task.then(this.#taskEnded, this.#taskFailed);
  }

  readonly #taskEnded = (): void => {
    if (--this.#tasks > 0) return;
    const idle = this.#idle;
    this.#idle = undefined;
    idle?.resolve();
  };

  readonly #taskFailed = (e: unknown): void => {
    this.#log.error("task failed", { session: this.number, error: String(e) });
    this.#taskEnded();
  };

  #send(message: string | Uint8Array): void {
    if (this.#closed) return;
    try {
      this.#channel.send(message);
    } catch {
      // The WebSocket closed under us; the server calls close() next.
    }
  }

  #emit(ev: WireEvent, cause?: Cause, ends = false): void {
    if (this.#wire) {
      if (!this.#closed) this.#wire.event(ev, cause, ends);
    } else this.#send(encodeEvent(ev, this.#framing));
  }

  /** A refusal for `id`: terminal when `id` has no entry (a refused open), else not. */
  #report(id: number, refusal: Refusal): void {
    this.#emit(eventFor(id, refusal), endingCause(refusal), !this.#table.has(id));
  }

  #emitData(id: number, payload: Uint8Array): void {
    if (this.#wire) {
      if (!this.#closed) this.#wire.data(id, payload);
    } else if (this.#framing === "binary") {
      const frame = new Uint8Array(
        payload.buffer,
        payload.byteOffset - HEADER_BYTES,
        HEADER_BYTES + payload.byteLength,
      );
      writeHeader(frame, MsgType.data, id);
      this.#send(frame);
    } else {
      this.#send(encodeEventJson({ ev: "data", id, data: payload }));
    }
  }

  #drained(signal: AbortSignal): Promise<void> {
    if (this.#channel.bufferedAmount <= this.#limits.highWaterMarkBytes) return Promise.resolve();
    return this.#drain.wait(signal);
  }

  /**
   * Ends the session: cancels every dial, closes every socket and listener without emitting
   * events, stops timers, and resolves when every task of the session has finished. Idempotent.
   */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#abort.abort();
      for (const entry of [...this.#table.values()]) entry.end(undefined);
      this.#drain.close();
      this.#metrics.sessionClosed(this.#protocol, this.#tenant);
      const s = this.stats;
      this.#log.info("session end", {
        ...this.#who,
        client: this.#label || undefined,
        sockets: s.opened,
        up: s.bytesUp,
        down: s.bytesDown,
        secs: secondsSince(this.#started),
      });
    }
    while (this.#tasks > 0) {
      this.#idle ??= Promise.withResolvers<void>();
      await this.#idle.promise;
    }
  }

  /** Same as {@linkcode Session.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
