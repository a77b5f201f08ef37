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
import { denoIcmp } from "./icmp.ts";
import { composeTransport, type Transport, type TransportOptions } from "../mod.ts";

export { lookupHost } from "./dns.ts";
export { connectTcp, type ConnectTcpOptions } from "./tcp.ts";
export { openUdp } from "./udp.ts";
export { listenTcp } from "./listener.ts";
export { denoIcmp, denoPingRunner, loadDenoLibc } from "./icmp.ts";

/** Options of {@linkcode denoTransport}: the runtime-neutral {@linkcode TransportOptions}. */
export type DenoTransportOptions = TransportOptions;

/**
 * The real transport: Deno's TCP, UDP, listeners and DNS, `node:tls` over the transport's
 * own TCP connections, and ICMP echo by FFI on libc or the system `ping` (`openIcmp`; see
 * `transport/icmp/`: needs `--allow-ffi` or `--allow-run=ping`, else unavailable). Every socket is owned by the transport until it is handed over or closed,
 * whatever happens (abort before, during or after a dial or handshake; failure; a silent peer).
 *
 * @throws {RangeError} when `maxLookups` or `maxDials` is not an integer ≥ 1.
 * @throws {TypeError} `Cannot use CA certificate file N: ...` when a `caCerts` entry holds no
 * certificate or one that does not parse (see {@linkcode parseCaCerts}).
 */
export function denoTransport(options: DenoTransportOptions = {}): Transport {
  return composeTransport({ lookupHost, connectTcp, openUdp, listenTcp, icmp: denoIcmp }, options);
}
