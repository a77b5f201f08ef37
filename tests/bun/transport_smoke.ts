/**
 * Smoke test of the Bun transport under real Bun (no Deno APIs): connect, echo, half-close,
 * backpressure, refused dial, abort, dial bound, TLS (trusted, untrusted, wrong name, abort),
 * UDP, listener and lookups (system, and a name server), and under Bun the `Bun.connect` path
 * (partial writes in order, write after half-close, close and reset semantics, the read queue's
 * bound, dial slots after aborts), against loopback servers this script
 * starts with `node:net`, `node:tls` and `node:dgram` (certificates made with the `openssl` CLI).
 * Prints one line per check and exits non-zero when any fails.
 *
 * Run from the repository root: `bun run tests/bun/transport_smoke.ts` (it runs under
 * `deno run -A` too).
 *
 * @module
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as dgram from "node:dgram";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import * as tls from "node:tls";
import type { StreamConn, Transport } from "../../src/transport/mod.ts";
import {
  BunSocketConn,
  bunTransport,
  connectTcp,
  type NodeSocketConn,
} from "../../src/transport/bun/mod.ts";
import { Slots } from "../../src/transport/mod.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const never = (): AbortSignal => new AbortController().signal;
const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const out = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

const runtime = (globalThis as { Bun?: { version: string } }).Bun
  ? `bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`
  : `other (${process.version})`;

const onBun = (globalThis as { Bun?: unknown }).Bun !== undefined;

let failures = 0;
/** Runs one named check; prints `ok NAME`, or `FAIL NAME: error` and counts the failure. */
async function check(name: string, fn: () => Promise<string | void>): Promise<void> {
  try {
    const note = await fn();
    out(`ok   ${name}${note ? ` — ${note}` : ""}`);
  } catch (e) {
    failures++;
    out(`FAIL ${name}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  }
}

/** Index of the first differing byte, or -1 when equal (deepEqual is slow on 32 MiB). */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.byteLength !== b.byteLength) return Math.min(a.byteLength, b.byteLength);
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return i;
  return -1;
}

async function readAll(conn: StreamConn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    parts.push(buf.slice(0, n));
  }
  const all = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.byteLength;
  }
  return all;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    const v = await p;
    (v as { close?: () => void } | undefined)?.close?.();
  } catch (e) {
    if (e instanceof Error) return e;
    throw new Error(`rejected with a non-Error: ${String(e)}`);
  }
  throw new Error("expected a rejection, got a value");
}

/** Open file descriptors of this process. */
function fds(): number {
  return readdirSync("/proc/self/fd").length;
}

async function fdsBackTo(baseline: number, what: string): Promise<void> {
  for (let i = 0; i < 100 && fds() > baseline; i++) await delay(10);
  assert.ok(fds() <= baseline, `${what}: ${fds() - baseline} fds above the baseline`);
}

function listening<T extends net.Server | dgram.Socket>(server: T): Promise<T> {
  if (server instanceof net.Server) {
    const open = new Set<net.Socket>();
    connections.set(server, open);
    server.on("connection", (sock: net.Socket) => {
      open.add(sock);
      sock.once("close", () => open.delete(sock));
    });
  }
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.once("listening", () => resolve(server));
  });
}

function portOf(server: net.Server): number {
  return (server.address() as net.AddressInfo).port;
}

/**
 * Closes `server` and destroys the connections it still has (Deno's `node:tls` server keeps a
 * connection whose client gave up during the handshake, and `close()` waits for it).
 */
function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    for (const sock of connections.get(server) ?? []) sock.destroy();
  });
}

const connections = new WeakMap<net.Server, Set<net.Socket>>();

/** A TCP (or TLS) echo server that echoes until EOF, then half-closes. */
function echoHandler(sock: net.Socket): void {
  sock.on("error", () => {});
  sock.pipe(sock);
}

/** CA, a leaf for localhost/127.0.0.1 signed by it, and a leaf signed by another CA. */
function makeCerts(): { ca: string; cert: string; key: string; badCert: string; badKey: string } {
  const dir = mkdtempSync(join(tmpdir(), "wasmnet-smoke-"));
  const openssl = (...args: string[]): void => {
    execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
  };
  try {
    writeFileSync(
      join(dir, "leaf.ext"),
      "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n" +
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    );
    for (const ca of ["ca", "badca"]) {
      openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        `${ca}.key`,
        "-out",
        `${ca}.pem`,
        "-days",
        "2",
        "-subj",
        `/CN=wasmnet smoke ${ca}`,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
      );
      const leaf = ca === "ca" ? "leaf" : "badleaf";
      openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        `${leaf}.key`,
        "-out",
        `${leaf}.csr`,
        "-subj",
        "/CN=localhost",
      );
      openssl(
        "x509",
        "-req",
        "-in",
        `${leaf}.csr`,
        "-CA",
        `${ca}.pem`,
        "-CAkey",
        `${ca}.key`,
        "-CAcreateserial",
        "-out",
        `${leaf}.pem`,
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
      );
    }
    const read = (f: string): string => readFileSync(join(dir, f), "utf8");
    return {
      ca: read("ca.pem"),
      cert: read("leaf.pem"),
      key: read("leaf.key"),
      badCert: read("badleaf.pem"),
      badKey: read("badleaf.key"),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A minimal authoritative DNS server on UDP 127.0.0.1: answers A/AAAA for `records`, NXDOMAIN
 * for other names (one question per query, no compression in questions).
 */
async function startDns(
  records: Record<string, { A?: number[][]; AAAA?: number[][] }>,
): Promise<dgram.Socket> {
  const sock = dgram.createSocket("udp4");
  sock.on("message", (msg: Uint8Array, rinfo: dgram.RemoteInfo) => {
    let at = 12;
    const labels: string[] = [];
    while (at < msg.byteLength && msg[at] !== 0) {
      const len = msg[at] ?? 0;
      labels.push(dec.decode(msg.subarray(at + 1, at + 1 + len)));
      at += 1 + len;
    }
    const qEnd = at + 5; // zero byte, type (2), class (2)
    const type = ((msg[at + 1] ?? 0) << 8) | (msg[at + 2] ?? 0);
    const name = labels.join(".").toLowerCase();
    const known = records[name];
    const answers = known === undefined
      ? []
      : type === 1
      ? known.A ?? []
      : type === 28
      ? known.AAAA ?? []
      : [];
    const header = [
      msg[0] ?? 0,
      msg[1] ?? 0,
      0x84 | ((msg[2] ?? 0) & 0x01), // QR, AA, RD copied
      known === undefined ? 3 : 0, // NXDOMAIN / NOERROR
      0,
      1,
      0,
      answers.length,
      0,
      0,
      0,
      0,
    ];
    const body: number[] = [...msg.subarray(12, qEnd)];
    for (const addr of answers) {
      body.push(0xc0, 12, 0, type, 0, 1, 0, 0, 0, 60, 0, addr.length, ...addr);
    }
    sock.send(new Uint8Array([...header, ...body]), rinfo.port, rinfo.address);
  });
  sock.bind(0, "127.0.0.1");
  return await listening(sock);
}

/** The checks of the `Bun.connect` path ({@linkcode BunSocketConn}), run under Bun only. */
async function nativeChecks(transport: Transport, echoPort: number): Promise<void> {
  await check("native: Bun dials with Bun.connect", async () => {
    const conn = await transport.connectTcp("127.0.0.1", echoPort, never());
    const native = conn instanceof BunSocketConn;
    const addr = native ? conn.localAddr : undefined;
    conn.close();
    assert.ok(native, "connectTcp did not return a BunSocketConn");
    assert.equal(addr?.hostname, "127.0.0.1");
    assert.ok((addr?.port ?? 0) > 0);
  });

  await check(
    "native: 32 MiB in 4 unawaited writes (partial writes) arrive intact, in order",
    async () => {
      const total = 32 * 1024 * 1024;
      const data = new Uint8Array(total).map((_, i) => (i * 7) % 251);
      const received: Uint8Array[] = [];
      const { promise: all, resolve } = Promise.withResolvers<Uint8Array>();
      const server = await listening(
        net.createServer({ allowHalfOpen: true }, (sock) => {
          sock.on("error", () => {});
          sock.on("data", (d: Uint8Array) => received.push(d));
          sock.on("end", () => {
            resolve(new Uint8Array(Buffer.concat(received)));
            sock.end();
          });
        }).listen(0, "127.0.0.1"),
      );
      try {
        const conn = await transport.connectTcp("127.0.0.1", portOf(server), never());
        const quarter = total / 4;
        const writes = [0, 1, 2, 3].map((i) =>
          conn.write(data.subarray(i * quarter, (i + 1) * quarter))
        );
        const closing = conn.closeWrite?.(); // after the pending writes
        assert.deepEqual(await Promise.all(writes), [quarter, quarter, quarter, quarter]);
        await closing;
        const got = await all;
        assert.equal(await conn.read(new Uint8Array(1)), null);
        conn.close();
        assert.equal(got.byteLength, total);
        assert.equal(firstDifference(got, data), -1);
      } finally {
        await closeServer(server);
      }
    },
  );

  await check("native: half-close: reads go on, a later write is BrokenPipe", async () => {
    const server = await listening(
      net.createServer({ allowHalfOpen: true }, (sock) => {
        sock.on("error", () => {});
        sock.resume();
        sock.on("end", () => setTimeout(() => sock.end("late reply"), 50));
      }).listen(0, "127.0.0.1"),
    );
    try {
      const conn = await transport.connectTcp("127.0.0.1", portOf(server), never());
      await conn.closeWrite?.();
      await conn.closeWrite?.(); // twice: nothing more
      const e = await rejection(conn.write(enc.encode("x")));
      assert.equal(e.name, "BrokenPipe");
      assert.equal(e.message, "Broken pipe (os error 32)");
      assert.equal(dec.decode(await readAll(conn)), "late reply");
      conn.close();
    } finally {
      await closeServer(server);
    }
  });

  await check(
    "native: close: peer sees FIN, pending read and write reject BadResource",
    async () => {
      const ends: string[] = [];
      const server = await listening(
        net.createServer({ allowHalfOpen: true }, (sock) => {
          sock.on("error", (e: Error & { code?: string }) => ends.push(`error ${e.code}`));
          sock.on("end", () => ends.push("end"));
          sock.pause(); // nobody reads: our writes fill the kernel buffers
        }).listen(0, "127.0.0.1"),
      );
      try {
        const baseline = fds();
        const conn = await transport.connectTcp("127.0.0.1", portOf(server), never());
        const read = conn.read(new Uint8Array(10));
        const write = conn.write(new Uint8Array(64 * 1024 * 1024)); // never fits
        await delay(50);
        conn.close();
        conn.close(); // a second close does nothing
        assert.equal((await rejection(read)).name, "BadResource");
        assert.equal((await rejection(write)).name, "BadResource");
        assert.equal((await rejection(conn.read(new Uint8Array(1)))).name, "BadResource");
        assert.equal((await rejection(conn.write(enc.encode("x")))).name, "BadResource");
        await fdsBackTo(baseline + 1, "closed conn"); // + the server's side
        const conn2 = await transport.connectTcp("127.0.0.1", portOf(server), never());
        await delay(20);
        conn2.close();
        for (let i = 0; i < 100 && !ends.includes("end"); i++) await delay(10);
        assert.ok(ends.includes("end"), `the peer saw ${JSON.stringify(ends)}, not a FIN`);
      } finally {
        await closeServer(server);
      }
    },
  );

  await check("native: reset by the peer reads as ConnectionReset", async () => {
    const server = await listening(
      net.createServer((sock) => {
        sock.on("error", () => {});
        setTimeout(() => sock.resetAndDestroy(), 20);
      }).listen(0, "127.0.0.1"),
    );
    try {
      const conn = await transport.connectTcp("127.0.0.1", portOf(server), never());
      const e = await rejection(conn.read(new Uint8Array(10)));
      assert.equal(e.name, "ConnectionReset");
      assert.equal(e.message, "Connection reset by peer (os error 104)");
      assert.equal((await rejection(conn.write(enc.encode("x")))).name, "ConnectionReset");
      conn.close();
    } finally {
      await closeServer(server);
    }
  });

  await check("native: a socket nobody reads stops at a bounded queue", async () => {
    const total = 32 * 1024 * 1024;
    const server = await listening(
      net.createServer((sock) => {
        sock.on("error", () => {});
        sock.end(new Uint8Array(total));
      }).listen(0, "127.0.0.1"),
    );
    try {
      const conn = await transport.connectTcp("127.0.0.1", portOf(server), never());
      assert.ok(conn instanceof BunSocketConn);
      await delay(300);
      const queued = conn.queuedBytes;
      assert.ok(queued >= 256 * 1024, `only ${queued} bytes queued`);
      assert.ok(queued <= 2 * 1024 * 1024, `${queued} bytes queued while nobody reads`);
      await delay(200);
      assert.equal(conn.queuedBytes, queued, "the queue grew while paused");
      assert.equal((await readAll(conn)).byteLength, total);
      conn.close();
      return `${(queued / 1024).toFixed(0)} KiB queued`;
    } finally {
      await closeServer(server);
    }
  });

  await check("native: aborted dials give their slots back and leave no fd", async () => {
    const slots = new Slots(100, "connection attempts");
    const baseline = fds();
    await Promise.all(Array.from({ length: 100 }, async (_, i) => {
      const ctrl = new AbortController();
      const dial = connectTcp("127.0.0.1", echoPort, ctrl.signal, { slots });
      if (i % 2 === 0) ctrl.abort(new Error("during"));
      else queueMicrotask(() => ctrl.abort(new Error("during")));
      assert.equal((await rejection(dial)).message, "during");
    }));
    for (let i = 0; i < 100 && slots.inFlight > 0; i++) await delay(10);
    assert.equal(slots.inFlight, 0);
    await fdsBackTo(baseline, "aborted dials");
  });
}

async function main(): Promise<void> {
  out(`transport smoke on ${runtime}`);
  const transport: Transport = bunTransport();

  const echo = await listening(
    net.createServer({ allowHalfOpen: true }, echoHandler).listen(0, "127.0.0.1"),
  );
  const echoPort = portOf(echo);

  await check("connect, echo, half-close, EOF", async () => {
    const conn = await transport.connectTcp("127.0.0.1", echoPort, never());
    try {
      assert.equal(await conn.write(enc.encode("hello")), 5);
      await conn.closeWrite?.();
      assert.equal(dec.decode(await readAll(conn)), "hello");
      assert.equal(await conn.read(new Uint8Array(1)), null);
    } finally {
      conn.close();
    }
  });

  await check("peer keeps writing after our FIN (half-open)", async () => {
    const server = await listening(
      net.createServer({ allowHalfOpen: true }, (sock) => {
        sock.on("error", () => {});
        sock.on("end", () => sock.end("after your FIN"));
        sock.resume();
      }).listen(0, "127.0.0.1"),
    );
    try {
      const conn = await transport.connectTcp("127.0.0.1", portOf(server), never());
      await conn.closeWrite?.();
      assert.equal(dec.decode(await readAll(conn)), "after your FIN");
      conn.close();
    } finally {
      await closeServer(server);
    }
  });

  await check(
    "read backpressure: 32 MiB, writer held while nobody reads, no byte lost",
    async () => {
      const total = 32 * 1024 * 1024; // above what loopback TCP buffers can hold (~10 MiB)
      const data = new Uint8Array(total).map((_, i) => i % 251);
      let finished = false;
      const server = await listening(
        net.createServer((sock) => {
          sock.on("error", () => {});
          sock.end(data, () => finished = true);
        }).listen(0, "127.0.0.1"),
      );
      try {
        const conn = await transport.connectTcp("127.0.0.1", portOf(server), never());
        await delay(300);
        assert.equal(finished, false, "the server finished writing 32 MiB nobody read");
        const got = await readAll(conn);
        conn.close();
        assert.equal(got.byteLength, total);
        assert.equal(firstDifference(got, data), -1);
      } finally {
        await closeServer(server);
      }
    },
  );

  await check("refused dial reads as Deno's", async () => {
    const closed = await listening(net.createServer().listen(0, "127.0.0.1"));
    const port = portOf(closed);
    await closeServer(closed);
    const e = await rejection(transport.connectTcp("127.0.0.1", port, never()));
    assert.equal(e.name, "ConnectionRefused");
    assert.equal(e.message, "Connection refused (os error 111)");
  });

  await check("abort before and during 300 dials: no fd left, slots back", async () => {
    const t = bunTransport({ maxDials: 400 });
    const baseline = fds();
    const before = new AbortController();
    before.abort(new Error("before"));
    assert.equal(
      (await rejection(t.connectTcp("127.0.0.1", echoPort, before.signal))).message,
      "before",
    );
    const outcomes = new Map<string, number>();
    await Promise.all(Array.from({ length: 300 }, async (_, i) => {
      const ctrl = new AbortController();
      const dial = t.connectTcp("127.0.0.1", echoPort, ctrl.signal);
      if (i % 3 === 0) ctrl.abort(new Error("during"));
      else setTimeout(() => ctrl.abort(new Error("during")), i % 5);
      try {
        const conn = await dial;
        outcomes.set("connected", (outcomes.get("connected") ?? 0) + 1);
        conn.close();
      } catch (e) {
        const m = (e as Error).message;
        outcomes.set(m, (outcomes.get(m) ?? 0) + 1);
      }
    }));
    await fdsBackTo(baseline, "aborted dials");
    const second = bunTransport({ maxDials: 1 });
    const first = second.connectTcp("127.0.0.1", echoPort, never());
    const bound = await rejection(second.connectTcp("127.0.0.1", echoPort, never()));
    assert.equal(bound.message, "too many connection attempts in flight (limit 1)");
    (await first).close();
    return JSON.stringify(Object.fromEntries(outcomes));
  });

  if (onBun) await nativeChecks(transport, echoPort);

  const certs = makeCerts();
  const tlsTransport = bunTransport({ caCerts: [certs.ca] });
  const tlsEcho = (cert: string, key: string): Promise<net.Server> =>
    listening(
      tls.createServer({ cert, key, allowHalfOpen: true }, echoHandler).listen(0, "127.0.0.1"),
    );

  await check("TLS verified with caCerts (SNI localhost, and an IP name)", async () => {
    const server = await tlsEcho(certs.cert, certs.key);
    try {
      for (const name of ["localhost", "127.0.0.1"]) {
        const tcp = await tlsTransport.connectTcp("127.0.0.1", portOf(server), never());
        const conn = await tlsTransport.startTls(tcp, name, never());
        await conn.write(enc.encode(`hi ${name}`));
        await conn.closeWrite?.();
        assert.equal(dec.decode(await readAll(conn)), `hi ${name}`);
        conn.close();
      }
    } finally {
      await closeServer(server);
    }
  });

  await check("TLS read backpressure: 32 MiB, writer held, EOF kept", async () => {
    const total = 32 * 1024 * 1024;
    const data = new Uint8Array(total).map((_, i) => i % 253);
    let finished = false;
    const server = await listening(
      tls.createServer({ cert: certs.cert, key: certs.key }, (sock) => {
        sock.on("error", () => {});
        sock.end(data, () => finished = true);
      }).listen(0, "127.0.0.1"),
    );
    try {
      const tcp = await tlsTransport.connectTcp("127.0.0.1", portOf(server), never());
      const conn = await tlsTransport.startTls(tcp, "localhost", never());
      await delay(300);
      assert.equal(finished, false, "the server finished writing 32 MiB nobody read");
      const started = performance.now();
      const got = await readAll(conn);
      const mbs = got.byteLength / 1e6 / ((performance.now() - started) / 1000);
      conn.close();
      assert.equal(got.byteLength, total);
      assert.equal(firstDifference(got, data), -1);
      return `${mbs.toFixed(0)} MB/s`;
    } finally {
      await closeServer(server);
    }
  });

  await check("TLS failure texts", async () => {
    const notes: string[] = [];
    const bad = await tlsEcho(certs.badCert, certs.badKey);
    const good = await tlsEcho(certs.cert, certs.key);
    try {
      const untrusted = await rejection(
        tlsTransport.startTls(
          await tlsTransport.connectTcp("127.0.0.1", portOf(bad), never()),
          "localhost",
          never(),
        ),
      );
      assert.equal(untrusted.name, "TlsError");
      assert.match(untrusted.message, /^certificate is not trusted \([A-Z_]+\)$/);
      notes.push(untrusted.message);
      const wrongName = await rejection(
        tlsTransport.startTls(
          await tlsTransport.connectTcp("127.0.0.1", portOf(good), never()),
          "example.com",
          never(),
        ),
      );
      assert.equal(
        wrongName.message,
        "certificate is not valid for example.com (ERR_TLS_CERT_ALTNAME_INVALID)",
      );
      const plain = await rejection(
        tlsTransport.startTls(
          await tlsTransport.connectTcp("127.0.0.1", echoPort, never()),
          "localhost",
          never(),
        ),
      );
      assert.match(plain.message, /^the peer does not speak TLS \([A-Z_0-9]+\)$/);
      notes.push(plain.message);
    } finally {
      await closeServer(bad);
      await closeServer(good);
    }
    return notes.join(" | ");
  });

  await check("TLS to a silent peer: abort frees the socket", async () => {
    const peers: net.Socket[] = [];
    const silent = await listening(
      net.createServer((s) => {
        peers.push(s);
        s.on("error", () => {});
        s.resume();
      }).listen(0, "127.0.0.1"),
    );
    try {
      const baseline = fds();
      const tcp = await transport.connectTcp("127.0.0.1", portOf(silent), never());
      const ctrl = new AbortController();
      const handshake = transport.startTls(tcp, "localhost", ctrl.signal);
      await delay(50);
      ctrl.abort(new Error("gave up"));
      assert.equal((await rejection(handshake)).message, "gave up");
      const peer = peers[0];
      if (peer && !peer.closed) await new Promise((r) => peer.once("close", r));
      await fdsBackTo(baseline, "aborted handshake");
    } finally {
      await closeServer(silent);
    }
  });

  await check("UDP round trip with the sender's address; closed socket", async () => {
    const peer = dgram.createSocket("udp4");
    peer.on("message", (m, r) => peer.send(m, r.port, r.address));
    peer.bind(0, "127.0.0.1");
    await listening(peer);
    try {
      const udp = await transport.openUdp(4);
      assert.equal(udp.addr.transport, "udp");
      assert.equal(udp.addr.hostname, "0.0.0.0");
      assert.ok(udp.addr.port > 0);
      const port = peer.address().port;
      assert.equal(
        await udp.send(enc.encode("dgram"), { transport: "udp", hostname: "127.0.0.1", port }),
        5,
      );
      const [data, from] = await udp.receive();
      assert.equal(dec.decode(data), "dgram");
      assert.deepEqual(from, { transport: "udp", hostname: "127.0.0.1", port });
      // ICMP port unreachable must not fail (or drop) the next datagrams (Bun reports it on the
      // next send; the transport retries).
      const gone = dgram.createSocket("udp4");
      gone.bind(0, "127.0.0.1");
      await listening(gone);
      const closedPort = gone.address().port;
      await new Promise<void>((r) => gone.close(() => r()));
      const burst = await Promise.all([
        ...[0, 1, 2].map(() =>
          udp.send(enc.encode("x"), { transport: "udp", hostname: "127.0.0.1", port: closedPort })
        ),
        udp.send(enc.encode("after icmp"), { transport: "udp", hostname: "127.0.0.1", port }),
      ]);
      assert.deepEqual(burst, [1, 1, 1, 10]);
      assert.equal(dec.decode((await udp.receive())[0]), "after icmp");
      const pending = udp.receive();
      udp.close();
      assert.equal((await rejection(pending)).name, "BadResource");
      assert.equal((await rejection(udp.receive())).name, "BadResource");
      const udp6 = await transport.openUdp(6);
      assert.equal(udp6.addr.hostname, "::");
      udp6.close();
    } finally {
      peer.close();
    }
  });

  await check("listener: accept with remoteAddr, AddrInUse, close", async () => {
    const listener = await transport.listenTcp("127.0.0.1", 0);
    try {
      const conn = (await transport.connectTcp(
        "127.0.0.1",
        listener.addr.port,
        never(),
      )) as NodeSocketConn | BunSocketConn;
      const peer = await listener.accept();
      assert.deepEqual(peer.remoteAddr, {
        transport: "tcp",
        hostname: "127.0.0.1",
        port: conn.localAddr.port,
      });
      await peer.write(enc.encode("from the listener"));
      await peer.closeWrite?.();
      assert.equal(dec.decode(await readAll(conn)), "from the listener");
      conn.close();
      peer.close();
      const inUse = await rejection(
        Promise.resolve(transport.listenTcp("127.0.0.1", listener.addr.port)),
      );
      assert.equal(inUse.name, "AddrInUse");
      assert.equal(inUse.message, "Address already in use (os error 98)");
    } finally {
      listener.close();
    }
    assert.equal((await rejection(listener.accept())).name, "BadResource");
  });

  await check("lookup: system resolver, and a name server (IPv4 first, NXDOMAIN)", async () => {
    const local = await transport.lookup("localhost", never());
    assert.ok(local.includes("127.0.0.1"), `localhost -> ${local.join(",")}`);
    const dns = await startDns({
      "a.test": {
        A: [[192, 0, 2, 1]],
        AAAA: [[0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1]],
      },
    });
    try {
      const t = bunTransport({ nameServer: { ipAddr: "127.0.0.1", port: dns.address().port } });
      assert.deepEqual(await t.lookup("a.test", never()), ["192.0.2.1", "2001:db8::1"]);
      const nx = await rejection(t.lookup("nx.test", never()));
      assert.equal(nx.name, "NotFound");
      assert.equal(
        nx.message,
        'proto error: no records found for Query { name: Name("nx.test."), query_type: A, query_class: IN }',
      );
      return `localhost -> ${local.join(", ")}`;
    } finally {
      dns.close();
    }
  });

  await closeServer(echo);
  out(failures === 0 ? "all checks passed" : `${failures} check(s) failed`);
  process.exitCode = failures === 0 ? 0 : 1;
}

await main();
