/**
 * The default policy (no policy given → `Policy.defaults()`), end to end: every spelling of a
 * loopback, private, link-local or metadata address is `denied` before any dial, with a real echo
 * server on 127.0.0.1 that a bypass would reach.
 *
 * @module
 */
import assert from "node:assert/strict";
import { TestClient } from "./helpers/ws_client.ts";
import { startTcpEcho } from "./helpers/echo_servers.ts";
import { Policy } from "../src/policy/mod.ts";
import { startDnsServer } from "./helpers/dns_server.ts";
import type { Framing } from "../src/protocol/mod.ts";
import { startTestServer, testTransport } from "./helpers/server.ts";

const DENIED_ADDRS = [
  "127.0.0.1",
  "localhost",
  "LOCALHOST.",
  "localhost.",
  "foo.localhost",
  "127.1",
  "127.0.1",
  "127.0.0.2",
  "::1",
  "[::1]",
  "0:0:0:0:0:0:0:1",
  "::ffff:127.0.0.1",
  "[::ffff:127.0.0.1]",
  "::ffff:7f00:1",
  "::127.0.0.1",
  "::ffff:0:127.0.0.1",
  "[::ffff:0:7f00:1]",
  "64:ff9b::127.0.0.1",
  "2002:7f00:1::1",
  "0.0.0.0",
  "0",
  "::",
  "2130706433",
  "0x7f000001",
  "0x7f.1",
  "017700000001",
  "0177.0.0.1",
  "127.0.0.1.",
  "10.0.0.1",
  "172.16.0.1",
  "192.168.1.1",
  "100.64.0.1",
  "169.254.169.254",
  "fe80::1",
  "fd00::1",
  "fc00::1",
  "224.0.0.1",
  "255.255.255.255",
];

for (const framing of ["json", "binary"] as Framing[]) {
  Deno.test(`default policy: every loopback/private spelling is denied (${framing})`, async () => {
    await using echo = await startTcpEcho();
    await using server = await startTestServer({ policy: Policy.defaults() });
    await using client = await TestClient.open(server.url, framing);
    let id = 1;
    const wrong: string[] = [];
    for (const addr of DENIED_ADDRS) {
      client.send({ op: "connect", id, addr, port: echo.port });
      const ev = await client.nextFor(id);
      if (ev.ev !== "denied") wrong.push(`${addr} → ${JSON.stringify(ev)}`);
      id++;
    }
    assert.deepEqual(wrong, [], "addresses not denied");
    assert.equal(echo.accepted, 0, "no connection reached the echo server");
    // Every refusal freed its id: none is live.
    for (let i = 1; i < id; i++) {
      client.send({ op: "close", id: i });
      assert.deepEqual(await client.nextFor(i), { ev: "error", id: i, msg: `unknown id ${i}` });
    }
  });
}

Deno.test("default policy: a denied message names the address and the rule", async () => {
  await using echo = await startTcpEcho();
  await using server = await startTestServer({ policy: Policy.defaults() });
  await using client = await TestClient.open(server.url);
  client.send({ op: "connect", id: 1, addr: "127.1", port: echo.port });
  const ev = await client.nextFor(1);
  assert.equal(ev.ev, "denied");
  if (ev.ev === "denied") {
    assert.match(ev.msg, /127\.0\.0\.1/);
    assert.match(ev.msg, /127\.0\.0\.0\/8/);
  }
});

Deno.test("default policy: Policy.allowAll() (--no-policy) connects to 127.0.0.1", async () => {
  await using echo = await startTcpEcho();
  await using server = await startTestServer({ policy: Policy.allowAll() });
  await using client = await TestClient.open(server.url);
  await client.connect(1, "127.0.0.1", echo.port);
  await client.connect(2, "127.1", echo.port);
  await client.connect(3, "2130706433", echo.port);
  client.send({ op: "send", id: 1, data: new TextEncoder().encode("open") });
  assert.equal(new TextDecoder().decode(await client.collect(1, 4)), "open");
  assert.equal(echo.accepted, 3);
});

Deno.test("default policy: a public-looking name that resolves to loopback is denied", async () => {
  await using echo = await startTcpEcho();
  await using dns = await startDnsServer({
    records: {
      "rebind.example": { A: ["127.0.0.1"] },
      "mixed.example": { A: ["93.184.215.14", "10.1.2.3"] },
      "mapped.example": { AAAA: ["::ffff:127.0.0.1"] },
    },
  });
  await using server = await startTestServer({
    policy: Policy.defaults(),
    transport: testTransport({ nameServer: { ipAddr: dns.hostname, port: dns.port } }),
  });
  await using client = await TestClient.open(server.url);
  const names: [number, string][] = [[1, "rebind.example"], [2, "mixed.example"], [
    3,
    "mapped.example",
  ]];
  for (const [id, name] of names) {
    client.send({ op: "connect", id, addr: name, port: echo.port });
    const ev = await client.nextFor(id);
    assert.equal(ev.ev, "denied", `${name}: ${JSON.stringify(ev)}`);
  }
  assert.equal(echo.accepted, 0);
  assert.ok(dns.queries > 0, "the names were resolved through the test DNS server");
});

for (const framing of ["json", "binary"] as Framing[]) {
  Deno.test(
    `default policy: connect_udp and send_to to an IPv4-translated address are denied before any socket (${framing})`,
    async () => {
      await using server = await startTestServer({ policy: Policy.defaults() });
      await using client = await TestClient.open(server.url, framing);
      for (const [id, addr] of [[1, "::ffff:0:127.0.0.1"], [2, "::ffff:0:8.8.8.8"]] as const) {
        client.send({ op: "connect_udp", id, addr, port: 53 });
        const ev = await client.nextFor(id);
        assert.equal(ev.ev, "denied", `connect_udp ${addr}: ${JSON.stringify(ev)}`);
      }
      // send_to on an (allowed, public) IPv4 socket: the policy answers, not the family check.
      client.send({ op: "connect_udp", id: 3, addr: "8.8.8.8", port: 53 }); // nothing is sent to it
      assert.equal((await client.nextFor(3)).ev, "udp_bound");
      client.send({
        op: "send_to",
        id: 3,
        addr: "::ffff:0:127.0.0.1",
        port: 53,
        data: new Uint8Array([1]),
      });
      const ev = await client.nextFor(3);
      assert.equal(ev.ev, "denied", JSON.stringify(ev));
      if (ev.ev === "denied") assert.match(ev.msg, /::ffff:0:0:0\/96/);
    },
  );
}
