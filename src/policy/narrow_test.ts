// Policy.narrow: a ticket's allow list narrows a policy and can never widen it.
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseTarget, Policy, PolicyError, type Verdict } from "./mod.ts";

const OPEN = Policy.fromConfig({ deny: [], allow: ["*"], maxBandwidthMbps: 0 }, "<open>");

function at(policy: Policy, host: string, port: number): Verdict {
  const target = parseTarget(host);
  assert.ok(target.kind !== "invalid", host);
  return policy.checkTarget(target, port);
}

Deno.test("narrow: an IP rule admits that address in every spelling, on its port only", () => {
  const p = OPEN.narrow({ label: "sub alice", allow: ["127.0.0.1:5432"] });
  for (const same of ["127.0.0.1", "127.1", "0x7f000001", "2130706433", "::ffff:127.0.0.1"]) {
    assert.equal(at(p, same, 5432).allowed, true, same);
    const other = at(p, same, 5433);
    assert.equal(other.allowed, false, same);
    assert.equal(other.rule, "ticket");
    assert.equal(other.reason, "127.0.0.1:5433 is not in the ticket's allow list (sub alice)");
  }
  for (const host of ["localhost", "::1", "127.0.0.2", "0.0.0.0", "::", "example.com"]) {
    const v = at(p, host, 5432);
    assert.equal(v.allowed, false, host);
    assert.equal(v.rule, "ticket", host);
    assert.match(v.reason, /is not in the ticket's allow list \(sub alice\)$/);
  }
  // A name that resolves to the allowed address is still a name: the IP rule does not admit it.
  assert.equal(p.checkResolved("localhost", "127.0.0.1", 5432).allowed, false);
});

Deno.test("narrow: a name rule admits dials by that name; its addresses ride on the name", () => {
  const base = Policy.fromConfig({ deny: [], allow: ["*"] });
  const p = base.narrow({ label: "sub bob", allow: ["db.example.com:5432"] });
  assert.equal(at(p, "DB.Example.COM.", 5432).allowed, true);
  assert.equal(at(p, "replica.db.example.com", 5432).allowed, true); // domain rule: subdomains
  for (const [host, port] of [["db.example.com", 5433], ["example.com", 5432]] as const) {
    assert.equal(at(p, host, port).rule, "ticket");
  }
  assert.equal(at(p, "db.example.com.evil.net", 5432).allowed, false);
  assert.equal(p.checkResolved("db.example.com", "93.184.216.34", 5432).allowed, true);
  // By IP, even the address the name resolves to, needs an IP rule in the ticket.
  const byIp = at(p, "93.184.216.34", 5432);
  assert.equal(byIp.reason, "93.184.216.34:5432 is not in the ticket's allow list (sub bob)");
  // Another name that resolves to the same address: refused by its name.
  assert.equal(
    p.checkResolved("other.example.net", "93.184.216.34", 5432).reason,
    "other.example.net:5432 is not in the ticket's allow list (sub bob)",
  );
  // Lookups: the ticket's names on any port; answers ride on the name.
  assert.equal(p.checkLookup({ kind: "name", name: "db.example.com" }).allowed, true);
  assert.equal(
    p.checkLookup({ kind: "name", name: "example.org" }).reason,
    "lookup of example.org is not in the ticket's allow list (sub bob)",
  );
  assert.equal(p.checkLookupAnswer("db.example.com", "93.184.216.34").allowed, true);
});

Deno.test("narrow: never widens — whatever the policy denies stays denied, with its reason", () => {
  const base = Policy.defaults(); // @default denied
  const p = base.narrow({ label: "sub x", allow: ["*", "10.0.0.0/8:5432", "localhost"] });
  const v = at(p, "10.1.2.3", 5432);
  assert.deepEqual(v, at(base, "10.1.2.3", 5432));
  assert.equal(v.rule, "10.0.0.0/8");
  assert.equal(at(p, "localhost", 80).allowed, false);
  assert.equal(p.checkResolved("db.internal.example", "10.0.0.5", 5432).allowed, false);
  // Special ranges are the policy's to decide: where it allows 10/8, a ticket's name rule
  // reaches the private address its name resolves to.
  const corp = Policy.fromConfig({ deny: ["*"], allow: ["db.corp", "10.0.0.0/8:5432"] });
  const t = corp.narrow({ label: "sub y", allow: ["db.corp:5432"] });
  assert.equal(t.checkResolved("db.corp", "10.0.0.5", 5432).allowed, true);
  assert.equal(t.checkResolved("db.corp", "10.0.0.5", 5433).allowed, false);
});

Deno.test("narrow: allow * lifts the rule narrowing, [] refuses everything", () => {
  const star = OPEN.narrow({ label: "sub s", allow: ["*"] });
  assert.equal(at(star, "8.8.8.8", 53).allowed, true);
  const ports = OPEN.narrow({ label: "sub s", allow: ["*:443"] });
  assert.equal(at(ports, "example.com", 443).allowed, true);
  assert.equal(at(ports, "example.com", 80).allowed, false);
  const none = OPEN.narrow({ label: "sub n", allow: [] });
  assert.equal(at(none, "8.8.8.8", 53).rule, "ticket");
  const limitsOnly = OPEN.narrow({ label: "sub l", maxConnections: 3 });
  assert.equal(at(limitsOnly, "8.8.8.8", 53).allowed, true);
});

Deno.test("narrow: bind needs an IP rule covering the address and port", () => {
  const base = Policy.defaults(); // bind 127.0.0.1 / ::1, ports 3000-9999
  const p = base.narrow({ label: "sub b", allow: ["127.0.0.1:4000-4001"] });
  assert.equal(p.checkBind("127.0.0.1", 4000).allowed, true);
  assert.equal(
    p.checkBind("127.0.0.1", 4002).reason,
    "bind to 127.0.0.1:4002 is not in the ticket's allow list (sub b)",
  );
  assert.equal(p.checkBind("127.0.0.1", 80).rule, "bind_ports"); // the policy's refusal first
  assert.equal(p.checkBind("::1", 4000).rule, "ticket");
});

Deno.test("narrow: max_connections is the smaller; narrowings stack; no file form", () => {
  const base = Policy.defaults();
  assert.equal(base.narrow({ label: "a", maxConnections: 5 }).maxConnections, 5);
  assert.equal(base.narrow({ label: "a", maxConnections: 500 }).maxConnections, 50);
  const twice = OPEN.narrow({ label: "sub one", allow: ["127.0.0.1", "127.0.0.2"] })
    .narrow({ label: "sub two", allow: ["127.0.0.2", "127.0.0.3"] });
  assert.equal(at(twice, "127.0.0.2", 1).allowed, true);
  assert.match(at(twice, "127.0.0.1", 1).reason, /\(sub two\)$/);
  assert.match(at(twice, "127.0.0.3", 1).reason, /\(sub one\)$/);
  assert.throws(() => twice.toToml(), /narrowed/);
  assert.match(twice.explain("127.0.0.1:1"), /denied: .*\(sub two\)/);
});

Deno.test("narrow: malformed rules and limits are PolicyErrors naming the ticket", () => {
  const cases: [unknown[], RegExp][] = [
    [
      ["db:99999"],
      /^Cannot load policy "ticket \(sub z\)": allow\[0\] = "db:99999" is not a valid rule \(port 99999 > 65535\)$/,
    ],
    [["ok.example", "@default"], /allow\[1\] = "@default" is not a valid rule/],
    [[42], /allow\[0\] = 42 is not a rule \(a string\)/],
    [["10.0.0.0/33"], /prefix length 33 > 32/],
  ];
  for (const [allow, message] of cases) {
    assert.throws(
      () => OPEN.narrow({ label: "sub z", allow: allow as string[] }),
      (e: unknown) => e instanceof PolicyError && message.test(e.message),
    );
  }
  for (const bad of [0, 1.5, -1, 2e6, Number.NaN]) {
    assert.throws(() => OPEN.narrow({ label: "sub z", maxConnections: bad }), PolicyError);
  }
});

Deno.test("narrow (property): allowed by the narrowed policy ⇒ allowed by the policy AND the list alone", () => {
  const hosts = [
    "127.0.0.1",
    "127.1",
    "10.0.0.1",
    "::1",
    "::ffff:10.0.0.1",
    "64:ff9b::a00:1",
    "8.8.8.8",
    "example.com",
    "a.example.com",
    "localhost",
  ];
  const rules = [
    "127.0.0.1:5432",
    "10.0.0.0/8",
    "example.com:443",
    "*.example.com",
    "*:53",
    "[::1]:80",
    "8.8.8.8:1-100",
  ];
  const bases = [
    Policy.defaults(),
    OPEN,
    Policy.allowAll(),
    Policy.fromConfig({ deny: ["*"], allow: ["example.com", "10.0.0.0/8"] }),
  ];
  fc.assert(fc.property(
    fc.constantFrom(...bases),
    fc.subarray(rules),
    fc.constantFrom(...hosts),
    fc.constantFrom(22, 53, 80, 443, 5432),
    (base, allow, host, port) => {
      const narrowed = base.narrow({ label: "sub p", allow });
      const alone = Policy.allowAll().narrow({ label: "sub p", allow });
      const v = at(narrowed, host, port);
      assert.equal(v.allowed, at(base, host, port).allowed && at(alone, host, port).allowed);
      const answer = narrowed.checkResolved("example.com", parseAddr(host), port);
      if (answer.allowed) {
        assert.equal(base.checkResolved("example.com", parseAddr(host), port).allowed, true);
      }
    },
  ));
});

/** A literal address for a host in the table (names stand for 93.184.216.34). */
function parseAddr(host: string): string {
  const t = parseTarget(host);
  return t.kind === "ip" ? t.ip : "93.184.216.34";
}
