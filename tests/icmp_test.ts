/**
 * ICMP echo as a transport capability (`transport/icmp/`), for real, by each mechanism this
 * machine can offer, on Deno and on Bun:
 *
 * - `dgram` (unprivileged datagram ICMP sockets): inside a network namespace the test creates
 *   (`unshare -n` as root), where it brings `lo` up and sets `net.ipv4.ping_group_range` for that
 *   namespace only (never the host's), a small script opens the transport and pings 127.0.0.1 and
 *   ::1 (and 203.0.113.1, routed into `lo` and dropped, for the timeout); also in this process
 *   when the host's own range already admits our group;
 * - `raw` (raw sockets, as root): in this process and in a Bun child;
 * - `ping` (the system `ping`, Debian `iputils-ping`): in this process and under Bun.
 *
 * A mechanism that cannot exist here is skipped with a printed reason, never silently.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { IcmpMechanism, IcmpSocket } from "../src/transport/mod.ts";
import { denoIcmp, denoTransport } from "../src/transport/deno/mod.ts";
import { bunPath, ROOT } from "./helpers/target.ts";
import { setLogLevel } from "../src/log/mod.ts";

setLogLevel((Deno.env.get("WASMNET_LOG") as "debug" | undefined) ?? "warn");

const te = new TextEncoder();
const td = new TextDecoder();

/** Prints why a case does not run here (the issue: skipped with a printed reason, never silently). */
function skip(what: string, why: string): void {
  // deno-lint-ignore no-console -- a mechanism that cannot exist here is reported
  console.log(`skipped ${what}: ${why}`);
}

const isRoot = Deno.uid() === 0;

/** The Bun to run children with, or why there is none. */
function bun(): string | { why: string } {
  try {
    return bunPath();
  } catch (e) {
    return { why: (e as Error).message };
  }
}

/** Checks one echo round trip on `socket` to `ip`, the reply read after it has arrived. */
async function echoOnce(socket: IcmpSocket, family: 4 | 6, ip: string): Promise<void> {
  const data = te.encode(`wasmnet icmp ${family} ✓`);
  await socket.send(ip, 4321, data);
  // The reply of a loopback echo arrives in microseconds: it must still be there once we ask
  // (the socket stays open between send and receive).
  await new Promise((r) => setTimeout(r, 30));
  const reply = await socket.receive(2000);
  assert.ok(reply, `${socket.mechanism} ${ip}: no reply`);
  assert.equal(reply.source, ip);
  assert.equal(reply.type, family === 4 ? 0 : 129, "an echo reply, never the request");
  assert.equal(reply.code, 0);
  assert.equal(reply.seq, 4321);
  assert.equal(td.decode(reply.data), `wasmnet icmp ${family} ✓`);
  assert.ok(reply.rttMs >= 0 && reply.rttMs < 2000, `rtt ${reply.rttMs}`);
  // Nothing else: the request itself (seen by raw sockets on loopback) and other traffic are not
  // replies, and a reply is returned once.
  assert.equal(await socket.receive(100), undefined);
  // Several in flight, answered by sequence number.
  for (const seq of [1, 2, 3]) await socket.send(ip, seq, te.encode(`n${seq}`));
  const got: [number, string][] = [];
  for (let i = 0; i < 3; i++) {
    const r = await socket.receive(2000);
    assert.ok(r, `reply ${i + 1} of 3`);
    got.push([r.seq, td.decode(r.data)]);
  }
  got.sort((a, b) => a[0] - b[0]);
  assert.deepEqual(got, [[1, "n1"], [2, "n2"], [3, "n3"]]);
}

/** Opens `mechanism` for both families in this process and checks echo, close and errors. */
async function inProcess(mechanism: IcmpMechanism): Promise<void> {
  for (const [family, ip] of [[4, "127.0.0.1"], [6, "::1"]] as const) {
    const socket = await denoIcmp.open(family, mechanism);
    try {
      assert.equal(socket.mechanism, mechanism);
      await echoOnce(socket, family, ip);
      await assert.rejects(socket.send(family === 4 ? "::1" : "127.0.0.1", 1, new Uint8Array()));
      await assert.rejects(socket.send(ip, 70000, new Uint8Array()), RangeError);
      // close() ends a pending receive with undefined, at once (TEST-NET-3 answers nobody).
      if (family === 4) {
        const sent = await socket.send("203.0.113.1", 9, new Uint8Array()).then(() => "", String);
        if (sent === "") {
          const pending = socket.receive(5000);
          await new Promise((r) => setTimeout(r, 50));
          const t0 = performance.now();
          socket.close();
          assert.equal(await pending, undefined);
          assert.ok(performance.now() - t0 < 1000, "close ends the wait");
        } else skip(`close during a wait (${mechanism})`, `no route to 203.0.113.1: ${sent}`);
      }
    } finally {
      socket.close();
    }
    await assert.rejects(socket.receive(10), (e: Error) => e.name === "BadResource");
    await assert.rejects(
      socket.send(ip, 1, new Uint8Array()),
      (e: Error) => e.name === "BadResource",
    );
  }
}

Deno.test("icmp raw: echo to 127.0.0.1 and ::1 over raw sockets in this process (root)", async () => {
  if (!isRoot) return skip("icmp raw (Deno)", "not root: raw sockets need CAP_NET_RAW");
  const opened = await denoIcmp.open(4, "raw").then((sock) => {
    sock.close();
    return "";
  }, (e: Error) => e.message);
  if (opened !== "") return skip("icmp raw (Deno)", `root without raw sockets: ${opened}`);
  await inProcess("raw");
});

Deno.test("icmp ping binary: echo to 127.0.0.1 and ::1 by the system ping", async () => {
  const support = await denoIcmp.open(4, "ping").then((s) => {
    s.close();
    return "";
  }, (e: Error) => e.message);
  if (support !== "") return skip("icmp ping (Deno)", support);
  await inProcess("ping");
});

Deno.test("icmp dgram: in this process when the host's ping_group_range admits us", async () => {
  // (Deno reads /proc/sys only with --allow-all.)
  const cat = await new Deno.Command("cat", { args: ["/proc/sys/net/ipv4/ping_group_range"] })
    .output();
  const range = td.decode(cat.stdout).trim().replace(/\s+/, " ");
  const opened = await denoIcmp.open(4, "dgram").then((s) => {
    s.close();
    return "";
  }, (e: Error) => e.message);
  if (opened !== "") {
    return skip(
      "icmp dgram on the host (the namespace test covers it)",
      `${opened}; host net.ipv4.ping_group_range is "${range}"`,
    );
  }
  await inProcess("dgram");
});

Deno.test("icmp: detection names the best mechanism, and openIcmp uses it", async () => {
  const v4 = denoIcmp.detect(4);
  if (v4.mechanism === undefined) {
    return skip("icmp detection echo", `no mechanism: ${v4.reasons.join(", ")}`);
  }
  if (isRoot && v4.mechanism !== "dgram") assert.equal(v4.mechanism, "raw");
  const transport = denoTransport();
  assert.ok(transport.openIcmp);
  const socket = await transport.openIcmp(4);
  try {
    assert.equal(socket.mechanism, v4.mechanism);
    await echoOnce(socket, 4, "127.0.0.1");
  } finally {
    socket.close();
  }
});

// --- children: a namespace for dgram, Bun for its FFI, Deno without permissions -------------------

/** A script, for Deno and Bun alike, that pings with one provider and prints JSON. */
const PROBE = `
const [runtime, mechanism, timeoutTarget] = globalThis.Deno?.args ?? process.argv.slice(2);
const { setLogLevel } = await import(${JSON.stringify(join(ROOT, "src/log/mod.ts"))});
setLogLevel("info");
const provider = runtime === "bun"
  ? (await import(${JSON.stringify(join(ROOT, "src/transport/bun/icmp.ts"))})).bunIcmp
  : (await import(${JSON.stringify(join(ROOT, "src/transport/deno/icmp.ts"))})).denoIcmp;
const transport = runtime === "bun"
  ? (await import(${JSON.stringify(join(ROOT, "src/transport/bun/mod.ts"))})).bunTransport()
  : (await import(${JSON.stringify(join(ROOT, "src/transport/deno/mod.ts"))})).denoTransport();
transport.announceIcmp?.(); // what the server does once it listens
const te = new TextEncoder();
const out = { detect4: provider.detect(4), detect6: provider.detect(6), results: [] };
for (const [family, ip] of [[4, "127.0.0.1"], [6, "::1"]]) {
  try {
    const s = mechanism === "best" ? await transport.openIcmp(family) : await provider.open(family, mechanism);
    await s.send(ip, 77, te.encode("probe " + family));
    await new Promise((r) => setTimeout(r, 30));
    const r = await s.receive(2000);
    const extra = await s.receive(100);
    let timeout;
    if (family === 4 && timeoutTarget) {
      await s.send(timeoutTarget, 78, new Uint8Array());
      const t0 = performance.now();
      const late = await s.receive(250);
      timeout = { reply: late === undefined, ms: performance.now() - t0 };
    }
    s.close();
    out.results.push({ family, mechanism: s.mechanism, source: r?.source, type: r?.type, seq: r?.seq,
      data: r ? new TextDecoder().decode(r.data) : undefined, rtt: r?.rttMs, extra: extra ?? null, timeout });
  } catch (e) {
    out.results.push({ family, error: String(e?.message ?? e) });
  }
}
console.log("RESULT " + JSON.stringify(out));
`;

interface ProbeResult {
  detect4: { mechanism?: string; reasons: string[] };
  detect6: { mechanism?: string; reasons: string[] };
  results: {
    family: 4 | 6;
    mechanism?: string;
    source?: string;
    type?: number;
    seq?: number;
    data?: string;
    rtt?: number;
    extra?: unknown;
    timeout?: { reply: boolean; ms: number };
    error?: string;
  }[];
}

/** Runs the probe with `argv` (the command, optionally inside `unshare -n`); returns its output. */
async function runProbe(
  argv: readonly string[],
): Promise<{ result: ProbeResult; stdout: string; stderr: string }> {
  const out = await new Deno.Command(argv[0] ?? "", {
    args: argv.slice(1),
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = td.decode(out.stdout);
  const stderr = td.decode(out.stderr);
  const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
  if (!line) throw new Error(`probe failed (${out.code}):\n${stdout}\n${stderr}`);
  return { result: JSON.parse(line.slice(7)) as ProbeResult, stdout, stderr };
}

async function probeFile(): Promise<{ file: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-icmp-" });
  const file = join(dir, "probe.mjs");
  await Deno.writeTextFile(file, PROBE);
  return {
    file,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** `cmd` inside a fresh network namespace with lo up, ping sockets for every group, and
 * 203.0.113.0/24 routed into lo (dropped there: a ping that times out). */
function inNamespace(cmd: readonly string[]): string[] {
  const quoted = cmd.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  return [
    "unshare",
    "-n",
    "sh",
    "-c",
    "ip link set lo up && sysctl -q -w net.ipv4.ping_group_range='0 2147483647' && " +
    `ip route add 203.0.113.0/24 dev lo && exec ${quoted}`,
  ];
}

function checkEcho(result: ProbeResult, mechanism: string, what: string): void {
  assert.equal(result.results.length, 2, what);
  for (const r of result.results) {
    assert.equal(r.error, undefined, `${what} IPv${r.family}: ${r.error}`);
    assert.equal(r.mechanism, mechanism, what);
    assert.equal(r.source, r.family === 4 ? "127.0.0.1" : "::1", what);
    assert.equal(r.type, r.family === 4 ? 0 : 129, what);
    assert.equal(r.seq, 77, what);
    assert.equal(r.data, `probe ${r.family}`, what);
    assert.ok(typeof r.rtt === "number" && r.rtt >= 0, what);
    assert.equal(r.extra, null, `${what}: a second receive returns nothing`);
  }
}

const DENO_PROBE = (file: string, mechanism: string, timeoutTarget = ""): string[] => [
  Deno.execPath(),
  "run",
  "--config",
  join(ROOT, "deno.json"),
  "--allow-ffi",
  "--allow-read",
  "--allow-run=ping",
  file,
  "deno",
  mechanism,
  timeoutTarget,
];

/** Why no network namespace can be made here (undefined: one can). */
async function noNamespace(): Promise<string | undefined> {
  if (!isRoot) return "creating a network namespace needs root (unshare -n)";
  try {
    const out = await new Deno.Command("unshare", {
      args: ["-n", "sh", "-c", "command -v ip && command -v sysctl && ip link set lo up"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (out.success) return undefined;
    return `unshare -n with ip and sysctl failed: ${
      td.decode(out.stderr).trim() || "ip or sysctl missing"
    }`;
  } catch (e) {
    return `no unshare: ${(e as Error).message}`;
  }
}

Deno.test("icmp dgram: echo and timeout inside a network namespace (Deno, datagram sockets)", async () => {
  const noNs = await noNamespace();
  if (noNs !== undefined) return skip("icmp dgram in a namespace (Deno)", noNs);
  await using probe = await probeFile();
  const { result, stdout } = await runProbe(
    inNamespace(DENO_PROBE(probe.file, "best", "203.0.113.1")),
  );
  assert.equal(result.detect4.mechanism, "dgram");
  assert.equal(result.detect6.mechanism, "dgram");
  assert.match(stdout, /transport: icmp mechanism=dgram\b/);
  checkEcho(result, "dgram", "deno dgram");
  const t = result.results[0]?.timeout;
  assert.ok(t && t.reply && t.ms >= 240, `timeout: ${JSON.stringify(t)}`);
});

Deno.test("icmp dgram and raw under Bun (bun:ffi): namespace and host", async () => {
  const b = bun();
  if (typeof b !== "string") return skip("icmp under Bun", b.why);
  await using probe = await probeFile();
  const argv = (
    mechanism: string,
    target = "",
  ): string[] => [b, "run", probe.file, "bun", mechanism, target];
  if (!isRoot) {
    const { result } = await runProbe(argv("best"));
    if (result.detect4.mechanism === undefined) {
      return skip("icmp under Bun", result.detect4.reasons.join(", "));
    }
    return checkEcho(result, result.detect4.mechanism, "bun best");
  }
  const noNs = await noNamespace();
  if (noNs !== undefined) skip("icmp dgram in a namespace (Bun)", noNs);
  else {
    const ns = await runProbe(inNamespace(argv("best", "203.0.113.1")));
    assert.match(ns.stdout, /transport: icmp mechanism=dgram\b/);
    checkEcho(ns.result, "dgram", "bun dgram");
    const t = ns.result.results[0]?.timeout;
    assert.ok(t && t.reply && t.ms >= 240, `timeout: ${JSON.stringify(t)}`);
  }
  checkEcho((await runProbe(argv("raw"))).result, "raw", "bun raw");
  const ping = await runProbe(argv("ping"));
  if (ping.result.results[0]?.error?.startsWith("no ping binary")) {
    skip("icmp ping under Bun", ping.result.results[0].error);
  } else checkEcho(ping.result, "ping", "bun ping");
});

Deno.test("icmp: without --allow-ffi and --allow-run, ICMP is unavailable and says why, once", async () => {
  await using probe = await probeFile();
  const { result, stdout } = await runProbe([
    Deno.execPath(),
    "run",
    "--config",
    join(ROOT, "deno.json"),
    "--allow-read",
    probe.file,
    "deno",
    "best",
  ]);
  assert.equal(result.detect4.mechanism, undefined);
  assert.equal(stdout.split("icmp mechanism=").length - 1, 1, stdout);
  assert.match(stdout, /icmp mechanism=none reason=".*no FFI permission \(--allow-ffi\)/);
  for (const r of result.results) {
    assert.match(r.error ?? "", /^ICMP unavailable: no datagram ICMP sockets \(no FFI permission/);
  }
});
