/**
 * Outbound TCP, owning every socket until it is handed over or closed: under Bun through
 * `Bun.connect` ({@linkcode BunSocketConn}, about a third less CPU per connection than
 * `node:net` in Bun 1.4.5), elsewhere (Deno, which runs this transport's unit tests) through
 * `node:net` (`net.connect`, {@linkcode NodeSocketConn}).
 *
 * @module
 */
import * as net from "node:net";
import type { Slots } from "../slots.ts";
import { osError } from "../errors.ts";
import { NodeSocketConn } from "../_node_conn.ts";
import { bunConnectApi, BunSocketConn, dialBunSocket } from "./_bun_socket.ts";

/** `Bun.connect` when running under Bun (looked up once). */
const bun = bunConnectApi();

/** Options of {@linkcode connectTcp}. */
export interface ConnectTcpOptions {
  /**
   * Bounds dials in flight (shared by every dial of a transport). A dial holds its slot until
   * its socket is connected (and handed over) or closed — after an abort, until the destroyed
   * socket's `close` event, when the kernel has let go of it. Beyond the bound the dial fails at
   * once with the slots' error (`too many connection attempts in flight (limit N)` for the
   * transport's). Default: unbounded.
   */
  slots?: Slots | undefined;
}

/**
 * Opens a TCP connection to `ip:port` with TCP_NODELAY on and half-close allowed
 * (`allowHalfOpen`: the peer's FIN ends only the read side, as with `Deno.TcpConn`): a
 * {@linkcode BunSocketConn} under Bun (`Bun.connect`), else a {@linkcode NodeSocketConn}.
 *
 * Ownership: the returned promise either resolves the connection (which then belongs to the
 * caller) or rejects, and then no socket of this dial stays open. Unlike `Deno.connect`, a
 * `node:net` dial can be cancelled: on abort this function rejects at once with `signal.reason`
 * and destroys the socket (which closes its file descriptor, also in SYN-SENT), and a connection
 * that completes in the same turn is destroyed too. A `Bun.connect` dial cannot be cancelled:
 * on abort the promise rejects at once, and the socket is closed as soon as it opens (the dial
 * holds its slot until `Bun.connect` settles).
 *
 * @param ip an IP address (never a name: the caller dials the address it checked).
 * @param port TCP port, 1–65535.
 * @param signal cancels the dial.
 * @throws {Error} named as Deno names the OS error (`ConnectionRefused` with message
 * `Connection refused (os error 111)`, `TimedOut`, `NetworkUnreachable`, ...; see
 * {@linkcode osError}), the slots' error when `options.slots` is full, `signal.reason` when
 * aborted before the connection is handed over, or `net.connect`'s own error for a bad port.
 */
export function connectTcp(
  ip: string,
  port: number,
  signal: AbortSignal,
  options: ConnectTcpOptions = {},
): Promise<NodeSocketConn | BunSocketConn> {
  if (signal.aborted) return Promise.reject(signal.reason);
  let result: Promise<NodeSocketConn | BunSocketConn> | undefined;
  const start = (): Promise<void> => {
    const dial = bun ? dialBunSocket(bun, ip, port, signal) : dialSocket(ip, port, signal);
    result = dial.result;
    return dial.done;
  };
  const held = options.slots ? options.slots.hold(start) : start();
  if (result !== undefined) return result;
  // The slots refused the dial (`start` was not called): `held` rejects with their error.
  return held.then((): never => {
    throw new Error("unreachable: a refused dial resolved");
  });
}

/**
 * One dial: `result` settles with the connection or the error; `done` resolves once the socket
 * is handed over or closed (the slot's lifetime).
 */
function dialSocket(
  ip: string,
  port: number,
  signal: AbortSignal,
): { result: Promise<NodeSocketConn>; done: Promise<void> } {
  const { promise: done, resolve: finish } = Promise.withResolvers<void>();
  const result = new Promise<NodeSocketConn>((resolve, reject) => {
    let sock: net.Socket;
    try {
      sock = net.connect({ host: ip, port, allowHalfOpen: true, noDelay: true });
    } catch (e) {
      finish();
      return reject(osError(e));
    }
    const onClose = (): void => finish();
    const cleanup = (): void => {
      signal.removeEventListener("abort", onAbort);
      sock.off("connect", onConnect);
      sock.off("error", onError);
    };
    const onConnect = (): void => {
      cleanup();
      sock.off("close", onClose);
      finish();
      try {
        sock.setNoDelay(true);
        resolve(new NodeSocketConn(sock));
      } catch (e) {
        sock.destroy();
        reject(osError(e));
      }
    };
    const onError = (e: Error): void => {
      cleanup();
      sock.on("error", ignore);
      sock.destroy();
      reject(osError(e));
    };
    const onAbort = (): void => {
      cleanup();
      sock.on("error", ignore); // errors of the teardown, after the outcome is decided
      sock.destroy();
      reject(signal.reason);
    };
    sock.once("close", onClose);
    sock.once("connect", onConnect);
    sock.once("error", onError);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  return { result, done };
}

function ignore(): void {}
