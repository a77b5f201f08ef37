/**
 * The only module that calls Deno networking APIs (`Deno.connect`, `Deno.resolveDns`, ...).
 *
 * @module
 */
import { lookupHost } from "./dns.ts";
import { connectTcp } from "./tcp.ts";
import { upgradeTls } from "./tls.ts";
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
export { connectTcp } from "./tcp.ts";
export { type TlsOptions, upgradeTls } from "./tls.ts";
export { openUdp } from "./udp.ts";
export { listenTcp } from "./listener.ts";

/** Options of {@linkcode denoTransport}. */
export interface DenoTransportOptions {
  /** Query this name server directly instead of the system resolver (getaddrinfo). */
  nameServer?: NameServer | undefined;
  /** Extra trusted CA certificates (PEM) for `connect_tls`, besides the default root store. */
  caCerts?: readonly string[] | undefined;
  /**
   * Most DNS lookups in flight at once for this transport — every session's `resolve`s and the
   * lookups of connects together — counted until the resolver has finished (default
   * {@linkcode DEFAULT_MAX_LOOKUPS}). A lookup beyond it fails at once with
   * `too many DNS lookups in flight (limit N)`.
   */
  maxLookups?: number | undefined;
}

/** Default {@linkcode DenoTransportOptions.maxLookups}: 256 lookups in flight per server. */
export const DEFAULT_MAX_LOOKUPS = 256;

/** The real transport: Deno's TCP, TLS, UDP, listeners and DNS. */
export function denoTransport(options: DenoTransportOptions = {}): Transport {
  const slots = new Slots(options.maxLookups ?? DEFAULT_MAX_LOOKUPS, "DNS lookups");
  return {
    lookup: (name, signal) => lookupHost(name, { signal, nameServer: options.nameServer, slots }),
    connectTcp,
    startTls: (conn, serverName, signal) =>
      upgradeTls(conn as Deno.TcpConn, { serverName, caCerts: options.caCerts, signal }),
    openUdp,
    listenTcp,
  };
}
