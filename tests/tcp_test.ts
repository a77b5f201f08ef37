import assert from "node:assert/strict";
import { randomBytes, TestClient } from "./helpers/ws_client.ts";
import { loopbackPolicy, sessionsOf, startTestServer } from "./helpers/server.ts";
import { startHttpServer, startTcpEcho } from "./helpers/echo_servers.ts";
import type { Framing } from "../src/protocol/mod.ts";

async function echoThrough(
  client: TestClient,
  id: number,
  port: number,
  payload: Uint8Array,
  chunk: number,
): Promise<void> {
  await client.connect(id, "127.0.0.1", port);
  for (let i = 0; i < payload.byteLength; i += chunk) {
    client.send({ op: "send", id, data: payload.subarray(i, i + chunk) });
  }
  const back = await client.collect(id, payload.byteLength);
  assert.ok(back.every((b, i) => b === payload[i]), "echoed bytes differ");
  client.send({ op: "close", id });
  assert.deepEqual(await client.nextFor(id), { ev: "closed", id });
}

for (const framing of ["json", "binary"] as Framing[]) {
  Deno.test(`tcp: 1 MiB of random bytes echo byte-identical (${framing})`, async () => {
    await using echo = await startTcpEcho();
    await using server = await startTestServer();
    await using client = await TestClient.open(server.url, framing);
    await echoThrough(client, 1, echo.port, randomBytes(1024 * 1024), 16 * 1024);
  });
}

Deno.test("tcp: HTTP/1.1 GET through the proxy returns the page", async () => {
  await using http = await startHttpServer("hello from a real server\n");
  await using server = await startTestServer();
  await using client = await TestClient.open(server.url);
  await client.connect(5, "127.0.0.1", http.port);
  const req = `GET /page HTTP/1.1\r\nHost: 127.0.0.1:${http.port}\r\nConnection: close\r\n\r\n`;
  client.send({ op: "send", id: 5, data: new TextEncoder().encode(req) });
  let text = "";
  while (true) {
    const ev = await client.nextFor(5);
    if (ev.ev === "closed") break;
    assert.equal(ev.ev, "data");
    if (ev.ev === "data") text += new TextDecoder().decode(ev.data);
  }
  assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(text, /hello from a real server\n$/);
});

Deno.test("tcp: 100 concurrent sockets on one session all echo", async () => {
  await using echo = await startTcpEcho();
  await using server = await startTestServer({ policy: loopbackPolicy({ maxConnections: 200 }) });
  await using client = await TestClient.open(server.url, "binary");
  const ids = Array.from({ length: 100 }, (_, i) => i + 1);
  for (const id of ids) client.send({ op: "connect", id, addr: "127.0.0.1", port: echo.port });
  for (const id of ids) assert.deepEqual(await client.nextFor(id), { ev: "connected", id });
  const payloads = ids.map((id) => randomBytes(4096 + id));
  ids.forEach((id, i) => client.send({ op: "send", id, data: payloads[i] ?? new Uint8Array() }));
  for (const [i, id] of ids.entries()) {
    const back = await client.collect(id, payloads[i]?.byteLength ?? 0);
    assert.deepEqual(back, payloads[i]);
  }
  for (const id of ids) client.send({ op: "close", id });
  for (const id of ids) assert.deepEqual(await client.nextFor(id), { ev: "closed", id });
  assert.equal(echo.accepted, 100);
});

Deno.test("tcp: 20 sessions at once all echo", async () => {
  await using echo = await startTcpEcho();
  await using server = await startTestServer();
  const clients = await Promise.all(
    Array.from({ length: 20 }, (_, i) => TestClient.open(server.url, i % 2 ? "json" : "binary")),
  );
  try {
    assert.equal(await sessionsOf(server), 20);
    await Promise.all(
      clients.map((c, i) => echoThrough(c, 7, echo.port, randomBytes(64 * 1024 + i), 8192)),
    );
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});
