/**
 * The error class of the client library.
 *
 * @module
 */

/**
 * Stable codes of {@linkcode WasmnetError}:
 * - `EDENIED`: the server's policy refused the request (`denied` event); `message` is the server's.
 * - `ESERVER`: the server reported an `error` event (dial failure, TLS error, DNS failure, ...);
 *   `message` is the server's.
 * - `ECLOSED`: the socket was closed (by either side) before the operation completed, or an
 *   operation was attempted on a closed socket.
 * - `EWEBSOCKET`: the WebSocket to the server failed to open or closed; everything pending on it
 *   fails with this code.
 * - `EOVERFLOW`: more received bytes were waiting to be read than the configured limit allows; the
 *   socket is closed (the protocol has no flow control, so the server cannot be paused).
 * - `EUNSUPPORTED`: the server does not support a protocol extension (`start_tls`, `ping`): it
 *   answered the request as an unknown op, as wasmnet 0.1.3 does. The socket is untouched.
 */
export type WasmnetErrorCode =
  | "EDENIED"
  | "ESERVER"
  | "ECLOSED"
  | "EWEBSOCKET"
  | "EOVERFLOW"
  | "EUNSUPPORTED";

/**
 * An error of a wasmnet operation. Promises of {@linkcode WasmnetClient} and of the stream sockets
 * reject with it (except aborts, which reject with the `AbortSignal`'s `reason`).
 *
 * @example
 * ```ts ignore
 * try {
 *   await client.connect("10.0.0.1", 22);
 * } catch (e) {
 *   if (e instanceof WasmnetError && e.code === "EDENIED") console.log("policy:", e.message);
 * }
 * ```
 */
export class WasmnetError extends Error {
  /** Stable code for programmatic handling; see {@linkcode WasmnetErrorCode}. */
  readonly code: WasmnetErrorCode;
  /** The protocol id (socket, listener or lookup) the error concerns, when there is one. */
  readonly id: number | undefined;

  /**
   * @param code stable code.
   * @param message human-readable message; for `EDENIED`/`ESERVER` the server's `msg` verbatim.
   * @param id protocol id the error concerns.
   */
  constructor(code: WasmnetErrorCode, message: string, id?: number) {
    super(message);
    this.name = "WasmnetError";
    this.code = code;
    this.id = id;
  }
}
