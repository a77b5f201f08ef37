/**
 * The seam between the session and the runtime's networking: the session receives a
 * {@linkcode Transport}, so unit tests can pass a fake and end-to-end tests the real one.
 *
 * @module
 */

/**
 * A connected byte stream (TCP or TLS). `Deno.TcpConn`, `Deno.TlsConn` and the transport's
 * `TlsConn` satisfy it.
 */
export interface StreamConn {
  /** Reads into `buffer`; resolves the byte count, or `null` at end of stream. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes some of `data`; resolves the number of bytes written. */
  write(data: Uint8Array): Promise<number>;
  /**
   * Closes both directions and frees the resource at once. May throw if already closed (a
   * `Deno.TcpConn` does; the transport's `TlsConn` does nothing).
   */
  close(): void;
  /** Half-closes the write side (for TLS: sends close_notify). Optional. */
  closeWrite?(): Promise<void>;
}

/** A UDP socket. `Deno.DatagramConn` satisfies it. */
export interface DatagramConn {
  /** Local address, for the bound port. */
  readonly addr: Deno.Addr;
  /** Waits for the next datagram; resolves its bytes and sender. */
  receive(buffer?: Uint8Array): Promise<[Uint8Array, Deno.Addr]>;
  /** Sends one datagram to `addr`; resolves the bytes sent. */
  send(data: Uint8Array, addr: Deno.NetAddr): Promise<number>;
  /** Closes the socket; a pending `receive` rejects. */
  close(): void;
}

/** A TCP listener. `Deno.TcpListener` satisfies it. */
export interface StreamListener {
  /** Local address, for the bound port. */
  readonly addr: Deno.Addr;
  /** Waits for the next connection. Rejects once the listener is closed. */
  accept(): Promise<
    StreamConn & { readonly remoteAddr: Deno.Addr; setNoDelay?(on?: boolean): void }
  >;
  /** Stops listening; a pending `accept` rejects. */
  close(): void;
}

/** TLS client settings for `connect_tls`. */
export interface TlsClientSettings {
  /** Extra trusted CA certificates (PEM) besides the default root store. */
  caCerts?: readonly string[] | undefined;
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
   * checked) with TCP_NODELAY set. When the promise rejects, no socket of the dial stays with
   * the caller (a dial that completes after an abort is closed by the transport).
   *
   * @throws {Error} (`Deno.errors.ConnectionRefused`, ...) on failure, `too many connection
   * attempts in flight (limit N)` beyond the transport's dial bound, `signal.reason` on abort.
   */
  connectTcp(ip: string, port: number, signal: AbortSignal): Promise<StreamConn>;
  /**
   * Runs a TLS client handshake over `conn` (from {@linkcode Transport.connectTcp}) with
   * `serverName` for SNI (none for an IP) and certificate verification. `conn` belongs to the
   * transport from the call on: it is inside the resolved connection, or closed when the promise
   * rejects (failure, or abort before or during the handshake).
   *
   * @throws {Error} on a failed handshake, an error whose message is a short stable detail such
   * as `certificate is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE)` (the real transport's
   * `TlsError`); `signal.reason` on abort.
   */
  startTls(conn: StreamConn, serverName: string, signal: AbortSignal): Promise<StreamConn>;
  /** Opens a UDP socket on an ephemeral port for the address family. */
  openUdp(family: 4 | 6): DatagramConn;
  /** Listens for TCP on `ip:port`. @throws {Error} `Deno.errors.AddrInUse`, ... */
  listenTcp(ip: string, port: number): StreamListener;
}
