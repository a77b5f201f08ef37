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
}

/** The real transport: Deno's TCP, TLS, UDP, listeners and DNS. */
export function denoTransport(options: DenoTransportOptions = {}): Transport {
  return {
    lookup: (name, signal) => lookupHost(name, { signal, nameServer: options.nameServer }),
    connectTcp,
    startTls: (conn, serverName, signal) =>
      upgradeTls(conn as Deno.TcpConn, { serverName, caCerts: options.caCerts, signal }),
    openUdp,
    listenTcp,
  };
}
