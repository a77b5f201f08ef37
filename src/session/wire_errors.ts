/**
 * The stable `msg` texts the session puts in `error` and `denied` events. Clients may match on
 * their prefixes; the README lists them.
 *
 * @module
 */

/** Builders for every `error` message the session sends. */
export const WireError = {
  /** A session already has `max_connections` pending dials, sockets and listeners. */
  maxConnections: (): string => "max connections reached",
  /** A request that opens something names an id that is live. */
  idInUse: (id: number): string => `id ${id} is already in use`,
  /** `send`/`close`/`send_to` name an id with no live socket. */
  unknownId: (id: number): string => `unknown id ${id}`,
  /** A client tried to open something with an id in the server's range. */
  reservedId: (id: number): string =>
    `id ${id} is reserved for server-assigned connection ids (2^52 and above)`,
  /** The `addr` or `name` of a request is not a host name or IP address. */
  invalidAddress: (addr: string, reason: string): string =>
    `invalid address ${JSON.stringify(addr.slice(0, 256))}: ${reason}`,
  /**
   * The socket's queue bound was exceeded; the socket is closed. `why` says how: the client kept
   * sending after the server stopped reading its WebSocket (it ignores TCP backpressure), or this
   * server cannot pause reads.
   */
  queueFull: (id: number, limit: number, why = ""): string =>
    `send queue full: socket ${id} has more than ${limit} bytes waiting for its peer${why}; ` +
    "socket closed",
  /** The session-wide queue bound was exceeded; the socket is closed. `why` as for `queueFull`. */
  sessionQueueFull: (id: number, limit: number, why = ""): string =>
    `send queue full: the session has more than ${limit} bytes waiting${why}; socket ${id} closed`,
  /** The `why` of a queue overflow while the server had stopped reading the client. */
  ignoredBackpressure: (): string =>
    " (the client kept sending after the server stopped reading it: it ignores TCP backpressure)",
  /** The `why` of a queue overflow on a channel whose reads cannot be paused. */
  noReadBackpressure: (): string =>
    " (this server cannot pause reading the client: see README, Limits)",
  /** The connect did not complete within `connection_timeout_secs`. */
  timedOut: (): string => "connection timed out",
  /** DNS failed. */
  lookupFailed: (name: string, detail: string): string =>
    `DNS lookup failed for ${JSON.stringify(name)}: ${detail}`,
  /** Every address of the target refused or failed. */
  connectFailed: (dest: string, detail: string): string => `connect to ${dest} failed: ${detail}`,
  /** The TLS handshake failed (certificate, protocol). */
  tlsFailed: (name: string, dest: string, detail: string): string =>
    `TLS handshake with ${name} (${dest}) failed: ${detail}`,
  /** The upstream connection failed while open. */
  ioFailed: (detail: string): string => `connection error: ${detail}`,
  /** The UDP socket could not be opened or failed. */
  udpFailed: (detail: string): string => `udp socket failed: ${detail}`,
  /** Too many bytes sent before `udp_bound`; the datagram is dropped. */
  udpNotBound: (id: number): string =>
    `datagram dropped: udp socket ${id} is not bound yet and its early-send queue is full`,
  /** A destination of the other address family than the socket's. */
  udpFamily: (addr: string, family: 4 | 6): string =>
    `datagram dropped: ${JSON.stringify(addr)} is not an IPv${family} destination ` +
    `(the socket is IPv${family}, chosen by its connect_udp address)`,
  /** A datagram above the size limit; dropped. */
  datagramTooLarge: (bytes: number, limit: number): string =>
    `datagram dropped: ${bytes} bytes exceeds the limit of ${limit} bytes`,
  /** A datagram that could not be sent; dropped. */
  datagramDropped: (detail: string): string => `datagram dropped: ${detail}`,
  /** A `send`/`send_to`/`listen` on an entry of the wrong kind. */
  wrongKind: (op: string, id: number, kind: string): string =>
    `op "${op}" is not supported on id ${id} (a ${kind})`,
  /** A `bind` that the OS refused. */
  bindFailed: (dest: string, detail: string): string => `bind to ${dest} failed: ${detail}`,
  /** A `send` names a socket that is closing. */
  closing: (id: number): string => `socket ${id} is closing`,
  /** A `send` after the client's `shutdown` (extension); the socket stays open for reading. */
  shutDown: (id: number): string => `socket ${id} is shut down for writing`,
  /**
   * A `start_tls` (extension) that cannot run on this socket now; the socket goes on as it was.
   * Clients recognise the refusal by its prefix `start_tls refused on socket N: `.
   */
  startTlsRefused: (id: number, why: string): string => `start_tls refused on socket ${id}: ${why}`,
  /** An op the session does not implement on this kind of socket. */
  unsupported: (op: string, why: string): string => `op "${op}" is not supported: ${why}`,
  /** A `resolve` while the session already has `maxPendingLookups` lookups pending. */
  tooManyLookups: (limit: number): string => `too many pending lookups (limit ${limit})`,
  /** A WebSocket message above the size limit (prefixed per framing). */
  tooLarge: (bytes: number, limit: number): string =>
    `message of ${bytes} bytes exceeds the limit of ${limit} bytes`,
};

/** The text of an unknown thrown value, without a stack trace. */
export function describe(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}
