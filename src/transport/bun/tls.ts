/**
 * Outbound TLS for the Bun transport: `node:tls` (Node 22 API, as Bun implements it) directly on
 * the transport's own `node:net` socket, with the shared texts and trust store of
 * `transport/tls.ts` ({@linkcode describeTlsFailure}, {@linkcode tlsContext}).
 *
 * @module
 */
import * as tls from "node:tls";
import { isIP, type Socket } from "node:net";
import type { StreamConn } from "../types.ts";
import { describeTlsFailure, tlsContext, TlsError, upgradeTls } from "../tls.ts";
import { closeQuietly } from "../_close_quietly.ts";
import { NodeSocketConn } from "../_node_conn.ts";

/** Options of {@linkcode startTls}. */
export interface StartTlsOptions {
  /**
   * Name for SNI and certificate verification (SNI only for a host name, never for an IP, per
   * RFC 6066 §3; an IP must be in the certificate's IP SANs).
   */
  serverName: string;
  /**
   * Extra trusted CA certificates (PEM) besides the runtime's default roots; pass the same array
   * on every call (the secure context is cached per array, see {@linkcode tlsContext}).
   */
  caCerts?: readonly string[] | undefined;
  /** Cancels the handshake; the connection is closed and the promise rejects. */
  signal: AbortSignal;
}

/**
 * Runs a TLS client handshake over `conn` and resolves the verified TLS connection (chain to a
 * trusted root, certificate valid for `serverName`; never with verification off).
 *
 * When `conn` is an untouched {@linkcode NodeSocketConn} of this transport, the handshake runs
 * with `tls.connect({ socket })` on its `net.Socket` directly (no second stream layer); any
 * other connection goes through the shared {@linkcode upgradeTls}.
 *
 * Ownership: from the call on, `conn` belongs to this function: it is inside the resolved
 * connection (whose `close()` destroys both sockets), or closed when the promise rejects
 * (failure, the peer closing, or `signal` aborting before or during the handshake).
 *
 * @throws {TlsError} (as a rejected promise) when the handshake fails, with the texts of
 * {@linkcode describeTlsFailure} (`certificate is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE)`,
 * ...); `signal.reason` when aborted first.
 */
export function startTls(conn: StreamConn, options: StartTlsOptions): Promise<StreamConn> {
  const { signal, serverName } = options;
  if (!(conn instanceof NodeSocketConn) || !conn.pristine) {
    return upgradeTls(conn, { serverName, caCerts: options.caCerts, signal });
  }
  if (signal.aborted) {
    closeQuietly(conn);
    return Promise.reject(signal.reason);
  }
  const raw: Socket = conn.detach();
  raw.on("error", ignore); // the TLS socket reports the errors of the connection
  let sock: tls.TLSSocket;
  try {
    sock = tls.connect({
      socket: raw,
      // With `socket` given, `host` only names what the certificate is checked against;
      // `servername` is the SNI, which must not be an IP.
      host: serverName,
      ...(isIP(serverName) === 0 ? { servername: serverName } : {}),
      secureContext: tlsContext(options.caCerts),
      rejectUnauthorized: true,
      allowHalfOpen: true,
    } as tls.ConnectionOptions);
  } catch (e) {
    raw.destroy();
    return Promise.reject(describeTlsFailure(e, serverName));
  }
  return new Promise<StreamConn>((resolve, reject) => {
    const cleanup = (): void => {
      signal.removeEventListener("abort", onAbort);
      sock.off("secureConnect", onSecure);
      sock.off("error", onError);
      sock.off("close", onClose);
    };
    const fail = (reason: unknown): void => {
      cleanup();
      sock.on("error", ignore); // errors of the teardown, after the outcome is decided
      sock.destroy();
      raw.destroy();
      reject(reason);
    };
    const onAbort = (): void => fail(signal.reason);
    const onError = (e: Error): void => fail(describeTlsFailure(e, serverName));
    const onClose = (): void =>
      fail(
        new TlsError(
          "the peer closed the connection during the handshake (ECONNRESET)",
          "ECONNRESET",
        ),
      );
    const onSecure = (): void => {
      cleanup();
      if (!sock.authorized) {
        // Not reachable with rejectUnauthorized, but never hand out an unverified connection.
        return fail(describeTlsFailure(sock.authorizationError, serverName));
      }
      resolve(new NodeSocketConn(sock, { label: "TLS", under: [raw] }));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    sock.once("secureConnect", onSecure);
    sock.once("error", onError);
    sock.once("close", onClose);
  });
}

function ignore(): void {}
