/**
 * Proves the test peers in `tests/helpers/` work with real loopback sockets and leak
 * nothing (op and resource sanitizers are on in deno.json).
 */

import { Buffer } from "node:buffer";
import { X509Certificate } from "node:crypto";
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
// @ts-types="@types/dns-packet"
import * as dnsPacket from "dns-packet";
import { startDnsServer } from "./helpers/dns_server.ts";
import { makeTestPki } from "./helpers/tls_certs.ts";
import {
  startHttpServer,
  startTcpEcho,
  startTcpSink,
  startTlsEcho,
  startUdpEcho,
} from "./helpers/echo_servers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function pattern(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + 7) & 0xff;
  return bytes;
}

/** `Deno.DatagramConn` is not typed as Disposable, so add that for `using`. */
function udpClient(hostname: "127.0.0.1" | "::1"): Deno.DatagramConn & Disposable {
  const conn = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
  return Object.assign(conn, { [Symbol.dispose]: (): void => conn.close() });
}

async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  return new Uint8Array(await new Response(conn.readable).arrayBuffer());
}

// ---------------------------------------------------------------------------- DNS

const RECORDS = {
  "Echo.Test.": { A: ["127.0.0.1", "127.0.0.2"], AAAA: ["::1"] },
  "v4only.test": { A: ["10.0.0.1"] },
  "empty.test": {},
};

Deno.test("dns server answers A and AAAA for Deno.resolveDns, case and dot insensitive", async () => {
  await using dns = await startDnsServer({ records: RECORDS });
  const nameServer = { ipAddr: dns.hostname, port: dns.port };
  deepStrictEqual(await Deno.resolveDns("echo.test", "A", { nameServer }), [
    "127.0.0.1",
    "127.0.0.2",
  ]);
  deepStrictEqual(await Deno.resolveDns("ECHO.test.", "AAAA", { nameServer }), ["::1"]);
  strictEqual(dns.queries, 2);
  deepStrictEqual(dns.questions, [
    { name: "echo.test", type: "A" },
    { name: "echo.test", type: "AAAA" },
  ]);
});

Deno.test("dns server on ::1 answers too", async () => {
  await using dns = await startDnsServer({ records: RECORDS, hostname: "::1" });
  strictEqual(dns.hostname, "::1");
  const nameServer = { ipAddr: "::1", port: dns.port };
  deepStrictEqual(await Deno.resolveDns("v4only.test", "A", { nameServer }), ["10.0.0.1"]);
});

Deno.test("Deno.resolveDns reports NODATA and NXDOMAIN both as NotFound", async () => {
  await using dns = await startDnsServer({ records: RECORDS });
  const nameServer = { ipAddr: dns.hostname, port: dns.port };
  // Known name, no AAAA records (NOERROR, empty answer).
  await rejects(
    Deno.resolveDns("v4only.test", "AAAA", { nameServer }),
    (err: unknown) =>
      err instanceof Deno.errors.NotFound &&
      err.message.startsWith("proto error: no records found for Query {") &&
      err.message.includes('Name("v4only.test.")'),
  );
  // Unknown name (NXDOMAIN).
  await rejects(
    Deno.resolveDns("nope.test", "A", { nameServer }),
    (err: unknown) =>
      err instanceof Deno.errors.NotFound &&
      err.message ===
        'proto error: no records found for Query { name: Name("nope.test."), query_type: A, query_class: IN }',
  );
});

async function rawQuery(
  port: number,
  name: string,
  type: "A" | "AAAA",
): Promise<dnsPacket.DecodedPacket> {
  using client = udpClient("127.0.0.1");
  const query = dnsPacket.encode({
    type: "query",
    id: 4242,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name }],
  });
  await client.send(new Uint8Array(query), { transport: "udp", hostname: "127.0.0.1", port });
  const [data] = await client.receive();
  return dnsPacket.decode(Buffer.from(data));
}

/** dns-packet decodes the header RCODE into `rcode`, which @types/dns-packet omits. */
function rcodeOf(packet: dnsPacket.DecodedPacket): unknown {
  return (packet as unknown as Record<string, unknown>)["rcode"];
}

Deno.test("dns server sends NOERROR/empty for known names and NXDOMAIN for unknown ones", async () => {
  await using dns = await startDnsServer({ records: RECORDS });
  const nodata = await rawQuery(dns.port, "empty.test", "A");
  strictEqual(nodata.id, 4242);
  strictEqual(rcodeOf(nodata), "NOERROR");
  deepStrictEqual(nodata.answers, []);
  ok(nodata.flag_aa);

  const nx = await rawQuery(dns.port, "unknown.test", "AAAA");
  strictEqual(rcodeOf(nx), "NXDOMAIN");
  deepStrictEqual(nx.answers, []);

  const a = await rawQuery(dns.port, "echo.test", "A");
  strictEqual(rcodeOf(a), "NOERROR");
  deepStrictEqual(a.answers?.map((r) => r.type === "A" ? r.data : undefined), [
    "127.0.0.1",
    "127.0.0.2",
  ]);
});

Deno.test("dns server ignores garbage and keeps serving", async () => {
  await using dns = await startDnsServer({ records: RECORDS });
  {
    using client = udpClient("127.0.0.1");
    await client.send(new Uint8Array([1, 2, 3]), {
      transport: "udp",
      hostname: "127.0.0.1",
      port: dns.port,
    });
  }
  const reply = await rawQuery(dns.port, "echo.test", "AAAA");
  strictEqual(rcodeOf(reply), "NOERROR");
  strictEqual(dns.queries, 1);
});

Deno.test("silent name: resolveDns is cancelled by its signal, without retries or leaks", async () => {
  await using dns = await startDnsServer({ records: RECORDS, silent: ["Slow.Test"] });
  const nameServer = { ipAddr: dns.hostname, port: dns.port };
  const started = performance.now();
  await rejects(
    Deno.resolveDns("slow.test", "A", { nameServer, signal: AbortSignal.timeout(200) }),
    (err: unknown) => err instanceof DOMException && err.name === "TimeoutError",
  );
  const elapsed = performance.now() - started;
  ok(elapsed < 2000, `took ${elapsed} ms`);
  strictEqual(dns.queries, 1);

  // A pre-aborted signal rejects with its reason and sends nothing.
  const controller = new AbortController();
  const reason = new Error("stop");
  controller.abort(reason);
  await rejects(
    Deno.resolveDns("slow.test", "A", { nameServer, signal: controller.signal }),
    (err: unknown) => err === reason,
  );
  strictEqual(dns.queries, 1);
});

Deno.test("dns server close is idempotent", async () => {
  const dns = await startDnsServer({ records: {} });
  await dns.close();
  await dns.close();
  await dns[Symbol.asyncDispose]();
});

// ---------------------------------------------------------------------------- TLS

Deno.test("test PKI is generated once and has the promised names and dates", async () => {
  const pki = await makeTestPki();
  strictEqual(await makeTestPki(), pki);
  for (const key of [pki.serverKey, pki.expiredKey, pki.untrustedKey]) {
    ok(key.startsWith("-----BEGIN PRIVATE KEY-----"));
  }
  const ca = new X509Certificate(pki.caCert);
  ok(ca.ca);
  const server = new X509Certificate(pki.serverCert);
  ok(server.checkIssued(ca));
  ok(!server.ca);
  strictEqual(
    server.subjectAltName,
    "DNS:localhost, DNS:tls.test, IP Address:127.0.0.1, IP Address:::1",
  );
  ok(new Date(server.validTo).getTime() > Date.now());
  const expired = new X509Certificate(pki.expiredCert);
  ok(expired.checkIssued(ca));
  strictEqual(new Date(expired.validFrom).toISOString(), "2020-01-01T00:00:00.000Z");
  strictEqual(new Date(expired.validTo).toISOString(), "2020-01-02T00:00:00.000Z");
  const untrusted = new X509Certificate(pki.untrustedCert);
  ok(!untrusted.checkIssued(ca));
  strictEqual(untrusted.subjectAltName, server.subjectAltName);
});

/** Connects with Deno.connect + Deno.startTls and returns the handshake error, if any. */
async function tlsHandshake(
  cert: string,
  key: string,
  servername: string,
  caCert: string,
  hostname: "127.0.0.1" | "::1" = "127.0.0.1",
): Promise<unknown> {
  using listener = Deno.listenTls({ hostname, port: 0, cert, key });
  const served = listener.accept().then(async (conn) => {
    try {
      await conn.handshake();
    } catch {
      // the client rejected us; its side is what the test checks
    } finally {
      conn.close();
    }
  });
  const tcp = await Deno.connect({ hostname, port: listener.addr.port });
  // startTls itself resolves; verification errors surface on handshake()/read()/write().
  using tls = await Deno.startTls(tcp, { hostname: servername, caCerts: [caCert] });
  let failure: unknown;
  try {
    await tls.handshake();
  } catch (err) {
    failure = err;
  }
  await served;
  return failure;
}

Deno.test("TLS leaf verifies for every SAN against the test CA", async () => {
  const pki = await makeTestPki();
  for (const name of ["localhost", "tls.test", "127.0.0.1"]) {
    strictEqual(await tlsHandshake(pki.serverCert, pki.serverKey, name, pki.caCert), undefined);
  }
  strictEqual(
    await tlsHandshake(pki.serverCert, pki.serverKey, "::1", pki.caCert, "::1"),
    undefined,
  );
});

function assertInvalidData(err: unknown, message: string | RegExp): void {
  ok(err instanceof Deno.errors.InvalidData, `expected InvalidData, got ${String(err)}`);
  if (typeof message === "string") strictEqual(err.message, message);
  else ok(message.test(err.message), err.message);
}

Deno.test("TLS verification failures: hostname mismatch, untrusted CA, expired", async () => {
  const pki = await makeTestPki();
  assertInvalidData(
    await tlsHandshake(pki.serverCert, pki.serverKey, "example.com", pki.caCert),
    'invalid peer certificate: certificate not valid for name "example.com"; certificate is ' +
      'only valid for DnsName("localhost"), DnsName("tls.test"), IpAddress(127.0.0.1) or ' +
      "IpAddress(0::1)",
  );
  assertInvalidData(
    await tlsHandshake(pki.untrustedCert, pki.untrustedKey, "localhost", pki.caCert),
    "invalid peer certificate: UnknownIssuer",
  );
  assertInvalidData(
    await tlsHandshake(pki.expiredCert, pki.expiredKey, "localhost", pki.caCert),
    /^invalid peer certificate: certificate expired: verification time \d+ \(UNIX\), but certificate is not valid after 1577923200 \(\d+ seconds ago\)$/,
  );
});

// ---------------------------------------------------------------------------- TCP

Deno.test("TCP echo returns 1 MiB intact and half-closes on EOF", async () => {
  await using server = await startTcpEcho();
  const payload = pattern(1024 * 1024);
  const conn = await Deno.connect({ hostname: server.hostname, port: server.port });
  const writing = (async () => {
    let offset = 0;
    while (offset < payload.length) offset += await conn.write(payload.subarray(offset));
    await conn.closeWrite();
  })();
  const echoed = await readAll(conn); // readable closes the conn at EOF
  await writing;
  deepStrictEqual(echoed, payload);
  strictEqual(server.accepted, 1);
});

Deno.test("TCP echo on ::1 and close() drops live connections", async () => {
  const server = await startTcpEcho({ hostname: "::1" });
  using conn = await Deno.connect({ hostname: "::1", port: server.port });
  await conn.write(encoder.encode("ping"));
  const buf = new Uint8Array(16);
  const n = await conn.read(buf);
  strictEqual(decoder.decode(buf.subarray(0, n ?? 0)), "ping");
  strictEqual(server.live, 1);
  await server.close();
  strictEqual(server.live, 0);
  // The server side is gone: the client sees EOF (or a reset).
  const after = await conn.read(buf).catch((err: unknown) => err);
  ok(after === null || after instanceof Deno.errors.ConnectionReset, String(after));
  await server.close(); // idempotent
});

Deno.test("TCP sink counts bytes across connections", async () => {
  await using sink = await startTcpSink();
  for (const size of [1000, 70_000]) {
    using conn = await Deno.connect({ hostname: sink.hostname, port: sink.port });
    let offset = 0;
    const bytes = pattern(size);
    while (offset < size) offset += await conn.write(bytes.subarray(offset));
  }
  await sink.waitForBytes(71_000);
  strictEqual(sink.bytes, 71_000);
  strictEqual(sink.accepted, 2);
  const never = rejects(
    sink.waitForBytes(1_000_000),
    /Cannot wait for 1000000 bytes: sink closed at 71000/,
  );
  await sink.close();
  await never;
});

Deno.test("TLS echo round-trips and survives a client that fails verification", async () => {
  const pki = await makeTestPki();
  await using server = await startTlsEcho({ cert: pki.serverCert, key: pki.serverKey });
  {
    // This client trusts nothing we serve: the handshake fails on both sides.
    const tcp = await Deno.connect({ hostname: server.hostname, port: server.port });
    using bad = await Deno.startTls(tcp, { hostname: "localhost" });
    await rejects(bad.handshake(), Deno.errors.InvalidData);
  }
  const tcp = await Deno.connect({ hostname: server.hostname, port: server.port });
  const tls = await Deno.startTls(tcp, { hostname: "tls.test", caCerts: [pki.caCert] });
  await tls.write(encoder.encode("over tls"));
  await tls.closeWrite();
  strictEqual(decoder.decode(await readAll(tls)), "over tls");
  strictEqual(server.accepted, 2);
});

// ---------------------------------------------------------------------------- UDP

for (const hostname of ["127.0.0.1", "::1"] as const) {
  Deno.test(`UDP echo on ${hostname} returns each datagram to its sender`, async () => {
    await using server = await startUdpEcho({ hostname });
    using client = udpClient(hostname);
    const to: Deno.NetAddr = { transport: "udp", hostname, port: server.port };
    for (const size of [1, 512, 1400]) {
      const datagram = pattern(size);
      await client.send(datagram, to);
      const [data, from] = await client.receive();
      deepStrictEqual(data, datagram);
      strictEqual((from as Deno.NetAddr).port, server.port);
    }
    strictEqual(server.datagrams, 3);
  });
}

// ---------------------------------------------------------------------------- HTTP

Deno.test("HTTP server answers every request with its body and shuts down", async () => {
  await using server = await startHttpServer("hello wasmnet");
  for (let i = 0; i < 2; i++) {
    const res = await fetch(`http://127.0.0.1:${server.port}/any/path`);
    strictEqual(res.status, 200);
    strictEqual(await res.text(), "hello wasmnet");
  }
  strictEqual(server.requests, 2);
});
