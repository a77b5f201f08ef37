/**
 * Property-based tests of the policy engine (npm `fast-check`): the checks of one policy agree
 * with each other — connect (`checkTarget`), resolved address (`checkResolved`), lookup
 * (`checkLookup`), lookup answer (`checkLookupAnswer`) and `explain` — and no spelling of an
 * address or name is decided differently from its canonical form (DESIGN.md §5).
 *
 * Addresses are biased toward the special-purpose ranges and the IPv6 forms that embed an IPv4
 * address. The seed is fixed so a failure reproduces; fast-check prints the shrunk counterexample.
 *
 * @module
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { formatHostPort } from "../protocol/host_port.ts";
import { DEFAULT_DENY_RANGES, parseTarget, Policy, type Target, type Verdict } from "./mod.ts";

const RUNS = { numRuns: 1000, seed: 0x5eed_2024 };

// ── Policies under test ──

/** Each policy, with whether its rules carry ports (then lookups and connects may differ). */
const POLICIES: ReadonlyArray<{ name: string; policy: Policy; ports: boolean }> = [
  { name: "defaults", policy: Policy.defaults(), ports: false },
  { name: "allowAll", policy: Policy.allowAll(), ports: false },
  {
    name: "allow-list",
    policy: Policy.fromConfig({
      allow: ["example.com", "*.example.org:443", "8.8.8.0/24", "10.1.0.0/16:5432", "*:443"],
    }),
    ports: true,
  },
  {
    name: "allow-list without ports",
    policy: Policy.fromConfig({
      deny: ["evil.example", "2002::/16"],
      allow: ["example.com", "api.example.org", "8.8.8.0/24", "10.1.0.0/16", "fd00::/8"],
    }),
    ports: false,
  },
  {
    name: "deny-all",
    policy: Policy.fromConfig({
      deny: ["*", "@default"],
      allow: ["api.example.com:443", "localhost", "10.0.0.0/8:22", "2001:db8::/32", "*:8443"],
    }),
    ports: true,
  },
  {
    name: "port rules",
    policy: Policy.fromConfig({
      deny: [
        "@default",
        "*:25",
        "10.0.0.0/8:22",
        "[fd00::/8]:443",
        "evil.example:1-65535",
        "*.example.org:80",
        "1.2.3.0/24:80-90",
        "8.8.0.0/16",
      ],
      allow: ["*"],
    }),
    ports: true,
  },
  {
    name: "permissive without @default",
    policy: Policy.fromConfig({ deny: ["127.0.0.0/8", "localhost:8080"], allow: ["*"] }),
    ports: true,
  },
];

/** Denies exactly the special-purpose ranges, so a verdict says if (and where) an address is in one. */
const SPECIAL = Policy.fromConfig({ deny: ["@default"], allow: ["*"] });

// ── Addresses as bytes, with an independent canonical formatter ──

interface Ip {
  readonly family: 4 | 6;
  readonly bytes: readonly number[];
}

function v4Text(b: readonly number[]): string {
  return b.join(".");
}

function groups(b: readonly number[]): number[] {
  return Array.from({ length: 8 }, (_, i) => ((b[2 * i] ?? 0) << 8) | (b[2 * i + 1] ?? 0));
}

/** RFC 5952 text: lower-case hex, no leading zeros, the first longest run of ≥ 2 zero groups as `::`. */
function v6Text(b: readonly number[]): string {
  const g = groups(b);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

const isMapped = (ip: Ip): boolean =>
  ip.family === 6 && ip.bytes.slice(0, 10).every((x) => x === 0) && ip.bytes[10] === 0xff &&
  ip.bytes[11] === 0xff;

/** The canonical {@linkcode Target} of an address (an IPv4-mapped address is IPv4). */
function canonical(ip: Ip): Target & { kind: "ip" } {
  if (isMapped(ip)) return { kind: "ip", ip: v4Text(ip.bytes.slice(12)), family: 4 };
  return ip.family === 4
    ? { kind: "ip", ip: v4Text(ip.bytes), family: 4 }
    : { kind: "ip", ip: v6Text(ip.bytes), family: 6 };
}

function parseCidrText(text: string): { family: 4 | 6; bytes: number[]; prefix: number } {
  const [addr = "", len = ""] = text.split("/");
  if (!addr.includes(":")) {
    return { family: 4, bytes: addr.split(".").map(Number), prefix: Number(len) };
  }
  const [head = "", tail = ""] = addr.split("::");
  const h = head === "" ? [] : head.split(":").map((x) => parseInt(x, 16));
  const t = tail === "" ? [] : tail.split(":").map((x) => parseInt(x, 16));
  const g = [...h, ...Array(8 - h.length - t.length).fill(0), ...t];
  return { family: 6, bytes: g.flatMap((x) => [x >> 8, x & 0xff]), prefix: Number(len) };
}

/** An address inside `cidr`: its prefix bits, then random bits. */
function inCidr(cidr: string): fc.Arbitrary<Ip> {
  const net = parseCidrText(cidr);
  return fc.array(fc.integer({ min: 0, max: 255 }), {
    minLength: net.bytes.length,
    maxLength: net.bytes.length,
  }).map((rand) => ({
    family: net.family,
    bytes: net.bytes.map((b, i) => {
      const keep = Math.max(0, Math.min(8, net.prefix - 8 * i));
      const mask = (0xff << (8 - keep)) & 0xff;
      return (b & mask) | ((rand[i] ?? 0) & ~mask & 0xff);
    }),
  }));
}

const byte = fc.integer({ min: 0, max: 255 });
const bytes = (n: number): fc.Arbitrary<number[]> => fc.array(byte, { minLength: n, maxLength: n });

const V4_RANGES = DEFAULT_DENY_RANGES.map((r) => r.rule).filter((r) => !r.includes(":"));
const V6_RANGES = DEFAULT_DENY_RANGES.map((r) => r.rule).filter((r) => r.includes(":"));

/** IPv4, biased: special ranges (loopback, private, link-local, CGNAT, multicast…), rule ranges. */
const ipv4: fc.Arbitrary<Ip> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...V4_RANGES).chain(inCidr) },
  {
    weight: 2,
    arbitrary: fc.constantFrom("8.8.0.0/16", "1.2.3.0/24", "10.1.0.0/16").chain(inCidr),
  },
  { weight: 3, arbitrary: bytes(4).map((b): Ip => ({ family: 4, bytes: b })) },
);

const embed = (prefix: number[], v4: Ip, suffix: number[] = []): Ip => ({
  family: 6,
  bytes: [...prefix, ...v4.bytes, ...suffix],
});

/** IPv6, biased: special ranges and every form that embeds an IPv4 address. */
const ipv6: fc.Arbitrary<Ip> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...V6_RANGES, "2001:db8::/32").chain(inCidr) },
  // IPv4-mapped ::ffff:a.b.c.d (normalised to IPv4) and IPv4-compatible ::a.b.c.d
  { weight: 2, arbitrary: ipv4.map((v) => embed([...Array(10).fill(0), 0xff, 0xff], v)) },
  { weight: 1, arbitrary: ipv4.map((v) => embed(Array(12).fill(0), v)) },
  // NAT64 64:ff9b::/96 and local-use 64:ff9b:1::/48 (any layout)
  { weight: 2, arbitrary: ipv4.map((v) => embed([0, 0x64, 0xff, 0x9b, ...Array(8).fill(0)], v)) },
  {
    weight: 1,
    arbitrary: fc.tuple(ipv4, bytes(6)).map(([v, r]) =>
      embed([0, 0x64, 0xff, 0x9b, 0, 1, ...r], v)
    ),
  },
  // 6to4 2002:V4::/48
  { weight: 2, arbitrary: fc.tuple(ipv4, bytes(10)).map(([v, r]) => embed([0x20, 0x02], v, r)) },
  // Teredo 2001:0:SERVER:flags:port:~CLIENT
  {
    weight: 2,
    arbitrary: fc.tuple(ipv4, ipv4, bytes(4)).map(([server, client, r]) =>
      embed([0x20, 0x01, 0, 0], server, [...r, ...client.bytes.map((x) => x ^ 0xff)])
    ),
  },
  // ISATAP interface id ::0:5efe:V4 under a random /64
  {
    weight: 1,
    arbitrary: fc.tuple(bytes(8), ipv4).map(([p, v]) => embed([...p, 0, 0, 0x5e, 0xfe], v)),
  },
  { weight: 2, arbitrary: bytes(16).map((b): Ip => ({ family: 6, bytes: b })) },
);

const anyIp: fc.Arbitrary<Ip> = fc.oneof({ weight: 3, arbitrary: ipv4 }, {
  weight: 2,
  arbitrary: ipv6,
});

const port = fc.oneof(
  fc.constantFrom(1, 22, 25, 53, 80, 85, 443, 5432, 8080, 8443, 65535),
  fc.integer({ min: 1, max: 65535 }),
);

const NAMES = [
  "localhost",
  "foo.localhost",
  "printer.local",
  "api.internal",
  "router.home.arpa",
  "example.com",
  "api.example.com",
  "example.org",
  "www.example.org",
  "api.example.org",
  "evil.example",
  "a.evil.example",
];
/** Host names: the rule names above and their neighbours, plus random ones. */
const name: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...NAMES),
  fc.tuple(
    fc.array(fc.stringMatching(/^[a-z][a-z0-9]{0,7}$/), { minLength: 1, maxLength: 3 }),
    fc.constantFrom("com", "org", "example", "localhost", "example.com", "example.org", "test"),
  ).map(([labels, tld]) => [...labels, tld].join(".")),
);

// ── Spellings ──

type Radix = 8 | 10 | 16;
const radix = fc.constantFrom<Radix>(8, 10, 16);

/** One part of a numeric IPv4 spelling in `r`: `0177`, `127`, `0x7f` (any hex case). */
function numberText(n: number, r: Radix, upper: boolean): string {
  if (r === 10) return String(n);
  if (r === 8) return `0${n.toString(8)}`;
  const hex = n.toString(16);
  return upper ? `0X${hex.toUpperCase()}` : `0x${hex}`;
}

/** Alternative IPv4 spellings the WHATWG host parser (and `inet_aton`) accepts. */
const ipv4Spelling: fc.Arbitrary<{ ip: Ip; text: string }> = fc.tuple(
  ipv4,
  fc.integer({ min: 0, max: 8 }),
  fc.array(radix, { minLength: 4, maxLength: 4 }),
  fc.boolean(),
).map(([ip, form, r, upper]) => {
  const [a = 0, b = 0, c = 0, d = 0] = ip.bytes;
  const n = (((a << 24) >>> 0) + (b << 16) + (c << 8) + d) >>> 0;
  const t = (x: number, i: number): string => numberText(x, r[i] ?? 10, upper);
  const texts = [
    String(n), // 2130706433
    numberText(n, 16, upper), // 0x7f000001
    numberText(n, 8, false), // 017700000001
    [a, b, c, d].map(t).join("."), // 0177.0x0.0.1
    `${t(a, 0)}.${t(b, 1)}.${t((c << 8) | d, 2)}`, // 127.0.1
    `${t(a, 0)}.${t((b << 16) | (c << 8) | d, 1)}`, // 127.1
    `${v4Text(ip.bytes)}.`, // trailing dot
    `::${upper ? "FFFF" : "ffff"}:${v4Text(ip.bytes)}`, // IPv4-mapped
    `[::ffff:${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}]`, // mapped, hex, brackets
  ];
  return { ip, text: texts[form] ?? String(n) };
});

/** Alternative IPv6 spellings: expanded, other `::` placement, upper case, brackets, zone, dotted tail. */
const ipv6Spelling: fc.Arbitrary<{ ip: Ip; text: string }> = fc.tuple(
  ipv6,
  fc.integer({ min: 0, max: 5 }),
  fc.boolean(),
  fc.boolean(),
  fc.nat(),
).map(([ip, form, upper, bracket, pick]) => {
  const g = groups(ip.bytes);
  let text: string;
  if (form === 0) text = g.map((x) => x.toString(16).padStart(4, "0")).join(":");
  else if (form === 1) text = g.map((x) => x.toString(16)).join(":");
  else if (form === 2) {
    // compress some run of zero groups (not necessarily the longest), if any
    const zeros = g.flatMap((x, i) => (x === 0 ? [i] : []));
    const start = zeros.length === 0 ? -1 : (zeros[pick % zeros.length] ?? -1);
    let end = start;
    while (end >= 0 && end < 8 && g[end] === 0 && end - start < 1 + (pick % 3)) end++;
    const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(":");
    text = start < 0 ? hex(g) : `${hex(g.slice(0, start))}::${hex(g.slice(end))}`;
  } else if (form === 3) {
    text = `${g.slice(0, 6).map((x) => x.toString(16)).join(":")}:${v4Text(ip.bytes.slice(12))}`;
  } else if (form === 4) text = `${v6Text(ip.bytes)}%eth${pick % 10}`;
  else text = v6Text(ip.bytes);
  if (upper) text = text.toUpperCase();
  return { ip, text: bracket ? `[${text}]` : text };
});

const FULL_WIDTH_OFFSET = 0xff01 - 0x21;
/** Alternative spellings of a name: case, a trailing dot, full-width letters, `。` as the dot. */
const nameSpelling: fc.Arbitrary<{ name: string; text: string }> = fc.tuple(
  name,
  fc.array(fc.boolean(), { minLength: 64, maxLength: 64 }),
  fc.boolean(),
  fc.boolean(),
  fc.boolean(),
).map(([n, caps, dot, wide, ideo]) => {
  let text = [...n].map((ch, i) => (caps[i % 64] ? ch.toUpperCase() : ch)).join("");
  if (wide) {
    text = [...text].map((ch) =>
      /[A-Za-z0-9]/.test(ch) ? String.fromCharCode(ch.charCodeAt(0) + FULL_WIDTH_OFFSET) : ch
    ).join("");
  }
  if (ideo) text = text.replaceAll(".", "\u3002");
  if (dot) text += ideo ? "\u3002" : ".";
  return { name: n, text };
});

// ── Helpers ──

const brief = (v: Verdict): [boolean, string] => [v.allowed, v.rule];

function target(text: string): Target {
  const t = parseTarget(text);
  if (t.kind === "invalid") throw new Error(`${JSON.stringify(text)} ${t.reason}`);
  return t;
}

/**
 * What a resolved address (or a lookup answer) must get, from the name's verdict and the address's
 * own verdict as a literal target: the name is re-checked first; then a deny rule or a special
 * range that refuses the literal refuses the resolved address too; an IP/CIDR rule (or `*` in
 * permissive mode) that admits the literal admits it too; otherwise the name's allow rule stands
 * in for `*:PORTS`, except for an address in a special range.
 */
function expectedAddressPart(
  nameVerdict: Verdict,
  literal: Verdict,
  special: Verdict,
): [boolean, string] {
  if (!nameVerdict.allowed) return brief(nameVerdict);
  if (literal.rule === "allow-all") return brief(literal);
  const noRule = literal.rule === "no-allow-rule" || literal.rule === "default-deny";
  if (!literal.allowed && !noRule) return brief(literal);
  if (literal.allowed && !literal.rule.startsWith("*:")) return brief(literal);
  if (!special.allowed) return brief(special);
  return [true, nameVerdict.rule];
}

/** `HOST:PORT` for `explain`, an IPv6 host in brackets. */
function explainArg(host: string, p: number): string {
  return `${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${p}`;
}

/** `explain` of a spelling: a "read as" line (unless it is canonical), then the canonical's lines. */
function assertSameExplanation(policy: Policy, text: string, canon: string, p: number): void {
  const arg = explainArg(text, p);
  const host = arg.slice(0, arg.lastIndexOf(":"));
  const bare = host.startsWith("[") ? host.slice(1, -1) : host;
  const readAs = bare === canon ? [] : [`${host} is read as ${canon}`];
  assert.deepEqual(
    policy.explain(arg).split("\n"),
    [...readAs, ...policy.explain(explainArg(canon, p)).split("\n")],
    arg,
  );
}

// ── Properties ──

Deno.test("property: connect, explain and lookup agree on every address", () => {
  fc.assert(
    fc.property(anyIp, port, (ip, p) => {
      const t = canonical(ip);
      for (const { name: label, policy, ports } of POLICIES) {
        const msg = `${label}: ${t.ip} port ${p}`;
        const connect = policy.checkTarget(t, p);
        const explained = policy.explain(formatHostPort(t.ip, p)).split("\n");
        assert.deepEqual(
          explained,
          [`${connect.allowed ? "allowed" : "denied"}: ${connect.reason}`],
          msg,
        );
        const lookup = policy.checkLookup(t);
        const bare = t.family === 6 ? `[${t.ip}]` : t.ip;
        assert.deepEqual(
          policy.explain(bare).split("\n"),
          [`lookup ${lookup.allowed ? "allowed" : "denied"}: ${lookup.reason}`],
          msg,
        );
        // allowed on some port ⇒ the lookup is allowed; where no rule has a port they are equal
        if (connect.allowed) assert.ok(lookup.allowed, `${msg}: ${lookup.reason}`);
        if (!ports) assert.deepEqual(brief(lookup), brief(connect), msg);
        // a literal name: the answer is the address's own lookup verdict, the resolved address
        // the address's own connect verdict
        assert.deepEqual(policy.checkLookupAnswer(t.ip, t.ip), lookup, msg);
        assert.deepEqual(policy.checkResolved(bare, t.ip, p), connect, msg);
      }
    }),
    RUNS,
  );
});

Deno.test("property: a resolved address is decided like the literal address, its name's rule standing in for *:PORTS", () => {
  fc.assert(
    fc.property(name, anyIp, port, (n, ip, p) => {
      const t = canonical(ip);
      for (const { name: label, policy, ports } of POLICIES) {
        const msg = `${label}: ${n} → ${t.ip} port ${p}`;
        const nameVerdict = policy.checkTarget({ kind: "name", name: n }, p);
        const literal = policy.checkTarget(t, p);
        const resolved = policy.checkResolved(n, t.ip, p);
        assert.deepEqual(
          brief(resolved),
          expectedAddressPart(nameVerdict, literal, SPECIAL.checkTarget(t, p)),
          `${msg}: ${resolved.reason}`,
        );
        // permissive mode: for an allowed name, exactly the literal's verdict
        const permissive = policy.config.allow.includes("*") && !policy.config.deny.includes("*");
        if (permissive && nameVerdict.allowed) {
          assert.deepEqual(brief(resolved), brief(literal), msg);
        }
        // the same, port-agnostic, for lookup answers
        const lookupName = policy.checkLookup({ kind: "name", name: n });
        const answer = policy.checkLookupAnswer(n, t.ip);
        assert.deepEqual(
          brief(answer),
          expectedAddressPart(lookupName, policy.checkLookup(t), SPECIAL.checkLookup(t)),
          `${msg}: ${answer.reason}`,
        );
        if (!ports) assert.deepEqual(brief(answer), brief(resolved), msg);
        if (resolved.allowed) assert.ok(answer.allowed, `${msg}: ${answer.reason}`);
      }
    }),
    RUNS,
  );
});

Deno.test("property: names — connect, explain and lookup agree", () => {
  fc.assert(
    fc.property(name, port, (n, p) => {
      for (const { name: label, policy, ports } of POLICIES) {
        const msg = `${label}: ${n} port ${p}`;
        const connect = policy.checkTarget({ kind: "name", name: n }, p);
        const lookup = policy.checkLookup({ kind: "name", name: n });
        const explained = policy.explain(`${n}:${p}`).split("\n");
        assert.equal(explained[0], `${connect.allowed ? "allowed" : "denied"}: ${connect.reason}`);
        assert.equal(explained.length, connect.allowed && label !== "allowAll" ? 2 : 1, msg);
        assert.equal(
          policy.explain(n).split("\n")[0],
          `lookup ${lookup.allowed ? "allowed" : "denied"}: ${lookup.reason}`,
          msg,
        );
        if (connect.allowed) assert.ok(lookup.allowed, `${msg}: ${lookup.reason}`);
        if (!ports) assert.deepEqual(brief(lookup), brief(connect), msg);
      }
    }),
    RUNS,
  );
});

/** Every check of `policy` treats the address spelling `text` exactly as its canonical `t`. */
function assertAddressSpelling(text: string, t: Target & { kind: "ip" }, p: number): void {
  assert.deepEqual(parseTarget(text), t, text);
  for (const { name: label, policy } of POLICIES) {
    const msg = `${label}: ${text} (${t.ip}) port ${p}`;
    const same = (spelled: Verdict, canon: Verdict): void => assert.deepEqual(spelled, canon, msg);
    same(policy.checkTarget(target(text), p), policy.checkTarget(t, p));
    same(policy.checkTarget({ kind: "name", name: text }, p), policy.checkTarget(t, p));
    same(policy.checkLookup(target(text)), policy.checkLookup(t));
    same(
      policy.checkResolved("example.com", text, p),
      policy.checkResolved("example.com", t.ip, p),
    );
    same(
      policy.checkLookupAnswer("example.com", text),
      policy.checkLookupAnswer("example.com", t.ip),
    );
    same(policy.checkBind(text, p), policy.checkBind(t.ip, p));
    same(policy.checkBind(text, 3000), policy.checkBind(t.ip, 3000));
    assertSameExplanation(policy, text, t.ip, p);
  }
}

Deno.test("property: an IPv4 spelling is decided like its dotted quad", () => {
  fc.assert(
    fc.property(
      ipv4Spelling,
      port,
      ({ ip, text }, p) => assertAddressSpelling(text, canonical(ip), p),
    ),
    RUNS,
  );
});

Deno.test("property: an IPv6 spelling is decided like its RFC 5952 form", () => {
  fc.assert(
    fc.property(
      ipv6Spelling,
      port,
      ({ ip, text }, p) => assertAddressSpelling(text, canonical(ip), p),
    ),
    RUNS,
  );
});

Deno.test("property: a name spelling is decided like its canonical name", () => {
  fc.assert(
    fc.property(nameSpelling, anyIp, port, ({ name: n, text }, ip, p) => {
      const t: Target = { kind: "name", name: n };
      assert.deepEqual(parseTarget(text), t, text);
      const addr = canonical(ip).ip;
      for (const { name: label, policy } of POLICIES) {
        const msg = `${label}: ${text} (${n}) port ${p}`;
        assert.deepEqual(policy.checkTarget(target(text), p), policy.checkTarget(t, p), msg);
        assert.deepEqual(policy.checkLookup(target(text)), policy.checkLookup(t), msg);
        assert.deepEqual(
          policy.checkResolved(text, addr, p),
          policy.checkResolved(n, addr, p),
          msg,
        );
        assert.deepEqual(
          policy.checkLookupAnswer(text, addr),
          policy.checkLookupAnswer(n, addr),
          msg,
        );
        assertSameExplanation(policy, text, n, p);
      }
    }),
    RUNS,
  );
});
