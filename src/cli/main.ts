/**
 * The `wasmnet` command: run the server, or check a policy file.
 *
 * @module
 */
import {
  CliError,
  type Command,
  HELP,
  isLoopbackHost,
  parseCommand,
  parseWispUsers,
  type ServeFlags,
  type TicketFlags,
  type WaterFlags,
} from "./args.ts";
import { readFile } from "node:fs/promises";
import {
  getLogger,
  LOG_ENV_VAR,
  logLevelFromEnv,
  setLogFormat,
  setLogLevel,
  setLogOutput,
} from "../log/mod.ts";
import { Policy, PolicyError } from "../policy/mod.ts";
import { checkTlsFiles, ServerMetrics, startServer } from "../server/mod.ts";
import { parseCaCerts } from "../transport/mod.ts";
import {
  mintTicket,
  parseSigningKey,
  parseTicketKey,
  type TicketKey,
  TicketKeyError,
} from "../server/tickets.ts";
import { DEFAULT_POOL_IDLE_SECS, DEFAULT_POOL_PER_KEY } from "../pool/mod.ts";
import { PROTOCOL_VERSION, VERSION } from "../version.ts";
import { currentRuntime, type Runtime } from "./runtime.ts";

const log = getLogger("cli");

/** How long the process waits at exit for its queued output to be written, in ms. */
const EXIT_FLUSH_MS = 2000;

/** Reads and parses a policy file. @throws {PolicyError} with a one-line message. */
export async function loadPolicyFile(path: string): Promise<Policy> {
  const runtime = await currentRuntime();
  let text: string;
  try {
    text = await runtime.readTextFile(path);
  } catch (e) {
    throw new PolicyError(path, `cannot read the file (${(e as Error).message})`, { cause: e });
  }
  return Policy.fromToml(text, path);
}

/** Reads the `--ca-cert` files. @throws {CliError} naming a file that cannot be read. */
async function readCaCerts(runtime: Runtime, flags: ServeFlags): Promise<string[]> {
  const certs: string[] = [];
  for (const file of flags.caCertFiles) {
    let text: string;
    try {
      text = await runtime.readTextFile(file);
    } catch (e) {
      throw new CliError(`cannot read --ca-cert file "${file}": ${(e as Error).message}`);
    }
    if (!text.includes("-----BEGIN CERTIFICATE-----")) {
      throw new CliError(`--ca-cert file "${file}" holds no PEM certificate`);
    }
    try {
      parseCaCerts([text]); // node:tls would crash on it at the first handshake
    } catch (e) {
      throw new CliError(`--ca-cert file "${file}": ${(e as Error).message}`);
    }
    certs.push(text);
  }
  return certs;
}

/**
 * The Wisp options of the flags (`false` for `--wisp off`), reading `--wisp-users`.
 *
 * @throws {CliError} naming the file when it cannot be read or a line is malformed.
 */
async function wispFor(
  runtime: Runtime,
  flags: ServeFlags,
): Promise<false | { prefix: string; users?: Map<string, string>; motd?: string }> {
  if (!flags.wisp) return false;
  let users: Map<string, string> | undefined;
  if (flags.wispUsersFile !== undefined) {
    let text: string;
    try {
      text = await runtime.readTextFile(flags.wispUsersFile);
    } catch (e) {
      throw new CliError(
        `cannot read --wisp-users file "${flags.wispUsersFile}": ${(e as Error).message}`,
      );
    }
    users = parseWispUsers(flags.wispUsersFile, text);
  }
  return {
    prefix: flags.wispPrefix,
    ...(users ? { users } : {}),
    ...(flags.wispMotd !== undefined ? { motd: flags.wispMotd } : {}),
  };
}

/**
 * Reads `--cert` and `--key` (undefined without them).
 *
 * @throws {CliError} naming a file that cannot be read or holds no PEM certificate / private key.
 */
async function readTls(
  runtime: Runtime,
  flags: ServeFlags,
): Promise<{ cert: string; key: string } | undefined> {
  if (flags.certFile === undefined || flags.keyFile === undefined) return undefined;
  const read = async (
    flag: string,
    file: string,
    marker: RegExp,
    what: string,
  ): Promise<string> => {
    let text: string;
    try {
      text = await runtime.readTextFile(file);
    } catch (e) {
      throw new CliError(`cannot read ${flag} file "${file}": ${(e as Error).message}`);
    }
    if (!marker.test(text)) throw new CliError(`${flag} file "${file}" holds no PEM ${what}`);
    return text;
  };
  const files = {
    cert: await read("--cert", flags.certFile, /-----BEGIN CERTIFICATE-----/, "certificate"),
    key: await read("--key", flags.keyFile, /-----BEGIN [A-Z ]*PRIVATE KEY-----/, "private key"),
  };
  try {
    checkTlsFiles(files);
  } catch (e) {
    throw new CliError(
      `--cert "${flags.certFile}" / --key "${flags.keyFile}": ${(e as Error).message}`,
    );
  }
  return files;
}

/**
 * Reads a ticket key file (`--ticket-key`, or the `ticket` command's `--key`) with `parse`.
 *
 * @throws {CliError} one line naming the file: it cannot be read, or holds no usable key (a
 *   secret under 32 bytes, a PEM of the wrong kind).
 */
async function readTicketKey(
  runtime: Runtime,
  flag: string,
  file: string,
  parse: (text: string, source: string) => Promise<TicketKey>,
): Promise<TicketKey> {
  let text: string;
  try {
    text = await runtime.readTextFile(file);
  } catch (e) {
    throw new CliError(`cannot read ${flag} file "${file}": ${(e as Error).message}`);
  }
  try {
    return await parse(text, file);
  } catch (e) {
    if (e instanceof TicketKeyError) throw new CliError(`${flag}: ${e.message}`);
    throw e;
  }
}

/** The `tickets` server option from `--ticket-key` / `--ticket-leeway` (undefined without). */
async function ticketsFor(
  runtime: Runtime,
  flags: ServeFlags,
): Promise<{ key: TicketKey; leewaySecs: number } | undefined> {
  if (flags.ticketKeyFile === undefined) return undefined;
  const key = await readTicketKey(runtime, "--ticket-key", flags.ticketKeyFile, parseTicketKey);
  return { key, leewaySecs: flags.ticketLeewaySecs ?? 0 };
}

/**
 * `ticket --key FILE --ttl T ...`: prints a signed ticket and nothing else on stdout.
 *
 * @throws {CliError} (exit 2) for an unreadable or unusable key file, or a claim the server would
 *   refuse (a malformed `--allow` rule).
 */
async function mint(
  runtime: Runtime,
  print: (stream: "stdout" | "stderr", text: string) => void,
  flags: TicketFlags,
): Promise<number> {
  const key = await readTicketKey(runtime, "--key", flags.keyFile, parseSigningKey);
  let token: string;
  try {
    token = await mintTicket(key, {
      sub: flags.sub,
      allow: flags.allow,
      maxConnections: flags.maxConnections,
      mbps: flags.mbps,
    }, flags.ttlSecs);
  } catch (e) {
    throw new CliError(`cannot mint the ticket: ${(e as Error).message}`);
  }
  print("stdout", token);
  return 0;
}

function policyFor(flags: ServeFlags): Promise<Policy> | Policy {
  if (flags.noPolicy) return Policy.allowAll();
  if (flags.policyFile !== undefined) return loadPolicyFile(flags.policyFile);
  return Policy.defaults();
}

/**
 * `pool` settings from `--pool-per-key` / `--pool-idle-secs` (either enables; defaults 2 and 30),
 * and the line that reports them (logged only once the server listens).
 */
function poolFor(
  flags: ServeFlags,
): { options: { pool: { perKey: number; idleSecs: number } } | undefined; report: () => void } {
  if (flags.poolPerKey === undefined && flags.poolIdleSecs === undefined) {
    return { options: undefined, report: () => {} };
  }
  const pool = {
    perKey: flags.poolPerKey ?? DEFAULT_POOL_PER_KEY,
    idleSecs: flags.poolIdleSecs ?? DEFAULT_POOL_IDLE_SECS,
  };
  if (pool.perKey === 0 || pool.idleSecs === 0) {
    return {
      options: undefined,
      report: () => log.info("connection pool disabled (0 given)", pool),
    };
  }
  return { options: { pool }, report: () => log.info("connection pool", pool) };
}

/**
 * Thrown when the server cannot start listening; `message` is one line naming the address, e.g.
 * `cannot listen on 127.0.0.1:9000: address already in use` (exit code 1).
 */
class ListenFailed extends Error {
  /** @param message the listen error's one-line message (from `startServer`). */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ListenFailed";
  }
}

async function serve(runtime: Runtime, flags: ServeFlags): Promise<number> {
  const policy = await policyFor(flags);
  const caCerts = await readCaCerts(runtime, flags);
  const wisp = await wispFor(runtime, flags);
  const tickets = await ticketsFor(runtime, flags);
  const tls = await readTls(runtime, flags);
  const pool = poolFor(flags);
  const controller = new AbortController();
  // Signals are taken before the server listens: a SIGTERM that arrives as soon as the `listening`
  // line is out still exits 0 (a supervisor may stop a server the moment it sees it up).
  const removeSignals = runtime.onStopSignals(() => controller.abort());
  // Nothing is logged before the server listens: a start that fails prints its one error line only.
  const server = await startServer({
    hostname: flags.host,
    port: flags.port,
    policy,
    adapter: runtime.adapter(),
    transport: runtime.transport({ nameServer: flags.dnsServer, caCerts }),
    signal: controller.signal,
    metrics: new ServerMetrics({ processMetrics: true }),
    ...(flags.metricsListen ? { metricsListen: flags.metricsListen } : {}),
    demo: flags.demo,
    wisp,
    ...(tickets ? { tickets } : {}),
    ...(tls ? { tls } : {}),
    ...(flags.allowedOrigins.length > 0 ? { allowedOrigins: flags.allowedOrigins } : {}),
    ...(flags.maxSessions !== undefined ? { maxSessions: flags.maxSessions } : {}),
    ...(flags.trustProxy.length > 0 ? { trustProxy: flags.trustProxy } : {}),
    ipLimits: {
      ...(flags.maxSessionsPerIp !== undefined ? { sessionsPerIp: flags.maxSessionsPerIp } : {}),
      ...(flags.maxNewSessionsPerIpPerMin !== undefined
        ? { newSessionsPerMinute: flags.maxNewSessionsPerIpPerMin }
        : {}),
      ...(flags.maxDialsPerIpPerMin !== undefined
        ? { dialsPerMinute: flags.maxDialsPerIpPerMin }
        : {}),
    },
    ...(flags.maxBandwidthMbps !== undefined ? { maxBandwidthMbps: flags.maxBandwidthMbps } : {}),
    ...(flags.maxServerBandwidthMbps !== undefined
      ? { maxServerBandwidthMbps: flags.maxServerBandwidthMbps }
      : {}),
    ...(flags.maxMessageBytes !== undefined
      ? { limits: { maxMessageBytes: flags.maxMessageBytes } }
      : {}),
    ...pool.options,
  }).catch((e: unknown) => {
    removeSignals();
    throw new ListenFailed((e as Error).message, { cause: e });
  });
  if (!isLoopbackHost(flags.host) && !tickets && flags.allowedOrigins.length === 0) {
    log.warn(
      "listening on a non-loopback address with neither --ticket-key nor --allow-origin: any " +
        "client that reaches the port, and any web page its users visit, can use this relay " +
        "within the policy",
      { host: flags.host },
    );
  }
  if (flags.noPolicy) {
    log.warn("policy checks disabled (--no-policy): clients may reach any address");
  } else log.info("policy", { source: flags.policyFile ?? "built-in defaults" });
  pool.report();
  if (tickets) {
    log.info("tickets required", {
      key: tickets.key.alg === "HS256" ? "HMAC-SHA256 secret" : "Ed25519 public key",
      leewaySecs: tickets.leewaySecs,
    });
  }
  if (wisp) {
    log.info("wisp", {
      prefix: wisp.prefix,
      auth: wisp.users ? `${wisp.users.size} users` : "none",
    });
  }
  log.info(`wasmnet ${VERSION} ready`, { url: server.url, protocol: PROTOCOL_VERSION });
  const stopReloading = reloadOn(runtime, flags, (policy) => server.policy = policy);
  const stopTlsReload = tls
    ? runtime.onReloadSignal(() => {
      void readTls(runtime, flags).then((files) => {
        if (files) server.reloadTls(files);
        log.info("TLS certificate reloaded", { cert: flags.certFile });
      }).catch((e: Error) => {
        log.error("TLS certificate reload failed; the previous one stays in use", {
          cert: flags.certFile,
          error: e.message,
        });
      });
    })
    : () => {};
  try {
    await server.finished;
  } finally {
    removeSignals();
    stopReloading();
    stopTlsReload();
  }
  return 0;
}

/**
 * `water FILE.wasm --role R --listen HOST:PORT --remote HOST:PORT ...`: runs a W.A.T.E.R. host
 * until SIGINT/SIGTERM (exit 0). Logs `water ROLE listening addr=HOST:PORT` once it accepts.
 *
 * @throws {CliError} (exit 2) for a module or `--config` file that cannot be read.
 * @returns 1 after one line on stderr for a module that is not WATM v1 (v0, unknown, missing
 *   exports), a denied or malformed `--remote`, or a failure to listen.
 */
async function water(
  runtime: Runtime,
  print: (stream: "stdout" | "stderr", text: string) => void,
  flags: WaterFlags,
): Promise<number> {
  // Loaded only for this command (its WASI shim and workers are not the server's).
  const { startWaterHost, WaterHostError, WatmError } = await import("../wasm/water/mod.ts");
  const read = async (what: string, file: string): Promise<Uint8Array<ArrayBuffer>> => {
    try {
      return new Uint8Array(await readFile(file));
    } catch (e) {
      throw new CliError(`cannot read ${what} "${file}": ${(e as Error).message}`);
    }
  };
  const module = await read("module file", flags.moduleFile);
  const config = flags.configFile === undefined
    ? undefined
    : await read("--config file", flags.configFile);
  const policy = flags.noPolicy
    ? Policy.allowAll()
    : flags.policyFile !== undefined
    ? await loadPolicyFile(flags.policyFile)
    : Policy.defaults();
  const controller = new AbortController();
  const removeSignals = runtime.onStopSignals(() => controller.abort());
  let host;
  try {
    host = await startWaterHost({
      module,
      role: flags.role,
      listen: { host: flags.listen.hostname, port: flags.listen.port },
      remote: flags.remote,
      config,
      policy,
      transport: runtime.transport(),
      signal: controller.signal,
    });
  } catch (e) {
    removeSignals();
    if (e instanceof WatmError) {
      print("stderr", `wasmnet: ${flags.moduleFile}: ${e.message}`);
      return 1;
    }
    if (e instanceof WaterHostError) {
      print("stderr", `wasmnet: ${e.message}`);
      return 1;
    }
    throw e;
  }
  if (flags.noPolicy) {
    log.warn("policy checks disabled (--no-policy): modules may dial any address");
  } else log.info("policy", { source: flags.policyFile ?? "built-in defaults" });
  log.info(`water ${flags.role} listening`, {
    addr: `${
      host.addr.hostname.includes(":") ? `[${host.addr.hostname}]` : host.addr.hostname
    }:${host.addr.port}`,
    remote: `${flags.remote.host}:${flags.remote.port}`,
    module: flags.moduleFile,
  });
  try {
    await host.finished;
  } finally {
    removeSignals();
  }
  return 0;
}

/**
 * Hot reload of the `--policy` file on SIGHUP (and on change with `--watch-policy`): a file that
 * loads replaces the policy in force (`apply`); a bad one is logged and the previous policy stays.
 * Reloads run one at a time, in order. Returns a function that stops listening and watching.
 */
function reloadOn(
  runtime: Runtime,
  flags: ServeFlags,
  apply: (policy: Policy) => void,
): () => void {
  const file = flags.policyFile;
  let chain = Promise.resolve();
  const reload = (why: string): void => {
    chain = chain.then(async () => {
      if (file === undefined) {
        log.info("reload asked: no --policy file to reload", { why });
        return;
      }
      try {
        apply(await loadPolicyFile(file));
        log.info("policy reloaded", { source: file, why });
      } catch (e) {
        log.error("policy reload failed; the previous policy stays in force", {
          source: file,
          why,
          error: (e as Error).message,
        });
      }
    });
  };
  const removeSignal = runtime.onReloadSignal(() => reload("SIGHUP"));
  let stopWatching = (): void => {};
  if (flags.watchPolicy && file !== undefined) {
    try {
      stopWatching = runtime.watchFile(file, () => reload("file changed"));
    } catch (e) {
      log.error("cannot watch the policy file", { source: file, error: (e as Error).message });
    }
  }
  return () => {
    removeSignal();
    stopWatching();
  };
}

/**
 * `check-policy FILE --explain T ...`: explains every target in order; a malformed target (one
 * that {@linkcode Policy.explain} answers with `invalid: ...`) gets one line on stderr instead, the
 * others are still explained, and the exit code is then 2.
 */
async function checkPolicy(
  print: (stream: "stdout" | "stderr", text: string) => void,
  file: string,
  explain: string[],
): Promise<number> {
  const policy = await loadPolicyFile(file);
  print("stdout", `${file}: valid policy`);
  let code = 0;
  for (const target of explain) {
    const answer = policy.explain(target);
    if (answer.startsWith("invalid: ")) {
      print("stderr", `wasmnet: invalid value for --explain: ${answer.slice("invalid: ".length)}`);
      code = 2;
    } else print("stdout", answer);
  }
  return code;
}

/**
 * Runs the `wasmnet` command line and resolves its exit code: 0 on success (the server exits 0
 * after SIGINT/SIGTERM), 2 for a bad command line, 1 for a bad policy file or a failure to start
 * (e.g. port in use). Errors are printed as one line on stderr: `wasmnet: <message>`.
 */
export async function main(args: string[]): Promise<number> {
  const runtime = await currentRuntime();
  const print = (stream: "stdout" | "stderr", text: string): void =>
    runtime.write(stream, text.endsWith("\n") ? text : `${text}\n`);
  // Log lines go through the runtime's bounded asynchronous output: never blocking the server.
  setLogOutput(runtime.write);
  let command: Command;
  try {
    command = parseCommand(args);
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    print("stderr", `wasmnet: ${e.message} (see --help)`);
    return 2;
  }
  try {
    const envLevel = logLevelFromEnv(runtime.env);
    if (envLevel) setLogLevel(envLevel);
  } catch (e) {
    print("stderr", `wasmnet: ${LOG_ENV_VAR}: ${(e as Error).message}`);
    return 2;
  }
  try {
    switch (command.kind) {
      case "help":
        print("stdout", HELP);
        return 0;
      case "version":
        print(
          "stdout",
          `wasmnet ${VERSION} (protocol ${PROTOCOL_VERSION}, ${runtime.name} ${runtime.version})`,
        );
        return 0;
      case "check-policy":
        return await checkPolicy(print, command.file, command.explain);
      case "ticket":
        return await mint(runtime, print, command.flags);
      case "water":
        if (command.flags.logLevel) setLogLevel(command.flags.logLevel);
        return await water(runtime, print, command.flags);
      case "plugin": {
        // Loaded only for this command: the Extism SDK reads environment variables when it loads,
        // which the server's permissions (`--allow-env=WASMNET_LOG,...`) do not grant.
        const { runPlugin } = await import("./plugin.ts");
        return await runPlugin(runtime, print, command.flags, loadPolicyFile);
      }
      case "serve":
        if (command.flags.logLevel) setLogLevel(command.flags.logLevel);
        setLogFormat(command.flags.logFormat);
        return await serve(runtime, command.flags);
    }
  } catch (e) {
    if (e instanceof CliError) {
      print("stderr", `wasmnet: ${e.message}`);
      return 2;
    }
    if (e instanceof PolicyError) {
      print("stderr", `wasmnet: ${e.message}`);
      return 1;
    }
    if (e instanceof ListenFailed) {
      print("stderr", `wasmnet: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

/**
 * Runs the command line of the current process (the runtime's arguments) and exits with its
 * code: the entry point of `mod.ts` on Deno and Bun, and of the compiled binary.
 */
export async function run(): Promise<never> {
  const runtime = await currentRuntime();
  const code = await main(runtime.args());
  await runtime.flush(EXIT_FLUSH_MS);
  return runtime.exit(code);
}
