import assert from "node:assert/strict";
import { canonicalIp, type ParsedTarget, parseTarget } from "./mod.ts";

const ip4 = (ip: string): ParsedTarget => ({ kind: "ip", ip, family: 4 });
const ip6 = (ip: string): ParsedTarget => ({ kind: "ip", ip, family: 6 });
const name = (name: string): ParsedTarget => ({ kind: "name", name });

const CASES: ReadonlyArray<readonly [string, ParsedTarget | string]> = [
  // numeric IPv4 spellings (WHATWG URL / inet_aton semantics)
  ["127.0.0.1", ip4("127.0.0.1")],
  ["127.1", ip4("127.0.0.1")],
  ["127.0.1", ip4("127.0.0.1")],
  ["2130706433", ip4("127.0.0.1")],
  ["0x7f000001", ip4("127.0.0.1")],
  ["0X7F000001", ip4("127.0.0.1")],
  ["0177.0.0.1", ip4("127.0.0.1")],
  ["017700000001", ip4("127.0.0.1")],
  ["0x7f.1", ip4("127.0.0.1")],
  ["127.0.0.1.", ip4("127.0.0.1")],
  ["0", ip4("0.0.0.0")],
  ["10.0.0.010", ip4("10.0.0.8")],
  // IPv6
  ["::1", ip6("::1")],
  ["[::1]", ip6("::1")],
  ["0:0:0:0:0:0:0:1", ip6("::1")],
  ["::", ip6("::")],
  ["2001:DB8:0:0:1:0:0:1", ip6("2001:db8::1:0:0:1")],
  ["[2606:4700:4700::1111]", ip6("2606:4700:4700::1111")],
  ["fe80::1%eth0", ip6("fe80::1")],
  ["[fe80::1%25eth0]", ip6("fe80::1")],
  ["fe80::1%", "has an invalid zone id"],
  ["::ffff:127.0.0.1", ip4("127.0.0.1")],
  ["[::FFFF:127.0.0.1]", ip4("127.0.0.1")],
  ["::ffff:7f00:1", ip4("127.0.0.1")],
  ["::127.0.0.1", ip6("::7f00:1")],
  ["64:ff9b::10.0.0.1", ip6("64:ff9b::a00:1")],
  ["::ffff:010.0.0.1", "has an embedded IPv4 address that is not strict dotted decimal"],
  ["::ffff:127.1", "has an embedded IPv4 address that is not strict dotted decimal"],
  ["1::2::3", "is not a valid IPv6 address"],
  ["1:2:3:4:5:6:7:8:9", "is not a valid IPv6 address"],
  // names
  ["Example.COM", name("example.com")],
  ["evil.com.", name("evil.com")],
  ["bücher.example", name("xn--bcher-kva.example")],
  ["BÜCHER.example.", name("xn--bcher-kva.example")],
  ["ＬＯＣＡＬＨＯＳＴ", name("localhost")],
  ["localhost。", name("localhost")],
  ["_dmarc.example.com", name("_dmarc.example.com")],
  ["a-b.example", name("a-b.example")],
  // rejections
  ["", "is empty"],
  ["a b", "contains whitespace or control characters"],
  ["exa\tmple.com", "contains whitespace or control characters"],
  ["example.com\n", "contains whitespace or control characters"],
  ["a/b", "contains '/'"],
  ["user@example.com", "contains '@'"],
  ["127%2e0.0.1", "contains '%'"],
  ["example.com?x", "contains '?'"],
  ["*.example.com", "contains '*'"],
  ["example.com:443", "contains ':' (give the port separately)"],
  ["[example.com]", "has brackets around a non-IPv6 host"],
  ["[::1", "has an unclosed '['"],
  ["foo..com", "has an empty label"],
  ["example.com..", "has an empty label"],
  [".", "is not a valid host name (empty)"],
  ["-a.com", 'has an invalid label "-a"'],
  ["a!b.com", 'has an invalid label "a!b"'],
  ["256.1.1.1", "is not a valid host name or IPv4 address"],
  ["1.2.3.4.5", "is not a valid host name or IPv4 address"],
  [`${"a".repeat(64)}.com`, "has a label longer than 63 characters"],
  [`${"a.".repeat(130)}com`, "is longer than 253 characters"],
  ["x".repeat(2000), "is longer than 1024 characters"],
];

Deno.test("parseTarget normalises every spelling and rejects junk with a reason", () => {
  for (const [input, expected] of CASES) {
    const want: ParsedTarget = typeof expected === "string"
      ? { kind: "invalid", reason: expected }
      : expected;
    assert.deepEqual(parseTarget(input), want, `input ${JSON.stringify(input)}`);
  }
});

Deno.test("parseTarget never throws on non-string input", () => {
  const bad = 42 as unknown as string;
  assert.deepEqual(parseTarget(bad), { kind: "invalid", reason: "is not a string" });
});

Deno.test("canonicalIp returns canonical text for IPs only", () => {
  assert.equal(canonicalIp("::FFFF:10.0.0.1"), "10.0.0.1");
  assert.equal(canonicalIp("[::1]"), "::1");
  assert.equal(canonicalIp("2001:0db8:0000:0000:0000:0000:0000:0001"), "2001:db8::1");
  assert.equal(canonicalIp("93.184.216.34"), "93.184.216.34");
  assert.equal(canonicalIp("example.com"), undefined);
  assert.equal(canonicalIp("not an ip"), undefined);
});

Deno.test("parseTarget: the dotted-quad fast path gives what the URL host parser gives", async () => {
  const fc = (await import("fast-check")).default;
  const viaUrl = (text: string): string | undefined => {
    try {
      return new URL(`http://${text}/`).hostname;
    } catch {
      return undefined;
    }
  };
  // Digits and dots, the alphabet where the fast path and the URL parser meet.
  const text = fc.array(fc.constantFrom("0", "1", "2", "5", "9", "."), {
    minLength: 1,
    maxLength: 16,
  })
    .map((cs: string[]) => cs.join(""));
  fc.assert(
    fc.property(text, (t: string) => {
      const parsed = parseTarget(t);
      const host = viaUrl(t);
      if (parsed.kind === "ip" && parsed.family === 4 && t === parsed.ip) {
        assert.equal(host, t, `${t} kept as is by the fast path, but the URL parser says ${host}`);
      }
      if (host !== undefined && /^\d+\.\d+\.\d+\.\d+$/.test(host) && parsed.kind === "ip") {
        assert.equal(parsed.ip, host);
      }
    }),
    { seed: 18, numRuns: 20_000 },
  );
  assert.deepEqual(parseTarget("10.0.0.255"), ip4("10.0.0.255"));
  assert.deepEqual(parseTarget("010.0.0.1"), ip4("8.0.0.1"));
  assert.equal(parseTarget("256.0.0.1").kind, "invalid");
});
