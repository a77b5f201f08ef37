/**
 * Checks of a TLS listener's certificate and key before they are used (at start and on reload):
 * the adapters' own TLS stacks accept some bad input lazily, failing only at the next handshake,
 * which on reload would break every new connection. Runtime-neutral (`node:crypto`, which Deno and
 * Bun implement).
 *
 * @module
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import type { TlsFiles } from "./adapter.ts";

/**
 * Checks that `tls.cert` starts with a parsable X.509 certificate (PEM), `tls.key` is a parsable
 * private key (PEM: PKCS#8, PKCS#1 or SEC1), and the key belongs to that certificate.
 *
 * @throws {Error} with a one-line reason: `the certificate cannot be parsed (...)`, `the private
 *   key cannot be parsed (...)`, or `the private key does not match the certificate`.
 */
export function checkTlsFiles(tls: TlsFiles): void {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(tls.cert);
  } catch (e) {
    throw new Error(`the certificate cannot be parsed (${(e as Error).message})`);
  }
  let key;
  try {
    key = createPrivateKey(tls.key);
  } catch (e) {
    throw new Error(`the private key cannot be parsed (${(e as Error).message})`);
  }
  if (!cert.checkPrivateKey(key)) throw new Error("the private key does not match the certificate");
}
