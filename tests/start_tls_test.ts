/**
 * The wasmnet protocol extensions end to end: `start_tls` (upgrading an open TCP socket, as SMTP,
 * IMAP, PostgreSQL and MySQL do with STARTTLS) against a real STARTTLS-style loopback peer with
 * the test PKI, and `shutdown` (half-close) against peers that read until EOF, through the real
 * server (also as a Bun child: `WASMNET_TEST_SERVER=bun`), with the client library and the raw
 * protocol, in both framings; and what the client does against a server without the extensions.
 *
 * @module
 */
import assert from "node:assert/strict";
import * as net from "node:net";
import * as tls from "node:tls";
import { setLogLevel, type WasmnetServer } from "../mod.ts";
import { WasmnetClient, WasmnetError } from "../src/client/mod.ts";
import type { Framing } from "../src/protocol/mod.ts";
import { makeTestPki, type TestPki } from "./helpers/tls_certs.ts";
import { startTestServer, testTransport } from "./helpers/server.ts";
import { randomBytes, TestClient } from "./helpers/ws_client.ts";
import { startTcpEcho } from "./helpers/echo_servers.ts";
import { OLD_SERVERS, startOldServer } from "./helpers/old_server.ts";

setLogLevel((Deno.env.get("WASMNET_LOG") as "debug" | undefined) ?? "warn");

const FRAMINGS: readonly Framing[] = ["json", "binary"];
const te = new TextEncoder();
const td = new TextDecoder();

const pki: TestPki = await makeTestPki();

function serve(): Promise<WasmnetServer> {
  return startTestServer({ transport: testTransport({ caCerts: [pki.caCert] }) });
}

async function open(url: string, binary: boolean, debug?: string[]): Promise<WasmnetClient> {
  const client = new WasmnetClient(url, {
    binary,
    ...(debug ? { debug: (m: string) => void debug.push(m) } : {}),
  });
  await client.ready();
  return client;
}

function isCode(code: string, message?: RegExp): (e: unknown) => boolean {
  return (e: unknown): boolean =>
    e instanceof WasmnetError && e.code === code && (message?.test(e.message) ?? true);
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** What a STARTTLS peer saw on one connection. */
interface PeerConn {
  /** Bytes received before the upgrade (must be exactly `STARTTLS\r\n` after the greeting). */
  plaintext: string;
  /** SNI the client sent (`false` or `null`: none; undefined: no handshake yet). */
  servername: string | false | null | undefined;
  /** Bytes received over TLS. */
  tlsBytes: number;
  /** How the TLS session ended: `end` (close_notify/EOF), an error code, or undefined. */
  end: string | undefined;
}

/** A STARTTLS-style loopback peer. */
interface StarttlsPeer extends AsyncDisposable {
  readonly port: number;
  readonly conns: PeerConn[];
}

/**
 * A STARTTLS-style peer on 127.0.0.1:0 (node:net + node:tls server side, the test PKI's server
 * certificate): sends `220 ready\r\n`, reads plaintext until `STARTTLS\r\n`, answers `OK\r\n`,
 * then speaks TLS over the same connection. `echo`: echoes, and ends when the client ends;
 * `count`: reads until the client's EOF (close_notify, or its FIN), then sends
 * `got N bytes\n` and closes (a half-close test).
 */
function startStarttlsPeer(mode: "echo" | "count"): Promise<StarttlsPeer> {
  const conns: PeerConn[] = [];
  const sockets = new Set<net.Socket>();
  const closed = new Set<Promise<void>>();
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sockets.add(sock);
    closed.add(new Promise((resolve) => sock.once("close", () => resolve())));
    const conn: PeerConn = { plaintext: "", servername: undefined, tlsBytes: 0, end: undefined };
    conns.push(conn);
    sock.on("error", () => {});
    sock.write("220 ready\r\n");
    const onData = (chunk: Uint8Array): void => {
      conn.plaintext += td.decode(chunk);
      if (!conn.plaintext.endsWith("STARTTLS\r\n")) return;
      sock.off("data", onData);
      sock.pause();
      sock.write("OK\r\n", () => upgrade());
    };
    const upgrade = (): void => {
      const secure = new tls.TLSSocket(sock, {
        isServer: true,
        secureContext: tls.createSecureContext({ cert: pki.serverCert, key: pki.serverKey }),
      });
      secure.on("error", (e: Error & { code?: string }) => {
        conn.end ??= e.code ?? e.name;
        sock.destroy();
      });
      secure.on("secure", () => {
        conn.servername = (secure as unknown as { servername: string | false | null }).servername;
      });
      const received: Uint8Array[] = [];
      secure.on("data", (chunk: Uint8Array) => {
        conn.tlsBytes += chunk.byteLength;
        if (mode === "echo") secure.write(chunk);
        else received.push(chunk);
      });
      secure.on("end", () => {
        conn.end ??= "end";
        if (mode === "count") secure.write(`got ${conn.tlsBytes} bytes\n`);
        secure.end();
      });
    };
    sock.on("data", onData);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({
        port,
        conns,
        async [Symbol.asyncDispose](): Promise<void> {
          const done = new Promise<void>((r) => server.close(() => r()));
          for (const s of sockets) s.destroy();
          await Promise.all([done, ...closed]);
        },
      });
    });
  });
}

/**
 * A plain TCP peer on 127.0.0.1:0 that reads until the client's FIN, then sends
 * `got N bytes\n` and closes: only a real half-close gets the reply.
 */
function startCountingPeer(): { port: number; counts: number[] } & AsyncDisposable {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const counts: number[] = [];
  const tasks = new Set<Promise<void>>();
  const conns = new Set<Deno.Conn>();
  const serveConn = async (conn: Deno.Conn): Promise<void> => {
    let n = 0;
    const buf = new Uint8Array(64 * 1024);
    try {
      for (let r = await conn.read(buf); r !== null; r = await conn.read(buf)) n += r;
      counts.push(n);
      await conn.write(te.encode(`got ${n} bytes\n`));
    } catch {
      // closed by the test
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
  };
  const accepting = (async (): Promise<void> => {
    try {
      for await (const conn of listener) {
        conns.add(conn);
        const t = serveConn(conn).finally(() => tasks.delete(t));
        tasks.add(t);
      }
    } catch {
      // listener closed
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    counts,
    async [Symbol.asyncDispose](): Promise<void> {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
      await accepting;
      await Promise.all([...tasks]);
    },
  };
}

/** Reads from `reader` until the text read ends with `suffix`; returns it all. */
async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  suffix: string,
): Promise<string> {
  let text = "";
  while (!text.endsWith(suffix)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stream ended before ${JSON.stringify(suffix)}: ${text}`);
    text += td.decode(value);
  }
  return text;
}

/** Reads `n` bytes exactly from `reader`. */
async function readBytes(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  n: number,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let got = 0;
  while (got < n) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stream ended after ${got} of ${n} bytes`);
    chunks.push(value);
    got += value.byteLength;
  }
  return concat(chunks);
}

for (const framing of FRAMINGS) {
  const binary = framing === "binary";

  Deno.test(`start_tls: STARTTLS, then 1 MiB echoes byte-exact over TLS (${framing})`, async () => {
    await using peer = await startStarttlsPeer("echo");
    await using server = await serve();
    await using client = await open(server.url, binary);
    await using sock = client.openTcp("127.0.0.1", peer.port);
    const reader = sock.readable.getReader();
    const writer = sock.writable.getWriter();
    assert.equal(await readUntil(reader, "\r\n"), "220 ready\r\n");
    await writer.write(te.encode("STARTTLS\r\n"));
    assert.equal(await readUntil(reader, "\r\n"), "OK\r\n");
    assert.equal(client.supports("start_tls"), undefined);
    await sock.startTls("tls.test");
    assert.equal(client.supports("start_tls"), true);
    const payload = randomBytes(1024 * 1024);
    const writing = (async (): Promise<void> => {
      for (let i = 0; i < payload.byteLength; i += 60_000) {
        await writer.write(payload.subarray(i, i + 60_000));
      }
    })();
    const echoed = await readBytes(reader, payload.byteLength);
    await writing;
    assert.deepEqual(echoed, payload);
    const [conn] = peer.conns;
    assert.equal(conn?.plaintext, "STARTTLS\r\n", "nothing else in plaintext");
    assert.equal(conn?.servername, "tls.test", "SNI");
    assert.equal(conn?.tlsBytes, payload.byteLength);
    await sock.close();
  });

  Deno.test(`start_tls: the default servername is the socket's host; an IP sends no SNI (${framing})`, async () => {
    await using peer = await startStarttlsPeer("echo");
    await using server = await serve();
    await using client = await open(server.url, binary);
    const id = await client.connect("127.0.0.1", peer.port);
    const received: Uint8Array[] = [];
    const text = (): string => td.decode(concat(received));
    client.onData(id, (d) => void received.push(d.slice()));
    const waitText = async (suffix: string): Promise<void> => {
      while (!text().endsWith(suffix)) await new Promise((r) => setTimeout(r, 2));
    };
    await waitText("220 ready\r\n");
    client.send(id, "STARTTLS\r\n");
    await waitText("OK\r\n");
    // Sent at once, not awaited: the server holds these and sends them through TLS.
    const upgraded = client.startTls(id);
    client.send(id, "secret over tls");
    await upgraded;
    await waitText("OK\r\nsecret over tls");
    const [conn] = peer.conns;
    assert.equal(conn?.plaintext, "STARTTLS\r\n", "the secret never went in plaintext");
    // Node says `false` for no SNI, Deno's node:tls `null`; undefined would mean no handshake.
    assert.ok(conn?.servername === false || conn?.servername === null, "no SNI for an IP");
    // A second start_tls on the (now TLS) socket is refused and the socket goes on.
    await assert.rejects(
      client.startTls(id),
      isCode("ESERVER", /^start_tls refused on socket \d+: it already speaks TLS$/),
    );
    client.send(id, "!");
    await waitText("secret over tls!");
    const closed = new Promise<void>((resolve) => client.onClose(id, resolve));
    client.close(id);
    await closed;
  });

  Deno.test(`start_tls: a certificate not valid for the servername fails, the socket is closed (${framing})`, async () => {
    await using peer = await startStarttlsPeer("echo");
    await using server = await serve();
    await using client = await open(server.url, binary);
    await using sock = client.openTcp("127.0.0.1", peer.port);
    const reader = sock.readable.getReader();
    const writer = sock.writable.getWriter();
    await readUntil(reader, "220 ready\r\n");
    await writer.write(te.encode("STARTTLS\r\n"));
    await readUntil(reader, "OK\r\n");
    const expected =
      /^TLS handshake with wrong\.example \(127\.0\.0\.1:\d+\) failed: certificate is not valid for wrong\.example \(ERR_TLS_CERT_ALTNAME_INVALID\)$/;
    await assert.rejects(sock.startTls("wrong.example"), isCode("ESERVER", expected));
    await assert.rejects(sock.closed, isCode("ESERVER", expected));
    await assert.rejects(reader.read(), isCode("ESERVER", expected));
    await assert.rejects(writer.write(te.encode("x")), isCode("ESERVER", expected));
  });

  Deno.test(`shutdown: writable.close() half-closes; the peer's reply after EOF arrives (${framing})`, async () => {
    await using peer = startCountingPeer();
    await using server = await serve();
    await using client = await open(server.url, binary);
    const sock = client.openTcp("127.0.0.1", peer.port);
    const payload = randomBytes(300_000);
    const writer = sock.writable.getWriter();
    await writer.write(payload);
    await writer.close(); // shutdown: the peer sees EOF and only then replies
    const reply = await new Response(sock.readable).text();
    assert.equal(reply, `got ${payload.byteLength} bytes\n`);
    await sock.closed;
    assert.deepEqual(peer.counts, [payload.byteLength]);
    assert.equal(client.supports("shutdown"), undefined, "no answer to shutdown itself");
  });

  Deno.test(`shutdown: the id API; send after shutdown throws, data keeps flowing (${framing})`, async () => {
    await using peer = startCountingPeer();
    await using server = await serve();
    await using client = await open(server.url, binary);
    const id = await client.connect("127.0.0.1", peer.port);
    const received: Uint8Array[] = [];
    client.onData(id, (d) => void received.push(d.slice()));
    const closed = new Promise<void>((resolve) => client.onClose(id, resolve));
    client.send(id, "12345");
    client.shutdown(id);
    assert.throws(() => client.send(id, "6"), isCode("ECLOSED", /shut down for writing/));
    await closed;
    assert.equal(td.decode(concat(received)), "got 5 bytes\n");
  });

  Deno.test(`shutdown over TLS: close_notify, then the peer's reply, then closed (${framing})`, async () => {
    await using peer = await startStarttlsPeer("count");
    await using server = await serve();
    await using client = await open(server.url, binary);
    const sock = client.openTcp("127.0.0.1", peer.port);
    const reader = sock.readable.getReader();
    const writer = sock.writable.getWriter();
    await readUntil(reader, "220 ready\r\n");
    await writer.write(te.encode("STARTTLS\r\n"));
    await readUntil(reader, "OK\r\n");
    await sock.startTls("localhost");
    await writer.write(te.encode("0123456789"));
    sock.shutdown();
    await assert.rejects(writer.write(te.encode("x")), isCode("ECLOSED", /shut down/));
    let rest = "";
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += td.decode(r.value);
    assert.equal(rest, "got 10 bytes\n");
    await sock.closed;
    assert.equal(peer.conns[0]?.end, "end");
  });

  Deno.test(`shutdown and start_tls on the wire: a send after shutdown is a non-terminal error (${framing})`, async () => {
    await using peer = startCountingPeer();
    await using server = await serve();
    await using raw = await TestClient.open(server.url, framing);
    raw.send({ op: "connect", id: 1, addr: "127.0.0.1", port: peer.port });
    assert.deepEqual(await raw.nextFor(1), { ev: "connected", id: 1 });
    raw.send({ op: "send", id: 1, data: te.encode("abc") });
    raw.send({ op: "shutdown", id: 1 });
    raw.send({ op: "send", id: 1, data: te.encode("d") });
    assert.deepEqual(await raw.nextFor(1), {
      ev: "error",
      id: 1,
      msg: "socket 1 is shut down for writing",
    });
    assert.deepEqual(await raw.nextFor(1), { ev: "data", id: 1, data: te.encode("got 3 bytes\n") });
    assert.deepEqual(await raw.nextFor(1), { ev: "closed", id: 1 });
    // start_tls on an id that has ended: answered, never a crash.
    raw.send({ op: "start_tls", id: 1, servername: "tls.test" });
    assert.deepEqual(await raw.nextFor(1), { ev: "error", id: 1, msg: "unknown id 1" });
  });
}

// --- servers without the extensions ------------------------------------------------------------

for (const [name, old] of Object.entries(OLD_SERVERS)) {
  for (const framing of FRAMINGS) {
    Deno.test(`old server (${name}): start_tls rejects EUNSUPPORTED, shutdown is ignored, the socket goes on in plaintext (${framing})`, async () => {
      await using echo = await startTcpEcho();
      await using server = await serve();
      await using relay = await startOldServer(server.url, old);
      const debug: string[] = [];
      await using client = await open(relay.url, framing === "binary", debug);
      await using sock = client.openTcp("127.0.0.1", echo.port);
      await sock.opened;
      const unsupported = isCode(
        "EUNSUPPORTED",
        /^the server does not support start_tls \(a wasmnet protocol extension\)$/,
      );
      await assert.rejects(sock.startTls("tls.test"), unsupported);
      assert.equal(client.supports("start_tls"), false);
      // Known now: the next one fails at once, without a request.
      await assert.rejects(client.startTls(sock.id), unsupported);
      assert.equal(relay.refused.length, 1);
      // The socket is untouched and still plaintext.
      const reader = sock.readable.getReader();
      const writer = sock.writable.getWriter();
      await writer.write(te.encode("ping"));
      assert.equal(await readUntil(reader, "ping"), "ping");
      // shutdown: refused by the server, so the socket stays fully open, as it always did.
      sock.shutdown();
      while (client.supports("shutdown") === undefined) {
        await new Promise((r) => setTimeout(r, 2));
      }
      assert.equal(client.supports("shutdown"), false);
      assert.ok(debug.some((m) => m.startsWith("the server does not support shutdown")));
      assert.equal(relay.refused.length, 2);
      // The peer got no FIN: it still echoes (the socket is open both ways on the server).
      const id2 = await client.connect("127.0.0.1", echo.port);
      const got: Uint8Array[] = [];
      client.onData(id2, (d) => void got.push(d.slice()));
      client.send(id2, "a");
      client.shutdown(id2); // known unsupported: not even sent
      assert.equal(relay.refused.length, 2);
      while (got.length === 0) await new Promise((r) => setTimeout(r, 2));
      assert.equal(td.decode(concat(got)), "a");
      client.close(id2);
      await sock.close();
    });
  }
}
