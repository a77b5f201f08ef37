/**
 * The one decision function of the policy engine (DESIGN.md §5). {@linkcode decide} takes a
 * compiled {@linkcode RuleSet}, a normalised {@linkcode Subject} (a name, an IP address, or an
 * address a name resolved to) and a port (or {@linkcode ANY_PORT} for lookups), and returns a
 * structured {@linkcode Outcome}: which rule decided, and how. It produces no text: `policy.ts`
 * phrases an outcome for its context (connect, lookup, resolved address, lookup answer, bind).
 *
 * Private to the policy module. Pure and browser-safe (no `Deno.*`).
 *
 * @module
 */

import { type Cidr, cidrContains, type EmbeddedIpv4, embeddedIpv4, type IpBytes } from "./_ip.ts";
import { everyPort, nameMatches, parseCidr, portMatches, type Rule } from "./_rule.ts";
import { DEFAULT_DENY_RANGES } from "./default_deny.ts";

/** The port of a lookup: no port yet, so a rule is judged over all ports (see {@linkcode decide}). */
export const ANY_PORT = "any";

/** A specific port (an integer 1-65535; 0 for bind) or {@linkcode ANY_PORT}. */
export type PortSpec = number | typeof ANY_PORT;

/** A {@linkcode DEFAULT_DENY_RANGES} entry with its CIDR parsed. */
export interface SpecialRange {
  /** The CIDR as written in the default list (`"10.0.0.0/8"`); the verdict's `rule`. */
  readonly rule: string;
  /** Short note for reasons (`"private-use, RFC 1918"`). */
  readonly note: string;
  /** The parsed network. */
  readonly net: Cidr;
}

function mustCidr(text: string): Cidr {
  const c = parseCidr(text);
  if (!c.ok) throw new Error(`bad built-in CIDR ${text}: ${c.reason}`);
  return c.value;
}

/**
 * The special-purpose ranges, in {@linkcode DEFAULT_DENY_RANGES} order. `@default` in `deny`
 * expands to them; in allow-list mode an address inside one is admitted only by an allow IP/CIDR
 * rule (DESIGN.md §5, "in deny-all mode an allowed name must still resolve only to allowed
 * addresses"), whether or not `deny` lists `@default`.
 */
export const SPECIAL_RANGES: readonly SpecialRange[] = DEFAULT_DENY_RANGES.map((r) => ({
  rule: r.rule,
  note: r.note,
  net: mustCidr(r.rule),
}));

/**
 * A compiled rule list pair, as {@linkcode decide} reads it.
 *
 * - Permissive mode: `allowAny && !denyAll` — everything not denied is allowed by `*`.
 * - Allow-list mode otherwise: a subject needs an allow rule; `*` in `allow` is then ignored.
 */
export interface RuleSet {
  /** The policy is disabled (`--no-policy`): every subject is allowed, no rule is read. */
  readonly allowAll: boolean;
  /** `*` appears in `deny` (deny-all mode, as in wasmnet). */
  readonly denyAll: boolean;
  /** `*` appears in `allow`. */
  readonly allowAny: boolean;
  /** Deny rules in list order (`@default` expanded; a bare `*` is `denyAll`, not a rule). */
  readonly deny: readonly Rule[];
  /** Allow rules in list order (a bare `*` is `allowAny`, not a rule). */
  readonly allow: readonly Rule[];
  /**
   * Whether allow-list mode refuses an address in a {@linkcode SPECIAL_RANGES} entry that only a
   * name rule or `*:PORTS` would admit: true for a policy; false for a ticket's allow list
   * (`Policy.narrow`), which only narrows a policy that has made that check already.
   */
  readonly specialRanges: boolean;
}

/**
 * What is decided, already normalised (see `parseHost` in `target.ts`):
 * - `name`: a lower-case ASCII host name; name rules and `*:PORTS` rules apply;
 * - `ip`: an address (IPv4-mapped already unmapped); IP/CIDR rules and `*:PORTS` apply, deny
 *   rules to every IPv4 address it embeds too;
 * - `resolved`: address `ip` that the name `name` resolved to. The name is decided first; if it is
 *   allowed, the address is decided like an `ip`, with the name's allow rule standing in for the
 *   `*:PORTS` allow rule (so in allow-list mode a name rule admits the name's ordinary addresses,
 *   but never a special-purpose one).
 */
export type Subject =
  | { readonly kind: "name"; readonly name: string }
  | { readonly kind: "ip"; readonly ip: IpBytes }
  | { readonly kind: "resolved"; readonly name: string; readonly ip: IpBytes };

/**
 * The result of {@linkcode decide}. `via`, when set, is the embedded IPv4 address (and the
 * mechanism embedding it) that matched instead of the IPv6 address itself.
 *
 * - `allow-all`: the policy is disabled;
 * - `allowed-by`: allowed; `rule` is the allow rule's text, `"*"` in permissive mode, or for a
 *   resolved address the rule that allowed its name;
 * - `denied-by`: a deny rule matched;
 * - `special-range`: allow-list mode, the address (or its embedded IPv4) lies in a special range
 *   and only a `*:PORTS` rule or the name's rule would have admitted it;
 * - `no-allow-rule` / `default-deny`: allow-list mode and no allow rule matched; `default-deny`
 *   when `*` is in `deny`;
 * - `name-refused`: for a `resolved` subject, the name itself is not allowed; `name` says why.
 */
export type Outcome =
  | { readonly kind: "allow-all" }
  | { readonly kind: "allowed-by"; readonly rule: string }
  | { readonly kind: "denied-by"; readonly rule: Rule; readonly via: EmbeddedIpv4 | undefined }
  | {
    readonly kind: "special-range";
    readonly range: SpecialRange;
    readonly via: EmbeddedIpv4 | undefined;
  }
  | { readonly kind: "no-allow-rule" }
  | { readonly kind: "default-deny" }
  | { readonly kind: "name-refused"; readonly name: Outcome };

/** Whether an outcome lets the operation proceed. */
export function isAllowed(outcome: Outcome): boolean {
  return outcome.kind === "allowed-by" || outcome.kind === "allow-all";
}

/** Whether `rules` is in permissive mode: `*` in `allow` and not in `deny`. */
export function isPermissive(rules: RuleSet): boolean {
  return rules.allowAny && !rules.denyAll;
}

/**
 * Decides `subject` on `port` (DESIGN.md §5: deny wins; permissive vs. allow-list mode; every
 * embedded IPv4 checked; special ranges need an allow IP/CIDR rule in allow-list mode).
 *
 * Port semantics: on a specific port a rule matches if its port range contains the port (no range
 * = every port). On {@linkcode ANY_PORT} a deny rule matches only if it covers every port
 * (`evil.com:22` does not block a lookup of `evil.com`; `evil.com`, `evil.com:1-65535` do), and an
 * allow rule matches whatever its ports (it admits the subject on some port).
 *
 * Order, which names the deciding rule:
 * 1. deny — a name: the first deny rule in list order that is `*:PORTS` or a matching name rule;
 *    an address: the first `*:PORTS` deny rule, else for the address and then each IPv4 address
 *    it embeds, the first matching IP/CIDR deny rule;
 * 2. permissive mode: allowed by `"*"`;
 * 3. a name: the first allow rule in list order that is `*:PORTS` or a matching name rule, else
 *    no allow rule; an address: the first allow IP/CIDR rule covering the address itself, else
 *    the first `*:PORTS` allow rule (for a resolved address: the name's allow rule) — unless the
 *    address or an IPv4 it embeds lies in a {@linkcode SPECIAL_RANGES} entry (and the rule set
 *    checks special ranges, {@linkcode RuleSet.specialRanges}) — else no allow rule.
 *
 * @param rules the compiled rules
 * @param subject what to decide
 * @param port a specific port, or {@linkcode ANY_PORT} for a lookup
 * @returns the outcome; never throws
 */
export function decide(rules: RuleSet, subject: Subject, port: PortSpec): Outcome {
  if (rules.allowAll) return { kind: "allow-all" };
  if (subject.kind === "name") return decideName(rules, subject.name, port);
  if (subject.kind === "ip") return decideIp(rules, subject.ip, port, undefined);
  const name = decideName(rules, subject.name, port);
  if (name.kind !== "allowed-by") return { kind: "name-refused", name };
  return decideIp(rules, subject.ip, port, name.rule);
}

/** Whether deny rule ports cover `port`: on {@linkcode ANY_PORT}, only if they cover every port. */
function denyPorts(rule: Rule, port: PortSpec): boolean {
  return port === ANY_PORT ? everyPort(rule.ports) : portMatches(rule.ports, port);
}

/** Whether allow rule ports admit `port`: on {@linkcode ANY_PORT}, always (some port matches). */
function allowPorts(rule: Rule, port: PortSpec): boolean {
  return port === ANY_PORT || portMatches(rule.ports, port);
}

/** A `*:PORTS` rule, or a name rule covering `name` (ports not checked). */
function coversName(rule: Rule, name: string): boolean {
  return rule.kind === "any" || (rule.kind === "domain" && nameMatches(rule, name));
}

function noAllowRule(rules: RuleSet): Outcome {
  return { kind: rules.denyAll ? "default-deny" : "no-allow-rule" };
}

function decideName(rules: RuleSet, name: string, port: PortSpec): Outcome {
  const deny = rules.deny.find((r) => coversName(r, name) && denyPorts(r, port));
  if (deny !== undefined) return { kind: "denied-by", rule: deny, via: undefined };
  if (isPermissive(rules)) return { kind: "allowed-by", rule: "*" };
  const allow = rules.allow.find((r) => coversName(r, name) && allowPorts(r, port));
  return allow === undefined ? noAllowRule(rules) : { kind: "allowed-by", rule: allow.text };
}

/** One address to match: the subject itself (`via` undefined), or an IPv4 address it embeds. */
type Candidate = { readonly ip: IpBytes; readonly via: EmbeddedIpv4 | undefined };

function decideIp(
  rules: RuleSet,
  ip: IpBytes,
  port: PortSpec,
  nameRule: string | undefined,
): Outcome {
  const any = rules.deny.find((r) => r.kind === "any" && denyPorts(r, port));
  if (any !== undefined) return { kind: "denied-by", rule: any, via: undefined };
  const candidates: Candidate[] = [
    { ip, via: undefined },
    ...embeddedIpv4(ip).map((e) => ({ ip: e.ip, via: e })),
  ];
  for (const c of candidates) {
    const deny = rules.deny.find((r) =>
      r.kind === "net" && denyPorts(r, port) && cidrContains(r.net, c.ip)
    );
    if (deny !== undefined) return { kind: "denied-by", rule: deny, via: c.via };
  }
  if (isPermissive(rules)) return { kind: "allowed-by", rule: "*" };
  const net = rules.allow.find((r) =>
    r.kind === "net" && allowPorts(r, port) && cidrContains(r.net, ip)
  );
  if (net !== undefined) return { kind: "allowed-by", rule: net.text };
  const fallback = nameRule ??
    rules.allow.find((r) => r.kind === "any" && allowPorts(r, port))?.text;
  if (fallback === undefined) return noAllowRule(rules);
  if (!rules.specialRanges) return { kind: "allowed-by", rule: fallback };
  for (const c of candidates) {
    const range = SPECIAL_RANGES.find((s) => cidrContains(s.net, c.ip));
    if (range !== undefined) return { kind: "special-range", range, via: c.via };
  }
  return { kind: "allowed-by", rule: fallback };
}
