/**
 * The Wisp and wsproxy personalities end to end, packet by packet (a raw Wisp client on a real
 * WebSocket; real loopback peers): both handshakes and the subprotocol echo, CLOSE reasons that
 * name the cause, malformed input that never crashes the server, the same policy as wasmnet
 * sessions, password authentication, and wsproxy streams. The unmodified third-party clients are
 * in `wisp_client_test.ts` (wisp-js) and `wisp_browser_test.ts` (libcurl.js in Chromium).
 *
 * @module
 */
import assert from "node:assert/strict";
import { inProcessOnly, loopbackPolicy, sessionsOf, startTestServer } from "./helpers/server.ts";
import { denoAdapter } from "../src/server/deno/mod.ts";
import { startTcpEcho, startUdpEcho } from "./helpers/echo_servers.ts";
import { RawWisp, wispUrl } from "./helpers/wisp_raw.ts";
import { RawWebSocket } from "./helpers/raw_ws.ts";
import { randomBytes } from "./helpers/ws_client.ts";
import { until } from "./helpers/wait.ts";
import { Policy } from "../src/policy/mod.ts";
import {
  CloseReason,
  encodeCredentials,
  encodeInfo,
  encodePacket,
  ExtensionId,
  type WispPacket,
} from "../src/wisp/mod.ts";
import { DEFAULT_WISP_BUFFER_PACKETS } from "../src/session/mod.ts";

const te = new TextEncoder();
const td = new TextDecoder();

function info(p: WispPacket): Extract<WispPacket, { type: "info" }> {
  assert.equal(p.type, "info");
  return p as Extract<WispPacket, { type: "info" }>;
}

Deno.test("wisp: a v1 client (no subprotocol) gets CONTINUE on stream 0 first, then echoes", async () => {
  await using echo = await startTcpEcho();
  await using server = await startTestServer();
  await using client = await RawWisp.connect(wispUrl(server.url));
  assert.equal(client.ws.protocol, "");
  const first = await client.next(() => true);
  assert.deepEqual(first, { type: "continue", stream: 0, remaining: DEFAULT_WISP_BUFFER_PACKETS });
  client.buffer = DEFAULT_WISP_BUFFER_PACKETS;
  client.connect(1, "127.0.0.1", echo.port);
  client.data(1, te.encode("hello wisp v1"));
  assert.equal(td.decode(await client.collect(1, 13)), "hello wisp v1");
  client.closeStream(1);
});

Deno.test("wisp: v2 echoes the offered subprotocol, sends INFO first, CONTINUE after the client's INFO", async () => {
  await using server = await startTestServer({ wisp: { motd: "hello from the tests" } });
  // epoxy offers a random UUID as its subprotocol.
  const offered = crypto.randomUUID();
  await using client = await RawWisp.connect(wispUrl(server.url), offered);
  assert.equal(client.ws.protocol, offered);
  const hello = info(await client.next(() => true));
  assert.equal(hello.stream, 0);
  assert.deepEqual([hello.major, hello.minor], [2, 0]);
  const ids = hello.extensions.map((e) => e.id);
  assert.deepEqual(ids, [ExtensionId.udp, ExtensionId.motd, ExtensionId.streamOpen]);
  const motd = hello.extensions.find((e) => e.id === ExtensionId.motd);
  assert.equal(td.decode(motd?.payload), "hello from the tests");
  // Nothing more until the client's INFO.
  await assert.rejects(client.next(() => true, 300), /timed out/);
  client.send(encodeInfo(2, 0, []));
  assert.deepEqual(await client.next(() => true), {
    type: "continue",
    stream: 0,
    remaining: DEFAULT_WISP_BUFFER_PACKETS,
  });
});

Deno.test("wisp: stream open confirmation (extension 0x05) is a CONTINUE once the socket connected", async () => {
  await using echo = await startTcpEcho();
  await using server = await startTestServer();
  await using client = await RawWisp.open(wispUrl(server.url), { protocol: "wisp" });
  client.connect(7, "127.0.0.1", echo.port);
  const confirm = await client.next((p) => p.stream === 7);
  assert.deepEqual(confirm, { type: "continue", stream: 7, remaining: client.buffer });
  // Without the extension in the client's INFO: no confirmation, data flows at once.
  await using quiet = await RawWisp.open(wispUrl(server.url), { protocol: "wisp", info: [] });
  quiet.connect(7, "127.0.0.1", echo.port);
  quiet.data(7, te.encode("x"));
  assert.deepEqual(await quiet.next((p) => p.stream === 7), {
    type: "data",
    stream: 7,
    payload: te.encode("x"),
  });
});

Deno.test("wisp: UDP streams (v2 extension 0x01) carry datagrams both ways", async () => {
  await using udp = await startUdpEcho();
  await using server = await startTestServer();
  await using client = await RawWisp.open(wispUrl(server.url), { protocol: "wisp" });
  client.connect(3, "127.0.0.1", udp.port, true);
  for (const text of ["one", "two", "three"]) {
    client.send(encodePacket({ type: "data", stream: 3, payload: te.encode(text) }));
    const p = await client.next((p) => p.stream === 3);
    assert.equal(p.type, "data");
    if (p.type === "data") assert.equal(td.decode(p.payload), text);
  }
  client.closeStream(3);
  await until(() => udp.datagrams === 3, "3 datagrams echoed");
});

Deno.test("wisp: CLOSE reasons name the cause (refused 0x44, invalid 0x41, peer closed 0x02)", async () => {
  await using echo = await startTcpEcho();
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const refusedPort = (closed.addr as Deno.NetAddr).port;
  closed.close();
  await using server = await startTestServer();
  await using client = await RawWisp.open(wispUrl(server.url), { protocol: "wisp" });
  client.connect(1, "127.0.0.1", refusedPort);
  assert.equal(await client.closeOf(1), CloseReason.refused);
  client.connect(2, "exa mple.com", 80);
  assert.equal(await client.closeOf(2), CloseReason.invalid);
  client.send(encodePacket({ type: "connect", stream: 4, streamType: 9, port: 80, host: "x" }));
  assert.equal(await client.closeOf(4), CloseReason.invalid);
  client.connect(6, "127.0.0.1", 0);
  assert.equal(await client.closeOf(6), CloseReason.invalid, "port 0");
  // A peer that closes: CLOSE 0x02 after its data.
  const peer = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const conn = await peer.accept();
    await conn.write(te.encode("bye"));
    conn.close();
  })();
  client.connect(5, "127.0.0.1", (peer.addr as Deno.NetAddr).port);
  assert.equal(td.decode(await client.collect(5, 3)), "bye");
  assert.equal(await client.closeOf(5), CloseReason.voluntary);
  await served;
  peer.close();
  assert.equal(echo.accepted, 0);
});

Deno.test("wisp: the policy is the wasmnet sessions' policy: a denied destination gets CLOSE 0x48 and no packet leaves", async () => {
  await using echo = await startTcpEcho();
  const policy = Policy.fromToml(
    `[network]\ndeny = ["127.0.0.1/32", "[::1]"]\nallow = ["*"]\nmax_bandwidth_mbps = 0`,
    "deny-loopback.toml",
  );
  await using server = await startTestServer({ policy });
  await using client = await RawWisp.open(wispUrl(server.url), { protocol: "wisp" });
  // Every spelling of the denied address is normalised before matching.
  const spellings = ["127.0.0.1", "127.1", "0x7f.0.0.1", "2130706433", "::ffff:127.0.0.1"];
  for (const [i, host] of spellings.entries()) {
    client.connect(10 + i, host, echo.port);
    assert.equal(await client.closeOf(10 + i), CloseReason.blocked, host);
  }
  client.connect(20, "127.0.0.1", echo.port, true);
  assert.equal(await client.closeOf(20), CloseReason.blocked, "UDP too");
  assert.equal(echo.accepted, 0);
});

Deno.test("wisp: max_connections reached → CLOSE 0x49 (throttled), the other streams live on", async () => {
  await using echo = await startTcpEcho();
  await using server = await startTestServer({ policy: loopbackPolicy({ maxConnections: 2 }) });
  await using client = await RawWisp.open(wispUrl(server.url), { protocol: "wisp" });
  client.connect(1, "127.0.0.1", echo.port);
  client.connect(2, "127.0.0.1", echo.port);
  client.connect(3, "127.0.0.1", echo.port);
  assert.equal(await client.closeOf(3), CloseReason.throttled);
  client.data(1, te.encode("still here"));
  assert.equal(td.decode(await client.collect(1, 10)), "still here");
});

Deno.test("wisp: malformed packets never crash the server: CLOSE 0x41 on their stream, or a WebSocket close", async () => {
  await using echo = await startTcpEcho();
  await using server = await startTestServer();
  const url = wispUrl(server.url);
  {
    await using client = await RawWisp.open(url, { protocol: "wisp" });
    client.send(Uint8Array.of(0x09, 5, 0, 0, 0, 1, 2)); // unknown type on stream 5
    assert.equal(await client.closeOf(5), CloseReason.invalid);
    client.send(Uint8Array.of(0x03, 6, 0, 0, 0, 1)); // CONTINUE with 1 payload byte
    assert.equal(await client.closeOf(6), CloseReason.invalid);
    client.send(Uint8Array.of(0x01, 7, 0, 0, 0, 1)); // CONNECT too short
    assert.equal(await client.closeOf(7), CloseReason.invalid);
    client.send(Uint8Array.of(0x01, 8, 0, 0, 0, 1, 80, 0, 0xff, 0xfe)); // host not UTF-8
    assert.equal(await client.closeOf(8), CloseReason.invalid);
    // The connection still works.
    client.connect(9, "127.0.0.1", echo.port);
    client.data(9, te.encode("ok"));
    assert.equal(td.decode(await client.collect(9, 2)), "ok");
  }
  {
    await using client = await RawWisp.open(url, { protocol: "wisp" });
    client.send(Uint8Array.of(0x02, 1)); // shorter than a header
    assert.equal((await client.waitClosed()).code, 1002);
  }
  {
    await using client = await RawWisp.open(url);
    client.send("a text message");
    assert.equal((await client.waitClosed()).code, 1003);
  }
  // The server is still serving.
  await using after = await RawWisp.open(url);
  after.connect(1, "127.0.0.1", echo.port);
  after.data(1, te.encode("alive"));
  assert.equal(td.decode(await after.collect(1, 5)), "alive");
});

Deno.test("wisp: password auth (--wisp-users): right credentials (both layouts) open, wrong get 0xc0, none get 0xc2, v1 and wsproxy are refused", async () => {
  await using echo = await startTcpEcho();
  await using server = await startTestServer({
    wisp: { users: new Map([["alice", "s3cret:with colon"], ["bob", "pw"]]) },
  });
  const url = wispUrl(server.url);
  const password = (payload: Uint8Array) => [{ id: ExtensionId.password, payload }];
  {
    await using client = await RawWisp.connect(url, "wisp");
    const hello = info(await client.next(() => true));
    const ext = hello.extensions.find((e) => e.id === ExtensionId.password);
    assert.deepEqual(ext?.payload, Uint8Array.of(1), "password auth required");
  }
  // draft-6 layout
  {
    await using client = await RawWisp.open(url, {
      protocol: "wisp",
      info: password(encodeCredentials("alice", "s3cret:with colon")),
    });
    client.connect(1, "127.0.0.1", echo.port);
    client.data(1, te.encode("in"));
    assert.equal(td.decode(await client.collect(1, 2)), "in");
  }
  // wisp-js 0.5 layout: [user len u8][pass len u16 LE][user][pass]
  {
    const u = te.encode("bob");
    const p = te.encode("pw");
    const payload = new Uint8Array([u.length, p.length, 0, ...u, ...p]);
    await using _client = await RawWisp.open(url, { protocol: "wisp", info: password(payload) });
  }
  for (
    const [what, exts, reason] of [
      [
        "wrong password",
        password(encodeCredentials("alice", "nope")),
        CloseReason.authInvalidPassword,
      ],
      [
        "unknown user",
        password(encodeCredentials("mallory", "pw")),
        CloseReason.authInvalidPassword,
      ],
      ["no credentials", [], CloseReason.authRequired],
    ] as const
  ) {
    await using client = await RawWisp.connect(url, "wisp");
    await client.next((p) => p.type === "info");
    client.send(encodeInfo(2, 0, exts));
    assert.equal(await client.closeOf(0), reason, what);
    assert.equal((await client.waitClosed()).code, 1008, what);
  }
  {
    await using v1 = await RawWisp.connect(url);
    assert.equal(await v1.closeOf(0), CloseReason.authRequired);
    await v1.waitClosed();
  }
  await assert.rejects(
    RawWebSocket.connect(server.addr.port, `/wisp/127.0.0.1:${echo.port}`),
    /403/,
  );
  assert.equal(echo.accepted, 1);
});

Deno.test("wisp: --wisp off leaves /wisp/ to wasmnet; --wisp-prefix moves it", async () => {
  {
    await using server = await startTestServer({ wisp: false });
    await using client = await RawWisp.connect(wispUrl(server.url));
    // A wasmnet session greets nobody: no CONTINUE.
    await assert.rejects(client.next(() => true, 300), /timed out/);
    const health = await (await fetch(new URL("/healthz", server.url.replace("ws", "http"))))
      .json();
    assert.equal(health.protocols.wasmnet, 1);
  }
  {
    await using server = await startTestServer({ wisp: { prefix: "/net/w/" } });
    await using client = await RawWisp.open(wispUrl(server.url, "/net/w/"));
    assert.equal(client.buffer, DEFAULT_WISP_BUFFER_PACKETS);
    assert.equal(await sessionsOf(server), 1);
  }
});

Deno.test("wsproxy: /wisp/HOST:PORT is one TCP stream per WebSocket, binary both ways", async () => {
  await using echo = await startTcpEcho({ hostname: "::1" });
  await using server = await startTestServer();
  const ws = new WebSocket(new URL(`/wisp/[::1]:${echo.port}`, server.url));
  ws.binaryType = "arraybuffer";
  const got: Uint8Array[] = [];
  let total = 0;
  const payload = randomBytes(200_000);
  const done = new Promise<void>((resolve, reject) => {
    ws.onmessage = (e) => {
      const b = new Uint8Array(e.data as ArrayBuffer);
      got.push(b);
      total += b.byteLength;
      if (total >= payload.byteLength) resolve();
    };
    ws.onclose = (e) => reject(new Error(`closed ${e.code} ${e.reason}`));
  });
  await new Promise((r) => ws.onopen = r);
  for (let off = 0; off < payload.byteLength; off += 16384) {
    ws.send(payload.subarray(off, off + 16384));
  }
  await done;
  const joined = new Uint8Array(total);
  let off = 0;
  for (const b of got) {
    joined.set(b, off);
    off += b.byteLength;
  }
  assert.deepEqual(joined, payload);
  const health = await (await fetch(new URL("/healthz", server.url.replace("ws", "http")))).json();
  assert.equal(health.protocols.wsproxy, 1);
  const closed = new Promise<void>((r) => ws.onclose = () => r());
  ws.close();
  await closed;
  await until(() => echo.live === 0, "the TCP connection closed with the WebSocket");
});

Deno.test("wsproxy: a peer that closes closes the WebSocket (1000); a denied target 1008; a bad target 400", async () => {
  const peer = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (peer.addr as Deno.NetAddr).port;
  const served = (async () => {
    const conn = await peer.accept();
    await conn.write(te.encode("hi"));
    conn.close();
  })();
  const policy = Policy.fromToml(
    `[network]\ndeny = ["10.0.0.0/8"]\nallow = ["*"]\nmax_bandwidth_mbps = 0`,
    "deny-10.toml",
  );
  await using server = await startTestServer({ policy });
  const closeOf = (path: string) =>
    new Promise<{ code: number; reason: string; data: string }>((resolve) => {
      const ws = new WebSocket(new URL(path, server.url));
      let data = "";
      ws.onmessage = async (e) => data += await (e.data as Blob).text();
      ws.onclose = (e) => setTimeout(() => resolve({ code: e.code, reason: e.reason, data }), 10);
    });
  const ended = await closeOf(`/wisp/127.0.0.1:${port}`);
  assert.equal(ended.code, 1000);
  assert.equal(ended.data, "hi");
  await served;
  peer.close();
  const denied = await closeOf("/wisp/10.1.2.3:80");
  assert.equal(denied.code, 1008);
  assert.match(denied.reason, /^denied: /);
  for (const bad of ["/wisp/nohost", "/wisp/host:0", "/wisp/host:99999", "/wisp/::1:80"]) {
    await assert.rejects(RawWebSocket.connect(server.addr.port, bad), /400/, bad);
  }
});

Deno.test({
  name: "wisp: the Deno.upgradeWebSocket adapter echoes the subprotocol and greets once open",
  ...inProcessOnly("a server adapter has no command-line form"),
  fn: async () => {
    await using echo = await startTcpEcho();
    await using server = await startTestServer({
      adapter: denoAdapter({ readBackpressure: false }),
    });
    await using client = await RawWisp.open(wispUrl(server.url), { protocol: "wisp-v2" });
    assert.equal(client.ws.protocol, "wisp-v2");
    client.connect(1, "127.0.0.1", echo.port);
    client.data(1, te.encode("deno.serve"));
    assert.equal(td.decode(await client.collect(1, 10)), "deno.serve");
    await using v1 = await RawWisp.open(wispUrl(server.url));
    assert.equal(v1.buffer, DEFAULT_WISP_BUFFER_PACKETS);
  },
});
