/**
 * The seam between the session and the runtime's networking: the session receives a
 * {@linkcode Transport}, so unit tests can pass a fake and end-to-end tests the real one.
 *
 * @module
 */

/** A connected byte stream (TCP or TLS). `Deno.TcpConn` and `Deno.TlsConn` satisfy it. */
export interface StreamConn {
  /** Reads into `buffer`; resolves the byte count, or `null` at end of stream. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes some of `data`; resolves the number of bytes written. */
  write(data: Uint8Array): Promise<number>;
  /** Closes both directions and frees the resource. Throws if already closed. */
  close(): void;
}

/** A name server to query directly instead of the system resolver. */
export interface NameServer {
  /** IP address of the server, e.g. `127.0.0.1`. */
  ipAddr: string;
  /** UDP port, default 53. */
  port?: number;
}

/** Networking operations the session needs. Every call honours its `signal`. */
export interface Transport {
  /**
   * Resolves a host name to its IPv4 and IPv6 addresses (A and AAAA), deduplicated, in the
   * resolver's order.
   *
   * @throws {Error} when the name does not exist, the lookup fails or `signal` aborts.
   */
  lookup(name: string, signal: AbortSignal): Promise<string[]>;
  /**
   * Opens a TCP connection to an IP address (never a name: the caller dials the address it
   * checked) with TCP_NODELAY set.
   *
   * @throws {Error} (`Deno.errors.ConnectionRefused`, ...) on failure, `signal.reason` on abort.
   */
  connectTcp(ip: string, port: number, signal: AbortSignal): Promise<StreamConn>;
}
