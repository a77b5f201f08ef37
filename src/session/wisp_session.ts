/**
 * The Wisp personality: Wisp v1 and v2 packets (MercuryWorkshop/wisp-protocol `protocol.md`, v1.2
 * and 2.0 draft 6) translated into requests on a wasmnet {@linkcode Session}, whose policy,
 * resolve → check → dial path, transport, limits, pool and logs it shares; the session's events
 * come back as Wisp packets.
 *
 * Flow control (spec "0x03 - CONTINUE"): every TCP stream has a buffer of `bufferPackets` packets.
 * The server counts, per stream, the packets it holds for the upstream socket (`held`) and the
 * packets the client may still send (`unspent`: the credit of every CONTINUE not yet seen
 * arriving, which covers packets in flight, since a client replaces its credit with each
 * CONTINUE), and grants `bufferPackets − held − unspent` in a CONTINUE as writes complete. So a
 * client that follows its credit never makes the server hold more than `bufferPackets` packets of
 * a stream (up to one buffer more with stream open confirmation: see `#sendContinue`), and other streams
 * keep flowing while one upstream stalls. Credit counts packets, so it is sized in bytes too: a
 * CONTINUE gives no more packets than, at the size of the largest DATA payload seen on the
 * stream, fit in what is left of `streamBudgetBytes` (4 MiB), so a client whose packets do not
 * grow holds at most that much per stream, beyond the initial credit of the handshake. The
 * session's per-socket queue bound (raised to 2 buffers of {@linkcode WISP_MAX_PAYLOAD_BYTES}
 * packets plus the budget, 20 MiB by default) ends a stream whose client ignores its credit
 * (CLOSE 0x49); the WebSocket-wide read pause at 16 MiB held per connection comes first.
 *
 * @module
 */
import {
  CloseReason,
  decodeCredentials,
  decodePacket,
  encodeClose,
  encodeContinue,
  encodeData,
  encodeInfo,
  ExtensionId,
  PacketType,
  StreamType,
  utf8Bytes,
  WISP_HEADER_BYTES,
  WispError,
  type WispExtension,
  type WispPacket,
  writeWispHeader,
} from "../wisp/mod.ts";
import type { WireEvent } from "../protocol/mod.ts";
import { getLogger, type Logger } from "../log/mod.ts";
import { Session, type SessionOptions, type SessionWire, type WireChannel } from "./session.ts";
import type { Cause } from "./types.ts";
import { DEFAULT_SESSION_LIMITS } from "./options.ts";

/**
 * The DATA payload size, in bytes (64 KiB), that sizes the per-stream queue bound: two buffers of
 * such packets plus the byte budget. Larger packets are accepted; credit shrinks to fit them in
 * the byte budget.
 */
export const WISP_MAX_PAYLOAD_BYTES = 64 * 1024;

/** Settings of the Wisp personality (server options `wisp`; CLI `--wisp-*`). */
export interface WispSettings {
  /**
   * Packets of buffer each TCP stream gets (the CONTINUE value on stream 0; default 128, as the
   * wisp-js server).
   */
  bufferPackets?: number;
  /**
   * Bytes a stream may hold for its upstream (default 4 MiB): a CONTINUE gives no more credit
   * than packets as large as the largest seen on the stream fit in what is left of it, and none
   * while the stream holds this much.
   */
  streamBudgetBytes?: number;
  /**
   * Password authentication (v2 extension 0x02), required when set: user name → password. A v1
   * client (which cannot authenticate) gets CLOSE 0xc2 on stream 0 and the WebSocket closes.
   */
  users?: ReadonlyMap<string, string>;
  /** Message of the day (v2 extension 0x04), sent in the server's INFO. */
  motd?: string;
  /** Whether UDP streams are allowed (v2 extension 0x01; default true). */
  udp?: boolean;
}

/** The default {@linkcode WispSettings.bufferPackets}. */
export const DEFAULT_WISP_BUFFER_PACKETS = 128;
/** The default {@linkcode WispSettings.streamBudgetBytes} (4 MiB). */
export const DEFAULT_WISP_STREAM_BUDGET_BYTES = 4 * 1024 * 1024;

/** Options of a {@linkcode WispSession}: the session's, the Wisp settings, the version. */
export interface WispSessionOptions extends Omit<SessionOptions, "wire" | "protocol"> {
  /** The Wisp settings. */
  wisp?: WispSettings;
  /**
   * 2 when the upgrade carried `Sec-WebSocket-Protocol` (spec "Establishing a Websocket
   * Connection"), else 1.
   */
  version: 1 | 2;
  /** Closes the WebSocket with a status code and reason (RFC 6455 §7.4). */
  closeChannel: (code: number, reason: string) => Promise<void>;
}

interface Stream {
  readonly wispId: number;
  readonly id: number;
  readonly udp: boolean;
  /** Sizes of the DATA packets held for upstream, oldest first; `headWritten` of the first are out. */
  readonly sizes: number[];
  headWritten: number;
  heldBytes: number;
  /** The largest DATA payload seen on the stream, bytes (sizes credit in bytes). */
  largest: number;
  /** Last CONTINUE value and the packets received since it. */
  granted: number;
  received: number;
}

/**
 * Compares two passwords in time that depends only on their lengths, not on where they differ
 * (so a client cannot find a password byte by byte by timing refusals).
 */
function sameSecret(expected: string, given: string): boolean {
  const a = utf8Bytes(expected);
  const b = utf8Bytes(given);
  let diff = a.byteLength ^ b.byteLength;
  for (let i = 0; i < a.byteLength; i++) {
    diff |= (a[i] ?? 0) ^ (b[i % Math.max(1, b.byteLength)] ?? 0);
  }
  return diff === 0;
}

/** Wisp CLOSE reason for a terminal event of the session core. */
function reasonFor(ev: WireEvent, cause: Cause | undefined): number {
  if (ev.ev === "closed") return CloseReason.voluntary;
  if (ev.ev === "denied") return CloseReason.blocked;
  switch (cause) {
    case "invalid":
      return CloseReason.invalid;
    case "unreachable":
      return CloseReason.unreachable;
    case "timeout":
      return CloseReason.timeout;
    case "refused":
      return CloseReason.refused;
    case "limit":
      return CloseReason.throttled;
    default:
      return CloseReason.networkError;
  }
}

/**
 * One Wisp connection (one WebSocket). Feed it every message with {@linkcode WispSession.handle};
 * when the WebSocket closes, `await close()`. It sends the handshake on construction (v1:
 * CONTINUE on stream 0; v2: INFO, then CONTINUE after the client's INFO). Never throws from
 * `handle`: malformed packets get CLOSE 0x41 on their stream, or close the WebSocket (1002/1003)
 * when not even the header is readable.
 */
export class WispSession implements AsyncDisposable {
  /** Protocol name (for the registry and `/healthz`). */
  readonly protocol = "wisp";
  readonly #session: Session;
  readonly #channel: WireChannel;
  readonly #closeChannel: (code: number, reason: string) => Promise<void>;
  readonly #log: Logger;
  readonly #buffer: number;
  readonly #budget: number;
  readonly #users: ReadonlyMap<string, string> | undefined;
  readonly #udp: boolean;
  readonly #version: 1 | 2;
  #state: "handshake" | "open" | "closed" = "handshake";
  #confirmOpen = false;
  #nextId = 1;
  readonly #byWisp = new Map<number, Stream>();
  readonly #byId = new Map<number, Stream>();

  /**
   * @param channel the WebSocket (binary messages; `bufferedAmount` for download backpressure).
   * @param options the session's options, Wisp settings, version and a way to close the socket.
   */
  constructor(channel: WireChannel, options: WispSessionOptions) {
    const wisp = options.wisp ?? {};
    this.#channel = channel;
    this.#closeChannel = options.closeChannel;
    this.#log = options.log ?? getLogger("session");
    this.#buffer = Math.max(1, Math.floor(wisp.bufferPackets ?? DEFAULT_WISP_BUFFER_PACKETS));
    this.#budget = wisp.streamBudgetBytes ?? DEFAULT_WISP_STREAM_BUDGET_BYTES;
    this.#users = wisp.users && wisp.users.size > 0 ? wisp.users : undefined;
    this.#udp = wisp.udp ?? true;
    this.#version = options.version;
    const wire: SessionWire = {
      event: (ev, cause, ends) => this.#event(ev, cause, ends),
      data: (id, payload) => this.#data(id, payload),
      written: (id, bytes) => this.#written(id, bytes),
    };
    const { wisp: _w, version: _v, closeChannel: _c, ...sessionOptions } = options;
    this.#session = new Session(channel, {
      ...sessionOptions,
      // Credit bounds each stream; the WebSocket-wide read pause (which stalls every stream) is
      // only the backstop for clients that ignore it. A stream's queue bound is above what a
      // client that follows its credit can make it hold (2 buffers of 64 KiB packets, with the
      // open confirmation's extra buffer, plus the byte budget), so only clients that ignore
      // their credit meet it.
      limits: {
        uploadHighWaterBytes: 16 << 20,
        uploadLowWaterBytes: 8 << 20,
        maxSocketQueueBytes: Math.max(
          DEFAULT_SESSION_LIMITS.maxSocketQueueBytes,
          2 * this.#buffer * WISP_MAX_PAYLOAD_BYTES + this.#budget,
        ),
        ...options.limits,
      },
      wire,
      protocol: `wisp v${options.version}`,
    });
    if (options.version === 1) {
      if (this.#users) {
        // A v1 client cannot authenticate: it gets no stream.
        this.#log.info("wisp v1 client refused: authentication is required", {
          session: this.number,
        });
        this.#fail(CloseReason.authRequired, "authentication required (Wisp v2 only)");
      } else this.#open();
    } else this.#send(encodeInfo(2, 0, this.#serverExtensions(wisp.motd)));
  }

  /** Session number for logs. */
  get number(): number {
    return this.#session.number;
  }

  /** The underlying session (stats, tests). */
  get session(): Session {
    return this.#session;
  }

  /** Open streams now. */
  get streams(): number {
    return this.#byWisp.size;
  }

  #serverExtensions(motd: string | undefined): WispExtension[] {
    const none = new Uint8Array(0);
    const exts: WispExtension[] = [];
    if (this.#udp) exts.push({ id: ExtensionId.udp, payload: none });
    if (this.#users) exts.push({ id: ExtensionId.password, payload: Uint8Array.of(1) });
    if (motd !== undefined && motd !== "") {
      exts.push({ id: ExtensionId.motd, payload: utf8Bytes(motd) });
    }
    exts.push({ id: ExtensionId.streamOpen, payload: none });
    return exts;
  }

  /** Ends the handshake: streams may open; CONTINUE on stream 0 gives each stream's buffer. */
  #open(): void {
    this.#state = "open";
    this.#send(encodeContinue(0, this.#buffer));
  }

  /** CLOSE on stream 0 with `reason`, then the WebSocket closes (1008). */
  #fail(reason: number, text: string): void {
    this.#send(encodeClose(0, reason));
    this.#state = "closed";
    void this.#closeChannel(1008, text);
  }

  #send(packet: Uint8Array): void {
    try {
      this.#channel.send(packet);
    } catch {
      // the WebSocket closed; the server calls close() next
    }
  }

  /**
   * Handles one WebSocket message. Binary messages are Wisp packets; a text message closes the
   * WebSocket with 1003 (Wisp is binary only).
   */
  handle(message: string | Uint8Array | ArrayBuffer): void {
    if (this.#state === "closed") return;
    if (typeof message === "string") {
      this.#state = "closed";
      void this.#closeChannel(1003, "Wisp packets are binary messages");
      return;
    }
    const bytes = message instanceof ArrayBuffer ? new Uint8Array(message) : message;
    let packet: WispPacket;
    try {
      packet = decodePacket(bytes);
    } catch (e) {
      const err = e as WispError;
      this.#log.debug("bad wisp packet", { session: this.number, error: err.message });
      if (err.stream === undefined) {
        this.#state = "closed";
        void this.#closeChannel(1002, `malformed Wisp packet: ${err.message}`);
      } else if (err.stream !== 0) this.#closeStream(err.stream, CloseReason.invalid);
      else if (this.#state === "handshake") this.#fail(CloseReason.invalid, err.message);
      return;
    }
    if (this.#state === "handshake") {
      if (packet.type === "info") return this.#clientInfo(packet);
      if (this.#users) {
        return this.#fail(CloseReason.authRequired, "authentication required");
      }
      // A client that offered a subprotocol but speaks v1: carry on as v1.
      this.#open();
    }
    switch (packet.type) {
      case "connect":
        return this.#connect(packet.stream, packet.streamType, packet.host, packet.port);
      case "data":
        return this.#dataIn(packet.stream, packet.payload);
      case "close":
        return this.#clientClose(packet.stream);
      case "continue":
      case "info":
        return; // server-to-client only, or the handshake is over
    }
  }

  #clientInfo(info: Extract<WispPacket, { type: "info" }>): void {
    const ids = new Set(info.extensions.map((e) => e.id));
    this.#confirmOpen = ids.has(ExtensionId.streamOpen);
    if (this.#users) {
      const ext = info.extensions.find((e) => e.id === ExtensionId.password);
      if (!ext) return this.#fail(CloseReason.authRequired, "authentication required");
      let ok = false;
      let user = "";
      try {
        const creds = decodeCredentials(ext.payload);
        user = creds.user;
        const expected = this.#users.get(creds.user);
        ok = expected !== undefined && sameSecret(expected, creds.password);
      } catch {
        ok = false;
      }
      if (!ok) {
        this.#log.warn("wisp authentication failed", { session: this.number, user });
        return this.#fail(CloseReason.authInvalidPassword, "authentication failed");
      }
      this.#log.info("wisp client authenticated", { session: this.number, user });
    }
    this.#open();
  }

  #connect(wispId: number, streamType: number, host: string, port: number): void {
    if (wispId === 0) return; // stream 0 is the connection itself
    if (this.#byWisp.has(wispId)) return this.#closeStream(wispId, CloseReason.invalid);
    const udp = streamType === StreamType.udp;
    if (!udp && streamType !== StreamType.tcp) {
      return this.#send(encodeClose(wispId, CloseReason.invalid));
    }
    if (udp && !this.#udp) return this.#send(encodeClose(wispId, CloseReason.invalid));
    // Port 0 names no destination (spec: "the port is invalid" → 0x41).
    if (port === 0) return this.#send(encodeClose(wispId, CloseReason.invalid));
    const stream: Stream = {
      wispId,
      id: this.#nextId++,
      udp,
      sizes: [],
      headWritten: 0,
      heldBytes: 0,
      largest: 0,
      granted: this.#buffer,
      received: 0,
    };
    this.#byWisp.set(wispId, stream);
    this.#byId.set(stream.id, stream);
    this.#session.request({ op: udp ? "connect_udp" : "connect", id: stream.id, addr: host, port });
  }

  #dataIn(wispId: number, payload: Uint8Array): void {
    const stream = this.#byWisp.get(wispId);
    if (!stream) return; // a stream that just ended: its packets in flight are dropped
    if (!stream.udp) {
      stream.received++;
      if (payload.byteLength === 0) {
        this.#grant(stream); // nothing to write: the packet is done at once
        return;
      }
      stream.sizes.push(payload.byteLength);
      stream.heldBytes += payload.byteLength;
      if (payload.byteLength > stream.largest) stream.largest = payload.byteLength;
    }
    this.#session.request({ op: "send", id: stream.id, data: payload });
  }

  #clientClose(wispId: number): void {
    const stream = this.#byWisp.get(wispId);
    if (!stream) return;
    this.#forget(stream);
    // Queued bytes still reach the upstream peer (for up to closeLingerMs), then it closes.
    this.#session.request({ op: "close", id: stream.id });
  }

  /** Ends a stream from the server side: CLOSE to the client, the socket closed. */
  #closeStream(wispId: number, reason: number): void {
    const stream = this.#byWisp.get(wispId);
    this.#send(encodeClose(wispId, reason));
    if (!stream) return;
    this.#forget(stream);
    this.#session.request({ op: "close", id: stream.id });
  }

  #forget(stream: Stream): void {
    this.#byWisp.delete(stream.wispId);
    this.#byId.delete(stream.id);
  }

  #event(ev: WireEvent, cause: Cause | undefined, ends: boolean): void {
    const stream = this.#byId.get(ev.id);
    if (!stream) return; // the client closed it: nothing more is said about it
    if (ends) {
      this.#forget(stream);
      this.#send(encodeClose(stream.wispId, reasonFor(ev, cause)));
      if (ev.ev === "error" || ev.ev === "denied") {
        this.#log.debug("wisp stream refused", {
          session: this.number,
          stream: stream.wispId,
          ev: ev.ev,
          msg: ev.msg,
        });
      }
      return;
    }
    switch (ev.ev) {
      case "connected":
        // Stream open confirmation (v2 extension 0x05): a CONTINUE once the socket is connected,
        // with the buffer the stream has left. The client's unspent credit may still be in flight,
        // so this may let it hold up to one buffer more (README, "Flow control"); giving only the
        // safe credit instead could be 0, which would stall a client that sent nothing.
        if (this.#confirmOpen) {
          this.#sendContinue(stream, Math.max(0, this.#buffer - stream.sizes.length), false);
        }
        return;
      case "data_from":
        this.#send(encodeData(stream.wispId, ev.data));
        return;
      default:
        // udp_bound; a non-terminal error (a dropped datagram, data after close): nothing to say
        return;
    }
  }

  #data(id: number, payload: Uint8Array): void {
    const stream = this.#byId.get(id);
    if (!stream) return;
    // The payload has 9 bytes of headroom: the 5-byte header goes there, no copy.
    const frame = new Uint8Array(
      payload.buffer,
      payload.byteOffset - WISP_HEADER_BYTES,
      WISP_HEADER_BYTES + payload.byteLength,
    );
    writeWispHeader(frame, PacketType.data, stream.wispId);
    this.#send(frame);
  }

  #written(id: number, bytes: number): void {
    const stream = this.#byId.get(id);
    if (!stream) return;
    stream.heldBytes -= bytes;
    stream.headWritten += bytes;
    const sizes = stream.sizes;
    while (sizes.length > 0 && stream.headWritten >= (sizes[0] ?? 0)) {
      stream.headWritten -= sizes.shift() ?? 0;
    }
    this.#grant(stream);
  }

  /** The credit a CONTINUE may give now: the buffer minus held packets and unspent credit. */
  #credit(stream: Stream): number {
    const unspent = Math.max(0, stream.granted - stream.received);
    const packets = this.#buffer - stream.sizes.length - unspent;
    // In bytes too: packets as large as the largest seen so far must fit the byte budget (one at
    // least once the stream holds nothing, so a packet larger than the budget cannot stall it).
    const fit = Math.floor((this.#budget - stream.heldBytes) / Math.max(1, stream.largest));
    const bytes = Math.max(fit, stream.sizes.length === 0 ? 1 : 0) - unspent;
    return Math.max(0, Math.min(packets, bytes));
  }

  /**
   * Sends CONTINUE when it matters: the client's unspent credit is under half the buffer and at
   * least a quarter of the buffer (or, with none left, one packet) can be given, and the stream
   * holds less than its byte budget.
   */
  #grant(stream: Stream): void {
    if (stream.heldBytes >= this.#budget) return;
    const unspent = Math.max(0, stream.granted - stream.received);
    if (unspent * 2 >= this.#buffer) return;
    const credit = this.#credit(stream);
    if (credit === 0 || (unspent > 0 && credit * 4 < this.#buffer)) return;
    this.#sendContinue(stream, credit);
  }

  /**
   * Sends CONTINUE(`credit`). The client replaces its credit with it, but packets it sent on the
   * old credit may still be in flight: they arrive after this and must not be counted against the
   * new credit, so the unspent old credit stays counted as "may still arrive" (`granted` =
   * unspent + credit). A client that never sends that old credit leaves it counted for good, which
   * only narrows its window: a grant needs `unspent < buffer / 2`, so the window stays above half
   * the buffer. The stream open confirmation passes `carry = false`: there the unspent credit may
   * be a whole buffer (the client may not have sent at all), which carried would stall the stream;
   * forgetting it lets the packets in flight at that moment (at most one buffer) count against the
   * new credit, so such a stream may hold up to one buffer more (README, "Flow control").
   */
  #sendContinue(stream: Stream, credit: number, carry = true): void {
    const unspent = Math.max(0, stream.granted - stream.received);
    stream.granted = (carry ? unspent : 0) + credit;
    stream.received = 0;
    this.#send(encodeContinue(stream.wispId, credit));
  }

  /** Ends the connection: every stream's socket closes without CLOSE packets. Idempotent. */
  async close(): Promise<void> {
    this.#state = "closed";
    this.#byWisp.clear();
    this.#byId.clear();
    await this.#session.close();
  }

  /** Same as {@linkcode WispSession.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
