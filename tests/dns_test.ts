/**
 * `resolve` end to end, and `connect` by name: a real DNS server on loopback that the wasmnet
 * server queries directly (`denoTransport({ nameServer })`), a real WebSocket client, in both
 * framings.
 *
 * @module
 */
import assert from "node:assert/strict";
import { delay, until } from "./helpers/wait.ts";
import { randomBytes, TestClient } from "./helpers/ws_client.ts";
import { inProcessOnly, loopbackPolicy, startTestServer, testTransport } from "./helpers/server.ts";
import { startTcpEcho } from "./helpers/echo_servers.ts";
import { type DnsServer, startDnsServer } from "./helpers/dns_server.ts";
import type { Policy } from "../src/policy/mod.ts";
import type { WasmnetServer } from "../src/server/mod.ts";
import type { Framing } from "../src/protocol/mod.ts";

const FRAMINGS: readonly Framing[] = ["json", "binary"];
/** The test zone: dual-stack, IPv6-only, a duplicated record, and a name never answered. */
function startZone(): Promise<DnsServer> {
  return startDnsServer({
    records: {
      "a.test": { A: ["127.0.0.1"], AAAA: ["::1"] },
      "v6.test": { AAAA: ["::1"] },
      "dup.test": { A: ["127.0.0.1", "127.0.0.1"] },
      "empty.test": {},
    },
    silent: ["silent.test"],
  });
}

/** A wasmnet server whose transport asks `dns` for every name. */
function serverFor(dns: DnsServer, policy: Policy = loopbackPolicy()): Promise<WasmnetServer> {
  return startTestServer({
    policy,
    transport: testTransport({ nameServer: { ipAddr: "127.0.0.1", port: dns.port } }),
  });
}

/** Sends `resolve` and returns the addresses of `resolved`. */
async function resolve(client: TestClient, id: number, name: string): Promise<string[]> {
  client.send({ op: "resolve", id, name });
  const ev = await client.nextFor(id);
  if (ev.ev !== "resolved") throw new Error(`resolve ${name}: ${JSON.stringify(ev)}`);
  return ev.addrs;
}

/** Sends `resolve` and returns the message of the `error` it must get. */
async function resolveError(client: TestClient, id: number, name: string): Promise<string> {
  client.send({ op: "resolve", id, name });
  const ev = await client.nextFor(id);
  if (ev.ev !== "error") {
    throw new Error(`resolve ${name}: expected error, got ${JSON.stringify(ev)}`);
  }
  return ev.msg;
}

for (const framing of FRAMINGS) {
  Deno.test(`dns: resolve returns every address, deduplicated (${framing})`, async () => {
    await using dns = await startZone();
    await using server = await serverFor(dns);
    await using client = await TestClient.open(server.url, framing);
    const both = await resolve(client, 1, "a.test");
    assert.equal(both.length, 2, JSON.stringify(both));
    assert.deepEqual(new Set(both), new Set(["127.0.0.1", "::1"]));
    assert.deepEqual(await resolve(client, 2, "v6.test"), ["::1"]);
    assert.deepEqual(await resolve(client, 3, "dup.test"), ["127.0.0.1"]);
    // Case and a trailing dot do not matter.
    assert.deepEqual(new Set(await resolve(client, 4, "A.TEST.")), new Set(["127.0.0.1", "::1"]));
    // Each answered lookup frees its id: the same id resolves again.
    assert.deepEqual(await resolve(client, 3, "dup.test"), ["127.0.0.1"]);
    await client.settle();
    assert.deepEqual(client.queued, []);
  });

  Deno.test(`dns: a name that does not exist gets error (${framing})`, async () => {
    await using dns = await startZone();
    await using server = await serverFor(dns);
    await using client = await TestClient.open(server.url, framing);
    assert.match(await resolveError(client, 5, "nope.test"), /^DNS lookup failed for "nope\.test"/);
    // A name without A/AAAA records fails too.
    assert.match(
      await resolveError(client, 6, "empty.test"),
      /^DNS lookup failed for "empty\.test"/,
    );
    // Exactly one event per lookup, and the ids are free again.
    await client.settle();
    assert.deepEqual(client.queuedFor(5), []);
    assert.deepEqual(client.queuedFor(6), []);
    assert.deepEqual(new Set(await resolve(client, 5, "a.test")), new Set(["127.0.0.1", "::1"]));
  });

  Deno.test(`dns: a name server that never answers times out, the session lives (${framing})`, async () => {
    await using dns = await startZone();
    await using server = await serverFor(dns, loopbackPolicy({ connectionTimeoutSecs: 2 }));
    await using client = await TestClient.open(server.url, framing);
    client.send({ op: "resolve", id: 7, name: "silent.test" });
    // Other requests are answered while the lookup is pending.
    assert.deepEqual(await resolve(client, 8, "v6.test"), ["::1"]);
    const ev = await client.nextFor(7);
    assert.equal(ev.ev, "error", JSON.stringify(ev));
    assert.match(
      ev.ev === "error" ? ev.msg : "",
      /^DNS lookup failed for "silent\.test": timed out$/,
    );
    await client.settle();
    assert.deepEqual(client.queuedFor(7), []);
    assert.deepEqual(await resolve(client, 7, "dup.test"), ["127.0.0.1"]);
  });

  Deno.test(`dns: connect by name also times out on a silent name server (${framing})`, async () => {
    await using dns = await startZone();
    await using server = await serverFor(dns, loopbackPolicy({ connectionTimeoutSecs: 2 }));
    await using client = await TestClient.open(server.url, framing);
    client.send({ op: "connect", id: 9, addr: "silent.test", port: 80 });
    assert.deepEqual(await client.nextFor(9), { ev: "error", id: 9, msg: "connection timed out" });
    await client.settle();
    assert.deepEqual(client.queuedFor(9), []);
  });

  Deno.test(`dns: resolve of an IP literal returns it without a query (${framing})`, async () => {
    await using dns = await startZone();
    await using server = await serverFor(dns);
    await using client = await TestClient.open(server.url, framing);
    assert.deepEqual(await resolve(client, 10, "127.0.0.1"), ["127.0.0.1"]);
    assert.deepEqual(await resolve(client, 11, "::1"), ["::1"]);
    assert.equal(dns.queries, 0);
  });

  Deno.test(`dns: connect to a name reaches the TCP echo it resolves to (${framing})`, async () => {
    await using echo = await startTcpEcho({ hostname: "127.0.0.1" });
    await using dns = await startZone();
    await using server = await serverFor(dns);
    await using client = await TestClient.open(server.url, framing);
    await client.connect(12, "a.test", echo.port);
    const payload = randomBytes(32 * 1024);
    client.send({ op: "send", id: 12, data: payload });
    assert.deepEqual(await client.collect(12, payload.byteLength), payload);
    client.send({ op: "close", id: 12 });
    assert.deepEqual(await client.nextFor(12), { ev: "closed", id: 12 });
    assert.equal(echo.accepted, 1);
    assert.ok(dns.questions.some((q) => q.name === "a.test"));
  });

  Deno.test(`dns: connect to an IPv6-only name reaches [::1] (${framing})`, async () => {
    await using echo = await startTcpEcho({ hostname: "::1" });
    await using dns = await startZone();
    await using server = await serverFor(dns);
    await using client = await TestClient.open(server.url, framing);
    await client.connect(16, "v6.test", echo.port);
    const hi = new TextEncoder().encode("hi over v6");
    client.send({ op: "send", id: 16, data: hi });
    assert.deepEqual(await client.collect(16, hi.byteLength), hi);
    client.send({ op: "close", id: 16 });
    assert.deepEqual(await client.nextFor(16), { ev: "closed", id: 16 });
  });

  Deno.test(`dns: close on a pending lookup answers closed and nothing else (${framing})`, async () => {
    await using dns = await startZone();
    await using server = await serverFor(dns);
    await using client = await TestClient.open(server.url, framing);
    client.send({ op: "resolve", id: 13, name: "silent.test" });
    // Wait until the name server has seen the question, so the lookup is really pending.
    while (!dns.questions.some((q) => q.name === "silent.test")) {
      await client.settle();
    }
    client.send({ op: "close", id: 13 });
    assert.deepEqual(await client.nextFor(13), { ev: "closed", id: 13 });
    await client.settle();
    assert.deepEqual(client.queuedFor(13), []);
    // The id is free again.
    assert.deepEqual(await resolve(client, 13, "v6.test"), ["::1"]);
  });

  Deno.test(`dns: a resolve whose answers are all denied is denied (${framing})`, async () => {
    await using dns = await startZone();
    await using server = await serverFor(
      dns,
      loopbackPolicy({ deny: ["127.0.0.0/8", "::1"] }),
    );
    await using client = await TestClient.open(server.url, framing);
    client.send({ op: "resolve", id: 14, name: "a.test" });
    assert.equal((await client.nextFor(14)).ev, "denied");
    client.send({ op: "connect", id: 15, addr: "a.test", port: 80 });
    assert.equal((await client.nextFor(15)).ev, "denied");
  });
}

for (const framing of FRAMINGS) {
  Deno.test(
    `dns: pending resolves are bounded per session, beyond it error at once (${framing})`,
    inProcessOnly("limits.maxPendingLookups has no CLI flag"),
    async () => {
      await using dns = await startZone();
      await using server = await startTestServer({
        transport: testTransport({ nameServer: { ipAddr: "127.0.0.1", port: dns.port } }),
        limits: { maxPendingLookups: 4 },
      });
      await using client = await TestClient.open(server.url, framing);
      for (let id = 1; id <= 6; id++) client.send({ op: "resolve", id, name: "silent.test" });
      for (const id of [5, 6]) {
        assert.deepEqual(await client.nextFor(id), {
          ev: "error",
          id,
          msg: "too many pending lookups (limit 4)",
        });
      }
      client.send({ op: "close", id: 1 });
      assert.deepEqual(await client.nextFor(1), { ev: "closed", id: 1 });
      assert.deepEqual(await resolve(client, 7, "a.test"), ["127.0.0.1", "::1"]);
      for (let id = 2; id <= 4; id++) {
        client.send({ op: "close", id });
        assert.deepEqual(await client.nextFor(id), { ev: "closed", id });
      }
    },
  );
}

Deno.test(
  "dns: lookups in flight are bounded per server (transport maxLookups)",
  inProcessOnly("transport maxLookups has no CLI flag"),
  async () => {
    await using dns = await startZone();
    await using server = await startTestServer({
      transport: testTransport({
        nameServer: { ipAddr: "127.0.0.1", port: dns.port },
        maxLookups: 3,
      }),
    });
    await using a = await TestClient.open(server.url);
    await using b = await TestClient.open(server.url);
    for (let id = 1; id <= 3; id++) a.send({ op: "resolve", id, name: "silent.test" });
    await until(() => dns.queries >= 3, "three silent lookups reach the name server");
    assert.equal(
      await resolveError(b, 1, "a.test"),
      'DNS lookup failed for "a.test": too many DNS lookups in flight (limit 3)',
    );
    for (let id = 1; id <= 3; id++) {
      a.send({ op: "close", id });
      assert.deepEqual(await a.nextFor(id), { ev: "closed", id });
    }
    // Closing aborts the queries; their slots come back once the resolver has let go of them.
    for (let attempt = 0;; attempt++) {
      b.send({ op: "resolve", id: 2, name: "a.test" });
      const ev = await b.nextFor(2);
      if (ev.ev === "resolved") {
        assert.deepEqual(ev.addrs, ["127.0.0.1", "::1"]);
        break;
      }
      assert.ok(attempt < 200, `no slot came back: ${JSON.stringify(ev)}`);
      await delay(10);
    }
  },
);
