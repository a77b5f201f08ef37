/**
 * The session's metrics sink: what a session reports as it runs (sessions, sockets, dials,
 * denials, bytes, read pauses), as plain calls. The session core stays free of any metrics
 * library; the server implements the sink with Prometheus counters (`src/server/metrics.ts`).
 *
 * @module
 */
import type { Refusal } from "./types.ts";

/**
 * How a dial (`connect`, `connect_tls`) ended: `connected` (TCP and, for TLS, the handshake
 * done), `denied` (the policy), `refused` (the peer refused: `Cause` `refused`), `timeout`
 * (`connection_timeout_secs` or the OS timed out: `Cause` `timeout`), `error` (anything else: the
 * name did not resolve, no route, a TLS handshake failed). Dials the client cancelled (a `close`
 * before `connected`, the session ending) are not reported.
 */
export type DialResult = "connected" | "denied" | "refused" | "timeout" | "error";

/**
 * What an open socket is: `tcp` (a TCP stream, dialled or accepted), `tls` (a TLS stream, also
 * after `start_tls`), `udp`, `listener` (a `bind`).
 */
export type SocketKind = "tcp" | "tls" | "udp" | "listener";

/** A direction of payload bytes: `up` (client → network) or `down` (network → client). */
export type Direction = "up" | "down";

/**
 * The metrics sink of a session ({@linkcode SessionOptions.metrics}). Every method is called on
 * the session's hot paths and must be cheap and never throw.
 */
export interface SessionMetrics {
  /**
   * A session started. `protocol` is the session's protocol as logged (`wasmnet`, `wisp v1`,
   * `wisp v2`, `wsproxy`); `tenant` the ticket's subject, or "" without one.
   */
  sessionOpened(protocol: string, tenant: string): void;
  /** The session started with the same arguments ended (called once). */
  sessionClosed(protocol: string, tenant: string): void;
  /** A socket of `kind` opened (each later {@linkcode SessionMetrics.socketClosed} pairs with it). */
  socketOpened(kind: SocketKind): void;
  /** A socket of `kind` closed. */
  socketClosed(kind: SocketKind): void;
  /** A dial ended with `result` after `seconds` (from the request to `connected` or the refusal). */
  dialed(result: DialResult, seconds: number): void;
  /**
   * The policy denied something (a dial, a resolved address, a datagram destination, a lookup, a
   * bind): `rule` is the verdict's rule (`"10.0.0.0/8"`, `"default-deny"`, `"bind_ports"`, ...).
   */
  denied(rule: string): void;
  /** `n` payload bytes moved in `direction` (reported as they flow, not at close). */
  bytes(direction: Direction, n: number): void;
  /** The session stopped reading its client's WebSocket (upload backpressure). */
  readPaused(): void;
}

/** A sink that records nothing (the default of a session without one). */
export const NO_METRICS: SessionMetrics = Object.freeze({
  sessionOpened: () => {},
  sessionClosed: () => {},
  socketOpened: () => {},
  socketClosed: () => {},
  dialed: () => {},
  denied: () => {},
  bytes: () => {},
  readPaused: () => {},
});

/**
 * The {@linkcode DialResult} of a refused dial: `denied` for a policy refusal, else from its
 * `Cause` (`refused`, `timeout`; anything else `error`).
 *
 * @example
 * ```ts
 * import { dialResult } from "./metrics.ts";
 * dialResult({ ev: "error", msg: "connection refused", cause: "refused" }); // "refused"
 * ```
 */
export function dialResult(refusal: Refusal): DialResult {
  if (refusal.ev === "denied") return "denied";
  if (refusal.cause === "refused" || refusal.cause === "timeout") return refusal.cause;
  return "error";
}
