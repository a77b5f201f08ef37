/**
 * The W.A.T.E.R. host's roles over real sockets: a TCP listener on `listen` whose every
 * accepted connection gets its own WATM v1 module instance ({@linkcode WatmInstance}):
 *
 * - **dialer**: the accepted connection is the app's plaintext (the module's internal fd); the
 *   module dials through `water_dial_fixed` (the host dials `remote`) or `water_dial`.
 * - **listener**: the accepted connection carries the transformed bytes and reaches the module
 *   through `water_accept`; its internal fd is the host's own plaintext connection to `remote`.
 * - **relay**: the accepted connection reaches the module through `water_accept`; the module
 *   dials onward through `water_dial_fixed` (`remote`) or `water_dial`.
 *
 * Every outbound dial (the remote, and any address a module passes to `water_dial`) goes
 * through the policy as a session's do: the target is checked, a name is resolved once, every
 * address is checked, and only a checked address is dialled (`session/resolve.ts`
 * `resolveChecked`), bounded by `connection_timeout_secs`. Each instance may have at most the
 * policy's `max_connections` outbound connections; the host runs at most `maxInstances`
 * instances at once (more connections are closed at once, logged).
 *
 * @module
 */
import { getLogger } from "../../log/mod.ts";
import { parseTarget, type Policy } from "../../policy/mod.ts";
import { formatHostPort, type HostPort, parseHostPort } from "../../protocol/host_port.ts";
import { resolveChecked, withTimeout } from "../../session/resolve.ts";
import type {
  AcceptedConn,
  NetAddr,
  StreamConn,
  StreamListener,
  Transport,
} from "../../transport/types.ts";
import { type Role, WasiErrno } from "./_shared.ts";
import {
  describeEnd,
  type DialRequest,
  HostCallError,
  type InstanceLimits,
  WatmInstance,
} from "./instance.ts";
import { compileWatm, inspectWatm, type WatmInfo } from "./watm.ts";

const log = getLogger("water");

/** The worker script of the Deno host. */
export const DEFAULT_WORKER_URL: URL = new URL("./_worker.ts", import.meta.url);

/** Default {@linkcode WaterHostOptions.maxInstances}. */
export const DEFAULT_MAX_INSTANCES = 256;

/** Options of {@linkcode startWaterHost}. */
export interface WaterHostOptions {
  /** The module: its bytes, or a compiled module. */
  module: Uint8Array<ArrayBuffer> | WebAssembly.Module;
  /** The role of every instance. */
  role: Role;
  /** Where to accept connections (port 0 picks a free one). */
  listen: HostPort;
  /** The fixed remote: what `water_dial_fixed` dials, and a listener's plaintext destination. */
  remote: HostPort;
  /** Contents of `/conf/watm.cfg` (absent: no `/conf` directory). */
  config?: Uint8Array | undefined;
  /** The policy for every outbound dial; a function is read at every dial. */
  policy: Policy | (() => Policy);
  /** The network. */
  transport: Transport;
  /** Instances at once (default {@linkcode DEFAULT_MAX_INSTANCES}). */
  maxInstances?: number | undefined;
  /** Per-instance bounds. */
  limits?: Partial<InstanceLimits> | undefined;
  /** The worker script (default {@linkcode DEFAULT_WORKER_URL}). */
  workerUrl?: string | URL | undefined;
  /** Stops the host when aborted. */
  signal?: AbortSignal | undefined;
}

/** Why the host cannot start: a one-line message (bad `remote`, a denied `remote`, listen). */
export class WaterHostError extends Error {
  /** For a denied remote: the policy rule that denied it. */
  readonly rule: string | undefined;

  /** @param message one line, e.g. `--remote 127.0.0.1:80 is denied: ...` */
  constructor(message: string, rule?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WaterHostError";
    this.rule = rule;
  }
}

/** Counters of a running host. */
export interface WaterHostStats {
  /** Connections accepted. */
  accepted: number;
  /** Instances running now. */
  active: number;
  /** Instances that ended with an error (trap, failed step, timeout). */
  failed: number;
  /** Outbound dials the policy denied. */
  denied: number;
}

export type { HostPort };

/** A running host. */
export interface WaterHost extends AsyncDisposable {
  /** The address it accepts on. */
  readonly addr: NetAddr;
  /** What the module is. */
  readonly info: WatmInfo;
  /** Counters. */
  readonly stats: Readonly<WaterHostStats>;
  /** Resolves once the host has stopped and every instance has ended. */
  readonly finished: Promise<void>;
  /** Stops accepting, stops every instance; resolves when all have ended. */
  close(): Promise<void>;
}

/** The policy in force. */
function policyOf(p: Policy | (() => Policy)): Policy {
  return typeof p === "function" ? p() : p;
}

/**
 * Checks `host:port` against the policy (resolve once, check every address) and dials the
 * first checked address that answers, within the policy's dial timeout.
 *
 * @throws {HostCallError} `ACCES` when denied (logged with the rule), `CONNREFUSED`, `TIMEDOUT`
 *   or `NOTCONN` when the dial fails.
 */
async function dialChecked(
  target: HostPort,
  policy: Policy,
  transport: Transport,
  signal: AbortSignal,
  onDenied: (dest: string, reason: string, rule: string | undefined) => void,
): Promise<StreamConn> {
  const dest = formatHostPort(target.host, target.port);
  const parsed = parseTarget(target.host);
  if (parsed.kind === "invalid") {
    throw new HostCallError(WasiErrno.INVAL, `invalid address ${dest}: ${parsed.reason}`);
  }
  return await withTimeout(signal, policy.connectionTimeoutMs, async (sig, timedOut) => {
    const outcome = await resolveChecked(parsed, target.port, policy, transport, sig);
    if (!outcome.ok) {
      if (outcome.refusal.ev === "denied") {
        onDenied(dest, outcome.refusal.msg, outcome.refusal.rule);
        throw new HostCallError(WasiErrno.ACCES, outcome.refusal.msg);
      }
      throw new HostCallError(WasiErrno.NOTCONN, outcome.refusal.msg);
    }
    let last: unknown;
    for (const ip of outcome.ips) {
      try {
        return await transport.connectTcp(ip, target.port, sig);
      } catch (e) {
        last = e;
        if (sig.aborted) break;
      }
    }
    if (timedOut()) throw new HostCallError(WasiErrno.TIMEDOUT, `dial ${dest} timed out`);
    const name = (last as Error | undefined)?.name;
    throw new HostCallError(
      name === "ConnectionRefused" ? WasiErrno.CONNREFUSED : WasiErrno.NOTCONN,
      `dial ${dest} failed: ${(last as Error | undefined)?.message ?? "no address"}`,
    );
  });
}

/**
 * Starts a W.A.T.E.R. host: checks the module (WATM v1 exports for the role) and the remote
 * against the policy, listens, and serves each accepted connection with a new module instance.
 *
 * @throws {WatmError} for a module that is not WATM v1 or lacks the role's exports.
 * @throws {WaterHostError} for a remote that is malformed or denied by the policy (with the
 *   rule), or when listening fails.
 */
export async function startWaterHost(options: WaterHostOptions): Promise<WaterHost> {
  const { module, info } = options.module instanceof WebAssembly.Module
    ? { module: options.module, info: inspectWatm(options.module, options.role) }
    : await compileWatm(options.module, options.role);
  const remote = options.remote;
  const remoteText = formatHostPort(remote.host, remote.port);
  const target = parseTarget(remote.host);
  if (target.kind === "invalid") {
    throw new WaterHostError(`invalid remote ${remoteText}: ${target.reason}`);
  }
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const verdict = await resolveChecked(
    target,
    remote.port,
    policyOf(options.policy),
    options.transport,
    signal,
  );
  if (!verdict.ok && verdict.refusal.ev === "denied") {
    throw new WaterHostError(
      `remote refused by the policy: ${verdict.refusal.msg}`,
      verdict.refusal.rule,
    );
  }
  let listener: StreamListener;
  try {
    listener = await options.transport.listenTcp(options.listen.host, options.listen.port);
  } catch (e) {
    throw new WaterHostError(
      `cannot listen on ${formatHostPort(options.listen.host, options.listen.port)}: ${
        (e as Error).message
      }`,
      undefined,
      { cause: e },
    );
  }
  const stats: WaterHostStats = { accepted: 0, active: 0, failed: 0, denied: 0 };
  const instances = new Set<WatmInstance>();
  const tasks = new Set<Promise<void>>();
  const maxInstances = options.maxInstances ?? DEFAULT_MAX_INSTANCES;
  const workerUrl = options.workerUrl ?? DEFAULT_WORKER_URL;
  const role = options.role;

  const onDenied = (dest: string, reason: string, rule: string | undefined): void => {
    stats.denied++;
    log.warn("dial denied", { role, dest, rule, reason });
  };

  const serve = async (conn: AcceptedConn): Promise<void> => {
    const peer = formatHostPort(conn.remoteAddr.hostname, conn.remoteAddr.port);
    const policy = policyOf(options.policy);
    let dials = 0;
    const dial = async (request: DialRequest): Promise<StreamConn> => {
      let to: HostPort = remote;
      if (request.op === "dial") {
        if (!/^tcp[46]?$/.test(request.network)) {
          throw new HostCallError(WasiErrno.INVAL, `unsupported network ${request.network}`);
        }
        const hp = parseHostPort(request.address);
        if (typeof hp === "string") {
          log.warn("water_dial: invalid address", { peer, address: request.address, reason: hp });
          throw new HostCallError(WasiErrno.INVAL, `invalid address ${request.address}: ${hp}`);
        }
        to = hp;
      }
      if (++dials > policy.maxConnections) {
        log.warn("dial refused: max_connections reached", { peer, limit: policy.maxConnections });
        throw new HostCallError(WasiErrno.MFILE, "max_connections reached");
      }
      try {
        const c = await dialChecked(
          to,
          policyOf(options.policy),
          options.transport,
          signal,
          onDenied,
        );
        log.debug("dialed", { peer, dest: formatHostPort(to.host, to.port) });
        return c;
      } catch (e) {
        if (e instanceof HostCallError && e.errno !== WasiErrno.ACCES) {
          log.warn("dial failed", {
            peer,
            dest: formatHostPort(to.host, to.port),
            error: e.message,
          });
        }
        throw e;
      }
    };
    let internal: StreamConn | undefined;
    let accept: (() => Promise<StreamConn>) | undefined;
    if (role === "dialer") internal = conn;
    else {
      accept = () => Promise.resolve(conn);
      if (role === "listener") {
        try {
          internal = await dial({ op: "dial_fixed" });
        } catch {
          conn.close();
          return;
        }
      }
    }
    let instance: WatmInstance;
    try {
      instance = new WatmInstance({
        module,
        role,
        config: options.config,
        internal,
        dial: role === "listener" ? undefined : dial,
        accept,
        workerUrl,
        limits: options.limits,
        onOutput: (stream, line) => log.debug("module output", { peer, stream, line }),
      });
    } catch (e) {
      log.error("cannot start a module instance", { peer, error: (e as Error).message });
      conn.close();
      internal?.close();
      return;
    }
    instances.add(instance);
    stats.active++;
    const end = await instance.ended;
    stats.active--;
    instances.delete(instance);
    if (end.ok) log.debug("connection done", { peer, end: describeEnd(end) });
    else {
      stats.failed++;
      log.error("module instance failed", { peer, error: end.error });
    }
  };

  const track = (p: Promise<void>): void => {
    tasks.add(p);
    void p.finally(() => tasks.delete(p));
  };

  const acceptLoop = async (): Promise<void> => {
    for (;;) {
      let conn: AcceptedConn;
      try {
        conn = await listener.accept();
      } catch {
        return;
      }
      stats.accepted++;
      if (stats.active >= maxInstances) {
        log.warn("connection refused: too many instances", { limit: maxInstances });
        conn.close();
        continue;
      }
      track(serve(conn));
    }
  };

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      stop.abort(new Error("host stopped"));
      try {
        listener.close();
      } catch {
        // already closed
      }
      await accepting;
      for (const i of instances) void i.stop();
      while (tasks.size > 0) await Promise.all([...tasks]);
    })();
    return closing;
  };
  const accepting = acceptLoop();
  options.signal?.addEventListener("abort", () => void close(), { once: true });
  const finished = accepting.then(() => close());
  return {
    addr: listener.addr,
    info,
    stats,
    finished,
    close,
    [Symbol.asyncDispose]: close,
  };
}
