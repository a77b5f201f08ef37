/**
 * Starts a real wasmnet server on loopback port 0 for a test: in the test's own process, or — when
 * `WASMNET_TEST_SERVER` chooses a child (`deno`, `bun`, `binary`; see `target.ts`) — as that
 * command, with the test's options turned into the command line users run (`--policy FILE`,
 * `--max-message-bytes`, `--dns-server`, `--ca-cert FILE`, ...).
 *
 * @module
 */
import { join } from "node:path";
import { type StartOptions, startServer, type WasmnetServer } from "../../mod.ts";
import { Policy } from "../../src/policy/mod.ts";
import { setLogLevel } from "../../src/log/mod.ts";
import type { Transport, TransportOptions } from "../../src/transport/mod.ts";
import { denoTransport } from "../../src/transport/deno/mod.ts";
import { formatHostPort } from "../../src/protocol/mod.ts";
import { ServerProcess } from "./server_process.ts";
import { childTarget, inProcess } from "./target.ts";
import { delay } from "./wait.ts";

export { inProcess, inProcessOnly } from "./target.ts";

setLogLevel((Deno.env.get("WASMNET_LOG") as "debug" | undefined) ?? "warn");

/** A policy for tests that need loopback peers: no deny rules, allow everything, no bandwidth cap. */
export function loopbackPolicy(extra: Record<string, unknown> = {}): Policy {
  return Policy.fromConfig({ deny: [], allow: ["*"], maxBandwidthMbps: 0, ...extra }, "<test>");
}

/** The options each {@linkcode testTransport} was made with (for a child's command line). */
const transportOptions = new WeakMap<Transport, TransportOptions>();

/**
 * The in-process Deno transport with `options` (`denoTransport(options)`), remembered so that a
 * child server gets the same settings as flags: `nameServer` → `--dns-server`, `caCerts` →
 * `--ca-cert FILE`. Other options (`maxDials`, `maxLookups`) have no flag: a test that needs them
 * is {@linkcode inProcessOnly}.
 *
 * @throws {Error} as `denoTransport` does, for CA certificates it cannot parse.
 */
export function testTransport(options: TransportOptions = {}): Transport {
  const transport = denoTransport(options);
  transportOptions.set(transport, options);
  return transport;
}

/**
 * Starts a server on 127.0.0.1:0 (loopback-allowing policy unless one is given). In child mode the
 * options become command-line flags.
 *
 * @throws {Error} in child mode, for an option with no command-line form (a transport not made by
 *   {@linkcode testTransport}, an adapter, `idleTimeoutSecs`, limits other than
 *   `maxMessageBytes`, ...): the test should be {@linkcode inProcessOnly}.
 */
export function startTestServer(options: StartOptions = {}): Promise<WasmnetServer> {
  const all = { hostname: "127.0.0.1", port: 0, policy: loopbackPolicy(), ...options };
  return inProcess() ? startServer(all) : startChild(all);
}

/**
 * Live sessions of `server`: `server.sessions` in process, `/healthz`'s `sessions` for a child
 * (which has no synchronous count).
 */
export async function sessionsOf(server: WasmnetServer): Promise<number> {
  if (!(server instanceof ChildServer)) return server.sessions;
  // A client that keeps no idle connection: a pooled one would hold a socket (an fd) in the
  // server for its keep-alive time, visible to tests that count the server's fds.
  using client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  const res = await fetch(`http://127.0.0.1:${server.addr.port}/healthz`, { client });
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`/healthz answered ${res.status}`);
  }
  return ((await res.json()) as { sessions: number }).sessions;
}

/**
 * Waits until `server` has `n` live sessions ({@linkcode sessionsOf}); fails after `timeoutMs`
 * (a hang guard, not a timing assertion).
 */
export async function sessionsReach(
  server: WasmnetServer,
  n: number,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = await sessionsOf(server);
  while (last !== n) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting until ${what} (sessions: ${last}, expected ${n})`);
    }
    await delay(inProcess() ? 5 : 20);
    last = await sessionsOf(server);
  }
}

/**
 * Makes `policy` the policy in force: in process, sets `server.policy`; for a child, rewrites its
 * `--policy` file, sends SIGHUP and waits until it logs `policy reloaded` once more than before.
 *
 * @throws {Error} for a child started without a policy file (the default or `--no-policy`), or
 *   when it does not log the reload within 10 s.
 */
export async function reloadPolicy(server: WasmnetServer, policy: Policy): Promise<void> {
  if (!(server instanceof ChildServer)) {
    server.policy = policy;
    return;
  }
  const file = server.policyFile;
  if (file === undefined) throw new Error("reloadPolicy: the child has no --policy file");
  const count = (): number => server.output.split("policy reloaded").length - 1;
  const before = count();
  await Deno.writeTextFile(file, policy.toToml());
  server.kill("SIGHUP");
  const end = Date.now() + 10_000;
  while (count() === before) {
    if (Date.now() > end) throw new Error(`no "policy reloaded" in:\n${server.output}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The process id of `server`: this process in process, the child's otherwise (for `/proc/PID`). */
export function serverPid(server: WasmnetServer): number {
  return server instanceof ChildServer ? server.pid : Deno.pid;
}

/** Why an option cannot reach a child server. */
function noFlag(what: string): Error {
  return new Error(
    `startTestServer: ${what} has no command-line form, so it cannot reach a ` +
      `${childTarget()} child server; mark the test inProcessOnly("...")`,
  );
}

/** Keys of `StartOptions` that {@linkcode commandLine} turns into flags. */
const FLAGGED = new Set([
  "hostname",
  "port",
  "policy",
  "transport",
  "limits",
  "maxBandwidthMbps",
  "maxServerBandwidthMbps",
  "maxSessions",
  "allowedOrigins",
  "demo",
  "pool",
  "signal",
  "wisp",
  "tickets",
  "tls",
  "trustProxy",
  "ipLimits",
]);

/** The CLI flags for `options`, writing the policy and CA certificates into `dir`. */
async function commandLine(options: StartOptions, dir: string): Promise<string[]> {
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined && !FLAGGED.has(key)) throw noFlag(`option ${key}`);
  }
  if (options.hostname !== "127.0.0.1" || options.port !== 0) {
    throw noFlag(`listening on ${options.hostname}:${options.port}`);
  }
  const args: string[] = [];
  const policy = options.policy ?? Policy.defaults();
  if (policy.checkBind("0.0.0.0", 1).rule === "allow-all") args.push("--no-policy");
  else if (!sameConfig(policy, Policy.defaults())) {
    const file = join(dir, "policy.toml");
    await Deno.writeTextFile(file, policy.toToml());
    args.push("--policy", file);
  } // the defaults: the built-in policy, no flag
  if (options.transport !== undefined) {
    const t = transportOptions.get(options.transport);
    if (t === undefined) throw noFlag("a transport not made by testTransport()");
    const { nameServer, caCerts, ...rest } = t;
    const extra = Object.entries(rest).filter(([, v]) => v !== undefined).map(([k]) => k);
    if (extra.length > 0) throw noFlag(`transport option ${extra.join(", ")}`);
    if (nameServer !== undefined) {
      args.push("--dns-server", formatHostPort(nameServer.ipAddr, nameServer.port ?? 53));
    }
    for (const [i, pem] of (caCerts ?? []).entries()) {
      const file = join(dir, `ca${i}.pem`);
      await Deno.writeTextFile(file, pem);
      args.push("--ca-cert", file);
    }
  }
  if (options.limits !== undefined) {
    const { maxMessageBytes, ...rest } = options.limits;
    const extra = Object.entries(rest).filter(([, v]) => v !== undefined).map(([k]) => k);
    if (extra.length > 0) throw noFlag(`limits.${extra.join(", limits.")}`);
    if (maxMessageBytes !== undefined) args.push("--max-message-bytes", String(maxMessageBytes));
  }
  if (options.maxBandwidthMbps !== undefined) {
    args.push("--max-bandwidth-mbps", String(options.maxBandwidthMbps));
  }
  if (options.maxServerBandwidthMbps !== undefined) {
    args.push("--max-server-bandwidth-mbps", String(options.maxServerBandwidthMbps));
  }
  if (options.maxSessions !== undefined) args.push("--max-sessions", String(options.maxSessions));
  for (const origin of options.allowedOrigins ?? []) args.push("--allow-origin", origin);
  if (options.demo) args.push("--demo");
  if (options.tickets !== undefined) {
    await Deno.writeTextFile(join(dir, "ticket-key"), options.tickets.key.text);
    args.push("--ticket-key", join(dir, "ticket-key"));
    const leeway = options.tickets.leewaySecs;
    if (leeway !== undefined) args.push("--ticket-leeway", String(leeway));
  }
  for (const cidr of options.trustProxy ?? []) args.push("--trust-proxy", cidr);
  if (options.ipLimits !== undefined) {
    const { sessionsPerIp, newSessionsPerMinute, dialsPerMinute } = options.ipLimits;
    if (sessionsPerIp) args.push("--max-sessions-per-ip", String(sessionsPerIp));
    if (newSessionsPerMinute) {
      args.push("--max-new-sessions-per-ip-per-min", String(newSessionsPerMinute));
    }
    if (dialsPerMinute) args.push("--max-dials-per-ip-per-min", String(dialsPerMinute));
  }
  if (options.tls !== undefined) {
    await Deno.writeTextFile(join(dir, "cert.pem"), options.tls.cert);
    await Deno.writeTextFile(join(dir, "key.pem"), options.tls.key);
    args.push("--cert", join(dir, "cert.pem"), "--key", join(dir, "key.pem"));
  }
  if (options.wisp === false) args.push("--wisp", "off");
  else if (options.wisp !== undefined) {
    const { prefix, users, motd, ...rest } = options.wisp;
    const extra = Object.entries(rest).filter(([, v]) => v !== undefined).map(([k]) => k);
    if (extra.length > 0) throw noFlag(`wisp.${extra.join(", wisp.")}`);
    if (prefix !== undefined) args.push("--wisp-prefix", prefix);
    if (users !== undefined) {
      const file = join(dir, "wisp-users.txt");
      await Deno.writeTextFile(file, [...users].map(([u, p]) => `${u}:${p}\n`).join(""));
      args.push("--wisp-users", file);
    }
    if (motd !== undefined) args.push("--wisp-motd", motd);
  }
  if (options.pool !== undefined) {
    const { perKey, idleSecs, maxTotal } = options.pool;
    if (maxTotal !== undefined) throw noFlag("pool.maxTotal");
    if (!Number.isInteger(idleSecs)) throw noFlag(`pool.idleSecs ${idleSecs} (not an integer)`);
    args.push("--pool-per-key", String(perKey), "--pool-idle-secs", String(idleSecs));
  }
  return args;
}

function sameConfig(a: Policy, b: Policy): boolean {
  return JSON.stringify(a.config) === JSON.stringify(b.config);
}

async function startChild(options: StartOptions): Promise<WasmnetServer> {
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-test-" });
  let proc: ServerProcess;
  try {
    proc = await ServerProcess.start(await commandLine(options, dir));
  } catch (e) {
    await Deno.remove(dir, { recursive: true });
    throw e;
  }
  return new ChildServer(proc, dir, options.signal, options.tls !== undefined);
}

/**
 * A server running as a child process, in the shape of `WasmnetServer`. `shutdown()` and
 * `await using` send SIGTERM, read all its output, and fail unless it exited 0 with nothing on
 * stderr but warnings.
 */
class ChildServer implements WasmnetServer {
  readonly addr: { hostname: string; port: number };
  readonly url: string;
  readonly pool = undefined;
  readonly #proc: ServerProcess;
  readonly #dir: string;
  #stopping: Promise<void> | undefined;

  constructor(proc: ServerProcess, dir: string, signal: AbortSignal | undefined, tls = false) {
    this.#proc = proc;
    this.#dir = dir;
    const port = proc.port ?? 0;
    this.addr = { hostname: "127.0.0.1", port };
    this.url = `${tls ? "wss" : "ws"}://127.0.0.1:${port}/`;
    signal?.addEventListener("abort", () => void this.shutdown().catch(() => {}), { once: true });
  }

  /**
   * Resolves once the child has exited and, when `shutdown()` (or the abort `signal`) stopped it,
   * once that has finished; rejects when that shutdown failed (exit code, errors on stderr).
   */
  get finished(): Promise<void> {
    return this.#proc.exited.then(() => this.#stopping);
  }

  /** Not available for a child: use {@linkcode sessionsOf}. */
  get sessions(): number {
    throw new Error("server.sessions is in-process only: use await sessionsOf(server)");
  }

  /** Not available for a child: send it SIGHUP ({@linkcode ChildServer.kill}). */
  reloadTls(): void {
    throw new Error("server.reloadTls is in-process only: send the child SIGHUP");
  }

  /** Not available for a child: use {@linkcode reloadPolicy}. */
  get policy(): Policy {
    throw new Error("server.policy is in-process only: use await reloadPolicy(server, policy)");
  }

  set policy(_policy: Policy) {
    throw new Error("server.policy is in-process only: use await reloadPolicy(server, policy)");
  }

  /** The policy file the child was started with (`--policy`), if any. */
  get policyFile(): string | undefined {
    const file = join(this.#dir, "policy.toml");
    try {
      Deno.statSync(file);
      return file;
    } catch {
      return undefined;
    }
  }

  /** Sends a signal to the child (e.g. `SIGHUP` to reload its policy). */
  kill(signal: Deno.Signal): void {
    Deno.kill(this.#proc.pid, signal);
  }

  /** The child's process id. */
  get pid(): number {
    return this.#proc.pid;
  }

  /** Everything the child printed so far. */
  get output(): string {
    return this.#proc.output;
  }

  shutdown(): Promise<void> {
    this.#stopping ??= (async () => {
      let status: Deno.CommandStatus;
      try {
        status = await this.#proc.stop("SIGTERM");
      } finally {
        await Deno.remove(this.#dir, { recursive: true });
      }
      const bad = this.#proc.stderr.split("\n").filter((l) => l !== "" && !/^\S+ WARN /.test(l));
      if (status.code !== 0 || bad.length > 0) {
        throw new Error(
          `the ${childTarget()} server exited ${status.code}${
            status.signal ? ` (${status.signal})` : ""
          }${bad.length > 0 ? " with errors on stderr" : ""}:\n${this.#proc.output}`,
        );
      }
    })();
    return this.#stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}
