/**
 * Outbound TLS: the checked IP is dialled with TCP first (`connectTcp`), then the TLS client
 * handshake runs over that connection with the original host name, so SNI and certificate
 * verification use the name while the dial goes to the address the policy checked (STYLE.md
 * habit 8).
 *
 * The handshake is `node:tls` over a Node `Duplex` that reads and writes the transport's own
 * connection (a `Deno.TcpConn`), not `Deno.startTls`. In Deno 2.9.6 a `Deno.TlsConn` whose
 * handshake is pending cannot release its socket: the handshake runs in a detached task
 * (rustls-tokio-stream) that holds the TCP stream until the peer answers or closes, so a
 * handshake abandoned against a silent peer (client `close`, dial timeout, WebSocket drop) keeps
 * the socket open as long as the peer does. Here, closing the `Deno.TcpConn` frees the socket at
 * once, whatever state the handshake is in.
 *
 * @module
 */
import * as tls from "node:tls";
import { isIP } from "node:net";
import { X509Certificate } from "node:crypto";
import type { StreamConn } from "./types.ts";
import { ConnDuplex } from "./_stream_duplex.ts";
import { closeQuietly } from "./_close_quietly.ts";
import { BadResource } from "./errors.ts";
import { ReceiveQueue } from "./_receive_queue.ts";

/** Options of {@linkcode upgradeTls}. */
export interface TlsOptions {
  /**
   * Name for SNI and certificate verification (the client's `addr`; an IP when it gave one). An
   * IP is sent without SNI (RFC 6066 §3 allows only host names) and must be in the certificate's
   * IP SANs.
   */
  serverName: string;
  /**
   * Extra trusted CA certificates (PEM), in addition to the runtime's default root store. Pass
   * the same array on every call: the secure context built from it is cached per array.
   */
  caCerts?: readonly string[] | undefined;
  /** ALPN protocols to offer, e.g. `["h2", "http/1.1"]`. */
  alpnProtocols?: readonly string[] | undefined;
  /** Cancels the handshake; the TCP connection is closed and the promise rejects. */
  signal: AbortSignal;
}

/**
 * A failed TLS handshake, with a short stable message (the wire error's detail) and the code of
 * the failure: the `node:tls` / OpenSSL-style code (`UNABLE_TO_VERIFY_LEAF_SIGNATURE`,
 * `ERR_TLS_CERT_ALTNAME_INVALID`, `ERR_SSL_WRONG_VERSION_NUMBER`, ...), `ECONNRESET` when the
 * peer closed the connection during the handshake, or the `Deno.errors` class name of an I/O
 * failure (`ConnectionReset`, ...). The original error is the `cause`.
 */
export class TlsError extends Error {
  /** The failure's code, as described above; also at the end of the message, in parentheses. */
  readonly code: string;

  /**
   * @param message short description ending with ` (CODE)`.
   * @param code the failure's code.
   * @param options `cause`: the original error.
   */
  constructor(message: string, code: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TlsError";
    this.code = code;
  }
}

/**
 * Codes for which the runtime could not build a chain to a trusted root. Deno 2.9.6 reports
 * every certificate rejection other than a name mismatch, a missing issuer or a self-signed
 * certificate as `UNABLE_TO_VERIFY_LEAF_SIGNATURE` — an expired certificate included (its
 * `cert_error_to_node_code` in ext/node/ops/tls_wrap.rs maps rustls's `Expired` but not the
 * `ExpiredContext` that rustls 0.23 returns), so "expired" cannot be told apart there.
 */
const UNTRUSTED = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
]);

/**
 * Turns a handshake failure into a {@linkcode TlsError} with a short message:
 * - `certificate is not trusted (CODE)` — unknown issuer, self-signed, bad chain (and, in Deno
 *   2.9.6, also expired: see {@linkcode UNTRUSTED});
 * - `certificate is not valid for NAME (ERR_TLS_CERT_ALTNAME_INVALID)`;
 * - `certificate has expired (CERT_HAS_EXPIRED)`, `certificate is not yet valid (...)`,
 *   `certificate has been revoked (...)`, `certificate is not for a TLS server (...)`;
 * - `the peer does not speak TLS (CODE)` — its first bytes are not a TLS record, or it answered
 *   with a ClientHello (e.g. an echo server; Bun's BoringSSL says `ERR_SSL_UNEXPECTED_MESSAGE`);
 * - `the peer refused the handshake: ALERT alert (CODE)` — a fatal alert from the peer;
 * - `the peer closed the connection during the handshake (CODE)` — `ECONNRESET`, `EPIPE`;
 * - `connection failed during the handshake: MESSAGE (CODE)` — another errno-style I/O error;
 * - otherwise `TLS error: MESSAGE (CODE)`, or `MESSAGE (NAME)` for an error without a code.
 *
 * @param e the error `node:tls` or the connection raised.
 * @param serverName the name the certificate was checked against.
 */
export function describeTlsFailure(e: unknown, serverName: string): TlsError {
  const error = e instanceof Error ? e : new Error(String(e));
  const code = (error as { code?: unknown }).code;
  const message = error.message;
  const options = { cause: e };
  if (typeof code !== "string" || code === "") {
    // An error without a code: named by its class.
    return new TlsError(`${message || error.name} (${error.name})`, error.name, options);
  }
  const make = (text: string): TlsError => new TlsError(`${text} (${code})`, code, options);
  if (UNTRUSTED.has(code)) return make("certificate is not trusted");
  switch (code) {
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return make(`certificate is not valid for ${serverName}`);
    case "CERT_HAS_EXPIRED":
      return make("certificate has expired");
    case "CERT_NOT_YET_VALID":
      return make("certificate is not yet valid");
    case "CERT_REVOKED":
      return make("certificate has been revoked");
    case "INVALID_PURPOSE":
      return make("certificate is not for a TLS server");
    case "ECONNRESET":
    case "EPIPE":
      return make("the peer closed the connection during the handshake");
    case "ERR_SSL_WRONG_VERSION_NUMBER":
    case "ERR_SSL_UNEXPECTED_MESSAGE": // Bun (BoringSSL), e.g. an echo server's ClientHello
      return make("the peer does not speak TLS");
  }
  if (/^E[A-Z0-9]+$/.test(code)) return make(`connection failed during the handshake: ${message}`);
  const alert = /^received fatal alert: (\w+)/.exec(message);
  if (alert) return make(`the peer refused the handshake: ${alert[1]} alert`);
  if (/unexpected handshake message: got ClientHello|corrupt message/i.test(message)) {
    return make("the peer does not speak TLS");
  }
  return make(`TLS error: ${message}`);
}

/** Secure contexts by CA list (one per transport in practice). */
const contexts = new WeakMap<readonly string[], tls.SecureContext>();
let defaultContext: tls.SecureContext | undefined;

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/**
 * The certificates of `caCerts` (each a PEM text holding one or more certificates), each checked
 * with `node:crypto`'s `X509Certificate`. That check matters: Deno 2.9.6's `node:tls` parses the
 * trusted CAs again after every handshake (`getPeerCertificate` in `onConnectSecure`), with that
 * same parser, and a certificate it cannot parse throws there as an uncaught exception that ends
 * the process.
 *
 * @throws {TypeError} `Cannot use CA certificate file N: REASON` when a text holds no PEM
 * certificate or one that does not parse (N counts from 1).
 */
export function parseCaCerts(caCerts: readonly string[]): string[] {
  const blocks: string[] = [];
  caCerts.forEach((pem, i) => {
    const found = pem.match(PEM_CERTIFICATE) ?? [];
    if (found.length === 0) {
      throw new TypeError(`Cannot use CA certificate file ${i + 1}: it holds no PEM certificate`);
    }
    for (const block of found) {
      try {
        new X509Certificate(block);
      } catch (e) {
        throw new TypeError(
          `Cannot use CA certificate file ${i + 1}: a certificate does not parse (${
            e instanceof Error ? e.message : String(e)
          })`,
          { cause: e },
        );
      }
      blocks.push(block);
    }
  });
  return blocks;
}

/**
 * The secure context that trusts the runtime's default roots plus `caCerts`, built once per
 * array (pass the same array again to reuse it). Relies on `SecureContext.context.addCACert(pem)`,
 * which adds to the default root store (unlike the `ca` option of `tls.connect`, which replaces
 * it).
 *
 * @throws {TypeError} from {@linkcode parseCaCerts} when a CA certificate is not usable.
 */
export function tlsContext(caCerts?: readonly string[]): tls.SecureContext {
  if (!caCerts?.length) return defaultContext ??= tls.createSecureContext();
  let context = contexts.get(caCerts);
  if (context === undefined) {
    const blocks = parseCaCerts(caCerts);
    context = tls.createSecureContext();
    for (const block of blocks) context.context.addCACert(block);
    contexts.set(caCerts, context);
  }
  return context;
}

/**
 * Runs a TLS client handshake over `conn` and resolves the TLS connection once the certificate
 * chain was verified against the trusted roots and the certificate against
 * `options.serverName` (never with verification off).
 *
 * Ownership: from the call on, `conn` belongs to this function. It is inside the resolved
 * {@linkcode TlsConn} (whose `close()` closes it), or it has been closed when the promise
 * rejects — whether the signal was already aborted, aborts during the handshake, the handshake
 * fails, or the peer closes. Closing `conn` frees its socket at once, even while the handshake
 * waits for a silent peer.
 *
 * @throws {TlsError} (as a rejected promise) when the handshake fails (see
 * {@linkcode describeTlsFailure} for the messages); `signal.reason` when aborted first.
 */
export function upgradeTls(conn: StreamConn, options: TlsOptions): Promise<TlsConn> {
  const { signal, serverName } = options;
  if (signal.aborted) {
    closeQuietly(conn);
    return Promise.reject(signal.reason);
  }
  let socket: ConnDuplex;
  let sock: tls.TLSSocket;
  try {
    socket = new ConnDuplex(conn);
    sock = tls.connect({
      socket,
      // With `socket` given, `host` is used only to check the certificate (an IP against the IP
      // SANs); `servername` is the SNI, which must not be an IP.
      host: serverName,
      ...(isIP(serverName) === 0 ? { servername: serverName } : {}),
      secureContext: tlsContext(options.caCerts),
      ...(options.alpnProtocols?.length ? { ALPNProtocols: [...options.alpnProtocols] } : {}),
      rejectUnauthorized: true,
    });
  } catch (e) {
    closeQuietly(conn);
    return Promise.reject(describeTlsFailure(e, serverName));
  }
  return new Promise<TlsConn>((resolve, reject) => {
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
      socket.destroy(); // closes `conn` (also when node:tls no longer holds the duplex)
      closeQuietly(conn);
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
      resolve(new TlsConn(sock, socket, conn));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    sock.once("secureConnect", onSecure);
    sock.once("error", onError);
    sock.once("close", onClose);
  });
}

function ignore(): void {}

/**
 * A verified TLS connection from {@linkcode upgradeTls}: a `node:tls` socket over the transport's
 * TCP connection, seen as a {@linkcode StreamConn}.
 *
 * - `read()` copies queued plaintext into the caller's buffer (several TLS records at once when
 *   they fit; what does not fit stays queued for the next read). From
 *   `READ_HIGH_WATER_BYTES` (`_receive_queue.ts`) (256 KiB) of queued plaintext on, no more TCP reads start
 *   until `read()` drained it below half, so the peer is slowed down by TCP flow control. The
 *   TLS socket itself is never paused: Deno 2.9.6's TLSWrap over a JS stream can lose the end of
 *   stream when the underlying stream ends while the TLS socket is paused (the last records and
 *   close_notify are delivered, `end` never is). A peer's TCP FIN without close_notify counts as
 *   end of stream, as in Node.
 * - `write()` resolves once `node:tls` has taken the bytes (its write callback, which waits for
 *   the encrypted bytes to be written to the TCP connection), so it carries TCP backpressure.
 * - `closeWrite()` sends close_notify, then a TCP FIN (half-close), and resolves once both are
 *   written (or the connection is gone).
 * - `close()` frees the TCP socket at once; a pending read or write rejects with
 *   `BadResource`. A second `close()` does nothing.
 */
export class TlsConn implements StreamConn {
  readonly #sock: tls.TLSSocket;
  readonly #socket: ConnDuplex;
  readonly #conn: StreamConn;
  readonly #received: ReceiveQueue;
  #closed = false;
  readonly #writes = new Set<(e: Error) => void>();

  /**
   * @param sock the handshaken TLS socket.
   * @param socket the duplex under `sock`, which owns `conn`.
   * @param conn the TCP connection (owned by this object from now on).
   */
  constructor(sock: tls.TLSSocket, socket: ConnDuplex, conn: StreamConn) {
    this.#sock = sock;
    this.#socket = socket;
    this.#conn = conn;
    // The TCP reads under the TLS socket stop from READ_HIGH_WATER_BYTES of queued plaintext on.
    const received = new ReceiveQueue(
      { stop: () => socket.hold(), restart: () => socket.release() },
      "the TLS connection is closed",
    );
    this.#received = received;
    sock.on("data", (chunk: Uint8Array) => received.push(chunk));
    sock.on("end", () => received.end());
    sock.on("error", (e: Error) => received.fail(e));
    sock.on("close", () => received.end());
  }

  /** The ALPN protocol the server selected, or `null`. */
  get alpnProtocol(): string | null {
    return this.#sock.alpnProtocol || null;
  }

  /**
   * Reads plaintext into `buffer`; resolves the byte count, or `null` at the end of the stream.
   *
   * @throws {BadResource} once closed; the connection's error when it failed.
   */
  read(buffer: Uint8Array): Promise<number | null> {
    return this.#received.read(buffer);
  }

  /** Takes up to `max` decrypted bytes with `headroom` in front (see `StreamConn.readChunk`). */
  readChunk(headroom: number, max: number): Promise<Uint8Array | null> {
    return this.#received.readChunk(headroom, max);
  }

  /**
   * Writes all of `data`; resolves `data.byteLength` once `node:tls` has taken it. The caller
   * must not change `data` before then (it is not copied).
   *
   * @throws {BadResource} once closed; the connection's error when it failed.
   */
  write(data: Uint8Array): Promise<number> {
    if (this.#closed) {
      return Promise.reject(new BadResource("the TLS connection is closed"));
    }
    if (this.#received.error !== undefined) return Promise.reject(this.#received.error);
    if (data.byteLength === 0) return Promise.resolve(0);
    return new Promise<number>((resolve, reject) => {
      const abandon = (e: Error): void => reject(e);
      this.#writes.add(abandon);
      this.#sock.write(data, (e?: Error | null) => {
        this.#writes.delete(abandon);
        if (e) reject(e);
        else resolve(data.byteLength);
      });
    });
  }

  /**
   * Sends close_notify, then half-closes the TCP connection (FIN); resolves once both are written,
   * or at once when the connection is already closed or failed. Never rejects.
   */
  closeWrite(): Promise<void> {
    const socket = this.#socket;
    if (this.#closed || socket.destroyed || socket.writableFinished) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        socket.off("finish", done);
        socket.off("close", done);
        this.#sock.off("close", done);
        this.#writes.delete(done);
        resolve();
      };
      socket.once("finish", done);
      socket.once("close", done);
      this.#sock.once("close", done);
      this.#writes.add(done); // close() settles it too
      this.#sock.end();
    });
  }

  /**
   * Closes the TLS socket and the TCP connection at once (no close_notify: call `closeWrite()`
   * first for a clean end). Pending reads and writes reject with `BadResource`. A
   * second call does nothing.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sock.destroy(); // its "error" listener (constructor) stays: late errors are ignored
    this.#socket.destroy();
    closeQuietly(this.#conn);
    this.#received.close();
    if (this.#writes.size > 0) {
      const closed = new BadResource("the TLS connection is closed");
      for (const settle of [...this.#writes]) settle(closed);
      this.#writes.clear();
    }
  }
}
