/**
 * UDP sockets through `Deno.listenDatagram` (needs deno.json `"unstable": ["net"]`).
 *
 * @module
 */
import type { DatagramConn } from "../types.ts";

/**
 * Opens an unconnected UDP socket on an ephemeral port of the wildcard address of `family`
 * (`0.0.0.0` or `::`).
 *
 * @throws {Error} a `Deno.errors` class when the socket cannot be opened.
 */
export function openUdp(family: 4 | 6): DatagramConn {
  // A UDP socket's own and peers' addresses are always `Deno.NetAddr`s (never Unix addresses),
  // which is what the neutral `DatagramConn` types say.
  return Deno.listenDatagram({
    transport: "udp",
    hostname: family === 4 ? "0.0.0.0" : "::",
    port: 0,
  }) as unknown as DatagramConn;
}
