/**
 * `connect_udp`, `send`, `send_to` and `close` end to end: real UDP echo peers on loopback
 * (IPv4 and IPv6), a real wasmnet server, a real WebSocket client, in both framings.
 *
 * @module
 */
import assert from "node:assert/strict";
import { randomBytes, TestClient } from "./helpers/ws_client.ts";
import { inProcessOnly, loopbackPolicy, startTestServer, testTransport } from "./helpers/server.ts";
import { startUdpEcho } from "./helpers/echo_servers.ts";
import { startDnsServer } from "./helpers/dns_server.ts";
import type { Framing } from "../src/protocol/mod.ts";

const FRAMINGS: readonly Framing[] = ["json", "binary"];
const enc = new TextEncoder();
/** Sends `connect_udp` and returns the port of `udp_bound`. */
async function openUdp(
  client: TestClient,
  id: number,
  addr: string,
  port: number,
): Promise<number> {
  client.send({ op: "connect_udp", id, addr, port });
  const ev = await client.nextFor(id);
  assert.equal(ev.ev, "udp_bound", `expected udp_bound, got ${JSON.stringify(ev)}`);
  const bound = ev.ev === "udp_bound" ? ev.port : 0;
  assert.ok(bound > 0 && bound <= 65535, `bound port ${bound}`);
  return bound;
}

/** A plain UDP socket on 127.0.0.1 port 0, closed by `using`. */
function listenUdp(): { conn: Deno.DatagramConn } & Disposable {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  return { conn, [Symbol.dispose]: () => conn.close() };
}

/** The next event for `id`, asserted to be a `data_from`. */
async function nextDatagram(
  client: TestClient,
  id: number,
): Promise<{ data: Uint8Array; addr: string; port: number }> {
  const ev = await client.nextFor(id);
  if (ev.ev !== "data_from") throw new Error(`expected data_from, got ${JSON.stringify(ev)}`);
  return { data: ev.data, addr: ev.addr, port: ev.port };
}

for (const framing of FRAMINGS) {
  Deno.test(`udp: send to the default peer comes back as data_from (${framing})`, async () => {
    await using echo = await startUdpEcho({ hostname: "127.0.0.1" });
    await using server = await startTestServer();
    await using client = await TestClient.open(server.url, framing);
    await openUdp(client, 1, "127.0.0.1", echo.port);
    // Sizes from empty to the IPv4 maximum (65507, the default maxDatagramBytes).
    for (const size of [0, 1, 100, 1200, 8000, 65507]) {
      const payload = randomBytes(size);
      client.send({ op: "send", id: 1, data: payload });
      assert.deepEqual(await nextDatagram(client, 1), {
        data: payload,
        addr: "127.0.0.1",
        port: echo.port,
      });
    }
    client.send({ op: "close", id: 1 });
    assert.deepEqual(await client.nextFor(1), { ev: "closed", id: 1 });
    assert.equal(echo.datagrams, 6);
    // The id is free: a send now names an unknown socket.
    client.send({ op: "send", id: 1, data: enc.encode("late") });
    assert.deepEqual(await client.nextFor(1), { ev: "error", id: 1, msg: "unknown id 1" });
  });

  Deno.test(`udp: IPv6 default peer [::1] (${framing})`, async () => {
    await using echo = await startUdpEcho({ hostname: "::1" });
    await using server = await startTestServer();
    await using client = await TestClient.open(server.url, framing);
    await openUdp(client, 2, "::1", echo.port);
    const payload = enc.encode("over ipv6");
    client.send({ op: "send", id: 2, data: payload });
    assert.deepEqual(await nextDatagram(client, 2), {
      data: payload,
      addr: "::1",
      port: echo.port,
    });
    // send_to the same peer by address works too.
    const again = enc.encode("send_to over ipv6");
    client.send({ op: "send_to", id: 2, addr: "::1", port: echo.port, data: again });
    assert.deepEqual(await nextDatagram(client, 2), { data: again, addr: "::1", port: echo.port });
    client.send({ op: "close", id: 2 });
    assert.deepEqual(await client.nextFor(2), { ev: "closed", id: 2 });
  });

  Deno.test(`udp: send_to two peers delivers replies from both (${framing})`, async () => {
    await using echoA = await startUdpEcho({ hostname: "127.0.0.1" });
    await using echoB = await startUdpEcho({ hostname: "127.0.0.1" });
    await using server = await startTestServer();
    await using client = await TestClient.open(server.url, framing);
    await openUdp(client, 3, "127.0.0.1", echoA.port);
    const toA = enc.encode("to A");
    const toB = enc.encode("to B");
    client.send({ op: "send_to", id: 3, addr: "127.0.0.1", port: echoA.port, data: toA });
    client.send({ op: "send_to", id: 3, addr: "127.0.0.1", port: echoB.port, data: toB });
    const got = [await nextDatagram(client, 3), await nextDatagram(client, 3)];
    got.sort((x, y) => x.port - y.port);
    const want = [
      { data: toA, addr: "127.0.0.1", port: echoA.port },
      { data: toB, addr: "127.0.0.1", port: echoB.port },
    ].sort((x, y) => x.port - y.port);
    assert.deepEqual(got, want);
    assert.equal(echoA.datagrams, 1);
    assert.equal(echoB.datagrams, 1);
    client.send({ op: "close", id: 3 });
    assert.deepEqual(await client.nextFor(3), { ev: "closed", id: 3 });
  });

  Deno.test(`udp: datagrams from a peer never contacted are dropped (${framing})`, async () => {
    await using echo = await startUdpEcho({ hostname: "127.0.0.1" });
    await using server = await startTestServer();
    await using client = await TestClient.open(server.url, framing);
    const bound = await openUdp(client, 4, "127.0.0.1", echo.port);
    using strangerSocket = listenUdp();
    const stranger = strangerSocket.conn;
    const strangerPort = (stranger.addr as Deno.NetAddr).port;
    const target = { transport: "udp" as const, hostname: "127.0.0.1", port: bound };
    // The stranger's datagram reaches the socket's queue before the echo's reply below.
    await stranger.send(enc.encode("unsolicited"), target);
    const ping = enc.encode("ping");
    client.send({ op: "send", id: 4, data: ping });
    assert.deepEqual(await nextDatagram(client, 4), {
      data: ping,
      addr: "127.0.0.1",
      port: echo.port,
    });
    await client.settle();
    assert.deepEqual(client.queuedFor(4), [], "a datagram from an unknown peer was delivered");
    // Control: once the client sent to the stranger, its replies are delivered.
    const hello = enc.encode("hello stranger");
    client.send({ op: "send_to", id: 4, addr: "127.0.0.1", port: strangerPort, data: hello });
    const [got, from] = await stranger.receive();
    assert.deepEqual(got, hello);
    assert.equal((from as Deno.NetAddr).port, bound);
    const reply = enc.encode("reply from a contacted peer");
    await stranger.send(reply, target);
    assert.deepEqual(await nextDatagram(client, 4), {
      data: reply,
      addr: "127.0.0.1",
      port: strangerPort,
    });
    client.send({ op: "close", id: 4 });
    assert.deepEqual(await client.nextFor(4), { ev: "closed", id: 4 });
  });

  Deno.test(
    `udp: an oversize datagram is dropped with error, the socket lives (${framing})`,
    inProcessOnly("limits.maxDatagramBytes has no CLI flag"),
    async () => {
      await using echo = await startUdpEcho({ hostname: "127.0.0.1" });
      await using server = await startTestServer({ limits: { maxDatagramBytes: 1000 } });
      await using client = await TestClient.open(server.url, framing);
      await openUdp(client, 5, "127.0.0.1", echo.port);
      client.send({ op: "send", id: 5, data: randomBytes(1001) });
      const ev = await client.nextFor(5);
      assert.equal(ev.ev, "error", JSON.stringify(ev));
      assert.match(ev.ev === "error" ? ev.msg : "", /^datagram dropped/);
      client.send({
        op: "send_to",
        id: 5,
        addr: "127.0.0.1",
        port: echo.port,
        data: randomBytes(1001),
      });
      const ev2 = await client.nextFor(5);
      assert.equal(ev2.ev, "error", JSON.stringify(ev2));
      assert.match(ev2.ev === "error" ? ev2.msg : "", /^datagram dropped/);
      // Exactly at the limit passes, and the socket still works.
      const max = randomBytes(1000);
      client.send({ op: "send", id: 5, data: max });
      assert.deepEqual(await nextDatagram(client, 5), {
        data: max,
        addr: "127.0.0.1",
        port: echo.port,
      });
      assert.equal(echo.datagrams, 1);
      client.send({ op: "close", id: 5 });
      assert.deepEqual(await client.nextFor(5), { ev: "closed", id: 5 });
    },
  );

  Deno.test(`udp: send_to a denied address is denied, the socket lives (${framing})`, async () => {
    await using echo = await startUdpEcho({ hostname: "127.0.0.1" });
    await using server = await startTestServer({
      policy: loopbackPolicy({ deny: ["127.0.0.2"] }),
    });
    await using client = await TestClient.open(server.url, framing);
    await openUdp(client, 6, "127.0.0.1", echo.port);
    client.send({
      op: "send_to",
      id: 6,
      addr: "127.0.0.2",
      port: echo.port,
      data: enc.encode("x"),
    });
    const ev = await client.nextFor(6);
    assert.equal(ev.ev, "denied", JSON.stringify(ev));
    // Another spelling of the same address is denied too.
    client.send({ op: "send_to", id: 6, addr: "127.0.2", port: echo.port, data: enc.encode("y") });
    assert.equal((await client.nextFor(6)).ev, "denied");
    const ok = enc.encode("still works");
    client.send({ op: "send", id: 6, data: ok });
    assert.deepEqual(await nextDatagram(client, 6), {
      data: ok,
      addr: "127.0.0.1",
      port: echo.port,
    });
    client.send({ op: "close", id: 6 });
    assert.deepEqual(await client.nextFor(6), { ev: "closed", id: 6 });
  });

  Deno.test(`udp: connect_udp to a denied default peer is denied (${framing})`, async () => {
    await using echo = await startUdpEcho({ hostname: "127.0.0.1" });
    await using server = await startTestServer({
      policy: loopbackPolicy({ deny: ["127.0.0.1"] }),
    });
    await using client = await TestClient.open(server.url, framing);
    client.send({ op: "connect_udp", id: 7, addr: "127.0.0.1", port: echo.port });
    assert.equal((await client.nextFor(7)).ev, "denied");
    // The id and its slot were released.
    client.send({ op: "close", id: 7 });
    assert.deepEqual(await client.nextFor(7), { ev: "error", id: 7, msg: "unknown id 7" });
    assert.equal(echo.datagrams, 0);
  });

  Deno.test(`udp: a datagram to a closed port does not kill the socket (${framing})`, async () => {
    await using echo = await startUdpEcho({ hostname: "127.0.0.1" });
    await using server = await startTestServer();
    await using client = await TestClient.open(server.url, framing);
    await openUdp(client, 8, "127.0.0.1", echo.port);
    const closedPort = ((): number => {
      using s = listenUdp();
      return (s.conn.addr as Deno.NetAddr).port;
    })();
    // Port unreachable (ICMP) for these; the socket must keep working.
    for (let i = 0; i < 3; i++) {
      client.send({
        op: "send_to",
        id: 8,
        addr: "127.0.0.1",
        port: closedPort,
        data: enc.encode("x"),
      });
    }
    const ok = enc.encode("after icmp");
    client.send({ op: "send", id: 8, data: ok });
    assert.deepEqual(await nextDatagram(client, 8), {
      data: ok,
      addr: "127.0.0.1",
      port: echo.port,
    });
    await client.settle();
    assert.deepEqual(client.queuedFor(8), []);
    client.send({ op: "close", id: 8 });
    assert.deepEqual(await client.nextFor(8), { ev: "closed", id: 8 });
  });

  Deno.test(`udp: max_connections counts UDP sockets (${framing})`, async () => {
    await using echo = await startUdpEcho({ hostname: "127.0.0.1" });
    await using server = await startTestServer({
      policy: loopbackPolicy({ maxConnections: 2 }),
    });
    await using client = await TestClient.open(server.url, framing);
    await openUdp(client, 11, "127.0.0.1", echo.port);
    await openUdp(client, 12, "127.0.0.1", echo.port);
    client.send({ op: "connect_udp", id: 13, addr: "127.0.0.1", port: echo.port });
    assert.deepEqual(await client.nextFor(13), {
      ev: "error",
      id: 13,
      msg: "max connections reached",
    });
    // A TCP connect is refused too: UDP sockets hold the same slots.
    client.send({ op: "connect", id: 14, addr: "127.0.0.1", port: echo.port });
    assert.deepEqual(await client.nextFor(14), {
      ev: "error",
      id: 14,
      msg: "max connections reached",
    });
    client.send({ op: "close", id: 11 });
    assert.deepEqual(await client.nextFor(11), { ev: "closed", id: 11 });
    await openUdp(client, 13, "127.0.0.1", echo.port);
    const payload = enc.encode("after the slot was freed");
    client.send({ op: "send", id: 13, data: payload });
    assert.deepEqual(await nextDatagram(client, 13), {
      data: payload,
      addr: "127.0.0.1",
      port: echo.port,
    });
    for (const id of [12, 13]) {
      client.send({ op: "close", id });
      assert.deepEqual(await client.nextFor(id), { ev: "closed", id });
    }
  });

  Deno.test(`udp: send and send_to before udp_bound are queued and delivered in order (${framing})`, async () => {
    await using echo = await startUdpEcho({ hostname: "127.0.0.1" });
    await using dns = await startDnsServer({ records: { "slow.test": { A: ["127.0.0.1"] } } });
    await using server = await startTestServer({
      transport: testTransport({ nameServer: { ipAddr: "127.0.0.1", port: dns.port } }),
    });
    await using client = await TestClient.open(server.url, framing);
    // The name needs a DNS round trip, so these arrive while the socket is still opening.
    client.send({ op: "connect_udp", id: 31, addr: "slow.test", port: echo.port });
    client.send({ op: "send", id: 31, data: enc.encode("first") });
    client.send({
      op: "send_to",
      id: 31,
      addr: "127.0.0.1",
      port: echo.port,
      data: enc.encode("second"),
    });
    assert.equal((await client.nextFor(31)).ev, "udp_bound");
    const got = [await nextDatagram(client, 31), await nextDatagram(client, 31)].map((d) =>
      new TextDecoder().decode(d.data)
    );
    assert.deepEqual(got.sort(), ["first", "second"]);
    client.send({ op: "close", id: 31 });
    assert.deepEqual(await client.nextFor(31), { ev: "closed", id: 31 });
  });

  Deno.test(`udp: names are resolved for connect_udp and send_to (${framing})`, async () => {
    await using echoA = await startUdpEcho({ hostname: "127.0.0.1" });
    await using echoB = await startUdpEcho({ hostname: "127.0.0.1" });
    await using dns = await startDnsServer({
      records: {
        "a.test": { A: ["127.0.0.1"] },
        "b.test": { A: ["127.0.0.1"] },
        "v6.test": { AAAA: ["::1"] },
      },
    });
    await using server = await startTestServer({
      transport: testTransport({ nameServer: { ipAddr: "127.0.0.1", port: dns.port } }),
    });
    await using client = await TestClient.open(server.url, framing);
    await openUdp(client, 21, "a.test", echoA.port);
    const one = enc.encode("to a.test");
    client.send({ op: "send", id: 21, data: one });
    assert.deepEqual(await nextDatagram(client, 21), {
      data: one,
      addr: "127.0.0.1",
      port: echoA.port,
    });
    const two = enc.encode("to b.test");
    client.send({ op: "send_to", id: 21, addr: "b.test", port: echoB.port, data: two });
    assert.deepEqual(await nextDatagram(client, 21), {
      data: two,
      addr: "127.0.0.1",
      port: echoB.port,
    });
    // An IPv4 socket cannot reach an IPv6-only name: that datagram is dropped, the socket lives.
    client.send({ op: "send_to", id: 21, addr: "v6.test", port: echoB.port, data: two });
    const ev = await client.nextFor(21);
    assert.equal(ev.ev, "error", JSON.stringify(ev));
    assert.match(ev.ev === "error" ? ev.msg : "", /^datagram dropped/);
    // A name that does not exist: error, the socket lives.
    client.send({ op: "send_to", id: 21, addr: "nope.test", port: echoB.port, data: two });
    const nx = await client.nextFor(21);
    assert.equal(nx.ev, "error", JSON.stringify(nx));
    assert.match(nx.ev === "error" ? nx.msg : "", /^DNS lookup failed for "nope\.test"/);
    client.send({ op: "send", id: 21, data: one });
    assert.deepEqual(await nextDatagram(client, 21), {
      data: one,
      addr: "127.0.0.1",
      port: echoA.port,
    });
    client.send({ op: "close", id: 21 });
    assert.deepEqual(await client.nextFor(21), { ev: "closed", id: 21 });
    // connect_udp to a name that does not exist ends the socket with one error.
    client.send({ op: "connect_udp", id: 22, addr: "nope.test", port: 53 });
    const bad = await client.nextFor(22);
    assert.equal(bad.ev, "error", JSON.stringify(bad));
    await client.settle();
    assert.deepEqual(client.queuedFor(22), []);
  });
}
