/**
 * `deno task bench`: wasmnet — its Deno server and its Bun server — against a naive relay,
 * hand-written relays of each runtime, raw TCP, websockify and a Wisp server, side by side, in
 * one run on loopback. Starts every server and every load-generator run as its own process,
 * interleaves the repetitions across systems (in a rotating order), and writes
 * `bench/results/latest.md`, `latest.json` and `chart.svg` (`--out DIR` elsewhere). Every process
 * it starts is stopped before it exits (also on Ctrl-C).
 *
 * Usage: `deno run -A bench/run.ts [--quick] [--reps N] [--only scenario,scenario] [--out DIR]`
 * (`--only wisp`: every scenario of the Wisp table)
 *
 * - The relay table (`up_free`, `up_ack`, `down`, `browser`, `rtt`, `connect_rate`): the
 *   independent load generator `loadgen_node.mjs` (Node + npm `ws`, like a browser) against
 *   every column; `loadgen_browser.ts` (headless Chromium) for the browser download; Wisp through
 *   its own client (`driver_wisp.mjs`). Each row also gives the ratio to the naive relay
 *   `naive_server.mjs` (Node + `ws`, no policy, no limits) and which runtime's wasmnet server
 *   wins. Columns: raw TCP; the load generator's WebSocket with no proxy (the upstream peer's
 *   own WebSocket endpoint: the round-trip calibration); wasmnet binary and JSON under Deno and
 *   under Bun; the naive relay; the hand-written relays `toy_deno.ts`, `toy_bun.ts`,
 *   `toy_node.mjs` (one WebSocket per TCP connection, like websockify: `up_free`, `down`, `rtt`,
 *   `connect_rate`); websockify; Wisp.
 * - Full runs only: `up_ack`; the Deno load generator `driver.ts` for 10 sockets per session
 *   (`up10`, `down10`), connect latency (`connect`), 200 sessions (`sessions`), the pool, server
 *   memory with idle sockets (`memory`) and the bandwidth limiter, each for the Deno and the Bun
 *   server where it applies; 10,000 idle sessions per server (`idle_sessions`, Node load
 *   generator, 1,000 when named in `--only` of a quick run).
 * - The Wisp table (quick runs too; `--only wisp` alone): our Wisp personality at `/wisp/` of the
 *   Deno and the Bun wasmnet servers (the same servers and command line as their wasmnet
 *   columns) against the wisp-js server, every column driven by the wisp-js client
 *   (`driver_wisp.mjs`): free-running upload and download over 1 and 10 streams of one
 *   connection (`wisp_up`, `wisp_up10`, `wisp_down`, `wisp_down10`), 64 B round trips
 *   (`wisp_rtt`), connect+close with 16 in flight (`wisp_connect_rate`), and server memory per
 *   idle stream (`wisp_idle`: VmRSS delta over the idle streams of `memory`, a fresh server each).
 * - `bench:quick` (3 reps, 64 MiB; ~3.5 minutes on 2 cores, the Wisp table about 1 minute of
 *   it) leaves out the full-only rows and the JSON columns of the Chromium row.
 * - The report's goals table holds the goals of issue 15 for each runtime's server, each a ratio
 *   of medians within the run, and the older targets for the Deno server.
 *
 * Servers run as users run them: wasmnet under Deno by `bin/wasmnet` (its permissions: the `ws`
 * adapter with read backpressure, and npm `bufferutil`'s native frame unmasking); under Bun as
 * `bin/wasmnet-bun` runs it (`bun run mod.ts`, Bun's adapter); both `-H 127.0.0.1 -p 0 --no-policy --log-level info`. A server that does not start
 * (or a Bun that is missing) does not stop the run: its cells say `failed: <reason>` and the
 * report lists why.
 *
 * Peers: the pinned Bun from `$WASMNET_BUN`, else `.tools/bun/node_modules/.bin/bun` (where
 * `bin/_bun.sh` installs it; none: no Bun column and no Bun relay, with the reason in the
 * report); `websockify` from the Debian package (`apt-get
 * install -y websockify`); Chromium from `/usr/bin/chromium` (or `$WASMNET_CHROMIUM`); the npm
 * packages `ws` (the Node load generator, the naive relay and the Node relay) and
 * `@mercuryworkshop/wisp-js` (the Wisp server and client), pinned below and installed on first
 * use with npm into `$WASMNET_BENCH_CACHE` (default `~/.cache/wasmnet-bench`), run under Node. A
 * missing peer is left out with the reason in the report.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { ScenarioConfig, ScenarioResult } from "./driver.ts";
import type { BrowserConfig, BrowserSystem } from "./loadgen_browser.ts";
import {
  type Machine,
  type Params,
  type RelayCell,
  renderMarkdown,
  renderSvg,
  type Report,
  type Row,
  type Stat,
} from "./report.ts";

const HERE = new URL(".", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;
const WISP_VERSION = "0.5.0";
/** npm `ws` for the Node load generator and the naive relay: the version deno.lock pins for wasmnet. */
const WS_VERSION = "8.23.0";
/**
 * Payload of the 200-session round trips: 1000 B, not 1024, because Deno's WebSocket client
 * (this load generator) stalls ~44 ms per message whose frame payload exceeds 1024 B (Nagle +
 * delayed ACK; measured: 1024 B → 27 µs, 1025 B → 44 ms against a plain Deno WebSocket echo,
 * while Node's `ws` client sees no stall). A wasmnet `send` of 1 KiB is a 1033-byte frame.
 */
const SESSION_MSG_BYTES = 1000;
const enc = new TextEncoder();
const dec = new TextDecoder();

function out(line: string): void {
  Deno.stdout.writeSync(enc.encode(line + "\n"));
}
function note(line: string): void {
  Deno.stderr.writeSync(enc.encode(`[bench] ${line}\n`));
}

// ---------------------------------------------------------------------------------------------
// processes

interface Proc {
  name: string;
  child: Deno.ChildProcess;
  pid: number;
  lines: AsyncIterator<string>;
  log: string[];
}
const procs = new Set<Proc>();

async function* linesOf(stream: ReadableStream<Uint8Array>, log: string[]): AsyncGenerator<string> {
  let buf = "";
  for await (const chunk of stream) {
    buf += dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      log.push(line);
      if (log.length > 200) log.shift();
      yield line;
    }
  }
}

/** Children of `pid`, recursively (from /proc), so forked workers are stopped too. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(e.name));
      children.set(ppid, list);
    } catch {
      // exited meanwhile
    }
  }
  const all: number[] = [];
  const walk = (p: number): void => {
    for (const c of children.get(p) ?? []) {
      all.push(c);
      walk(c);
    }
  };
  walk(pid);
  return all;
}

function start(
  name: string,
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
  cwd?: string,
): Proc {
  const child = new Deno.Command(cmd, {
    args,
    env,
    ...(cwd ? { cwd } : {}),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const log: string[] = [];
  // Both pipes are drained all the time: a child whose stdout nobody reads blocks on its next
  // write once the pipe buffer (64 KiB) is full — the server's log lines would stall it.
  // `lines` hands out stdout lines in order from a queue the drain fills.
  const queue: string[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  void (async () => {
    for await (const line of linesOf(child.stdout, log)) {
      queue.push(line);
      if (queue.length > 10_000) queue.shift();
      wake?.();
    }
  })().catch(() => {}).finally(() => {
    ended = true;
    wake?.();
  });
  void (async () => {
    for await (const line of linesOf(child.stderr, log)) void line;
  })().catch(() => {});
  const lines: AsyncIterator<string> = {
    async next(): Promise<IteratorResult<string>> {
      while (queue.length === 0 && !ended) await new Promise<void>((r) => wake = r);
      const line = queue.shift();
      return line === undefined ? { value: undefined, done: true } : { value: line, done: false };
    },
  };
  const p: Proc = { name, child, pid: child.pid, lines, log };
  procs.add(p);
  return p;
}

async function stop(p: Proc, signal: Deno.Signal = "SIGTERM"): Promise<void> {
  if (!procs.has(p)) return;
  procs.delete(p);
  const kids = descendants(p.pid);
  for (const pid of [p.pid, ...kids]) {
    try {
      Deno.kill(pid, signal);
    } catch {
      // gone
    }
  }
  const timer = setTimeout(() => {
    for (const pid of [p.pid, ...kids]) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }, 3000);
  try {
    await p.child.status;
  } finally {
    clearTimeout(timer);
  }
  try {
    await p.child.stdin.close();
  } catch {
    // closed
  }
  for (const pid of kids) { // orphans of a killed parent
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
}

async function stopAll(): Promise<void> {
  await Promise.all([...procs].map((p) => stop(p)));
}

async function waitLine(p: Proc, re: RegExp, ms = 15000): Promise<RegExpExecArray> {
  const found = (async () => {
    for (;;) {
      for (const line of p.log) {
        const m = re.exec(line);
        if (m) return m;
      }
      const r = await Promise.race([
        p.lines.next(),
        new Promise<"tick">((res) => setTimeout(() => res("tick"), 50)),
      ]);
      if (r !== "tick" && r.done) {
        // A line read by an earlier, abandoned `next()` is in the log already: look once more.
        for (const line of p.log) {
          const m = re.exec(line);
          if (m) return m;
        }
        throw new Error(`${p.name} exited: ${p.log.join("\n")}`);
      }
    }
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`${p.name}: no ${re} in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([found, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function waitPort(port: number, ms = 15000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
      return;
    } catch (e) {
      if (Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
  return Number(m?.[1] ?? NaN);
}

/** Sum of proportional set sizes of a process and its descendants (forking servers). */
function treePssKiB(pid: number): number {
  let sum = 0;
  for (const p of [pid, ...descendants(pid)]) {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(Deno.readTextFileSync(`/proc/${p}/smaps_rollup`));
      sum += Number(m?.[1] ?? 0);
    } catch {
      // gone
    }
  }
  return sum;
}

// ---------------------------------------------------------------------------------------------
// servers

interface Server {
  proc: Proc;
  port: number;
}

/** Strips terminal colours from a log line. */
function plain(line: string): string {
  // deno-lint-ignore no-control-regex
  return line.replace(/\x1b\[[0-9;]*m/g, "").trim();
}

/**
 * Why a server did not start, in one line: its first `error…` line (Deno, Bun, Node print one),
 * else its last line, else `e`'s message.
 */
function whyFailed(proc: Proc, e: unknown): string {
  const lines = proc.log.map(plain).filter((l) => l !== "");
  const line = lines.find((l) => /^(error\b|Error\b|\w*Error:)/.test(l)) ?? lines.at(-1) ??
    (e as Error).message;
  return line.slice(0, 160);
}

/**
 * The port of a server that prints `listening addr=127.0.0.1:PORT`; stops it and throws an
 * `Error` whose message is {@link whyFailed} when it exits or stays silent for 15 s.
 */
async function listening(proc: Proc): Promise<Server> {
  try {
    const m = await waitLine(proc, /listening addr=127\.0\.0\.1:(\d+)/);
    return { proc, port: Number(m[1]) };
  } catch (e) {
    await stop(proc);
    await new Promise((r) => setTimeout(r, 100)); // the last stderr lines
    throw new Error(whyFailed(proc, e));
  }
}

/** The arguments after `mod.ts` of every wasmnet server, Deno's or Bun's. */
function wasmnetArgs(extra: string[]): string[] {
  return ["-H", "127.0.0.1", "-p", "0", "--no-policy", "--log-level", "info", ...extra];
}

/**
 * The wasmnet server under Deno as users run it: `bin/wasmnet` (its permissions: the `ws` adapter
 * with read backpressure, `bufferutil`'s native unmasking), with this Deno first on PATH.
 */
function startWasmnet(extra: string[] = []): Promise<Server> {
  const path = `${Deno.execPath().replace(/\/[^/]*$/, "")}:${Deno.env.get("PATH") ?? ""}`;
  return listening(
    start("wasmnet", `${ROOT}bin/wasmnet`, wasmnetArgs(extra), { PATH: path }),
  );
}

/** The wasmnet server under Bun, as users run it: `bun run mod.ts` (Bun's server adapter). */
function startBun(bun: string, extra: string[] = []): Promise<Server> {
  return listening(
    start("wasmnet (Bun)", bun, ["run", `${ROOT}mod.ts`, ...wasmnetArgs(extra)], {}, ROOT),
  );
}

/**
 * The pinned Bun: `$WASMNET_BUN`, else `<repo>/.tools/bun/node_modules/.bin/bun` (installed by
 * `bin/_bun.sh`). Returns the path, or `{ why }` when there is none.
 */
function findBun(): string | { why: string } {
  const isFile = (p: string): boolean => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  };
  const env = Deno.env.get("WASMNET_BUN");
  if (env) return isFile(env) ? env : { why: `WASMNET_BUN=${env} does not exist` };
  const candidates = [`${ROOT}.tools/bun/node_modules/.bin/bun`];
  return candidates.find(isFile) ??
    { why: `no Bun (set WASMNET_BUN, or run bin/_bun.sh to install it at ${candidates[0]})` };
}

/** The naive relay (`naive_server.mjs`), with plain `npm install ws` (no `bufferutil`). */
function startNaive(modules: string): Promise<Server> {
  return listening(
    start("naive", "node", [
      `${HERE}naive_server.mjs`,
      "-H",
      "127.0.0.1",
      "-p",
      "0",
    ], { WASMNET_BENCH_NODE_MODULES: modules, WS_NO_BUFFER_UTIL: "1" }),
  );
}

/** Which hand-written relay (`toy_deno.ts`, `toy_bun.ts`, `toy_node.mjs`). */
type Toy = "toy-deno" | "toy-bun" | "toy-node";

/**
 * A hand-written relay to the upstream peer's TCP port, under its own runtime (`bun`: Bun's path;
 * `modules`: where npm `ws` is, for Node's).
 */
function startToy(toy: Toy, upstreamPort: number, bun?: string, modules?: string): Promise<Server> {
  const target = ["--target", `127.0.0.1:${upstreamPort}`];
  switch (toy) {
    case "toy-deno":
      return listening(
        start(toy, Deno.execPath(), ["run", "--allow-net", `${HERE}toy_deno.ts`, ...target]),
      );
    case "toy-bun":
      if (!bun) return Promise.reject(new Error("no Bun"));
      return listening(start(toy, bun, ["run", `${HERE}toy_bun.ts`, ...target]));
    case "toy-node":
      return listening(
        start(toy, "node", [`${HERE}toy_node.mjs`, ...target], {
          WASMNET_BENCH_NODE_MODULES: modules ?? "",
          WS_NO_BUFFER_UTIL: "1",
        }),
      );
  }
}

async function startWebsockify(upstreamPort: number): Promise<Server> {
  const port = freePort();
  const proc = start("websockify", "websockify", [
    `127.0.0.1:${port}`,
    `127.0.0.1:${upstreamPort}`,
  ]);
  await waitPort(port);
  return { proc, port };
}

async function startWisp(dir: string): Promise<Server> {
  const port = freePort();
  const proc = start("wisp", "node", [
    `${dir}/src/bin/server_cli.mjs`,
    "-H",
    "127.0.0.1",
    "-P",
    String(port),
    "-L",
    "ERROR",
    "-O",
    JSON.stringify({ allow_loopback_ips: true, allow_private_ips: true }),
  ]);
  await waitPort(port);
  return { proc, port };
}

async function which(cmd: string): Promise<string | undefined> {
  try {
    const r = await new Deno.Command("sh", { args: ["-c", `command -v ${cmd}`] }).output();
    return r.success ? dec.decode(r.stdout).trim() : undefined;
  } catch {
    return undefined;
  }
}

/** Where the Node packages are: `modules` (for `ws`), `wisp` (the wisp-js package directory). */
interface NodeDeps {
  modules?: string;
  wisp?: string;
}

function installedVersion(dir: string): string | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(`${dir}/package.json`)).version;
  } catch {
    return undefined;
  }
}

/**
 * Installs the pinned Node packages (wisp-js, ws) once into `$WASMNET_BENCH_CACHE` (default
 * `~/.cache/wasmnet-bench`) with npm. Records why in `skipped` when Node or npm fails.
 */
async function ensureNodeDeps(skipped: Record<string, string>): Promise<NodeDeps> {
  if (!await which("node")) {
    skipped.node = "node is not installed: no naive server, Node load generator or Wisp";
    return {};
  }
  const cache = Deno.env.get("WASMNET_BENCH_CACHE") ??
    `${Deno.env.get("HOME")}/.cache/wasmnet-bench`;
  const modules = `${cache}/node_modules`;
  const wisp = `${modules}/@mercuryworkshop/wisp-js`;
  if (
    installedVersion(`${modules}/ws`) === WS_VERSION &&
    installedVersion(wisp) === WISP_VERSION
  ) return { modules, wisp };
  note(`installing ws@${WS_VERSION} and @mercuryworkshop/wisp-js@${WISP_VERSION} into ${cache}`);
  Deno.mkdirSync(cache, { recursive: true });
  const r = await new Deno.Command("npm", {
    args: [
      "install",
      "--prefix",
      cache,
      "--no-audit",
      "--no-fund",
      "--save-exact",
      `ws@${WS_VERSION}`,
      `@mercuryworkshop/wisp-js@${WISP_VERSION}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) {
    skipped.node = `npm install failed: ${dec.decode(r.stderr).trim().split("\n").pop()}`;
    return {};
  }
  return { modules, wisp };
}

// ---------------------------------------------------------------------------------------------
// systems

type ServerName = "wasmnet" | "bun" | "naive" | "websockify" | "wisp" | Toy;
type Ports = Partial<Record<ServerName, number>>;

/** A system under test and how a load generator reaches it. */
interface Sys {
  key: string;
  label: string;
  /** Which load generator drives it. */
  gen: "deno" | "node" | "wisp";
  /** Which server it talks to (its port changes when servers restart); none: the upstream. */
  server?: ServerName;
  /** The WebSocket path on that server (default `/`; our Wisp personality: `/wisp/`). */
  path?: string;
  kind: "raw" | "wasmnet" | "ws1" | "wisp";
  framing?: "binary" | "json";
  /** Calibration rows (not a proxy). */
  calibration?: boolean;
  /** One WebSocket per socket (no multiplexing). */
  perSocketWs?: boolean;
  /** Relay table: the naive column this one is compared with. */
  naive?: string;
  /** Relay table: also downloaded through by the browser. */
  browser?: boolean;
  /** Relay table: the only scenarios it runs (default: all). */
  rows?: string[];
  /** The runtime of a wasmnet server or a hand-written relay (the goals compare within one). */
  runtime?: "deno" | "bun" | "node";
}

interface Upstream {
  tcp: number;
  ws: number;
}

/** The load generator's `system` for `sys` with the servers' current ports. */
function systemConfig(sys: Sys, up: Upstream, ports: Ports): Record<string, unknown> {
  const host = "127.0.0.1";
  const url = sys.server
    ? `ws://${host}:${ports[sys.server]}${sys.path ?? "/"}`
    : `ws://${host}:${up.ws}/`;
  switch (sys.kind) {
    case "raw":
      return { kind: "raw", host, port: up.tcp };
    case "ws1":
      return { kind: "ws1", url };
    case "wasmnet":
      return { kind: "wasmnet", url, framing: sys.framing, host, port: up.tcp };
    case "wisp":
      return { kind: "wisp", url, host, port: up.tcp };
  }
}

// ---------------------------------------------------------------------------------------------
// running scenarios

interface Ctx {
  up: Upstream;
  ports: Ports;
  deps: NodeDeps;
}

async function drive(
  sys: Sys,
  scenario: Record<string, unknown>,
  ctx: Ctx,
  timeoutMs = 60_000,
): Promise<ScenarioResult> {
  const cfg = JSON.stringify({ system: systemConfig(sys, ctx.up, ctx.ports), scenario });
  const p = sys.gen === "deno"
    ? start(`driver ${sys.key}`, Deno.execPath(), ["run", "-A", `${HERE}driver.ts`, cfg])
    : sys.gen === "node"
    ? start(`loadgen ${sys.key}`, "node", [`${HERE}loadgen_node.mjs`, cfg], {
      WASMNET_BENCH_NODE_MODULES: ctx.deps.modules ?? "",
    })
    : start(`driver ${sys.key}`, "node", [`${HERE}driver_wisp.mjs`, cfg], {
      WISP_JS: ctx.deps.wisp ?? "",
    });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const status = await Promise.race([
      p.child.status,
      new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), timeoutMs)),
    ]);
    clearTimeout(timer);
    await drainLines(p);
    if (status === "timeout") {
      throw new Error(`load generator timed out after ${timeoutMs / 1000} s`);
    }
    const last = [...p.log].reverse().find((l) =>
      l.startsWith('{"result"') || l.startsWith('{"error"')
    );
    if (!last) throw new Error(`load generator printed no result: ${p.log.slice(-5).join(" | ")}`);
    const parsed = JSON.parse(last) as { result?: ScenarioResult; error?: string };
    if (parsed.error) throw new Error(parsed.error.split("\n")[0]);
    if (!parsed.result) throw new Error("no result");
    return parsed.result;
  } finally {
    clearTimeout(timer);
    await stop(p);
  }
}

/** Reads what is left of a finished process's stdout into its log. */
async function drainLines(p: Proc): Promise<void> {
  for (;;) {
    const r = await Promise.race([
      p.lines.next(),
      new Promise<"tick">((res) => setTimeout(() => res("tick"), 200)),
    ]);
    if (r === "tick" || r.done) break;
  }
}

/** One Chromium run over `systems`; results by key (an `Error` for a failed system). */
async function driveBrowser(
  systems: Sys[],
  bytes: number,
  ctx: Ctx,
): Promise<Map<string, ScenarioResult | Error>> {
  const cfg: BrowserConfig = {
    bytes,
    warmup: Math.min(bytes, 8 * 2 ** 20),
    systems: systems.map((s) => {
      const c = systemConfig(s, ctx.up, ctx.ports) as unknown as BrowserSystem;
      return { key: s.key, url: c.url, framing: c.framing, host: c.host, port: c.port };
    }),
  };
  const p = start("browser", Deno.execPath(), [
    "run",
    "-A",
    `${HERE}loadgen_browser.ts`,
    JSON.stringify(cfg),
  ]);
  const out = new Map<string, ScenarioResult | Error>();
  try {
    await waitLine(p, /^\{"done":true\}/, 120_000 + systems.length * 30_000);
  } catch (e) {
    for (const s of systems) out.set(s.key, e as Error);
  } finally {
    await stop(p);
  }
  for (const line of p.log) {
    if (!line.startsWith('{"key"')) continue;
    const r = JSON.parse(line) as { key: string; result?: ScenarioResult; error?: string };
    out.set(r.key, r.result ?? new Error(r.error ?? "no result"));
  }
  return out;
}

/**
 * Runs an interactive idle scenario (`idle`: `count` idle sockets on one session; `idle_sessions`:
 * `count` sessions with no sockets, Node load generator) and measures the server between its
 * phases; returns memory per socket or session (KiB).
 */
async function memory(
  sys: Sys,
  ctx: Ctx,
  serverPid: number,
  count: number,
  measure: (pid: number) => number,
  name: "idle" | "idle_sessions" = "idle",
): Promise<{ base: number; loaded: number; perSocketKiB: number; openSecs: number }> {
  const cfg = JSON.stringify({
    system: systemConfig(sys, ctx.up, ctx.ports),
    scenario: name === "idle" ? { name, sockets: count } : { name, sessions: count },
  });
  const p = sys.gen === "deno"
    ? start(`idle ${sys.key}`, Deno.execPath(), ["run", "-A", `${HERE}driver.ts`, cfg])
    : sys.gen === "node"
    ? start(`idle ${sys.key}`, "node", [`${HERE}loadgen_node.mjs`, cfg], {
      WASMNET_BENCH_NODE_MODULES: ctx.deps.modules ?? "",
    })
    : start(`idle ${sys.key}`, "node", [`${HERE}driver_wisp.mjs`, cfg], {
      WISP_JS: ctx.deps.wisp ?? "",
    });
  try {
    await waitLine(p, /"phase":"base"/, 60_000);
    const base = measure(serverPid);
    const w = p.child.stdin.getWriter();
    await w.write(enc.encode("go\n"));
    await waitLine(p, /"phase":"loaded"/, 120_000);
    const loaded = measure(serverPid);
    await w.write(enc.encode("go\n"));
    w.releaseLock();
    await waitLine(p, /"result"|"error"/, 60_000);
    const res = JSON.parse(p.log.find((l) => l.includes('"result"')) ?? "{}") as {
      result?: ScenarioResult;
    };
    return {
      base,
      loaded,
      perSocketKiB: (loaded - base) / count,
      openSecs: res.result?.secs ?? NaN,
    };
  } finally {
    await stop(p);
  }
}

function median(xs: number[]): number {
  const a = xs.filter(Number.isFinite).sort((x, y) => x - y);
  if (a.length === 0) return NaN;
  const m = Math.floor(a.length / 2);
  return a.length % 2 ? a[m] ?? NaN : ((a[m - 1] ?? 0) + (a[m] ?? 0)) / 2;
}

function loadavg(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "n/a";
  }
}

async function machine(bun: string | { why: string }): Promise<Machine> {
  const cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? "unknown";
  const version = async (cmd: string, args: string[]): Promise<string> => {
    try {
      const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
      return dec.decode(r.stdout).trim().split("\n")[0] ?? "n/a";
    } catch {
      return "n/a";
    }
  };
  return {
    nproc: navigator.hardwareConcurrency,
    cpu: model,
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    node: await version("node", ["--version"]),
    bun: typeof bun === "string" ? await version(bun, ["--version"]) : "n/a",
    chromium: (await version(Deno.env.get("WASMNET_CHROMIUM") ?? "/usr/bin/chromium", [
      "--version",
    ])).split(" ").slice(0, 2).join(" "),
    memGiB: Math.round(Deno.systemMemoryInfo().total / 2 ** 30),
    loadStart: loadavg(),
    loadEnd: "",
  };
}

/** The commit under test, and whether the server's files differ from it (a shared work tree). */
async function revision(): Promise<string> {
  const git = async (args: string[]): Promise<string> => {
    try {
      const r = await new Deno.Command("git", { args, cwd: ROOT, stdout: "piped", stderr: "null" })
        .output();
      return r.success ? dec.decode(r.stdout).trimEnd() : "";
    } catch {
      return "";
    }
  };
  const head = await git(["rev-parse", "--short", "HEAD"]);
  if (!head) return "unknown";
  const dirty = await git([
    "status",
    "--porcelain",
    "--",
    "mod.ts",
    "src",
    "deno.json",
    "package.json",
    "bun.lock",
  ]);
  return dirty
    ? `${head} + uncommitted changes to ${
      [...new Set(dirty.split("\n").map((l) => l.slice(3).split("/").slice(0, 2).join("/")))]
        .join(", ")
    }`
    : head;
}

function statOf(xs: number[]): Stat {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}

// ---------------------------------------------------------------------------------------------

/**
 * The Wisp table's scenarios (our Wisp personality on both runtimes against the wisp-js server,
 * all through the wisp-js client): quick runs too. `--only wisp` names them all.
 */
const WISP_SCENARIOS = [
  "wisp_up",
  "wisp_up10",
  "wisp_down",
  "wisp_down10",
  "wisp_rtt",
  "wisp_connect_rate",
  "wisp_idle",
];
/** Every name `--only` accepts: the relay table's scenarios, the Deno driver's, the Wisp table's. */
const SCENARIOS = [
  "up_free",
  "up_ack",
  "down",
  "browser",
  "rtt",
  "connect_rate",
  "up10",
  "down10",
  "connect",
  "sessions",
  "pool",
  "memory",
  "idle_sessions",
  "limiter",
  ...WISP_SCENARIOS,
];
/**
 * Full runs only (`bench:quick` stays near 3.5 minutes): the acknowledged upload, the Deno load
 * generator's scenarios, the memory scenarios but the Wisp table's, and the limiter.
 */
const FULL_ONLY = new Set([
  "up_ack",
  "up10",
  "down10",
  "connect",
  "sessions",
  "pool",
  "memory",
  "idle_sessions",
  "limiter",
]);

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean" },
      reps: { type: "string" },
      only: { type: "string" },
      out: { type: "string" },
    },
  });
  const quick = values.quick ?? false;
  const reps = Number(values.reps ?? (quick ? 3 : 5));
  const only = values.only?.split(",").flatMap((n) => n === "wisp" ? WISP_SCENARIOS : [n]);
  for (const name of only ?? []) {
    if (!SCENARIOS.includes(name)) {
      throw new Error(`--only: unknown scenario "${name}" (one of wisp, ${SCENARIOS.join(", ")})`);
    }
  }
  const want = (s: string): boolean => only ? only.includes(s) : !(quick && FULL_ONLY.has(s));
  const outDir = values.out ?? `${HERE}results`;
  const P: Params = quick
    ? {
      bytes: 64 * 2 ** 20,
      browserBytes: 32 * 2 ** 20,
      rtt: 2000,
      connLat: 200,
      rateSecs: 1,
      sessSecs: 1,
      idle: 500,
      idleSessions: 1000,
      limSecs: 1,
      otherReps: 2,
    }
    : {
      bytes: 256 * 2 ** 20,
      browserBytes: 128 * 2 ** 20,
      rtt: 10000,
      connLat: 1000,
      rateSecs: 2,
      sessSecs: 2,
      idle: 1000,
      idleSessions: 10_000,
      limSecs: 3,
      otherReps: 3,
    };
  const t0 = Date.now();
  const skipped: Record<string, string> = {};
  const notes: string[] = [];
  const m = await machine(findBun());
  const rev = await revision();

  const upstreamProc = start("upstream", Deno.execPath(), ["run", "-A", `${HERE}upstream.ts`]);
  const um = await waitLine(upstreamProc, /^\{"tcp":(\d+),"ws":(\d+)\}/);
  const up = { tcp: Number(um[1]), ws: Number(um[2]) };

  const deps = await ensureNodeDeps(skipped);
  const hasWebsockify = await which("websockify") !== undefined;
  if (!hasWebsockify) {
    skipped.websockify = "websockify is not installed (apt-get install -y websockify)";
  }
  const hasChromium = await which(Deno.env.get("WASMNET_CHROMIUM") ?? "/usr/bin/chromium");
  const bunFound = findBun();
  const bun = typeof bunFound === "string" ? bunFound : undefined;
  if (typeof bunFound !== "string") {
    skipped.bun = `${bunFound.why}: no Bun column and no Bun hand-written relay`;
  }
  if (!hasChromium) {
    skipped.browser = "Chromium is not installed (apt-get install -y chromium)";
  }

  // Columns of the relay table (Node load generator), then the Deno driver's systems.
  /** The scenarios a hand-written relay or the direct WebSocket can run (the `ws1` kind). */
  const WS1_ROWS = ["up_free", "down", "rtt", "connect_rate"];
  const relay: Sys[] = [];
  const legacy: Sys[] = [
    { key: "raw", label: "raw TCP", gen: "deno", kind: "raw" },
    {
      key: "wasmnet-bin",
      label: "wasmnet binary (Deno)",
      gen: "deno",
      server: "wasmnet",
      kind: "wasmnet",
      framing: "binary",
      runtime: "deno",
    },
    {
      key: "wasmnet-json",
      label: "wasmnet JSON (Deno)",
      gen: "deno",
      server: "wasmnet",
      kind: "wasmnet",
      framing: "json",
      runtime: "deno",
    },
  ];
  if (bun) {
    legacy.push(
      {
        key: "bun-bin",
        label: "wasmnet binary (Bun)",
        gen: "deno",
        server: "bun",
        kind: "wasmnet",
        framing: "binary",
        runtime: "bun",
      },
      {
        key: "bun-json",
        label: "wasmnet JSON (Bun)",
        gen: "deno",
        server: "bun",
        kind: "wasmnet",
        framing: "json",
        runtime: "bun",
      },
    );
  }
  if (deps.modules) {
    const wasmnetColumn = (
      key: string,
      label: string,
      server: "wasmnet" | "bun",
      framing: "binary" | "json",
    ): Sys => ({
      key,
      label,
      gen: "node",
      server,
      kind: "wasmnet",
      framing,
      naive: framing === "binary" ? "naive-bin" : "naive-json",
      browser: true,
      runtime: server === "bun" ? "bun" : "deno",
    });
    const toyColumn = (key: Toy, label: string, runtime: "deno" | "bun" | "node"): Sys => ({
      key,
      label,
      gen: "node",
      server: key,
      kind: "ws1",
      perSocketWs: true,
      naive: "naive-bin",
      rows: WS1_ROWS,
      runtime,
    });
    relay.push(
      { key: "raw", label: "raw TCP", gen: "node", kind: "raw", naive: "naive-bin" },
      {
        key: "ws-direct",
        label: "WebSocket, no proxy",
        gen: "node",
        kind: "ws1",
        calibration: true,
        perSocketWs: true,
        rows: WS1_ROWS,
      },
      wasmnetColumn("wasmnet-bin", "wasmnet binary (Deno)", "wasmnet", "binary"),
      ...(bun ? [wasmnetColumn("bun-bin", "wasmnet binary (Bun)", "bun", "binary")] : []),
      {
        key: "naive-bin",
        label: "naive binary",
        gen: "node",
        server: "naive",
        kind: "wasmnet",
        framing: "binary",
        browser: true,
      },
      wasmnetColumn("wasmnet-json", "wasmnet JSON (Deno)", "wasmnet", "json"),
      ...(bun ? [wasmnetColumn("bun-json", "wasmnet JSON (Bun)", "bun", "json")] : []),
      {
        key: "naive-json",
        label: "naive JSON",
        gen: "node",
        server: "naive",
        kind: "wasmnet",
        framing: "json",
        browser: true,
      },
      toyColumn("toy-deno", "toy Deno", "deno"),
      ...(bun ? [toyColumn("toy-bun", "toy Bun", "bun")] : []),
      toyColumn("toy-node", "toy Node", "node"),
    );
    if (hasWebsockify) {
      relay.push({
        key: "websockify",
        label: "websockify",
        gen: "node",
        server: "websockify",
        kind: "ws1",
        perSocketWs: true,
        naive: "naive-bin",
      });
    }
  }
  if (hasWebsockify) {
    legacy.push({
      key: "websockify",
      label: "websockify",
      gen: "deno",
      server: "websockify",
      kind: "ws1",
      perSocketWs: true,
    });
  }
  if (deps.wisp) {
    const wisp: Sys = {
      key: "wisp",
      label: "Wisp (wisp-js)",
      gen: "wisp",
      server: "wisp",
      kind: "wisp",
      naive: "naive-bin",
    };
    relay.push(wisp);
    legacy.push({ ...wisp, label: "Wisp (wisp-js, Node)" });
  }
  /**
   * The Wisp table's columns, all driven by the wisp-js client (`driver_wisp.mjs`): our Wisp
   * personality at `/wisp/` of the Deno and the Bun wasmnet servers (the same servers as the
   * wasmnet columns, same command line), and the wisp-js server.
   */
  const wispCols: Sys[] = [];
  if (deps.wisp) {
    const ours = (key: string, label: string, server: "wasmnet" | "bun"): Sys => ({
      key,
      label,
      gen: "wisp",
      server,
      path: "/wisp/",
      kind: "wisp",
      runtime: server === "bun" ? "bun" : "deno",
    });
    wispCols.push(
      ours("wisp-deno", "wasmnet Wisp (Deno)", "wasmnet"),
      ...(bun ? [ours("wisp-bun", "wasmnet Wisp (Bun)", "bun")] : []),
      { key: "wisp", label: "wisp-js server", gen: "wisp", server: "wisp", kind: "wisp" },
    );
  }
  legacy.push({
    key: "ws-direct",
    label: "loadgen: WebSocket, no proxy",
    gen: "deno",
    kind: "ws1",
    calibration: true,
    perSocketWs: true,
  });

  /** How each server starts (none: not available in this run). */
  const starters: Partial<Record<ServerName, () => Promise<Server>>> = {
    wasmnet: () => startWasmnet(),
    ...(bun ? { bun: () => startBun(bun), "toy-bun": () => startToy("toy-bun", up.tcp, bun) } : {}),
    "toy-deno": () => startToy("toy-deno", up.tcp),
    ...(deps.modules
      ? {
        naive: () => startNaive(deps.modules ?? ""),
        "toy-node": () => startToy("toy-node", up.tcp, undefined, deps.modules),
      }
      : {}),
    ...(hasWebsockify ? { websockify: () => startWebsockify(up.tcp) } : {}),
    ...(deps.wisp ? { wisp: () => startWisp(deps.wisp ?? "") } : {}),
  };
  const labelOf = (server: ServerName): string =>
    [...relay, ...legacy].find((s) => s.server === server)?.label.replace(/ (binary|JSON)/, "") ??
      server;
  /** Servers that did not start for the current scenario, with why. */
  const down: Partial<Record<ServerName, string>> = {};
  /** Servers that failed to start at least once in this run (label → the first reason). */
  const failedToStart: Record<string, string> = {};
  /** Starts one server; a failure is recorded in `down`/`failedToStart`, not thrown. */
  const tryStart = async (name: ServerName): Promise<Server | undefined> => {
    const f = starters[name];
    if (!f) {
      down[name] = "not available in this run";
      return undefined;
    }
    try {
      const s = await f();
      delete down[name];
      return s;
    } catch (e) {
      const why = (e as Error).message;
      down[name] = why;
      failedToStart[labelOf(name)] ??= why;
      note(`${name} did not start: ${why}`);
      return undefined;
    }
  };

  /**
   * Fresh servers for every scenario, so one scenario's leftovers (tens of thousands of closed
   * sockets after the connect scenarios) cannot slow or stall the next one. Starts only the
   * servers `systems` use, in parallel.
   */
  const live: Partial<Record<ServerName, Server>> = {};
  const ctx: Ctx = { up, ports: {}, deps };
  const stopServers = async (): Promise<void> => {
    await Promise.all(Object.values(live).map((s) => stop(s.proc)));
    for (const k of Object.keys(live)) delete live[k as ServerName];
    for (const k of Object.keys(ctx.ports)) delete ctx.ports[k as ServerName];
  };
  const restartServers = async (systems: Sys[]): Promise<void> => {
    await stopServers();
    const needed = new Set(systems.flatMap((s) => s.server ? [s.server] : []));
    await Promise.all([...needed].map(async (name) => {
      const s = await tryStart(name);
      if (!s) return;
      live[name] = s;
      ctx.ports[name] = s.port;
    }));
    if (live.wasmnet?.proc.log.some((l) => l.includes("no read backpressure"))) {
      const msg = "the wasmnet server ran WITHOUT read backpressure (no ws adapter)";
      if (!notes.includes(msg)) notes.push(msg);
    }
  };
  const downWhy = (sys: Sys): string | undefined =>
    sys.server ? down[sys.server] && `failed: ${down[sys.server]}` : undefined;

  // metric → system → samples (or failures); relay and Deno-driver metrics are kept apart.
  const relaySamples = new Map<string, Map<string, number[]>>();
  const relayFailures = new Map<string, Map<string, string[]>>();
  const samples = new Map<string, Map<string, number[]>>();
  const failures = new Map<string, Map<string, string[]>>();
  const errors: string[] = [];
  const push = <T>(map: Map<string, Map<string, T[]>>, metric: string, sys: string, v: T): void => {
    let bySys = map.get(metric);
    if (!bySys) map.set(metric, bySys = new Map());
    const list = bySys.get(sys) ?? [];
    list.push(v);
    bySys.set(sys, list);
  };
  const add = (metric: string, sys: string, v: number | undefined): void => {
    if (v !== undefined && Number.isFinite(v)) push(samples, metric, sys, v);
  };
  const addRelay = (metric: string, sys: string, v: number | undefined): void => {
    if (v !== undefined && Number.isFinite(v)) push(relaySamples, metric, sys, v);
  };
  const failRelay = (metrics: string[], sys: string, why: string): void => {
    for (const mt of metrics) push(relayFailures, mt, sys, why);
  };
  /** The columns a relay-style scenario runs over and where its samples go. */
  interface Table {
    cols: Sys[];
    samples: Map<string, Map<string, number[]>>;
    failures: Map<string, Map<string, string[]>>;
    /** Column key → what its client spoke (`ScenarioResult.protocol`). */
    protocols: Map<string, Set<string>>;
  }
  const relayTable: Table = {
    cols: relay,
    samples: relaySamples,
    failures: relayFailures,
    protocols: new Map(),
  };
  const wispTable: Table = {
    cols: wispCols,
    samples: new Map(),
    failures: new Map(),
    protocols: new Map(),
  };
  const fail = (metrics: string[], sys: string, why: string): void => {
    for (const mt of metrics) push(failures, mt, sys, why);
  };
  const rotate = <T>(xs: T[], k: number): T[] => xs.map((_, i) => xs[(i + k) % xs.length] as T);
  type Metric = [string, (r: ScenarioResult) => number | undefined];

  /**
   * A relay-style scenario over the columns of `table` (the relay table, or the Wisp table):
   * every rep runs each of its columns once, in a rotated order. A column whose load generator
   * timed out is not run again in this scenario (its later reps fail with the same reason).
   */
  const relayScenario = async (
    name: string,
    sc: Record<string, unknown>,
    metrics: Metric[],
    table: Table = relayTable,
  ): Promise<void> => {
    const cols = table.cols.filter((s) => !s.rows || s.rows.includes(name));
    if (!want(name) || cols.length === 0) return;
    const failAll = (sys: string, why: string): void => {
      for (const [mt] of metrics) push(table.failures, mt, sys, why);
    };
    const timedOut = new Map<string, string>();
    await restartServers(cols);
    for (let rep = 0; rep < reps; rep++) {
      for (const sys of rotate(cols, rep)) {
        const why = downWhy(sys) ?? timedOut.get(sys.key);
        if (why !== undefined) {
          failAll(sys.key, why);
          continue;
        }
        try {
          const r = await drive(sys, sc, ctx);
          if (r.protocol !== undefined) {
            const seen = table.protocols.get(sys.key) ?? new Set();
            table.protocols.set(sys.key, seen.add(r.protocol));
          }
          if (r.failure !== undefined) {
            failAll(sys.key, r.failure);
            errors.push(`${name} ${sys.key} rep ${rep + 1}: failed: ${r.failure}`);
            continue;
          }
          for (const [mt, get] of metrics) {
            const v = get(r);
            if (v !== undefined && Number.isFinite(v)) push(table.samples, mt, sys.key, v);
          }
          if (r.errors) errors.push(`${name} ${sys.key}: ${r.errors} failed operations`);
        } catch (e) {
          const msg = (e as Error).message;
          if (msg.startsWith("load generator timed out")) timedOut.set(sys.key, msg);
          failAll(sys.key, msg);
          errors.push(`${name} ${sys.key} rep ${rep + 1}: ${msg}`);
        }
      }
      note(`${name}: rep ${rep + 1}/${reps} done (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
    }
  };

  /** A Deno-driver scenario (full runs): `n` reps over the legacy systems `filter` keeps. */
  const scenario = async (
    name: string,
    sc: ScenarioConfig,
    n: number,
    metrics: Metric[],
    filter: (s: Sys) => boolean = () => true,
  ): Promise<void> => {
    if (!want(name)) return;
    const systems = legacy.filter(filter);
    await restartServers(systems);
    for (let rep = 0; rep < n; rep++) {
      for (const sys of systems) {
        const why = downWhy(sys);
        if (why !== undefined) {
          fail(metrics.map(([mt]) => mt), sys.key, why);
          continue;
        }
        try {
          const r = await drive(sys, sc as unknown as Record<string, unknown>, ctx);
          for (const [mt, get] of metrics) add(mt, sys.key, get(r));
          if (r.errors) errors.push(`${name} ${sys.key}: ${r.errors} failed operations`);
        } catch (e) {
          fail(metrics.map(([mt]) => mt), sys.key, (e as Error).message);
          errors.push(`${name} ${sys.key} rep ${rep + 1}: ${(e as Error).message}`);
        }
      }
      note(`${name}: rep ${rep + 1}/${n} done (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
    }
  };
  const proxyOnly = (s: Sys): boolean => !s.calibration;

  try {
    // --- the relay table: Node `ws` load generator (and Chromium), every column -------------
    await relayScenario(
      "up_free",
      { name: "up", bytes: P.bytes, streams: 1, free: true },
      [["up_free", (r) => r.rate]],
    );
    await relayScenario(
      "up_ack",
      { name: "up", bytes: P.bytes, streams: 1 },
      [["up_ack", (r) => r.rate]],
    );
    await relayScenario(
      "down",
      { name: "down", bytes: P.bytes, streams: 1 },
      [["down", (r) => r.rate]],
    );
    // Quick runs: the binary columns only (a browser download per column is the slowest cell).
    const inBrowser = relay.filter((s) => s.browser && !(quick && s.framing === "json"));
    if (want("browser") && hasChromium && inBrowser.length > 0) {
      await restartServers(inBrowser);
      for (let rep = 0; rep < reps; rep++) {
        const running = inBrowser.filter((s) => downWhy(s) === undefined);
        for (const s of inBrowser) {
          const why = downWhy(s);
          if (why !== undefined) failRelay(["down_browser"], s.key, why);
        }
        const results = running.length
          ? await driveBrowser(rotate(running, rep), P.browserBytes, ctx)
          : new Map<string, ScenarioResult | Error>();
        for (const s of running) {
          const r = results.get(s.key);
          if (r instanceof Error || r === undefined) {
            const why = r?.message ?? "no result";
            failRelay(["down_browser"], s.key, why);
            errors.push(`browser ${s.key} rep ${rep + 1}: ${why}`);
          } else addRelay("down_browser", s.key, r.rate);
        }
        note(`browser: rep ${rep + 1}/${reps} done (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
      }
    }
    await relayScenario("rtt", { name: "rtt", size: 64, count: P.rtt }, [
      ["rtt_p50", (r) => r.p50Us],
      ["rtt_p99", (r) => r.p99Us],
    ]);
    await relayScenario(
      "connect_rate",
      { name: "connect_rate", secs: P.rateSecs, concurrency: 16 },
      [["conn_rate", (r) => r.rate]],
    );

    // --- the Deno load generator: more sockets, connect latency, sessions (full runs) --------
    await scenario(
      "up10",
      { name: "up", bytes: P.bytes, streams: 10 },
      P.otherReps,
      [["up10", (r) => r.rate]],
    );
    await scenario(
      "down10",
      { name: "down", bytes: P.bytes, streams: 10 },
      P.otherReps,
      [["down10", (r) => r.rate]],
    );
    await scenario(
      "connect",
      { name: "connect_latency", count: P.connLat },
      P.otherReps,
      [["conn_p50", (r) => r.p50Us], ["conn_p99", (r) => r.p99Us]],
      proxyOnly,
    );
    await scenario(
      "sessions",
      { name: "sessions", sessions: 200, size: SESSION_MSG_BYTES, secs: P.sessSecs },
      P.otherReps,
      [["sess_rate", (r) => r.rate], ["sess_p99", (r) => r.p99Us]],
      // JSON: a 1000 B send is a ~1.4 KB text frame, which Deno's WebSocket client stalls on.
      (s) => proxyOnly(s) && s.framing !== "json",
    );

    // Pool: a second wasmnet server with the pool flags.
    let pool: Report["pool"] = { status: "not run" };
    if (want("pool")) {
      await stopServers();
      const sys: Sys = {
        key: "wasmnet-bin-pool",
        label: "wasmnet binary (Deno) + pool",
        gen: "deno",
        server: "wasmnet",
        kind: "wasmnet",
        framing: "binary",
      };
      legacy.push(sys);
      try {
        const ps = await startWasmnet(["--pool-per-key", "4", "--pool-idle-secs", "30"]);
        const poolCtx: Ctx = { ...ctx, ports: { ...ctx.ports, wasmnet: ps.port } };
        for (let rep = 0; rep < P.otherReps; rep++) {
          try {
            const a = await drive(sys, { name: "connect_latency", count: P.connLat }, poolCtx);
            add("conn_p50", sys.key, a.p50Us);
            add("conn_p99", sys.key, a.p99Us);
          } catch (e) {
            errors.push(`pool rep ${rep + 1}: ${(e as Error).message}`);
          }
        }
        pool = { status: "measured" };
        await stop(ps.proc);
      } catch (e) {
        pool = { status: `failed: ${(e as Error).message}` };
      }
    }

    // Memory with idle proxied sockets, and with idle sessions: a fresh server per measurement,
    // so earlier runs leave nothing behind.
    type MemoryRow = Report["memory"][number];
    const measureOne = async (
      into: MemoryRow[],
      sys: Sys | undefined,
      count: number,
      how: string,
      measure: (pid: number) => number,
      name: "idle" | "idle_sessions" = "idle",
    ): Promise<void> => {
      if (!sys?.server) return;
      const row = (r: Omit<MemoryRow, "system" | "label" | "sockets" | "how">): MemoryRow => ({
        system: sys.key,
        label: sys.label,
        sockets: count,
        how,
        ...r,
      });
      const server = await tryStart(sys.server);
      if (!server) {
        const failure = `failed: ${down[sys.server]}`;
        into.push(row({ base: NaN, loaded: NaN, perSocketKiB: NaN, openSecs: NaN, failure }));
        return;
      }
      try {
        const own: Ctx = { ...ctx, ports: { ...ctx.ports, [sys.server]: server.port } };
        into.push(row(await memory(sys, own, server.proc.pid, count, measure, name)));
      } catch (e) {
        errors.push(`${name} ${sys.key}: ${(e as Error).message}`);
        const failure = (e as Error).message.split("\n")[0] ?? "";
        into.push(row({ base: NaN, loaded: NaN, perSocketKiB: NaN, openSecs: NaN, failure }));
      } finally {
        await stop(server.proc);
      }
    };
    const mem: Report["memory"] = [];
    if (want("memory")) {
      await stopServers();
      const of = (key: string): Sys | undefined => legacy.find((s) => s.key === key);
      await measureOne(mem, of("wasmnet-bin"), P.idle, "VmRSS", rssKiB);
      await measureOne(mem, of("bun-bin"), P.idle, "VmRSS", rssKiB);
      await measureOne(mem, of("wisp"), P.idle, "VmRSS", rssKiB);
      await measureOne(
        mem,
        of("websockify"),
        quick ? 100 : 300,
        "PSS of the process tree (forks per connection)",
        treePssKiB,
      );
    }
    const idleSessions: Report["idleSessions"] = [];
    if (want("idle_sessions")) {
      await stopServers();
      if (!deps.modules) skipped.idle_sessions = "needs the Node load generator (node and npm ws)";
      for (const key of ["wasmnet-bin", "bun-bin"]) {
        const sys = relay.find((s) => s.key === key);
        await measureOne(idleSessions, sys, P.idleSessions, "VmRSS", rssKiB, "idle_sessions");
      }
    }

    // --- the Wisp table: our Wisp personality against the wisp-js server (wisp-js client) -----
    if (wispCols.length === 0 && WISP_SCENARIOS.some(want)) {
      skipped.wisp = "needs the wisp-js client (node and npm @mercuryworkshop/wisp-js)";
    }
    const throughputMetric = (key: string): Metric[] => [[key, (r) => r.rate]];
    await relayScenario(
      "wisp_up",
      { name: "up", bytes: P.bytes, streams: 1, free: true },
      throughputMetric("up"),
      wispTable,
    );
    await relayScenario(
      "wisp_up10",
      { name: "up", bytes: P.bytes, streams: 10, free: true },
      throughputMetric("up10"),
      wispTable,
    );
    await relayScenario(
      "wisp_down",
      { name: "down", bytes: P.bytes, streams: 1 },
      throughputMetric("down"),
      wispTable,
    );
    await relayScenario(
      "wisp_down10",
      { name: "down", bytes: P.bytes, streams: 10 },
      throughputMetric("down10"),
      wispTable,
    );
    await relayScenario("wisp_rtt", { name: "rtt", size: 64, count: P.rtt }, [
      ["rtt_p50", (r) => r.p50Us],
      ["rtt_p99", (r) => r.p99Us],
    ], wispTable);
    await relayScenario(
      "wisp_connect_rate",
      { name: "connect_rate", secs: P.rateSecs, concurrency: 16 },
      [["conn_rate", (r) => r.rate]],
      wispTable,
    );
    const wispMemory: Report["memory"] = [];
    if (want("wisp_idle")) {
      await stopServers();
      for (const sys of wispCols) await measureOne(wispMemory, sys, P.idle, "VmRSS", rssKiB);
    }

    // Bandwidth limiter accuracy.
    const limiter: Report["limiter"] = [];
    if (want("limiter")) {
      await stopServers();
      for (const mbps of [1, 5, 10]) {
        let ls: Server;
        try {
          ls = await startWasmnet(["--max-bandwidth-mbps", String(mbps)]);
        } catch (e) {
          errors.push(`limiter ${mbps}: the server did not start: ${(e as Error).message}`);
          continue;
        }
        const bytes = Math.round((mbps * 1e6 / 8) * P.limSecs / 65536) * 65536 || 65536;
        const sys: Sys = {
          key: "lim",
          label: "lim",
          gen: "deno",
          server: "wasmnet",
          kind: "wasmnet",
          framing: "binary",
        };
        const own: Ctx = { ...ctx, ports: { ...ctx.ports, wasmnet: ls.port } };
        const row: Report["limiter"][number] = { mbps, upMbps: NaN, downMbps: NaN };
        for (const dir of ["up", "down"] as const) {
          try {
            const r = await drive(sys, { name: dir, bytes, streams: 1, warmup: 0 }, own);
            const measured = (r.rate ?? NaN) * 2 ** 20 * 8 / 1e6;
            if (dir === "up") row.upMbps = measured;
            else row.downMbps = measured;
          } catch (e) {
            errors.push(`limiter ${mbps} ${dir}: ${(e as Error).message}`);
          }
        }
        limiter.push(row);
        await stop(ls.proc);
      }
    }

    // Aggregate: median and spread of each cell, the first failure's message.
    const cellsOf = (t: Table): Report["relay"]["cells"] => {
      const out: Report["relay"]["cells"] = {};
      for (const metric of new Set([...t.samples.keys(), ...t.failures.keys()])) {
        const cells: Record<string, RelayCell> = {};
        for (const s of t.cols) {
          const xs = t.samples.get(metric)?.get(s.key) ?? [];
          const fails = t.failures.get(metric)?.get(s.key) ?? [];
          if (xs.length === 0 && fails.length === 0) continue;
          cells[s.key] = {
            ...statOf(xs),
            failed: fails.length,
            ...(fails.length ? { failure: fails[0] } : {}),
          };
        }
        out[metric] = cells;
      }
      return out;
    };
    const metrics = [...new Set([...samples.keys(), ...failures.keys()])];
    const rows: Row[] = legacy
      .filter((s) =>
        metrics.some((mt) => samples.get(mt)?.has(s.key) || failures.get(mt)?.has(s.key))
      )
      .map((s) => {
        const failed = metrics.flatMap((mt) => {
          const why = failures.get(mt)?.get(s.key)?.[0];
          return why === undefined || samples.get(mt)?.has(s.key) ? [] : [[mt, why]];
        });
        return {
          key: s.key,
          label: s.label,
          calibration: s.calibration ?? false,
          perSocketWs: s.perSocketWs ?? false,
          driver: s.gen === "deno" ? "deno" : "node",
          ...(s.runtime === "deno" || s.runtime === "bun" ? { runtime: s.runtime } : {}),
          values: Object.fromEntries(
            metrics.map((mt) => [mt, statOf(samples.get(mt)?.get(s.key) ?? [])]),
          ),
          ...(failed.length ? { failures: Object.fromEntries(failed) } : {}),
        };
      });
    m.loadEnd = loadavg();
    const report: Report = {
      date: new Date().toISOString(),
      revision: rev,
      mode: quick ? "quick" : "full",
      reps,
      otherReps: P.otherReps,
      params: P,
      machine: m,
      relay: {
        columns: relay.map((s) => ({
          key: s.key,
          label: s.label,
          perSocketWs: s.perSocketWs ?? false,
          ...(s.naive ? { naive: s.naive } : {}),
          ...(s.runtime ? { runtime: s.runtime } : {}),
          ...(s.calibration ? { calibration: true } : {}),
        })),
        cells: cellsOf(relayTable),
      },
      rows,
      wisp: {
        columns: wispCols.map((s) => ({
          key: s.key,
          label: s.label,
          perSocketWs: false,
          ...(s.runtime ? { runtime: s.runtime } : {}),
          ...(wispTable.protocols.has(s.key)
            ? { protocol: [...wispTable.protocols.get(s.key) ?? []].join(", ") }
            : {}),
        })),
        cells: cellsOf(wispTable),
        memory: wispMemory,
      },
      memory: mem,
      idleSessions,
      limiter,
      pool,
      ran: SCENARIOS.filter(want),
      skipped,
      failedToStart,
      errors,
      notes,
      secs: (Date.now() - t0) / 1000,
    };
    const md = renderMarkdown(report);
    Deno.mkdirSync(outDir, { recursive: true });
    Deno.writeTextFileSync(`${outDir}/latest.md`, md);
    Deno.writeTextFileSync(`${outDir}/latest.json`, JSON.stringify(report, null, 2) + "\n");
    Deno.writeTextFileSync(`${outDir}/chart.svg`, renderSvg(report));
    out(md);
    note(`wrote ${outDir}/latest.md, latest.json, chart.svg in ${report.secs.toFixed(0)} s`);
  } finally {
    await stopAll();
  }
}

if (import.meta.main) {
  const onSignal = (): void => {
    void stopAll().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    await main();
  } finally {
    await stopAll();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}
