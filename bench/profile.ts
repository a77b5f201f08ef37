/**
 * `deno task bench:profile`: CPU-profiles the wasmnet server process (`deno run --cpu-prof`, with
 * the permissions users give it, or `bun --cpu-prof run mod.ts` with `--runtime bun`) while a load
 * generator drives one scenario, then prints the hottest functions by self time and the wasmnet
 * functions by inclusive time, read from the `.cpuprofile` JSON.
 *
 * Usage: `deno run -A bench/profile.ts [down|up|up_free|rtt|connect_rate|sessions]
 * [binary|json] [--mib N] [--gen node|deno] [--runtime deno|bun]` (Bun: `$WASMNET_BUN`, else
 * `.tools/bun/node_modules/.bin/bun` from `bin/_bun.sh`).
 *
 * The load generator is the bench's Node one (`loadgen_node.mjs`, npm `ws` from
 * `$WASMNET_BENCH_CACHE`, installed by `deno task bench`) when it is there, else (and always for
 * `sessions`) the Deno one (`driver.ts`).
 *
 * @module
 */
import type { ScenarioConfig } from "./driver.ts";

const HERE = new URL(".", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;
const dec = new TextDecoder();
const enc = new TextEncoder();

function out(line: string): void {
  Deno.stdout.writeSync(enc.encode(line + "\n"));
}

interface CpuNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: CpuNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

async function firstLine(
  child: Deno.ChildProcess,
  stream: "stdout" | "stderr",
  re: RegExp,
): Promise<RegExpExecArray> {
  let buf = "";
  const reader = child[stream].getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`process ended before ${re}: ${buf}`);
    buf += dec.decode(value);
    const m = re.exec(buf);
    if (m) {
      void (async () => {
        while (!(await reader.read()).done);
      })().catch(() => {});
      return m;
    }
  }
}

/** Self and inclusive milliseconds per function of a `.cpuprofile`. */
export function summarise(p: CpuProfile): {
  totalMs: number;
  self: Map<string, number>;
  inclusive: Map<string, number>;
} {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfMs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i] ?? 0;
    selfMs.set(id, (selfMs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  }
  const name = (n: CpuNode): string => {
    const f = n.callFrame;
    const file = f.url.replace(/^file:\/\/.*\/main\//, "").replace(/^ext:/, "ext:");
    return `${f.functionName || "(anonymous)"} ${file ? `${file}:${f.lineNumber + 1}` : ""}`.trim();
  };
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const walk = (id: number, onStack: Set<string>): number => {
    const n = byId.get(id);
    if (!n) return 0;
    const nm = name(n);
    let total = selfMs.get(id) ?? 0;
    self.set(nm, (self.get(nm) ?? 0) + total);
    const fresh = !onStack.has(nm);
    if (fresh) onStack.add(nm);
    for (const c of n.children ?? []) total += walk(c, onStack);
    if (fresh) {
      onStack.delete(nm);
      inclusive.set(nm, (inclusive.get(nm) ?? 0) + total);
    }
    return total;
  };
  const root = p.nodes[0];
  const totalMs = root ? walk(root.id, new Set()) : 0;
  return { totalMs, self, inclusive };
}

async function main(): Promise<void> {
  const scenarioName = Deno.args[0] ?? "down";
  const framing = (Deno.args[1] ?? "binary") as "binary" | "json";
  const mibArg = Deno.args.indexOf("--mib");
  const mib = mibArg >= 0 ? Number(Deno.args[mibArg + 1]) : 256;
  const genArg = Deno.args.indexOf("--gen");
  const modules = `${
    Deno.env.get("WASMNET_BENCH_CACHE") ?? `${Deno.env.get("HOME")}/.cache/wasmnet-bench`
  }/node_modules`;
  let hasNodeWs = false;
  try {
    Deno.statSync(`${modules}/ws/package.json`);
    hasNodeWs = true;
  } catch {
    // not installed: the Deno generator
  }
  const gen = scenarioName === "sessions"
    ? "deno"
    : genArg >= 0
    ? Deno.args[genArg + 1]
    : hasNodeWs
    ? "node"
    : "deno";
  if (scenarioName === "up_free" && gen !== "node") {
    throw new Error(
      "up_free needs the Node load generator (run deno task bench once to install it)",
    );
  }
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-prof-" });
  const upstream = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${HERE}upstream.ts`],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const runtimeArg = Deno.args.indexOf("--runtime");
  const runtime = runtimeArg >= 0 ? Deno.args[runtimeArg + 1] : "deno";
  const serverArgs = [`${ROOT}mod.ts`, "-H", "127.0.0.1", "-p", "0", "--no-policy"];
  const server = runtime === "bun"
    ? new Deno.Command(
      Deno.env.get("WASMNET_BUN") ?? `${ROOT}.tools/bun/node_modules/.bin/bun`,
      {
        args: ["--cpu-prof", `--cpu-prof-dir=${dir}`, "run", ...serverArgs],
        stdout: "piped",
        stderr: "piped",
      },
    ).spawn()
    : new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--allow-net",
        "--allow-read",
        // As bin/wasmnet: ws then unmasks frames with npm bufferutil's native code.
        "--allow-env=WASMNET_LOG,WS_NO_BUFFER_UTIL,PREBUILDS_ONLY,LIBC,ARM_VERSION,ELECTRON_RUN_AS_NODE,BUFFERUTIL_PREBUILD,npm_config_arch,npm_config_platform",
        "--allow-ffi",
        "--cpu-prof",
        `--cpu-prof-dir=${dir}`,
        ...serverArgs,
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  try {
    void server.stderr.pipeTo(new WritableStream()).catch(() => {});
    void upstream.stderr.pipeTo(new WritableStream()).catch(() => {});
    const um = await firstLine(upstream, "stdout", /\{"tcp":(\d+),"ws":(\d+)\}/);
    const sm = await firstLine(server, "stdout", /listening addr=127\.0\.0\.1:(\d+)/);
    const scenario: ScenarioConfig | { name: "up"; bytes: number; streams: 1; free: true } =
      scenarioName === "rtt"
        ? { name: "rtt", size: 64, count: 20000 }
        : scenarioName === "sessions"
        ? { name: "sessions", sessions: 200, size: 1000, secs: 5 }
        : scenarioName === "connect_rate"
        ? { name: "connect_rate", secs: 5, concurrency: 16 }
        : scenarioName === "up_free"
        ? { name: "up", bytes: mib * 2 ** 20, streams: 1, free: true }
        : { name: scenarioName as "up" | "down", bytes: mib * 2 ** 20, streams: 1 };
    const cfg = {
      system: {
        kind: "wasmnet",
        url: `ws://127.0.0.1:${sm[1]}/`,
        framing,
        host: "127.0.0.1",
        port: Number(um[1]),
      },
      scenario,
    };
    const r = gen === "node"
      ? await new Deno.Command("node", {
        args: [`${HERE}loadgen_node.mjs`, JSON.stringify(cfg)],
        env: { WASMNET_BENCH_NODE_MODULES: modules },
        stdout: "piped",
      }).output()
      : await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${HERE}driver.ts`, JSON.stringify(cfg)],
        stdout: "piped",
      }).output();
    out(`load generator (${gen}): ${dec.decode(r.stdout).trim()}`);
  } finally {
    server.kill("SIGINT");
    await server.status;
    upstream.kill("SIGTERM");
    await upstream.status;
  }
  const file = [...Deno.readDirSync(dir)].find((e) => e.name.endsWith(".cpuprofile"));
  if (!file) throw new Error(`no .cpuprofile in ${dir}`);
  const path = `${dir}/${file.name}`;
  const prof = JSON.parse(Deno.readTextFileSync(path)) as CpuProfile;
  const { totalMs, self, inclusive } = summarise(prof);
  out(`profile: ${path} (${(totalMs / 1000).toFixed(2)} s sampled)`);
  const top = (
    m: Map<string, number>,
    n: number,
    filter: (k: string) => boolean = () => true,
  ): void => {
    for (
      const [k, v] of [...m].filter(([k]) => filter(k)).sort((a, b) => b[1] - a[1]).slice(0, n)
    ) {
      out(`  ${(100 * v / totalMs).toFixed(1).padStart(5)}%  ${v.toFixed(0).padStart(6)} ms  ${k}`);
    }
  };
  out("self time:");
  top(self, 25);
  out("inclusive time, wasmnet (src/) functions:");
  top(inclusive, 20, (k) => k.includes("src/"));
}

if (import.meta.main) await main();
