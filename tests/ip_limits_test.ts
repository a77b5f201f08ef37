/**
 * Abuse limits per client address and the client address behind trusted proxies (issue 14):
 * sessions at once and new sessions per minute (HTTP 429 before the upgrade), dials per minute
 * (`error`, Wisp CLOSE 0x49), `X-Forwarded-For` honoured only from `--trust-proxy` peers, and the
 * safe defaults of the command line (an open relay refused, a warning on a public address).
 *
 * @module
 */
import assert from "node:assert/strict";
// @ts-types="npm:@types/ws@^8.18.1"
import NodeWebSocket from "ws";
import { startTestServer } from "./helpers/server.ts";
import { ServerProcess } from "./helpers/server_process.ts";
import { serverCommand } from "./helpers/target.ts";
import { TestClient } from "./helpers/ws_client.ts";
import { startTcpEcho } from "./helpers/echo_servers.ts";
import { RawWisp, wispUrl } from "./helpers/wisp_raw.ts";
import { delay } from "./helpers/wait.ts";
import { CloseReason } from "../src/wisp/mod.ts";

/** Opens a `ws` client with headers; resolves the socket once open, or the HTTP status refused. */
function open(url: string, headers: Record<string, string> = {}): Promise<NodeWebSocket | number> {
  const ws = new NodeWebSocket(url, { headers });
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once("error", reject);
  });
}

async function closeAll(sockets: Array<NodeWebSocket | number>): Promise<void> {
  await Promise.all(
    sockets.map((s) =>
      typeof s === "number" ? undefined : new Promise<void>((r) => {
        s.once("close", () => r());
        s.close();
      })
    ),
  );
}

Deno.test("ip limits: sessions at once per address get 429 beyond the limit, and free up at close", async () => {
  await using server = await startTestServer({ ipLimits: { sessionsPerIp: 2 } });
  const a = await open(server.url);
  const b = await open(server.url);
  assert.equal(await open(server.url), 429);
  await closeAll([a]);
  // The slot frees once the server has seen the close.
  let c: NodeWebSocket | number = 429;
  for (let i = 0; i < 100 && c === 429; i++) {
    c = await open(server.url);
    if (c === 429) await delay(20);
  }
  assert.notEqual(c, 429);
  await closeAll([b, c]);
});

Deno.test("ip limits: new sessions per minute get 429 beyond the limit", async () => {
  await using server = await startTestServer({ ipLimits: { newSessionsPerMinute: 3 } });
  const opened = [await open(server.url), await open(server.url), await open(server.url)];
  assert.ok(opened.every((s) => typeof s !== "number"));
  assert.equal(await open(server.url), 429);
  await closeAll(opened);
});

Deno.test("ip limits: dials per minute beyond the limit get an error; Wisp CLOSE 0x49", async () => {
  await using echo = await startTcpEcho();
  await using server = await startTestServer({ ipLimits: { dialsPerMinute: 3 } });
  await using client = await TestClient.open(server.url, "json");
  for (let id = 1; id <= 3; id++) {
    client.send({ op: "connect", id, addr: "127.0.0.1", port: echo.port });
    assert.equal((await client.nextFor(id)).ev, "connected");
  }
  client.send({ op: "connect", id: 4, addr: "127.0.0.1", port: echo.port });
  const refused = await client.nextFor(4);
  assert.equal(refused.ev, "error");
  assert.match(
    (refused as { msg: string }).msg,
    /too many dials from 127\.0\.0\.1 \(limit 3 per minute\)/,
  );
  // The same address over Wisp shares the budget.
  await using wisp = await RawWisp.open(wispUrl(server.url));
  wisp.connect(1, "127.0.0.1", echo.port);
  assert.equal(await wisp.closeOf(1), CloseReason.throttled);
});

Deno.test("ip limits: X-Forwarded-For counts only from a --trust-proxy peer", async () => {
  // The test's own address (127.0.0.1) is not a trusted proxy: its headers are ignored, so two
  // clients naming different addresses are still one address.
  {
    await using server = await startTestServer({
      trustProxy: ["10.0.0.0/8"],
      ipLimits: { sessionsPerIp: 1 },
    });
    const a = await open(server.url, { "x-forwarded-for": "198.51.100.1" });
    assert.equal(await open(server.url, { "x-forwarded-for": "198.51.100.2" }), 429);
    await closeAll([a]);
  }
  // Trusted: each named address has its own count; the same one is refused.
  {
    await using server = await startTestServer({
      trustProxy: ["127.0.0.1/32", "::1"],
      ipLimits: { sessionsPerIp: 1 },
    });
    const a = await open(server.url, { "x-forwarded-for": "198.51.100.1" });
    const b = await open(server.url, { forwarded: 'for="198.51.100.2"' });
    assert.ok(typeof a !== "number" && typeof b !== "number");
    assert.equal(await open(server.url, { "x-forwarded-for": "6.6.6.6, 198.51.100.1" }), 429);
    await closeAll([a, b]);
  }
});

/** Runs the server command with `args` until it exits or has logged `until`; its output. */
async function runCli(args: string[]): Promise<{ code: number; out: string }> {
  const { cmd, args: prefix } = serverCommand();
  const out = await new Deno.Command(cmd, {
    args: [...prefix, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { WASMNET_LOG: "info" },
  }).output();
  const td = new TextDecoder();
  return { code: out.code, out: td.decode(out.stdout) + td.decode(out.stderr) };
}

Deno.test("safe defaults: --no-policy on a non-loopback address refuses to start (open relay) unless --allow-open-relay", async () => {
  const refused = await runCli(["-H", "0.0.0.0", "-p", "0", "--no-policy"]);
  assert.equal(refused.code, 2, refused.out);
  assert.match(refused.out, /open relay/);
  const proc = await ServerProcess.start(["-H", "0.0.0.0", "--no-policy", "--allow-open-relay"]);
  const status = await proc.stop("SIGTERM");
  assert.equal(status.code, 0, proc.output);
  assert.match(proc.output, /neither --ticket-key nor --allow-origin/);
});
