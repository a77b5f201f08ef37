/**
 * Inbound TCP through `Deno.listen`.
 *
 * @module
 */
import type { StreamListener } from "../types.ts";

/**
 * Listens for TCP connections on `ip:port` (port 0 picks a free port; read it from `addr`).
 * Deno does not expose the listen backlog; the kernel default applies.
 *
 * @throws {Deno.errors.AddrInUse} when the port is taken, other `Deno.errors` otherwise.
 */
export function listenTcp(ip: string, port: number): StreamListener {
  // A TCP listener's and its connections' addresses are always `Deno.NetAddr`s.
  return Deno.listen({ transport: "tcp", hostname: ip, port }) as unknown as StreamListener;
}
