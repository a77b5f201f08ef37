/**
 * The audit log (`--log-format json`) of the real server as a child process (the command
 * `WASMNET_TEST_SERVER` chooses: Deno by default, Bun, the binary): every output line is one JSON
 * object, with the fields of session start/end and socket open/deny/close; and a server whose
 * stdout is a pipe nobody reads keeps serving, dropping (and counting) log lines instead of
 * blocking.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Policy } from "../src/policy/mod.ts";
import { startTcpEcho } from "./helpers/echo_servers.ts";
import { TestClient } from "./helpers/ws_client.ts";
import { ServerProcess } from "./helpers/server_process.ts";
import { ROOT, serverCommand } from "./helpers/target.ts";

/** A JSON log line. */
type Line = Record<string, unknown>;

/** Writes a policy that allows everything but 127.0.0.2 into a new directory; returns its path. */
async function denyingPolicyFile(): Promise<{ dir: string; file: string }> {
  const dir = await Deno.makeTempDir({ prefix: "wasmnet-audit-" });
  const file = join(dir, "policy.toml");
  const policy = Policy.fromConfig(
    { deny: ["127.0.0.2"], allow: ["*"], maxBandwidthMbps: 0 },
    "<audit test>",
  );
  await Deno.writeTextFile(file, policy.toToml());
  return { dir, file };
}

/** Every output line parsed as JSON (fails on a line that is not one JSON object). */
function jsonLines(output: string): Line[] {
  return output.split("\n").filter((l) => l !== "").map((l) => {
    let parsed: unknown;
    assert.doesNotThrow(() => parsed = JSON.parse(l), `not JSON: ${l}`);
    assert.ok(typeof parsed === "object" && parsed !== null && !Array.isArray(parsed), l);
    return parsed as Line;
  });
}

/** The first line with `msg` (and matching `extra`), asserting it exists. */
function find(lines: Line[], msg: string, extra: Line = {}): Line {
  const line = lines.find((l) =>
    l.msg === msg && Object.entries(extra).every(([k, v]) => l[k] === v)
  );
  assert.ok(line, `no "${msg}" line ${JSON.stringify(extra)} in:\n${JSON.stringify(lines)}`);
  return line;
}

/** Asserts a line's ISO time and its session fields (session number, protocol, tenant, ip). */
function assertWho(line: Line): void {
  assert.match(String(line.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(line.level, "info");
  assert.equal(typeof line.session, "number");
  assert.equal(line.protocol, "wasmnet");
  assert.equal(line.tenant, "");
  assert.equal(line.ip, "127.0.0.1");
}

Deno.test("audit log: --log-format json prints session start/end and socket open/deny/close as JSON", async () => {
  const { dir, file } = await denyingPolicyFile();
  try {
    await using echo = await startTcpEcho();
    await using proc = await ServerProcess.start(["--policy", file, "--log-format", "json"]);
    {
      await using client = await TestClient.open(proc.url);
      client.send({ op: "connect", id: 1, addr: "localhost", port: echo.port });
      assert.equal((await client.next((e) => e.id === 1)).ev, "connected");
      client.send({ op: "send", id: 1, data: new TextEncoder().encode("hello") });
      assert.equal((await client.next((e) => e.id === 1)).ev, "data");
      client.send({ op: "close", id: 1 });
      assert.equal((await client.next((e) => e.id === 1)).ev, "closed");
      client.send({ op: "connect", id: 2, addr: "127.0.0.2", port: 22 });
      assert.equal((await client.next((e) => e.id === 2)).ev, "denied");
      client.send({ op: "resolve", id: 3, name: "127.0.0.2" });
      assert.equal((await client.next((e) => e.id === 3)).ev, "denied");
    }
    assert.equal((await proc.stop()).code, 0, proc.output);
    const lines = jsonLines(proc.output);
    for (const line of lines) {
      assert.equal(typeof line.msg, "string");
      assert.equal(typeof line.logger, "string");
      assert.ok(
        ["debug", "info", "warn", "error"].includes(String(line.level)),
        String(line.level),
      );
    }
    find(lines, "listening");

    const start = find(lines, "session start");
    assertWho(start);
    assert.match(String(start.client), /^127\.0\.0\.1:\d+$/);

    const open = find(lines, "socket open", { id: 1 });
    assertWho(open);
    assert.equal(open.session, start.session);
    assert.equal(open.op, "connect");
    assert.equal(open.dest, `localhost:${echo.port}`, "the destination as sent");
    assert.match(String(open.addr), new RegExp(`^(127\\.0\\.0\\.1|\\[::1\\]):${echo.port}$`));
    assert.equal(open.kind, "tcp");

    const close = find(lines, "socket close", { id: 1 });
    assertWho(close);
    assert.equal(close.op, "connect");
    assert.equal(close.dest, `localhost:${echo.port}`);
    assert.equal(close.addr, open.addr, "the resolved address");
    assert.equal(close.up, 5);
    assert.equal(close.down, 5);
    assert.equal(close.end, "closed");
    assert.match(String(close.secs), /^\d+\.\d{3}$/);

    const denied = find(lines, "socket denied", { id: 2 });
    assertWho(denied);
    assert.equal(denied.op, "connect");
    assert.equal(denied.dest, "127.0.0.2:22");
    assert.equal(denied.rule, "127.0.0.2");
    assert.match(String(denied.reason), /127\.0\.0\.2:22 is denied by rule "127\.0\.0\.2"/);
    assert.equal(lines.filter((l) => l.msg === "socket open" && l.id === 2).length, 0);

    const lookup = find(lines, "socket denied", { id: 3 });
    assert.equal(lookup.op, "resolve");
    assert.equal(lookup.dest, "127.0.0.2");
    assert.equal(lookup.rule, "127.0.0.2");

    const end = find(lines, "session end");
    assertWho(end);
    assert.equal(end.session, start.session);
    assert.equal(end.sockets, 1);
    assert.equal(end.up, 5);
    assert.equal(end.down, 5);
    assert.match(String(end.secs), /^\d+\.\d{3}$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("audit log: a server whose stdout nobody reads keeps serving and counts dropped lines", async () => {
  await using echo = await startTcpEcho();
  const { cmd, args } = serverCommand();
  const child = new Deno.Command(cmd, {
    args: [
      ...args,
      "-H",
      "127.0.0.1",
      "-p",
      "0",
      "--no-policy",
      "--no-demo",
      "--log-format",
      "json",
    ],
    cwd: ROOT,
    env: { WASMNET_LOG: "info" },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  try {
    // Read stdout only until the server says where it listens; never again after that.
    let text = "";
    let port: number | undefined;
    const deadline = Date.now() + 30_000;
    while (port === undefined) {
      assert.ok(Date.now() < deadline, `the server did not start: ${text}`);
      const { value, done } = await reader.read();
      assert.ok(!done, `stdout ended: ${text}`);
      text += new TextDecoder().decode(value);
      const m = /"msg":"listening","addr":"127\.0\.0\.1:(\d+)"/.exec(text);
      if (m) port = Number(m[1]);
    }
    // ~2,500 dials, each logging an open and a close line of ~250 bytes: well over the pipe's
    // 64 KiB and the server's 1 MiB output buffer.
    await using client = await TestClient.open(`ws://127.0.0.1:${port}/`, "binary");
    const dials = 2500;
    let logged = 0;
    for (let id = 1; id <= dials; id++) {
      client.send({ op: "connect", id, addr: "127.0.0.1", port: echo.port });
      assert.equal((await client.next((e) => e.id === id)).ev, "connected");
      client.send({ op: "close", id });
      assert.equal((await client.next((e) => e.id === id)).ev, "closed");
      logged += 500;
    }
    assert.ok(logged > 1024 * 1024, "more log than the pipe and the buffer hold");
    // Still serving: /healthz, /metrics, and an echo through a new socket.
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(health.status, 200);
    assert.equal((await health.json() as { status: string }).status, "ok");
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const dropped = Number(/^wasmnet_log_lines_dropped_total (\d+)$/m.exec(metrics)?.[1] ?? 0);
    assert.ok(dropped > 0, `lines were dropped, not waited for:\n${dropped}`);
    client.send({ op: "connect", id: 9999, addr: "127.0.0.1", port: echo.port });
    assert.equal((await client.next((e) => e.id === 9999)).ev, "connected");
    client.send({ op: "send", id: 9999, data: new TextEncoder().encode("still here") });
    const ev = await client.next((e) => e.id === 9999);
    assert.ok(ev.ev === "data" && new TextDecoder().decode(ev.data) === "still here");
    client.ws.close();
    // It also stops on SIGTERM (waiting at most a bounded time for the undrained output).
    child.kill("SIGTERM");
    const status = await child.status;
    assert.equal(status.code, 0);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await reader.cancel();
    await child.status;
  }
});
