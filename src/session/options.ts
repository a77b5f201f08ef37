/**
 * Limits of one session. All are per session; sizes in bytes, times in ms.
 *
 * @module
 */

/** Tunable limits of a {@linkcode Session}. Every field has a documented default. */
export interface SessionLimits {
  /**
   * Largest WebSocket message the session decodes, in bytes (default 4 MiB = 4194304). A larger
   * message is answered with `error` id 0 (`invalid request: message of N bytes exceeds the
   * limit of M bytes`, or the `invalid binary frame:` form) and dropped. Deno itself refuses
   * messages above 64 MiB by closing the WebSocket.
   */
  maxMessageBytes: number;
  /**
   * Most bytes a socket may hold queued for its upstream peer (client → upstream direction,
   * default 8 MiB). A `send` beyond it gets `error` (`send queue full: ...`) and the socket is
   * closed: the wasmnet protocol has no flow control from server to client, so this bound is
   * what keeps a fast client from growing server memory without limit.
   */
  maxSocketQueueBytes: number;
  /** Most bytes all sockets of the session may hold queued together (default 32 MiB). */
  maxSessionQueueBytes: number;
  /**
   * Upload high-water mark in bytes (default 2 MiB): once the session holds more than this for its
   * upstream sockets, it asks its channel to stop reading the client's messages (read
   * backpressure, when the channel supports it); reading resumes at or below
   * `uploadLowWaterBytes`. Keeps `maxSocketQueueBytes`/`maxSessionQueueBytes` for clients that
   * ignore TCP backpressure.
   */
  uploadHighWaterBytes: number;
  /** Upload low-water mark in bytes (default 512 KiB): reading resumes at or below it. */
  uploadLowWaterBytes: number;
  /**
   * WebSocket high-water mark in bytes (default 4 MiB): while the WebSocket's `bufferedAmount`
   * is above it, the session stops reading its upstream sockets (backpressure); reading resumes
   * once it is at or below half the mark.
   */
  highWaterMarkBytes: number;
  /**
   * Largest upstream read, and so the largest `data` message, in bytes (default 64 KiB: with 256
   * KiB, downloads measured 25–45% slower in `deno task bench:profile down json|binary` on Bun and
   * for JSON on Deno, equal for binary on Deno); a socket starts at 1 KiB, doubles while reads come
   * back full and halves while they come back a quarter full or less.
   */
  maxReadBytes: number;
  /** How long a `close` waits for queued bytes to reach the upstream peer (default 5000 ms). */
  closeLingerMs: number;
  /**
   * Interval at which paused readers re-check `bufferedAmount`, in ms (default 1). Deno's
   * WebSocket has no drain event, so one timer per paused session polls. Download throughput is
   * capped near `highWaterMarkBytes / 2` per poll interval: measured on loopback, a 1 MiB mark
   * polled every 5 ms gave 150 MiB/s, 4 MiB every 1 ms about 1,100 MiB/s (`deno task bench`).
   */
  drainPollMs: number;
  /**
   * Largest UDP datagram payload a client may send, in bytes (default 65507, the IPv4 maximum).
   * A larger one is dropped with `error` (`datagram dropped: ...`); the socket stays open.
   */
  maxDatagramBytes: number;
  /**
   * Most `resolve` lookups a session may have pending (default 32). One more is answered at once
   * with `error` (`too many pending lookups (limit N)`). Lookups take no `max_connections` slot, so
   * this bound holds under `--no-policy` too; the transport also bounds lookups per server.
   */
  maxPendingLookups: number;
}

/** The default {@linkcode SessionLimits}. */
export const DEFAULT_SESSION_LIMITS: Readonly<SessionLimits> = Object.freeze({
  maxMessageBytes: 4 * 1024 * 1024,
  maxSocketQueueBytes: 8 * 1024 * 1024,
  maxSessionQueueBytes: 32 * 1024 * 1024,
  uploadHighWaterBytes: 2 * 1024 * 1024,
  uploadLowWaterBytes: 512 * 1024,
  highWaterMarkBytes: 4 * 1024 * 1024,
  maxReadBytes: 64 * 1024,
  closeLingerMs: 5000,
  drainPollMs: 1,
  maxDatagramBytes: 65507,
  maxPendingLookups: 32,
});

/** Ids at and above this value (2^52) are reserved for server-assigned `conn_id`s. */
export const SERVER_ID_BASE = 2 ** 52;
