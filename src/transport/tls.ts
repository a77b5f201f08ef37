/**
 * Outbound TLS: dial the checked IP with `Deno.connect`, then `Deno.startTls` with the original
 * host name, so SNI and certificate verification use the name while the dial goes to the address
 * the policy checked (STYLE.md habit 8; `Deno.connectTls` with an IP as hostname would verify the
 * certificate against the IP instead).
 *
 * @module
 */

/** Options of {@linkcode upgradeTls}. */
export interface TlsOptions {
  /** Name for SNI and certificate verification (the client's `addr`; an IP when it gave one). */
  serverName: string;
  /** Extra trusted CA certificates (PEM), in addition to the default root store. */
  caCerts?: readonly string[] | undefined;
  /** ALPN protocols to offer, e.g. `["h2", "http/1.1"]`. */
  alpnProtocols?: readonly string[] | undefined;
  /** Cancels the handshake; the TCP connection is closed and the promise rejects. */
  signal: AbortSignal;
}

/**
 * Runs a TLS client handshake over an open TCP connection and resolves the TLS connection.
 * On failure or abort the TCP connection is closed.
 *
 * @throws {Deno.errors.InvalidData} for certificate problems (`invalid peer certificate:
 * UnknownIssuer`, `... certificate expired ...`, `... not valid for name ...`), other
 * `Deno.errors` for I/O failures, or `signal.reason` when aborted.
 */
export async function upgradeTls(conn: Deno.TcpConn, options: TlsOptions): Promise<Deno.TlsConn> {
  const { signal } = options;
  let tls: Deno.TlsConn | undefined;
  const onAbort = (): void => {
    try {
      (tls ?? conn).close();
    } catch {
      // already closed
    }
  };
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    signal.throwIfAborted();
    tls = await Deno.startTls(conn, {
      hostname: options.serverName,
      ...(options.caCerts?.length ? { caCerts: [...options.caCerts] } : {}),
      ...(options.alpnProtocols?.length ? { alpnProtocols: [...options.alpnProtocols] } : {}),
    });
    await tls.handshake();
    signal.throwIfAborted();
    return tls;
  } catch (e) {
    if (!signal.aborted) {
      try {
        (tls ?? conn).close();
      } catch {
        // already closed
      }
    }
    throw signal.aborted ? signal.reason : e;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}
