/**
 * The transport contract: the same cases against `denoTransport()` and `bunTransport()` (the
 * latter on Deno's `node:net`/`node:tls`/`node:dgram`/`node:dns`), asserting that what a session
 * can observe is identical — bytes, half-close, error names and messages, addresses, lookups.
 * Each case returns an observation; the two runtimes' observations must be deep-equal, and the
 * Deno one must match the expected value. Real loopback sockets, sanitizers on.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { StreamConn, Transport, TransportOptions } from "../src/transport/mod.ts";
import { denoTransport } from "../src/transport/deno/mod.ts";
import { bunTransport } from "../src/transport/bun/mod.ts";
import { startTcpEcho, startTlsEcho, startUdpEcho } from "./helpers/echo_servers.ts";
import { makeTestPki, type TestPki } from "./helpers/tls_certs.ts";
import { startDnsServer } from "./helpers/dns_server.ts";
import { delay } from "./helpers/wait.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const never = (): AbortSignal => new AbortController().signal;

const TRANSPORTS: Readonly<Record<string, (o?: TransportOptions) => Transport>> = {
  deno: denoTransport,
  bun: bunTransport,
};

let pkiCache: Promise<TestPki> | undefined;
const pki = (): Promise<TestPki> => pkiCache ??= makeTestPki();

/**
 * Runs `observe` with each transport and asserts the observations are equal (and equal to
 * `expected` when given).
 */
function contract<T>(
  name: string,
  observe: (make: (o?: TransportOptions) => Transport) => Promise<T>,
  expected?: T,
): void {
  Deno.test(`transport contract: ${name}`, async () => {
    const seen: Record<string, T> = {};
    for (const [runtime, make] of Object.entries(TRANSPORTS)) seen[runtime] = await observe(make);
    assert.deepEqual(seen.bun, seen.deno, `bun and deno differ: ${name}`);
    if (expected !== undefined) assert.deepEqual(seen.deno, expected);
  });
}

/** `{ name, message }` of a rejection, or `resolved` when it did not reject. */
async function failure(p: Promise<unknown>): Promise<{ name: string; message: string } | string> {
  try {
    const v = await p;
    if (v && typeof (v as StreamConn).close === "function") (v as StreamConn).close();
    return "resolved";
  } catch (e) {
    return e instanceof Error ? { name: e.name, message: e.message } : String(e);
  }
}

async function readAll(conn: StreamConn): Promise<string> {
  let out = "";
  const buf = new Uint8Array(4096);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) return out;
    out += dec.decode(buf.subarray(0, n));
  }
}

contract("echo both ways and half-close through the transport's listener", async (make) => {
  const t = make();
  const listener = await t.listenTcp("127.0.0.1", 0);
  try {
    const [client, peer] = await Promise.all([
      t.connectTcp("127.0.0.1", listener.addr.port, never()),
      listener.accept(),
    ]);
    try {
      await client.write(enc.encode("up"));
      await client.closeWrite?.();
      const up = await readAll(peer);
      await peer.write(enc.encode("down"));
      await peer.closeWrite?.();
      const down = await readAll(client);
      return { up, down, eofAgain: await client.read(new Uint8Array(1)) };
    } finally {
      client.close();
      peer.close();
    }
  } finally {
    listener.close();
  }
}, { up: "up", down: "down", eofAgain: null });

contract("echo through a TCP echo server (chunks of 100 KiB)", async (make) => {
  await using echo = await startTcpEcho();
  const conn = await make().connectTcp("127.0.0.1", echo.port, never());
  try {
    const data = new Uint8Array(300 * 1024).map((_, i) => i % 256);
    const reading = (async () => {
      let n = 0;
      let sum = 0;
      const buf = new Uint8Array(64 * 1024);
      for (;;) {
        const got = await conn.read(buf);
        if (got === null) return { n, sum };
        for (let i = 0; i < got; i++) sum = (sum + (buf[i] ?? 0) * ((n + i) % 7 + 1)) % 1e9;
        n += got;
      }
    })();
    for (let at = 0; at < data.byteLength; at += 100 * 1024) {
      await conn.write(data.subarray(at, at + 100 * 1024));
    }
    await conn.closeWrite?.();
    return await reading;
  } finally {
    conn.close();
  }
});

contract("accepted connection's remoteAddr is the dialler's local address", async (make) => {
  const t = make();
  const listener = await t.listenTcp("::1", 0);
  try {
    const client = await Deno.connect({ hostname: "::1", port: listener.addr.port });
    const peer = await listener.accept();
    const same = peer.remoteAddr.port === (client.localAddr as Deno.NetAddr).port;
    client.close();
    peer.close();
    return {
      listener: { ...listener.addr, port: listener.addr.port > 0 },
      remote: { transport: peer.remoteAddr.transport, hostname: peer.remoteAddr.hostname, same },
    };
  } finally {
    listener.close();
  }
}, {
  listener: { transport: "tcp", hostname: "::1", port: true },
  remote: { transport: "tcp", hostname: "::1", same: true },
});

contract("a refused dial", async (make) => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return await failure(make().connectTcp("127.0.0.1", port, never()));
}, { name: "ConnectionRefused", message: "Connection refused (os error 111)" });

contract("listening on a taken port", async (make) => {
  const t = make();
  const listener = await t.listenTcp("127.0.0.1", 0);
  try {
    return await failure(
      (async () => await t.listenTcp("127.0.0.1", listener.addr.port))(),
    );
  } finally {
    listener.close();
  }
}, { name: "AddrInUse", message: "Address already in use (os error 98)" });

contract("abort before and during a dial leaves nothing open", async (make) => {
  await using echo = await startTcpEcho();
  const t = make();
  const before = new AbortController();
  before.abort(new Error("before"));
  const a = await failure(t.connectTcp("127.0.0.1", echo.port, before.signal));
  const during = new AbortController();
  const dial = t.connectTcp("127.0.0.1", echo.port, during.signal);
  during.abort(new Error("during"));
  const b = await failure(dial);
  await delay(50); // a dial completing after the abort is closed by the transport
  return [a, b];
}, [{ name: "Error", message: "before" }, { name: "Error", message: "during" }]);

contract("the dial bound", async (make) => {
  await using echo = await startTcpEcho();
  const t = make({ maxDials: 1 });
  const first = t.connectTcp("127.0.0.1", echo.port, never());
  const second = await failure(t.connectTcp("127.0.0.1", echo.port, never()));
  (await first).close();
  return second;
}, { name: "Error", message: "too many connection attempts in flight (limit 1)" });

contract("TLS trusted through caCerts: echo", async (make) => {
  const { caCert, serverCert, serverKey } = await pki();
  await using echo = await startTlsEcho({ cert: serverCert, key: serverKey });
  const t = make({ caCerts: [caCert] });
  const out: string[] = [];
  for (const name of ["localhost", "127.0.0.1"]) {
    const tcp = await t.connectTcp("127.0.0.1", echo.port, never());
    const conn = await t.startTls(tcp, name, never());
    try {
      await conn.write(enc.encode(name));
      await conn.closeWrite?.();
      out.push(await readAll(conn));
    } finally {
      conn.close();
    }
  }
  return out;
}, ["localhost", "127.0.0.1"]);

contract("TLS failures: untrusted, wrong name, expired, not TLS", async (make) => {
  const p = await pki();
  const t = make({ caCerts: [p.caCert] });
  const out: unknown[] = [];
  const attempt = async (cert: string, key: string, name: string): Promise<void> => {
    await using echo = await startTlsEcho({ cert, key });
    const tcp = await t.connectTcp("127.0.0.1", echo.port, never());
    out.push(await failure(t.startTls(tcp, name, never())));
  };
  await attempt(p.untrustedCert, p.untrustedKey, "localhost");
  await attempt(p.serverCert, p.serverKey, "example.com");
  await attempt(p.expiredCert, p.expiredKey, "localhost");
  {
    await using echo = await startTcpEcho(); // answers the ClientHello with itself
    const tcp = await t.connectTcp("127.0.0.1", echo.port, never());
    out.push(await failure(t.startTls(tcp, "localhost", never())));
  }
  return out;
});

contract("TLS aborted during the handshake with a silent peer", async (make) => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = l.accept();
  try {
    const t = make();
    const tcp = await t.connectTcp("127.0.0.1", (l.addr as Deno.NetAddr).port, never());
    const peer = await accepted;
    const ctrl = new AbortController();
    const handshake = t.startTls(tcp, "localhost", ctrl.signal);
    const hello = await peer.read(new Uint8Array(4096)); // the ClientHello; never answered
    ctrl.abort(new Error("gave up"));
    const result = await failure(handshake);
    const eof = await peer.read(new Uint8Array(16)); // the transport closed the socket
    peer.close();
    return { hello: (hello ?? 0) > 0, result, eof };
  } finally {
    l.close();
  }
}, { hello: true, result: { name: "Error", message: "gave up" }, eof: null });

contract("UDP round trip with the sender's address", async (make) => {
  await using echo = await startUdpEcho({ hostname: "127.0.0.1" });
  const udp = await make().openUdp(4);
  try {
    const to = { transport: "udp" as const, hostname: "127.0.0.1", port: echo.port };
    const sent = await udp.send(enc.encode("dgram"), to);
    const [data, from] = await udp.receive();
    return {
      local: { ...udp.addr, port: udp.addr.port > 0 },
      sent,
      data: dec.decode(data),
      from: { ...from, port: from.port === echo.port },
    };
  } finally {
    udp.close();
  }
}, {
  local: { transport: "udp", hostname: "0.0.0.0", port: true },
  sent: 5,
  data: "dgram",
  from: { transport: "udp", hostname: "127.0.0.1", port: true },
});

/**
 * The name of a rejection on a closed resource, normalised: Deno rejects an operation pending at
 * `close()` with `Interrupted` and a later one with `BadResource`; the Bun transport (like the
 * shared `TlsConn`) with `BadResource` in both cases. The session treats both names alike.
 */
async function closedError(p: Promise<unknown>): Promise<string> {
  const f = await failure(p);
  if (typeof f === "string") return f;
  return f.name === "Interrupted" || f.name === "BadResource" ? "closed" : f.name;
}

contract("operations pending at close and after close", async (make) => {
  const t = make();
  const udp = await t.openUdp(6);
  const receiving = closedError(udp.receive());
  udp.close();
  const idle = await t.listenTcp("127.0.0.1", 0);
  const accepting = closedError(idle.accept());
  idle.close();
  const listener = await t.listenTcp("127.0.0.1", 0);
  const client = await t.connectTcp("127.0.0.1", listener.addr.port, never());
  const peer = await listener.accept();
  listener.close();
  const reading = closedError(client.read(new Uint8Array(8)));
  client.close();
  const eof = await peer.read(new Uint8Array(8));
  peer.close();
  return {
    udp: {
      hostname: udp.addr.hostname,
      pending: await receiving,
      after: await closedError(udp.receive()),
      send: await closedError(
        udp.send(enc.encode("x"), { transport: "udp", hostname: "::1", port: 9 }),
      ),
    },
    accept: { pending: await accepting, after: await closedError(idle.accept()) },
    tcp: {
      pending: await reading,
      after: await closedError(client.read(new Uint8Array(8))),
      write: await closedError(client.write(enc.encode("x"))),
      peerEof: eof,
    },
  };
}, {
  udp: { hostname: "::", pending: "closed", after: "closed", send: "closed" },
  accept: { pending: "closed", after: "closed" },
  tcp: { pending: "closed", after: "closed", write: "closed", peerEof: null },
});

contract("lookup through a name server: answers and NXDOMAIN", async (make) => {
  await using dns = await startDnsServer({
    records: {
      "a.test": { A: ["192.0.2.1"], AAAA: ["2001:db8::1"] },
      "v6.test": { AAAA: ["::1"] },
    },
  });
  const t = make({ nameServer: { ipAddr: dns.hostname, port: dns.port } });
  return {
    a: await t.lookup("a.test", never()),
    v6: await t.lookup("v6.test", never()),
    nx: await failure(t.lookup("nx.test", never())),
  };
}, {
  a: ["192.0.2.1", "2001:db8::1"],
  v6: ["::1"],
  nx: {
    name: "NotFound",
    message:
      'proto error: no records found for Query { name: Name("nx.test."), query_type: A, query_class: IN }',
  },
});

contract("system lookup of localhost and the lookup bound", async (make) => {
  const t = make({ maxLookups: 1 });
  const first = t.lookup("localhost", never());
  const second = await failure(t.lookup("localhost", never()));
  return { v4: (await first).includes("127.0.0.1"), second };
}, {
  v4: true,
  second: { name: "Error", message: "too many DNS lookups in flight (limit 1)" },
});
