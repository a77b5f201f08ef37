/**
 * Outbound TCP through `Deno.connect`.
 *
 * @module
 */

/**
 * Opens a TCP connection to `ip:port` with TCP_NODELAY on (small proxied writes leave at once).
 *
 * @throws {Error} the `Deno.errors` class of the failure (`ConnectionRefused`, `TimedOut`, ...),
 * or `signal.reason` when aborted before the connection is made.
 */
export async function connectTcp(
  ip: string,
  port: number,
  signal: AbortSignal,
): Promise<Deno.TcpConn> {
  signal.throwIfAborted();
  const conn = await Deno.connect({ hostname: ip, port, transport: "tcp", signal });
  if (signal.aborted) {
    conn.close();
    throw signal.reason;
  }
  conn.setNoDelay(true);
  return conn;
}
