import assert from "node:assert/strict";
import { DEFAULT_DENY, DEFAULT_DENY_NAMES, parseTarget, Policy, type PolicyConfig } from "./mod.ts";

type Spec = "default" | "allow-all" | Partial<PolicyConfig>;

function policyOf(spec: Spec): Policy {
  if (spec === "default") return Policy.defaults();
  if (spec === "allow-all") return Policy.allowAll();
  return Policy.fromConfig(spec, "test");
}

/** [policy, target as the client sent it, port, allowed, deciding rule]. */
type TargetCase = readonly [Spec, string, number, boolean, string];

const DENY_ALL = (...allow: string[]): Spec => ({ deny: ["*"], allow });
const ALLOW_LIST = (...allow: string[]): Spec => ({ allow });
const DENY = (...deny: string[]): Spec => ({ deny, allow: ["*"] });

const TARGET_CASES: readonly TargetCase[] = [
  // ── every wasmnet 0.1.3 bypass, under the default policy ──
  ["default", "localhost", 80, false, "localhost"],
  ["default", "LOCALHOST.", 80, false, "localhost"],
  ["default", "foo.localhost", 80, false, "localhost"],
  ["default", "ＬＯＣＡＬＨＯＳＴ", 80, false, "localhost"],
  ["default", "127.0.0.1", 80, false, "127.0.0.0/8"],
  ["default", "127.1", 80, false, "127.0.0.0/8"],
  ["default", "2130706433", 80, false, "127.0.0.0/8"],
  ["default", "0x7f000001", 80, false, "127.0.0.0/8"],
  ["default", "0177.0.0.1", 80, false, "127.0.0.0/8"],
  ["default", "017700000001", 80, false, "127.0.0.0/8"],
  ["default", "0x7f.1", 80, false, "127.0.0.0/8"],
  ["default", "127.0.0.1.", 80, false, "127.0.0.0/8"],
  ["default", "::ffff:127.0.0.1", 80, false, "127.0.0.0/8"],
  ["default", "[::ffff:7f00:1]", 80, false, "127.0.0.0/8"],
  ["default", "::127.0.0.1", 80, false, "::/96"],
  [DENY("127.0.0.0/8"), "::127.0.0.1", 80, false, "127.0.0.0/8"],
  // IPv4-translated (SIIT, RFC 2765): ::ffff:0:a.b.c.d is denied whole and checked as its IPv4
  ["default", "::ffff:0:127.0.0.1", 80, false, "::ffff:0:0:0/96"],
  ["default", "[::ffff:0:7f00:1]", 80, false, "::ffff:0:0:0/96"],
  ["default", "::ffff:0:8.8.8.8", 53, false, "::ffff:0:0:0/96"],
  [DENY("127.0.0.0/8"), "::ffff:0:127.0.0.1", 80, false, "127.0.0.0/8"],
  [DENY("10.0.0.0/8"), "0:0:0:0:ffff:0:a00:1", 80, false, "10.0.0.0/8"],
  ["default", "[::1]", 80, false, "::1/128"],
  ["default", "::1", 443, false, "::1/128"],
  ["default", "::", 80, false, "::/128"],
  ["default", "0.0.0.0", 80, false, "0.0.0.0/8"],
  ["default", "0", 80, false, "0.0.0.0/8"],
  // ── private, link-local, metadata, CGNAT, special IPv4 ──
  ["default", "10.0.0.5", 22, false, "10.0.0.0/8"],
  ["default", "172.16.0.1", 80, false, "172.16.0.0/12"],
  ["default", "172.31.255.255", 80, false, "172.16.0.0/12"],
  ["default", "172.32.0.1", 80, true, "*"],
  ["default", "192.168.1.1", 80, false, "192.168.0.0/16"],
  ["default", "169.254.169.254", 80, false, "169.254.0.0/16"],
  ["default", "100.100.100.200", 80, false, "100.64.0.0/10"],
  ["default", "100.64.0.1", 80, false, "100.64.0.0/10"],
  ["default", "192.0.0.170", 80, false, "192.0.0.0/24"],
  ["default", "192.0.2.1", 80, false, "192.0.2.0/24"],
  ["default", "192.88.99.1", 80, false, "192.88.99.0/24"],
  ["default", "198.18.0.1", 80, false, "198.18.0.0/15"],
  ["default", "198.51.100.1", 80, false, "198.51.100.0/24"],
  ["default", "203.0.113.1", 80, false, "203.0.113.0/24"],
  ["default", "224.0.0.1", 80, false, "224.0.0.0/4"],
  ["default", "240.0.0.1", 80, false, "240.0.0.0/4"],
  ["default", "255.255.255.255", 80, false, "240.0.0.0/4"],
  // ── IPv6 defaults ──
  ["default", "fe80::1", 80, false, "fe80::/10"],
  ["default", "fe80::1%eth0", 80, false, "fe80::/10"],
  ["default", "fc00::1", 80, false, "fc00::/7"],
  ["default", "fd00:ec2::254", 80, false, "fc00::/7"],
  ["default", "fec0::1", 80, false, "fec0::/10"],
  ["default", "ff02::1", 80, false, "ff00::/8"],
  ["default", "2001:db8::1", 80, false, "2001:db8::/32"],
  ["default", "3fff::1", 80, false, "3fff::/20"],
  ["default", "5f00::1", 80, false, "5f00::/16"],
  ["default", "100::1", 80, false, "100::/64"],
  ["default", "64:ff9b:1::1", 80, false, "64:ff9b:1::/48"],
  ["default", "2001:2::1", 80, false, "2001::/23"],
  // ── IPv4 embedded in IPv6 ──
  ["default", "64:ff9b::10.0.0.1", 80, false, "10.0.0.0/8"],
  ["default", "64:ff9b::7f00:1", 80, false, "127.0.0.0/8"],
  ["default", "64:ff9b::a9fe:a9fe", 80, false, "169.254.0.0/16"],
  ["default", "64:ff9b::8.8.8.8", 53, true, "*"],
  ["default", "2002:c0a8:101::1", 80, false, "192.168.0.0/16"],
  ["default", "2002:7f00:1::", 80, false, "127.0.0.0/8"],
  ["default", "2002:808:808::1", 80, true, "*"],
  ["default", "2a00:1450::5efe:a00:1", 80, false, "10.0.0.0/8"], // ISATAP interface id
  [DENY("10.0.0.0/8"), "2001:0:102:304::f5ff:fffe", 80, false, "10.0.0.0/8"], // Teredo client
  [DENY("10.0.0.0/8"), "64:ff9b::10.1.2.3", 80, false, "10.0.0.0/8"],
  [DENY("10.0.0.0/8"), "2002:a01:203::", 80, false, "10.0.0.0/8"],
  [DENY("127.0.0.0/8"), "::1", 80, true, "*"],
  // ── public targets pass the default policy ──
  ["default", "8.8.8.8", 53, true, "*"],
  ["default", "1.1.1.1", 443, true, "*"],
  ["default", "2606:4700:4700::1111", 443, true, "*"],
  ["default", "[2a00:1450:4001::200e]", 443, true, "*"],
  ["default", "example.com", 443, true, "*"],
  ["default", "EXAMPLE.com.", 443, true, "*"],
  ["default", "printer.local", 631, false, "local"],
  ["default", "api.internal", 80, false, "internal"],
  ["default", "router.home.arpa", 80, false, "home.arpa"],
  ["default", "localhost.example.com", 80, true, "*"],
  // ── name rules: trailing dot, case, IDN, apex vs wildcard, look-alikes ──
  [DENY("evil.com"), "evil.com", 80, false, "evil.com"],
  [DENY("evil.com"), "evil.com.", 80, false, "evil.com"],
  [DENY("evil.com"), "EVIL.COM", 80, false, "evil.com"],
  [DENY("evil.com"), "deep.sub.evil.com.", 80, false, "evil.com"],
  [DENY("evil.com"), "notevil.com", 80, true, "*"],
  [DENY("evil.com"), "evil.com.attacker.net", 80, true, "*"],
  [DENY("*.blocked.com"), "x.blocked.com", 80, false, "*.blocked.com"],
  [DENY("*.blocked.com"), "blocked.com", 80, true, "*"],
  [DENY("bücher.example"), "xn--bcher-kva.example", 80, false, "bücher.example"],
  [DENY("xn--bcher-kva.example"), "BÜCHER.example", 80, false, "xn--bcher-kva.example"],
  [DENY("Evil.COM."), "evil.com", 80, false, "Evil.COM."],
  [DENY_ALL("*.github.com"), "api.github.com", 443, true, "*.github.com"],
  [DENY_ALL("*.github.com"), "github.com", 443, false, "default-deny"],
  [DENY_ALL("github.com"), "github.com", 443, true, "github.com"],
  [DENY_ALL("github.com"), "api.github.com.", 443, true, "github.com"],
  [DENY_ALL("github.com"), "notgithub.com", 443, false, "default-deny"],
  // ── ports in rules are honoured ──
  [DENY_ALL("api.example.com:443"), "api.example.com", 443, true, "api.example.com:443"],
  [DENY_ALL("api.example.com:443"), "api.example.com", 22, false, "default-deny"],
  [DENY_ALL("example.com:8000-8999"), "example.com", 8000, true, "example.com:8000-8999"],
  [DENY_ALL("example.com:8000-8999"), "example.com", 8999, true, "example.com:8000-8999"],
  [DENY_ALL("example.com:8000-8999"), "example.com", 9000, false, "default-deny"],
  [DENY("evil.com:22"), "evil.com", 22, false, "evil.com:22"],
  [DENY("evil.com:22"), "evil.com", 443, true, "*"],
  [DENY("10.0.0.0/8:22"), "10.1.2.3", 22, false, "10.0.0.0/8:22"],
  [DENY("10.0.0.0/8:22"), "10.1.2.3", 443, true, "*"],
  [DENY("[::1]:80", "fd00::/8"), "::1", 80, false, "[::1]:80"],
  [DENY("[::1]:80", "fd00::/8"), "::1", 443, true, "*"],
  [DENY("[::1]:80", "fd00::/8"), "fd12::1", 443, false, "fd00::/8"],
  [DENY("[fd00::/8]:443"), "fd00::1", 443, false, "[fd00::/8]:443"],
  [DENY("[fd00::/8]:443"), "fd00::1", 80, true, "*"],
  [DENY("*:25"), "smtp.example.com", 25, false, "*:25"],
  [DENY("*:25"), "8.8.8.8", 25, false, "*:25"],
  [DENY("*:25"), "8.8.8.8", 587, true, "*"],
  [DENY("1.2.3.4"), "1.2.3.4", 80, false, "1.2.3.4"],
  [DENY("1.2.3.4"), "1.2.3.5", 80, true, "*"],
  [DENY("16909060"), "1.2.3.4", 80, false, "16909060"], // rule IPs are normalised too
  [DENY("::ffff:1.2.3.4"), "1.2.3.4", 80, false, "::ffff:1.2.3.4"],
  // ── deny wins; deny-all and allow-list modes ──
  [{ deny: ["sub.example.com"], allow: ["example.com"] }, "example.com", 443, true, "example.com"],
  [
    { deny: ["sub.example.com"], allow: ["example.com"] },
    "sub.example.com",
    443,
    false,
    "sub.example.com",
  ],
  [{ deny: ["@default"], allow: ["127.0.0.1"] }, "127.0.0.1", 80, false, "127.0.0.0/8"],
  [{ deny: ["*"], allow: ["*"] }, "example.com", 443, false, "default-deny"],
  [DENY_ALL("8.8.8.8:53"), "8.8.8.8", 53, true, "8.8.8.8:53"],
  [DENY_ALL("8.8.8.8:53"), "8.8.4.4", 53, false, "default-deny"],
  [DENY_ALL("10.0.0.0/8"), "10.9.9.9", 80, true, "10.0.0.0/8"],
  [DENY_ALL("*:443"), "1.1.1.1", 443, true, "*:443"],
  [DENY_ALL("*:443"), "example.com", 443, true, "*:443"],
  [DENY_ALL("*:443"), "10.0.0.1", 443, false, "10.0.0.0/8"], // special range needs an IP rule
  [DENY_ALL("*:443"), "64:ff9b::127.0.0.1", 443, false, "127.0.0.0/8"],
  [DENY_ALL("*:443"), "1.1.1.1", 80, false, "default-deny"],
  [ALLOW_LIST("example.com"), "example.com", 80, true, "example.com"],
  [ALLOW_LIST("example.com"), "example.org", 80, false, "no-allow-rule"],
  [ALLOW_LIST("example.com"), "93.184.216.34", 80, false, "no-allow-rule"],
  [ALLOW_LIST(), "example.com", 80, false, "no-allow-rule"],
  [{ deny: [], allow: ["*"] }, "127.0.0.1", 80, true, "*"],
  [{ deny: [] }, "192.168.0.1", 80, true, "*"],
  [{ allow: ["*"] }, "10.0.0.1", 80, false, "10.0.0.0/8"],
  // ── --no-policy ──
  ["allow-all", "127.0.0.1", 22, true, "allow-all"],
  ["allow-all", "localhost", 22, true, "allow-all"],
  ["allow-all", "[::1]", 22, true, "allow-all"],
];

Deno.test(`checkTarget: ${TARGET_CASES.length} table cases`, () => {
  assert.ok(TARGET_CASES.length >= 80);
  for (const [spec, input, port, allowed, rule] of TARGET_CASES) {
    const label = `${JSON.stringify(spec)} ${input}:${port}`;
    const target = parseTarget(input);
    assert.ok(target.kind !== "invalid", `${label}: ${JSON.stringify(target)}`);
    const verdict = policyOf(spec).checkTarget(target, port);
    assert.equal(verdict.allowed, allowed, `${label}: ${verdict.reason}`);
    assert.equal(verdict.rule, rule, `${label}: ${verdict.reason}`);
    assert.ok(!verdict.reason.includes("\n"), `${label}: reason is one line`);
  }
});

/** [policy, name, resolved address, port, allowed, deciding rule]. */
type ResolvedCase = readonly [Spec, string, string, number, boolean, string];

const RESOLVED_CASES: readonly ResolvedCase[] = [
  ["default", "example.com", "93.184.216.34", 443, true, "*"],
  ["default", "example.com", "127.0.0.1", 443, false, "127.0.0.0/8"],
  ["default", "example.com", "::ffff:10.1.1.1", 443, false, "10.0.0.0/8"],
  ["default", "example.com", "::1", 443, false, "::1/128"],
  ["default", "example.com", "169.254.169.254", 80, false, "169.254.0.0/16"],
  ["default", "127.0.0.1.nip.io", "127.0.0.1", 80, false, "127.0.0.0/8"],
  ["default", "example.com", "64:ff9b::192.168.0.1", 80, false, "192.168.0.0/16"],
  ["default", "example.com", "2606:2800:220:1::1", 443, true, "*"],
  ["default", "localhost", "8.8.8.8", 80, false, "localhost"], // the name is re-checked
  [DENY("10.0.0.0/8:22"), "example.com", "10.0.0.1", 22, false, "10.0.0.0/8:22"],
  [DENY("10.0.0.0/8:22"), "example.com", "10.0.0.1", 80, true, "*"],
  // deny-all: an allowed name must resolve to an allowed address
  [
    DENY_ALL("api.example.com:443"),
    "api.example.com",
    "93.184.216.34",
    443,
    true,
    "api.example.com:443",
  ],
  [DENY_ALL("api.example.com:443"), "api.example.com", "10.0.0.5", 443, false, "10.0.0.0/8"],
  [DENY_ALL("api.example.com:443"), "api.example.com", "::1", 443, false, "::1/128"],
  [DENY_ALL("api.example.com:443"), "api.example.com", "fd00::1", 443, false, "fc00::/7"],
  [DENY_ALL("api.example.com:443"), "evil.com", "93.184.216.34", 443, false, "default-deny"],
  [DENY_ALL("db.corp", "10.1.2.0/24:5432"), "db.corp", "10.1.2.3", 5432, true, "10.1.2.0/24:5432"],
  [DENY_ALL("db.corp", "10.1.2.0/24:5432"), "db.corp", "10.1.2.3", 22, false, "10.0.0.0/8"],
  [DENY_ALL("db.corp", "10.1.2.0/24:5432"), "db.corp", "10.9.9.9", 5432, false, "10.0.0.0/8"],
  [ALLOW_LIST("example.com"), "example.com", "192.168.1.1", 80, false, "192.168.0.0/16"],
  [{ deny: [], allow: ["example.com"] }, "example.com", "192.168.1.1", 80, false, "192.168.0.0/16"],
  [{ deny: [], allow: ["*"] }, "example.com", "192.168.1.1", 80, true, "*"],
  ["allow-all", "example.com", "127.0.0.1", 80, true, "allow-all"],
  ["default", "example.com", "not-an-ip", 80, false, "invalid-address"],
  ["default", "bad name", "8.8.8.8", 80, false, "invalid-target"],
];

Deno.test(`checkResolved: ${RESOLVED_CASES.length} table cases`, () => {
  for (const [spec, name, ip, port, allowed, rule] of RESOLVED_CASES) {
    const label = `${JSON.stringify(spec)} ${name} → ${ip}:${port}`;
    const verdict = policyOf(spec).checkResolved(name, ip, port);
    assert.equal(verdict.allowed, allowed, `${label}: ${verdict.reason}`);
    assert.equal(verdict.rule, rule, `${label}: ${verdict.reason}`);
  }
});

Deno.test("verdict reasons read as one line for the wire", () => {
  const p = Policy.defaults();
  const t = (s: string): Parameters<Policy["checkTarget"]>[0] => {
    const r = parseTarget(s);
    if (r.kind === "invalid") throw new Error(r.reason);
    return r;
  };
  assert.equal(
    p.checkTarget(t("127.0.0.1"), 80).reason,
    '127.0.0.1:80 is denied by rule "127.0.0.0/8" (loopback)',
  );
  assert.equal(
    p.checkTarget(t("64:ff9b::10.0.0.1"), 80).reason,
    '[64:ff9b::a00:1]:80 is denied by rule "10.0.0.0/8" (private-use, RFC 1918)' +
      " via its embedded NAT64 IPv4 address 10.0.0.1",
  );
  assert.equal(
    p.checkResolved("example.com", "::ffff:10.1.1.1", 443).reason,
    'example.com:443 resolved to 10.1.1.1, which is denied by rule "10.0.0.0/8" (private-use, RFC 1918)',
  );
  const q = policyOf(DENY_ALL("api.example.com"));
  assert.equal(
    q.checkTarget(t("evil.com"), 80).reason,
    'evil.com:80 is denied: "*" in deny (deny-all mode) and no allow rule matches',
  );
  assert.equal(
    q.checkResolved("api.example.com", "10.0.0.5", 443).reason,
    'api.example.com:443 resolved to 10.0.0.5, which is in default-deny range "10.0.0.0/8"' +
      " (private-use, RFC 1918); in allow-list mode only an allow IP/CIDR rule admits" +
      " special-purpose addresses",
  );
  assert.equal(
    policyOf(ALLOW_LIST("a.com")).checkTarget(t("b.com"), 80).reason,
    "b.com:80 is denied: no allow rule matches",
  );
});

Deno.test("checkTarget and checkResolved reject bad ports and hand-built targets, never throw", () => {
  const p = Policy.defaults();
  for (const port of [0, -1, 65536, 1.5, Number.NaN]) {
    const v = p.checkTarget({ kind: "name", name: "example.com" }, port);
    assert.equal(v.allowed, false);
    assert.equal(v.rule, "invalid-port");
    assert.equal(p.checkResolved("example.com", "8.8.8.8", port).rule, "invalid-port");
  }
  // a hand-built target is re-normalised before matching
  const sneaky = p.checkTarget({ kind: "name", name: "127.1" }, 80);
  assert.deepEqual([sneaky.allowed, sneaky.rule], [false, "127.0.0.0/8"]);
  const mapped = p.checkTarget({ kind: "ip", ip: "::ffff:7f00:1", family: 6 }, 80);
  assert.deepEqual([mapped.allowed, mapped.rule], [false, "127.0.0.0/8"]);
  const junk = p.checkTarget({ kind: "name", name: "a b" }, 80);
  assert.deepEqual([junk.allowed, junk.rule], [false, "invalid-target"]);
  assert.equal(junk.reason, '"a b" contains whitespace or control characters');
});

/** The e2e tests' policy: `localhost` allowed by name, its addresses denied. */
const LOCALHOST_BY_NAME: Spec = { deny: ["127.0.0.0/8", "::1"], allow: ["localhost"] };

/** [policy, name or address as the client sent it to `resolve`, allowed, deciding rule]. */
const LOOKUP_CASES: ReadonlyArray<readonly [Spec, string, boolean, string]> = [
  // ── default policy: names, every spelling of loopback, embedded IPv4, public targets ──
  ["default", "example.com", true, "*"],
  ["default", "localhost", false, "localhost"],
  ["default", "LOCALHOST.", false, "localhost"],
  ["default", "foo.localhost", false, "localhost"],
  ["default", "printer.local", false, "local"],
  ["default", "127.1", false, "127.0.0.0/8"],
  ["default", "2130706433", false, "127.0.0.0/8"],
  ["default", "0x7f000001", false, "127.0.0.0/8"],
  ["default", "017700000001", false, "127.0.0.0/8"],
  ["default", "[::1]", false, "::1/128"],
  ["default", "::ffff:127.0.0.1", false, "127.0.0.0/8"],
  ["default", "64:ff9b::10.0.0.1", false, "10.0.0.0/8"],
  ["default", "169.254.169.254", false, "169.254.0.0/16"],
  ["default", "8.8.8.8", true, "*"],
  ["default", "2606:4700:4700::1111", true, "*"],
  // ── a deny rule with a port does not block a lookup; without one (or with every port) it does ──
  [DENY("evil.com:22"), "evil.com", true, "*"],
  [DENY("evil.com:8000-8999"), "sub.evil.com", true, "*"],
  [DENY("evil.com"), "sub.evil.com", false, "evil.com"],
  [DENY("evil.com:1-65535"), "evil.com", false, "evil.com:1-65535"],
  [DENY("evil.com:0-65535"), "evil.com", false, "evil.com:0-65535"],
  [DENY("evil.com:2-65535"), "evil.com", true, "*"],
  [DENY("*.evil.com"), "evil.com", true, "*"],
  [DENY("*.evil.com"), "a.evil.com", false, "*.evil.com"],
  [DENY("*:25"), "example.com", true, "*"],
  [DENY("*:25"), "8.8.8.8", true, "*"],
  [DENY("*:1-65535"), "example.com", false, "*:1-65535"],
  [DENY("*:1-65535"), "8.8.8.8", false, "*:1-65535"],
  [DENY("10.0.0.0/8:22"), "10.1.2.3", true, "*"],
  [DENY("10.0.0.0/8"), "10.1.2.3", false, "10.0.0.0/8"],
  [DENY("[::1]:80"), "::1", true, "*"],
  [DENY("127.0.0.0/8"), "::127.0.0.1", false, "127.0.0.0/8"],
  [DENY("10.0.0.0/8"), "2002:a01:203::", false, "10.0.0.0/8"],
  // ── allow-list modes: an allow rule for the name on any port admits ──
  [DENY_ALL("api.example.com:443"), "api.example.com", true, "api.example.com:443"],
  [DENY_ALL("api.example.com:443"), "API.Example.com.", true, "api.example.com:443"],
  [DENY_ALL("api.example.com:443"), "www.example.com", false, "default-deny"],
  [DENY_ALL("*.github.com"), "github.com", false, "default-deny"],
  [DENY_ALL("*:443"), "anything.example", true, "*:443"],
  [DENY_ALL("*:443"), "1.1.1.1", true, "*:443"],
  [DENY_ALL("*:443"), "10.0.0.1", false, "10.0.0.0/8"], // special range needs an IP rule
  [DENY_ALL("10.1.2.0/24:5432"), "10.1.2.3", true, "10.1.2.0/24:5432"],
  [DENY_ALL("8.8.8.8:53"), "8.8.4.4", false, "default-deny"],
  [ALLOW_LIST("example.com"), "example.org", false, "no-allow-rule"],
  [ALLOW_LIST("example.com"), "93.184.216.34", false, "no-allow-rule"],
  [
    { deny: ["sub.example.com:443"], allow: ["example.com"] },
    "sub.example.com",
    true,
    "example.com",
  ],
  [
    { deny: ["sub.example.com"], allow: ["example.com"] },
    "sub.example.com",
    false,
    "sub.example.com",
  ],
  [{ deny: ["@default"], allow: ["127.0.0.1"] }, "127.0.0.1", false, "127.0.0.0/8"],
  [LOCALHOST_BY_NAME, "localhost", true, "localhost"],
  [LOCALHOST_BY_NAME, "127.0.0.1", false, "127.0.0.0/8"],
  [LOCALHOST_BY_NAME, "[::1]", false, "::1"],
  // ── --no-policy ──
  ["allow-all", "localhost", true, "allow-all"],
  ["allow-all", "127.0.0.1", true, "allow-all"],
];

Deno.test(`checkLookup: ${LOOKUP_CASES.length} table cases`, () => {
  assert.ok(LOOKUP_CASES.length >= 25);
  for (const [spec, input, allowed, rule] of LOOKUP_CASES) {
    const label = `${JSON.stringify(spec)} lookup ${input}`;
    const target = parseTarget(input);
    assert.ok(target.kind !== "invalid", `${label}: ${JSON.stringify(target)}`);
    const verdict = policyOf(spec).checkLookup(target);
    assert.equal(verdict.allowed, allowed, `${label}: ${verdict.reason}`);
    assert.equal(verdict.rule, rule, `${label}: ${verdict.reason}`);
    assert.ok(!verdict.reason.includes("\n"), `${label}: reason is one line`);
  }
});

/** [policy, looked-up name, answer address, returned to the client, deciding rule]. */
const LOOKUP_ANSWER_CASES: ReadonlyArray<readonly [Spec, string, string, boolean, string]> = [
  ["default", "example.com", "93.184.216.34", true, "*"],
  ["default", "example.com", "2606:2800:220:1::1", true, "*"],
  ["default", "example.com", "127.0.0.1", false, "127.0.0.0/8"],
  ["default", "example.com", "::ffff:10.1.1.1", false, "10.0.0.0/8"],
  ["default", "example.com", "::1", false, "::1/128"],
  ["default", "example.com", "169.254.169.254", false, "169.254.0.0/16"],
  ["default", "example.com", "64:ff9b::192.168.0.1", false, "192.168.0.0/16"],
  ["default", "example.com", "2002:7f00:1::", false, "127.0.0.0/8"],
  ["default", "mixed.test", "10.0.0.1", false, "10.0.0.0/8"],
  ["default", "localhost", "8.8.8.8", false, "localhost"], // the name is re-checked
  ["default", "8.8.8.8", "8.8.8.8", true, "*"], // a literal: only the address counts
  ["default", "127.1", "127.0.0.1", false, "127.0.0.0/8"],
  [DENY("10.0.0.0/8:22"), "example.com", "10.0.0.1", true, "*"], // port-specific: kept
  [DENY("10.0.0.0/8:1-65535"), "example.com", "10.0.0.1", false, "10.0.0.0/8:1-65535"],
  [DENY("10.0.0.0/8"), "example.com", "64:ff9b::10.0.0.1", false, "10.0.0.0/8"],
  [DENY("evil.com:22"), "evil.com", "93.184.216.34", true, "*"],
  [
    DENY_ALL("api.example.com:443"),
    "api.example.com",
    "93.184.216.34",
    true,
    "api.example.com:443",
  ],
  [DENY_ALL("api.example.com:443"), "api.example.com", "10.0.0.5", false, "10.0.0.0/8"],
  [DENY_ALL("api.example.com:443"), "api.example.com", "fd00::1", false, "fc00::/7"],
  [DENY_ALL("api.example.com:443"), "api.example.com", "64:ff9b::7f00:1", false, "127.0.0.0/8"],
  [DENY_ALL("api.example.com:443"), "evil.com", "93.184.216.34", false, "default-deny"],
  [DENY_ALL("db.corp", "10.1.2.0/24:5432"), "db.corp", "10.1.2.3", true, "10.1.2.0/24:5432"],
  [DENY_ALL("db.corp", "10.1.2.0/24:5432"), "db.corp", "10.9.9.9", false, "10.0.0.0/8"],
  [ALLOW_LIST("example.com"), "example.com", "192.168.1.1", false, "192.168.0.0/16"],
  [{ deny: [], allow: ["example.com"] }, "example.com", "192.168.1.1", false, "192.168.0.0/16"],
  [{ deny: [], allow: ["*"] }, "example.com", "192.168.1.1", true, "*"],
  [DENY_ALL("ok.test", "127.0.0.0/8"), "ok.test", "127.0.0.1", true, "127.0.0.0/8"],
  [{ allow: ["ok.test", "127.0.0.0/8"] }, "ok.test", "127.0.0.1", false, "127.0.0.0/8"], // @default
  [LOCALHOST_BY_NAME, "localhost", "127.0.0.1", false, "127.0.0.0/8"],
  [LOCALHOST_BY_NAME, "localhost", "::1", false, "::1"],
  [LOCALHOST_BY_NAME, "localhost", "::ffff:127.0.0.1", false, "127.0.0.0/8"],
  [LOCALHOST_BY_NAME, "localhost", "93.184.216.34", true, "localhost"],
  ["allow-all", "example.com", "127.0.0.1", true, "allow-all"],
  ["default", "example.com", "not-an-ip", false, "invalid-address"],
  ["default", "example.com", "", false, "invalid-address"],
  ["default", "bad name", "8.8.8.8", false, "invalid-target"],
];

Deno.test(`checkLookupAnswer: ${LOOKUP_ANSWER_CASES.length} table cases`, () => {
  assert.ok(LOOKUP_ANSWER_CASES.length >= 25);
  for (const [spec, name, ip, allowed, rule] of LOOKUP_ANSWER_CASES) {
    const label = `${JSON.stringify(spec)} lookup ${name} → ${ip}`;
    const verdict = policyOf(spec).checkLookupAnswer(name, ip);
    assert.equal(verdict.allowed, allowed, `${label}: ${verdict.reason}`);
    assert.equal(verdict.rule, rule, `${label}: ${verdict.reason}`);
    assert.ok(!verdict.reason.includes("\n"), `${label}: reason is one line`);
  }
});

Deno.test("checkLookup and checkLookupAnswer: reasons, hand-built targets, never throw", () => {
  const p = Policy.defaults();
  assert.equal(
    p.checkLookup({ kind: "name", name: "localhost" }).reason,
    'lookup of localhost is denied by rule "localhost" (loopback name, RFC 6761)',
  );
  assert.equal(
    p.checkLookup({ kind: "name", name: "example.com" }).reason,
    'lookup of example.com is allowed by rule "*"',
  );
  assert.equal(
    p.checkLookupAnswer("example.com", "::ffff:10.1.1.1").reason,
    'lookup of example.com answered 10.1.1.1, which is denied by rule "10.0.0.0/8"' +
      " (private-use, RFC 1918)",
  );
  assert.equal(
    p.checkLookupAnswer("example.com", "93.184.216.34").reason,
    'lookup of example.com may return 93.184.216.34: allowed by rule "*"',
  );
  const q = policyOf(DENY_ALL("api.example.com"));
  assert.equal(
    q.checkLookup({ kind: "name", name: "evil.com" }).reason,
    'lookup of evil.com is denied: "*" in deny (deny-all mode) and no allow rule matches',
  );
  assert.equal(
    q.checkLookupAnswer("api.example.com", "10.0.0.5").reason,
    'lookup of api.example.com answered 10.0.0.5, which is in default-deny range "10.0.0.0/8"' +
      " (private-use, RFC 1918); in allow-list mode only an allow IP/CIDR rule admits" +
      " special-purpose addresses",
  );
  assert.equal(
    Policy.allowAll().checkLookup({ kind: "name", name: "localhost" }).reason,
    "lookup of localhost is allowed: policy checks are disabled (allow-all)",
  );
  // a hand-built target is re-normalised; junk is refused with a reason, not thrown
  const sneaky = p.checkLookup({ kind: "name", name: "0x7f.1" });
  assert.deepEqual([sneaky.allowed, sneaky.rule], [false, "127.0.0.0/8"]);
  const mapped = p.checkLookup({ kind: "ip", ip: "::ffff:7f00:1", family: 6 });
  assert.deepEqual([mapped.allowed, mapped.rule], [false, "127.0.0.0/8"]);
  for (const name of ["a b", "", "example.com:80", "x/y"]) {
    const v = p.checkLookup({ kind: "name", name });
    assert.deepEqual([v.allowed, v.rule], [false, "invalid-target"], name);
    assert.equal(Policy.allowAll().checkLookup({ kind: "name", name }).rule, "invalid-target");
  }
  const notString = p.checkLookupAnswer("example.com", 42 as unknown as string);
  assert.deepEqual([notString.allowed, notString.rule], [false, "invalid-address"]);
});

/** [policy, address, port, allowed, rule]. */
const BIND_CASES: ReadonlyArray<readonly [Spec, string, number, boolean, string]> = [
  ["default", "127.0.0.1", 3000, true, "127.0.0.1"],
  ["default", "127.0.0.1", 9999, true, "127.0.0.1"],
  ["default", "[::1]", 8080, true, "::1"],
  ["default", "::ffff:127.0.0.1", 8080, true, "127.0.0.1"],
  ["default", "127.0.0.1", 80, false, "bind_ports"],
  ["default", "127.0.0.1", 22, false, "bind_ports"],
  ["default", "127.0.0.1", 10000, false, "bind_ports"],
  ["default", "127.0.0.1", 0, false, "bind_ports"],
  ["default", "0.0.0.0", 3000, false, "bind_addrs"],
  ["default", "::", 3000, false, "bind_addrs"],
  ["default", "127.0.0.2", 3000, false, "bind_addrs"],
  ["default", "localhost", 3000, false, "bind_addrs"],
  ["default", "127.0.0.1", 70000, false, "invalid-port"],
  [{ bindPorts: "3000,8080", bindAddrs: ["0.0.0.0", "::"] }, "0.0.0.0", 8080, true, "0.0.0.0"],
  [{ bindPorts: "3000,8080", bindAddrs: ["0.0.0.0", "::"] }, "::", 3000, true, "::"],
  [{ bindPorts: "3000,8080", bindAddrs: ["0.0.0.0", "::"] }, "0.0.0.0", 3001, false, "bind_ports"],
  [
    { bindPorts: "3000-3999, 8080", bindAddrs: ["10.0.0.0/8"] },
    "10.2.3.4",
    3500,
    true,
    "10.0.0.0/8",
  ],
  [{ bindPorts: "", bindAddrs: ["127.0.0.1"] }, "127.0.0.1", 3000, false, "bind_ports"],
  [{ bindPorts: "0", bindAddrs: ["127.0.0.1"] }, "127.0.0.1", 0, true, "127.0.0.1"],
  ["allow-all", "0.0.0.0", 80, true, "allow-all"],
  ["allow-all", "0.0.0.0", 0, true, "allow-all"],
];

Deno.test(`checkBind: ${BIND_CASES.length} table cases`, () => {
  for (const [spec, ip, port, allowed, rule] of BIND_CASES) {
    const label = `${JSON.stringify(spec)} bind ${ip}:${port}`;
    const verdict = policyOf(spec).checkBind(ip, port);
    assert.equal(verdict.allowed, allowed, `${label}: ${verdict.reason}`);
    assert.equal(verdict.rule, rule, `${label}: ${verdict.reason}`);
  }
  const p = Policy.defaults();
  assert.equal(
    p.checkBind("127.0.0.1", 80).reason,
    "port 80 not in allowed bind range (3000-9999)",
  );
  assert.equal(
    p.checkBind("0.0.0.0", 3000).reason,
    "address 0.0.0.0 not in allowed bind addresses (127.0.0.1, ::1)",
  );
  assert.equal(
    p.checkBind("127.0.0.1", 3000).reason,
    'bind to 127.0.0.1:3000 is allowed by bind_ports "3000-9999" and bind_addrs "127.0.0.1"',
  );
});

Deno.test("explain: literal IPs, bracketed IPv6, names, normalisation and bad input", () => {
  const p = Policy.defaults();
  assert.equal(
    p.explain("10.0.0.5:22"),
    'denied: 10.0.0.5:22 is denied by rule "10.0.0.0/8" (private-use, RFC 1918)',
  );
  assert.equal(p.explain("[::1]:80"), 'denied: [::1]:80 is denied by rule "::1/128" (loopback)');
  assert.equal(
    p.explain("example.com:443"),
    'allowed: example.com:443 is allowed by rule "*"\n' +
      "every address example.com resolves to is checked too: it must not match a deny rule",
  );
  assert.equal(
    p.explain("0x7f000001:80"),
    "0x7f000001 is read as 127.0.0.1\n" +
      'denied: 127.0.0.1:80 is denied by rule "127.0.0.0/8" (loopback)',
  );
  assert.equal(
    p.explain("[::ffff:127.0.0.1]:80"),
    "[::ffff:127.0.0.1] is read as 127.0.0.1\n" +
      'denied: 127.0.0.1:80 is denied by rule "127.0.0.0/8" (loopback)',
  );
  assert.equal(
    p.explain("localhost:8080"),
    'denied: localhost:8080 is denied by rule "localhost" (loopback name, RFC 6761)',
  );
  const q = policyOf(DENY_ALL("*.example.com:443"));
  assert.equal(
    q.explain("API.example.com:443"),
    "API.example.com is read as api.example.com\n" +
      'allowed: api.example.com:443 is allowed by rule "*.example.com:443"\n' +
      "every address api.example.com resolves to is checked too: it must not match a deny rule," +
      " and an address in a default-deny range needs an allow IP/CIDR rule",
  );
  assert.equal(
    q.explain("example.com:443"),
    'denied: example.com:443 is denied: "*" in deny (deny-all mode) and no allow rule matches',
  );
  assert.equal(
    Policy.allowAll().explain("127.0.0.1:22"),
    "allowed: 127.0.0.1:22 is allowed: policy checks are disabled (allow-all)",
  );
  assert.equal(p.explain("a b:80"), 'denied: "a b" contains whitespace or control characters');
  for (const bad of ["::1:80", "example.com:99999", "[::1", "[::1]80", "x:y", "", " "]) {
    assert.match(p.explain(bad), /^invalid: expected HOST:PORT or HOST/, bad);
  }
});

Deno.test("explain: a bare host explains a resolve lookup", () => {
  const p = Policy.defaults();
  assert.equal(
    p.explain("example.com"),
    'lookup allowed: lookup of example.com is allowed by rule "*"\n' +
      "an address example.com resolves to is returned only if no deny IP/CIDR rule without a" +
      " port matches it",
  );
  assert.equal(
    p.explain("LOCALHOST."),
    "LOCALHOST. is read as localhost\n" +
      'lookup denied: lookup of localhost is denied by rule "localhost" (loopback name, RFC 6761)',
  );
  assert.equal(
    p.explain("[::1]"),
    'lookup denied: lookup of ::1 is denied by rule "::1/128" (loopback)',
  );
  assert.equal(
    p.explain("2130706433"),
    "2130706433 is read as 127.0.0.1\n" +
      'lookup denied: lookup of 127.0.0.1 is denied by rule "127.0.0.0/8" (loopback)',
  );
  assert.equal(
    policyOf(DENY_ALL("*.example.com:443")).explain("api.example.com"),
    'lookup allowed: lookup of api.example.com is allowed by rule "*.example.com:443"\n' +
      "an address api.example.com resolves to is returned only if no deny IP/CIDR rule without a" +
      " port matches it, and an address in a default-deny range needs an allow IP/CIDR rule",
  );
  assert.equal(
    policyOf(DENY("evil.com:22")).explain("evil.com"),
    'lookup allowed: lookup of evil.com is allowed by rule "*"\n' +
      "an address evil.com resolves to is returned only if no deny IP/CIDR rule without a" +
      " port matches it",
  );
  assert.equal(
    Policy.allowAll().explain("localhost"),
    "lookup allowed: lookup of localhost is allowed: policy checks are disabled (allow-all)",
  );
  assert.equal(p.explain("a@b"), "lookup denied: \"a@b\" contains '@'");
});

Deno.test("DEFAULT_DENY covers the required ranges and names", () => {
  for (
    const cidr of [
      "0.0.0.0/8",
      "10.0.0.0/8",
      "100.64.0.0/10",
      "127.0.0.0/8",
      "169.254.0.0/16",
      "172.16.0.0/12",
      "192.0.0.0/24",
      "192.0.2.0/24",
      "192.88.99.0/24",
      "192.168.0.0/16",
      "198.18.0.0/15",
      "198.51.100.0/24",
      "203.0.113.0/24",
      "224.0.0.0/4",
      "240.0.0.0/4",
      "::/128",
      "::1/128",
      "64:ff9b:1::/48",
      "100::/64",
      "2001::/23",
      "2001:db8::/32",
      "fc00::/7",
      "fe80::/10",
      "fec0::/10",
      "ff00::/8",
      "3fff::/20",
      "5f00::/16",
    ]
  ) {
    assert.ok(DEFAULT_DENY.includes(cidr), cidr);
  }
  assert.ok(DEFAULT_DENY_NAMES.includes("localhost"));
  assert.ok(Object.isFrozen(DEFAULT_DENY));
});

Deno.test("defaults and allowAll expose limits", () => {
  const d = Policy.defaults();
  assert.equal(d.maxConnections, 50);
  assert.equal(d.maxBandwidthMbps, 10);
  assert.equal(d.connectionTimeoutMs, 30_000);
  assert.deepEqual(d.config.deny, ["@default"]);
  assert.deepEqual(d.config.allow, ["*"]);
  assert.equal(d.config.bindPorts, "3000-9999");
  assert.deepEqual(d.config.bindAddrs, ["127.0.0.1", "::1"]);
  assert.ok(Object.isFrozen(d.config) && Object.isFrozen(d.config.deny));
  const a = Policy.allowAll();
  assert.equal(a.maxConnections, 10_000);
  assert.equal(a.maxBandwidthMbps, undefined);
  assert.equal(a.connectionTimeoutMs, 30_000);
  const c = Policy.fromConfig({ maxBandwidthMbps: 0, maxConnections: 5, connectionTimeoutSecs: 2 });
  assert.equal(c.maxBandwidthMbps, undefined);
  assert.equal(c.maxConnections, 5);
  assert.equal(c.connectionTimeoutMs, 2000);
  assert.equal(Policy.fromConfig({ maxBandwidthMbps: undefined }).maxBandwidthMbps, undefined);
});
