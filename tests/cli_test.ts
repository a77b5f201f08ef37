/**
 * The real `wasmnet` command as a subprocess (`deno run -A mod.ts ...`, or the command
 * `WASMNET_TEST_SERVER` chooses: `deno`, `bun`, `binary`; narrower permissions, and the
 * `bin/wasmnet` launcher): flags, exit codes and their one-line errors, the listening log line,
 * `/healthz`, graceful exit on SIGTERM/SIGINT, `check-policy`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { TestClient } from "./helpers/ws_client.ts";
import { startTcpEcho } from "./helpers/echo_servers.ts";
import { inProcess, serverCommand } from "./helpers/target.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const ENV = { WASMNET_LOG: "info", NO_COLOR: "1" };

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** How a test starts wasmnet: a program and the arguments that go before wasmnet's own. */
interface Launch {
  cmd: string;
  args: string[];
  env?: Record<string, string>;
}

/** `deno run <permissions> mod.ts` (default `-A`). */
function denoRun(...permissions: string[]): Launch {
  return {
    cmd: Deno.execPath(),
    args: ["run", ...(permissions.length ? permissions : ["-A"]), "mod.ts"],
  };
}

/**
 * The `bin/wasmnet` launcher (or a symlink to it), with a PATH whose `deno` is the one running
 * this test (2.9.6), so the launcher uses it and never installs one.
 */
function launcher(path = join(ROOT, "bin", "wasmnet")): Launch {
  return { cmd: path, args: [], env: { PATH: `${dirname(Deno.execPath())}:/usr/bin:/bin` } };
}

/** The command under test: `WASMNET_TEST_SERVER`'s, or `deno run -A mod.ts` by default. */
function command(): Launch {
  return inProcess() ? denoRun() : serverCommand();
}

/** Runs the CLI to completion. */
function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runWith(command(), ...args);
}

/** Runs the CLI, started as `how` says, to completion. */
async function runWith(
  how: Launch,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(how.cmd, {
    args: [...how.args, ...args],
    cwd: ROOT,
    env: { ...ENV, ...how.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A CLI server process whose output is collected while it runs. */
class CliProcess implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  stdout = "";
  stderr = "";
  readonly #pumps: Promise<void>[];
  #status: Promise<Deno.CommandStatus>;

  constructor(args: string[], how: Launch = command()) {
    this.child = new Deno.Command(how.cmd, {
      args: [...how.args, ...args],
      cwd: ROOT,
      env: { ...ENV, ...how.env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const pump = async (stream: ReadableStream<Uint8Array>, into: "stdout" | "stderr") => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) this[into] += text;
    };
    this.#pumps = [pump(this.child.stdout, "stdout"), pump(this.child.stderr, "stderr")];
    this.#status = this.child.status;
  }

  /** stdout and stderr together. */
  get output(): string {
    return this.stdout + this.stderr;
  }

  /** Waits until the output matches `re` (fails if the process exits first). */
  async waitFor(re: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.#status.then(() => exited = true);
    while (true) {
      const m = re.exec(this.output);
      if (m) return m;
      if (exited) throw new Error(`process exited before ${re}; output:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}:\n${this.output}`);
      await delay(20);
    }
  }

  /** Waits for the listening line and returns the port. */
  async port(): Promise<number> {
    const m = await this.waitFor(/listening addr=127\.0\.0\.1:(\d+)/);
    return Number(m[1]);
  }

  /** Waits for the exit and for all output. */
  async exit(): Promise<Deno.CommandStatus> {
    const status = await this.#status;
    await Promise.all(this.#pumps);
    return status;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await this.exit();
  }
}

/** Every flag of README's "Command line" table (first cell of each row that starts with a flag). */
async function readmeFlags(): Promise<string[]> {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const flags = readme.split("\n")
    .filter((line) => line.startsWith("| `-"))
    .flatMap((line) => [...(line.split("|")[1] ?? "").matchAll(/`(-{1,2}[a-zA-Z][\w-]*)/g)])
    .map((m) => m[1] ?? "");
  assert.ok(flags.length >= 15, `README's flag table not found (${flags.length} flags)`);
  return flags;
}

Deno.test("cli: --help exits 0 and lists every flag", async () => {
  const { code, stdout, stderr } = await run("--help");
  assert.equal(code, 0, stderr);
  assert.match(stdout, /^wasmnet/);
  assert.match(stdout, /Usage:/);
  for (const flag of [...await readmeFlags(), "check-policy"]) {
    assert.ok(new RegExp(`(^|[\\s,])${flag}\\b`).test(stdout), `help lacks ${flag}`);
  }
  // ...and every long flag of the help is documented in README.
  const documented = new Set(await readmeFlags());
  for (const [flag] of stdout.matchAll(/(?<=[\s,])--[a-z][\w-]*/g)) {
    assert.ok(documented.has(flag), `README's flag table lacks ${flag}`);
  }
  assert.equal(stderr, "");
});

Deno.test("cli: -h is --help", async () => {
  const [a, b] = await Promise.all([run("-h"), run("--help")]);
  assert.equal(a.code, 0);
  assert.equal(a.stdout, b.stdout);
});

Deno.test("cli: --version exits 0 and prints the version", async () => {
  const { code, stdout } = await run("--version");
  assert.equal(code, 0);
  assert.match(stdout, /^wasmnet \d+\.\d+\.\d+/);
  const short = await run("-V");
  assert.equal(short.code, 0);
  assert.equal(short.stdout, stdout);
});

Deno.test("cli: an unknown flag exits 2 with one line naming it", async () => {
  const { code, stdout, stderr } = await run("--bogus");
  assert.equal(code, 2);
  assert.equal(stdout, "");
  assert.equal(stderr.trimEnd().split("\n").length, 1, stderr);
  assert.match(stderr, /--bogus/);
});

for (
  const [name, args, re] of [
    ["--port abc", ["--port", "abc"], /--port/],
    ["-p 70000", ["-p", "70000"], /--port/],
    ["--port without value", ["--port"], /--port|port/],
    ["--policy with --no-policy", ["--policy", "x.toml", "--no-policy"], /--no-policy/],
    ["a stray argument", ["serve-now"], /serve-now/],
    ["--pool-per-key -1", ["--pool-per-key", "-1"], /--pool-per-key/],
    ["--allow-origin with a path", ["--allow-origin", "https://a.example/x"], /--allow-origin/],
    ["--allow-origin not a URL", ["--allow-origin", "a.example"], /--allow-origin/],
    ["--ticket-leeway without --ticket-key", ["--ticket-leeway", "5"], /--ticket-key/],
    ["--ticket-leeway -1", ["--ticket-key", "k", "--ticket-leeway", "-1"], /--ticket-leeway/],
    ["ticket without --ttl", ["ticket", "--key", "k"], /--ttl/],
    ["ticket --ttl 10", ["ticket", "--key", "k", "--ttl", "10"], /--ttl/],
    ["ticket with a server flag", ["ticket", "--key", "k", "--ttl", "1m", "--port", "1"], /--port/],
  ] as const
) {
  Deno.test(`cli: ${name} exits 2 with one line`, async () => {
    const { code, stderr } = await run(...args);
    assert.equal(code, 2, stderr);
    assert.equal(stderr.trimEnd().split("\n").length, 1, stderr);
    assert.match(stderr, re);
  });
}

Deno.test("cli: --policy with a missing file exits 1 naming the file", async () => {
  const { code, stderr } = await run("--policy", "missing.toml", "-p", "0", "-H", "127.0.0.1");
  assert.equal(code, 1, stderr);
  assert.match(stderr, /missing\.toml/);
});

Deno.test("cli: --policy with a bad key exits 1 naming the key", async () => {
  const file = await Deno.makeTempFile({ suffix: ".toml" });
  try {
    await Deno.writeTextFile(file, "[network]\nmax_conections = 5\n");
    const { code, stderr } = await run("--policy", file, "-p", "0", "-H", "127.0.0.1");
    assert.equal(code, 1, stderr);
    assert.match(stderr, /max_conections/);
  } finally {
    await Deno.remove(file);
  }
});

for (
  const [raw, reason] of [
    ["a b", "contains whitespace or control characters"],
    ["999.1.1.1", "is not a valid host name or IPv4 address"],
    ["", "is empty"],
    ["10.0.0.1:80", "contains ':' (give the port separately)"],
  ] as const
) {
  Deno.test(`cli: --host ${JSON.stringify(raw)} exits 2 with one line and no stack`, async () => {
    const { code, stdout, stderr } = await run("--host", raw, "-p", "0");
    assert.equal(code, 2, stderr);
    assert.equal(stdout, "");
    assert.equal(
      stderr,
      `wasmnet: invalid value for --host: ${JSON.stringify(raw)} ${reason} (expected an IP ` +
        "address or host name, e.g. 0.0.0.0, 127.0.0.1, ::1 or localhost) (see --help)\n",
    );
  });
}

Deno.test("cli: --host accepts any IP spelling and listens on its canonical form", async () => {
  await using proc = new CliProcess(["-p", "0", "-H", "127.1"]);
  await proc.port(); // waits for `listening addr=127.0.0.1:PORT`
  proc.child.kill("SIGTERM");
  assert.equal((await proc.exit()).code, 0, proc.output);
});

/** Whether this machine can listen on `hostname` (IPv6 loopback may be missing in containers). */
function canListen(hostname: string): boolean {
  try {
    Deno.listen({ hostname, port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

for (
  const [hostname, shown] of [["127.0.0.1", "127.0.0.1"], ["::1", "[::1]"]] as const
) {
  Deno.test({
    name: `cli: a port in use on ${hostname} exits 1 with one line naming ${shown}:PORT`,
    ignore: !canListen(hostname),
    fn: async () => {
      using taken = Deno.listen({ hostname, port: 0 });
      const port = taken.addr.port;
      // --no-policy and a pool flag would each log a line before listening if it were not deferred.
      const { code, stdout, stderr } = await run(
        "-p",
        String(port),
        "-H",
        hostname,
        "--no-policy",
        "--pool-per-key",
        "2",
      );
      assert.equal(code, 1, stderr);
      assert.equal(stdout, "");
      assert.equal(stderr, `wasmnet: cannot listen on ${shown}:${port}: address already in use\n`);
    },
  });
}

Deno.test("cli: an address not on this machine exits 1 with one line naming it", async () => {
  const { code, stdout, stderr } = await run("-p", "0", "-H", "192.0.2.1");
  assert.equal(code, 1, stderr);
  assert.equal(stdout, "");
  assert.equal(stderr, "wasmnet: cannot listen on 192.0.2.1:0: cannot assign requested address\n");
});

Deno.test("cli: --help and the server need no env permission (WASMNET_LOG counts as unset)", async () => {
  const help = await runWith(denoRun("--allow-net", "--allow-read"), "--help");
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^wasmnet/);
  assert.equal(help.stderr, "");
  // WASMNET_LOG=error is set but unreadable, so the default level (info) logs `listening`.
  await using proc = new CliProcess(
    ["-p", "0", "-H", "127.0.0.1"],
    { ...denoRun("--allow-net", "--allow-read"), env: { WASMNET_LOG: "error" } },
  );
  await proc.port();
  proc.child.kill("SIGTERM");
  assert.equal((await proc.exit()).code, 0, proc.output);
  assert.doesNotMatch(proc.output, /NotCapable|env access|Error/);
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(`cli: serves /healthz, then exits 0 on ${signal}`, async () => {
    await using proc = new CliProcess(["-p", "0", "-H", "127.0.0.1"]);
    const port = await proc.port();
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /application\/json/);
    const body = await res.json();
    assert.equal(body.status, "ok");
    assert.equal(typeof body.version, "string");
    assert.equal(body.sessions, 0);
    proc.child.kill(signal);
    const status = await proc.exit();
    assert.equal(status.code, 0, proc.output);
    assert.equal(status.success, true);
  });
}

Deno.test("cli: SIGTERM with a live session and proxied socket exits 0 and closes them", async () => {
  await using echo = await startTcpEcho();
  await using proc = new CliProcess(["-p", "0", "-H", "127.0.0.1", "--no-policy"]);
  const port = await proc.port();
  await using client = await TestClient.open(`ws://127.0.0.1:${port}/`);
  await client.connect(1, "127.0.0.1", echo.port);
  client.send({ op: "send", id: 1, data: new TextEncoder().encode("hi") });
  assert.equal(new TextDecoder().decode(await client.collect(1, 2)), "hi");
  const health = await (await fetch(`http://127.0.0.1:${port}/healthz`)).json();
  assert.equal(health.sessions, 1);
  proc.child.kill("SIGTERM");
  await client.closed;
  const status = await proc.exit();
  assert.equal(status.code, 0, proc.output);
  // The proxied socket was closed too.
  const deadline = Date.now() + 10_000;
  while (echo.live > 0 && Date.now() < deadline) await delay(10);
  assert.equal(echo.live, 0);
});

Deno.test("cli: --no-policy warns that checks are off", async () => {
  await using proc = new CliProcess(["-p", "0", "-H", "127.0.0.1", "--no-policy"]);
  await proc.port();
  await proc.waitFor(/policy checks disabled/);
  proc.child.kill("SIGTERM");
  assert.equal((await proc.exit()).code, 0);
});

Deno.test("cli: --pool-per-key 2 turns the pool on and logs its settings", async () => {
  await using proc = new CliProcess(["-p", "0", "-H", "127.0.0.1", "--pool-per-key", "2"]);
  await proc.port();
  await proc.waitFor(/connection pool perKey=2 idleSecs=30/);
  proc.child.kill("SIGTERM");
  assert.equal((await proc.exit()).code, 0);
});

Deno.test("cli: check-policy policy.example.toml --explain 10.0.0.5:22 says denied", async () => {
  const { code, stdout, stderr } = await run(
    "check-policy",
    "policy.example.toml",
    "--explain",
    "10.0.0.5:22",
  );
  assert.equal(code, 0, stderr);
  assert.match(stdout, /valid policy/);
  assert.match(stdout, /^denied: /m);
  assert.match(stdout, /10\.0\.0\.0\/8/);
});

Deno.test("cli: check-policy with a missing file exits 1", async () => {
  const { code, stderr } = await run("check-policy", "missing.toml");
  assert.equal(code, 1);
  assert.match(stderr, /missing\.toml/);
});

Deno.test("cli: check-policy with a malformed --explain target exits 2 and still explains the others", async () => {
  const { code, stdout, stderr } = await run(
    "check-policy",
    "policy.example.toml",
    "--explain",
    "10.0.0.5:22",
    "--explain",
    "example.com:99999",
    "--explain",
    "10.0.0.6:22",
  );
  assert.equal(code, 2, stderr);
  assert.equal(
    stderr,
    "wasmnet: invalid value for --explain: expected HOST:PORT or HOST (e.g. example.com:443, " +
      '10.0.0.5:22, [::1]:80 or example.com), got "example.com:99999"\n',
  );
  assert.match(stdout, /valid policy/);
  assert.match(stdout, /^denied: 10\.0\.0\.5:22 /m);
  assert.match(stdout, /^denied: 10\.0\.0\.6:22 /m);
});

Deno.test("cli: bin/wasmnet execs Deno: the server is the launched process and exits 0 on SIGTERM", async () => {
  await using proc = new CliProcess(["--host", "127.0.0.1", "--port", "0"], launcher());
  const port = await proc.port();
  // exec, not a child: the launched PID runs the Deno binary itself (read through `readlink`:
  // Deno's own file APIs need --allow-all for /proc).
  const exe = await new Deno.Command("readlink", {
    args: ["-f", `/proc/${proc.child.pid}/exe`],
    stdout: "piped",
  }).output();
  assert.equal(new TextDecoder().decode(exe.stdout).trim(), Deno.realPathSync(Deno.execPath()));
  const res = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.equal((await res.json()).status, "ok");
  const sent = Date.now();
  proc.child.kill("SIGTERM");
  const status = await proc.exit();
  assert.equal(status.code, 0, proc.output);
  assert.ok(Date.now() - sent < 5_000, `took ${Date.now() - sent} ms`);
  await assert.rejects(
    Deno.connect({ hostname: "127.0.0.1", port }),
    Deno.errors.ConnectionRefused,
  );
});

Deno.test("cli: bin/wasmnet through a symlink, from another directory, passes every argument", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const link = join(dir, "wasmnet");
    await Deno.symlink(join(ROOT, "bin", "wasmnet"), link);
    const how = launcher(link);
    const out = await new Deno.Command(how.cmd, {
      args: ["check-policy", join(ROOT, "policy.example.toml"), "--explain", "10.0.0.5:22"],
      cwd: dir,
      env: { ...ENV, ...how.env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.match(stdout, /^denied: 10\.0\.0\.5:22 /m);
    const bad = await runWith(how, "--host", "a b");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^wasmnet: invalid value for --host: "a b" /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: an IPv6 client is logged as [addr]:port (one host:port formatter)", async () => {
  assert.ok(canListen("::1"), "this test needs IPv6 loopback (::1)");
  await using proc = new CliProcess(["-p", "0", "-H", "::1", "--no-policy", "--no-demo"]);
  const port = Number((await proc.waitFor(/listening addr=\[::1\]:(\d+)/))[1]);
  const ws = new WebSocket(`ws://[::1]:${port}/`);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  const closed = new Promise((resolve) => ws.onclose = resolve);
  const [line] = await proc.waitFor(/session start .*/);
  assert.match(line, / client=\[::1\]:\d+$/, line);
  ws.close();
  await closed;
  proc.child.kill("SIGTERM");
  assert.equal((await proc.exit()).code, 0, proc.output);
});

Deno.test("cli: bin/wasmnet on a terminal starts without asking for a permission", async () => {
  // script(1) runs the launcher on a pseudo-terminal, where Deno would prompt for any permission
  // the launcher does not grant (Deno's node:tls reads an env var at start) and wait for an answer.
  const how = launcher();
  const child = new Deno.Command("script", {
    args: ["-qfec", `${how.cmd} --host 127.0.0.1 --port 0`, "/dev/null"],
    cwd: ROOT,
    env: { ...ENV, ...how.env },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const dec = new TextDecoder();
  let seen = "";
  const reader = child.stdout.getReader();
  const deadline = setTimeout(() => child.kill("SIGKILL"), 20_000);
  try {
    while (!/listening addr=|requests|Allow\?/.test(seen)) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += dec.decode(value);
    }
    assert.match(seen, /listening addr=127\.0\.0\.1:\d+/, seen);
    assert.doesNotMatch(seen, /Deno requests|Allow\?/);
  } finally {
    clearTimeout(deadline);
    child.kill("SIGTERM");
    await child.stdin.close().catch(() => {});
    while (!(await reader.read()).done);
    await child.stderr.cancel();
    await child.status;
  }
});
