/**
 * The Deno transport: the only module that calls Deno networking APIs (`Deno.connect`,
 * `Deno.listen`, `Deno.listenDatagram`, `Deno.resolveDns`); TLS is the shared `node:tls` layer.
 *
 * @module
 */
import { lookupHost } from "./dns.ts";
import { connectTcp } from "./tcp.ts";
import { openUdp } from "./udp.ts";
import { listenTcp } from "./listener.ts";
import {
  DEFAULT_MAX_DIALS,
  DEFAULT_MAX_LOOKUPS,
  Slots,
  tlsContext,
  type Transport,
  type TransportOptions,
  upgradeTls,
} from "../mod.ts";

export { lookupHost } from "./dns.ts";
export { connectTcp, type ConnectTcpOptions } from "./tcp.ts";
export { openUdp } from "./udp.ts";
export { listenTcp } from "./listener.ts";

/** Options of {@linkcode denoTransport}: the runtime-neutral {@linkcode TransportOptions}. */
export type DenoTransportOptions = TransportOptions;

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
