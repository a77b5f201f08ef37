/**
 * The seam between the session and the runtime's networking: the session receives a
 * {@linkcode Transport}, so unit tests can pass a fake and end-to-end tests the real one.
 *
 * @module
 */

/**
 * A socket address: an IP address (never a name) and a port. `Deno.NetAddr` satisfies it; the Bun
 * transport builds it from `node:net`/`node:dgram` addresses.
 */
export interface NetAddr {
  /** `tcp` or `udp`. */
  readonly transport: "tcp" | "udp";
  /** The IP address, e.g. `127.0.0.1` or `::1` (IPv6 without brackets). */
  readonly hostname: string;
  /** The port, 0–65535. */
  readonly port: number;
}

/**
 * A connected byte stream (TCP or TLS). `Deno.TcpConn`, `Deno.TlsConn`, the shared `TlsConn` and
 * the Bun transport's connections satisfy it. Errors are runtime-neutral: a closed connection
 * rejects with an error named `BadResource` or `Interrupted`; other failures carry the OS error's
 * name and message as Deno words them (`ConnectionReset`, `Connection reset by peer (os error
 * 104)`), whichever runtime the transport runs on, so clients see the same text.
 */
export interface StreamConn {
  /** Reads into `buffer`; resolves the byte count, or `null` at end of stream. */
  read(buffer: Uint8Array): Promise<number | null>;
  /**
   * Optional, for connections whose bytes arrive by events and wait in a queue (Bun's sockets,
   * `node:net`, `node:tls`): takes up to `max` received bytes (at least 1) as a new buffer of
   * exactly that many bytes plus `headroom` unused bytes in front, and resolves a view of the
   * bytes (`byteOffset` = `headroom`), or `null` at end of stream. Compared with `read()` into a
   * buffer the caller allocated, the bytes are copied once, nothing is zero-filled first and no
   * capacity goes unused, and no buffer is held while waiting. Errors as `read()`.
   */
  readChunk?(headroom: number, max: number): Promise<Uint8Array | null>;
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

/** A UDP socket (the Deno transport wraps `Deno.DatagramConn`). */
export interface DatagramConn {
  /** Local address, for the bound port. */
  readonly addr: NetAddr;
  /**
   * Waits for the next datagram; resolves its bytes and sender.
   *
   * @throws {Error} named `BadResource` or `Interrupted` once the socket is closed.
   */
  receive(buffer?: Uint8Array): Promise<[Uint8Array, NetAddr]>;
  /** Sends one datagram to `addr`; resolves the bytes sent. */
  send(data: Uint8Array, addr: NetAddr): Promise<number>;
  /** Closes the socket; a pending `receive` rejects. */
  close(): void;
}

/** An accepted TCP connection: a {@linkcode StreamConn} that knows its peer. */
export interface AcceptedConn extends StreamConn {
  /** The peer's address. */
  readonly remoteAddr: NetAddr;
  /** Sets TCP_NODELAY (default on). Optional. */
  setNoDelay?(on?: boolean): void;
}

/** A TCP listener (the Deno transport wraps `Deno.TcpListener`). */
export interface StreamListener {
  /** Local address, for the bound port. */
  readonly addr: NetAddr;
  /** Waits for the next connection. Rejects once the listener is closed. */
  accept(): Promise<AcceptedConn>;
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
   * @throws {Error} named `ConnectionRefused`, `TimedOut`, ... with the OS error's message
   * (`Connection refused (os error 111)`) on failure, `too many connection
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
  /**
   * Opens a UDP socket on an ephemeral port of the wildcard address of the family. Deno binds
   * synchronously and returns the socket; `node:dgram` (the Bun transport) binds asynchronously
   * and returns a promise of it. Callers `await` the result either way.
   *
   * @throws {Error} (or a rejected promise) with the OS error's name and message when the
   * socket cannot be opened.
   */
  openUdp(family: 4 | 6): DatagramConn | Promise<DatagramConn>;
  /**
   * Listens for TCP on `ip:port`.
   *
   * @throws {Error} named `AddrInUse`, `AddrNotAvailable`, `PermissionDenied`, ... with the OS
   * error's message (`Address already in use (os error 98)`), thrown or as a rejected promise.
   * Deno listens synchronously and returns the listener; `node:net` (the Bun transport) reports
   * the listen's outcome asynchronously and returns a promise of it. Callers `await` the result
   * either way.
   */
  listenTcp(ip: string, port: number): StreamListener | Promise<StreamListener>;
  /**
   * Opens an ICMP echo socket of the family, when the machine offers a way (see
   * {@linkcode IcmpMechanism}); absent on transports without ICMP. The socket stays open between
   * sends and receives and returns echo replies only (never its own requests).
   *
   * @throws {Error} (rejects) naming why no mechanism works (e.g. `ICMP unavailable: no datagram
   *   ICMP sockets (net.ipv4.ping_group_range), no raw sockets (not privileged), no ping binary`).
   */
  openIcmp?(family: 4 | 6): Promise<IcmpSocket>;
  /**
   * Detects the ICMP mechanisms (IPv4, IPv6) and logs them once per process
   * (`icmp mechanism=dgram`, or `mechanism=none reason="..."`); the server calls it once it
   * listens. Present when {@linkcode Transport.openIcmp} is.
   */
  announceIcmp?(): void;
}

/**
 * How a transport sends ICMP echo requests, best first: `dgram` (unprivileged datagram ICMP
 * sockets, Linux `net.ipv4.ping_group_range`), `raw` (raw sockets, privileged), `ping` (the
 * system `ping` binary, one process per request).
 */
export type IcmpMechanism = "dgram" | "raw" | "ping";

/** One ICMP echo reply (RFC 792 type 0, RFC 4443 type 129). */
export interface IcmpEchoReply {
  /** The replying address (canonical IP text). */
  readonly source: string;
  /** ICMP type (0 for an IPv4 echo reply, 129 for IPv6). */
  readonly type: number;
  /** ICMP code (0). */
  readonly code: number;
  /** Echo identifier (on datagram sockets the kernel's, from the local port). */
  readonly id: number;
  /** Echo sequence number, as sent. */
  readonly seq: number;
  /** The echoed payload. */
  readonly data: Uint8Array;
  /** Milliseconds from the send of the matching request to this reply. */
  readonly rttMs: number;
}

/** An open ICMP echo socket (see {@linkcode Transport.openIcmp}). */
export interface IcmpSocket {
  /** How it sends. */
  readonly mechanism: IcmpMechanism;
  /**
   * Sends one echo request to `ip` (an IP address of the socket's family; the caller checked it
   * against the policy) with sequence number `seq` (0–65535) and `data` as payload.
   *
   * @throws {Error} the OS error (e.g. `NetworkUnreachable`).
   */
  send(ip: string, seq: number, data: Uint8Array): Promise<void>;
  /**
   * The next echo reply, waiting at most `timeoutMs`; undefined on timeout or abort.
   *
   * @throws {Error} named `BadResource` once the socket is closed.
   */
  receive(timeoutMs: number, signal?: AbortSignal): Promise<IcmpEchoReply | undefined>;
  /** Closes the socket; pending receives resolve undefined. Idempotent. */
  close(): void;
}

/**
 * Options of a runtime's transport factory (`denoTransport()`, `bunTransport()`): the same on
 * every runtime.
 */
export interface TransportOptions {
  /** Query this name server directly instead of the system resolver (getaddrinfo). */
  nameServer?: NameServer | undefined;
  /**
   * Extra trusted CA certificates for `connect_tls`, besides the default root store: PEM texts,
   * each holding one or more certificates (checked when the transport is made).
   */
  caCerts?: readonly string[] | undefined;
  /**
   * Most DNS lookups in flight at once for this transport — every session's `resolve`s and the
   * lookups of connects together — counted until the resolver has finished (default
   * `DEFAULT_MAX_LOOKUPS`, 256). A lookup beyond it fails at once with
   * `too many DNS lookups in flight (limit N)`.
   */
  maxLookups?: number | undefined;
  /**
   * Most TCP dials in flight at once for this transport — every session's `connect`s and
   * `connect_tls`s and the connection pool's dials together (default
   * `DEFAULT_MAX_DIALS`, 1024). A dial is counted from the runtime's connect call until it settles, also
   * after its caller gave up: an abandoned dial to a silent address holds its socket in SYN-SENT
   * until the kernel gives up (about 127 s on Linux). A dial beyond the bound fails at once with
   * `too many connection attempts in flight (limit N)` (on the wire:
   * `connect to IP:PORT failed: too many connection attempts in flight (limit N)`).
   */
  maxDials?: number | undefined;
}
