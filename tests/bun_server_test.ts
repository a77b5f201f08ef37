/**
 * The Bun server (`bun run mod.ts`, `server/bun/`: `Bun.serve` with its `websocket` handlers) as a
 * child process, driven by the same Deno clients as the Deno server: plain HTTP, sessions in both
 * framings, the message-size limit (1009) and bad UTF-8 (1007) without harm to other sessions,
 * admission refusals (403, 503), SIGTERM (exit 0, sessions closed 1001, a paused one too), and read
 * backpressure (a free-running upload into a slow upstream arrives whole while the server's
 * memory stays bounded, because `ws.pause()` stops reading the client).
 *
 * The Bun binary: `WASMNET_BUN`, else `.tools/bun/node_modules/.bin/bun` (`bin/_bun.sh` installs
 * it); none fails every test, naming both.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ServerProcess } from "./helpers/server_process.ts";
import { bunPath, ROOT } from "./helpers/target.ts";
import { bunIdleTimeout, sendBufferLimit } from "../src/server/bun/mod.ts";
import { TestClient } from "./helpers/ws_client.ts";
import { Opcode, RawWebSocket } from "./helpers/raw_ws.ts";
import { startTcpEcho } from "./helpers/echo_servers.ts";
import { delay } from "./helpers/wait.ts";
import type { Framing } from "../src/protocol/mod.ts";
import { VERSION } from "../src/version.ts";

const MiB = 1024 * 1024;

/** Starts `bun run mod.ts -H 127.0.0.1 -p 0 --no-demo` with `args`; fails clearly without Bun. */
function startBun(args: string[] = []): Promise<ServerProcess> {
  bunPath(); // throws naming the places looked at
  return ServerProcess.start(args, "bun");
}

/** An HTTP response read off a raw connection. */
interface RawResponse {
  status: number;
  headers: string;
  body: string;
}

/**
 * Sends a WebSocket upgrade request for `/` with `headers` on a raw TCP connection and reads the
 * answer (status line, headers, `Content-Length` body). For refusals: a browser-style client
 * hides the status and body of a refused upgrade.
 */
async function upgradeRequest(port: number, headers: Record<string, string>): Promise<RawResponse> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
  const request = `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n` +
    `Sec-WebSocket-Version: 13\r\n${extra}\r\n`;
  await conn.write(new TextEncoder().encode(request));
  let text = "";
  const buf = new Uint8Array(4096);
  const decoder = new TextDecoder();
  for (;;) {
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) {
      const head = text.slice(0, end);
      const length = Number(/^content-length:\s*(\d+)/im.exec(head)?.[1] ?? 0);
      const body = text.slice(end + 4);
      if (new TextEncoder().encode(body).byteLength >= length || head.includes(" 101 ")) {
        return { status: Number(head.split(" ")[1]), headers: head, body };
      }
    }
    const n = await conn.read(buf);
    if (n === null) throw new Error(`connection closed mid-response: ${JSON.stringify(text)}`);
    text += decoder.decode(buf.subarray(0, n), { stream: true });
  }
}

/** A TCP echo round trip of `bytes` random bytes through a session. */
async function echoRoundTrip(
  client: TestClient,
  id: number,
  port: number,
  bytes: number,
): Promise<void> {
  await client.connect(id, "127.0.0.1", port);
  const data = crypto.getRandomValues(new Uint8Array(Math.min(bytes, 65536)));
  const payload = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i += data.byteLength) payload.set(data.subarray(0, bytes - i), i);
  for (let i = 0; i < bytes; i += 64 * 1024) {
    client.send({ op: "send", id, data: payload.subarray(i, Math.min(bytes, i + 64 * 1024)) });
  }
  assert.deepEqual(await client.collect(id, bytes), payload);
  client.send({ op: "close", id });
  assert.deepEqual(await client.nextFor(id), { ev: "closed", id });
}

/** Waits until `/healthz` reports `n` sessions (10 s at most). */
async function sessionsReach(port: number, n: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  let last = -1;
  while ((last = (await healthz(port)).sessions) !== n) {
    if (Date.now() > deadline) throw new Error(`sessions stayed at ${last}, expected ${n}`);
    await delay(20);
  }
}

/** GETs `/healthz` and returns its JSON. */
async function healthz(
  port: number,
): Promise<{ status: string; version: string; sessions: number }> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.equal(res.status, 200);
  return await res.json();
}

Deno.test("bun server: /healthz, 426 for plain HTTP, the Bun adapter named in the log", async () => {
  await using server = await startBun(["--no-policy"]);
  assert.match(server.output, /listening addr=127\.0\.0\.1:\d+ server=bun/);
  assert.deepEqual(await healthz(server.port ?? 0), {
    status: "ok",
    version: VERSION,
    sessions: 0,
    protocols: { wasmnet: 0, wisp: 0, wsproxy: 0 },
  });
  const res = await fetch(`http://127.0.0.1:${server.port}/some/path`);
  assert.equal(res.status, 426);
  assert.equal(res.headers.get("upgrade"), "websocket");
  assert.match(await res.text(), /expects a WebSocket upgrade/);
  // An upgrade Bun cannot complete (no Sec-WebSocket-Key, RFC 6455 §4.2.1) gets 400.
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port ?? 0 });
  await conn.write(
    new TextEncoder().encode(
      "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    ),
  );
  const reply = new TextDecoder().decode(await readSome(conn));
  assert.match(reply, /^HTTP\/1\.1 400 /);
  assert.match(reply, /bad WebSocket upgrade/);
});

/** Reads once (up to 64 KiB) from `conn`. */
async function readSome(conn: Deno.Conn): Promise<Uint8Array> {
  const buf = new Uint8Array(65536);
  const n = await conn.read(buf);
  return buf.subarray(0, n ?? 0);
}

Deno.test("bun server: a port in use is one line naming the address, exit 1", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const out = await new Deno.Command(bunPath(), {
    args: ["run", "mod.ts", "-H", "127.0.0.1", "-p", String(taken.addr.port), "--no-policy"],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 1, text);
  assert.match(
    text,
    new RegExp(`cannot listen on 127\\.0\\.0\\.1:${taken.addr.port}: address already in use`),
  );
});

Deno.test("bun adapter: idle timeout and send-buffer backstop from the options", () => {
  assert.equal(bunIdleTimeout(undefined), 120);
  assert.equal(bunIdleTimeout(0), 0);
  assert.equal(bunIdleTimeout(1.2), 2);
  assert.equal(bunIdleTimeout(5000), 960); // Bun's maximum
  assert.equal(sendBufferLimit(undefined), 64 * MiB);
  assert.equal(sendBufferLimit({ highWaterMarkBytes: 8 * MiB }), 128 * MiB);
});

for (const framing of ["json", "binary"] as Framing[]) {
  Deno.test(`bun server: TCP echo through a session (${framing})`, async () => {
    await using server = await startBun(["--no-policy"]);
    await using echo = await startTcpEcho();
    await using client = await TestClient.open(server.url, framing);
    await echoRoundTrip(client, 1, echo.port, 1 * MiB);
    // Two sockets at once, interleaved.
    await client.connect(2, "127.0.0.1", echo.port);
    await client.connect(3, "127.0.0.1", echo.port);
    const a = new TextEncoder().encode("to two");
    const b = new TextEncoder().encode("to three");
    client.send({ op: "send", id: 3, data: b });
    client.send({ op: "send", id: 2, data: a });
    assert.deepEqual(await client.collect(2, a.byteLength), a);
    assert.deepEqual(await client.collect(3, b.byteLength), b);
    assert.equal((await healthz(server.port ?? 0)).sessions, 1);
  });
}

Deno.test("bun server: an oversize message closes 1009, bad UTF-8 closes 1007; other sessions go on", async () => {
  const limit = 64 * 1024;
  await using server = await startBun(["--no-policy", "--max-message-bytes", String(limit)]);
  const port = server.port ?? 0;
  await using echo = await startTcpEcho();
  await using bystander = await TestClient.open(server.url, "binary");
  await bystander.connect(1, "127.0.0.1", echo.port);

  // One message just over the limit, in one frame.
  const big = await RawWebSocket.connect(port);
  await big.send(Opcode.binary, new Uint8Array(limit + 1));
  assert.equal(await big.closeCode(), 1009);
  big.drop();

  // The same in fragments (RFC 6455 §5.4): each under the limit, the sum over it, and the
  // client streams 64 MiB more. Bun closes 1009 at once but (unlike the `ws` adapter, which stops
  // reading) reads and discards what follows until its timeout: nothing of it is kept.
  const before = await server.memory();
  const fragmented = await RawWebSocket.connect(port);
  await fragmented.send(Opcode.binary, new Uint8Array(limit / 2), false);
  await fragmented.send(Opcode.continuation, new Uint8Array(limit / 2), false);
  try {
    await fragmented.sendHeader(Opcode.continuation, 64 * MiB, true);
    const junk = new Uint8Array(MiB);
    for (let streamed = 0; streamed < 64 * MiB; streamed += MiB) await fragmented.writeRaw(junk);
  } catch {
    // the server closed the connection: writing fails
  }
  assert.equal(await fragmented.closeCode(), 1009);
  fragmented.drop();
  const after = await server.memory();
  assert.ok(
    after.peak - before.rss < 32 * MiB,
    `the server kept an oversize message: RSS ${before.rss} -> peak ${after.peak} bytes`,
  );

  // Invalid UTF-8 in a text message (RFC 6455 §8.1).
  const bad = await RawWebSocket.connect(port);
  await bad.send(Opcode.text, new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]));
  assert.equal(await bad.closeCode(), 1007);
  bad.drop();

  // Just under the limit is a message the session decodes (and answers: not a valid request).
  await using fits = await TestClient.open(server.url, "binary");
  fits.sendRaw(new Uint8Array(limit));
  const answer = await fits.nextFor(0);
  assert.equal(answer.ev, "error");

  // The bystander's socket still echoes, and the server still answers HTTP.
  const ping = new TextEncoder().encode("still here");
  bystander.send({ op: "send", id: 1, data: ping });
  assert.deepEqual(await bystander.collect(1, ping.byteLength), ping);
  await sessionsReach(port, 2);
  assert.match(server.output, /websocket closed on error .*too big/);
});

Deno.test("bun server: an origin not allowed gets 403, a full server 503", async () => {
  await using server = await startBun([
    "--no-policy",
    "--allow-origin",
    "https://good.example",
    "--max-sessions",
    "1",
  ]);
  const port = server.port ?? 0;
  const evil = await upgradeRequest(port, { Origin: "https://evil.example" });
  assert.equal(evil.status, 403);
  assert.equal(evil.body, "wasmnet: origin https://evil.example is not allowed\n");
  assert.match(evil.headers, /content-type: text\/plain/i);

  // An allowed origin (case-insensitive) and a client without Origin are admitted: one session.
  const first = await RawWebSocket.connect(port, "/any/path", {
    Origin: "https://GOOD.example",
  });
  await sessionsReach(port, 1);
  const full = await upgradeRequest(port, {});
  assert.equal(full.status, 503);
  assert.equal(full.body, "wasmnet: server full (1 sessions)\n");
  first.drop();
  await sessionsReach(port, 0);
  const again = await upgradeRequest(port, { Origin: "https://good.example" });
  assert.equal(again.status, 101);
});

Deno.test("bun server: SIGTERM closes every session 1001 (a paused one too) and exits 0", async () => {
  await using server = await startBun(["--no-policy"]);
  await using echo = await startTcpEcho();
  // An upstream that accepts and never reads: the session uploading to it pauses its reads.
  using stuck = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of stuck) held.push(conn);
  })();
  await using idle = await TestClient.open(server.url, "json");
  await idle.connect(1, "127.0.0.1", echo.port);
  await using uploader = await TestClient.open(server.url, "binary");
  await uploader.connect(1, "127.0.0.1", stuck.addr.port);
  const chunk = new Uint8Array(256 * 1024);
  // Past the kernel's buffers and the session's 2 MiB high-water mark, the server stops reading:
  // the client's own buffer then fills.
  let maxBuffered = 0;
  const deadline = Date.now() + 20_000;
  while (uploader.ws.bufferedAmount < 2 * MiB && Date.now() < deadline) {
    uploader.send({ op: "send", id: 1, data: chunk });
    maxBuffered = Math.max(maxBuffered, uploader.ws.bufferedAmount);
    await delay(1);
  }
  assert.ok(maxBuffered >= 2 * MiB, `the server kept reading (client buffer ${maxBuffered})`);

  const status = await server.stop("SIGTERM");
  assert.equal(status.code, 0, server.output);
  await idle.closed;
  await uploader.closed;
  assert.equal(idle.closeCode, 1001);
  assert.equal(uploader.closeCode, 1001);
  assert.match(server.output, /shutting down sessions=2/);
  assert.match(server.output, /INFO {2}server: stopped/);
  stuck.close();
  await accepting;
  for (const conn of held) conn.close();
});

// Read backpressure on Bun: tests/upload_backpressure_test.ts, which `deno task test:bun` runs
// against the Bun server (64 MiB free-running into a 10 MB/s upstream, the client's own buffer
// reaching its cap, server memory bounded).
