/**
 * The HTTP side: `/healthz`, 426 for plain requests, WebSocket upgrades on any path, the
 * `wasmnet()` middleware inside a user's own Hono app, `shutdown()` with live sessions, and the
 * `sessions` counter.
 *
 * @module
 */
import assert from "node:assert/strict";
import { until } from "./helpers/wait.ts";
import { Hono } from "hono";
import { TestClient } from "./helpers/ws_client.ts";
import {
  inProcess,
  loopbackPolicy,
  sessionsOf,
  sessionsReach,
  startTestServer,
} from "./helpers/server.ts";
import { startTcpEcho } from "./helpers/echo_servers.ts";
import { SessionRegistry } from "../src/server/mod.ts";
import { wasmnet } from "../src/server/deno/mod.ts";
import { VERSION } from "../src/version.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function httpUrl(wsUrl: string, path: string): string {
  return wsUrl.replace(/^ws:/, "http:").replace(/\/$/, "") + path;
}

/** Echoes `text` through socket `id` of `client`. */
async function echoThrough(
  client: TestClient,
  id: number,
  port: number,
  text: string,
): Promise<void> {
  await client.connect(id, "127.0.0.1", port);
  client.send({ op: "send", id, data: enc.encode(text) });
  assert.equal(dec.decode(await client.collect(id, enc.encode(text).byteLength)), text);
  client.send({ op: "close", id });
  assert.deepEqual(await client.nextFor(id), { ev: "closed", id });
}

Deno.test("server: /healthz answers JSON with status, version and sessions", async () => {
  await using server = await startTestServer();
  const res = await fetch(httpUrl(server.url, "/healthz"));
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  assert.deepEqual(await res.json(), {
    status: "ok",
    version: VERSION,
    sessions: 0,
    protocols: { wasmnet: 0, wisp: 0, wsproxy: 0 },
  });
  await using _client = await TestClient.open(server.url);
  const body = await (await fetch(httpUrl(server.url, "/healthz"))).json();
  assert.equal(body.sessions, 1);
  assert.equal(body.protocols.wasmnet, 1);
});

for (const path of ["/", "/anything", "/ws", "/a/b?x=1"]) {
  Deno.test(`server: a plain GET ${path} gets 426 Upgrade Required`, async () => {
    await using server = await startTestServer();
    const res = await fetch(httpUrl(server.url, path));
    assert.equal(res.status, 426);
    assert.equal(res.headers.get("upgrade")?.toLowerCase(), "websocket");
    assert.match(await res.text(), /WebSocket/);
  });
}

Deno.test("server: a POST to / gets 426 too", async () => {
  await using server = await startTestServer();
  const res = await fetch(httpUrl(server.url, "/"), { method: "POST", body: "x" });
  assert.equal(res.status, 426);
  await res.body?.cancel();
});

for (const path of ["/", "/ws", "/a/b?x=1"]) {
  Deno.test(`server: a WebSocket upgrade on ${path} starts a session that proxies`, async () => {
    await using echo = await startTcpEcho();
    await using server = await startTestServer();
    const url = server.url.replace(/\/$/, "") + path;
    await using client = await TestClient.open(url, "binary");
    assert.equal(await sessionsOf(server), 1);
    await echoThrough(client, 1, echo.port, `via ${path}`);
  });
}

Deno.test("server: wasmnet() mounted on a route of a user's Hono app", async () => {
  await using echo = await startTcpEcho();
  const registry = new SessionRegistry();
  const app = new Hono();
  app.get("/", (c) => c.text("home page"));
  app.get("/net", wasmnet({ policy: loopbackPolicy() }, registry));
  app.get("/net-default", wasmnet({ policy: loopbackPolicy() }));
  app.get("/api/items", (c) => c.json({ items: [1, 2] }));
  const http = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen(): void {} }, app.fetch);
  try {
    const base = `127.0.0.1:${http.addr.port}`;
    // The proxy works on its route, in both framings.
    {
      await using client = await TestClient.open(`ws://${base}/net`, "json");
      assert.equal(registry.size, 1);
      await echoThrough(client, 1, echo.port, "through the user's app");
      client.framing = "binary";
      await echoThrough(client, 2, echo.port, "binary too");
    }
    // Without an explicit registry as well.
    {
      await using client = await TestClient.open(`ws://${base}/net-default`, "binary");
      await echoThrough(client, 3, echo.port, "default registry");
    }
    // The app's other routes still work.
    assert.equal(await (await fetch(`http://${base}/`)).text(), "home page");
    assert.deepEqual(await (await fetch(`http://${base}/api/items`)).json(), { items: [1, 2] });
    // A plain GET on the proxy route falls through to the app (no other handler: 404).
    const plain = await fetch(`http://${base}/net`);
    assert.equal(plain.status, 404);
    await plain.body?.cancel();
    // No WebSocket upgrade on a route without the middleware.
    await assert.rejects(TestClient.open(`ws://${base}/api/items`));
    await until(() => registry.size === 0, "the sessions end");
  } finally {
    await registry.closeAll();
    await http.shutdown();
  }
});

Deno.test("server: shutdown() closes live sessions' WebSockets and resolves", async () => {
  await using echo = await startTcpEcho();
  const server = await startTestServer();
  try {
    const clients = await Promise.all([
      TestClient.open(server.url, "json"),
      TestClient.open(server.url, "binary"),
      TestClient.open(server.url + "deep/path", "json"),
    ]);
    for (const c of clients) await c.connect(1, "127.0.0.1", echo.port);
    await until(() => echo.live === 3, "three proxied sockets are open");
    assert.equal(await sessionsOf(server), 3);
    await server.shutdown();
    await Promise.all(clients.map((c) => c.closed));
    for (const c of clients) assert.equal(c.isClosed, true);
    await until(() => echo.live === 0, "the proxied sockets are closed");
    if (inProcess()) assert.equal(server.sessions, 0); // a child has exited 0 (checked)
    // Idempotent, and the server is gone.
    await server.shutdown();
    await server.finished;
    await assert.rejects(fetch(httpUrl(server.url, "/healthz")));
  } finally {
    await server.shutdown();
  }
});

Deno.test("server: sessions counts opens and closes", async () => {
  await using server = await startTestServer();
  assert.equal(await sessionsOf(server), 0);
  const a = await TestClient.open(server.url);
  const b = await TestClient.open(server.url, "binary");
  assert.equal(await sessionsOf(server), 2);
  await a.close();
  await sessionsReach(server, 1, "one session left");
  const c = await TestClient.open(server.url);
  assert.equal(await sessionsOf(server), 2);
  await Promise.all([b.close(), c.close()]);
  await sessionsReach(server, 0, "no session left");
});

Deno.test("server: startServer with a signal shuts down when it aborts", async () => {
  const controller = new AbortController();
  const server = await startTestServer({ signal: controller.signal });
  const client = await TestClient.open(server.url);
  controller.abort();
  await client.closed;
  await server.finished;
  if (inProcess()) assert.equal(server.sessions, 0); // a child has exited 0 (checked)
});

/** Status code of a raw WebSocket upgrade request to `port`, with `origin` if given. */
async function upgradeStatus(port: number, origin?: string): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(enc.encode(
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
        (origin ? `Origin: ${origin}\r\n` : "") + "\r\n",
    ));
    const buf = new Uint8Array(1024);
    const n = await conn.read(buf);
    const head = dec.decode(buf.subarray(0, n ?? 0));
    return Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
  } finally {
    conn.close();
  }
}

Deno.test("server: allowedOrigins refuses other web origins with 403 and admits listed ones", async () => {
  await using server = await startTestServer({ allowedOrigins: ["https://app.example.com"] });
  assert.equal(await upgradeStatus(server.addr.port, "https://evil.example"), 403);
  assert.equal(await upgradeStatus(server.addr.port, "http://app.example.com"), 403);
  assert.equal(await upgradeStatus(server.addr.port, "https://APP.example.com"), 101);
  // Non-browser clients send no Origin: admitted.
  assert.equal(await upgradeStatus(server.addr.port), 101);
  await sessionsReach(server, 0, "the probe sessions ended");
});

Deno.test("server: without allowedOrigins any origin may open a session", async () => {
  await using server = await startTestServer();
  assert.equal(await upgradeStatus(server.addr.port, "https://anything.example"), 101);
  await sessionsReach(server, 0, "the probe session ended");
});

Deno.test("server: maxSessions refuses the next upgrade with 503; a freed slot admits again", async () => {
  await using server = await startTestServer({ maxSessions: 2 });
  await using a = await TestClient.open(server.url);
  const b = await TestClient.open(server.url);
  assert.equal(await upgradeStatus(server.addr.port), 503);
  await b.close();
  await sessionsReach(server, 1, "session b ended");
  await using c = await TestClient.open(server.url);
  assert.equal(await sessionsOf(server), 2);
  void a;
  void c;
});
