/**
 * `deno task bench`: wasmnet against raw TCP, websockify and a Wisp server, side by side, in one
 * run on loopback. Starts every server and load generator as its own process, interleaves the
 * repetitions across systems, and writes `bench/results/latest.md`, `latest.json` and
 * `chart.svg`. Every process it starts is stopped before it exits (also on Ctrl-C).
 *
 * Usage: `deno run -A bench/run.ts [--quick] [--reps N] [--only scenario,scenario]`
 *
 * Peers: `websockify` from the Debian package (`apt-get install -y websockify`); the Wisp server
 * and client from npm (`@mercuryworkshop/wisp-js`, installed on first use into
 * `$WASMNET_BENCH_CACHE`, default `~/.cache/wasmnet-bench`) run under Node. A missing peer is
 * left out with the reason in the report.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { DriverConfig, ScenarioConfig, ScenarioResult, SystemConfig } from "./driver.ts";
import {
  type Machine,
  type Params,
  renderMarkdown,
  renderSvg,
  type Report,
  type Row,
} from "./report.ts";

const HERE = new URL(".", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;
const WISP_VERSION = "0.5.0";
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

function start(name: string, cmd: string, args: string[], env: Record<string, string> = {}): Proc {
  const child = new Deno.Command(cmd, {
    args,
    env,
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
// systems

interface Sys {
  key: string;
  label: string;
  driver: "deno" | "node";
  config: SystemConfig | { kind: "wisp"; url: string; host: string; port: number };
  /** Calibration rows (not a proxy). */
  calibration?: boolean;
  /** One WebSocket per socket (no multiplexing). */
  perSocketWs?: boolean;
}

interface Env {
  upstream: { tcp: number; ws: number };
  wispDir: string | undefined;
  skipped: Record<string, string>;
}

async function startWasmnet(extra: string[] = []): Promise<{ proc: Proc; port: number }> {
  const proc = start("wasmnet", Deno.execPath(), [
    "run",
    "-A",
    `${ROOT}mod.ts`,
    "-H",
    "127.0.0.1",
    "-p",
    "0",
    "--no-policy",
    "--log-level",
    "info",
    ...extra,
  ]);
  const m = await waitLine(proc, /listening addr=127\.0\.0\.1:(\d+)/);
  return { proc, port: Number(m[1]) };
}

async function startWebsockify(upstreamPort: number): Promise<{ proc: Proc; port: number }> {
  const port = freePort();
  const proc = start("websockify", "websockify", [
    `127.0.0.1:${port}`,
    `127.0.0.1:${upstreamPort}`,
  ]);
  await waitPort(port);
  return { proc, port };
}

async function startWisp(dir: string): Promise<{ proc: Proc; port: number }> {
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

async function ensureWisp(skipped: Record<string, string>): Promise<string | undefined> {
  if (!await which("node")) {
    skipped.wisp = "node is not installed";
    return undefined;
  }
  const cache = Deno.env.get("WASMNET_BENCH_CACHE") ??
    `${Deno.env.get("HOME")}/.cache/wasmnet-bench`;
  const dir = `${cache}/node_modules/@mercuryworkshop/wisp-js`;
  try {
    const pkg = JSON.parse(Deno.readTextFileSync(`${dir}/package.json`));
    if (pkg.version === WISP_VERSION) return dir;
  } catch {
    // not installed yet
  }
  note(`installing @mercuryworkshop/wisp-js@${WISP_VERSION} into ${cache}`);
  Deno.mkdirSync(cache, { recursive: true });
  const r = await new Deno.Command("npm", {
    args: [
      "install",
      "--prefix",
      cache,
      "--no-audit",
      "--no-fund",
      `@mercuryworkshop/wisp-js@${WISP_VERSION}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) {
    skipped.wisp = `npm install failed: ${dec.decode(r.stderr).trim().split("\n").pop()}`;
    return undefined;
  }
  return dir;
}

// ---------------------------------------------------------------------------------------------
// running scenarios

async function drive(
  sys: Sys,
  scenario: ScenarioConfig,
  wispDir?: string,
): Promise<ScenarioResult> {
  const cfg = JSON.stringify({ system: sys.config, scenario } as DriverConfig);
  const p = sys.driver === "deno"
    ? start(`driver ${sys.key}`, Deno.execPath(), ["run", "-A", `${HERE}driver.ts`, cfg])
    : start(`driver ${sys.key}`, "node", [`${HERE}driver_wisp.mjs`, cfg], {
      WISP_JS: wispDir ?? "",
    });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const status = await Promise.race([
      p.child.status,
      new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), 60_000)),
    ]);
    clearTimeout(timer);
    // drain remaining stdout lines
    for (;;) {
      const r = await Promise.race([
        p.lines.next(),
        new Promise<"tick">((res) => setTimeout(() => res("tick"), 200)),
      ]);
      if (r === "tick" || r.done) break;
    }
    if (status === "timeout") throw new Error("driver timed out after 60 s");
    const last = [...p.log].reverse().find((l) =>
      l.startsWith('{"result"') || l.startsWith('{"error"')
    );
    if (!last) throw new Error(`driver printed no result: ${p.log.slice(-5).join(" | ")}`);
    const parsed = JSON.parse(last) as { result?: ScenarioResult; error?: string };
    if (parsed.error) throw new Error(parsed.error.split("\n")[0]);
    if (!parsed.result) throw new Error("no result");
    return parsed.result;
  } finally {
    clearTimeout(timer);
    await stop(p);
  }
}

/** Runs the interactive idle-socket scenario; returns memory per socket (KiB). */
async function memory(
  sys: Sys,
  serverPid: number,
  sockets: number,
  measure: (pid: number) => number,
  wispDir?: string,
): Promise<{ base: number; loaded: number; perSocketKiB: number; openSecs: number }> {
  const cfg = JSON.stringify({ system: sys.config, scenario: { name: "idle", sockets } });
  const p = sys.driver === "deno"
    ? start(`idle ${sys.key}`, Deno.execPath(), ["run", "-A", `${HERE}driver.ts`, cfg])
    : start(`idle ${sys.key}`, "node", [`${HERE}driver_wisp.mjs`, cfg], { WISP_JS: wispDir ?? "" });
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
      perSocketKiB: (loaded - base) / sockets,
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

async function machine(): Promise<Machine> {
  const cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? "unknown";
  const node = await new Deno.Command("node", { args: ["--version"] }).output().then(
    (r) => dec.decode(r.stdout).trim(),
    () => "n/a",
  );
  return {
    nproc: navigator.hardwareConcurrency,
    cpu: model,
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    node,
    memGiB: Math.round(Deno.systemMemoryInfo().total / 2 ** 30),
  };
}

// ---------------------------------------------------------------------------------------------

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
  const only = values.only?.split(",");
  const want = (s: string): boolean => !only || only.includes(s);
  const outDir = values.out ?? `${HERE}results`;
  const heavy = (s: Sys): boolean => !(quick && s.calibration);
  const P: Params = quick
    ? {
      bytes: 64 * 2 ** 20,
      rtt: 2000,
      connLat: 200,
      rateSecs: 1,
      sessSecs: 1,
      idle: 500,
      limSecs: 1,
      otherReps: 2,
    }
    : {
      bytes: 256 * 2 ** 20,
      rtt: 10000,
      connLat: 1000,
      rateSecs: 2,
      sessSecs: 2,
      idle: 1000,
      limSecs: 3,
      otherReps: 3,
    };
  const t0 = Date.now();
  const skipped: Record<string, string> = {};
  const notes: string[] = [];
  const m = await machine();

  const upstreamProc = start("upstream", Deno.execPath(), ["run", "-A", `${HERE}upstream.ts`]);
  const um = await waitLine(upstreamProc, /^\{"tcp":(\d+),"ws":(\d+)\}/);
  const upstream = { tcp: Number(um[1]), ws: Number(um[2]) };
  const host = "127.0.0.1";

  const wn = await startWasmnet();
  const systems: Sys[] = [
    {
      key: "raw",
      label: "raw TCP",
      driver: "deno",
      config: { kind: "raw", host, port: upstream.tcp },
    },
    {
      key: "wasmnet-bin",
      label: "wasmnet binary",
      driver: "deno",
      config: {
        kind: "wasmnet",
        url: `ws://${host}:${wn.port}/`,
        framing: "binary",
        host,
        port: upstream.tcp,
      },
    },
    {
      key: "wasmnet-json",
      label: "wasmnet JSON",
      driver: "deno",
      config: {
        kind: "wasmnet",
        url: `ws://${host}:${wn.port}/`,
        framing: "json",
        host,
        port: upstream.tcp,
      },
    },
  ];
  let wsk: { proc: Proc; port: number } | undefined;
  if (await which("websockify")) {
    wsk = await startWebsockify(upstream.tcp);
    systems.push({
      key: "websockify",
      label: "websockify",
      driver: "deno",
      config: { kind: "ws1", url: `ws://${host}:${wsk.port}/` },
      perSocketWs: true,
    });
  } else skipped.websockify = "websockify is not installed (apt-get install -y websockify)";
  const wispDir = await ensureWisp(skipped);
  let wisp: { proc: Proc; port: number } | undefined;
  if (wispDir) {
    try {
      wisp = await startWisp(wispDir);
      systems.push({
        key: "wisp",
        label: "Wisp (wisp-js, Node)",
        driver: "node",
        config: { kind: "wisp", url: `ws://${host}:${wisp.port}/`, host, port: upstream.tcp },
      });
    } catch (e) {
      skipped.wisp = `the wisp-js server did not start: ${(e as Error).message}`;
    }
  }
  systems.push(
    {
      key: "ws-direct",
      label: "loadgen: WebSocket, no proxy",
      driver: "deno",
      config: { kind: "ws1", url: `ws://${host}:${upstream.ws}/` },
      calibration: true,
      perSocketWs: true,
    },
  );
  if (wispDir) {
    systems.push({
      key: "raw-node",
      label: "loadgen: raw TCP from Node",
      driver: "node",
      config: { kind: "raw", host, port: upstream.tcp },
      calibration: true,
    });
  }

  /**
   * Fresh proxy servers for every scenario, so one scenario's leftovers (tens of thousands of
   * closed sockets after the connect scenarios) cannot slow or stall the next one.
   */
  let live = { wn, wsk, wisp };
  const restartServers = async (): Promise<void> => {
    await Promise.all([live.wn.proc, live.wsk?.proc, live.wisp?.proc].map((p) => p && stop(p)));
    const nwn = await startWasmnet();
    const nwsk = live.wsk ? await startWebsockify(upstream.tcp) : undefined;
    const nwisp = live.wisp && wispDir ? await startWisp(wispDir) : undefined;
    live = { wn: nwn, wsk: nwsk, wisp: nwisp };
    for (const sys of systems) {
      const c = sys.config;
      if (sys.key.startsWith("wasmnet") && c.kind === "wasmnet" && !sys.key.endsWith("pool")) {
        c.url = `ws://${host}:${nwn.port}/`;
      } else if (sys.key === "websockify" && c.kind === "ws1" && nwsk) {
        c.url = `ws://${host}:${nwsk.port}/`;
      } else if (sys.key === "wisp" && c.kind === "wisp" && nwisp) {
        c.url = `ws://${host}:${nwisp.port}/`;
      }
    }
  };
  const samples = new Map<string, Map<string, number[]>>(); // metric → system → values
  const errors: string[] = [];
  const add = (metric: string, sys: string, v: number | undefined): void => {
    if (v === undefined || !Number.isFinite(v)) return;
    let bySys = samples.get(metric);
    if (!bySys) samples.set(metric, bySys = new Map());
    const list = bySys.get(sys) ?? [];
    list.push(v);
    bySys.set(sys, list);
  };
  const scenario = async (
    name: string,
    sc: ScenarioConfig,
    n: number,
    record: (sys: string, r: ScenarioResult) => void,
    filter: (s: Sys) => boolean = () => true,
  ): Promise<void> => {
    if (!want(name)) return;
    await restartServers();
    for (let rep = 0; rep < n; rep++) {
      for (const sys of systems.filter(filter)) {
        try {
          const r = await drive(sys, sc, wispDir);
          record(sys.key, r);
          if (r.errors) errors.push(`${name} ${sys.key}: ${r.errors} failed operations`);
        } catch (e) {
          errors.push(`${name} ${sys.key} rep ${rep + 1}: ${(e as Error).message}`);
        }
      }
      note(`${name}: rep ${rep + 1}/${n} done (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
    }
  };

  try {
    await scenario(
      "up",
      { name: "up", bytes: P.bytes, streams: 1 },
      reps,
      (s, r) => add("up1", s, r.rate),
    );
    await scenario(
      "down",
      { name: "down", bytes: P.bytes, streams: 1 },
      reps,
      (s, r) => add("down1", s, r.rate),
    );
    await scenario(
      "up10",
      { name: "up", bytes: P.bytes, streams: 10 },
      P.otherReps,
      (s, r) => add("up10", s, r.rate),
    );
    await scenario(
      "down10",
      { name: "down", bytes: P.bytes, streams: 10 },
      P.otherReps,
      (s, r) => add("down10", s, r.rate),
    );
    await scenario("rtt", { name: "rtt", size: 64, count: P.rtt }, reps, (s, r) => {
      add("rtt_p50", s, r.p50Us);
      add("rtt_p99", s, r.p99Us);
    });
    await scenario(
      "connect",
      { name: "connect_latency", count: P.connLat },
      P.otherReps,
      (s, r) => {
        add("conn_p50", s, r.p50Us);
        add("conn_p99", s, r.p99Us);
      },
      heavy,
    );
    await scenario(
      "connect_rate",
      { name: "connect_rate", secs: P.rateSecs, concurrency: 16 },
      P.otherReps,
      (s, r) => add("conn_rate", s, r.rate),
      heavy,
    );
    await scenario(
      "sessions",
      { name: "sessions", sessions: 200, size: SESSION_MSG_BYTES, secs: P.sessSecs },
      P.otherReps,
      (s, r) => {
        add("sess_rate", s, r.rate);
        add("sess_p99", s, r.p99Us);
      },
      // JSON: a 1000 B send is a ~1.4 KB text frame, which Deno's WebSocket client stalls on.
      (s) => heavy(s) && s.key !== "wasmnet-json",
    );

    // Pool: a second wasmnet server with the pool flags.
    let pool: Report["pool"] = { status: "not run" };
    if (want("pool")) {
      const ps = await startWasmnet(["--pool-per-key", "4", "--pool-idle-secs", "30"]);
      await new Promise((r) => setTimeout(r, 300));
      const unbuilt = ps.proc.log.some((l) => /pool.*not built yet/.test(l));
      if (unbuilt) {
        pool = {
          status: "n/a: the server logs that --pool-per-key/--pool-idle-secs are not built yet",
        };
      } else {
        const sys: Sys = {
          key: "wasmnet-bin-pool",
          label: "wasmnet binary + pool",
          driver: "deno",
          config: {
            kind: "wasmnet",
            url: `ws://${host}:${ps.port}/`,
            framing: "binary",
            host,
            port: upstream.tcp,
          },
        };
        systems.push(sys);
        for (let rep = 0; rep < P.otherReps; rep++) {
          try {
            const a = await drive(sys, { name: "connect_latency", count: P.connLat });
            add("conn_p50", sys.key, a.p50Us);
            add("conn_p99", sys.key, a.p99Us);
            const b = await drive(sys, { name: "connect_rate", secs: P.rateSecs, concurrency: 16 });
            add("conn_rate", sys.key, b.rate);
          } catch (e) {
            errors.push(`pool rep ${rep + 1}: ${(e as Error).message}`);
          }
        }
        pool = { status: "measured" };
      }
      await stop(ps.proc);
    }

    // Memory with idle proxied sockets: fresh servers, so earlier runs leave nothing behind.
    const mem: Report["memory"] = [];
    if (want("memory")) {
      const fresh = await startWasmnet();
      try {
        const sys = systems.find((s) => s.key === "wasmnet-bin");
        if (sys) {
          const r = await memory(
            {
              ...sys,
              config: {
                ...(sys.config as object),
                url: `ws://${host}:${fresh.port}/`,
              } as SystemConfig,
            },
            fresh.proc.pid,
            P.idle,
            rssKiB,
          );
          mem.push({ system: "wasmnet-bin", sockets: P.idle, how: "VmRSS", ...r });
        }
      } catch (e) {
        errors.push(`memory wasmnet: ${(e as Error).message}`);
      }
      await stop(fresh.proc);
      if (wispDir) {
        const fw = await startWisp(wispDir);
        try {
          const sys = systems.find((s) => s.key === "wisp");
          if (sys) {
            const r = await memory(
              {
                ...sys,
                config: {
                  ...(sys.config as object),
                  url: `ws://${host}:${fw.port}/`,
                } as Sys["config"],
              },
              fw.proc.pid,
              P.idle,
              rssKiB,
              wispDir,
            );
            mem.push({ system: "wisp", sockets: P.idle, how: "VmRSS", ...r });
          }
        } catch (e) {
          errors.push(`memory wisp: ${(e as Error).message}`);
        }
        await stop(fw.proc);
      }
      if (wsk) {
        const n = quick ? 100 : 300;
        const fk = await startWebsockify(upstream.tcp);
        try {
          const sys = systems.find((s) => s.key === "websockify");
          if (sys) {
            const r = await memory(
              { ...sys, config: { kind: "ws1", url: `ws://${host}:${fk.port}/` } },
              fk.proc.pid,
              n,
              treePssKiB,
            );
            mem.push({
              system: "websockify",
              sockets: n,
              how: "PSS of the process tree (forks per connection)",
              ...r,
            });
          }
        } catch (e) {
          errors.push(`memory websockify: ${(e as Error).message}`);
        }
        await stop(fk.proc);
      }
    }

    // Bandwidth limiter accuracy.
    const limiter: Report["limiter"] = [];
    if (want("limiter")) {
      for (const mbps of [1, 5, 10]) {
        const ls = await startWasmnet(["--max-bandwidth-mbps", String(mbps)]);
        await new Promise((r) => setTimeout(r, 300));
        const enforced = !ls.proc.log.some((l) => /max-bandwidth-mbps.*not built yet/.test(l));
        const bytes = Math.round((mbps * 1e6 / 8) * P.limSecs / 65536) * 65536 || 65536;
        const sys: SystemConfig = {
          kind: "wasmnet",
          url: `ws://${host}:${ls.port}/`,
          framing: "binary",
          host,
          port: upstream.tcp,
        };
        const row: Report["limiter"][number] = { mbps, enforced, upMbps: NaN, downMbps: NaN };
        for (const dir of ["up", "down"] as const) {
          try {
            const r = await drive(
              { key: "lim", label: "lim", driver: "deno", config: sys },
              { name: dir, bytes, streams: 1, warmup: 0 },
            );
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

    // Aggregate.
    const metrics = [...samples.keys()];
    const rows: Row[] = systems.map((s) => ({
      key: s.key,
      label: s.label,
      calibration: s.calibration ?? false,
      perSocketWs: s.perSocketWs ?? false,
      driver: s.driver,
      values: Object.fromEntries(metrics.map((mt) => {
        const xs = samples.get(mt)?.get(s.key) ?? [];
        return [mt, {
          median: median(xs),
          min: Math.min(...xs),
          max: Math.max(...xs),
          n: xs.length,
        }];
      })),
    }));
    const report: Report = {
      date: new Date().toISOString(),
      mode: quick ? "quick" : "full",
      reps,
      otherReps: P.otherReps,
      params: P,
      machine: m,
      rows,
      memory: mem,
      limiter,
      pool,
      skipped,
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
