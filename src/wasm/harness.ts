/**
 * The harness host on the server: WebAssembly plugins (Extism memory ABI) that import the
 * harness `tcp_*`, `udp_*` and `icmp_*` functions (JonCooperWorks/harness `plugin/wasm.go`) get
 * real sockets through wasmnet's transport, under its policy, exactly as wasmnet sessions do:
 * resolve once, check every address, dial the checked one (`session/resolve.ts`
 * `resolveChecked`); UDP destinations are checked at `udp_connect` and again on every send; ICMP
 * targets are checked like `resolve` names and answers (port-agnostic). A denial returns 0 and is
 * logged with the rule. `max_connections` and the bandwidth cap apply per plugin instance.
 *
 * Plugins run in a worker (Extism `runInWorker`), so the host can stop one that loops forever;
 * the host functions themselves run on this thread (the worker waits on them), so they share the
 * process's transport, policy and logger.
 *
 * @example
 * ```ts ignore
 * import { loadHarnessPlugin } from "./harness.ts";
 * import { Policy } from "../policy/mod.ts";
 * import { denoTransport } from "../transport/deno/mod.ts";
 * const wasm = await Deno.readFile("plugin.wasm");
 * await using plugin = await loadHarnessPlugin(wasm, {
 *   transport: denoTransport(),
 *   policy: Policy.defaults(),
 *   timeoutMs: 10_000,
 * });
 * const output = await plugin.call("run", "example.com:80");
 * ```
 *
 * @module
 */
import { getLogger, type Logger } from "../log/mod.ts";
import { canonicalIp, parseTarget, type Policy, type Target } from "../policy/mod.ts";
import { RateLimiter, TokenBucket } from "../limit/mod.ts";
import type { DatagramConn, IcmpSocket, NetAddr, StreamConn, Transport } from "../transport/mod.ts";
import { resolveChecked, withTimeout } from "../session/resolve.ts";
import { resolvePingTarget } from "../session/ping.ts";
import {
  type HarnessIcmpReply,
  type HarnessLog,
  type HarnessNet,
  type HarnessSocket,
  type HostPort,
  MAX_RECV_BYTES,
  sendWithin,
  TIMED_OUT,
  waitAtMost,
} from "./_abi.ts";
import { HarnessPlugin, type PluginLimits } from "./_plugin.ts";

/** Options of {@linkcode loadHarnessPlugin} and {@linkcode createHarnessNet}. */
export interface HarnessHostOptions extends PluginLimits {
  /** The transport that dials (the server's). */
  readonly transport: Transport;
  /**
   * The policy, or a function read at every check (hot reload): every connect, every datagram
   * destination and every ICMP target goes through it.
   */
  readonly policy: Policy | (() => Policy);
  /** Where host lines go (default the `wasm` logger). */
  readonly logger?: Logger | undefined;
  /** A name for log lines (e.g. the file name). */
  readonly name?: string | undefined;
}

/**
 * Loads `wasm` as a harness plugin whose sockets go through `options.transport` under
 * `options.policy`. The plugin runs in a worker; close it (or `await using`) to stop it.
 *
 * @throws {PluginError} `invalid` when `wasm` is not WebAssembly or does not instantiate.
 */
export function loadHarnessPlugin(
  wasm: Uint8Array,
  options: HarnessHostOptions,
): Promise<HarnessPlugin> {
  const logger = options.logger ?? getLogger("wasm");
  return HarnessPlugin.load(wasm, {
    net: createHarnessNet({ ...options, logger }),
    log: logTo(logger, options.name),
    runInWorker: true,
    timeoutMs: options.timeoutMs,
    maxMemoryMib: options.maxMemoryMib,
    recvWaitMs: options.recvWaitMs,
  });
}

function logTo(logger: Logger, name: string | undefined): HarnessLog {
  return (level, msg, fields) =>
    logger[level](msg, name === undefined ? fields : { plugin: name, ...fields });
}

/**
 * The networking of one plugin instance over the server's transport and policy (what
 * {@linkcode loadHarnessPlugin} uses; exported for hosts that build their own plugin wrapper).
 */
export function createHarnessNet(options: HarnessHostOptions): HarnessNet {
  return new ServerNet(options);
}

class ServerNet implements HarnessNet {
  readonly #transport: Transport;
  readonly #policy: () => Policy;
  readonly #log: HarnessLog;
  readonly #up: RateLimiter;
  readonly #down: RateLimiter;
  readonly #icmp = new Map<4 | 6, Promise<IcmpSocket>>();
  #icmpFamily: 4 | 6 | undefined;
  #closed = false;

  constructor(options: HarnessHostOptions) {
    this.#transport = options.transport;
    const policy = options.policy;
    this.#policy = typeof policy === "function" ? policy : () => policy;
    this.#log = logTo(options.logger ?? getLogger("wasm"), options.name);
    const mbps = this.#policy().maxBandwidthMbps;
    // 0 or undefined: unlimited.
    this.#up = new RateLimiter(mbps ? [TokenBucket.fromMbps(mbps)] : []);
    this.#down = new RateLimiter(mbps ? [TokenBucket.fromMbps(mbps)] : []);
  }

  get maxConnections(): number {
    return this.#policy().maxConnections;
  }

  /** Resolves `dest` once and checks every address; undefined (logged) when refused. */
  async #checked(fn: string, dest: HostPort, signal: AbortSignal): Promise<Checked | undefined> {
    const text = `${dest.host}:${dest.port}`;
    const target = parseTarget(dest.host);
    if (target.kind === "invalid") {
      this.#log("warn", "invalid address", { fn, dest: text, reason: target.reason });
      return undefined;
    }
    const policy = this.#policy();
    const outcome = await withTimeout(
      signal,
      policy.connectionTimeoutMs,
      (s) => resolveChecked(target, dest.port, policy, this.#transport, s),
    ).catch((e) => {
      if (signal.aborted) throw e;
      return { ok: false as const, refusal: { ev: "error" as const, msg: "DNS lookup timed out" } };
    });
    if (!outcome.ok) {
      const { refusal } = outcome;
      if (refusal.ev === "denied") {
        this.#log("info", "socket denied", {
          fn,
          dest: text,
          rule: refusal.rule,
          reason: refusal.msg,
        });
      } else {
        this.#log("warn", "socket failed", { fn, dest: text, reason: refusal.msg });
      }
      return undefined;
    }
    return { target, ips: outcome.ips, port: dest.port, text };
  }

  async connectTcp(dest: HostPort, signal: AbortSignal): Promise<HarnessSocket | undefined> {
    const checked = await this.#checked("tcp_connect", dest, signal);
    if (checked === undefined) return undefined;
    let last = "";
    for (const ip of checked.ips) {
      try {
        const conn = await withTimeout(
          signal,
          this.#policy().connectionTimeoutMs,
          (s, timedOut) =>
            this.#transport.connectTcp(ip, checked.port, s).catch((e) => {
              throw timedOut() ? new Error("connection timed out") : e;
            }),
        );
        return new TcpSocket(conn, this.#up, this.#down, this.#log);
      } catch (e) {
        if (signal.aborted) throw signal.reason;
        last = (e as Error).message;
      }
    }
    this.#log("warn", "socket failed", { fn: "tcp_connect", dest: checked.text, reason: last });
    return undefined;
  }

  async connectUdp(dest: HostPort, signal: AbortSignal): Promise<HarnessSocket | undefined> {
    const checked = await this.#checked("udp_connect", dest, signal);
    if (checked === undefined) return undefined;
    const ip = checked.ips[0] as string;
    try {
      const conn = await this.#transport.openUdp(ip.includes(":") ? 6 : 4);
      return new UdpSocket(conn, checked, ip, this.#policy, this.#up, this.#down, this.#log);
    } catch (e) {
      this.#log("warn", "socket failed", {
        fn: "udp_connect",
        dest: checked.text,
        reason: (e as Error).message,
      });
      return undefined;
    }
  }

  async icmpSend(
    text: string,
    seq: number,
    data: Uint8Array,
    signal: AbortSignal,
  ): Promise<boolean> {
    const fn = "icmp_send";
    const target = parseTarget(text);
    if (target.kind === "invalid") {
      this.#log("warn", "invalid address", { fn, dest: text, reason: target.reason });
      return false;
    }
    // The same check as the `ping` op: the target as `addr:7` (the echo service, RFC 862),
    // resolved once, every address checked, the checked one pinged.
    const policy = this.#policy();
    let outcome;
    try {
      outcome = await withTimeout(
        signal,
        policy.connectionTimeoutMs,
        (s) => resolvePingTarget(target, policy, this.#transport, s),
      );
    } catch (e) {
      if (signal.aborted) throw signal.reason;
      this.#log("warn", "icmp failed", { fn, dest: text, reason: (e as Error).message });
      return false;
    }
    if (!outcome.ok) {
      const { refusal } = outcome;
      this.#log(refusal.ev === "denied" ? "info" : "warn", `icmp ${refusal.ev}`, {
        fn,
        dest: text,
        ...(refusal.rule !== undefined ? { rule: refusal.rule } : {}),
        reason: refusal.msg,
      });
      return false;
    }
    const ip = outcome.ips[0];
    if (ip === undefined) return false;
    const family = ip.includes(":") ? 6 : 4;
    const socket = await this.#icmpSocket(family);
    if (socket === undefined) return false;
    try {
      await this.#up.take(data.length, signal);
      await socket.send(ip, seq, data);
      this.#icmpFamily = family;
      this.#log("debug", "icmp sent", { fn, dest: text, ip, seq, mechanism: socket.mechanism });
      return true;
    } catch (e) {
      if (signal.aborted) throw signal.reason;
      this.#log("warn", "icmp failed", { fn, dest: text, reason: (e as Error).message });
      return false;
    }
  }

  async #icmpSocket(family: 4 | 6): Promise<IcmpSocket | undefined> {
    const open = this.#transport.openIcmp;
    if (open === undefined) {
      this.#log("warn", "icmp failed", {
        fn: "icmp_send",
        reason: "ICMP unavailable: not offered by the transport",
      });
      return undefined;
    }
    let pending = this.#icmp.get(family);
    if (pending === undefined) {
      pending = open.call(this.#transport, family);
      this.#icmp.set(family, pending);
    }
    try {
      const socket = await pending;
      if (this.#closed) socket.close();
      return socket;
    } catch (e) {
      this.#icmp.delete(family);
      this.#log("warn", "icmp failed", { fn: "icmp_send", reason: (e as Error).message });
      return undefined;
    }
  }

  async icmpReceive(timeoutMs: number, signal: AbortSignal): Promise<HarnessIcmpReply | undefined> {
    const family = this.#icmpFamily;
    const pending = family === undefined ? undefined : this.#icmp.get(family);
    if (pending === undefined) {
      this.#log("debug", "icmp_recv before any icmp_send", { fn: "icmp_recv" });
      return undefined;
    }
    try {
      const socket = await pending;
      const reply = await socket.receive(timeoutMs, signal);
      signal.throwIfAborted();
      if (reply === undefined) return undefined;
      await this.#down.take(reply.data.length, signal);
      return reply;
    } catch (e) {
      if (signal.aborted) throw signal.reason;
      this.#log("warn", "icmp failed", { fn: "icmp_recv", reason: (e as Error).message });
      return undefined;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const pending of this.#icmp.values()) {
      pending.then((s) => s.close(), () => undefined);
    }
    this.#icmp.clear();
  }
}

interface Checked {
  readonly target: Target;
  readonly ips: string[];
  readonly port: number;
  readonly text: string;
}

type Read = { ok: true; bytes: Uint8Array | null } | { ok: false; error: unknown };

/** A TCP connection: reads survive a recv's timeout and are kept for the next recv. */
class TcpSocket implements HarnessSocket {
  readonly #conn: StreamConn;
  readonly #up: RateLimiter;
  readonly #down: RateLimiter;
  readonly #log: HarnessLog;
  #pending: Promise<Read> | undefined;
  #rest: Uint8Array | undefined;
  #ended = false;
  #closed = false;

  constructor(conn: StreamConn, up: RateLimiter, down: RateLimiter, log: HarnessLog) {
    this.#conn = conn;
    this.#up = up;
    this.#down = down;
    this.#log = log;
  }

  send(data: Uint8Array, signal: AbortSignal): Promise<number> {
    if (this.#closed || this.#ended && data.length === 0) return Promise.resolve(0);
    const write = (async (): Promise<number> => {
      const piece = Math.min(this.#up.pieceBytes, MAX_RECV_BYTES);
      let sent = 0;
      while (sent < data.length) {
        const end = Math.min(data.length, sent + piece);
        await this.#up.take(end - sent, signal);
        while (sent < end) sent += await this.#conn.write(data.subarray(sent, end));
      }
      return sent;
    })();
    return sendWithin(write, data.length, "tcp_send", this.#log, signal);
  }

  async receive(
    maxLen: number,
    waitMs: number,
    signal: AbortSignal,
  ): Promise<Uint8Array | undefined> {
    if (this.#rest === undefined) {
      if (this.#ended || this.#closed) return undefined;
      this.#pending ??= this.#read();
      const read = await waitAtMost(this.#pending, waitMs, signal);
      if (read === TIMED_OUT) return undefined;
      this.#pending = undefined;
      if (!read.ok) {
        this.#ended = true;
        if (!this.#closed) {
          this.#log("warn", "receive failed", {
            fn: "tcp_recv",
            reason: (read.error as Error).message,
          });
        }
        return undefined;
      }
      if (read.bytes === null) {
        this.#ended = true;
        return undefined;
      }
      await this.#down.take(read.bytes.length, signal);
      this.#rest = read.bytes;
    }
    const out = this.#rest.subarray(0, maxLen);
    this.#rest = this.#rest.length > maxLen ? this.#rest.subarray(maxLen) : undefined;
    return out;
  }

  #read(): Promise<Read> {
    const buffer = new Uint8Array(MAX_RECV_BYTES);
    return this.#conn.read(buffer).then(
      (n): Read => ({ ok: true, bytes: n === null ? null : buffer.subarray(0, n) }),
      (error): Read => ({ ok: false, error }),
    );
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

type Received = { ok: true; datagram: [Uint8Array, NetAddr] } | { ok: false; error: unknown };

/** A UDP socket "connected" to one checked destination: sends re-checked, replies filtered. */
class UdpSocket implements HarnessSocket {
  readonly #conn: DatagramConn;
  readonly #dest: Checked;
  readonly #ip: string;
  readonly #policy: () => Policy;
  readonly #up: RateLimiter;
  readonly #down: RateLimiter;
  readonly #log: HarnessLog;
  #pending: Promise<Received> | undefined;
  #closed = false;

  constructor(
    conn: DatagramConn,
    dest: Checked,
    ip: string,
    policy: () => Policy,
    up: RateLimiter,
    down: RateLimiter,
    log: HarnessLog,
  ) {
    this.#conn = conn;
    this.#dest = dest;
    this.#ip = ip;
    this.#policy = policy;
    this.#up = up;
    this.#down = down;
    this.#log = log;
  }

  async send(data: Uint8Array, signal: AbortSignal): Promise<number> {
    if (this.#closed) return 0;
    // Checked again on every send (the policy may have been reloaded since udp_connect).
    const policy = this.#policy();
    const { target, port } = this.#dest;
    let verdict = policy.checkTarget(target, port);
    if (verdict.allowed && target.kind === "name") {
      verdict = policy.checkResolved(target.name, this.#ip, port);
    }
    if (!verdict.allowed) {
      this.#log("info", "datagram denied", {
        fn: "udp_send",
        dest: this.#dest.text,
        rule: verdict.rule,
        reason: verdict.reason,
      });
      return 0;
    }
    await this.#up.take(data.length, signal); // rejects only when `signal` aborts
    const sent = this.#conn.send(data, { transport: "udp", hostname: this.#ip, port });
    return sendWithin(sent, data.length, "udp_send", this.#log, signal);
  }

  async receive(
    maxLen: number,
    waitMs: number,
    signal: AbortSignal,
  ): Promise<Uint8Array | undefined> {
    const deadline = Date.now() + waitMs;
    while (!this.#closed) {
      this.#pending ??= this.#conn.receive().then(
        (datagram): Received => ({ ok: true, datagram }),
        (error): Received => ({ ok: false, error }),
      );
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      const got = await waitAtMost(this.#pending, left, signal);
      if (got === TIMED_OUT) return undefined;
      this.#pending = undefined;
      if (!got.ok) {
        if (!this.#closed) {
          this.#log("warn", "receive failed", {
            fn: "udp_recv",
            reason: (got.error as Error).message,
          });
        }
        return undefined;
      }
      const [bytes, from] = got.datagram;
      // A connected socket only hears its peer (as Go's DialUDP socket does).
      if (canonicalIp(from.hostname) !== this.#ip || from.port !== this.#dest.port) continue;
      await this.#down.take(bytes.length, signal);
      return bytes.subarray(0, maxLen);
    }
    return undefined;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}
