/**
 * Inbound TCP through `Deno.listen`.
 *
 * @module
 */

/**
 * Listens for TCP connections on `ip:port` (port 0 picks a free port; read it from `addr`).
 * Deno does not expose the listen backlog; the kernel default applies.
 *
 * @throws {Deno.errors.AddrInUse} when the port is taken, other `Deno.errors` otherwise.
 */
export function listenTcp(ip: string, port: number): Deno.TcpListener {
  return Deno.listen({ transport: "tcp", hostname: ip, port });
}
