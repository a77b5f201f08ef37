/**
 * `bind`, `listen`, `accepted` and accepted connections end to end: a real wasmnet server, a real
 * WebSocket client that opens listeners, and real TCP clients (`Deno.connect`) that connect to
 * them, in both framings.
 *
 * @module
 */
import assert from "node:assert/strict";
import { randomBytes, TestClient } from "./helpers/ws_client.ts";
import { loopbackPolicy, startTestServer } from "./helpers/server.ts";
import { startTcpEcho } from "./helpers/echo_servers.ts";
import type { Framing } from "../src/protocol/mod.ts";

const FRAMINGS: readonly Framing[] = ["json", "binary"];
const enc = new TextEncoder();
/** First server-assigned connection id (2^52). */
const SERVER_ID_BASE = 2 ** 52;
/** A policy that lets `bind` use any port on loopback. */
const BIND_ANY = { bindPorts: "0-65535" };

/** Sends `bind` and returns the port of `listening`. */
async function bind(client: TestClient, id: number, addr = "127.0.0.1", port = 0): Promise<number> {
  client.send({ op: "bind", id, addr, port });
  const ev = await client.nextFor(id);
  if (ev.ev !== "listening") throw new Error(`bind ${id}: ${JSON.stringify(ev)}`);
  assert.ok(ev.port > 0 && ev.port <= 65535, `listening port ${ev.port}`);
  if (port !== 0) assert.equal(ev.port, port);
  return ev.port;
}

/** A `listen` request with no backlog field (JSON) or payload (binary). */
function listenWithoutBacklog(id: number, framing: Framing): string | Uint8Array {
  if (framing === "json") return JSON.stringify({ op: "listen", id });
  const frame = new Uint8Array(9);
  const view = new DataView(frame.buffer);
  view.setUint8(0, 0x03);
  view.setBigUint64(1, BigInt(id));
  return frame;
}

/** A TCP client connection that is closed by `using` unless the test closed it already. */
interface Peer extends Disposable {
  conn: Deno.TcpConn;
  /** Closes the connection (idempotent). */
  close(): void;
}

async function dial(port: number, hostname = "127.0.0.1"): Promise<Peer> {
  const conn = await Deno.connect({ hostname, port });
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    conn.close();
  };
  return { conn, close, [Symbol.dispose]: close };
}

/** Waits for `accepted` on listener `id` and checks its `conn_id` range and `remote`. */
async function accepted(client: TestClient, id: number, peer: Peer): Promise<number> {
  const ev = await client.nextFor(id);
  if (ev.ev !== "accepted") throw new Error(`expected accepted on ${id}: ${JSON.stringify(ev)}`);
  assert.ok(Number.isSafeInteger(ev.conn_id), `conn_id ${ev.conn_id} is not exact`);
  assert.ok(ev.conn_id >= SERVER_ID_BASE, `conn_id ${ev.conn_id} is below 2^52`);
  assert.ok(ev.conn_id <= Number.MAX_SAFE_INTEGER);
  const local = peer.conn.localAddr;
  const host = local.hostname.includes(":") ? `[${local.hostname}]` : local.hostname;
  assert.equal(ev.remote, `${host}:${local.port}`);
  return ev.conn_id;
}

/** Reads exactly `n` bytes from `conn`. */
async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let have = 0;
  while (have < n) {
    const got = await conn.read(out.subarray(have));
    if (got === null) throw new Error(`EOF after ${have} of ${n} bytes`);
    have += got;
  }
  return out;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.byteLength) off += await conn.write(bytes.subarray(off));
}

/** Resolves once the peer sees end of stream (EOF, or a reset, which also ends it). */
async function readEnd(conn: Deno.Conn): Promise<"eof" | "reset"> {
  const buf = new Uint8Array(1024);
  try {
    while (true) {
      if (await conn.read(buf) === null) return "eof";
    }
  } catch (e) {
    if (e instanceof Deno.errors.ConnectionReset) return "reset";
    throw e;
  }
}

for (const framing of FRAMINGS) {
  Deno.test(`inbound: bind, listen, accept, data both ways, client closes (${framing})`, async () => {
    await using server = await startTestServer({ policy: loopbackPolicy(BIND_ANY) });
    await using client = await TestClient.open(server.url, framing);
    const port = await bind(client, 1);
    // `listen` without a backlog (the default, 128), as wasmnet clients send it.
    client.sendRaw(listenWithoutBacklog(1, framing));
    assert.deepEqual(await client.nextFor(1), { ev: "listening", id: 1, port });
    client.send({ op: "listen", id: 1, backlog: 16 });
    assert.deepEqual(await client.nextFor(1), { ev: "listening", id: 1, port });

    using peer = await dial(port);
    const connId = await accepted(client, 1, peer);
    // TCP client → wasmnet client.
    const up = randomBytes(100 * 1024);
    await writeAll(peer.conn, up);
    assert.deepEqual(await client.collect(connId, up.byteLength), up);
    // wasmnet client → TCP client.
    const down = randomBytes(100 * 1024);
    for (let i = 0; i < down.byteLength; i += 16 * 1024) {
      client.send({ op: "send", id: connId, data: down.subarray(i, i + 16 * 1024) });
    }
    assert.deepEqual(await readExactly(peer.conn, down.byteLength), down);
    // The TCP client closes: the accepted connection ends with `closed`.
    peer.close();
    assert.deepEqual(await client.nextFor(connId), { ev: "closed", id: connId });
    client.send({ op: "send", id: connId, data: enc.encode("late") });
    assert.deepEqual(await client.nextFor(connId), {
      ev: "error",
      id: connId,
      msg: `unknown id ${connId}`,
    });
    // The listener is untouched by its connection's end.
    await client.settle();
    assert.deepEqual(client.queuedFor(1), []);
    client.send({ op: "close", id: 1 });
    assert.deepEqual(await client.nextFor(1), { ev: "closed", id: 1 });
  });

  Deno.test(`inbound: close from the wasmnet side gives the TCP client EOF (${framing})`, async () => {
    await using server = await startTestServer({ policy: loopbackPolicy(BIND_ANY) });
    await using client = await TestClient.open(server.url, framing);
    const port = await bind(client, 2);
    using peer = await dial(port);
    const connId = await accepted(client, 2, peer);
    const last = enc.encode("last words");
    client.send({ op: "send", id: connId, data: last });
    client.send({ op: "close", id: connId });
    assert.deepEqual(await client.nextFor(connId), { ev: "closed", id: connId });
    assert.deepEqual(await readExactly(peer.conn, last.byteLength), last);
    assert.equal(await readEnd(peer.conn), "eof");
    await client.settle();
    assert.deepEqual(client.queuedFor(connId), []);
  });

  Deno.test(`inbound: IPv6 listener on ::1 reports [::1]:port (${framing})`, async () => {
    await using server = await startTestServer({ policy: loopbackPolicy(BIND_ANY) });
    await using client = await TestClient.open(server.url, framing);
    const port = await bind(client, 3, "::1");
    using peer = await dial(port, "::1");
    const connId = await accepted(client, 3, peer);
    const hi = enc.encode("hi over v6");
    await writeAll(peer.conn, hi);
    assert.deepEqual(await client.collect(connId, hi.byteLength), hi);
  });

  Deno.test(`inbound: two listeners accept separately, conn_ids are distinct (${framing})`, async () => {
    await using server = await startTestServer({ policy: loopbackPolicy(BIND_ANY) });
    await using client = await TestClient.open(server.url, framing);
    const portA = await bind(client, 10);
    const portB = await bind(client, 20);
    assert.notEqual(portA, portB);
    using a1 = await dial(portA);
    const idA1 = await accepted(client, 10, a1);
    using b1 = await dial(portB);
    const idB1 = await accepted(client, 20, b1);
    using a2 = await dial(portA);
    const idA2 = await accepted(client, 10, a2);
    assert.equal(new Set([idA1, idB1, idA2]).size, 3);
    // Each accepted connection carries its own bytes.
    const peers: [Peer, number][] = [[a1, idA1], [b1, idB1], [a2, idA2]];
    for (const [peer, id] of peers) {
      const msg = enc.encode(`from ${id}`);
      await writeAll(peer.conn, msg);
      assert.deepEqual(await client.collect(id, msg.byteLength), msg);
      const reply = enc.encode(`to ${id}`);
      client.send({ op: "send", id, data: reply });
      assert.deepEqual(await readExactly(peer.conn, reply.byteLength), reply);
    }
    await client.settle();
    assert.deepEqual(client.queuedFor(10), []);
    assert.deepEqual(client.queuedFor(20), []);
  });

  Deno.test(`inbound: a closed listener refuses new connects, accepted ones live on (${framing})`, async () => {
    await using server = await startTestServer({ policy: loopbackPolicy(BIND_ANY) });
    await using client = await TestClient.open(server.url, framing);
    const port = await bind(client, 4);
    using peer = await dial(port);
    const connId = await accepted(client, 4, peer);
    client.send({ op: "close", id: 4 });
    assert.deepEqual(await client.nextFor(4), { ev: "closed", id: 4 });
    await assert.rejects(
      Deno.connect({ hostname: "127.0.0.1", port }),
      Deno.errors.ConnectionRefused,
    );
    // The connection accepted before still works.
    const msg = enc.encode("still here");
    client.send({ op: "send", id: connId, data: msg });
    assert.deepEqual(await readExactly(peer.conn, msg.byteLength), msg);
    // The listener's id is free again, and listen on it is an unknown id.
    client.send({ op: "listen", id: 4, backlog: 128 });
    assert.deepEqual(await client.nextFor(4), { ev: "error", id: 4, msg: "unknown id 4" });
  });

  Deno.test(`inbound: bind outside bind_ports or bind_addrs is denied (${framing})`, async () => {
    await using server = await startTestServer({
      policy: loopbackPolicy({ bindPorts: "3000-3001", bindAddrs: ["127.0.0.1"] }),
    });
    await using client = await TestClient.open(server.url, framing);
    client.send({ op: "bind", id: 5, addr: "127.0.0.1", port: 5000 });
    const port = await client.nextFor(5);
    assert.equal(port.ev, "denied", JSON.stringify(port));
    assert.match(port.ev === "denied" ? port.msg : "", /port 5000 not in allowed bind range/);
    client.send({ op: "bind", id: 6, addr: "0.0.0.0", port: 3000 });
    const addr = await client.nextFor(6);
    assert.equal(addr.ev, "denied", JSON.stringify(addr));
    assert.match(addr.ev === "denied" ? addr.msg : "", /0\.0\.0\.0 not in allowed bind addresses/);
    client.send({ op: "bind", id: 7, addr: "::1", port: 3000 });
    assert.equal((await client.nextFor(7)).ev, "denied");
    // Port 0 is not in 3000-3001 either.
    client.send({ op: "bind", id: 8, addr: "127.0.0.1", port: 0 });
    assert.equal((await client.nextFor(8)).ev, "denied");
    // Denied binds hold no id: the ids are unknown now.
    await client.settle();
    for (const id of [5, 6, 7, 8]) assert.deepEqual(client.queuedFor(id), []);
    client.send({ op: "close", id: 5 });
    assert.deepEqual(await client.nextFor(5), { ev: "error", id: 5, msg: "unknown id 5" });
  });

  Deno.test(`inbound: a host name or a taken port as bind address gets error (${framing})`, async () => {
    await using server = await startTestServer({ policy: loopbackPolicy(BIND_ANY) });
    await using client = await TestClient.open(server.url, framing);
    client.send({ op: "bind", id: 9, addr: "localhost", port: 0 });
    const ev = await client.nextFor(9);
    assert.equal(ev.ev, "error", JSON.stringify(ev));
    using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    client.send({ op: "bind", id: 11, addr: "127.0.0.1", port: taken.addr.port });
    const busy = await client.nextFor(11);
    assert.equal(busy.ev, "error", JSON.stringify(busy));
    assert.match(busy.ev === "error" ? busy.msg : "", /^bind to 127\.0\.0\.1:\d+ failed: /);
    // Neither holds a slot or an id: the same ids bind fine now.
    await bind(client, 9);
    await bind(client, 11);
  });

  Deno.test(`inbound: accepted connections count toward max_connections (${framing})`, async () => {
    await using echo = await startTcpEcho();
    await using server = await startTestServer({
      policy: loopbackPolicy({ ...BIND_ANY, maxConnections: 2 }),
    });
    await using client = await TestClient.open(server.url, framing);
    const port = await bind(client, 1); // slot 1
    using first = await dial(port);
    const firstId = await accepted(client, 1, first); // slot 2
    // A third slot is refused, outbound or inbound.
    client.send({ op: "connect", id: 2, addr: "127.0.0.1", port: echo.port });
    assert.deepEqual(await client.nextFor(2), {
      ev: "error",
      id: 2,
      msg: "max connections reached",
    });
    using second = await dial(port);
    // The server drops it instead of accepting it.
    assert.match(await readEnd(second.conn), /^(eof|reset)$/);
    await client.settle();
    assert.deepEqual(client.queuedFor(1), [], "an inbound connection over the limit was accepted");
    // Ending the first accepted connection frees its slot.
    client.send({ op: "close", id: firstId });
    assert.deepEqual(await client.nextFor(firstId), { ev: "closed", id: firstId });
    using third = await dial(port);
    const thirdId = await accepted(client, 1, third);
    assert.notEqual(thirdId, firstId);
    const msg = enc.encode("third");
    await writeAll(third.conn, msg);
    assert.deepEqual(await client.collect(thirdId, msg.byteLength), msg);
  });

  Deno.test(`inbound: server ids never collide with client ids (${framing})`, async () => {
    await using echo = await startTcpEcho();
    await using server = await startTestServer({ policy: loopbackPolicy(BIND_ANY) });
    await using client = await TestClient.open(server.url, framing);
    const port = await bind(client, 2);
    using peer = await dial(port);
    const connId = await accepted(client, 2, peer);
    // The client's own small ids stay usable next to the accepted connection.
    await client.connect(1, "127.0.0.1", echo.port);
    const ping = enc.encode("ping");
    client.send({ op: "send", id: 1, data: ping });
    assert.deepEqual(await client.collect(1, ping.byteLength), ping);
    // The client cannot take an id in the server's range, least of all a live conn_id.
    for (const id of [connId, SERVER_ID_BASE, connId + 1]) {
      client.send({ op: "connect", id, addr: "127.0.0.1", port: echo.port });
      const ev = await client.nextFor(id);
      assert.equal(ev.ev, "error", JSON.stringify(ev));
      assert.match(ev.ev === "error" ? ev.msg : "", /reserved for server-assigned/);
    }
    client.send({ op: "bind", id: SERVER_ID_BASE + 7, addr: "127.0.0.1", port: 0 });
    assert.equal((await client.nextFor(SERVER_ID_BASE + 7)).ev, "error");
    // The accepted connection was not disturbed.
    const hello = enc.encode("hello");
    await writeAll(peer.conn, hello);
    assert.deepEqual(await client.collect(connId, hello.byteLength), hello);
    assert.equal(echo.accepted, 1);
  });

  Deno.test(`inbound: ending the session closes listeners and accepted connections (${framing})`, async () => {
    await using server = await startTestServer({ policy: loopbackPolicy(BIND_ANY) });
    const client = await TestClient.open(server.url, framing);
    const port = await bind(client, 1);
    using peer = await dial(port);
    await accepted(client, 1, peer);
    // The WebSocket closes: the session ends, and with it the accepted connection...
    await client.close();
    assert.match(await readEnd(peer.conn), /^(eof|reset)$/);
    // ...and the listener (the session closes every entry at once, the listener first).
    await assert.rejects(
      Deno.connect({ hostname: "127.0.0.1", port }),
      Deno.errors.ConnectionRefused,
    );
  });
}
