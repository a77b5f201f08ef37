/**
 * Node's `tls` module, client side (Node 22 API,
 * https://nodejs.org/docs/latest-v22.x/api/tls.html) over a wasmnet server: the server runs the
 * TLS handshake and verifies the certificate, the page sees plaintext.
 *
 * Implemented: {@linkcode connect} (every overload) over `connect_tls`, or over `connect` +
 * `start_tls` when `servername` differs from `host`; upgrading an open `net.Socket` from
 * `net.ts` with `connect({ socket })` (pg, mysql2, SMTP STARTTLS) over the `start_tls`
 * extension; {@linkcode TLSSocket} (`encrypted`, `authorized`, `secureConnect`);
 * {@linkcode createSecureContext}, {@linkcode checkServerIdentity}; {@linkcode configure}.
 *
 * Not implemented, and why: servers (`createServer`, `Server`: the protocol has no TLS
 * listener), client certificates (`cert`/`key`/`pfx`: the server holds no client identity; they
 * are ignored), and choosing the trust store from the page (`ca` is ignored, `rejectUnauthorized:
 * false` is ignored: the server always verifies, against its roots plus `--ca-cert`). The peer
 * certificate, protocol version and cipher are not reported by the protocol, so
 * `getPeerCertificate()` returns `{}` and `getProtocol()`/`getCipher()` `null`.
 *
 * @example
 * ```ts ignore
 * import tls from "./tls.ts";
 * tls.configure({ url: "ws://127.0.0.1:9000/" });
 * const sock = tls.connect({ host: "example.com", port: 443 }, () => {
 *   sock.write("GET / HTTP/1.0\r\nHost: example.com\r\n\r\n");
 * });
 * ```
 *
 * @module
 */
import { configure, type ConfigureOptions } from "./_client.ts";
import { nodeError } from "./_errors.ts";
import {
  type NetConnectOpts,
  normalizeConnectArgs,
  Socket,
  type SocketConstructorOpts,
  type TcpSocketConnectOpts,
} from "./net.ts";

export { configure, type ConfigureOptions };

/** The opaque result of {@linkcode createSecureContext}: keeps the options, used by nobody. */
export interface SecureContext {
  /** The options it was made with (ignored: the server's TLS settings apply). */
  context: SecureContextOptions;
}

/** Options of {@linkcode createSecureContext} (Node 22); all ignored, see the module doc. */
export interface SecureContextOptions {
  /** Ignored: the server trusts its roots plus `--ca-cert`. */
  ca?: unknown;
  /** Ignored: no client certificates. */
  cert?: unknown;
  /** Ignored. */
  key?: unknown;
  /** Ignored. */
  pfx?: unknown;
  /** Ignored. */
  passphrase?: string;
  /** Ignored. */
  ciphers?: string;
  /** Ignored. */
  minVersion?: string;
  /** Ignored. */
  maxVersion?: string;
  /** Ignored. */
  [key: string]: unknown;
}

/** Options of {@linkcode connect} (Node 22 `tls.ConnectionOptions`). */
export interface ConnectionOptions extends SecureContextOptions {
  /** Remote host (default `localhost`). */
  host?: string;
  /** Remote port. */
  port?: number | string;
  /**
   * SNI and the name the certificate is verified against; default `host`. When it differs from
   * `host`, the socket dials `host` and upgrades with `start_tls` (needs the extension).
   */
  servername?: string;
  /** An open `net.Socket` of this module set to upgrade in place (`start_tls` extension). */
  socket?: Socket;
  /** Ignored: the server always verifies the certificate (see the module doc). */
  rejectUnauthorized?: boolean;
  /** Ignored (the server offers no ALPN). */
  ALPNProtocols?: unknown;
  /** Ignored. */
  secureContext?: SecureContext;
  /** Ignored. */
  checkServerIdentity?: unknown;
  /** Ignored. */
  session?: unknown;
  /** Idle timeout in ms. */
  timeout?: number;
  /** As in `net.connect`. */
  allowHalfOpen?: boolean;
  /** As in `net.connect`. */
  signal?: AbortSignal;
  /** As in `net.connect`. */
  lookup?: TcpSocketConnectOpts["lookup"];
  /** As in `net.connect`. */
  family?: number;
}

/**
 * A TLS client socket (Node 22 `tls.TLSSocket`): a {@linkcode Socket} whose bytes the server
 * encrypts. Emits `secureConnect` once the handshake is done (after `connect`), then behaves as
 * a `net.Socket`. `encrypted` is `true`; `authorized` becomes `true` with `secureConnect`
 * (a certificate the server cannot verify fails the connection instead).
 */
export class TLSSocket extends Socket {
  /** Always `true`. */
  readonly encrypted = true;
  /** `true` once the handshake is done and the certificate verified by the server. */
  authorized = false;
  /** Always `undefined`: an unverified certificate fails the connection. */
  authorizationError: Error | undefined = undefined;
  /** Always `false`: the protocol does not negotiate ALPN. */
  alpnProtocol: string | false = false;
  /** The SNI name sent, once known. */
  servername: string | false = false;

  /**
   * Wraps `socket` (Node's `new tls.TLSSocket(socket)`), upgrading it with `start_tls`.
   * Without `socket`, an unconnected TLS socket: connect it with {@linkcode connect}.
   */
  constructor(socket?: Socket, options: ConnectionOptions = {}) {
    const ctor: SocketConstructorOpts = {};
    if (options.allowHalfOpen !== undefined) ctor.allowHalfOpen = options.allowHalfOpen;
    if (options.signal !== undefined) ctor.signal = options.signal;
    super(ctor);
    if (socket !== undefined) this.#upgrade(socket, options);
  }

  /** `{}`: the protocol does not report the peer certificate. */
  getPeerCertificate(_detailed?: boolean): Record<string, never> {
    return {};
  }

  /** `null`: the protocol does not report the TLS version. */
  getProtocol(): string | null {
    return null;
  }

  /** `null`: the protocol does not report the cipher. */
  getCipher(): null {
    return null;
  }

  /** `undefined`: no session resumption. */
  getSession(): undefined {
    return undefined;
  }

  /** `false`: no session resumption. */
  isSessionReused(): boolean {
    return false;
  }

  /** Accepted, no effect. */
  setServername(_name: string): void {}

  /** Accepted, returns `false` (no renegotiation through the protocol). */
  setMaxSendFragment(_size: number): boolean {
    return false;
  }

  /** Connects as TLS (internal: used by {@linkcode connect}). */
  _wasmnetConnectTls(options: ConnectionOptions): void {
    const host = options.host === undefined || options.host === "" ? "localhost" : options.host;
    const servername = options.servername === undefined || options.servername === ""
      ? undefined
      : options.servername;
    this.servername = servername ?? host;
    const net: TcpSocketConnectOpts = { port: options.port ?? 443, host };
    if (options.timeout !== undefined) net.timeout = options.timeout;
    if (options.lookup !== undefined) net.lookup = options.lookup;
    if (options.family !== undefined) net.family = options.family;
    this._wasmnetConnect(net, { servername: servername === host ? undefined : servername });
  }

  protected override _wasmnetConnected(): void {
    this.authorized = true;
    super._wasmnetConnected();
    this.emit("secureConnect");
  }

  #upgrade(socket: Socket, options: ConnectionOptions): void {
    if (!(socket instanceof Socket)) {
      throw new TypeError(
        "tls.connect({ socket }): the socket must be a net.Socket of the wasmnet net module",
      );
    }
    const name = options.servername !== undefined && options.servername !== ""
      ? options.servername
      : options.host;
    this.servername = name ?? false;
    this._wasmnetUpgrade(socket, name);
  }
}

/**
 * Opens a TLS connection (Node 22 `tls.connect`): `(options, cb?)`, `(port, host?, options?,
 * cb?)`, `(port, options?, cb?)`. `cb` is added as a `secureConnect` listener. With
 * `options.socket`, upgrades that open socket in place (`start_tls`); a server without the
 * extension makes it fail with `ERR_WASMNET_START_TLS_UNSUPPORTED`.
 *
 * Errors: as `net.connect`, and a failed handshake carries the server's code
 * (`UNABLE_TO_VERIFY_LEAF_SIGNATURE`, `CERT_HAS_EXPIRED`, `ERR_TLS_CERT_ALTNAME_INVALID`, ...).
 *
 * @throws {RangeError} `ERR_SOCKET_BAD_PORT` for a port outside 1-65535.
 */
export function connect(options: ConnectionOptions, secureConnectListener?: () => void): TLSSocket;
export function connect(
  port: number,
  host?: string,
  options?: ConnectionOptions,
  secureConnectListener?: () => void,
): TLSSocket;
export function connect(
  port: number,
  options?: ConnectionOptions,
  secureConnectListener?: () => void,
): TLSSocket;
export function connect(...args: unknown[]): TLSSocket {
  const options = tlsOptions(args);
  const last = args[args.length - 1];
  const cb = typeof last === "function" ? last as () => void : undefined;
  if (options.socket !== undefined) {
    const sock = new TLSSocket(options.socket, options);
    if (cb !== undefined) sock.once("secureConnect", cb);
    return sock;
  }
  const sock = new TLSSocket(undefined, options);
  if (cb !== undefined) sock.once("secureConnect", cb);
  sock._wasmnetConnectTls(options);
  return sock;
}

function tlsOptions(args: unknown[]): ConnectionOptions {
  const first = args[0];
  if (first !== null && typeof first === "object") return { ...first as ConnectionOptions };
  const [base] = normalizeConnectArgs(args.filter((a) => typeof a !== "object"));
  const extra = args.find((a, i) => i > 0 && a !== null && typeof a === "object");
  const tcp = base as NetConnectOpts & TcpSocketConnectOpts;
  const out: ConnectionOptions = { ...(extra as ConnectionOptions | undefined) };
  out.port = tcp.port;
  if (tcp.host !== undefined) out.host = tcp.host;
  return out;
}

/** Node 22 `tls.createSecureContext`: keeps the options (ignored; see the module doc). */
export function createSecureContext(options: SecureContextOptions = {}): SecureContext {
  return { context: options };
}

/**
 * Node 22 `tls.checkServerIdentity`: returns `undefined` (the server already verified the name;
 * the page never sees the certificate).
 */
export function checkServerIdentity(_hostname: string, _cert: unknown): Error | undefined {
  return undefined;
}

/** Not available: the protocol has no TLS listener. */
export function createServer(): never {
  throw nodeError(
    "ERR_FEATURE_UNAVAILABLE_ON_PLATFORM",
    "tls.createServer is not available through wasmnet",
  );
}

/** Always empty: the roots live on the server. */
export const rootCertificates: readonly string[] = Object.freeze([]);
/** Node 22's default minimum version (informational; the server decides). */
export const DEFAULT_MIN_VERSION = "TLSv1.2";
/** Node 22's default maximum version (informational; the server decides). */
export const DEFAULT_MAX_VERSION = "TLSv1.3";
/** Node 22's default ECDH curve setting (informational). */
export const DEFAULT_ECDH_CURVE = "auto";

/** The ciphers: empty (the server decides). */
export function getCiphers(): string[] {
  return [];
}

/** The module as one object, for code compiled to CommonJS (`require("tls")` reads `.default`). */
const tls: {
  TLSSocket: typeof TLSSocket;
  connect: typeof connect;
  createSecureContext: typeof createSecureContext;
  checkServerIdentity: typeof checkServerIdentity;
  createServer: typeof createServer;
  getCiphers: typeof getCiphers;
  rootCertificates: readonly string[];
  DEFAULT_MIN_VERSION: string;
  DEFAULT_MAX_VERSION: string;
  DEFAULT_ECDH_CURVE: string;
  configure: typeof configure;
} = {
  TLSSocket,
  connect,
  createSecureContext,
  checkServerIdentity,
  createServer,
  getCiphers,
  rootCertificates,
  DEFAULT_MIN_VERSION,
  DEFAULT_MAX_VERSION,
  DEFAULT_ECDH_CURVE,
  configure,
};
export default tls;
