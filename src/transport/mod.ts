/**
 * The only module that calls Deno networking APIs (`Deno.connect`, `Deno.resolveDns`, ...).
 *
 * @module
 */
import { lookupHost } from "./dns.ts";
import { connectTcp } from "./tcp.ts";
import { tlsContext, upgradeTls } from "./tls.ts";
import { openUdp } from "./udp.ts";
import { listenTcp } from "./listener.ts";
import { Slots } from "./slots.ts";
import type { NameServer, Transport } from "./types.ts";

export type {
  DatagramConn,
  NameServer,
  StreamConn,
  StreamListener,
  TlsClientSettings,
  Transport,
} from "./types.ts";
export { lookupHost } from "./dns.ts";
export { Slots } from "./slots.ts";
export { connectTcp, type ConnectTcpOptions } from "./tcp.ts";
export {
  describeTlsFailure,
  parseCaCerts,
  TlsConn,
  tlsContext,
  TlsError,
  type TlsOptions,
  upgradeTls,
} from "./tls.ts";
export { openUdp } from "./udp.ts";
export { listenTcp } from "./listener.ts";

/** Options of {@linkcode denoTransport}. */
export interface DenoTransportOptions {
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
   * {@linkcode DEFAULT_MAX_LOOKUPS}). A lookup beyond it fails at once with
   * `too many DNS lookups in flight (limit N)`.
   */
  maxLookups?: number | undefined;
  /**
   * Most TCP dials in flight at once for this transport — every session's `connect`s and
   * `connect_tls`s and the connection pool's dials together (default
   * {@linkcode DEFAULT_MAX_DIALS}). A dial is counted from `Deno.connect` until it settles, also
   * after its caller gave up: an abandoned dial to a silent address holds its socket in SYN-SENT
   * until the kernel gives up (about 127 s on Linux). A dial beyond the bound fails at once with
   * `too many connection attempts in flight (limit N)` (on the wire:
   * `connect to IP:PORT failed: too many connection attempts in flight (limit N)`).
   */
  maxDials?: number | undefined;
}

/** Default {@linkcode DenoTransportOptions.maxLookups}: 256 lookups in flight per server. */
export const DEFAULT_MAX_LOOKUPS = 256;

/** Default {@linkcode DenoTransportOptions.maxDials}: 1024 TCP dials in flight per server. */
export const DEFAULT_MAX_DIALS = 1024;

/**
 * The real transport: Deno's TCP, UDP, listeners and DNS, and `node:tls` over the transport's
 * own TCP connections. Every socket is owned by the transport until it is handed over or closed,
 * whatever happens (abort before, during or after a dial or handshake; failure; a silent peer).
 *
 * @throws {RangeError} when `maxLookups` or `maxDials` is not an integer ≥ 1.
 * @throws {TypeError} `Cannot use CA certificate file N: ...` when a `caCerts` entry holds no
 * certificate or one that does not parse (see {@linkcode parseCaCerts}).
 */
export function denoTransport(options: DenoTransportOptions = {}): Transport {
  const lookups = new Slots(options.maxLookups ?? DEFAULT_MAX_LOOKUPS, "DNS lookups");
  const dials = new Slots(options.maxDials ?? DEFAULT_MAX_DIALS, "connection attempts");
  const caCerts = options.caCerts?.length ? [...options.caCerts] : undefined;
  tlsContext(caCerts); // checks the CA certificates now, not at the first connect_tls
  return {
    lookup: (name, signal) =>
      lookupHost(name, { signal, nameServer: options.nameServer, slots: lookups }),
    connectTcp: (ip, port, signal) => connectTcp(ip, port, signal, { slots: dials }),
    startTls: (conn, serverName, signal) => upgradeTls(conn, { serverName, caCerts, signal }),
    openUdp,
    listenTcp,
  };
}
