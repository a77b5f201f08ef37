// W.A.T.E.R. (WATM v1) host end to end: dialer ↔ listener with the XOR example (plaintext at both
// ends, XORed bytes on the wire between the hosts), 1 MiB byte-identical, 20 connections at
// once, a relay in the middle, policy on the remote and on a module's own water_dial address,
// bad modules (missing exports, v0, not wasm, a trap, a module that never returns, a setup that
// never ends, a missing config) each a clear error while the host serves other connections,
// the CLI's startup errors, and the Go reference's TinyGo test modules when present.
import { launcher } from "./helpers/launcher.ts";
import assert from "node:assert/strict";
import { Policy } from "../src/policy/mod.ts";
import { denoTransport } from "../src/transport/deno/mod.ts";
import {
  type Role,
  startWaterHost,
  type WaterHost,
  WaterHostError,
  WatmError,
} from "../src/wasm/water/mod.ts";
import { loopbackPolicy } from "./helpers/server.ts";
import { startTcpEcho, type StreamServer } from "./helpers/echo_servers.ts";
import {
  badModule,
  captureLogs,
  dialAddressModule,
  doubleDialModule,
  exampleModule,
  goTestModule,
  initSpinModule,
  missingExportsModule,
  readN,
  SPIN_BYTE,
  startTap,
  TRAP_BYTE,
  v0Module,
  writeAll,
  xor,
} from "./helpers/water.ts";

const transport = denoTransport();
const KEY = new TextEncoder().encode("pluggable-key");
const CONFIG = new TextEncoder().encode("pluggable-key\n");

function host(
  module: Uint8Array<ArrayBuffer>,
  role: Role,
  remotePort: number,
  extra: Partial<Parameters<typeof startWaterHost>[0]> = {},
): Promise<WaterHost> {
  return startWaterHost({
    module,
    role,
    listen: { host: "127.0.0.1", port: 0 },
    remote: { host: "127.0.0.1", port: remotePort },
    policy: loopbackPolicy(),
    transport,
    limits: { lingerMs: 300, stopGraceMs: 500, setupTimeoutMs: 2000 },
    ...extra,
  });
}

function payload(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Sends `data` through `port` and reads the echo back (concurrently). */
async function echoThrough(port: number, data: Uint8Array): Promise<Uint8Array> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const [, back] = await Promise.all([writeAll(conn, data), readN(conn, data.length)]);
    return back;
  } finally {
    conn.close();
  }
}

/** Resolves once `conn` is closed by the peer (read returns null or fails). */
async function closedByPeer(conn: Deno.Conn): Promise<boolean> {
  try {
    const buf = new Uint8Array(1024);
    for (;;) if (await conn.read(buf) === null) return true;
  } catch {
    return true;
  }
}

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** echo ← listener(module) ← tap ← dialer(module) */
async function chain(
  module: Uint8Array<ArrayBuffer>,
  config: Uint8Array | undefined,
  run: (dialerPort: number, tap: ReturnType<typeof startTap>, echo: StreamServer) => Promise<void>,
): Promise<void> {
  await using echo = await startTcpEcho();
  await using listener = await host(module, "listener", echo.port, { config });
  await using tap = startTap(listener.addr.port);
  await using dialer = await host(module, "dialer", tap.port, { config });
  await run(dialer.addr.port, tap, echo);
  assert.equal(dialer.stats.failed, 0, "dialer failures");
  assert.equal(listener.stats.failed, 0, "listener failures");
}

Deno.test("water: dialer ↔ listener (xor) — plaintext at both ends, XORed bytes between the hosts", async () => {
  const module = await exampleModule("xor");
  await chain(module, CONFIG, async (port, tap, echo) => {
    const text = new TextEncoder().encode("hello over a pluggable transport");
    assert.deepEqual(await echoThrough(port, text), text);
    await until("tap to see the echo", () => tap.down().length >= text.length);
    assert.equal(echo.accepted, 1);
    assert.deepEqual(tap.up(), xor(text, KEY), "client → server bytes on the wire are XORed");
    assert.deepEqual(tap.down(), xor(text, KEY), "server → client bytes on the wire are XORed");
    assert.notDeepEqual(tap.up(), text);
  });
});

Deno.test("water: 1 MiB byte-identical round trip through dialer and listener (xor)", async () => {
  const module = await exampleModule("xor");
  await chain(module, CONFIG, async (port, tap) => {
    const data = payload(1 << 20);
    const back = await echoThrough(port, data);
    assert.equal(back.length, data.length);
    assert.ok(back.every((b, i) => b === data[i]), "echo is byte-identical");
    await until("tap to see everything", () => tap.down().length >= data.length);
    assert.deepEqual(tap.up(), xor(data, KEY), "the stream is XORed across chunk boundaries");
  });
});

Deno.test("water: 20 concurrent connections (xor), each its own instance", async () => {
  const module = await exampleModule("xor");
  await chain(module, CONFIG, async (port, tap, echo) => {
    const results = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const data = payload(64 * 1024 + i, i + 7);
        const back = await echoThrough(port, data);
        return back.length === data.length && back.every((b, j) => b === data[j]);
      }),
    );
    assert.deepEqual(results, Array(20).fill(true));
    assert.equal(tap.connections(), 20);
    assert.equal(echo.accepted, 20);
  });
});

Deno.test("water: relay in the middle — dialer(xor) → relay(plain) → listener(xor) → echo", async () => {
  const xorModule = await exampleModule("xor");
  const plain = await exampleModule("plain");
  await using echo = await startTcpEcho();
  await using listener = await host(xorModule, "listener", echo.port, { config: CONFIG });
  await using tap2 = startTap(listener.addr.port);
  await using relay = await host(plain, "relay", tap2.port);
  await using tap1 = startTap(relay.addr.port);
  await using dialer = await host(xorModule, "dialer", tap1.port, { config: CONFIG });
  const data = payload(200_000, 3);
  const back = await echoThrough(dialer.addr.port, data);
  assert.ok(back.length === data.length && back.every((b, i) => b === data[i]));
  await until("taps", () => tap2.down().length >= data.length && tap1.down().length >= data.length);
  assert.deepEqual(tap1.up(), xor(data, KEY), "dialer → relay is XORed");
  assert.deepEqual(tap2.up(), xor(data, KEY), "relay → listener is XORed (the relay forwards)");
  assert.equal(relay.stats.accepted, 1);
  assert.equal(relay.stats.failed, 0);
});

Deno.test("water policy: a denied --remote is refused at start with the rule", async () => {
  const module = await exampleModule("plain");
  await using echo = await startTcpEcho();
  const err = await startWaterHost({
    module,
    role: "dialer",
    listen: { host: "127.0.0.1", port: 0 },
    remote: { host: "127.0.0.1", port: echo.port },
    policy: Policy.defaults(),
    transport,
  }).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof WaterHostError, String(err));
  assert.equal(err.rule, "127.0.0.0/8");
  assert.match(
    err.message,
    /^remote refused by the policy: 127\.0\.0\.1:\d+ is denied by rule "127\.0\.0\.0\/8"/,
  );
  assert.equal(echo.accepted, 0);
});

Deno.test("water policy: a module's own water_dial address is checked; denied → not connected, logged why", async () => {
  await using allowed = await startTcpEcho();
  await using denied = await startTcpEcho();
  const policy = Policy.fromConfig(
    { deny: [`127.0.0.1:${denied.port}`], allow: ["*"], maxBandwidthMbps: 0 },
    "<test>",
  );
  // The module dials its own address; --remote (allowed) is not what it dials.
  const module = await dialAddressModule(`127.0.0.1:${denied.port}`);
  await captureLogs(async (lines) => {
    await using dialer = await host(module, "dialer", allowed.port, { policy });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: dialer.addr.port });
    await conn.write(new TextEncoder().encode("x")).catch(() => 0);
    assert.ok(await closedByPeer(conn));
    conn.close();
    await until("the failure", () => dialer.stats.failed === 1);
    assert.equal(dialer.stats.denied, 1);
    assert.equal(denied.accepted, 0, "the denied address was never dialled");
    assert.equal(allowed.accepted, 0);
    const line = lines.find((l) => l.includes("dial denied"));
    assert.ok(line, lines.join("\n"));
    assert.match(line, new RegExp(`dest=127\\.0\\.0\\.1:${denied.port}`));
    assert.match(line, new RegExp(`rule=127\\.0\\.0\\.1:${denied.port} `));
    assert.ok(
      lines.some((l) => /watm_dial_fixed_v1 returned -2 \(2 \(ACCES\)\)/.test(l)),
      lines.join("\n"),
    );
  });
  // The same module reaches an allowed address.
  const ok = await dialAddressModule(`127.0.0.1:${allowed.port}`);
  await using dialer = await host(ok, "dialer", allowed.port, { policy });
  const text = new TextEncoder().encode("allowed");
  assert.deepEqual(await echoThrough(dialer.addr.port, text), text);
  assert.equal(allowed.accepted, 1);
});

Deno.test("water limits: a module's dials count against the policy's max_connections", async () => {
  await using echo = await startTcpEcho();
  const module = await doubleDialModule();
  await captureLogs(async (lines) => {
    await using one = await host(module, "dialer", echo.port, {
      policy: loopbackPolicy({ maxConnections: 1 }),
    });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: one.addr.port });
    assert.ok(await closedByPeer(conn));
    conn.close();
    await until("the failure", () => one.stats.failed === 1);
    assert.ok(lines.some((l) => /max_connections reached .*limit=1/.test(l)), lines.join("\n"));
    assert.ok(lines.some((l) => /returned -33 \(33 \(MFILE\)\)/.test(l)), lines.join("\n"));
  });
  await until("the first dial's connection to close", () => echo.live === 0);
  await using two = await host(module, "dialer", echo.port, {
    policy: loopbackPolicy({ maxConnections: 2 }),
  });
  const text = new TextEncoder().encode("two dials allowed");
  assert.deepEqual(await echoThrough(two.addr.port, text), text);
});

Deno.test("water bad modules: missing exports, v0, not wasm, wrong role are clear errors at start", async () => {
  const cases: [Uint8Array<ArrayBuffer>, Role, string, RegExp][] = [
    [
      await missingExportsModule(),
      "dialer",
      "exports",
      /lacks the export watm_ctrlpipe_v1, watm_start_v1/,
    ],
    [await v0Module(), "dialer", "version", /^WATM v0 module \(exports _water_v0\)/],
    [
      new TextEncoder().encode("not wasm") as Uint8Array<ArrayBuffer>,
      "dialer",
      "invalid",
      /^not a WebAssembly module/,
    ],
  ];
  for (const [module, role, code, message] of cases) {
    const err = await host(module, role, 9).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof WatmError, String(err));
    assert.equal(err.code, code);
    assert.match(err.message, message);
  }
  const noRelay = await missingExportsModule();
  const err = await host(noRelay, "relay", 9).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof WatmError);
});

Deno.test("water bad modules: a trap and a module that never returns end their connection with a clear error; others keep working", async () => {
  const module = await badModule();
  await using echo = await startTcpEcho();
  await captureLogs(async (lines) => {
    await using dialer = await host(module, "dialer", echo.port);
    // A healthy connection stays open across both failures.
    const good = await Deno.connect({ hostname: "127.0.0.1", port: dialer.addr.port });
    await writeAll(good, new TextEncoder().encode("before"));
    assert.equal(new TextDecoder().decode(await readN(good, 6)), "before");

    const trap = await Deno.connect({ hostname: "127.0.0.1", port: dialer.addr.port });
    await writeAll(trap, new Uint8Array([TRAP_BYTE, 1, 2]));
    assert.ok(await closedByPeer(trap));
    trap.close();
    await until("the trap", () => dialer.stats.failed === 1);
    assert.ok(
      lines.some((l) => /the module trapped in watm_start_v1: unreachable/.test(l)),
      lines.join("\n"),
    );

    const spin = await Deno.connect({ hostname: "127.0.0.1", port: dialer.addr.port });
    await writeAll(spin, new Uint8Array([SPIN_BYTE]));
    spin.close(); // end of stream: the host closes the control pipe, then terminates it
    await until("the spin", () => dialer.stats.failed === 2);
    assert.ok(
      lines.some((l) =>
        /did not return from watm_start_v1 within 500 ms after its control pipe closed/.test(l)
      ),
      lines.join("\n"),
    );

    await writeAll(good, new TextEncoder().encode("after"));
    assert.equal(new TextDecoder().decode(await readN(good, 5)), "after");
    good.close();
    await until("all ended", () => dialer.stats.active === 0);
    assert.equal(dialer.stats.failed, 2);
  });
});

Deno.test("water bad modules: a setup that never ends is terminated; a missing config fails watm_init_v1; the host keeps serving", async () => {
  await using echo = await startTcpEcho();
  await captureLogs(async (lines) => {
    await using spin = await host(await initSpinModule(), "dialer", echo.port, {
      limits: { setupTimeoutMs: 300 },
    });
    const c = await Deno.connect({ hostname: "127.0.0.1", port: spin.addr.port });
    assert.ok(await closedByPeer(c));
    c.close();
    await until("the timeout", () => spin.stats.failed === 1);
    assert.ok(
      lines.some((l) => /did not finish setting up .* within 300 ms/.test(l)),
      lines.join("\n"),
    );

    // xor without /conf/watm.cfg: its watm_init_v1 answers NOENT, for every connection.
    await using noConfig = await host(await exampleModule("xor"), "dialer", echo.port);
    for (let i = 1; i <= 2; i++) {
      const c2 = await Deno.connect({ hostname: "127.0.0.1", port: noConfig.addr.port });
      assert.ok(await closedByPeer(c2));
      c2.close();
      await until("the failure", () => noConfig.stats.failed === i);
    }
    assert.ok(
      lines.some((l) => /watm_init_v1 returned errno 44 \(NOENT\)/.test(l)),
      lines.join("\n"),
    );
    assert.equal(echo.accepted, 0);
  });
});

async function cli(args: string[]): Promise<{ code: number; stderr: string }> {
  // Through bin/wasmnet, as README runs it: its permissions are the ones under test.
  const out = await launcher(["water", ...args], {
    cwd: new URL("../", import.meta.url),
    stdout: "null",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("water CLI: bad modules, a missing --config and a denied --remote exit non-zero with one line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-water-" });
  try {
    await Deno.writeFile(`${dir}/missing.wasm`, await missingExportsModule());
    await Deno.writeFile(`${dir}/v0.wasm`, await v0Module());
    await Deno.writeFile(`${dir}/xor.wasm`, await exampleModule("xor"));
    const common = ["--role", "dialer", "--listen", "127.0.0.1:0", "--remote", "127.0.0.1:9"];
    const cases: [string[], number, RegExp][] = [
      [
        [`${dir}/missing.wasm`, ...common, "--no-policy"],
        1,
        /missing\.wasm: WATM v1 module lacks the export watm_ctrlpipe_v1/,
      ],
      [
        [`${dir}/v0.wasm`, ...common, "--no-policy"],
        1,
        /v0\.wasm: WATM v0 module \(exports _water_v0\): this host runs WATM v1 modules only/,
      ],
      [
        [`${dir}/xor.wasm`, ...common, "--no-policy", "--config", `${dir}/nope.cfg`],
        2,
        /cannot read --config file ".*nope\.cfg"/,
      ],
      [
        [`${dir}/xor.wasm`, ...common],
        1,
        /remote refused by the policy: 127\.0\.0\.1:9 is denied by rule "127\.0\.0\.0\/8"/,
      ],
      [
        [
          `${dir}/xor.wasm`,
          "--role",
          "sideways",
          "--listen",
          "127.0.0.1:0",
          "--remote",
          "127.0.0.1:9",
        ],
        2,
        /invalid value for --role/,
      ],
    ];
    for (const [args, code, message] of cases) {
      const r = await cli(args);
      assert.equal(r.code, code, r.stderr);
      const lines = r.stderr.trim().split("\n");
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0] ?? "", message);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("water CLI: a dialer and a listener as processes carry a round trip", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-water-" });
  await using echo = await startTcpEcho();
  const children: Deno.ChildProcess[] = [];
  const start = async (args: string[]): Promise<number> => {
    const child = launcher(["water", ...args], {
      cwd: new URL("../", import.meta.url),
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    children.push(child);
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`exited before listening: ${text}`);
      text += value;
      const m = /listening addr=127\.0\.0\.1:(\d+)/.exec(text);
      if (m) {
        void (async () => {
          while (!(await reader.read()).done) { /* drain */ }
        })();
        return Number(m[1]);
      }
    }
  };
  try {
    await Deno.writeFile(`${dir}/xor.wasm`, await exampleModule("xor"));
    await Deno.writeFile(`${dir}/key.cfg`, CONFIG);
    const policy = `${dir}/policy.toml`;
    await Deno.writeTextFile(policy, `[network]\ndeny = []\nallow = ["127.0.0.1"]\n`);
    const common = ["--config", `${dir}/key.cfg`, "--policy", policy, "--listen", "127.0.0.1:0"];
    const lport = await start([
      `${dir}/xor.wasm`,
      "--role",
      "listener",
      "--remote",
      `127.0.0.1:${echo.port}`,
      ...common,
    ]);
    const dport = await start([
      `${dir}/xor.wasm`,
      "--role",
      "dialer",
      "--remote",
      `127.0.0.1:${lport}`,
      ...common,
    ]);
    const data = payload(100_000, 9);
    const back = await echoThrough(dport, data);
    assert.ok(back.length === data.length && back.every((b, i) => b === data[i]));
  } finally {
    for (const c of children) {
      c.kill("SIGTERM");
      assert.equal((await c.status).code, 0);
    }
    await Deno.remove(dir, { recursive: true });
  }
});

// The Go reference's TinyGo test modules are never committed: each test below is ignored (with
// the reason printed) unless they are in .tools/water-testdata/ or $WASMNET_WATER_TESTDATA.
const goPlain = await goTestModule("plain");
const goReverse = await goTestModule("reverse");

Deno.test({
  name: "water: the Go reference's TinyGo plain.wasm runs unchanged as dialer, listener and relay",
  ignore: goPlain === undefined,
  fn: async () => {
    const plain = goPlain as Uint8Array<ArrayBuffer>;
    await chain(plain, undefined, async (port, tap) => {
      const data = payload(1 << 20, 5);
      const back = await echoThrough(port, data);
      assert.ok(back.length === data.length && back.every((b, i) => b === data[i]), "1 MiB");
      await until("tap", () => tap.up().length >= data.length);
      assert.deepEqual(tap.up(), data, "plain.wasm does not transform");
    });
    await using echo = await startTcpEcho();
    await using listener = await host(plain, "listener", echo.port);
    await using relay = await host(plain, "relay", listener.addr.port);
    await using dialer = await host(plain, "dialer", relay.addr.port);
    const text = new TextEncoder().encode("through a TinyGo relay");
    assert.deepEqual(await echoThrough(dialer.addr.port, text), text);
  },
});

Deno.test({
  name: "water: the Go reference's TinyGo reverse.wasm runs unchanged (reversed on the wire)",
  ignore: goReverse === undefined,
  fn: async () => {
    await chain(goReverse as Uint8Array<ArrayBuffer>, undefined, async (port, tap) => {
      const text = new TextEncoder().encode("reverse me");
      assert.deepEqual(await echoThrough(port, text), text, "reverse ↔ reverse restores the bytes");
      await until("tap", () => tap.up().length >= text.length);
      assert.equal(
        new TextDecoder().decode(tap.up()),
        "em esrever",
        "the wire carries it reversed",
      );
    });
  },
});
