/**
 * The Bun transport under `deno test` (Deno runs `node:net`, `node:tls`, `node:dgram` and
 * `node:dns` too), with real loopback sockets and the sanitizers on. `tests/bun/transport_smoke.ts`
 * runs it under real Bun; `tests/transport_contract_test.ts` compares it with the Deno transport.
 *
 * @module
 */
import assert from "node:assert/strict";
import * as dgram from "node:dgram";
import * as net from "node:net";
import * as tls from "node:tls";
import { BadResource, type StreamConn, TlsConn, TlsError } from "../mod.ts";
import {
  bunTransport,
  MAX_QUEUED_DATAGRAMS,
  type NodeDatagramConn,
  NodeSocketConn,
  READ_HIGH_WATER_BYTES,
} from "./mod.ts";
import { startTlsEcho } from "../../../tests/helpers/echo_servers.ts";
import { makeTestPki, type TestPki } from "../../../tests/helpers/tls_certs.ts";
import { startDnsServer } from "../../../tests/helpers/dns_server.ts";
import { delay, until } from "../../../tests/helpers/wait.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const never = (): AbortSignal => new AbortController().signal;

let pkiCache: Promise<TestPki> | undefined;
const pki = (): Promise<TestPki> => pkiCache ??= makeTestPki();

/** Reads `conn` to the end; returns everything. */
/** Index of the first differing byte, or -1 when equal (deepEqual is slow on 32 MiB). */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.byteLength !== b.byteLength) return Math.min(a.byteLength, b.byteLength);
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return i;
  return -1;
}

async function readAll(conn: StreamConn, size = 64 * 1024): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(size);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    parts.push(buf.slice(0, n));
  }
  const out = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** A transport listener on 127.0.0.1 and a connected pair (client, accepted peer). */
async function pair(
  transport = bunTransport(),
): Promise<{ client: StreamConn; peer: StreamConn; close(): void }> {
  const listener = await transport.listenTcp("127.0.0.1", 0);
  const [client, peer] = await Promise.all([
    transport.connectTcp("127.0.0.1", listener.addr.port, never()),
    listener.accept(),
  ]);
  listener.close();
  return {
    client,
    peer,
    close(): void {
      client.close();
      peer.close();
    },
  };
}

/** Waits until a Node socket/server closed (so the sanitizers see it gone). */
function closed(emitter: net.Server | net.Socket | dgram.Socket | tls.Server): Promise<void> {
  return new Promise((resolve) => emitter.once("close", () => resolve()));
}

Deno.test("bun transport: echo both ways, half-close each side, EOF", async () => {
  const { client, peer, close } = await pair();
  try {
    assert.ok(client instanceof NodeSocketConn);
    await client.write(enc.encode("ping"));
    await client.closeWrite?.();
    assert.equal(dec.decode(await readAll(peer)), "ping");
    // The peer's read side ended; its write side still works (half-open).
    await peer.write(enc.encode("pong"));
    await peer.closeWrite?.();
    assert.equal(dec.decode(await readAll(client)), "pong");
  } finally {
    close();
  }
});

Deno.test("bun transport: accepted conn knows its remote address", async () => {
  const transport = bunTransport();
  const listener = await transport.listenTcp("127.0.0.1", 0);
  try {
    assert.equal(listener.addr.transport, "tcp");
    assert.equal(listener.addr.hostname, "127.0.0.1");
    assert.ok(listener.addr.port > 0);
    const client = await transport.connectTcp("127.0.0.1", listener.addr.port, never());
    const peer = await listener.accept();
    assert.ok(client instanceof NodeSocketConn);
    assert.equal(peer.remoteAddr.hostname, "127.0.0.1");
    assert.equal(peer.remoteAddr.port, client.localAddr.port);
    client.close();
    peer.close();
  } finally {
    listener.close();
  }
});

Deno.test("bun transport: refused dial reads as Deno's error", async () => {
  const transport = bunTransport();
  const server = net.createServer().listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  const port = (server.address() as net.AddressInfo).port;
  server.close();
  await closed(server);
  await assert.rejects(transport.connectTcp("127.0.0.1", port, never()), {
    name: "ConnectionRefused",
    message: "Connection refused (os error 111)",
  });
});

Deno.test("bun transport: abort before and during a dial rejects with the reason", async () => {
  const transport = bunTransport({ maxDials: 1 });
  const listener = await transport.listenTcp("127.0.0.1", 0);
  try {
    const before = new AbortController();
    before.abort(new Error("before"));
    await assert.rejects(
      transport.connectTcp("127.0.0.1", listener.addr.port, before.signal),
      { message: "before" },
    );
    const during = new AbortController();
    const dial = transport.connectTcp("127.0.0.1", listener.addr.port, during.signal);
    during.abort(new Error("during"));
    await assert.rejects(dial, { message: "during" });
    // The slot comes back once the destroyed socket closed: a new dial works.
    let conn: StreamConn | undefined;
    for (let i = 0; conn === undefined; i++) {
      conn = await transport.connectTcp("127.0.0.1", listener.addr.port, never()).catch(
        (e: Error) => {
          assert.equal(e.message, "too many connection attempts in flight (limit 1)");
          assert.ok(i < 100, "the aborted dial's slot never came back");
          return delay(10).then(() => undefined);
        },
      );
    }
    conn.close();
    // Whatever the listener accepted of the aborted dial is closed by the peer side.
    for (;;) {
      const accepted = await Promise.race([listener.accept(), delay(50).then(() => undefined)]);
      if (accepted === undefined) break;
      accepted.close();
    }
  } finally {
    listener.close();
  }
});

Deno.test("bun transport: dials beyond maxDials fail at once", async () => {
  const transport = bunTransport({ maxDials: 1 });
  const listener = await transport.listenTcp("127.0.0.1", 0);
  try {
    const first = transport.connectTcp("127.0.0.1", listener.addr.port, never());
    await assert.rejects(transport.connectTcp("127.0.0.1", listener.addr.port, never()), {
      message: "too many connection attempts in flight (limit 1)",
    });
    (await first).close();
    (await listener.accept()).close();
  } finally {
    listener.close();
  }
});

Deno.test("bun transport: close rejects pending reads and writes with BadResource", async () => {
  const { client, peer, close } = await pair();
  try {
    const reading = client.read(new Uint8Array(16));
    client.close();
    await assert.rejects(reading, BadResource);
    await assert.rejects(client.write(enc.encode("x")), { name: "BadResource" });
    client.close(); // a second close does nothing
    assert.equal(await peer.read(new Uint8Array(16)), null);
  } finally {
    close();
  }
});

Deno.test("bun transport: reads have backpressure, no byte lost, EOF after a pause", async () => {
  const { client, peer, close } = await pair();
  try {
    const total = 32 * 1024 * 1024; // above what loopback TCP buffers can hold (~10 MiB)
    const data = new Uint8Array(total);
    for (let i = 0; i < total; i++) data[i] = i % 251;
    let written = false;
    const writing = peer.write(data).then(async () => {
      written = true;
      await peer.closeWrite?.();
    });
    await delay(200);
    // Nobody reads the client: the writer is held up by TCP flow control (32 MiB is far above
    // the read queue's bound plus the kernel buffers).
    assert.equal(written, false);
    assert.ok(READ_HIGH_WATER_BYTES < total / 4);
    const got = await readAll(client);
    await writing;
    assert.equal(got.byteLength, total);
    assert.equal(firstDifference(got, data), -1);
  } finally {
    close();
  }
});

Deno.test("bun transport: listen on a taken port reads as Deno's AddrInUse", async () => {
  const transport = bunTransport();
  const listener = await transport.listenTcp("127.0.0.1", 0);
  try {
    await assert.rejects(
      Promise.resolve(transport.listenTcp("127.0.0.1", listener.addr.port)),
      { name: "AddrInUse", message: "Address already in use (os error 98)" },
    );
  } finally {
    listener.close();
  }
});

Deno.test("bun transport: accept rejects with BadResource when the listener closes", async () => {
  const listener = await bunTransport().listenTcp("127.0.0.1", 0);
  const accepting = listener.accept();
  listener.close();
  await assert.rejects(accepting, { name: "BadResource" });
  listener.close(); // a second close does nothing
});

Deno.test("bun transport: TLS over the transport's TCP, verified with caCerts", async () => {
  const { caCert, serverCert, serverKey } = await pki();
  await using echo = await startTlsEcho({ cert: serverCert, key: serverKey });
  const transport = bunTransport({ caCerts: [caCert] });
  for (const name of ["localhost", "127.0.0.1"]) {
    const tcp = await transport.connectTcp("127.0.0.1", echo.port, never());
    const conn = await transport.startTls(tcp, name, never());
    try {
      assert.ok(conn instanceof TlsConn);
      await conn.write(enc.encode(`hello ${name}`));
      await conn.closeWrite?.();
      assert.equal(dec.decode(await readAll(conn)), `hello ${name}`);
    } finally {
      conn.close();
    }
  }
});

Deno.test("bun transport: TLS reads have backpressure and keep EOF after a pause", async () => {
  const { caCert, serverCert, serverKey } = await pki();
  const total = 32 * 1024 * 1024;
  const data = new Uint8Array(total).map((_, i) => i % 253);
  let finished = false;
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ cert: serverCert, key: serverKey }, (sock) => {
    sockets.add(sock);
    sock.on("error", () => {});
    sock.end(data, () => finished = true);
  }).listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  try {
    const transport = bunTransport({ caCerts: [caCert] });
    const port = (server.address() as net.AddressInfo).port;
    const tcp = await transport.connectTcp("127.0.0.1", port, never());
    const conn = await transport.startTls(tcp, "localhost", never());
    try {
      await delay(300);
      assert.equal(finished, false, "the server wrote 32 MiB nobody read");
      const got = await readAll(conn);
      assert.equal(got.byteLength, total);
      assert.equal(firstDifference(got, data), -1);
    } finally {
      conn.close();
    }
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
    await closed(server);
  }
});

Deno.test("bun transport: TLS over a foreign StreamConn", async () => {
  const { caCert, serverCert, serverKey } = await pki();
  await using echo = await startTlsEcho({ cert: serverCert, key: serverKey });
  const transport = bunTransport({ caCerts: [caCert] });
  const tcp = await transport.connectTcp("127.0.0.1", echo.port, never());
  const foreign: StreamConn = {
    read: (b) => tcp.read(b),
    write: (d) => tcp.write(d),
    close: () => tcp.close(),
    closeWrite: () => tcp.closeWrite?.() ?? Promise.resolve(),
  };
  const conn = await transport.startTls(foreign, "tls.test", never());
  try {
    await conn.write(enc.encode("via duplex"));
    await conn.closeWrite?.();
    assert.equal(dec.decode(await readAll(conn)), "via duplex");
  } finally {
    conn.close();
  }
});

Deno.test("bun transport: TLS failures read as the shared TlsError texts", async () => {
  const { caCert, serverCert, serverKey, untrustedCert, untrustedKey } = await pki();
  const transport = bunTransport({ caCerts: [caCert] });
  {
    await using echo = await startTlsEcho({ cert: untrustedCert, key: untrustedKey });
    const tcp = await transport.connectTcp("127.0.0.1", echo.port, never());
    const error = await transport.startTls(tcp, "localhost", never()).then(
      () => assert.fail("handshake succeeded"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof TlsError);
    assert.match(error.message, /^certificate is not trusted \([A-Z_]+\)$/);
    assert.equal(await tcp.read(new Uint8Array(1)).catch((e: Error) => e.name), "BadResource");
  }
  {
    await using echo = await startTlsEcho({ cert: serverCert, key: serverKey });
    const tcp = await transport.connectTcp("127.0.0.1", echo.port, never());
    await assert.rejects(transport.startTls(tcp, "example.com", never()), {
      name: "TlsError",
      message: "certificate is not valid for example.com (ERR_TLS_CERT_ALTNAME_INVALID)",
    });
  }
});

Deno.test("bun transport: TLS to a silent peer aborts at once and frees the socket", async () => {
  const transport = bunTransport();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("data", () => {}); // reads the ClientHello, never answers
    s.on("error", () => {});
  }).listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  try {
    const port = (server.address() as net.AddressInfo).port;
    const tcp = await transport.connectTcp("127.0.0.1", port, never());
    const ctrl = new AbortController();
    const handshake = transport.startTls(tcp, "localhost", ctrl.signal);
    await until(() => sockets.size === 1, "accepted");
    await delay(20);
    ctrl.abort(new Error("gave up"));
    await assert.rejects(handshake, { message: "gave up" });
    // The peer sees the connection end: the socket was freed.
    const [peer] = [...sockets];
    if (peer && !peer.closed) await new Promise((r) => peer.once("close", r));
  } finally {
    server.close();
    await closed(server);
  }
});

Deno.test("bun transport: UDP round trip with the sender's address", async () => {
  const transport = bunTransport();
  const echo = dgram.createSocket("udp4");
  echo.on("message", (msg, rinfo) => echo.send(msg, rinfo.port, rinfo.address));
  await new Promise<void>((r) => echo.bind(0, "127.0.0.1", r));
  const echoPort = echo.address().port;
  const udp = await transport.openUdp(4);
  try {
    assert.equal(udp.addr.transport, "udp");
    assert.equal(udp.addr.hostname, "0.0.0.0");
    assert.ok(udp.addr.port > 0);
    const sent = await udp.send(enc.encode("dgram"), {
      transport: "udp",
      hostname: "127.0.0.1",
      port: echoPort,
    });
    assert.equal(sent, 5);
    const [data, from] = await udp.receive();
    assert.equal(dec.decode(data), "dgram");
    assert.deepEqual(from, { transport: "udp", hostname: "127.0.0.1", port: echoPort });
    // With a buffer: the bytes are copied into it.
    await udp.send(enc.encode("again"), {
      transport: "udp",
      hostname: "127.0.0.1",
      port: echoPort,
    });
    const buf = new Uint8Array(3);
    const [cut] = await udp.receive(buf);
    assert.equal(cut.buffer, buf.buffer);
    assert.equal(dec.decode(cut), "aga");
  } finally {
    udp.close();
    echo.close();
    await closed(echo);
  }
});

Deno.test("bun transport: UDP receive after and during close rejects with BadResource", async () => {
  const udp = await bunTransport().openUdp(6);
  assert.equal(udp.addr.hostname, "::");
  const receiving = udp.receive();
  udp.close();
  await assert.rejects(receiving, { name: "BadResource" });
  await assert.rejects(udp.receive(), { name: "BadResource" });
  await assert.rejects(
    udp.send(enc.encode("x"), { transport: "udp", hostname: "::1", port: 9 }),
    { name: "BadResource" },
  );
  udp.close();
});

Deno.test("bun transport: UDP queue keeps the newest datagrams, drops the oldest", async () => {
  const udp = (await bunTransport().openUdp(4)) as NodeDatagramConn;
  const sender = dgram.createSocket("udp4");
  try {
    const count = MAX_QUEUED_DATAGRAMS + 44;
    for (let i = 0; i < count; i++) {
      // Let the socket read now and then: the kernel's own receive buffer holds only about 256
      // tiny datagrams (rmem_default 212992 bytes).
      if (i % 32 === 0) await delay(2);
      await new Promise<void>((resolve, reject) =>
        sender.send(String(i), udp.addr.port, "127.0.0.1", (e) => e ? reject(e) : resolve())
      );
    }
    await until(() => udp.dropped === 44, `44 dropped (now ${udp.dropped})`);
    const [first] = await udp.receive();
    assert.equal(dec.decode(first), "44");
  } finally {
    udp.close();
    sender.close();
    await closed(sender);
  }
});

Deno.test("bun transport: lookup through a name server, IPv4 first; NotFound as Deno", async () => {
  await using dns = await startDnsServer({
    records: { "a.test": { A: ["192.0.2.1"], AAAA: ["2001:db8::1"] }, "empty.test": {} },
  });
  const transport = bunTransport({ nameServer: { ipAddr: dns.hostname, port: dns.port } });
  assert.deepEqual(await transport.lookup("a.test", never()), ["192.0.2.1", "2001:db8::1"]);
  await assert.rejects(transport.lookup("nx.test", never()), {
    name: "NotFound",
    message:
      'proto error: no records found for Query { name: Name("nx.test."), query_type: A, query_class: IN }',
  });
  const ctrl = new AbortController();
  ctrl.abort(new Error("stop"));
  await assert.rejects(transport.lookup("a.test", ctrl.signal), { message: "stop" });
});

Deno.test("bun transport: system lookup of localhost; lookups beyond maxLookups fail", async () => {
  const transport = bunTransport({ maxLookups: 1 });
  const first = transport.lookup("localhost", never());
  await assert.rejects(transport.lookup("localhost", never()), {
    message: "too many DNS lookups in flight (limit 1)",
  });
  assert.ok((await first).includes("127.0.0.1"));
});
