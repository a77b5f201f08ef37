// The policy engine: validated config → compiled rules → verdicts.
// Pure and browser-safe (no Deno.*).

import { parse as parseToml, TomlError } from "smol-toml";
import {
  type Cidr,
  cidrContains,
  embeddedIpv4,
  formatCidr,
  formatIp,
  type IpBytes,
} from "./_ip.ts";
import {
  domainMatches,
  everyPort,
  formatPortRange,
  nameMatches,
  netMatches,
  parseCidr,
  parsePortList,
  parseRule,
  portMatches,
  type PortRange,
  type Rule,
} from "./_rule.ts";
import {
  DEFAULT_DENY_NAME_RULES,
  DEFAULT_DENY_RANGES,
  DEFAULT_DENY_TOKEN,
} from "./default_deny.ts";
import { PolicyError } from "./policy_error.ts";
import { formatHostPort, type HostParse, parseHost, parseTarget, type Target } from "./target.ts";

/**
 * The outcome of a policy check. Checks never throw. (The Rust wasmnet returned
 * `Result<(), String>` with only a message; here the deciding rule is named too.)
 *
 * - `allowed`: whether the operation may proceed.
 * - `rule`: the rule text that decided, as written in the policy (`"127.0.0.0/8"`,
 *   `"*.example.com:443"`, `"*"`), or one of these fixed words:
 *   `"default-deny"` (`*` in deny and no allow rule matched), `"no-allow-rule"` (allow list without
 *   `*` and no rule matched), `"allow-all"` (policy disabled, {@linkcode Policy.allowAll}),
 *   `"invalid-target"`, `"invalid-address"`, `"invalid-port"`, `"bind_ports"`, `"bind_addrs"`.
 * - `reason`: one human-readable line, suitable for the wire `denied` event, e.g.
 *   `127.0.0.1:80 is denied by rule "127.0.0.0/8" (loopback)`.
 */
export interface Verdict {
  /** Whether the operation may proceed. */
  allowed: boolean;
  /** The rule text (or fixed word) that decided. */
  rule: string;
  /** One human-readable line for logs and the wire `denied` event. */
  reason: string;
}

/**
 * A policy configuration: the `[network]` table of a policy file, in camelCase.
 *
 * | field | TOML key | default | meaning |
 * | --- | --- | --- | --- |
 * | `deny` | `deny` | `["@default"]` | rules that refuse a target; deny wins over allow; `"*"` = deny-all mode |
 * | `allow` | `allow` | `["*"]` | rules that admit a target |
 * | `bindPorts` | `bind_ports` | `"3000-9999"` | ports `bind` may use: `"3000-9999"`, `"3000,8080"`, mixed; `""` = none |
 * | `bindAddrs` | `bind_addrs` | `["127.0.0.1", "::1"]` | IPs/CIDRs `bind` may use (new; wasmnet had none) |
 * | `maxConnections` | `max_connections` | `50` | per session: pending dials + sockets + listeners, 1-1000000 |
 * | `maxBandwidthMbps` | `max_bandwidth_mbps` | `10` | per session, megabits per second, 0-1000000; `0` or `undefined` = unlimited |
 * | `maxServerBandwidthMbps` | `max_server_bandwidth_mbps` | `0` | whole server, per direction, Mbps (new); `0`/`undefined` = unlimited |
 * | `connectionTimeoutSecs` | `connection_timeout_secs` | `30` | dial timeout in seconds, 1-86400 |
 *
 * Defaults equal the Rust wasmnet 0.1.3 defaults except the deny list, which is the much longer
 * {@linkcode DEFAULT_DENY} plus {@linkcode DEFAULT_DENY_NAMES} (the `@default` token).
 */
export interface PolicyConfig {
  /** Deny rules (TOML `deny`); `"@default"` expands to the built-in list, `"*"` = deny-all. */
  deny: string[];
  /** Allow rules (TOML `allow`); `"*"` = everything not denied. */
  allow: string[];
  /** Ports `bind` may use (TOML `bind_ports`): `"3000-9999"`, `"3000,8080"`, mixed; `""` = none. */
  bindPorts: string;
  /** IPs/CIDRs `bind` may use (TOML `bind_addrs`). */
  bindAddrs: string[];
  /** Per-session cap on pending dials + sockets + listeners (TOML `max_connections`). */
  maxConnections: number;
  /** Per-session cap in megabits per second (TOML `max_bandwidth_mbps`); `undefined` = unlimited. */
  maxBandwidthMbps: number | undefined;
  /**
   * Cap on the whole server's traffic per direction, all sessions together, in megabits per second
   * (TOML `max_server_bandwidth_mbps`; new, wasmnet had only its one server-wide bucket);
   * `undefined` = unlimited.
   */
  maxServerBandwidthMbps: number | undefined;
  /** Dial timeout in seconds (TOML `connection_timeout_secs`). */
  connectionTimeoutSecs: number;
}

/** TOML key → config field. */
const TOML_KEYS: Readonly<Record<string, keyof PolicyConfig>> = {
  deny: "deny",
  allow: "allow",
  bind_ports: "bindPorts",
  bind_addrs: "bindAddrs",
  max_connections: "maxConnections",
  max_bandwidth_mbps: "maxBandwidthMbps",
  max_server_bandwidth_mbps: "maxServerBandwidthMbps",
  connection_timeout_secs: "connectionTimeoutSecs",
};
const CONFIG_KEYS: Readonly<Record<keyof PolicyConfig, string>> = {
  deny: "deny",
  allow: "allow",
  bindPorts: "bind_ports",
  bindAddrs: "bind_addrs",
  maxConnections: "max_connections",
  maxBandwidthMbps: "max_bandwidth_mbps",
  maxServerBandwidthMbps: "max_server_bandwidth_mbps",
  connectionTimeoutSecs: "connection_timeout_secs",
};

const DEFAULT_CONFIG: Readonly<PolicyConfig> = {
  deny: [DEFAULT_DENY_TOKEN],
  allow: ["*"],
  bindPorts: "3000-9999",
  bindAddrs: ["127.0.0.1", "::1"],
  maxConnections: 50,
  maxBandwidthMbps: 10,
  maxServerBandwidthMbps: undefined,
  connectionTimeoutSecs: 30,
};

/** Upper bound of `max_connections` (and the value {@linkcode Policy.allowAll} uses is 10000). */
export const MAX_CONNECTIONS_LIMIT = 1_000_000;
/** Upper bound of `max_bandwidth_mbps`. */
export const MAX_BANDWIDTH_LIMIT = 1_000_000;
/** Upper bound of `connection_timeout_secs` (one day; keeps the timer within `setTimeout` range). */
export const MAX_TIMEOUT_SECS = 86_400;

interface Special {
  readonly rule: string;
  readonly note: string;
  readonly net: Cidr;
}

function mustCidr(text: string): Cidr {
  const c = parseCidr(text);
  if (!c.ok) throw new Error(`bad built-in CIDR ${text}: ${c.reason}`);
  return c.value;
}

const SPECIAL: readonly Special[] = DEFAULT_DENY_RANGES.map((r) => ({
  rule: r.rule,
  note: r.note,
  net: mustCidr(r.rule),
}));

const NOTES: ReadonlyMap<string, string> = new Map([
  ...SPECIAL.map((s): [string, string] => [formatCidr(s.net), s.note]),
  ...DEFAULT_DENY_NAME_RULES.map((r): [string, string] => [r.rule, r.note]),
]);
const noteFor = (key: string): string | undefined => NOTES.get(key);

const DEFAULT_RULES: readonly Rule[] = [
  ...SPECIAL.map((s): Rule => ({
    kind: "net",
    text: s.rule,
    net: s.net,
    ports: undefined,
    note: s.note,
  })),
  ...DEFAULT_DENY_NAME_RULES.map((r): Rule => ({
    kind: "domain",
    text: r.rule,
    name: r.rule,
    subdomainsOnly: false,
    ports: undefined,
    note: r.note,
  })),
];

interface Compiled {
  readonly denyAll: boolean;
  readonly allowAny: boolean;
  readonly deny: readonly Rule[];
  readonly allow: readonly Rule[];
  readonly bindPorts: readonly PortRange[];
  readonly bindAddrs: ReadonlyArray<{ readonly text: string; readonly net: Cidr }>;
}

interface Candidate {
  readonly ip: IpBytes;
  readonly via: string | undefined;
}

interface Hit {
  readonly rule: Rule | Special;
  readonly via: Candidate | undefined;
}

function show(v: unknown): string {
  let s: string;
  if (typeof v === "string") s = JSON.stringify(v);
  else if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") s = String(v);
  else if (v === undefined || v === null) s = String(v);
  else if (v instanceof Date) s = Number.isNaN(v.getTime()) ? "a date" : v.toISOString();
  else if (Array.isArray(v)) s = `[${v.map(show).join(", ")}]`;
  else s = "a table";
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function describeRule(rule: Rule | Special): string {
  const note = "kind" in rule ? (rule.kind === "any" ? undefined : rule.note) : rule.note;
  const text = ruleText(rule);
  return `rule ${JSON.stringify(text)}${note === undefined ? "" : ` (${note})`}`;
}

function describeSpecial(s: Special): string {
  return `default-deny range ${JSON.stringify(s.rule)} (${s.note})`;
}

function ruleText(rule: Rule | Special): string {
  return "kind" in rule ? rule.text : rule.rule;
}

function viaText(c: Candidate | undefined): string {
  return c?.via === undefined ? "" : ` via its embedded ${c.via} IPv4 address ${formatIp(c.ip)}`;
}

function candidates(ip: IpBytes): Candidate[] {
  return [{ ip, via: undefined }, ...embeddedIpv4(ip)];
}

function validPort(port: number, min: number): boolean {
  return typeof port === "number" && Number.isInteger(port) && port >= min && port <= 65535;
}

function invalidPort(port: number, min: number): Verdict {
  return {
    allowed: false,
    rule: "invalid-port",
    reason: `port ${show(port)} is not valid (expected an integer from ${min} to 65535)`,
  };
}

const SPECIAL_HINT =
  "in allow-list mode only an allow IP/CIDR rule admits special-purpose addresses";

/**
 * A compiled, immutable network policy. Construct with {@linkcode Policy.defaults},
 * {@linkcode Policy.allowAll}, {@linkcode Policy.fromConfig} or {@linkcode Policy.fromToml}.
 *
 * Decision rules (DESIGN.md §5):
 * 1. Targets are normalised first ({@linkcode parseTarget}): every IPv4/IPv6 spelling, case,
 *    trailing dot and IDN form is reduced to one canonical form before matching.
 * 2. Deny wins: a target matching any deny rule is denied, whatever the allow list says. Name
 *    rules match names; IP/CIDR rules match literal and resolved addresses, and also every IPv4
 *    address embedded in an IPv6 address (IPv4-compatible, NAT64, 6to4, Teredo, ISATAP) — if
 *    either form is denied, the address is denied. `*:PORTS` matches any host on those ports.
 * 3. Permissive mode — `allow` contains `*` and `deny` does not: everything not denied is allowed.
 * 4. Allow-list mode — `deny` contains `*` ("deny-all", as in wasmnet) or `allow` lacks `*`: a
 *    target must match an allow rule (`*` in allow is then ignored: deny wins). A literal or
 *    resolved address inside a {@linkcode DEFAULT_DENY} range (by itself or its embedded IPv4) is
 *    admitted only by an allow IP/CIDR rule that covers it — never by a name rule or `*:PORTS`,
 *    even when the `deny` list omits `@default`. So `allow = ["api.example.com"]` cannot reach
 *    `10.0.0.5` through a DNS record, but `allow = ["db.corp", "10.0.0.0/8:5432"]` can.
 *
 * Rule syntax: `*`; IPv4/IPv6 address (any spelling); CIDR (`10.0.0.0/8`, `fd00::/8`); domain
 * (`example.com`: the domain AND all its subdomains, as in wasmnet); wildcard (`*.example.com`:
 * subdomains only, NOT the apex — stricter than wasmnet, where both forms covered the apex);
 * each optionally followed by `:443` or `:8000-8999` (IPv6 in brackets: `[::1]:80`,
 * `[fd00::/8]:443`; an unbracketed IPv6 rule has no port). `@default` in `deny` expands to
 * {@linkcode DEFAULT_DENY} and {@linkcode DEFAULT_DENY_NAMES}.
 *
 * @example
 * ```ts
 * import { Policy, parseTarget } from "./mod.ts";
 * import assert from "node:assert/strict";
 * const policy = Policy.defaults();
 * const target = parseTarget("0x7f000001");
 * assert.ok(target.kind !== "invalid");
 * assert.equal(policy.checkTarget(target, 80).allowed, false);
 * assert.equal(policy.checkResolved("example.com", "10.0.0.1", 443).allowed, false);
 * assert.equal(policy.checkBind("127.0.0.1", 3000).allowed, true);
 * ```
 */
export class Policy {
  /** The validated configuration (defaults filled in; `maxBandwidthMbps` 0 → `undefined`). */
  readonly config: Readonly<PolicyConfig>;
  readonly #compiled: Compiled;
  readonly #disabled: boolean;

  private constructor(config: PolicyConfig, compiled: Compiled, disabled: boolean) {
    this.config = Object.freeze({
      ...config,
      deny: Object.freeze([...config.deny]) as string[],
      allow: Object.freeze([...config.allow]) as string[],
      bindAddrs: Object.freeze([...config.bindAddrs]) as string[],
    });
    this.#compiled = compiled;
    this.#disabled = disabled;
  }

  /**
   * The default policy, used when no policy file is given: deny `@default` (all non-global IPv4
   * and IPv6 ranges plus `localhost`, `local`, `internal`, `home.arpa`), allow `*`, bind ports
   * 3000-9999 on `127.0.0.1`/`::1` only, 50 connections, 10 Mbps, 30 s timeout.
   */
  static defaults(): Policy {
    return Policy.fromConfig({}, "<defaults>");
  }

  /**
   * The `--no-policy` policy: every well-formed target, address and bind (any port 0-65535, any
   * address) is allowed with rule `"allow-all"`; unparsable hosts and ports are still refused.
   * `maxConnections` is 10000 (a finite cap instead of wasmnet's `usize::MAX`, so a session can
   * never exhaust file descriptors), bandwidth unlimited, timeout 30 s.
   */
  static allowAll(): Policy {
    const config: PolicyConfig = {
      deny: [],
      allow: ["*"],
      bindPorts: "0-65535",
      bindAddrs: ["0.0.0.0/0", "::/0"],
      maxConnections: 10_000,
      maxBandwidthMbps: undefined,
      maxServerBandwidthMbps: undefined,
      connectionTimeoutSecs: 30,
    };
    return new Policy(config, compile(config, "<allow-all>"), true);
  }

  /**
   * Builds a policy from a (partial) config; absent fields take the defaults listed on
   * {@linkcode PolicyConfig}. Values are validated at runtime too (the config may come from
   * untyped JSON). Error messages name keys by their TOML names (`network.bind_ports`).
   *
   * @param config the fields to set; `maxBandwidthMbps: undefined` or `0` means unlimited
   * @param source what to call the config in error messages (default `"<config>"`)
   * @throws {PolicyError} on an unknown field, a wrong type, an out-of-range number, a malformed
   *   rule, port list or bind address.
   */
  static fromConfig(config: Partial<PolicyConfig>, source = "<config>"): Policy {
    const input: Record<string, unknown> = config;
    for (const key of Object.keys(input)) {
      if (!Object.hasOwn(CONFIG_KEYS, key)) {
        throw new PolicyError(
          source,
          `unknown key ${JSON.stringify(key)} (expected one of: ${
            Object.keys(CONFIG_KEYS).join(", ")
          })`,
        );
      }
    }
    const full = validate(input, source);
    return new Policy(full, compile(full, source), false);
  }

  /**
   * Parses a TOML policy file: an optional `[network]` table with the keys listed on
   * {@linkcode PolicyConfig}; an empty file is the default policy.
   *
   * @param text the file contents
   * @param source the file name, quoted in error messages
   * @throws {PolicyError} e.g.
   *   `Cannot load policy "policy.toml": TOML syntax error at line 3, column 8: invalid value`,
   *   `… unknown key "network.denny" (expected one of: deny, allow, …)`,
   *   `… network.max_connections = "50" is not valid (expected an integer from 1 to 1000000)`,
   *   `… network.deny[2] = "10.0.0.0/33" is not a valid rule (prefix length 33 > 32)`,
   *   `… network.bind_ports = "9999-3000" is not a valid port list (range 9999-3000 is reversed)`.
   */
  static fromToml(text: string, source: string): Policy {
    let doc: Record<string, unknown>;
    try {
      doc = parseToml(text);
    } catch (e) {
      if (e instanceof TomlError) {
        const first = (e.message.split("\n")[0] ?? "").replace(/^Invalid TOML document:\s*/, "");
        throw new PolicyError(
          source,
          `TOML syntax error at line ${e.line}, column ${e.column}: ${first}`,
          { cause: e },
        );
      }
      throw new PolicyError(source, `cannot parse TOML: ${String(e)}`, { cause: e });
    }
    for (const key of Object.keys(doc)) {
      if (key !== "network") {
        throw new PolicyError(
          source,
          `unknown key ${JSON.stringify(key)} (expected only a [network] table)`,
        );
      }
    }
    const network = doc["network"];
    if (network === undefined) return Policy.fromConfig({}, source);
    if (!isTable(network)) {
      throw new PolicyError(
        source,
        `network = ${show(network)} is not valid (expected a [network] table)`,
      );
    }
    const input: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(network)) {
      const field = TOML_KEYS[key];
      if (field === undefined) {
        throw new PolicyError(
          source,
          `unknown key ${JSON.stringify(`network.${key}`)} (expected one of: ${
            Object.keys(TOML_KEYS).join(", ")
          })`,
        );
      }
      input[field] = value;
    }
    const full = validate(input, source);
    return new Policy(full, compile(full, source), false);
  }

  /** Maximum simultaneous pending dials, sockets and listeners per session. */
  get maxConnections(): number {
    return this.config.maxConnections;
  }

  /** Dial timeout in milliseconds (`connection_timeout_secs` × 1000). */
  get connectionTimeoutMs(): number {
    return this.config.connectionTimeoutSecs * 1000;
  }

  /** Per-session bandwidth cap in megabits per second; `undefined` = unlimited. */
  get maxBandwidthMbps(): number | undefined {
    return this.config.maxBandwidthMbps;
  }

  /** Whole-server bandwidth cap per direction in megabits per second; `undefined` = unlimited. */
  get maxServerBandwidthMbps(): number | undefined {
    return this.config.maxServerBandwidthMbps;
  }

  /**
   * Checks a target before DNS: name rules for names, IP/CIDR rules (with embedded IPv4) for
   * literal addresses. An allowed name must then pass {@linkcode Policy.checkResolved} for each
   * address it resolves to. `port` must be an integer 1-65535.
   * A hand-built `target` is re-normalised, so `{ kind: "name", name: "127.1" }` is checked as
   * `127.0.0.1`. Never throws.
   */
  checkTarget(target: Target, port: number): Verdict {
    if (!validPort(port, 1)) return invalidPort(port, 1);
    const raw = target.kind === "ip" ? target.ip : target.name;
    const host = parseHost(raw);
    if (!host.ok) return invalidTarget(raw, host.reason);
    if (this.#disabled) return allowAll(displayTarget(host), port);
    if (host.ip !== undefined) return this.#checkIp(host.ip, port);
    return this.#checkName(host.name, port);
  }

  /**
   * Checks one address that an (already allowed) name resolved to. Re-checks the name, then:
   * the address (and any IPv4 it embeds) must match no deny rule; in allow-list mode an address in
   * a {@linkcode DEFAULT_DENY} range also needs an allow IP/CIDR rule that covers it (see the class
   * documentation). The Rust wasmnet checked resolved addresses against the deny list only, and in
   * deny-all mode not at all. `ip` is any accepted spelling; `port` an integer 1-65535.
   * Never throws.
   */
  checkResolved(name: string, ip: string, port: number): Verdict {
    if (!validPort(port, 1)) return invalidPort(port, 1);
    const nameHost = parseHost(name);
    if (!nameHost.ok) return invalidTarget(name, nameHost.reason);
    const addr = parseHost(ip);
    if (!addr.ok || addr.ip === undefined) return invalidAddress(ip);
    if (this.#disabled) return allowAll(displayTarget(addr), port);
    if (nameHost.ip !== undefined) return this.#checkIp(addr.ip, port);
    const nameVerdict = this.#checkName(nameHost.name, port);
    if (!nameVerdict.allowed) return nameVerdict;
    const hp = `${nameHost.name}:${port}`;
    const addrText = formatIp(addr.ip);
    const cands = candidates(addr.ip);
    const hit = this.#denyHit(cands, port);
    if (hit !== undefined) {
      return {
        allowed: false,
        rule: ruleText(hit.rule),
        reason: `${hp} resolved to ${addrText}, which is denied by ${describeRule(hit.rule)}${
          viaText(hit.via)
        }`,
      };
    }
    if (this.#permissive) {
      return { allowed: true, rule: "*", reason: `${hp} (${addrText}) is allowed by rule "*"` };
    }
    const netRule = this.#allowNet(addr.ip, port);
    if (netRule !== undefined) {
      return {
        allowed: true,
        rule: netRule.text,
        reason: `${hp} (${addrText}) is allowed by rule ${JSON.stringify(netRule.text)}`,
      };
    }
    const special = specialHit(cands);
    if (special !== undefined) {
      return {
        allowed: false,
        rule: special.rule.rule,
        reason: `${hp} resolved to ${addrText}, which is in ${describeSpecial(special.rule)}${
          viaText(special.via)
        }; ${SPECIAL_HINT}`,
      };
    }
    return {
      allowed: true,
      rule: nameVerdict.rule,
      reason: `${hp} (${addrText}) is allowed by rule ${JSON.stringify(nameVerdict.rule)}`,
    };
  }

  /**
   * Checks a `resolve` request: may the client look `target` up at all? Lookups carry no port, so
   * this is {@linkcode Policy.checkTarget} made port-agnostic:
   * - a deny rule blocks only if it has no port, or its port range covers every port (`1-65535`);
   *   `evil.com:22` does not block a lookup of `evil.com`, `evil.com` does;
   * - in permissive mode everything not blocked is allowed (rule `"*"`);
   * - in allow-list mode an allow rule for the name (or `*:PORTS`) on ANY port admits it.
   *
   * A literal IP runs the same logic on the IP/CIDR rules (with every IPv4 it embeds), and in
   * allow-list mode an address in a {@linkcode DEFAULT_DENY} range again needs an allow IP/CIDR
   * rule that covers it. A hand-built `target` is re-normalised. An allowed name's answers must
   * then pass {@linkcode Policy.checkLookupAnswer}. An allowed lookup admits no connection:
   * `connect` and `send_to` still run the port-specific checks. Never throws.
   *
   * @example
   * ```ts
   * import { Policy } from "./mod.ts";
   * import assert from "node:assert/strict";
   * const policy = Policy.fromToml('[network]\ndeny = ["@default", "evil.com:22"]', "inline");
   * assert.equal(policy.checkLookup({ kind: "name", name: "LOCALHOST." }).allowed, false);
   * assert.equal(policy.checkLookup({ kind: "name", name: "evil.com" }).allowed, true);
   * assert.equal(policy.checkLookup({ kind: "name", name: "2130706433" }).rule, "127.0.0.0/8");
   * ```
   */
  checkLookup(target: Target): Verdict {
    const raw = target.kind === "ip" ? target.ip : target.name;
    const host = parseHost(raw);
    if (!host.ok) return invalidTarget(raw, host.reason);
    if (this.#disabled) return lookupAllowAll(displayTarget(host));
    if (host.ip !== undefined) return this.#lookupIp(host.ip);
    return this.#lookupName(host.name);
  }

  /**
   * Should `ip`, an answer for the (allowed) `name`, be returned to the client of a `resolve`?
   * Re-checks the name with {@linkcode Policy.checkLookup}, then applies the address logic of
   * {@linkcode Policy.checkResolved} without a port: the address is dropped when a deny IP/CIDR
   * rule without a port (or with every port) covers it or an IPv4 address it embeds, or — in
   * allow-list mode — when it lies in a {@linkcode DEFAULT_DENY} range (by itself or its embedded
   * IPv4) that no allow IP/CIDR rule (on any port) covers. If `name` is a literal IP, only `ip`
   * is checked. `ip` is any accepted spelling. Never throws.
   *
   * @example
   * ```ts
   * import { Policy } from "./mod.ts";
   * import assert from "node:assert/strict";
   * const policy = Policy.defaults();
   * assert.equal(policy.checkLookupAnswer("example.com", "93.184.216.34").allowed, true);
   * assert.equal(policy.checkLookupAnswer("example.com", "::ffff:10.0.0.1").rule, "10.0.0.0/8");
   * ```
   */
  checkLookupAnswer(name: string, ip: string): Verdict {
    const nameHost = parseHost(name);
    if (!nameHost.ok) return invalidTarget(name, nameHost.reason);
    const addr = parseHost(ip);
    if (!addr.ok || addr.ip === undefined) return invalidAddress(ip);
    if (this.#disabled) return lookupAllowAll(displayTarget(addr));
    if (nameHost.ip !== undefined) return this.#lookupIp(addr.ip);
    const nameVerdict = this.#lookupName(nameHost.name);
    if (!nameVerdict.allowed) return nameVerdict;
    const subject = `lookup of ${nameHost.name}`;
    const addrText = formatIp(addr.ip);
    const cands = candidates(addr.ip);
    const hit = this.#lookupDenyHit(cands);
    if (hit !== undefined) {
      return {
        allowed: false,
        rule: ruleText(hit.rule),
        reason: `${subject} answered ${addrText}, which is denied by ${describeRule(hit.rule)}${
          viaText(hit.via)
        }`,
      };
    }
    const admit = (rule: string): Verdict => ({
      allowed: true,
      rule,
      reason: `${subject} may return ${addrText}: allowed by rule ${JSON.stringify(rule)}`,
    });
    if (this.#permissive) return admit("*");
    const netRule = this.#compiled.allow.find((r) =>
      r.kind === "net" && cidrContains(r.net, addr.ip)
    );
    if (netRule !== undefined) return admit(netRule.text);
    const special = specialHit(cands);
    if (special !== undefined) {
      return {
        allowed: false,
        rule: special.rule.rule,
        reason: `${subject} answered ${addrText}, which is in ${describeSpecial(special.rule)}${
          viaText(special.via)
        }; ${SPECIAL_HINT}`,
      };
    }
    return admit(nameVerdict.rule);
  }

  /**
   * Checks a `bind`: `port` (integer 0-65535) must lie in `bind_ports` and `ip` (any accepted
   * spelling; names are refused) in a `bind_addrs` entry. `0.0.0.0` and `::` are allowed only if
   * an entry covers them. Reasons follow wasmnet: `port 80 not in allowed bind range (3000-9999)`.
   * Never throws.
   */
  checkBind(ip: string, port: number): Verdict {
    if (!validPort(port, 0)) return invalidPort(port, 0);
    const addr = parseHost(ip);
    if (!addr.ok || addr.ip === undefined) {
      return {
        allowed: false,
        rule: "bind_addrs",
        reason: `bind address ${show(ip)} is not an IP address`,
      };
    }
    const addrText = formatIp(addr.ip);
    if (this.#disabled) return allowAll(displayTarget(addr), port);
    const c = this.#compiled;
    if (!c.bindPorts.some((r) => portMatches(r, port))) {
      const ranges = c.bindPorts.map(formatPortRange).join(",") || "none";
      return {
        allowed: false,
        rule: "bind_ports",
        reason: `port ${port} not in allowed bind range (${ranges})`,
      };
    }
    const entry = c.bindAddrs.find((a) => cidrContains(a.net, addr.ip));
    if (entry === undefined) {
      return {
        allowed: false,
        rule: "bind_addrs",
        reason: `address ${addrText} not in allowed bind addresses (${
          c.bindAddrs.map((a) => a.text).join(", ") || "none"
        })`,
      };
    }
    return {
      allowed: true,
      rule: entry.text,
      reason: `bind to ${formatHostPort(displayTarget(addr), port)} is allowed by bind_ports ${
        JSON.stringify(this.config.bindPorts)
      } and bind_addrs ${JSON.stringify(entry.text)}`,
    };
  }

  /**
   * Explains the decision for `HOST:PORT` (`10.0.0.5:22`, `[::1]:80`, `example.com:443`), for
   * `wasmnet check-policy FILE --explain …`. Returns one to three lines: how the host was
   * normalised (if it changed), `allowed: <reason>` or `denied: <reason>`, and for an allowed name
   * how its resolved addresses will be checked. A bare `HOST` (`example.com`, `10.0.0.5`,
   * `[::1]`) explains a `resolve` lookup instead ({@linkcode Policy.checkLookup}): the verdict
   * line reads `lookup allowed: …` or `lookup denied: …`. Malformed input gives one
   * `invalid: …` line. Never throws.
   */
  explain(target: string): string {
    const text = typeof target === "string" ? target.trim() : "";
    const usage =
      `expected HOST:PORT or HOST (e.g. example.com:443, 10.0.0.5:22, [::1]:80 or example.com), got ${
        show(target)
      }`;
    if (text === "") return `invalid: ${usage}`;
    let host: string;
    let portText: string | undefined;
    if (text.startsWith("[")) {
      const close = text.indexOf("]");
      if (close < 0) return `invalid: ${usage}`;
      host = text.slice(0, close + 1);
      if (close + 1 < text.length) {
        if (text[close + 1] !== ":") return `invalid: ${usage}`;
        portText = text.slice(close + 2);
      }
    } else {
      const colons = text.split(":").length - 1;
      if (colons > 1) return `invalid: ${usage}; put an IPv6 address in brackets`;
      const i = text.indexOf(":");
      host = i < 0 ? text : text.slice(0, i);
      if (i >= 0) portText = text.slice(i + 1);
    }
    let port: number | undefined;
    if (portText !== undefined) {
      if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) return `invalid: ${usage}`;
      port = Number(portText);
    }
    const prefix = port === undefined ? "lookup " : "";
    const parsed = parseTarget(host);
    if (parsed.kind === "invalid") {
      return `${prefix}denied: ${JSON.stringify(host)} ${parsed.reason}`;
    }
    const lines: string[] = [];
    const canonical = parsed.kind === "ip" ? parsed.ip : parsed.name;
    const bare = host.startsWith("[") ? host.slice(1, -1) : host;
    if (canonical !== bare) lines.push(`${host} is read as ${canonical}`);
    const verdict = port === undefined ? this.checkLookup(parsed) : this.checkTarget(parsed, port);
    lines.push(`${prefix}${verdict.allowed ? "allowed" : "denied"}: ${verdict.reason}`);
    if (parsed.kind === "name" && verdict.allowed && !this.#disabled) {
      const special = this.#permissive
        ? ""
        : ", and an address in a default-deny range needs an allow IP/CIDR rule";
      lines.push(
        port === undefined
          ? `an address ${canonical} resolves to is returned only if no deny IP/CIDR rule ` +
            `without a port matches it${special}`
          : `every address ${canonical} resolves to is checked too: it must not match a deny ` +
            `rule${special}`,
      );
    }
    return lines.join("\n");
  }

  get #permissive(): boolean {
    return this.#compiled.allowAny && !this.#compiled.denyAll;
  }

  /** First deny rule hit: `*:PORTS` rules, then the address itself, then each embedded IPv4. */
  #denyHit(cands: readonly Candidate[], port: number): Hit | undefined {
    for (const rule of this.#compiled.deny) {
      if (rule.kind === "any" && portMatches(rule.ports, port)) return { rule, via: undefined };
    }
    for (const c of cands) {
      for (const rule of this.#compiled.deny) {
        if (rule.kind === "net" && netMatches(rule, c.ip, port)) return { rule, via: c };
      }
    }
    return undefined;
  }

  /** First port-less (or every-port) deny rule hit: `*:1-65535`, then the address, then each embedded IPv4. */
  #lookupDenyHit(cands: readonly Candidate[]): Hit | undefined {
    const deny = this.#compiled.deny.filter((r) => everyPort(r.ports));
    const any = deny.find((r) => r.kind === "any");
    if (any !== undefined) return { rule: any, via: undefined };
    for (const c of cands) {
      for (const rule of deny) {
        if (rule.kind === "net" && cidrContains(rule.net, c.ip)) return { rule, via: c };
      }
    }
    return undefined;
  }

  #lookupIp(ip: IpBytes): Verdict {
    const subject = `lookup of ${formatIp(ip)}`;
    const cands = candidates(ip);
    const hit = this.#lookupDenyHit(cands);
    if (hit !== undefined) {
      return {
        allowed: false,
        rule: ruleText(hit.rule),
        reason: `${subject} is denied by ${describeRule(hit.rule)}${viaText(hit.via)}`,
      };
    }
    if (this.#permissive) return allowedBy(subject, { kind: "any", text: "*", ports: undefined });
    const netRule = this.#compiled.allow.find((r) => r.kind === "net" && cidrContains(r.net, ip));
    if (netRule !== undefined) return allowedBy(subject, netRule);
    const anyRule = this.#compiled.allow.find((r) => r.kind === "any");
    if (anyRule !== undefined) {
      const special = specialHit(cands);
      if (special !== undefined) {
        return {
          allowed: false,
          rule: special.rule.rule,
          reason: `${subject} is denied: the address is in ${describeSpecial(special.rule)}${
            viaText(special.via)
          }; ${SPECIAL_HINT}`,
        };
      }
      return allowedBy(subject, anyRule);
    }
    return this.#noAllow(subject);
  }

  #lookupName(name: string): Verdict {
    const subject = `lookup of ${name}`;
    for (const rule of this.#compiled.deny) {
      if (!everyPort(rule.ports)) continue;
      if (rule.kind === "any" || (rule.kind === "domain" && nameMatches(rule, name))) {
        return {
          allowed: false,
          rule: rule.text,
          reason: `${subject} is denied by ${describeRule(rule)}`,
        };
      }
    }
    if (this.#permissive) return allowedBy(subject, { kind: "any", text: "*", ports: undefined });
    const rule = this.#compiled.allow.find((r) =>
      r.kind === "any" || (r.kind === "domain" && nameMatches(r, name))
    );
    return rule === undefined ? this.#noAllow(subject) : allowedBy(subject, rule);
  }

  #allowNet(ip: IpBytes, port: number): Rule | undefined {
    return this.#compiled.allow.find((r) => r.kind === "net" && netMatches(r, ip, port));
  }

  #noAllow(hp: string): Verdict {
    return this.#compiled.denyAll
      ? {
        allowed: false,
        rule: "default-deny",
        reason: `${hp} is denied: "*" in deny (deny-all mode) and no allow rule matches`,
      }
      : { allowed: false, rule: "no-allow-rule", reason: `${hp} is denied: no allow rule matches` };
  }

  #checkIp(ip: IpBytes, port: number): Verdict {
    const hp = formatHostPort({ kind: "ip", ip: formatIp(ip), family: ip.family }, port);
    const cands = candidates(ip);
    const hit = this.#denyHit(cands, port);
    if (hit !== undefined) {
      return {
        allowed: false,
        rule: ruleText(hit.rule),
        reason: `${hp} is denied by ${describeRule(hit.rule)}${viaText(hit.via)}`,
      };
    }
    if (this.#permissive) {
      return { allowed: true, rule: "*", reason: `${hp} is allowed by rule "*"` };
    }
    const netRule = this.#allowNet(ip, port);
    if (netRule !== undefined) return allowedBy(hp, netRule);
    const anyRule = this.#compiled.allow.find((r) =>
      r.kind === "any" && portMatches(r.ports, port)
    );
    if (anyRule !== undefined) {
      const special = specialHit(cands);
      if (special !== undefined) {
        return {
          allowed: false,
          rule: special.rule.rule,
          reason: `${hp} is in ${describeSpecial(special.rule)}${
            viaText(special.via)
          }; ${SPECIAL_HINT}`,
        };
      }
      return allowedBy(hp, anyRule);
    }
    return this.#noAllow(hp);
  }

  #checkName(name: string, port: number): Verdict {
    const hp = `${name}:${port}`;
    for (const rule of this.#compiled.deny) {
      if (
        (rule.kind === "domain" && domainMatches(rule, name, port)) ||
        (rule.kind === "any" && portMatches(rule.ports, port))
      ) {
        return {
          allowed: false,
          rule: rule.text,
          reason: `${hp} is denied by ${describeRule(rule)}`,
        };
      }
    }
    if (this.#permissive) {
      return { allowed: true, rule: "*", reason: `${hp} is allowed by rule "*"` };
    }
    const rule = this.#compiled.allow.find((r) =>
      (r.kind === "domain" && domainMatches(r, name, port)) ||
      (r.kind === "any" && portMatches(r.ports, port))
    );
    return rule === undefined ? this.#noAllow(hp) : allowedBy(hp, rule);
  }
}

function allowedBy(hp: string, rule: Rule): Verdict {
  return {
    allowed: true,
    rule: rule.text,
    reason: `${hp} is allowed by rule ${JSON.stringify(rule.text)}`,
  };
}

function allowAll(target: Target, port: number): Verdict {
  return {
    allowed: true,
    rule: "allow-all",
    reason: `${formatHostPort(target, port)} is allowed: policy checks are disabled (allow-all)`,
  };
}

function lookupAllowAll(target: Target): Verdict {
  const text = target.kind === "ip" ? target.ip : target.name;
  return {
    allowed: true,
    rule: "allow-all",
    reason: `lookup of ${text} is allowed: policy checks are disabled (allow-all)`,
  };
}

/** The verdict for a resolved/answer address that is not an IP address. */
function invalidAddress(ip: string): Verdict {
  return { allowed: false, rule: "invalid-address", reason: `${show(ip)} is not an IP address` };
}

function invalidTarget(raw: unknown, reason: string): Verdict {
  return { allowed: false, rule: "invalid-target", reason: `${show(raw)} ${reason}` };
}

function displayTarget(host: HostParse & { ok: true }): Target {
  return host.ip !== undefined
    ? { kind: "ip", ip: formatIp(host.ip), family: host.ip.family }
    : { kind: "name", name: host.name };
}

function specialHit(cands: readonly Candidate[]): { rule: Special; via: Candidate } | undefined {
  for (const c of cands) {
    for (const s of SPECIAL) if (cidrContains(s.net, c.ip)) return { rule: s, via: c };
  }
  return undefined;
}

function fail(source: string, key: string, value: unknown, what: string): never {
  throw new PolicyError(source, `network.${key} = ${show(value)} is not ${what}`);
}

function stringList(source: string, key: string, value: unknown): string[] {
  if (!Array.isArray(value)) fail(source, key, value, "valid (expected an array of strings)");
  const list: unknown[] = value;
  return list.map((item, i) => {
    if (typeof item !== "string") fail(source, `${key}[${i}]`, item, "valid (expected a string)");
    return item;
  });
}

function integer(
  source: string,
  key: string,
  value: unknown,
  min: number,
  max: number,
  hint = "",
): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    fail(source, key, value, `valid (expected an integer from ${min}${hint} to ${max})`);
  }
  return value;
}

function validate(input: Record<string, unknown>, source: string): PolicyConfig {
  const has = (k: keyof PolicyConfig): boolean => Object.hasOwn(input, k);
  const config: PolicyConfig = {
    ...DEFAULT_CONFIG,
    deny: [...DEFAULT_CONFIG.deny],
    allow: [...DEFAULT_CONFIG.allow],
    bindAddrs: [...DEFAULT_CONFIG.bindAddrs],
  };
  if (has("deny")) config.deny = stringList(source, "deny", input["deny"]);
  if (has("allow")) config.allow = stringList(source, "allow", input["allow"]);
  if (has("bindPorts")) {
    const v = input["bindPorts"];
    if (typeof v !== "string") {
      fail(source, "bind_ports", v, 'valid (expected a string like "3000-9999")');
    }
    config.bindPorts = v;
  }
  if (has("bindAddrs")) config.bindAddrs = stringList(source, "bind_addrs", input["bindAddrs"]);
  if (has("maxConnections")) {
    config.maxConnections = integer(
      source,
      "max_connections",
      input["maxConnections"],
      1,
      MAX_CONNECTIONS_LIMIT,
    );
  }
  for (const field of ["maxBandwidthMbps", "maxServerBandwidthMbps"] as const) {
    if (!has(field)) continue;
    const v = input[field];
    const n = v === undefined
      ? 0
      : integer(source, CONFIG_KEYS[field], v, 0, MAX_BANDWIDTH_LIMIT, " (unlimited)");
    config[field] = n === 0 ? undefined : n; // 0 = unlimited
  }
  if (has("connectionTimeoutSecs")) {
    config.connectionTimeoutSecs = integer(
      source,
      "connection_timeout_secs",
      input["connectionTimeoutSecs"],
      1,
      MAX_TIMEOUT_SECS,
    );
  }
  return config;
}

function compileRules(source: string, key: "deny" | "allow", list: readonly string[]): {
  rules: Rule[];
  star: boolean;
} {
  const rules: Rule[] = [];
  let star = false;
  list.forEach((raw, i) => {
    const text = raw.trim();
    if (text === DEFAULT_DENY_TOKEN) {
      if (key !== "deny") {
        fail(
          source,
          `${key}[${i}]`,
          raw,
          `a valid rule (${DEFAULT_DENY_TOKEN} is only valid in deny)`,
        );
      }
      rules.push(...DEFAULT_RULES);
      return;
    }
    if (text === "*") {
      star = true;
      return;
    }
    const r = parseRule(text, noteFor);
    if (!r.ok) fail(source, `${key}[${i}]`, raw, `a valid rule (${r.reason})`);
    rules.push(r.value);
  });
  return { rules, star };
}

function compile(config: PolicyConfig, source: string): Compiled {
  const deny = compileRules(source, "deny", config.deny);
  const allow = compileRules(source, "allow", config.allow);
  const ports = parsePortList(config.bindPorts);
  if (!ports.ok) {
    fail(source, "bind_ports", config.bindPorts, `a valid port list (${ports.reason})`);
  }
  const bindAddrs = config.bindAddrs.map((raw, i) => {
    const text = raw.trim();
    const c = parseCidr(text);
    if (!c.ok) fail(source, `bind_addrs[${i}]`, raw, `a valid bind address (${c.reason})`);
    return { text, net: c.value };
  });
  return {
    denyAll: deny.star,
    allowAny: allow.star,
    deny: deny.rules,
    allow: allow.rules,
    bindPorts: ports.value,
    bindAddrs,
  };
}
