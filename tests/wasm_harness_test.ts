/**
 * The harness host end to end: each host function from a WAT plugin and an AssemblyScript plugin
 * against loopback TCP/UDP servers through the real Deno transport; policy denials (every
 * spelling) return 0 and are logged with the rule; max_connections and bandwidth per instance;
 * traps, endless loops and unbounded allocation are stopped while another plugin keeps working;
 * ICMP through a fake socket and through the transport's real capability; the example plugins
 * (HTTP GET, DNS query, ping); the `wasmnet plugin` command's exit codes and stdout.
 */
import { launcher } from "./helpers/launcher.ts";
import assert from "node:assert/strict";
import { Policy } from "../src/policy/mod.ts";
import type { LogFields, Logger } from "../src/log/mod.ts";
import type { IcmpEchoReply, IcmpSocket, Transport } from "../src/transport/mod.ts";
import {
  createHarnessNet,
  type HarnessHostOptions,
  loadHarnessPlugin,
  PluginError,
} from "../src/wasm/mod.ts";
import {
  startHttpServer,
  startTcpEcho,
  startTcpSink,
  startUdpEcho,
} from "./helpers/echo_servers.ts";
import { startDnsServer } from "./helpers/dns_server.ts";
import { loopbackPolicy, testTransport } from "./helpers/server.ts";
import { plugin, PROBES } from "./helpers/plugins.ts";
import { compileWat } from "../examples/plugins/build.ts";

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

/** The PluginError `promise` rejects with (its message containing `includes`). */
async function rejection(promise: Promise<unknown>, includes = ""): Promise<PluginError> {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof PluginError, `expected a PluginError, got ${e}`);
    assert.ok(e.message.includes(includes), e.message);
    return e;
  }
  throw new Error("expected a rejection");
}

/** A logger that keeps every line (level, message, fields). */
function recordingLogger(): Logger & {
  lines: { level: string; msg: string; fields: LogFields }[];
} {
  const lines: { level: string; msg: string; fields: LogFields }[] = [];
  const at = (level: string) => (msg: string, fields: LogFields = {}): void => {
    lines.push({ level, msg, fields });
  };
  return {
    lines,
    trace: at("trace"),
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    enabled: () => true,
  };
}

function host(overrides: Partial<HarnessHostOptions> = {}): HarnessHostOptions {
  return {
    transport: testTransport(),
    policy: loopbackPolicy(),
    logger: recordingLogger(),
    recvWaitMs: 2_000,
    timeoutMs: 20_000,
    ...overrides,
  };
}

for (const name of PROBES) {
  Deno.test(`${name}: tcp_connect/send/recv/close echo over IPv4 and IPv6`, async () => {
    await using echo4 = await startTcpEcho();
    await using echo6 = await startTcpEcho({ hostname: "::1" });
    await using p = await loadHarnessPlugin(await plugin(name), host());
    assert.deepEqual(text(await p.call("tcp", `127.0.0.1:${echo4.port}\nhello tcp`)), "hello tcp");
    assert.deepEqual(text(await p.call("tcp", `[::1]:${echo6.port}\nhello v6`)), "hello v6");
    assert.deepEqual(echo4.accepted, 1);
    assert.deepEqual(echo6.accepted, 1);
  });

  Deno.test(`${name}: udp_connect/send/recv/close echo`, async () => {
    await using echo = await startUdpEcho();
    await using p = await loadHarnessPlugin(await plugin(name), host());
    assert.deepEqual(text(await p.call("udp", `127.0.0.1:${echo.port}\nhello udp`)), "hello udp");
    assert.deepEqual(echo.datagrams, 1);
  });

  Deno.test(`${name}: tcp_recv returns 0 after the wait when the peer says nothing`, async () => {
    await using sink = await startTcpSink();
    await using p = await loadHarnessPlugin(await plugin(name), host({ recvWaitMs: 300 }));
    const t0 = performance.now();
    assert.deepEqual(text(await p.call("tcp", `127.0.0.1:${sink.port}\nquiet`)), "tcp_recv=0");
    assert.ok(performance.now() - t0 >= 290, "recv waited");
  });

  Deno.test(`${name}: a refused connect returns 0`, async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = listener.addr.port;
    listener.close();
    await using p = await loadHarnessPlugin(await plugin(name), host());
    assert.deepEqual(text(await p.call("tcp", `127.0.0.1:${port}\nx`)), "tcp_connect=0");
  });

  Deno.test(`${name}: every spelling of a denied address returns 0, logged with the rule`, async () => {
    await using echo = await startTcpEcho();
    await using udp = await startUdpEcho();
    const logger = recordingLogger();
    await using p = await loadHarnessPlugin(
      await plugin(name),
      host({ policy: Policy.defaults(), logger }),
    );
    const spellings = [
      "127.0.0.1",
      "127.1",
      "0x7f.0.0.1",
      "0x7f000001",
      "2130706433",
      "0177.0.0.1",
      "[::ffff:127.0.0.1]",
      "[::ffff:7f00:1]",
      "[::1]",
      "localhost",
      "LOCALHOST.",
    ];
    for (const host of spellings) {
      assert.deepEqual(text(await p.call("tcp", `${host}:${echo.port}\nx`)), "tcp_connect=0", host);
      assert.deepEqual(text(await p.call("udp", `${host}:${udp.port}\nx`)), "udp_connect=0", host);
    }
    assert.deepEqual(echo.accepted, 0);
    assert.deepEqual(udp.datagrams, 0);
    const denied = logger.lines.filter((l) => l.msg === "socket denied");
    assert.deepEqual(denied.length, spellings.length * 2);
    for (const line of denied) {
      assert.ok(typeof line.fields.rule === "string" && line.fields.rule !== "");
    }
    assert.ok(denied.some((l) => l.fields.rule === "127.0.0.0/8"));
  });

  Deno.test(`${name}: icmp_send/icmp_recv through a fake ICMP socket`, async () => {
    const fake = fakeIcmp();
    await using p = await loadHarnessPlugin(
      await plugin(name),
      host({ transport: withIcmp(testTransport(), fake.open) }),
    );
    const reply = JSON.parse(text(await p.call("icmp", "127.0.0.1\nping!")));
    assert.deepEqual(reply, {
      source: "127.0.0.1",
      type: 0,
      code: 0,
      id: 4242,
      seq: 7,
      data: btoa("ping!"),
    });
    assert.deepEqual(fake.sent, [{ ip: "127.0.0.1", seq: 7, data: "ping!" }]);
    assert.deepEqual(fake.opened, 1, "one socket kept open");
  });

  Deno.test(`${name}: icmp_send to a denied target returns 0 and sends nothing`, async () => {
    const fake = fakeIcmp();
    await using p = await loadHarnessPlugin(
      await plugin(name),
      host({ transport: withIcmp(testTransport(), fake.open), policy: Policy.defaults() }),
    );
    for (
      const target of ["127.0.0.1", "127.1", "0x7f000001", "::ffff:127.0.0.1", "::1", "10.0.0.1"]
    ) {
      assert.deepEqual(text(await p.call("icmp", `${target}\nx`)), "icmp_send=0", target);
    }
    assert.deepEqual(fake.sent, []);
  });
}

Deno.test("icmp_recv returns 0 on timeout", async () => {
  const fake = fakeIcmp({ silent: true });
  await using p = await loadHarnessPlugin(
    await plugin("probe.wat"),
    host({ transport: withIcmp(testTransport(), fake.open) }),
  );
  assert.deepEqual(text(await p.call("icmp", "127.0.0.1\nx")), "icmp_recv=0");
});

Deno.test("ICMP echo to 127.0.0.1 through the transport's real ICMP capability", async (t) => {
  const transport = testTransport();
  if (transport.openIcmp === undefined) {
    // deno-lint-ignore no-console
    console.log("skipped: this transport offers no ICMP");
    return;
  }
  try {
    (await transport.openIcmp(4)).close();
  } catch (e) {
    // deno-lint-ignore no-console
    console.log(`skipped: no ICMP mechanism here: ${(e as Error).message}`);
    return;
  }
  for (const name of PROBES) {
    await t.step(name, async () => {
      await using p = await loadHarnessPlugin(await plugin(name), host({ transport }));
      const reply = JSON.parse(text(await p.call("icmp", "127.0.0.1\nreal ping")));
      assert.deepEqual(reply.source, "127.0.0.1");
      assert.deepEqual(reply.type, 0);
      assert.deepEqual(reply.seq, 7);
      assert.deepEqual(reply.data, btoa("real ping"));
    });
  }
  await t.step("ping example", async () => {
    await using p = await loadHarnessPlugin(await plugin("ping"), host({ transport }));
    const lines = text(await p.call("run", "127.0.0.1 2")).trim().split("\n");
    assert.deepEqual(lines.length, 2);
    assert.deepEqual(lines.map((l) => JSON.parse(l).seq), [1, 2]);
  });
});

Deno.test("UDP destinations are checked again on every send", async () => {
  await using echo = await startUdpEcho();
  let policy = loopbackPolicy();
  const logger = recordingLogger();
  const net = createHarnessNet(host({ policy: () => policy, logger }));
  const signal = new AbortController().signal;
  const socket = await net.connectUdp({ host: "127.0.0.1", port: echo.port }, signal);
  assert.ok(socket !== undefined);
  try {
    assert.deepEqual(await socket.send(new TextEncoder().encode("one"), signal), 3);
    assert.deepEqual(text(await socket.receive(100, 2_000, signal) ?? new Uint8Array()), "one");
    policy = Policy.defaults(); // reloaded: loopback denied now
    assert.deepEqual(await socket.send(new TextEncoder().encode("two"), signal), 0);
    assert.deepEqual(echo.datagrams, 1);
    assert.ok(
      logger.lines.some((l) => l.msg === "datagram denied" && l.fields.rule === "127.0.0.0/8"),
    );
  } finally {
    socket.close();
    net.close();
  }
});

Deno.test("max_connections applies per plugin instance", async () => {
  await using echo = await startTcpEcho();
  const options = host({ policy: loopbackPolicy({ maxConnections: 3 }) });
  await using a = await loadHarnessPlugin(await plugin("probe.wat"), options);
  await using b = await loadHarnessPlugin(await plugin("probe.wat"), options);
  assert.deepEqual(text(await a.call("tcp_many", `127.0.0.1:${echo.port}\n`)), "03");
  assert.deepEqual(text(await b.call("tcp_many", `127.0.0.1:${echo.port}\n`)), "03");
  // The instance's sockets stay open across calls: it has no room left.
  assert.deepEqual(text(await a.call("tcp", `127.0.0.1:${echo.port}\nx`)), "tcp_connect=0");
});

Deno.test("the bandwidth cap applies per plugin instance", async () => {
  await using sink = await startTcpSink();
  const payload = "x".repeat(300_000);
  const timed = async (policy: Policy): Promise<number> => {
    await using p = await loadHarnessPlugin(
      await plugin("probe.wat"),
      host({ policy, recvWaitMs: 50 }),
    );
    const t0 = performance.now();
    await p.call("tcp", `127.0.0.1:${sink.port}\n${payload}`);
    return performance.now() - t0;
  };
  // 1 Mbps = 125 kB/s: 300 kB less the 16 KiB burst takes ~2.3 s.
  const limited = await timed(loopbackPolicy({ maxBandwidthMbps: 1 }));
  const free = await timed(loopbackPolicy());
  assert.ok(limited >= 1_800, `limited took ${limited} ms`);
  assert.ok(free < 1_000, `unlimited took ${free} ms`);
  await sink.waitForBytes(600_000);
});

Deno.test("a trap, an endless loop and unbounded allocation are stopped; other plugins go on", async (t) => {
  await using echo = await startTcpEcho();
  await using other = await loadHarnessPlugin(await plugin("probe.as"), host());
  const options = host({ timeoutMs: 1_000, maxMemoryMib: 16 });
  await t.step("trap", async () => {
    await using p = await loadHarnessPlugin(await plugin("probe.wat"), options);
    const e = await rejection(p.call("trap"));
    assert.deepEqual(e.code, "trap");
    assert.match(e.message, /unreachable/);
    // The instance survives a trap.
    assert.deepEqual(text(await p.call("tcp", `127.0.0.1:${echo.port}\nstill here`)), "still here");
  });
  await t.step("plugin error", async () => {
    await using p = await loadHarnessPlugin(await plugin("probe.wat"), options);
    const e = await rejection(p.call("fail"));
    assert.deepEqual([e.code, e.message], ["plugin", "plugin error: failed"]);
  });
  await t.step("unknown function", async () => {
    await using p = await loadHarnessPlugin(await plugin("probe.wat"), options);
    const e = await rejection(p.call("nope"));
    assert.deepEqual(e.code, "unknown-function");
  });
  await t.step("endless loop while another plugin works", async () => {
    const p = await loadHarnessPlugin(await plugin("probe.wat"), options);
    const t0 = performance.now();
    const spinning = rejection(p.call("spin"), "ran longer than 1000 ms");
    // The host thread is free while the loop runs in its worker.
    assert.deepEqual(
      text(await other.call("tcp", `127.0.0.1:${echo.port}\nmeanwhile`)),
      "meanwhile",
    );
    await spinning;
    assert.ok(performance.now() - t0 < 3_000);
    assert.ok(p.closed);
    await rejection(p.call("tcp", "x"), "closed");
  });
  await t.step("module memory without bound", async () => {
    await using p = await loadHarnessPlugin(await plugin("probe.wat"), options);
    const e = await rejection(p.call("grow"));
    assert.deepEqual(e.code, "trap");
  });
  await t.step("host blocks without bound", async () => {
    await using p = await loadHarnessPlugin(await plugin("probe.wat"), options);
    const e = await rejection(p.call("hoard"));
    assert.deepEqual(e.code, "trap");
  });
  await t.step("not WebAssembly, or initial memory above the limit", async () => {
    const bad = await rejection(loadHarnessPlugin(new TextEncoder().encode("hello"), options));
    assert.deepEqual(bad.code, "invalid");
    const wasm = await compileWat('(module (memory (export "memory") 20))');
    const big = await rejection(loadHarnessPlugin(wasm, { ...options, maxMemoryMib: 1 }));
    assert.match(big.message, /above the limit/);
  });
  assert.deepEqual(text(await other.call("tcp", `127.0.0.1:${echo.port}\nafter`)), "after");
});

Deno.test("example http_get (AssemblyScript) fetches a page over tcp_*", async () => {
  await using server = await startHttpServer("hello from the plugin test");
  await using p = await loadHarnessPlugin(await plugin("http_get"), host({ recvWaitMs: 2_000 }));
  const response = text(await p.call("run", `127.0.0.1:${server.port}/page`));
  assert.match(response, /^HTTP\/1\.[01] 200 OK\r\n/);
  assert.ok(response.endsWith("\r\n\r\nhello from the plugin test"));
});

Deno.test("example dns_query (AssemblyScript) asks a DNS server over udp_*", async () => {
  await using dns = await startDnsServer({
    records: { "plugin.test": { A: ["192.0.2.7", "192.0.2.8"] } },
  });
  await using p = await loadHarnessPlugin(await plugin("dns_query"), host());
  assert.deepEqual(
    text(await p.call("run", `127.0.0.1:${dns.port} plugin.test`)),
    "192.0.2.7\n192.0.2.8\n",
  );
  assert.deepEqual(dns.questions, [{ name: "plugin.test", type: "A" }]);
});

// --- wasmnet plugin (the CLI) ---

async function cli(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  // Through bin/wasmnet, as README runs it: its permissions are the ones under test.
  const out = await launcher(["plugin", ...args], { stdout: "piped", stderr: "piped" }).output();
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

async function writePlugin(dir: string): Promise<string> {
  const path = `${dir}/probe.wasm`;
  await Deno.writeFile(path, await plugin("probe.wat"));
  return path;
}

Deno.test("wasmnet plugin: prints only the plugin's output; exit codes", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const file = await writePlugin(dir);
    await using echo = await startTcpEcho();
    await t.step("success: stdout is the output alone", async () => {
      const r = await cli([
        file,
        "--call",
        "tcp",
        "--no-policy",
        "--input",
        `127.0.0.1:${echo.port}\nexact`,
      ]);
      assert.deepEqual([r.code, r.stdout], [0, "exact"]);
    });
    await t.step("--input-file", async () => {
      await Deno.writeTextFile(`${dir}/input.txt`, `127.0.0.1:${echo.port}\nfrom file`);
      const r = await cli([
        file,
        "--call",
        "tcp",
        "--no-policy",
        "--input-file",
        `${dir}/input.txt`,
      ]);
      assert.deepEqual([r.code, r.stdout], [0, "from file"]);
    });
    await t.step("default policy denies loopback: the plugin sees 0, logs on stderr", async () => {
      const r = await cli([file, "--call", "tcp", "--input", `127.0.0.1:${echo.port}\nx`]);
      assert.deepEqual([r.code, r.stdout], [0, "tcp_connect=0"]);
      assert.match(r.stderr, /socket denied.*rule=127\.0\.0\.0\/8/);
    });
    await t.step("--policy FILE", async () => {
      await Deno.writeTextFile(`${dir}/p.toml`, '[network]\ndeny = []\nallow = ["127.0.0.1"]\n');
      const r = await cli([
        file,
        "--call",
        "tcp",
        "--policy",
        `${dir}/p.toml`,
        "--input",
        `127.0.0.1:${echo.port}\nok`,
      ]);
      assert.deepEqual([r.code, r.stdout], [0, "ok"]);
    });
    const failures: [string, string[], RegExp][] = [
      ["trap", [file, "--call", "trap"], /^wasmnet: plugin trapped: unreachable\n$/],
      ["plugin error", [file, "--call", "fail"], /^wasmnet: plugin error: failed\n$/],
      [
        "unknown function",
        [file, "--call", "nope"],
        /^wasmnet: no exported function "nope" in .*probe\.wasm\n$/,
      ],
      ["default run missing", [file], /^wasmnet: no exported function "run" in /],
      [
        "time limit",
        [file, "--call", "spin", "--timeout-ms", "300"],
        /^wasmnet: plugin ran longer than 300 ms\n$/,
      ],
      ["missing file", [`${dir}/none.wasm`], /^wasmnet: cannot read .*none\.wasm: /],
      ["not wasm", [`${dir}/input.txt`], /^wasmnet: .*input\.txt: not a WebAssembly module/],
    ];
    for (const [label, args, stderr] of failures) {
      await t.step(label, async () => {
        const r = await cli(args);
        assert.deepEqual([r.code, r.stdout], [1, ""], label);
        // Log lines (e.g. the transport's ICMP detection at info) may come first; the error is
        // the last line, once.
        const lines = r.stderr.trimEnd().split("\n");
        assert.match(`${lines.at(-1)}\n`, stderr);
        assert.equal(lines.filter((l) => l.startsWith("wasmnet: ")).length, 1);
      });
    }
    await t.step("bad flags exit 2", async () => {
      const r = await cli([file, "--timeout-ms", "soon"]);
      assert.deepEqual(r.code, 2);
      assert.deepEqual(r.stdout, "");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// --- fakes ---

/** A transport with `openIcmp` replaced. */
function withIcmp(
  transport: Transport,
  openIcmp: (family: 4 | 6) => Promise<IcmpSocket>,
): Transport {
  return {
    lookup: (name, signal) => transport.lookup(name, signal),
    connectTcp: (ip, port, signal) => transport.connectTcp(ip, port, signal),
    startTls: (conn, name, signal) => transport.startTls(conn, name, signal),
    openUdp: (family) => transport.openUdp(family),
    listenTcp: (ip, port) => transport.listenTcp(ip, port),
    openIcmp,
  };
}

/** An ICMP socket that answers every request at once (or never, when `silent`). */
function fakeIcmp(options: { silent?: boolean } = {}): {
  open: (family: 4 | 6) => Promise<IcmpSocket>;
  sent: { ip: string; seq: number; data: string }[];
  readonly opened: number;
} {
  const sent: { ip: string; seq: number; data: string }[] = [];
  let opened = 0;
  const open = (): Promise<IcmpSocket> => {
    opened++;
    const replies: IcmpEchoReply[] = [];
    let closed = false;
    return Promise.resolve({
      mechanism: "dgram",
      send(ip: string, seq: number, data: Uint8Array): Promise<void> {
        sent.push({ ip, seq, data: text(data) });
        if (!options.silent) {
          replies.push({
            source: ip,
            type: 0,
            code: 0,
            id: 4242,
            seq,
            data: data.slice(),
            rttMs: 0.1,
          });
        }
        return Promise.resolve();
      },
      async receive(timeoutMs: number, signal?: AbortSignal): Promise<IcmpEchoReply | undefined> {
        if (closed) throw Object.assign(new Error("closed"), { name: "BadResource" });
        const reply = replies.shift();
        if (reply !== undefined) return reply;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, Math.min(timeoutMs, 50));
          function done(): void {
            clearTimeout(timer);
            signal?.removeEventListener("abort", done);
            resolve();
          }
          signal?.addEventListener("abort", done, { once: true });
        });
        return undefined;
      },
      close(): void {
        closed = true;
      },
    });
  };
  return {
    open,
    sent,
    get opened(): number {
      return opened;
    },
  };
}
