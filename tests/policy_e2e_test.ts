// End-to-end policy tests over a real WebSocket: every op that reaches the network (`connect`,
// `connect_tls`, `connect_udp`, `send_to`, `resolve`, `bind`) is refused by the policy before any
// packet leaves, with real loopback peers in place so a bypass would be seen.
import assert from "node:assert/strict";
import { TestClient } from "./helpers/ws_client.ts";
import { startTestServer, testTransport } from "./helpers/server.ts";
import { type DnsServer, startDnsServer } from "./helpers/dns_server.ts";
import { startTcpEcho, startTlsEcho, startUdpEcho } from "./helpers/echo_servers.ts";
import { makeTestPki } from "./helpers/tls_certs.ts";
import { Policy } from "../src/policy/mod.ts";
import type { Transport } from "../src/transport/mod.ts";
import type { Framing, Request, WireEvent } from "../src/protocol/mod.ts";

const FRAMINGS: readonly Framing[] = ["json", "binary"];
const te = new TextEncoder();

/** Sends `req` and returns the next event for its id. */
async function ask(client: TestClient, req: Request): Promise<WireEvent> {
  client.send(req);
  return await client.nextFor(req.id);
}

/** Asserts `ev` is `denied` for `id`, with a message matching `msg` when given. */
function assertDenied(ev: WireEvent, id: number, msg?: RegExp): void {
  assert.equal(ev.ev, "denied", `id ${id}: expected denied, got ${JSON.stringify(ev)}`);
  assert.equal(ev.id, id);
  if (msg !== undefined && ev.ev === "denied") assert.match(ev.msg, msg);
}

/** Sends `resolve` for `name` and returns the event. */
function resolveName(client: TestClient, id: number, name: string): Promise<WireEvent> {
  return ask(client, { op: "resolve", id, name });
}

/** The test DNS zone: names whose answers mix allowed and denied addresses. */
function startZone(): Promise<DnsServer> {
  return startDnsServer({
    records: {
      "evil.test": { A: ["127.0.0.1"] },
      "mixed.test": { A: ["93.184.216.34", "10.0.0.1"] },
      "ok.test": { A: ["127.0.0.1"] },
      "v6mixed.test": {
        A: ["8.8.8.8"],
        AAAA: ["::1", "64:ff9b::a00:1", "2606:4700:4700::1111"],
      },
      "portdeny.test": { A: ["93.184.216.34"] },
      "blocked.test": { A: ["93.184.216.34"] },
    },
  });
}

function zoneTransport(dns: DnsServer): Transport {
  return testTransport({ nameServer: { ipAddr: "127.0.0.1", port: dns.port } });
}

const LOCALHOST_BY_NAME = '[network]\ndeny = ["127.0.0.0/8", "::1"]\nallow = ["localhost"]';

for (const framing of FRAMINGS) {
  Deno.test(`policy e2e: localhost allowed by name, 127.0.0.0/8 denied → connect, connect_tls, connect_udp, resolve denied (${framing})`, async () => {
    const policy = Policy.fromToml(LOCALHOST_BY_NAME, "localhost-by-name.toml");
    // The semantics under test: the name passes, every address it has is denied.
    assert.equal(policy.checkTarget({ kind: "name", name: "localhost" }, 80).allowed, true);
    assert.equal(policy.checkResolved("localhost", "127.0.0.1", 80).allowed, false);
    assert.equal(policy.checkResolved("localhost", "::1", 80).allowed, false);

    const pki = await makeTestPki();
    await using tcp = await startTcpEcho();
    await using tls = await startTlsEcho({ cert: pki.serverCert, key: pki.serverKey });
    await using udp = await startUdpEcho();
    {
      // caCerts: a bypass would complete the TLS handshake with the echo server.
      await using server = await startTestServer({
        policy,
        transport: testTransport({ caCerts: [pki.caCert] }),
      });
      await using client = await TestClient.open(server.url, framing);
      const viaName = /^localhost:\d+ resolved to (127\.0\.0\.1|::1), which is denied by rule/;
      assertDenied(
        await ask(client, { op: "connect", id: 1, addr: "localhost", port: tcp.port }),
        1,
        viaName,
      );
      assertDenied(
        await ask(client, { op: "connect_tls", id: 2, addr: "localhost", port: tls.port }),
        2,
        viaName,
      );
      assertDenied(
        await ask(client, { op: "connect_udp", id: 3, addr: "localhost", port: udp.port }),
        3,
        viaName,
      );
      // resolve: the name may be looked up, but no answer survives the address check
      assertDenied(await resolveName(client, 4, "localhost"), 4, /^lookup of localhost answered/);
      // the literal addresses are denied before any dial
      assertDenied(
        await ask(client, { op: "connect", id: 5, addr: "127.0.0.1", port: tcp.port }),
        5,
        /denied by rule "127\.0\.0\.0\/8"/,
      );
      assertDenied(
        await ask(client, { op: "connect_tls", id: 6, addr: "127.0.0.1", port: tls.port }),
        6,
      );
      assertDenied(
        await ask(client, { op: "connect_udp", id: 7, addr: "127.0.0.1", port: udp.port }),
        7,
      );
      // the ids are free again: nothing was left registered
      assertDenied(
        await ask(client, { op: "connect", id: 1, addr: "localhost", port: tcp.port }),
        1,
      );
      assert.deepEqual(client.queued, []);
    }
    assert.equal(tcp.accepted, 0, "the TCP peer was reached");
    assert.equal(tls.accepted, 0, "the TLS peer was reached");
    assert.equal(udp.datagrams, 0, "the UDP peer was reached");
  });

  Deno.test(`policy e2e: send_to localhost (allowed by name, addresses denied) is denied, socket stays open (${framing})`, async () => {
    await using udp = await startUdpEcho();
    // 127.0.0.2 is allowed so that a UDP socket can be opened at all; localhost (127.0.0.1) is not.
    const policy = Policy.fromToml(
      '[network]\ndeny = ["127.0.0.1", "::1"]\nallow = ["localhost", "127.0.0.2"]',
      "send-to.toml",
    );
    {
      await using server = await startTestServer({ policy });
      await using client = await TestClient.open(server.url, framing);
      const bound = await ask(client, { op: "connect_udp", id: 1, addr: "127.0.0.2", port: 9 });
      assert.equal(bound.ev, "udp_bound", JSON.stringify(bound));
      const data = te.encode("must not arrive");
      let n = 0;
      for (
        const addr of ["localhost", "LOCALHOST.", "127.0.0.1", "127.1", "2130706433", "[::1]"]
      ) {
        client.send({ op: "send_to", id: 1, addr, port: udp.port, data });
        assertDenied(await client.nextFor(1), 1);
        n++;
      }
      assert.equal(n, 6);
      client.send({ op: "close", id: 1 });
      assert.deepEqual(await client.nextFor(1), { ev: "closed", id: 1 });
    }
    assert.equal(udp.datagrams, 0, "the UDP peer was reached");
  });
}

Deno.test("policy e2e: names from DNS are checked on every resolved address", async () => {
  await using dns = await startZone();
  await using tcp = await startTcpEcho();
  await using udp = await startUdpEcho();
  const transport = zoneTransport(dns);
  {
    await using server = await startTestServer({ policy: Policy.defaults(), transport });
    await using client = await TestClient.open(server.url, "json");
    assertDenied(
      await ask(client, { op: "connect", id: 1, addr: "evil.test", port: tcp.port }),
      1,
      /^evil\.test:\d+ resolved to 127\.0\.0\.1, which is denied by rule "127\.0\.0\.0\/8"/,
    );
    assertDenied(
      await ask(client, { op: "connect_udp", id: 2, addr: "evil.test", port: udp.port }),
      2,
      /resolved to 127\.0\.0\.1/,
    );
    // mixed: one public and one private address → the whole target is denied
    assertDenied(
      await ask(client, { op: "connect", id: 3, addr: "mixed.test", port: 80 }),
      3,
      /^mixed\.test:80 resolved to 10\.0\.0\.1, which is denied by rule "10\.0\.0\.0\/8"/,
    );
    assertDenied(
      await ask(client, { op: "connect_udp", id: 4, addr: "mixed.test", port: 53 }),
      4,
      /resolved to 10\.0\.0\.1/,
    );
  }
  {
    // allow-list mode: a name rule never admits a special-purpose address
    const policy = Policy.fromToml('[network]\ndeny = ["*"]\nallow = ["evil.test"]', "t");
    await using server = await startTestServer({ policy, transport });
    await using client = await TestClient.open(server.url, "binary");
    assertDenied(
      await ask(client, { op: "connect", id: 1, addr: "evil.test", port: tcp.port }),
      1,
      /in default-deny range "127\.0\.0\.0\/8"/,
    );
  }
  assert.equal(tcp.accepted, 0, "the TCP peer was reached");
  assert.equal(udp.datagrams, 0, "the UDP peer was reached");
  {
    // a policy allowing 127.0.0.0/8 lets ok.test through to the echo on 127.0.0.1
    const policy = Policy.fromToml(
      '[network]\ndeny = ["*"]\nallow = ["ok.test", "127.0.0.0/8"]',
      "t",
    );
    await using server = await startTestServer({ policy, transport });
    await using client = await TestClient.open(server.url, "json");
    await client.connect(1, "ok.test", tcp.port);
    client.send({ op: "send", id: 1, data: te.encode("ping") });
    assert.deepEqual(await client.collect(1, 4), te.encode("ping"));
    client.send({ op: "close", id: 1 });
    assert.deepEqual(await client.nextFor(1), { ev: "closed", id: 1 });
    // evil.test is not on this allow list, though its address would be
    assertDenied(
      await ask(client, { op: "connect", id: 2, addr: "evil.test", port: tcp.port }),
      2,
      /deny-all mode/,
    );
  }
  assert.equal(tcp.accepted, 1);
});

for (const framing of FRAMINGS) {
  Deno.test(`policy e2e: resolve is checked by name and its answers are filtered (${framing})`, async () => {
    await using dns = await startZone();
    const transport = zoneTransport(dns);
    {
      const policy = Policy.fromToml(
        '[network]\ndeny = ["@default", "blocked.test", "portdeny.test:22"]',
        "t",
      );
      await using server = await startTestServer({ policy, transport });
      await using client = await TestClient.open(server.url, framing);
      // denied names: refused without a DNS query
      assertDenied(
        await resolveName(client, 1, "blocked.test"),
        1,
        /^lookup of blocked\.test is denied by rule "blocked\.test"/,
      );
      assertDenied(await resolveName(client, 2, "LOCALHOST."), 2, /rule "localhost"/);
      assert.ok(
        !dns.questions.some((q) => q.name === "blocked.test" || q.name === "localhost"),
        JSON.stringify(dns.questions),
      );
      // a deny rule with a port does not block a lookup
      assert.deepEqual(await resolveName(client, 3, "portdeny.test"), {
        ev: "resolved",
        id: 3,
        addrs: ["93.184.216.34"],
      });
      // some answers denied → only the allowed ones
      assert.deepEqual(await resolveName(client, 4, "mixed.test"), {
        ev: "resolved",
        id: 4,
        addrs: ["93.184.216.34"],
      });
      assert.deepEqual(await resolveName(client, 5, "v6mixed.test"), {
        ev: "resolved",
        id: 5,
        addrs: ["8.8.8.8", "2606:4700:4700::1111"],
      });
      // every answer denied → denied
      assertDenied(
        await resolveName(client, 6, "evil.test"),
        6,
        /^lookup of evil\.test answered 127\.0\.0\.1, which is denied by rule "127\.0\.0\.0\/8"/,
      );
      // literal IPs: themselves when allowed (normalised), denied otherwise
      for (
        const [id, name, addrs] of [
          [7, "8.8.8.8", ["8.8.8.8"]],
          [8, "0x08080808", ["8.8.8.8"]],
          [9, "[2606:4700:4700::1111]", ["2606:4700:4700::1111"]],
          [10, "::ffff:1.1.1.1", ["1.1.1.1"]],
        ] as const
      ) {
        assert.deepEqual(await resolveName(client, id, name), { ev: "resolved", id, addrs });
      }
      assertDenied(await resolveName(client, 11, "127.1"), 11, /rule "127\.0\.0\.0\/8"/);
      assertDenied(await resolveName(client, 12, "[::1]"), 12, /rule "::1\/128"/);
      assertDenied(await resolveName(client, 13, "64:ff9b::10.0.0.1"), 13, /embedded NAT64/);
      // an unknown name is a DNS error, not a policy decision
      const nx = await resolveName(client, 14, "nx.test");
      assert.equal(nx.ev, "error", JSON.stringify(nx));
    }
    {
      // allow-list mode: answers in default-deny ranges need an allow IP/CIDR rule
      const policy = Policy.fromToml(
        '[network]\ndeny = ["*"]\nallow = ["ok.test", "evil.test", "mixed.test:443", "127.0.0.1"]',
        "t",
      );
      await using server = await startTestServer({ policy, transport });
      await using client = await TestClient.open(server.url, framing);
      assert.deepEqual(await resolveName(client, 1, "ok.test"), {
        ev: "resolved",
        id: 1,
        addrs: ["127.0.0.1"],
      });
      assert.deepEqual(await resolveName(client, 2, "mixed.test"), {
        ev: "resolved",
        id: 2,
        addrs: ["93.184.216.34"],
      });
      assertDenied(await resolveName(client, 3, "v6mixed.test"), 3, /deny-all mode/);
      assertDenied(await resolveName(client, 4, "8.8.8.8"), 4, /deny-all mode/);
    }
  });
}

Deno.test("policy e2e: bind is checked by port (bind_ports) and address (bind_addrs)", async () => {
  const policy = Policy.fromToml(
    '[network]\nbind_ports = "0,3000-9999"\nbind_addrs = ["127.0.0.1"]',
    "bind.toml",
  );
  await using server = await startTestServer({ policy });
  await using client = await TestClient.open(server.url, "json");
  const bind = (id: number, addr: string, port: number): Promise<WireEvent> =>
    ask(client, { op: "bind", id, addr, port });
  assertDenied(
    await bind(1, "127.0.0.1", 80),
    1,
    /^port 80 not in allowed bind range \(0,3000-9999\)$/,
  );
  assertDenied(await bind(2, "127.0.0.1", 10000), 2, /not in allowed bind range/);
  assertDenied(
    await bind(3, "0.0.0.0", 0),
    3,
    /^address 0\.0\.0\.0 not in allowed bind addresses \(127\.0\.0\.1\)$/,
  );
  assertDenied(await bind(4, "[::1]", 0), 4, /^address ::1 not in allowed bind addresses/);
  assertDenied(await bind(5, "127.0.0.2", 0), 5, /not in allowed bind addresses/);
  assertDenied(await bind(6, "::", 0), 6, /not in allowed bind addresses/);
  // allowed: port 0 is listed, and any spelling of 127.0.0.1 is that address
  for (
    const [id, addr] of [[7, "127.0.0.1"], [8, "0x7f000001"], [9, "::ffff:127.0.0.1"]] as const
  ) {
    const ev = await bind(id, addr, 0);
    assert.equal(ev.ev, "listening", `${addr}: ${JSON.stringify(ev)}`);
    if (ev.ev === "listening") assert.ok(ev.port > 0);
    client.send({ op: "close", id });
    assert.deepEqual(await client.nextFor(id), { ev: "closed", id });
  }
  assert.deepEqual(client.queued, []);
});

/** Every wasmnet 0.1.3 bypass spelling of a loopback address, plus a few more. */
const BYPASSES: readonly string[] = [
  "127.1",
  "2130706433",
  "0x7f000001",
  "0177.0.0.1",
  "017700000001",
  "::ffff:127.0.0.1",
  "[::ffff:7f00:1]",
  "[::1]",
  "::1",
  "localhost",
  "localhost.",
  "LOCALHOST",
  "Foo.LocalHost.",
  "0x7f.1",
  "127.0.0.1.",
  "::127.0.0.1",
  "64:ff9b::7f00:1",
  "2002:7f00:1::",
  "0",
  "0.0.0.0",
];

for (const framing of FRAMINGS) {
  Deno.test(`policy e2e: every loopback spelling is denied for connect and connect_udp under the default policy (${framing})`, async () => {
    await using tcp4 = await startTcpEcho();
    await using tcp6 = await startTcpEcho({ hostname: "::1" });
    await using udp4 = await startUdpEcho();
    await using udp6 = await startUdpEcho({ hostname: "::1" });
    {
      await using server = await startTestServer({ policy: Policy.defaults() });
      await using client = await TestClient.open(server.url, framing);
      let id = 0;
      for (const addr of BYPASSES) {
        const v6 = addr.includes(":");
        const tcpPort = v6 ? tcp6.port : tcp4.port;
        const udpPort = v6 ? udp6.port : udp4.port;
        id++;
        assertDenied(
          await ask(client, { op: "connect", id, addr, port: tcpPort }),
          id,
          /is denied by rule/,
        );
        id++;
        assertDenied(
          await ask(client, { op: "connect_udp", id, addr, port: udpPort }),
          id,
          /is denied by rule/,
        );
      }
      assert.equal(id, BYPASSES.length * 2);
      assert.deepEqual(client.queued, []);
    }
    assert.equal(tcp4.accepted + tcp6.accepted, 0, "a TCP peer was reached");
    assert.equal(udp4.datagrams + udp6.datagrams, 0, "a UDP peer was reached");
  });
}
