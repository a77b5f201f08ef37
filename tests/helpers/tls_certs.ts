/**
 * A throw-away PKI for TLS tests, made with the system `openssl` CLI (OpenSSL 3.0+).
 *
 * @module
 */

/** PEM-encoded certificates and PKCS#8 keys from {@linkcode makeTestPki}. */
export interface TestPki {
  /** The trusted test CA; pass it as `caCerts: [caCert]`. */
  caCert: string;
  /** Leaf signed by `caCert` for CN=localhost, SAN DNS:localhost, DNS:tls.test, IP:127.0.0.1, IP:::1. */
  serverCert: string;
  /** Private key of `serverCert`. */
  serverKey: string;
  /** Same names, signed by `caCert`, but valid only from 2020-01-01 to 2020-01-02 (expired). */
  expiredCert: string;
  /** Private key of `expiredCert`. */
  expiredKey: string;
  /** Same names and valid dates, but signed by a second CA that is never handed out. */
  untrustedCert: string;
  /** Private key of `untrustedCert`. */
  untrustedKey: string;
}

/** The names every leaf certificate carries. */
export const TEST_PKI_NAMES: readonly string[] = ["localhost", "tls.test", "127.0.0.1", "::1"];

const OPENSSL_CONFIG = `
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused

[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ leaf_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, DNS:tls.test, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

# Only used to sign the expired leaf: "openssl ca" is the OpenSSL 3.0 way to set explicit
# validity dates (x509 -not_before/-not_after only arrived in 3.4).
[ ca ]
default_ca = expired_ca
[ expired_ca ]
database = index.txt
new_certs_dir = .
serial = serial.txt
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[ policy_any ]
commonName = supplied
`;

/** Validity window of the expired leaf (`openssl ca` date format, GeneralizedTime). */
const EXPIRED_NOT_BEFORE = "20200101000000Z";
const EXPIRED_NOT_AFTER = "20200102000000Z";
const VALID_DAYS = "3650";

async function openssl(cwd: string, args: string[]): Promise<void> {
  const { code, stderr } = await new Deno.Command("openssl", {
    args,
    cwd,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    const detail = new TextDecoder().decode(stderr).trim();
    throw new Error(`Cannot run "openssl ${args[0] ?? ""}": exit code ${code}: ${detail}`);
  }
}

function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] ?? 0) & 0x7f | 0x10; // positive and non-zero leading byte
  return "0x" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function generate(): Promise<TestPki> {
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-pki-" });
  try {
    await Deno.writeTextFile(`${dir}/openssl.cnf`, OPENSSL_CONFIG);
    await Deno.writeTextFile(`${dir}/index.txt`, "");
    await Deno.writeTextFile(`${dir}/serial.txt`, randomSerial().slice(2) + "\n");
    const run = (args: string[]): Promise<void> => openssl(dir, args);
    const key = (name: string): Promise<void> =>
      run([
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        `${name}.key`,
      ]);
    const ca = async (name: string, cn: string): Promise<void> => {
      await key(name);
      await run([
        "req",
        "-config",
        "openssl.cnf",
        "-x509",
        "-new",
        "-key",
        `${name}.key`,
        "-subj",
        `/CN=${cn}`,
        "-days",
        VALID_DAYS,
        "-sha256",
        "-extensions",
        "ca_ext",
        "-out",
        `${name}.pem`,
      ]);
    };
    const csr = async (name: string): Promise<void> => {
      await key(name);
      await run([
        "req",
        "-config",
        "openssl.cnf",
        "-new",
        "-key",
        `${name}.key`,
        "-subj",
        "/CN=localhost",
        "-out",
        `${name}.csr`,
      ]);
    };
    const sign = (name: string, caName: string): Promise<void> =>
      run([
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        `${caName}.pem`,
        "-CAkey",
        `${caName}.key`,
        "-set_serial",
        randomSerial(),
        "-days",
        VALID_DAYS,
        "-sha256",
        "-extfile",
        "openssl.cnf",
        "-extensions",
        "leaf_ext",
        "-out",
        `${name}.pem`,
      ]);

    await Promise.all([ca("ca", "wasmnet test CA"), ca("other-ca", "wasmnet untrusted CA")]);
    await Promise.all([csr("server"), csr("expired"), csr("untrusted")]);
    await Promise.all([
      sign("server", "ca"),
      sign("untrusted", "other-ca"),
      run([
        "ca",
        "-batch",
        "-config",
        "openssl.cnf",
        "-notext",
        "-cert",
        "ca.pem",
        "-keyfile",
        "ca.key",
        "-in",
        "expired.csr",
        "-startdate",
        EXPIRED_NOT_BEFORE,
        "-enddate",
        EXPIRED_NOT_AFTER,
        "-extfile",
        "openssl.cnf",
        "-extensions",
        "leaf_ext",
        "-out",
        "expired.pem",
      ]),
    ]);

    const read = (file: string): Promise<string> => Deno.readTextFile(`${dir}/${file}`);
    return {
      caCert: await read("ca.pem"),
      serverCert: await read("server.pem"),
      serverKey: await read("server.key"),
      expiredCert: await read("expired.pem"),
      expiredKey: await read("expired.key"),
      untrustedCert: await read("untrusted.pem"),
      untrustedKey: await read("untrusted.key"),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

let cached: Promise<TestPki> | undefined;

/**
 * Returns the test PKI, generating it on first use (about 100 ms of `openssl` runs) and
 * reusing it for the rest of the process. Needs `--allow-run=openssl`, `--allow-read` and
 * `--allow-write` for a temporary directory, which is removed before this resolves.
 *
 * @example Serve TLS with the test PKI and verify it against the test CA
 * ```ts
 * import { makeTestPki } from "./tls_certs.ts";
 *
 * const pki = await makeTestPki();
 * using listener = Deno.listenTls({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   cert: pki.serverCert,
 *   key: pki.serverKey,
 * });
 * const accepted = listener.accept().then((conn) => conn.handshake().finally(() => conn.close()));
 * const tcp = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * const tls = await Deno.startTls(tcp, { hostname: "localhost", caCerts: [pki.caCert] });
 * await tls.handshake();
 * tls.close();
 * await accepted;
 * ```
 */
export function makeTestPki(): Promise<TestPki> {
  cached ??= generate().catch((err: unknown) => {
    cached = undefined; // let a later call retry
    throw err;
  });
  return cached;
}
