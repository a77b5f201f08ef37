/**
 * UDP sockets through `Deno.listenDatagram` (needs deno.json `"unstable": ["net"]`).
 *
 * @module
 */

/**
 * Opens an unconnected UDP socket on an ephemeral port of the wildcard address of `family`
 * (`0.0.0.0` or `::`).
 *
 * @throws {Error} a `Deno.errors` class when the socket cannot be opened.
 */
export function openUdp(family: 4 | 6): Deno.DatagramConn {
  return Deno.listenDatagram({
    transport: "udp",
    hostname: family === 4 ? "0.0.0.0" : "::",
    port: 0,
  });
}
