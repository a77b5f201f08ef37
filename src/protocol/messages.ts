/**
 * Message types of the wasmnet wire protocol (wasmnet 0.1.3, `src/protocol.rs`), plus three
 * backward-compatible extensions of this server: `start_tls` (0x0A), `shutdown` (0x0B) and
 * `ping` (0x0C, answered by `pong`, 0x8B) (README "Wire protocol"). A server without them
 * answers them like any unknown op.
 *
 * Each WebSocket message carries exactly one {@linkcode Request} (client → server) or one
 * {@linkcode WireEvent} (server → client). Payload bytes are carried as `Uint8Array` here; the
 * JSON codec turns them into base64 and the binary codec carries them raw.
 *
 * @module
 */

/** Largest id the protocol accepts: 2^53-1, the largest integer a JavaScript number holds exactly. */
export const MAX_ID: number = Number.MAX_SAFE_INTEGER;

/** Default `listen` backlog when a request omits it (wasmnet 0.1.3 `default_backlog`). */
export const DEFAULT_BACKLOG = 128;

/** `timeout_ms` of a `ping` that omits it: 1000 ms. */
export const DEFAULT_PING_TIMEOUT_MS = 1000;

/** Largest `timeout_ms` of a `ping`: 60000 ms. */
export const MAX_PING_TIMEOUT_MS = 60_000;

/** Length in bytes of the binary frame header: type u8 + id u64 big-endian. */
export const HEADER_BYTES = 9;

/** Binary type byte of each request and event (DESIGN.md §3, wasmnet `binary.rs` `msg_type`). */
export const MsgType = {
  connect: 0x01,
  bind: 0x02,
  listen: 0x03,
  send: 0x04,
  close: 0x05,
  connect_udp: 0x06,
  send_to: 0x07,
  resolve: 0x08,
  connect_tls: 0x09,
  /** Extension: upgrade an open TCP socket to TLS (payload: servername, may be empty). */
  start_tls: 0x0a,
  /** Extension: half-close (FIN) the write side of a socket (no payload). */
  shutdown: 0x0b,
  /**
   * Extension: one ICMP echo request (payload: seq u16, timeout_ms u32, addr_len u16, addr,
   * data).
   */
  ping: 0x0c,
  connected: 0x81,
  data: 0x82,
  listening: 0x83,
  accepted: 0x84,
  closed: 0x85,
  error: 0x86,
  denied: 0x87,
  data_from: 0x88,
  resolved: 0x89,
  udp_bound: 0x8a,
  /**
   * Extension: the echo reply of a `ping` (payload: seq u16, type u8, code u8, rtt_ms f64,
   * source_len u16, source, data).
   */
  pong: 0x8b,
} as const;

/** Ops that open a socket to `addr:port` (and `bind`, which opens a listener on it). */
export type AddrOp = "connect" | "connect_tls" | "connect_udp" | "bind";

/**
 * A client request, decoded and validated. `id` is a client-chosen integer in `[0, 2^53-1]`
 * naming a socket, listener or lookup; `port` is in `[0, 65535]`.
 *
 * Extensions (not in wasmnet 0.1.3): `start_tls` upgrades an open TCP socket to TLS, with
 * `servername` for SNI and certificate verification (absent: the host the socket was opened
 * with; the codecs never produce an empty one); `shutdown` half-closes its write side; `ping`
 * sends one ICMP echo request to `addr` (a name or an IP address) with sequence number `seq`
 * (0–65535) and payload `data`, and waits `timeout_ms` (1–60000) for the reply.
 */
export type Request =
  | { op: AddrOp; id: number; addr: string; port: number }
  | { op: "listen"; id: number; backlog: number }
  | { op: "send"; id: number; data: Uint8Array }
  | { op: "send_to"; id: number; addr: string; port: number; data: Uint8Array }
  | { op: "close"; id: number }
  | { op: "resolve"; id: number; name: string }
  | { op: "start_tls"; id: number; servername?: string }
  | { op: "shutdown"; id: number }
  | { op: "ping"; id: number; addr: string; seq: number; data: Uint8Array; timeout_ms: number };

/** Name of a request operation. */
export type Op = Request["op"];

/**
 * A server event. `conn_id` of `accepted` is a server-chosen id; `remote` is `1.2.3.4:5678` or
 * `[::1]:5678`; `addrs` of `resolved` are IP address strings. `pong` (extension) answers a
 * `ping`: the replying address, the sequence number, ICMP type (0, or 129 for ICMPv6) and code,
 * the round-trip time in milliseconds and the echoed payload.
 */
export type WireEvent =
  | { ev: "connected"; id: number }
  | { ev: "data"; id: number; data: Uint8Array }
  | { ev: "listening"; id: number; port: number }
  | { ev: "accepted"; id: number; conn_id: number; remote: string }
  | { ev: "closed"; id: number }
  | { ev: "error"; id: number; msg: string }
  | { ev: "denied"; id: number; msg: string }
  | { ev: "data_from"; id: number; data: Uint8Array; addr: string; port: number }
  | { ev: "resolved"; id: number; addrs: string[] }
  | { ev: "udp_bound"; id: number; port: number }
  | {
    ev: "pong";
    id: number;
    source: string;
    seq: number;
    type: number;
    code: number;
    rtt_ms: number;
    data: Uint8Array;
  };

/** Name of an event. */
export type Ev = WireEvent["ev"];

/** The framing of a WebSocket message: a text message (JSON) or a binary message. */
export type Framing = "json" | "binary";

/**
 * Thrown by the decoders when a message cannot be decoded. The session answers it with an
 * `error` event for id 0 whose `msg` is this error's `message`, which starts with
 * `invalid request: ` (JSON) or `invalid binary frame: ` (binary), as wasmnet 0.1.3 does.
 */
export class ProtocolError extends Error {
  /** Stable code for programmatic handling. */
  readonly code = "EPROTOCOL";
  /** The framing of the message that failed to decode. */
  readonly framing: Framing;
  /**
   * @param framing framing of the undecodable message; selects the message prefix.
   * @param detail what is wrong, e.g. `unknown op "foo"`.
   */
  constructor(framing: Framing, detail: string) {
    super(`${framing === "json" ? "invalid request" : "invalid binary frame"}: ${detail}`);
    this.name = "ProtocolError";
    this.framing = framing;
  }
}

/** True when `n` is a valid protocol id: an integer in `[0, 2^53-1]`. */
export function isValidId(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
}

/** True when `n` is a valid port: an integer in `[0, 65535]`. */
export function isValidPort(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 0xffff;
}

/** Exhaustiveness check for discriminated unions: a compile error when a case is missing. */
export function unreachable(x: never): never {
  throw new Error(`unreachable: ${JSON.stringify(x)}`);
}
