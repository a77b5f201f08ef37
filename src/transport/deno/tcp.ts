/**
 * Outbound TCP through `Deno.connect`, owning every socket until it is handed over or closed.
 *
 * @module
 */
import type { Slots } from "../slots.ts";
import { closeQuietly } from "../_close_quietly.ts";

/** Options of {@linkcode connectTcp}. */
export interface ConnectTcpOptions {
  /**
   * Bounds dials in flight (shared by every dial of a transport). A dial holds its slot until
   * `Deno.connect` itself settles — also after `signal` aborted, because the socket exists until
   * then. Beyond the bound the dial fails at once with the slots' error (`too many connection
   * attempts in flight (limit N)` for the transport's). Default: unbounded.
   */
  slots?: Slots | undefined;
}

/**
 * Opens a TCP connection to `ip:port` with TCP_NODELAY on (small proxied writes leave at once).
 *
 * Ownership: the returned promise either resolves the connection (which then belongs to the
 * caller) or rejects, and then no socket of this dial stays open. `signal` is deliberately not
 * given to `Deno.connect`: in Deno 2.9.6 `Deno.connect({ signal })` ends in
 * `finally { signal.throwIfAborted() }`, which throws away a connection that completed just
 * before a timer-driven abort, and that socket stays open until the process exits (about 1 in
 * 2,000 aborted loopback dials). Instead the dial's promise is kept: on abort this function
 * rejects at once with `signal.reason`, and whatever the dial resolves to later is closed here.
 * The kernel keeps an abandoned dial to a silent (blackholed) address in SYN-SENT until it gives
 * up (about 127 s on Linux), and its Deno op stays pending that long; `options.slots` counts it
 * for that whole time.
 *
 * @param ip an IP address (never a name: the caller dials the address it checked).
 * @param port TCP port, 1–65535.
 * @param signal cancels the dial.
 * @throws {Error} the `Deno.errors` class of the failure (`ConnectionRefused`, `TimedOut`, ...),
 * the slots' error when `options.slots` is full, or `signal.reason` when aborted before the
 * connection is handed over.
 */
export function connectTcp(
  ip: string,
  port: number,
  signal: AbortSignal,
  options: ConnectTcpOptions = {},
): Promise<Deno.TcpConn> {
  if (signal.aborted) return Promise.reject(signal.reason);
  const { slots } = options;
  const connect = (): Promise<Deno.TcpConn> =>
    Deno.connect({ hostname: ip, port, transport: "tcp" }); // no `signal`, on purpose (above)
  let dial: Promise<Deno.TcpConn>;
  try {
    dial = slots ? slots.hold(connect) : connect();
  } catch (e) {
    return Promise.reject(e);
  }
  return new Promise<Deno.TcpConn>((resolve, reject) => {
    let settled = false;
    const onAbort = (): void => {
      if (settled) return;
      settled = true;
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    dial.then(
      (conn) => {
        signal.removeEventListener("abort", onAbort);
        if (settled) return closeQuietly(conn); // abandoned: nobody else will ever see it
        settled = true;
        try {
          conn.setNoDelay(true);
        } catch (e) {
          closeQuietly(conn);
          return reject(e);
        }
        resolve(conn);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        if (settled) return; // abandoned: the caller already has signal.reason
        settled = true;
        reject(e);
      },
    );
  });
}
