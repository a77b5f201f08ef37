/**
 * Command-line parsing (pure: no I/O). Flags follow `wasmnet-server` (the Rust wasmnet).
 *
 * @module
 */
import { parseArgs, type ParseArgsOptionDescriptor } from "node:util";
import { type LogFormat, type LogLevel, parseLogFormat, parseLogLevel } from "../log/mod.ts";
import { parseTarget } from "../policy/mod.ts";
import { parseHostPort } from "../protocol/host_port.ts";
import { parseTrustedProxies } from "../server/client_ip.ts";

/** Thrown for a bad command line; `message` is one line meant for the user. */
export class CliError extends Error {
  /** Stable code. */
  readonly code = "ECLI";
  /** @param message one line, e.g. `unknown flag --foo`. */
  constructor(message: string) {
    super(message);
    this.name = "CliError";
  }
}

/** Flags of the `serve` command (the default command). */
export interface ServeFlags {
  /**
   * `-H/--host`: address to listen on (default `0.0.0.0`): an IP address in canonical form
   * (`127.1` → `127.0.0.1`, `[::1]` → `::1`) or a normalised host name (`localhost`).
   */
  host: string;
  /** `-p/--port`: port to listen on (default 9000; 0 = any free port). */
  port: number;
  /** `--policy FILE`: TOML policy file. */
  policyFile: string | undefined;
  /** `--no-policy`: allow everything (no checks at all). */
  noPolicy: boolean;
  /** `--cert FILE`: serve TLS (`wss://`, `https://`) with this certificate chain (PEM). */
  certFile: string | undefined;
  /** `--key FILE`: the private key (PEM) of `--cert`. */
  keyFile: string | undefined;
  /** `--watch-policy`: reload the `--policy` file whenever it changes (SIGHUP always reloads it). */
  watchPolicy: boolean;
  /** `--max-bandwidth-mbps N`: per-session bandwidth cap in Mbps (10^6 bit/s); wins over the policy. */
  maxBandwidthMbps: number | undefined;
  /** `--max-server-bandwidth-mbps N`: whole-server cap per direction in Mbps; wins over the policy. */
  maxServerBandwidthMbps: number | undefined;
  /** `--pool-idle-secs N`: seconds pre-dialled pooled connections are kept (either pool flag enables the pool). */
  poolIdleSecs: number | undefined;
  /** `--pool-per-key N`: pre-dialled connections kept per target `ip:port`. */
  poolPerKey: number | undefined;
  /** `--max-message-bytes N`: largest WebSocket message a session decodes (default 4194304). */
  maxMessageBytes: number | undefined;
  /** `--dns-server IP[:PORT]`: query this name server instead of the system resolver. */
  dnsServer: { ipAddr: string; port: number } | undefined;
  /** `--log-level LEVEL`: overrides `WASMNET_LOG`. */
  logLevel: LogLevel | undefined;
  /** `--log-format text|json`: `json` makes every log line one JSON object (default `text`). */
  logFormat: LogFormat;
  /**
   * `--metrics-listen HOST:PORT`: also serve `GET /metrics` (Prometheus text format) on this
   * address, to any peer (an internal port); the main port answers `/metrics` to loopback peers
   * only. `hostname` is an IP address or name as given (IPv6 without brackets).
   */
  metricsListen: { hostname: string; port: number } | undefined;
  /** `--ca-cert FILE` (repeatable): extra trusted CA certificates (PEM) for `connect_tls`. */
  caCertFiles: string[];
  /** `--max-sessions N`: most WebSocket sessions at once (default: no limit). */
  maxSessions: number | undefined;
  /**
   * `--trust-proxy CIDR` (repeatable; also comma-separated): reverse proxies whose
   * `X-Forwarded-For`/`Forwarded` name the client (validated: CIDRs or addresses).
   */
  trustProxy: string[];
  /** `--max-sessions-per-ip N`: sessions one client address may hold at once (429 beyond). */
  maxSessionsPerIp: number | undefined;
  /** `--max-new-sessions-per-ip-per-min N`: new sessions per client address per minute (429). */
  maxNewSessionsPerIpPerMin: number | undefined;
  /** `--max-dials-per-ip-per-min N`: dials per client address per minute (`error` beyond). */
  maxDialsPerIpPerMin: number | undefined;
  /** `--allow-open-relay`: allow `--no-policy` on a non-loopback address (an open relay). */
  allowOpenRelay: boolean;
  /** `--allow-origin ORIGIN` (repeatable): web origins allowed to open sessions (default: any). */
  allowedOrigins: string[];
  /**
   * `--demo` / `--no-demo`: serve the demo page at `/`. Default: on when `host` is a loopback
   * address ({@linkcode isLoopbackHost}), off otherwise (so off on the default `0.0.0.0`).
   */
  demo: boolean;
  /** `--wisp on|off`: serve Wisp and wsproxy under the prefix (default on). */
  wisp: boolean;
  /** `--wisp-prefix PATH`: the Wisp path prefix, starting and ending with `/` (default `/wisp/`). */
  wispPrefix: string;
  /** `--wisp-users FILE`: `user:password` lines; Wisp then requires password authentication. */
  wispUsersFile: string | undefined;
  /** `--wisp-motd TEXT`: message of the day in Wisp v2's INFO (extension 0x04). */
  wispMotd: string | undefined;
  /**
   * `--ticket-key FILE`: require a signed ticket on every session; FILE holds an HMAC-SHA256
   * secret (text, at least 32 bytes) or an Ed25519 public key (PEM).
   */
  ticketKeyFile: string | undefined;
  /** `--ticket-leeway SECONDS`: clock leeway for a ticket's `exp` and `nbf` (default 0). */
  ticketLeewaySecs: number | undefined;
}

/** Flags of the `ticket` command (mint a ticket). */
export interface TicketFlags {
  /** `--key FILE`: the HMAC secret, or the Ed25519 private key (PKCS8 PEM). */
  keyFile: string;
  /** `--sub NAME`: the tenant. */
  sub: string | undefined;
  /** `--allow RULE` (repeatable): allow rules that narrow the server policy; none: no narrowing. */
  allow: string[] | undefined;
  /** `--ttl N{s,m,h}`: lifetime, in seconds. */
  ttlSecs: number;
  /** `--max-connections N`: the session's cap (the server's wins when smaller). */
  maxConnections: number | undefined;
  /** `--mbps N`: the session's bandwidth cap per direction (the server's wins when smaller). */
  mbps: number | undefined;
}

/** A parsed command line. */
export type Command =
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "serve"; flags: ServeFlags }
  | { kind: "check-policy"; file: string; explain: string[] }
  | { kind: "ticket"; flags: TicketFlags }
  | { kind: "water"; flags: WaterFlags }
  | { kind: "plugin"; flags: PluginFlags };

/** Flags of the `plugin` command (run a harness plugin function once). */
export interface PluginFlags {
  /** The plugin module file (`FILE.wasm`). */
  file: string;
  /** `--call FUNCTION`: the export to call (default `run`). */
  call: string;
  /** `--input TEXT`: the plugin's input. */
  input: string | undefined;
  /** `--input-file F`: the plugin's input, from a file (bytes as they are). */
  inputFile: string | undefined;
  /** `--timeout-ms N`: time limit of the call (default 30000). */
  timeoutMs: number | undefined;
  /** `--max-memory-mib N`: the plugin's memory limit (default 256). */
  maxMemoryMib: number | undefined;
  /** `--policy FILE`. */
  policyFile: string | undefined;
  /** `--no-policy`. */
  noPolicy: boolean;
}

/** Flags of the `water` command (run a W.A.T.E.R. transport module). */
export interface WaterFlags {
  /** The WATM v1 module file (`FILE.wasm`). */
  moduleFile: string;
  /** `--role`: dialer, listener or relay. */
  role: "dialer" | "listener" | "relay";
  /** `--listen HOST:PORT`: where to accept connections. */
  listen: { hostname: string; port: number };
  /** `--remote HOST:PORT`: the fixed remote (a name or an IP address). */
  remote: { host: string; port: number };
  /** `--config FILE`: the module's `/conf/watm.cfg`. */
  configFile: string | undefined;
  /** `--policy FILE`. */
  policyFile: string | undefined;
  /** `--no-policy`. */
  noPolicy: boolean;
  /** `--log-level LEVEL`. */
  logLevel: LogLevel | undefined;
}

/** The `--help` text. */
export const HELP =
  `wasmnet: networking proxy for browser WebAssembly (TCP, TLS, UDP, DNS over one WebSocket)

Usage:
  wasmnet [flags]                              run the server
  wasmnet check-policy FILE [--explain T ...]  validate a policy file; explain decisions for T
                                               (T is host:port, ip:port or [ipv6]:port)
  wasmnet ticket --key FILE --ttl T [...]      print a signed ticket (a JWT) for a server
                                               started with --ticket-key (see Ticket flags)
  wasmnet water FILE.wasm --role R --listen HOST:PORT --remote HOST:PORT [--config FILE]
                          [--no-policy | --policy FILE] [--log-level LEVEL]
                                               run a W.A.T.E.R. (WATM v1) pluggable transport:
                                               R is dialer (plaintext in, module's wire format to
                                               --remote), listener (wire format in, plaintext to
                                               --remote) or relay; every dial policy-checked
  wasmnet plugin FILE.wasm [--call FUNCTION] [--input TEXT | --input-file F] [--timeout-ms N]
                           [--max-memory-mib N] [--no-policy | --policy FILE]
                                               run a harness plugin's function (default run) with
                                               tcp_*/udp_*/icmp_* under the policy (default: the
                                               built-in defaults); prints only its output; exit 1
                                               on a trap, plugin error or time limit (30 s)

Flags:
  -H, --host ADDR              address to listen on (default 0.0.0.0)
  -p, --port PORT              port to listen on (default 9000; 0 = any free port)
      --cert FILE, --key FILE  serve TLS (wss://, https://) with this certificate chain and
                               private key (PEM); SIGHUP reloads both without dropping sessions
      --policy FILE            TOML policy file (default: built-in policy, private ranges denied)
      --no-policy              disable every policy check (allow everything)
      --watch-policy           reload the --policy file when it changes (SIGHUP always reloads:
                               new dials use the new policy, open sockets keep running; a bad
                               file is logged and the previous policy stays)
      --max-bandwidth-mbps N   bandwidth cap per session and direction, in Mbps (wins over policy)
      --max-server-bandwidth-mbps N
                               cap on the whole server per direction, in Mbps (wins over policy)
      --pool-idle-secs N       keep pre-dialled, never-used connections N seconds (enables the
                               pool; default 30 when only --pool-per-key is given)
      --pool-per-key N         pre-dialled connections kept per target ip:port (enables the pool;
                               default 2 when only --pool-idle-secs is given)
      --max-message-bytes N    largest WebSocket message accepted (default 4194304)
      --dns-server IP[:PORT]   resolve names with this DNS server instead of the system resolver
      --ca-cert FILE           also trust this CA certificate (PEM) for connect_tls; repeatable
      --max-sessions N         most WebSocket sessions at once; more get 503 (default: no limit)
      --trust-proxy CIDR       a reverse proxy whose X-Forwarded-For / Forwarded names the client
                               (repeatable or comma-separated); other peers' headers are ignored
      --max-sessions-per-ip N  sessions one client address may hold at once; more get 429
      --max-new-sessions-per-ip-per-min N
                               new sessions per client address per minute; more get 429
      --max-dials-per-ip-per-min N
                               dials (connect, connect_tls, connect_udp, Wisp CONNECT) per
                               client address per minute; more get an error (Wisp: CLOSE 0x49)
      --allow-open-relay       allow --no-policy on a non-loopback address (refused otherwise)
      --allow-origin ORIGIN    only pages from ORIGIN (e.g. https://app.example.com) may open
                               sessions; repeatable (default: any origin)
      --demo, --no-demo        serve (or not) a demo page at / that opens sockets through this
                               server (default: on when --host is loopback, else off)
      --wisp on|off            speak Wisp (v1, v2) at the Wisp prefix and wsproxy under it
                               (default on)
      --wisp-prefix PATH       the Wisp path prefix (default /wisp/): ws://HOST:PORT/wisp/ is
                               Wisp, ws://HOST:PORT/wisp/HOST2:PORT2 is a wsproxy stream
      --wisp-users FILE        require Wisp v2 password authentication; FILE has one
                               user:password per line (v1 clients and wsproxy are refused)
      --wisp-motd TEXT         message of the day sent to Wisp v2 clients
      --ticket-key FILE        every session needs a signed ticket (?ticket=JWT or the
                               subprotocol wasmnet.ticket.JWT), else 401; FILE holds an HMAC-SHA256
                               secret (at least 32 bytes) or an Ed25519 public key (PEM)
      --ticket-leeway SECONDS  clock leeway for a ticket's exp and nbf (default 0: none)
      --log-level LEVEL        trace, debug, info, warn, error or silent (default: $WASMNET_LOG or info)
      --log-format FORMAT      text or json: json prints every log line as one JSON object (the
                               audit log: sessions, socket open/deny/close) (default text)
      --metrics-listen HOST:PORT
                               also serve GET /metrics (Prometheus) on this address to any peer
                               (the main port answers /metrics to loopback peers only)
  -h, --help                   show this help
  -V, --version                show the version

Ticket flags (wasmnet ticket):
      --key FILE               the server's HMAC secret, or the Ed25519 PRIVATE key (PKCS8 PEM)
                               whose public key the server has
      --ttl T                  lifetime: a whole number of s, m or h (90s, 10m, 12h)
      --sub NAME               the tenant (in the server's logs)
      --allow RULE             narrow the server policy to RULE (policy allow syntax, e.g.
                               db.example.com:5432, 10.0.0.0/8:443); repeatable (default: no
                               narrowing)
      --max-connections N      cap the session's sockets (the server's cap wins when smaller)
      --mbps N                 cap the session's bandwidth per direction (the smaller cap wins)

Water flags (wasmnet water FILE.wasm; --policy, --no-policy and --log-level as above):
      --role R                 dialer: accepted connections are plaintext, the module dials
                               --remote in its wire format; listener: accepted connections are
                               in the wire format, plaintext goes to --remote; relay: both
      --listen HOST:PORT       where to accept connections (port 0: any)
      --remote HOST:PORT       the fixed remote (policy-checked at start and at every dial)
      --config FILE            the module's configuration, as /conf/watm.cfg

Plugin flags (wasmnet plugin FILE.wasm; --policy and --no-policy as above):
      --call FUNCTION          the export to call (default run)
      --input TEXT             the plugin's input, as text
      --input-file F           the plugin's input, the bytes of file F
      --timeout-ms N           time limit in ms (default 30000)
      --max-memory-mib N       memory limit in MiB (default 256)

Environment:
  WASMNET_LOG                  log level (as --log-level)
`;

function number(
  flag: string,
  raw: string | undefined,
  { min, max, integer }: { min: number; max: number; integer: boolean },
): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (
    raw.trim() === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min ||
    n > max
  ) {
    const kind = integer ? "an integer" : "a number";
    throw new CliError(
      `invalid value for ${flag}: "${raw}" (expected ${kind} from ${min} to ${max})`,
    );
  }
  return n;
}

function nameServer(raw: string | undefined): ServeFlags["dnsServer"] {
  if (raw === undefined) return undefined;
  const m = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(raw) ?? /^([0-9.]+)(?::(\d+))?$/.exec(raw) ??
    /^([0-9a-fA-F:]+)()$/.exec(raw);
  if (!m || !m[1]) {
    throw new CliError(`invalid value for --dns-server: "${raw}" (expected IP or IP:PORT)`);
  }
  const port = number("--dns-server", m[2] || "53", { min: 1, max: 65535, integer: true }) ?? 53;
  return { ipAddr: m[1], port };
}

/**
 * Parses a command line (without the program name).
 *
 * @throws {CliError} for unknown flags, missing or bad values, or conflicting flags, with a
 * one-line message such as `unknown flag --foo` or `invalid value for --port: "x" (...)`.
 *
 * @example
 * ```ts
 * import { parseCommand } from "./args.ts";
 * parseCommand(["-H", "127.0.0.1", "-p", "0", "--no-policy"]); // { kind: "serve", flags: { port: 0, noPolicy: true, ... } }
 * ```
 */
export function parseCommand(args: string[]): Command {
  if (args[0] === "ticket") return parseTicketCommand(args.slice(1));
  if (args[0] === "water") return parseWaterCommand(args.slice(1));
  if (args[0] === "plugin") return parsePluginCommand(args.slice(1));
  const parsed = parseFlags(args, true, {
    host: { type: "string", short: "H" },
    port: { type: "string", short: "p" },
    policy: { type: "string" },
    "no-policy": { type: "boolean" },
    "watch-policy": { type: "boolean" },
    cert: { type: "string" },
    key: { type: "string" },
    "max-bandwidth-mbps": { type: "string" },
    "max-server-bandwidth-mbps": { type: "string" },
    "pool-idle-secs": { type: "string" },
    "pool-per-key": { type: "string" },
    "max-message-bytes": { type: "string" },
    "dns-server": { type: "string" },
    "log-level": { type: "string" },
    "log-format": { type: "string" },
    "metrics-listen": { type: "string" },
    "ca-cert": { type: "string", multiple: true },
    "allow-origin": { type: "string", multiple: true },
    "max-sessions": { type: "string" },
    "trust-proxy": { type: "string", multiple: true },
    "max-sessions-per-ip": { type: "string" },
    "max-new-sessions-per-ip-per-min": { type: "string" },
    "max-dials-per-ip-per-min": { type: "string" },
    "allow-open-relay": { type: "boolean" },
    demo: { type: "boolean" },
    "no-demo": { type: "boolean" },
    wisp: { type: "string" },
    "wisp-prefix": { type: "string" },
    "wisp-users": { type: "string" },
    "wisp-motd": { type: "string" },
    "ticket-key": { type: "string" },
    "ticket-leeway": { type: "string" },
    explain: { type: "string", multiple: true },
    version: { type: "boolean", short: "V" },
  });
  const { values: v, positionals } = parsed;
  if (v.help) return { kind: "help" };
  if (v.version) return { kind: "version" };
  if (positionals[0] === "check-policy") {
    if (positionals.length !== 2) {
      throw new CliError("usage: wasmnet check-policy FILE [--explain host:port]");
    }
    return { kind: "check-policy", file: positionals[1] ?? "", explain: v.explain ?? [] };
  }
  if (positionals.length > 0) throw new CliError(`unexpected argument "${positionals[0]}"`);
  if (v.explain) throw new CliError("--explain goes with the check-policy command");
  if (v.policy !== undefined && v["no-policy"]) {
    throw new CliError("--policy and --no-policy cannot be used together");
  }
  if (v.demo && v["no-demo"]) throw new CliError("--demo and --no-demo cannot be used together");
  if (v["no-policy"] && !v["allow-open-relay"] && !isLoopbackHost(listenHost(v.host))) {
    throw new CliError(
      `--no-policy on ${listenHost(v.host)} (not a loopback address) makes an open relay: anyone ` +
        "who reaches the port can reach any address through it; give a --policy, listen on " +
        "127.0.0.1, or add --allow-open-relay",
    );
  }
  if ((v.cert === undefined) !== (v.key === undefined)) {
    throw new CliError("--cert and --key go together");
  }
  if (v["ticket-leeway"] !== undefined && v["ticket-key"] === undefined) {
    throw new CliError("--ticket-leeway needs --ticket-key FILE");
  }
  if (v["watch-policy"] && v.policy === undefined) {
    throw new CliError("--watch-policy needs --policy FILE");
  }
  return {
    kind: "serve",
    flags: {
      host: listenHost(v.host),
      port: number("--port", v.port, { min: 0, max: 65535, integer: true }) ?? 9000,
      policyFile: v.policy,
      noPolicy: v["no-policy"] ?? false,
      watchPolicy: v["watch-policy"] ?? false,
      certFile: v.cert,
      keyFile: v.key,
      maxBandwidthMbps: number("--max-bandwidth-mbps", v["max-bandwidth-mbps"], {
        min: 0,
        max: 1e6,
        integer: false,
      }),
      maxServerBandwidthMbps: number(
        "--max-server-bandwidth-mbps",
        v["max-server-bandwidth-mbps"],
        {
          min: 0,
          max: 1e6,
          integer: false,
        },
      ),
      poolIdleSecs: number("--pool-idle-secs", v["pool-idle-secs"], {
        min: 0,
        max: 86400,
        integer: true,
      }),
      poolPerKey: number("--pool-per-key", v["pool-per-key"], { min: 0, max: 1000, integer: true }),
      maxMessageBytes: number("--max-message-bytes", v["max-message-bytes"], {
        min: 1024,
        max: 64 * 1024 * 1024,
        integer: true,
      }),
      dnsServer: nameServer(v["dns-server"]),
      logLevel: v["log-level"] === undefined ? undefined : level(v["log-level"]),
      logFormat: v["log-format"] === undefined ? "text" : logFormatFlag(v["log-format"]),
      metricsListen: v["metrics-listen"] === undefined
        ? undefined
        : hostPortFlag("--metrics-listen", v["metrics-listen"]),
      caCertFiles: v["ca-cert"] ?? [],
      allowedOrigins: (v["allow-origin"] ?? []).map(origin),
      maxSessions: number("--max-sessions", v["max-sessions"], { min: 1, max: 1e6, integer: true }),
      trustProxy: trustProxy(v["trust-proxy"] ?? []),
      maxSessionsPerIp: number("--max-sessions-per-ip", v["max-sessions-per-ip"], {
        min: 1,
        max: 1e6,
        integer: true,
      }),
      maxNewSessionsPerIpPerMin: number(
        "--max-new-sessions-per-ip-per-min",
        v["max-new-sessions-per-ip-per-min"],
        { min: 1, max: 1e6, integer: true },
      ),
      maxDialsPerIpPerMin: number("--max-dials-per-ip-per-min", v["max-dials-per-ip-per-min"], {
        min: 1,
        max: 1e7,
        integer: true,
      }),
      allowOpenRelay: v["allow-open-relay"] ?? false,
      demo: v.demo ?? (v["no-demo"] ? false : isLoopbackHost(listenHost(v.host))),
      wisp: onOff("--wisp", v.wisp),
      wispPrefix: wispPrefix(v["wisp-prefix"]),
      wispUsersFile: v["wisp-users"],
      wispMotd: v["wisp-motd"],
      ticketKeyFile: v["ticket-key"],
      ticketLeewaySecs: number("--ticket-leeway", v["ticket-leeway"], {
        min: 0,
        max: 86400,
        integer: false,
      }),
    },
  };
}

/** `--trust-proxy` values: each a CIDR or address; commas separate several in one value. */
function trustProxy(raw: string[]): string[] {
  const entries = raw.flatMap((r) => r.split(",")).map((e) => e.trim()).filter((e) => e !== "");
  try {
    parseTrustedProxies(entries);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  return entries;
}

/** `--wisp on|off` (default on). */
function onOff(flag: string, raw: string | undefined): boolean {
  if (raw === undefined || raw === "on") return true;
  if (raw === "off") return false;
  throw new CliError(`invalid value for ${flag}: "${raw}" (expected on or off)`);
}

/** `--wisp-prefix`: a path starting and ending with `/`, not `/` itself (wasmnet keeps `/`). */
function wispPrefix(raw: string | undefined): string {
  if (raw === undefined) return "/wisp/";
  const prefix = raw.endsWith("/") ? raw : `${raw}/`;
  if (!/^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]+\/$/.test(prefix) || prefix.includes("//")) {
    throw new CliError(
      `invalid value for --wisp-prefix: ${JSON.stringify(raw)} ` +
        "(expected a URL path such as /wisp/, not / itself)",
    );
  }
  return prefix;
}

/**
 * Parses a `--wisp-users` file: one `user:password` per line (the first `:` splits; blank lines
 * and lines starting with `#` are skipped; surrounding spaces of a line are trimmed).
 *
 * @throws {CliError} naming the line for a line without `:`, an empty user name, a user name of
 *   more than 255 UTF-8 bytes, a repeated user, or a file with no users.
 */
export function parseWispUsers(file: string, text: string): Map<string, string> {
  const users = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const colon = line.indexOf(":");
    const where = `${file}:${i + 1}`;
    if (colon < 0) throw new CliError(`${where}: expected user:password`);
    const user = line.slice(0, colon);
    if (user === "") throw new CliError(`${where}: empty user name`);
    if (new TextEncoder().encode(user).byteLength > 255) {
      throw new CliError(`${where}: user name longer than 255 bytes`);
    }
    if (users.has(user)) throw new CliError(`${where}: user ${JSON.stringify(user)} repeated`);
    users.set(user, line.slice(colon + 1));
  });
  if (users.size === 0) throw new CliError(`${file}: no users (expected user:password lines)`);
  return users;
}

/**
 * Parses the `ticket` command's flags (after the word `ticket`).
 *
 * @throws {CliError} for an unknown flag, a missing `--key` or `--ttl`, a bad `--ttl`,
 *   `--max-connections` or `--mbps`, or a positional argument.
 */
function parseTicketCommand(args: string[]): Command {
  const parsed = parseFlags(args, false, {
    key: { type: "string" },
    sub: { type: "string" },
    allow: { type: "string", multiple: true },
    ttl: { type: "string" },
    "max-connections": { type: "string" },
    mbps: { type: "string" },
  });
  const v = parsed.values;
  if (v.help) return { kind: "help" };
  if (v.key === undefined) throw new CliError("ticket needs --key FILE");
  if (v.ttl === undefined) throw new CliError("ticket needs --ttl (e.g. 10m)");
  return {
    kind: "ticket",
    flags: {
      keyFile: v.key,
      sub: v.sub,
      allow: v.allow,
      ttlSecs: parseTtl(v.ttl),
      maxConnections: number("--max-connections", v["max-connections"], {
        min: 1,
        max: 1e6,
        integer: true,
      }),
      mbps: number("--mbps", v.mbps, { min: 0.001, max: 1e6, integer: false }),
    },
  };
}

/**
 * Parses the `plugin` command's arguments (after the word `plugin`).
 *
 * @throws {CliError} for an unknown flag, a missing or extra file argument, a bad
 *   `--timeout-ms` or `--max-memory-mib`, `--input` with `--input-file`, or `--policy` with
 *   `--no-policy`.
 */
function parsePluginCommand(args: string[]): Command {
  const parsed = parseFlags(args, true, {
    call: { type: "string" },
    input: { type: "string" },
    "input-file": { type: "string" },
    "timeout-ms": { type: "string" },
    "max-memory-mib": { type: "string" },
    policy: { type: "string" },
    "no-policy": { type: "boolean" },
  });
  const v = parsed.values;
  if (v.help) return { kind: "help" };
  const file = moduleFile("plugin", parsed.positionals);
  if (v.input !== undefined && v["input-file"] !== undefined) {
    throw new CliError("--input and --input-file cannot be used together");
  }
  if (v.policy !== undefined && v["no-policy"]) {
    throw new CliError("--policy and --no-policy cannot be used together");
  }
  return {
    kind: "plugin",
    flags: {
      file,
      call: v.call ?? "run",
      input: v.input,
      inputFile: v["input-file"],
      timeoutMs: number("--timeout-ms", v["timeout-ms"], {
        min: 1,
        max: 86_400_000,
        integer: true,
      }),
      maxMemoryMib: number("--max-memory-mib", v["max-memory-mib"], {
        min: 1,
        max: 4096,
        integer: true,
      }),
      policyFile: v.policy,
      noPolicy: v["no-policy"] === true,
    },
  };
}

/**
 * Parses the `water` command's arguments (after the word `water`).
 *
 * @throws {CliError} for an unknown flag, a missing module file, `--role`, `--listen` or
 *   `--remote`, a bad role or `HOST:PORT`, or `--policy` with `--no-policy`.
 */
function parseWaterCommand(args: string[]): Command {
  const parsed = parseFlags(args, true, {
    role: { type: "string" },
    listen: { type: "string" },
    remote: { type: "string" },
    config: { type: "string" },
    policy: { type: "string" },
    "no-policy": { type: "boolean" },
    "log-level": { type: "string" },
  });
  const v = parsed.values;
  if (v.help) return { kind: "help" };
  const file = moduleFile("water", parsed.positionals);
  const role = v.role;
  if (role === undefined) throw new CliError("water needs --role dialer|listener|relay");
  if (role !== "dialer" && role !== "listener" && role !== "relay") {
    throw new CliError(
      `invalid value for --role: ${JSON.stringify(role)} (expected dialer, listener or relay)`,
    );
  }
  if (v.listen === undefined) throw new CliError("water needs --listen HOST:PORT");
  if (v.remote === undefined) throw new CliError("water needs --remote HOST:PORT");
  const remote = parseHostPort(v.remote);
  if (typeof remote === "string") {
    throw new CliError(
      `invalid value for --remote: ${JSON.stringify(v.remote)} (${remote}, e.g. 203.0.113.7:443)`,
    );
  }
  if (v.policy !== undefined && v["no-policy"]) {
    throw new CliError("--policy and --no-policy cannot be used together");
  }
  let logLevel: LogLevel | undefined;
  if (v["log-level"] !== undefined) {
    try {
      logLevel = parseLogLevel(v["log-level"]);
    } catch (e) {
      throw new CliError(`invalid value for --log-level: ${(e as Error).message}`);
    }
  }
  return {
    kind: "water",
    flags: {
      moduleFile: file,
      role,
      listen: hostPortFlag("--listen", v.listen),
      remote,
      configFile: v.config,
      policyFile: v.policy,
      noPolicy: v["no-policy"] === true,
      logLevel,
    },
  };
}

/**
 * Parses a ticket lifetime: a whole number with a unit `s`, `m` or `h` (`90s`, `10m`, `12h`).
 *
 * @returns the lifetime in seconds (at least 1)
 * @throws {CliError} otherwise, e.g. `invalid value for --ttl: "10" (expected ...)`
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseTtl } from "./args.ts";
 * assert.equal(parseTtl("10m"), 600);
 * ```
 */
export function parseTtl(raw: string): number {
  const m = /^(\d{1,9})([smh])$/.exec(raw.trim());
  const secs = m ? Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2] as "s" | "m" | "h"] : 0;
  if (!(secs >= 1)) {
    throw new CliError(
      `invalid value for --ttl: ${
        JSON.stringify(raw)
      } (expected a whole number of s, m or h, e.g. 90s, 10m, 12h)`,
    );
  }
  return secs;
}

/**
 * Whether `host` (a `--host` value) is a loopback address: `localhost`, an IPv4 address in
 * 127.0.0.0/8 (dotted quad), or `::1` in any IPv6 spelling (brackets allowed).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isLoopbackHost } from "./args.ts";
 * assert.equal(isLoopbackHost("127.0.0.1"), true);
 * assert.equal(isLoopbackHost("[0:0::1]"), true);
 * assert.equal(isLoopbackHost("0.0.0.0"), false);
 * ```
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/\.$/, "");
  if (h === "localhost") return true;
  const v4 = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  if (v4) return v4.slice(1).every((octet) => Number(octet) <= 255);
  const v6 = h.startsWith("[") && h.endsWith("]") ? h.slice(1, -1) : h;
  if (!v6.includes(":")) return false;
  try {
    return new URL(`http://[${v6}]/`).hostname === "[::1]";
  } catch {
    return false;
  }
}

/** `--host`: any IP spelling or host name the policy's {@linkcode parseTarget} accepts, normalised. */
function listenHost(raw: string | undefined): string {
  if (raw === undefined) return "0.0.0.0";
  const target = parseTarget(raw);
  if (target.kind === "invalid") {
    throw new CliError(
      `invalid value for --host: ${JSON.stringify(raw)} ${target.reason} ` +
        "(expected an IP address or host name, e.g. 0.0.0.0, 127.0.0.1, ::1 or localhost)",
    );
  }
  return target.kind === "ip" ? target.ip : target.name;
}

function origin(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CliError(
      `invalid value for --allow-origin: "${raw}" (expected e.g. https://app.example.com)`,
    );
  }
  if (url.origin === "null" || url.pathname !== "/" || url.search || url.hash) {
    throw new CliError(
      `invalid value for --allow-origin: "${raw}" (expected scheme://host[:port] only)`,
    );
  }
  return url.origin;
}

function level(raw: string): LogLevel {
  try {
    return parseLogLevel(raw);
  } catch (e) {
    throw new CliError(`invalid value for --log-level: ${(e as Error).message}`);
  }
}

function logFormatFlag(raw: string): LogFormat {
  try {
    return parseLogFormat(raw);
  } catch (e) {
    throw new CliError(`invalid value for --log-format: ${(e as Error).message}`);
  }
}

/**
 * A `HOST:PORT` flag value (`[v6]:PORT` for IPv6; port 0 picks a free one): the host as
 * `--host` takes it (normalised), the port 0–65535.
 */
function hostPortFlag(flag: string, raw: string): { hostname: string; port: number } {
  const parsed = parseHostPort(raw, 0);
  let hostname: string | undefined;
  if (typeof parsed !== "string") {
    try {
      hostname = listenHost(parsed.host);
    } catch {
      // reported below
    }
  }
  if (typeof parsed === "string" || hostname === undefined) {
    const why = typeof parsed === "string" ? parsed : "not an IP address to listen on";
    throw new CliError(
      `invalid value for ${flag}: ${JSON.stringify(raw)} (${why}, e.g. 127.0.0.1:9100)`,
    );
  }
  return { hostname, port: parsed.port };
}

/**
 * The one positional argument of `plugin` and `water`: the module file.
 *
 * @throws {CliError} when it is missing or followed by another argument.
 */
function moduleFile(command: string, positionals: string[]): string {
  const [file, ...extra] = positionals;
  if (file === undefined) throw new CliError(`${command} needs a module file (FILE.wasm)`);
  if (extra.length > 0) throw new CliError(`unexpected argument ${JSON.stringify(extra[0])}`);
  return file;
}

/** The `parseArgs` configuration {@linkcode parseFlags} uses for `options`. */
type Flags<T extends Record<string, ParseArgsOptionDescriptor>> = {
  args: string[];
  strict: true;
  allowPositionals: boolean;
  options: T & { help: { type: "boolean"; short: "h" } };
};

/**
 * `parseArgs` (strict) over `options` plus `-h/--help`, with positionals when `positionals`;
 * a parse error (unknown flag, missing value) becomes a {@linkcode CliError} worded by
 * `describeParseError`.
 *
 * @throws {CliError} for any parse error.
 */
function parseFlags<const T extends Record<string, ParseArgsOptionDescriptor>>(
  args: string[],
  positionals: boolean,
  options: T,
): ReturnType<typeof parseArgs<Flags<T>>> {
  try {
    return parseArgs({
      args,
      strict: true,
      allowPositionals: positionals,
      options: { ...options, help: { type: "boolean", short: "h" } as const },
    });
  } catch (e) {
    throw new CliError(describeParseError(e));
  }
}

function describeParseError(e: unknown): string {
  const err = e as { code?: string; message?: string };
  const flag = /'([^']+)'/.exec(err.message ?? "")?.[1];
  switch (err.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown flag ${flag ?? ""}`.trim();
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE": {
      const name = flag?.replace(/ <value>$/, "").replace(", ", "/");
      return /argument missing/.test(err.message ?? "")
        ? `missing value for ${name}`
        : `flag ${name} does not take a value`;
    }
    default:
      return err.message ?? String(e);
  }
}
