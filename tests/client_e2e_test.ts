// Client library against the real wasmnet server: real WebSocket, real loopback TCP/TLS/UDP/DNS
// peers, port 0 everywhere, both framings.
import assert from "node:assert/strict";
import { Policy, setLogLevel, type WasmnetServer } from "../mod.ts";
import { WasmnetClient, type WasmnetClientOptions, WasmnetError } from "../src/client/mod.ts";
import {
  startHttpServer,
  startTcpEcho,
  startTlsEcho,
  startUdpEcho,
} from "./helpers/echo_servers.ts";
import { makeTestPki } from "./helpers/tls_certs.ts";
import { startDnsServer } from "./helpers/dns_server.ts";
import { startTestServer, testTransport } from "./helpers/server.ts";

setLogLevel((Deno.env.get("WASMNET_LOG") as "debug" | undefined) ?? "warn");

const MiB = 1024 * 1024;

function serve(policy: Policy = Policy.allowAll()): Promise<WasmnetServer> {
  return startTestServer({ policy });
}

async function open(url: string, options: WasmnetClientOptions = {}): Promise<WasmnetClient> {
  const client = new WasmnetClient(url, options);
  await client.ready();
  return client;
}

function isCode(code: string, message?: RegExp): (e: unknown) => boolean {
  return (e: unknown): boolean =>
    e instanceof WasmnetError && e.code === code && (message?.test(e.message) ?? true);
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

for (const binary of [false, true]) {
  const framing = binary ? "binary" : "json";

  Deno.test(`client e2e: connect, send, onData, close (${framing})`, async () => {
    await using echo = await startTcpEcho();
    await using server = await serve();
    await using client = await open(server.url, { binary });
    const id = await client.connect("127.0.0.1", echo.port);
    const got = new Promise<Uint8Array>((resolve) => client.onData(id, resolve));
    client.send(id, "héllo");
    assert.equal(new TextDecoder().decode(await got), "héllo");
    const closed = new Promise<void>((resolve) => client.onClose(id, resolve));
    client.close(id);
    await closed;
  });

  Deno.test(`client e2e: 1 MiB echoes byte-identical, id API with drain (${framing})`, async () => {
    await using echo = await startTcpEcho();
    await using server = await serve();
    await using client = await open(server.url, { binary, highWaterMark: 128 * 1024 });
    const id = await client.connect("127.0.0.1", echo.port);
    const payload = randomBytes(MiB);
    const chunks: Uint8Array[] = [];
    let received = 0;
    const all = new Promise<void>((resolve) =>
      client.onData(id, (d) => {
        chunks.push(d.slice());
        received += d.byteLength;
        if (received >= payload.byteLength) resolve();
      })
    );
    for (let i = 0; i < payload.byteLength; i += 16 * 1024) {
      if (!client.send(id, payload.subarray(i, i + 16 * 1024))) await client.drain();
    }
    await all;
    assert.deepEqual(concat(chunks), payload);
    const closed = new Promise<void>((resolve) => client.onClose(id, resolve));
    client.close(id);
    await closed;
  });

  Deno.test(`client e2e: 1 MiB echoes through the stream API (${framing})`, async () => {
    await using echo = await startTcpEcho();
    await using server = await serve();
    await using client = await open(server.url, { binary });
    await using sock = client.openTcp("127.0.0.1", echo.port);
    assert.deepEqual(await sock.opened, {});
    const payload = randomBytes(MiB);
    const writing = (async (): Promise<void> => {
      const writer = sock.writable.getWriter();
      for (let i = 0; i < payload.byteLength; i += 64 * 1024) {
        await writer.write(payload.subarray(i, i + 64 * 1024));
      }
      await writer.close(); // flushes, then half-closes (the shutdown extension); reading goes on
    })();
    const chunks: Uint8Array[] = [];
    let received = 0;
    const reader = sock.readable.getReader();
    while (received < payload.byteLength) {
      const { value, done } = await reader.read();
      assert.ok(!done && value);
      chunks.push(value);
      received += value.byteLength;
    }
    await writing;
    assert.deepEqual(concat(chunks), payload);
    await sock.close();
    assert.deepEqual(await reader.read(), { value: undefined, done: true });
  });
}

Deno.test("client e2e: HTTP GET through a stream socket; remote EOF ends readable", async () => {
  await using http = await startHttpServer("hello from a real server\n");
  await using server = await serve();
  await using client = await open(server.url, { binary: true });
  const sock = client.openTcp("127.0.0.1", http.port);
  const writer = sock.writable.getWriter();
  await writer.write(
    new TextEncoder().encode(
      `GET / HTTP/1.1\r\nHost: 127.0.0.1:${http.port}\r\nConnection: close\r\n\r\n`,
    ),
  );
  writer.releaseLock();
  const text = await new Response(sock.readable).text();
  assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(text, /hello from a real server\n$/);
  await sock.closed;
});

Deno.test("client e2e: the default policy denies loopback with EDENIED", async () => {
  await using echo = await startTcpEcho();
  await using server = await serve(Policy.defaults());
  await using client = await open(server.url);
  await assert.rejects(client.connect("127.0.0.1", echo.port), isCode("EDENIED"));
  const sock = client.openTcp("127.0.0.1", echo.port);
  await assert.rejects(sock.opened, isCode("EDENIED"));
  await assert.rejects(sock.closed, isCode("EDENIED"));
  assert.equal(echo.accepted, 0);
});

Deno.test("client e2e: a refused connect rejects with ESERVER", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  await using server = await serve();
  await using client = await open(server.url);
  await assert.rejects(client.connect("127.0.0.1", port), isCode("ESERVER", /failed/));
});

Deno.test("client e2e: aborting an open stream socket closes it upstream", async () => {
  await using echo = await startTcpEcho();
  await using server = await serve();
  await using client = await open(server.url);
  const ctl = new AbortController();
  const sock = client.openTcp("127.0.0.1", echo.port, { signal: ctl.signal });
  await sock.opened;
  assert.equal(echo.live, 1);
  ctl.abort();
  await assert.rejects(sock.closed, (e: unknown) => e instanceof DOMException);
  for (let i = 0; i < 100 && echo.live > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(echo.live, 0);
});

Deno.test("client e2e: server shutdown rejects pending work and fails open sockets", async () => {
  await using echo = await startTcpEcho();
  const server = await serve();
  const client = await open(server.url);
  const sock = client.openTcp("127.0.0.1", echo.port);
  await sock.opened;
  const failed = assert.rejects(sock.closed, isCode("EWEBSOCKET"));
  await server.shutdown();
  await failed;
  await client.closed;
  await assert.rejects(client.connect("127.0.0.1", echo.port), isCode("EWEBSOCKET"));
});

// ── TLS, UDP, resolve, bind/accept, timeouts: both framings ──────────────────────────────────

for (const binary of [false, true]) {
  const framing = binary ? "binary" : "json";

  Deno.test(`client e2e: listener accepts a real TCP connection (stream API, ${framing})`, async () => {
    await using server = await serve();
    await using client = await open(server.url, { binary });
    await using listener = client.openListener("127.0.0.1", 0);
    const { port } = await listener.opened;
    assert.ok(port > 0);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      const accepted = (await listener[Symbol.asyncIterator]().next()).value;
      assert.ok(accepted);
      assert.ok(accepted.id >= 2 ** 52, `conn_id ${accepted.id} below 2^52`);
      const info = await accepted.opened;
      assert.equal(info.remoteAddress, `127.0.0.1:${(conn.localAddr as Deno.NetAddr).port}`);
      await conn.write(new TextEncoder().encode("ping"));
      const { value } = await accepted.readable.getReader().read();
      assert.equal(new TextDecoder().decode(value), "ping");
      const writer = accepted.writable.getWriter();
      await writer.write(new TextEncoder().encode("pong"));
      const buf = new Uint8Array(4);
      assert.equal(await conn.read(buf), 4);
      assert.equal(new TextDecoder().decode(buf), "pong");
      await accepted.close();
    } finally {
      conn.close();
    }
  });

  Deno.test(`client e2e: wasmnet-style bind/listen/onAccept (${framing})`, async () => {
    await using server = await serve();
    await using client = await open(server.url, { binary });
    const { id, port } = await client.bind("127.0.0.1", 0);
    const accepted = new Promise<[number, string]>((resolve) =>
      client.onAccept(id, (connId, remote) => resolve([connId, remote]))
    );
    client.listen(id);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      const [connId, remote] = await accepted;
      assert.equal(remote, `127.0.0.1:${(conn.localAddr as Deno.NetAddr).port}`);
      const got = new Promise<Uint8Array>((resolve) => client.onData(connId, resolve));
      await conn.write(new TextEncoder().encode("hi"));
      assert.equal(new TextDecoder().decode(await got), "hi");
      client.close(connId);
      assert.equal(await conn.read(new Uint8Array(8)), null);
    } finally {
      conn.close();
      client.close(id);
    }
  });

  Deno.test(`client e2e: UDP datagrams round-trip through a real UDP echo (${framing})`, async () => {
    await using echo = await startUdpEcho();
    await using server = await serve();
    await using client = await open(server.url, { binary });
    await using udp = client.openUdp("127.0.0.1", echo.port);
    const { localPort } = await udp.opened;
    assert.ok(localPort > 0);
    await udp.send("one ✓");
    const it = udp[Symbol.asyncIterator]();
    const first = (await it.next()).value;
    assert.ok(first);
    assert.deepEqual([new TextDecoder().decode(first.data), first.addr, first.port], [
      "one ✓",
      "127.0.0.1",
      echo.port,
    ]);
    await udp.sendTo("127.0.0.1", echo.port, "two");
    const second = (await it.next()).value;
    assert.equal(new TextDecoder().decode(second?.data), "two");
  });

  Deno.test(`client e2e: resolve returns addresses, rejects on NXDOMAIN and denial (${framing})`, async () => {
    await using dns = await startDnsServer({
      records: { "a.test": { A: ["127.0.0.1"], AAAA: ["::1"] } },
    });
    await using server = await startTestServer({
      policy: Policy.fromConfig({ deny: ["blocked.test"], allow: ["*"] }),
      transport: testTransport({ nameServer: { ipAddr: "127.0.0.1", port: dns.port } }),
    });
    await using client = await open(server.url, { binary });
    assert.deepEqual((await client.resolve("a.test")).sort(), ["127.0.0.1", "::1"]);
    await assert.rejects(client.resolve("missing.test"), isCode("ESERVER", /^DNS lookup failed/));
    await assert.rejects(client.resolve("blocked.test"), isCode("EDENIED"));
  });

  Deno.test(`client e2e: TLS through the test CA echoes; untrusted rejects (${framing})`, async () => {
    const pki = await makeTestPki();
    await using good = await startTlsEcho({ cert: pki.serverCert, key: pki.serverKey });
    await using bad = await startTlsEcho({ cert: pki.untrustedCert, key: pki.untrustedKey });
    await using server = await startTestServer({
      policy: Policy.allowAll(),
      transport: testTransport({ caCerts: [pki.caCert] }),
    });
    await using client = await open(server.url, { binary });
    const sock = client.openTcp("localhost", good.port, { tls: true });
    await sock.opened;
    const writer = sock.writable.getWriter();
    await writer.write(new TextEncoder().encode("over tls"));
    const { value } = await sock.readable.getReader().read();
    assert.equal(new TextDecoder().decode(value), "over tls");
    await sock.close();
    await assert.rejects(
      client.connectTls("localhost", bad.port),
      isCode("ESERVER", /^TLS handshake/),
    );
  });

  Deno.test(`client e2e: a dial that never completes rejects with a timeout (${framing})`, async () => {
    // A TCP server that accepts and never speaks: the TLS handshake waits until the policy's
    // 1-second connection timeout ends it.
    const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const held: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const c of silent) held.push(c);
    })();
    try {
      await using server = await startTestServer({
        policy: Policy.fromConfig({ deny: [], allow: ["*"], connectionTimeoutSecs: 1 }),
      });
      await using client = await open(server.url, { binary });
      await assert.rejects(
        client.connectTls("127.0.0.1", silent.addr.port),
        isCode("ESERVER", /^connection timed out$/),
      );
    } finally {
      silent.close();
      await accepting.catch(() => {});
      for (const c of held) c.close();
    }
  });
}
