/**
 * Policy configuration: the {@linkcode PolicyConfig} shape and its defaults, loading from a TOML
 * file or a config object with validation (every mistake is a one-line {@linkcode PolicyError}
 * naming the TOML key and the bad value, DESIGN.md §5), and compilation of the validated rule
 * lists into the {@linkcode RuleSet}s that the decision function reads. `policy.ts` builds the
 * {@linkcode Policy} class on top. Pure and browser-safe (no `Deno.*`).
 *
 * @module
 */

import { parse as parseToml, stringify as stringifyToml, TomlError } from "smol-toml";
import { formatCidr } from "./_ip.ts";
import { parseCidr, parsePortList, parseRule, type PortRange, type Rule } from "./_rule.ts";
import { type RuleSet, SPECIAL_RANGES } from "./_decide.ts";
import { DEFAULT_DENY_NAME_RULES, DEFAULT_DENY_TOKEN } from "./default_deny.ts";
import { PolicyError } from "./policy_error.ts";

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

/** Upper bound of `max_connections` (and the value {@linkcode Policy.allowAll} uses is 10000). */
export const MAX_CONNECTIONS_LIMIT = 1_000_000;
/** Upper bound of `max_bandwidth_mbps`. */
export const MAX_BANDWIDTH_LIMIT = 1_000_000;
/** Upper bound of `connection_timeout_secs` (one day; keeps the timer within `setTimeout` range). */
export const MAX_TIMEOUT_SECS = 86_400;

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
/** Config field → TOML key (error messages name keys the TOML way). */
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

/** The configuration of {@linkcode Policy.allowAll} (`--no-policy`); its checks are disabled. */
export const ALLOW_ALL_CONFIG: Readonly<PolicyConfig> = {
  deny: [],
  allow: ["*"],
  bindPorts: "0-65535",
  bindAddrs: ["0.0.0.0/0", "::/0"],
  maxConnections: 10_000,
  maxBandwidthMbps: undefined,
  maxServerBandwidthMbps: undefined,
  connectionTimeoutSecs: 30,
};

/**
 * What {@linkcode compile} makes of a config: the deny/allow rule set for connect, send_to and
 * resolve checks, and the bind checks (`bind_ports` ranges, then `bind_addrs` as an allow-list
 * rule set of port-less IP/CIDR rules).
 */
export interface CompiledPolicy {
  /** The `deny`/`allow` rules. */
  readonly rules: RuleSet;
  /** The `bind_ports` ranges; empty = no port may be bound. */
  readonly bindPorts: readonly PortRange[];
  /** `bind_addrs` as an allow list: one `net` rule per entry, no deny rules, no `*`. */
  readonly bind: RuleSet;
}

/** Rule notes by canonical CIDR or name, so a user's `127.0.0.0/8` reads "(loopback)" too. */
const NOTES: ReadonlyMap<string, string> = new Map([
  ...SPECIAL_RANGES.map((s): [string, string] => [formatCidr(s.net), s.note]),
  ...DEFAULT_DENY_NAME_RULES.map((r): [string, string] => [r.rule, r.note]),
]);
const noteFor = (key: string): string | undefined => NOTES.get(key);

/** What `@default` expands to in `deny`: every special-purpose range, then the default names. */
const DEFAULT_RULES: readonly Rule[] = [
  ...SPECIAL_RANGES.map((s): Rule => ({
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

/**
 * A short, one-line rendering of any value for messages: strings JSON-quoted, arrays in brackets,
 * other objects as `a table`; cut to 120 characters.
 */
export function show(v: unknown): string {
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

/**
 * Validates a (partial) config object that may come from untyped JSON: unknown fields, wrong types
 * and out-of-range numbers are refused; absent fields take the defaults listed on
 * {@linkcode PolicyConfig}; `maxBandwidthMbps`/`maxServerBandwidthMbps` `0` become `undefined`.
 * Rules, port lists and bind addresses are checked later, by {@linkcode compile}.
 *
 * @param config the fields to set
 * @param source what to call the config in error messages
 * @throws {PolicyError} naming the key by its TOML name (`network.bind_ports`)
 */
export function configFromObject(config: Partial<PolicyConfig>, source: string): PolicyConfig {
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
  return validate(input, source);
}

/**
 * Parses a TOML policy file into a validated config: an optional `[network]` table with the keys
 * listed on {@linkcode PolicyConfig} and nothing else; an empty file gives the defaults.
 *
 * @param text the file contents
 * @param source the file name, quoted in error messages
 * @throws {PolicyError} on a TOML syntax error (naming line and column; the parser's error is the
 *   `cause`), an unknown key, a wrong type or an out-of-range number
 */
export function configFromToml(text: string, source: string): PolicyConfig {
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
  if (network === undefined) return validate({}, source);
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
  return validate(input, source);
}

/**
 * Writes a validated config back as a policy file: a `[network]` table with every key, in the
 * order of {@linkcode PolicyConfig}, so that {@linkcode configFromToml} gives back an equal config
 * (unlimited bandwidth, `undefined` here, is written as `0`). Pure.
 *
 * @param config a config returned by {@linkcode configFromObject} or {@linkcode configFromToml}
 * @returns TOML text, e.g. `[network]\ndeny = [ "@default" ]\nallow = [ "*" ]\n...`
 */
export function configToToml(config: Readonly<PolicyConfig>): string {
  const network: Record<string, unknown> = {};
  for (const [field, key] of Object.entries(CONFIG_KEYS) as [keyof PolicyConfig, string][]) {
    const value = config[field];
    network[key] = Array.isArray(value) ? [...value] : value ?? 0;
  }
  return `${stringifyToml({ network })}\n`;
}

function fail(
  source: string,
  key: string,
  value: unknown,
  what: string,
  table = "network.",
): never {
  throw new PolicyError(source, `${table}${key} = ${show(value)} is not ${what}`);
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

function compileRules(
  source: string,
  key: "deny" | "allow",
  list: readonly string[],
  table = "network.",
): {
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
          table,
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
    if (!r.ok) fail(source, `${key}[${i}]`, raw, `a valid rule (${r.reason})`, table);
    rules.push(r.value);
  });
  return { rules, star };
}

/**
 * Compiles an allow list that narrows a policy (a ticket's `allow` claim, `Policy.narrow`): allow
 * rules only, in the policy file's syntax (`*` admits everything; `@default` is refused), no deny
 * rules, and special ranges left to the policy it narrows ({@linkcode RuleSet.specialRanges}).
 *
 * @param source what to call the list in error messages, e.g. `ticket (sub alice)`
 * @param list the rules
 * @throws {PolicyError} for an entry that is not a string or not a valid rule, e.g.
 *   `Cannot load policy "ticket (sub alice)": allow[0] = "db:99999" is not a valid rule (port 99999 > 65535)`
 */
export function compileAllowList(source: string, list: readonly unknown[]): RuleSet {
  const texts = list.map((item, i) => {
    if (typeof item !== "string") fail(source, `allow[${i}]`, item, "a rule (a string)", "");
    return item;
  });
  const allow = compileRules(source, "allow", texts, "");
  return {
    allowAll: false,
    denyAll: false,
    allowAny: allow.star,
    deny: [],
    allow: allow.rules,
    specialRanges: false,
  };
}

/**
 * Compiles a validated config: parses every deny/allow rule (`@default` expanded, `*` recorded as
 * a mode flag rather than a rule), the `bind_ports` list and the `bind_addrs` entries.
 *
 * @param config a config returned by {@linkcode configFromObject} or {@linkcode configFromToml}
 * @param source what to call the config in error messages
 * @param allowAll `true` only for {@linkcode Policy.allowAll}: every check then allows
 * @throws {PolicyError} on a malformed rule, port list or bind address, e.g.
 *   `network.deny[2] = "10.0.0.0/33" is not a valid rule (prefix length 33 > 32)`
 */
export function compile(config: PolicyConfig, source: string, allowAll: boolean): CompiledPolicy {
  const deny = compileRules(source, "deny", config.deny);
  const allow = compileRules(source, "allow", config.allow);
  const ports = parsePortList(config.bindPorts);
  if (!ports.ok) {
    fail(source, "bind_ports", config.bindPorts, `a valid port list (${ports.reason})`);
  }
  const bindAddrs = config.bindAddrs.map((raw, i): Rule => {
    const text = raw.trim();
    const c = parseCidr(text);
    if (!c.ok) fail(source, `bind_addrs[${i}]`, raw, `a valid bind address (${c.reason})`);
    return { kind: "net", text, net: c.value, ports: undefined, note: undefined };
  });
  return {
    rules: {
      allowAll,
      denyAll: deny.star,
      allowAny: allow.star,
      deny: deny.rules,
      allow: allow.rules,
      specialRanges: true,
    },
    bindPorts: ports.value,
    bind: {
      allowAll,
      denyAll: false,
      allowAny: false,
      deny: [],
      allow: bindAddrs,
      specialRanges: true,
    },
  };
}
