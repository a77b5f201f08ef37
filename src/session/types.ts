/**
 * Internal contracts between a session and its sockets.
 *
 * @module
 */
import type { WireEvent } from "../protocol/mod.ts";
import type { Logger } from "../log/mod.ts";
import type { Transport } from "../transport/mod.ts";
import type { SessionLimits } from "./options.ts";
import type { RateLimiter } from "../limit/mod.ts";

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

/** An entry of a session's socket table: a socket, a listener or a pending lookup. */
export interface SocketEntry {
  /** The id the entry is registered under. */
  readonly id: number;
  /** What the entry is. */
  readonly kind: "stream" | "udp" | "listener" | "lookup";
  /** Whether the entry holds a `max_connections` slot (pending dials, sockets, listeners). */
  counted: boolean;
  /** Destination or local address, for logs. */
  dest: string;
  /** Payload bytes client → network. */
  bytesUp: number;
  /** Payload bytes network → client. */
  bytesDown: number;
  /** Queues payload for the peer (`send`). */
  send(data: Uint8Array): void;
  /** Sends a datagram to `addr:port` (`send_to`; UDP sockets only). */
  sendTo?(addr: string, port: number, data: Uint8Array): void;
  /** The client's `close`. */
  close(): void;
  /** Ends the entry once, emitting `ev` unless undefined. */
  finish(ev: WireEvent | undefined): void;
}

/** What a session lends its sockets. */
export interface SessionContext {
  /** Session limits. */
  readonly limits: Readonly<SessionLimits>;
  /** Network access. */
  readonly transport: Transport;
  /** Bandwidth limiter chains (empty chains when unlimited). */
  readonly bandwidth: SessionBandwidth;
  /** The session's logger. */
  readonly log: Logger;
  /** Sends an event in the session's current framing (dropped once the WebSocket is gone). */
  emit(ev: WireEvent): void;
  /**
   * Sends a `data` event whose payload is `frame[9, 9 + n)`; `frame[0, 9)` is free for the
   * binary header, so binary framing sends without copying the payload.
   */
  emitData(id: number, frame: Uint8Array, n: number): void;
  /** Resolves once the WebSocket's buffered amount is at or below the high-water mark. */
  drained(signal: AbortSignal): Promise<void>;
  /** Takes `bytes` from the session's queue budget; false when it would exceed it. */
  reserveQueue(bytes: number): boolean;
  /** Gives back queue budget. */
  releaseQueue(bytes: number): void;
  /** Logs that a socket opened. */
  opened(entry: SocketEntry): void;
  /** Removes an ended entry from the table, frees its slot once and emits `ev`. */
  release(entry: SocketEntry, ev: WireEvent | undefined): void;
  /** Keeps a task so the session can await it when it ends. */
  track(task: Promise<void>): void;
}
