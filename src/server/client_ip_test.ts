import assert from "node:assert/strict";
import { clientIpResolver, parseTrustedProxies } from "./client_ip.ts";

const headers = (h: Record<string, string>) => (name: string): string | undefined => h[name];

Deno.test("client ip: without --trust-proxy the peer is the client, headers ignored", () => {
  const ip = clientIpResolver([]);
  assert.equal(ip("203.0.113.9", headers({ "x-forwarded-for": "1.2.3.4" })), "203.0.113.9");
  assert.equal(ip("::ffff:203.0.113.9", headers({})), "203.0.113.9");
});

Deno.test("client ip: X-Forwarded-For from an untrusted peer is ignored", () => {
  const ip = clientIpResolver(["10.0.0.0/8"]);
  assert.equal(ip("198.51.100.7", headers({ "x-forwarded-for": "1.2.3.4" })), "198.51.100.7");
  assert.equal(ip("198.51.100.7", headers({ forwarded: "for=1.2.3.4" })), "198.51.100.7");
});

Deno.test("client ip: a trusted proxy's chain is walked from the right, skipping trusted hops", () => {
  const ip = clientIpResolver(["10.0.0.0/8", "::1"]);
  const xff = (v: string) => headers({ "x-forwarded-for": v });
  assert.equal(ip("10.1.1.1", xff("1.2.3.4")), "1.2.3.4");
  // A client that forges an entry only adds it to the left: the proxy appends the real peer.
  assert.equal(ip("10.1.1.1", xff("6.6.6.6, 1.2.3.4")), "1.2.3.4");
  assert.equal(ip("10.1.1.1", xff("1.2.3.4, 10.2.2.2")), "1.2.3.4");
  assert.equal(ip("::1", xff("2001:db8::5")), "2001:db8::5");
  assert.equal(ip("::ffff:10.1.1.1", xff("::ffff:1.2.3.4")), "1.2.3.4");
  // Malformed entries stop the walk at the last trusted hop; no header: the proxy itself.
  assert.equal(ip("10.1.1.1", xff("1.2.3.4, garbage")), "10.1.1.1");
  assert.equal(ip("10.1.1.1", headers({})), "10.1.1.1");
});

Deno.test("client ip: Forwarded (RFC 7239) is preferred, with quotes, ports and IPv6 brackets", () => {
  const ip = clientIpResolver(["10.0.0.0/8"]);
  assert.equal(
    ip(
      "10.0.0.2",
      headers({ forwarded: 'for="[2001:db8::9]:4711";proto=https', "x-forwarded-for": "7.7.7.7" }),
    ),
    "2001:db8::9",
  );
  assert.equal(
    ip("10.0.0.2", headers({ forwarded: "for=192.0.2.60:8080, for=10.0.0.3" })),
    "192.0.2.60",
  );
  assert.equal(ip("10.0.0.2", headers({ forwarded: "for=unknown" })), "10.0.0.2");
});

Deno.test("client ip: bad --trust-proxy entries are refused with the entry named", () => {
  assert.throws(
    () => parseTrustedProxies(["10.0.0.0/33"]),
    /invalid --trust-proxy entry "10.0.0.0\/33"/,
  );
  assert.throws(() => parseTrustedProxies(["example.com"]), /example\.com/);
  assert.equal(parseTrustedProxies(["::ffff:10.0.0.0/104"])[0]?.[1], 8);
});
