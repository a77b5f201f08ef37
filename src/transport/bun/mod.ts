/**
 * The Bun transport: TCP, TLS, UDP, listeners and DNS through `node:net`, `node:tls`,
 * `node:dgram` and `node:dns` (the Node 22 APIs, which Bun implements — and Deno too, so this
 * transport is unit-tested under `deno test` as well as run under Bun); under Bun, outbound TCP
 * dials with `Bun.connect` instead ({@linkcode BunSocketConn}: same guarantees, less CPU). It gives the guarantees
 * of the Deno transport (`transport/deno/`) with the same error names and texts: sockets are
 * owned until handed over or closed, dials and lookups are bounded ({@linkcode Slots}), reads
 * have backpressure, and OS errors read as Deno words them (`Connection refused (os error 111)`).
 *
 * TLS is the shared `upgradeTls` (`node:tls` over a `Duplex` that reads the transport's
 * {@linkcode NodeSocketConn}), as in the Deno transport, not `tls.connect({ socket })` on the
 * connection's own `net.Socket`. Measured with a peer sending 32 MiB that nobody reads: a
 * `TLSSocket` made by `tls.connect({ socket })` keeps reading from the kernel while paused — Bun
 * 1.4.5 read all 33.6 MB into memory, Deno 2.9.6 too — and in Deno pausing the `net.Socket`
 * under it instead stalls the stream for good. Through `upgradeTls`, `TlsConn` stops reading
 * the connection (whose socket then pauses at its bound): about 1.2 MB is read, and the stream
 * resumes and ends correctly, at about 370 MB/s on loopback in both runtimes.
 *
 * @module
 */
import { lookupHost } from "./dns.ts";
import { connectTcp } from "./tcp.ts";
import { openUdp } from "./udp.ts";
import { listenTcp } from "./listener.ts";
import { bunIcmp } from "./icmp.ts";
import { composeTransport, type Transport, type TransportOptions } from "../mod.ts";

export { lookupHost, type LookupOptions } from "./dns.ts";
export { connectTcp, type ConnectTcpOptions } from "./tcp.ts";
export {
  MAX_QUEUED_DATAGRAM_BYTES,
  MAX_QUEUED_DATAGRAMS,
  NodeDatagramConn,
  openUdp,
} from "./udp.ts";
export { listenTcp, MAX_PENDING_ACCEPTS, NodeTcpListener } from "./listener.ts";
export { NodeSocketConn, READ_HIGH_WATER_BYTES } from "../_node_conn.ts";
export { BunSocketConn } from "./_bun_socket.ts";
export { bunIcmp, bunPingRunner, loadBunLibc } from "./icmp.ts";

/** Options of {@linkcode bunTransport}: the runtime-neutral {@linkcode TransportOptions}. */
export type BunTransportOptions = TransportOptions;

/**
 * The Bun transport (see the module doc). `openUdp` and `listenTcp` return promises: `node:dgram`
 * and `node:net` bind asynchronously. `openIcmp`: ICMP echo by `bun:ffi` on libc, or the system
 * `ping` (`transport/bun/icmp.ts`).
 *
 * @example Echo one message through a loopback listener
 * ```ts
 * import { bunTransport } from "./mod.ts";
 *
 * const transport = bunTransport();
 * const listener = await transport.listenTcp("127.0.0.1", 0);
 * const conn = await transport.connectTcp("127.0.0.1", listener.addr.port, new AbortController().signal);
 * const peer = await listener.accept();
 * await conn.write(new TextEncoder().encode("hi"));
 * const buf = new Uint8Array(2);
 * await peer.read(buf);
 * conn.close();
 * peer.close();
 * listener.close();
 * ```
 *
 * @throws {RangeError} when `maxLookups` or `maxDials` is not an integer ≥ 1.
 * @throws {TypeError} `Cannot use CA certificate file N: ...` when a `caCerts` entry holds no
 * certificate or one that does not parse (see `parseCaCerts`).
 */
export function bunTransport(options: BunTransportOptions = {}): Transport {
  return composeTransport({ lookupHost, connectTcp, openUdp, listenTcp, icmp: bunIcmp }, options);
}
