/**
 * Internal contracts between a session and the entries of its table, and the one path by which a
 * refusal or an ending becomes a wire event ({@linkcode eventFor}).
 *
 * @module
 */
import type { WireEvent } from "../protocol/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { IcmpEchoReply, Transport } from "../transport/mod.ts";
import type { SessionLimits } from "./options.ts";
import type { RateLimiter } from "../limit/mod.ts";
import type { SessionMetrics, SocketKind } from "./metrics.ts";

/**
 * Bandwidth limiter chains of a session: `up` (client → network) and `down` (network → client),
 * each the session's bucket then the server's. An empty chain (no buckets) never waits.
 */
export interface SessionBandwidth {
  /** Client → network payload. */
  readonly up: RateLimiter;
  /** Network → client payload. */
  readonly down: RateLimiter;
}

/**
 * What made an `error`, for personalities whose wire carries a reason code instead of a text
 * (Wisp's CLOSE reasons): `invalid` (a malformed address or request), `unreachable` (DNS found
 * nothing, no route), `refused` (the peer refused the connection), `timeout` (the dial did not
 * complete in time), `limit` (a session or server limit: connections, queues, lookups), `network`
 * (any other I/O failure, the default). A `denied` refusal is always the policy.
 */
export type Cause = "invalid" | "unreachable" | "refused" | "timeout" | "limit" | "network";

/**
 * A refusal: an `error` (something failed or was malformed) or a `denied` (the policy said no),
 * with its stable message (see `WireError` and the policy's verdict reasons).
 */
export interface Refusal {
  /** The event it goes out as. */
  readonly ev: "error" | "denied";
  /** The `msg` field. */
  readonly msg: string;
  /** What made an `error` (not sent by the wasmnet protocol; see {@linkcode Cause}). */
  readonly cause?: Cause;
  /**
   * For a `denied`: the policy verdict's rule (`"10.0.0.0/8"`, `"default-deny"`, ...), for logs
   * and metrics (not sent by the wasmnet protocol).
   */
  readonly rule?: string;
}

/**
 * How a table entry ends: `closed` (by the client or the peer), a refusal, or — for a lookup or
 * a ping — its answer. Sent as exactly one terminal event by {@linkcode eventFor}.
 */
export type Ending =
  | { readonly ev: "closed" }
  | Refusal
  | { readonly ev: "resolved"; readonly addrs: string[] }
  | { readonly ev: "pong"; readonly reply: IcmpEchoReply };

/** The `closed` ending. */
export const CLOSED: Ending = Object.freeze({ ev: "closed" });

/** An `error` refusal with message `msg` and, when known, its {@linkcode Cause}. */
export function fail(msg: string, cause?: Cause): Refusal {
  return cause === undefined ? { ev: "error", msg } : { ev: "error", msg, cause };
}

/**
 * The {@linkcode Cause} of a failed dial from the transport's error (Deno's error names, which
 * every transport uses: `transport/errors.ts`): `ConnectionRefused` → `refused`, `TimedOut` →
 * `timeout`, `NetworkUnreachable`/`HostUnreachable`/`AddrNotAvailable` → `unreachable`, else
 * `network`.
 */
export function causeOf(e: unknown): Cause {
  const name = e instanceof Error ? e.name : "";
  if (name === "ConnectionRefused") return "refused";
  if (name === "TimedOut") return "timeout";
  if (name === "NetworkUnreachable" || name === "HostUnreachable" || name === "AddrNotAvailable") {
    return "unreachable";
  }
  return "network";
}

/** The {@linkcode Cause} of an ending: `undefined` for `closed`, `resolved`, `pong` and `denied`. */
export function endingCause(ending: Ending): Cause | undefined {
  return ending.ev === "error" ? ending.cause ?? "network" : undefined;
}

/** A `denied` refusal with the policy's reason `msg` and the verdict's `rule` (when known). */
export function deny(msg: string, rule?: string): Refusal {
  return rule === undefined ? { ev: "denied", msg } : { ev: "denied", msg, rule };
}

/**
 * The wire event for an ending or refusal of `id` — the only place the session builds `closed`,
 * `error`, `denied`, `resolved` and `pong` events (DESIGN.md §4: every socket ends with exactly
 * one).
 */
export function eventFor(id: number, ending: Ending): WireEvent {
  switch (ending.ev) {
    case "closed":
      return { ev: "closed", id };
    case "resolved":
      return { ev: "resolved", id, addrs: ending.addrs };
    case "pong": {
      const r = ending.reply;
      return {
        ev: "pong",
        id,
        source: r.source,
        seq: r.seq,
        type: r.type,
        code: r.code,
        rtt_ms: r.rttMs,
        data: r.data,
      };
    }
    default:
      return { ev: ending.ev, id, msg: ending.msg };
  }
}

/** The common part of every table entry, as the session sees it when releasing one. */
export interface EntryInfo {
  /** The id the entry is registered under. */
  readonly id: number;
  /** Whether the entry holds a `max_connections` slot (pending dials, sockets, listeners). */
  counted: boolean;
  /** Destination or local address, for logs (the resolved `ip:port` once dialled). */
  readonly dest: string;
  /**
   * The request that made it (`connect`, `connect_tls`, `connect_udp`, `bind`, `resolve`,
   * `accept`, `ping`).
   */
  readonly op: string;
  /** The destination as the client sent it (`host:port`), for logs. */
  readonly requested: string;
  /** What it is as an open socket, once open (for metrics); undefined before and for lookups. */
  readonly socketKind: SocketKind | undefined;
  /** When it opened, ms since the epoch (0 before); set by {@linkcode SessionContext.opened}. */
  openedAt: number;
  /** Payload bytes client → network. */
  readonly bytesUp: number;
  /** Payload bytes network → client. */
  readonly bytesDown: number;
}

/** What a session lends the entries of its table. */
export interface SessionContext {
  /** Session limits. */
  readonly limits: Readonly<SessionLimits>;
  /** Network access. */
  readonly transport: Transport;
  /** Bandwidth limiter chains (empty chains when unlimited). */
  readonly bandwidth: SessionBandwidth;
  /** The session's logger. */
  readonly log: Logger;
  /** The session's metrics sink (a no-op one when the session has none). */
  readonly metrics: SessionMetrics;
  /**
   * Sends a non-terminal event (`connected`, `listening`, `accepted`, `udp_bound`, `data_from`) in
   * the session's current framing; dropped once the WebSocket is gone.
   */
  emit(ev: WireEvent): void;
  /**
   * Sends a refusal for `id` that does not end it (e.g. one dropped datagram); `dest` names what
   * was refused (a datagram's destination) in the log of a denial.
   */
  report(id: number, refusal: Refusal, dest?: string): void;
  /**
   * Sends a `data` event for `payload`, a view that has `HEADER_BYTES` (9) bytes of headroom in
   * its buffer just before it, so binary framing writes its header there and sends without a copy.
   */
  emitData(id: number, payload: Uint8Array): void;
  /** Resolves once the WebSocket's buffered amount allows more reads (backpressure). */
  drained(signal: AbortSignal): Promise<void>;
  /** Takes `bytes` from the session's queue budget; false when it would exceed it. */
  reserveQueue(bytes: number): boolean;
  /**
   * Why a queue bound was reached (for the `send queue full` message): the client kept sending
   * while the server had stopped reading it, or the channel cannot pause reads; "" otherwise (a
   * queue bound set below `uploadHighWaterBytes`).
   */
  overflowReason(): string;
  /** Gives back queue budget. */
  releaseQueue(bytes: number): void;
  /** Logs and counts that a socket opened (its `socketKind` set). */
  opened(entry: EntryInfo): void;
  /**
   * Reports that `bytes` of stream socket `id`'s queue reached its upstream peer (after the
   * write completed); Wisp's per-stream credit is given back from it.
   */
  written(id: number, bytes: number): void;
  /**
   * Removes an ended entry from the table, frees its slot once and sends `eventFor(ending)`
   * (nothing when `ending` is undefined: the session itself is ending).
   */
  release(entry: EntryInfo, ending: Ending | undefined): void;
  /** Keeps a task so the session can await it when it ends. */
  track(task: Promise<void>): void;
}
