import assert from "node:assert/strict";
import { parseTarget, Policy, type PolicyConfig, PolicyError } from "./mod.ts";

const PREFIX = 'Cannot load policy "policy.toml": ';

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** [TOML text, expected message after the prefix]. */
const BAD_FILES: ReadonlyArray<readonly [string, string]> = [
  // syntax errors name the line
  ["[network]\ndeny = [1,\nallow =", "TOML syntax error at line 3, column 1: invalid value"],
  ['[network]\ndeny = ["a"]\ndeny = ["b"]', "TOML syntax error at line 3, column 1:"],
  // unknown keys
  ["netwrk = 1", 'unknown key "netwrk" (expected only a [network] table)'],
  ["[other]\nx = 1", 'unknown key "other" (expected only a [network] table)'],
  [
    '[network]\ndenny = ["10.0.0.0/8"]',
    'unknown key "network.denny" (expected one of: deny, allow, bind_ports, bind_addrs,' +
    " max_connections, max_bandwidth_mbps, max_server_bandwidth_mbps, connection_timeout_secs)",
  ],
  // wrong types
  ["network = 1", "network = 1 is not valid (expected a [network] table)"],
  [
    '[network]\ndeny = "10.0.0.0/8"',
    'network.deny = "10.0.0.0/8" is not valid (expected an array of strings)',
  ],
  ['[network]\nallow = ["a.com", 5]', "network.allow[1] = 5 is not valid (expected a string)"],
  [
    "[network]\nbind_ports = 3000",
    'network.bind_ports = 3000 is not valid (expected a string like "3000-9999")',
  ],
  [
    '[network]\nbind_addrs = "127.0.0.1"',
    'network.bind_addrs = "127.0.0.1" is not valid (expected an array of strings)',
  ],
  [
    '[network]\nmax_connections = "50"',
    'network.max_connections = "50" is not valid (expected an integer from 1 to 1000000)',
  ],
  [
    "[network]\nmax_connections = -1",
    "network.max_connections = -1 is not valid (expected an integer from 1 to 1000000)",
  ],
  [
    "[network]\nmax_connections = 0",
    "network.max_connections = 0 is not valid (expected an integer from 1 to 1000000)",
  ],
  [
    "[network]\nmax_connections = 2.5",
    "network.max_connections = 2.5 is not valid (expected an integer from 1 to 1000000)",
  ],
  [
    "[network]\nmax_bandwidth_mbps = -3",
    "network.max_bandwidth_mbps = -3 is not valid (expected an integer from 0 (unlimited) to 1000000)",
  ],
  [
    "[network]\nmax_bandwidth_mbps = true",
    "network.max_bandwidth_mbps = true is not valid (expected an integer from 0 (unlimited) to 1000000)",
  ],
  [
    "[network]\nconnection_timeout_secs = 1979-05-27",
    "network.connection_timeout_secs = 1979-05-27 is not valid (expected an integer from 1 to 86400)",
  ],
  [
    "[network]\nconnection_timeout_secs = 100000",
    "network.connection_timeout_secs = 100000 is not valid (expected an integer from 1 to 86400)",
  ],
  // malformed rules
  [
    '[network]\ndeny = ["10.0.0.0/8", "::1", "10.0.0.0/33"]',
    'network.deny[2] = "10.0.0.0/33" is not a valid rule (prefix length 33 > 32)',
  ],
  [
    '[network]\ndeny = ["fd00::/129"]',
    'network.deny[0] = "fd00::/129" is not a valid rule (prefix length 129 > 128)',
  ],
  [
    '[network]\ndeny = ["10.0.0.0/x"]',
    'network.deny[0] = "10.0.0.0/x" is not a valid rule (prefix length "x" is not a number)',
  ],
  [
    '[network]\ndeny = ["300.1.1.1/8"]',
    'network.deny[0] = "300.1.1.1/8" is not a valid rule ("300.1.1.1" is not an IP address)',
  ],
  ['[network]\ndeny = [""]', 'network.deny[0] = "" is not a valid rule (empty)'],
  [
    '[network]\nallow = ["example.com:99999"]',
    'network.allow[0] = "example.com:99999" is not a valid rule (port 99999 > 65535)',
  ],
  [
    '[network]\nallow = ["example.com:9000-8000"]',
    'network.allow[0] = "example.com:9000-8000" is not a valid rule (range 9000-8000 is reversed)',
  ],
  [
    '[network]\nallow = ["example.com:http"]',
    'network.allow[0] = "example.com:http" is not a valid rule ("http" is not a port number)',
  ],
  [
    '[network]\nallow = ["exa mple.com"]',
    'network.allow[0] = "exa mple.com" is not a valid rule ("exa mple.com" contains whitespace or control characters)',
  ],
  [
    '[network]\nallow = ["*.10.0.0.1"]',
    'network.allow[0] = "*.10.0.0.1" is not a valid rule (a wildcard needs a domain name, not an IP)',
  ],
  [
    '[network]\nallow = ["**.example.com"]',
    `network.allow[0] = "**.example.com" is not a valid rule ("**.example.com" contains '*')`,
  ],
  ['[network]\nallow = ["[::1"]', "network.allow[0] = \"[::1\" is not a valid rule (unclosed '[')"],
  [
    '[network]\nallow = ["[10.0.0.1]:80"]',
    'network.allow[0] = "[10.0.0.1]:80" is not a valid rule (brackets are only for IPv6)',
  ],
  [
    '[network]\nallow = ["@default"]',
    'network.allow[0] = "@default" is not a valid rule (@default is only valid in deny)',
  ],
  [
    '[network]\ndeny = ["@defaults"]',
    `network.deny[0] = "@defaults" is not a valid rule ("@defaults" contains '@')`,
  ],
  // malformed port ranges
  [
    '[network]\nbind_ports = "9999-3000"',
    'network.bind_ports = "9999-3000" is not a valid port list (range 9999-3000 is reversed)',
  ],
  [
    '[network]\nbind_ports = "70000"',
    'network.bind_ports = "70000" is not a valid port list (port 70000 > 65535)',
  ],
  [
    '[network]\nbind_ports = "abc"',
    'network.bind_ports = "abc" is not a valid port list ("abc" is not a port number)',
  ],
  [
    '[network]\nbind_ports = "3000,,4000"',
    'network.bind_ports = "3000,,4000" is not a valid port list ("" is not a port number)',
  ],
  [
    '[network]\nbind_ports = "-5"',
    'network.bind_ports = "-5" is not a valid port list ("" is not a port number)',
  ],
  // bad bind_addrs
  [
    '[network]\nbind_addrs = ["localhost"]',
    'network.bind_addrs[0] = "localhost" is not a valid bind address ("localhost" is not an IP address)',
  ],
  [
    '[network]\nbind_addrs = ["127.0.0.1", "10.0.0.0/40"]',
    'network.bind_addrs[1] = "10.0.0.0/40" is not a valid bind address (prefix length 40 > 32)',
  ],
  [
    '[network]\nbind_addrs = ["127.0.0.1:3000"]',
    'network.bind_addrs[0] = "127.0.0.1:3000" is not a valid bind address ("127.0.0.1:3000" is not an IP address (a port is not allowed here))',
  ],
];

Deno.test(`fromToml: ${BAD_FILES.length} bad files each get their documented PolicyError`, () => {
  for (const [text, detail] of BAD_FILES) {
    const error = catchError(() => Policy.fromToml(text, "policy.toml"));
    assert.ok(error instanceof PolicyError, `${JSON.stringify(text)} should throw PolicyError`);
    assert.equal(error.code, "EPOLICY");
    assert.equal(error.name, "PolicyError");
    assert.ok(!error.message.includes("\n"), `one line: ${error.message}`);
    assert.ok(
      error.message.startsWith(PREFIX + detail),
      `${JSON.stringify(text)}\n  got:  ${error.message}\n  want: ${PREFIX + detail}`,
    );
  }
});

Deno.test("fromToml: a TOML syntax error keeps the parser error as cause", () => {
  try {
    Policy.fromToml("[network\n", "p.toml");
    assert.fail("expected PolicyError");
  } catch (e) {
    assert.ok(e instanceof PolicyError);
    assert.match(
      e.message,
      /^Cannot load policy "p\.toml": TOML syntax error at line 1, column \d+: /,
    );
    assert.ok(e.cause instanceof Error);
  }
});

Deno.test("fromConfig: unknown keys and wrong runtime types are PolicyErrors", () => {
  const untyped = (v: Record<string, unknown>): Partial<PolicyConfig> => v as Partial<PolicyConfig>;
  assert.throws(
    () => Policy.fromConfig(untyped({ denyList: [] })),
    {
      name: "PolicyError",
      message:
        'Cannot load policy "<config>": unknown key "denyList" (expected one of: deny, allow,' +
        " bindPorts, bindAddrs, maxConnections, maxBandwidthMbps, maxServerBandwidthMbps, connectionTimeoutSecs)",
    },
  );
  assert.throws(
    () => Policy.fromConfig(untyped({ maxConnections: "5" }), "cli"),
    {
      message: 'Cannot load policy "cli": network.max_connections = "5" is not valid' +
        " (expected an integer from 1 to 1000000)",
    },
  );
  assert.throws(
    () => Policy.fromConfig({ deny: ["10.0.0.0/33"] }, "cli"),
    {
      message:
        'Cannot load policy "cli": network.deny[0] = "10.0.0.0/33" is not a valid rule (prefix length 33 > 32)',
    },
  );
});

Deno.test("fromToml: empty file, empty table and a full file", () => {
  for (const text of ["", "# nothing\n", "[network]\n"]) {
    const p = Policy.fromToml(text, "empty.toml");
    assert.deepEqual(p.config, Policy.defaults().config);
  }
  const p = Policy.fromToml(
    `[network]
deny = ["@default", "evil.example", "*:25"]
allow = ["*.example.com:443", "10.1.2.0/24:5432", "[2001:db8::1]:443"]
bind_ports = "3000-3999, 8080"
bind_addrs = ["0.0.0.0", "::"]
max_connections = 7
max_bandwidth_mbps = 0
connection_timeout_secs = 5
`,
    "full.toml",
  );
  assert.equal(p.maxConnections, 7);
  assert.equal(p.maxBandwidthMbps, undefined);
  assert.equal(p.connectionTimeoutMs, 5000);
  assert.equal(p.checkBind("0.0.0.0", 8080).allowed, true);
  assert.equal(p.checkBind("0.0.0.0", 4000).allowed, false);
  const t = parseTarget("a.example.com");
  assert.ok(t.kind === "name");
  assert.equal(p.checkTarget(t, 443).allowed, true);
  assert.equal(p.checkTarget(t, 25).rule, "*:25");
  // deny wins: 2001:db8::/32 is in @default
  const doc = parseTarget("2001:db8::1");
  assert.ok(doc.kind === "ip");
  assert.equal(p.checkTarget(doc, 443).rule, "2001:db8::/32");
});

Deno.test("policy.example.toml loads and equals the defaults", async () => {
  const url = new URL("../../policy.example.toml", import.meta.url);
  const text = await Deno.readTextFile(url);
  const p = Policy.fromToml(text, "policy.example.toml");
  assert.deepEqual(p.config, Policy.defaults().config);
  // every key of the schema appears (uncommented) in the example
  for (
    const key of [
      "deny",
      "allow",
      "bind_ports",
      "bind_addrs",
      "max_connections",
      "max_bandwidth_mbps",
      "connection_timeout_secs",
    ]
  ) {
    assert.match(text, new RegExp(`^${key} = `, "m"), key);
  }
});

Deno.test("policy toml: toToml round-trips every key through fromToml", () => {
  const configs: Partial<PolicyConfig>[] = [
    {},
    { deny: [], allow: ["*"], maxBandwidthMbps: 0 },
    {
      deny: ["*", "10.0.0.0/8", "[::1]:80", "evil.example.com"],
      allow: ["*.example.com:443", "192.168.1.5:8000-8999", "fd00::/8"],
      bindPorts: "3000,8080-8081",
      bindAddrs: ["0.0.0.0/0", "::1"],
      maxConnections: 7,
      maxBandwidthMbps: 3,
      maxServerBandwidthMbps: 8,
      connectionTimeoutSecs: 2,
    },
    { bindPorts: "", bindAddrs: [], maxServerBandwidthMbps: 0 },
  ];
  for (const config of configs) {
    const policy = Policy.fromConfig(config, "<test>");
    const text = policy.toToml();
    assert.match(text, /^\[network\]\n/);
    const back = Policy.fromToml(text, "round-trip.toml");
    assert.deepEqual(back.config, policy.config, text);
    assert.equal(back.toToml(), text);
  }
  // Unlimited bandwidth is written as 0, not left out (the default is 10).
  assert.match(Policy.fromConfig({ maxBandwidthMbps: 0 }).toToml(), /^max_bandwidth_mbps = 0$/m);
  // The default deny list stays the token.
  assert.match(Policy.defaults().toToml(), /^deny = \[ "@default" \]$/m);
});

Deno.test("policy toml: toToml refuses the allow-all policy (no file form)", () => {
  assert.throws(() => Policy.allowAll().toToml(), /no policy file form \(use --no-policy\)/);
});
