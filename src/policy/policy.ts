/**
 * The policy engine's public face: the {@linkcode Policy} class and its {@linkcode Verdict}s.
 * Every check parses and normalises its input, asks the one decision function (`_decide.ts`) for
 * an outcome, and words that outcome for its context (connect, lookup, resolved address, lookup
 * answer, bind) with the phrasing table below. Config loading and validation live in
 * `policy_config.ts`. Pure and browser-safe (no `Deno.*`).
 *
 * @module
 */

import { formatIp, type IpBytes } from "./_ip.ts";
import { formatPortRange, portMatches, type Rule } from "./_rule.ts";
import {
  ANY_PORT,
  decide,
  isAllowed,
  isPermissive,
  type Outcome,
  type PortSpec,
  type RuleSet,
  type Subject,
} from "./_decide.ts";
import {
  ALLOW_ALL_CONFIG,
  compile,
  compileAllowList,
  type CompiledPolicy,
  configFromObject,
  configFromToml,
  configToToml,
  MAX_CONNECTIONS_LIMIT,
  type PolicyConfig,
  show,
} from "./policy_config.ts";
import { PolicyError } from "./policy_error.ts";
import { formatHostPort } from "../protocol/host_port.ts";
import { type HostParse, parseHost, parseTarget, type Target } from "./target.ts";

/**
 * The outcome of a policy check. Checks never throw. (The Rust wasmnet returned
 * `Result<(), String>` with only a message; here the deciding rule is named too.)
 *
 * - `allowed`: whether the operation may proceed.
 * - `rule`: the rule text that decided, as written in the policy (`"127.0.0.0/8"`,
 *   `"*.example.com:443"`, `"*"`), or one of these fixed words:
 *   `"default-deny"` (`*` in deny and no allow rule matched), `"no-allow-rule"` (allow list without
 *   `*` and no rule matched), `"allow-all"` (policy disabled, {@linkcode Policy.allowAll}),
 *   `"invalid-target"`, `"invalid-address"`, `"invalid-port"`, `"bind_ports"`, `"bind_addrs"`,
 *   `"ticket"` (the policy allowed it, the ticket's allow list of a {@linkcode Policy.narrow}ed
 *   policy did not).
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
  readonly #compiled: CompiledPolicy;
  /** Allow lists of {@linkcode Policy.narrow}: a subject must pass every one too. */
  readonly #narrowings: readonly CompiledNarrowing[];

  private constructor(
    config: Readonly<PolicyConfig>,
    compiled: CompiledPolicy,
    narrowings: readonly CompiledNarrowing[] = [],
  ) {
    this.config = Object.freeze({
      ...config,
      deny: Object.freeze([...config.deny]) as string[],
      allow: Object.freeze([...config.allow]) as string[],
      bindAddrs: Object.freeze([...config.bindAddrs]) as string[],
    });
    this.#compiled = compiled;
    this.#narrowings = narrowings;
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
    return new Policy(ALLOW_ALL_CONFIG, compile(ALLOW_ALL_CONFIG, "<allow-all>", true));
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
    const full = configFromObject(config, source);
    return new Policy(full, compile(full, source, false));
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
    const full = configFromToml(text, source);
    return new Policy(full, compile(full, source, false));
  }

  /**
   * This policy as a policy file: a `[network]` table with every key (the inverse of
   * {@linkcode Policy.fromToml}: `Policy.fromToml(p.toToml(), f).config` equals `p.config`).
   * Rule texts are written as given (`@default` stays `@default`).
   *
   * @throws {Error} for {@linkcode Policy.allowAll}, whose disabled checks no policy file can
   *   express (the command line says `--no-policy` instead).
   */
  toToml(): string {
    if (this.#compiled.rules.allowAll) {
      throw new Error("Policy.allowAll() has no policy file form (use --no-policy)");
    }
    if (this.#narrowings.length > 0) {
      throw new Error("a narrowed policy (Policy.narrow) has no policy file form");
    }
    return configToToml(this.config);
  }

  /**
   * This policy AND a ticket's restrictions: a new, immutable policy whose every check (connect,
   * resolved address, `send_to`, lookup, lookup answer, bind) must pass this policy first and then
   * the ticket's allow list, decided by the same decision function. A ticket can only narrow:
   * nothing this policy denies is ever allowed.
   *
   * The allow list uses the syntax of the policy file's `allow` entries and is decided as an
   * allow list (`*` in it lifts the rule narrowing), with these consequences:
   * - a name rule (`db.example.com:5432`) admits dials BY THAT NAME (and its subdomains, as in
   *   the policy) on its ports; each address the name resolves to is then admitted by the name's
   *   rule. A dial by IP address, even to an address the name resolves to, needs an IP/CIDR rule
   *   in the list: the server cannot know which name an address belongs to;
   * - an IP/CIDR rule (`10.0.0.0/8:443`) admits that address in any spelling (`127.1` is
   *   `127.0.0.1`, `::ffff:127.0.0.1` too, as everywhere in the policy), but never a name;
   * - special-purpose ranges are left to this policy (it has checked them already), so a rule
   *   for `db.internal` reaches the private address it resolves to only if this policy allows it;
   * - a lookup (`resolve`) needs a rule for the name (or address) on some port;
   * - a bind needs an IP/CIDR rule covering the address and port (a port-less rule for port 0).
   *
   * Denials read `127.0.0.1:22 is not in the ticket's allow list (sub alice)` (rule `"ticket"`).
   * `maxConnections` lowers `max_connections` (the smaller wins). Narrowing a narrowed policy
   * stacks the lists. (Issue 14: a ticket can never widen the server policy.)
   *
   * @param ticket `label` names the ticket in denials (`sub alice`); `allow` the rules (undefined:
   *   no rule narrowing); `maxConnections` an integer from 1.
   * @returns the narrowed policy (its `config` is this one's, `maxConnections` lowered)
   * @throws {PolicyError} for a malformed rule or `maxConnections`, naming `ticket (<label>)`:
   *   `Cannot load policy "ticket (sub alice)": allow[0] = "db:99999" is not a valid rule (...)`
   *
   * @example
   * ```ts
   * import { Policy, parseTarget } from "./mod.ts";
   * import assert from "node:assert/strict";
   * const server = Policy.fromConfig({ deny: [], allow: ["*"] });
   * const session = server.narrow({ label: "sub alice", allow: ["127.0.0.1:5432"] });
   * const at = (host: string, port: number) => {
   *   const t = parseTarget(host);
   *   assert.ok(t.kind !== "invalid");
   *   return session.checkTarget(t, port);
   * };
   * assert.equal(at("127.1", 5432).allowed, true);
   * assert.equal(at("127.0.0.1", 22).reason, "127.0.0.1:22 is not in the ticket's allow list (sub alice)");
   * assert.equal(at("localhost", 5432).rule, "ticket");
   * ```
   */
  narrow(
    ticket: {
      readonly label: string;
      readonly allow?: readonly string[] | undefined;
      readonly maxConnections?: number | undefined;
    },
  ): Policy {
    const source = `ticket (${ticket.label})`;
    const { maxConnections } = ticket;
    let config = this.config;
    if (maxConnections !== undefined) {
      if (
        typeof maxConnections !== "number" || !Number.isInteger(maxConnections) ||
        maxConnections < 1 || maxConnections > MAX_CONNECTIONS_LIMIT
      ) {
        throw new PolicyError(
          source,
          `max_connections = ${
            show(maxConnections)
          } is not valid (expected an integer from 1 to ${MAX_CONNECTIONS_LIMIT})`,
        );
      }
      config = { ...config, maxConnections: Math.min(config.maxConnections, maxConnections) };
    }
    const narrowings = ticket.allow === undefined ? this.#narrowings : [
      ...this.#narrowings,
      { label: ticket.label, rules: compileAllowList(source, ticket.allow) },
    ];
    return new Policy(config, this.#compiled, narrowings);
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
   * `127.0.0.1`. Never throws. (DESIGN.md §5: every spelling normalised, deny wins; `send_to`
   * destinations are checked with it too.)
   */
  checkTarget(target: Target, port: number): Verdict {
    if (!validPort(port, 1)) return invalidPort(port, 1);
    const raw = target.kind === "ip" ? target.ip : target.name;
    const host = parseHost(raw);
    if (!host.ok) return invalidTarget(raw, host.reason);
    return this.#phrase(connect(host, port), subjectOf(host), port);
  }

  /**
   * Checks one address that an (already allowed) name resolved to. Re-checks the name, then:
   * the address (and any IPv4 it embeds) must match no deny rule; in allow-list mode an address in
   * a {@linkcode DEFAULT_DENY} range also needs an allow IP/CIDR rule that covers it (see the class
   * documentation). The Rust wasmnet checked resolved addresses against the deny list only, and in
   * deny-all mode not at all. `ip` is any accepted spelling; `port` an integer 1-65535.
   * Never throws. (DESIGN.md §5: checks apply to every resolved address; in deny-all mode an
   * allowed name must still resolve only to allowed addresses.)
   */
  checkResolved(name: string, ip: string, port: number): Verdict {
    if (!validPort(port, 1)) return invalidPort(port, 1);
    const nameHost = parseHost(name);
    if (!nameHost.ok) return invalidTarget(name, nameHost.reason);
    const addr = parseHost(ip);
    if (!addr.ok || addr.ip === undefined) return invalidAddress(ip);
    if (nameHost.ip !== undefined) return this.#phrase(connect(addr, port), subjectOf(addr), port);
    const subject: Subject = { kind: "resolved", name: nameHost.name, ip: addr.ip };
    return this.#phrase(resolved(nameHost.name, addr.ip, port), subject, port);
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
   * `connect` and `send_to` still run the port-specific checks. Never throws. (DESIGN.md §5:
   * `resolve` names are policy-checked.)
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
    return this.#phrase(lookup(hostText(host)), subjectOf(host), ANY_PORT);
  }

  /**
   * Should `ip`, an answer for the (allowed) `name`, be returned to the client of a `resolve`?
   * Re-checks the name with {@linkcode Policy.checkLookup}, then applies the address logic of
   * {@linkcode Policy.checkResolved} without a port: the address is dropped when a deny IP/CIDR
   * rule without a port (or with every port) covers it or an IPv4 address it embeds, or — in
   * allow-list mode — when it lies in a {@linkcode DEFAULT_DENY} range (by itself or its embedded
   * IPv4) that no allow IP/CIDR rule (on any port) covers. If `name` is a literal IP, only `ip`
   * is checked. `ip` is any accepted spelling. Never throws. (DESIGN.md §5: checks apply to every
   * resolved address, here before the client sees it.)
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
    if (nameHost.ip !== undefined) {
      return this.#phrase(lookup(hostText(addr)), subjectOf(addr), ANY_PORT);
    }
    const subject: Subject = { kind: "resolved", name: nameHost.name, ip: addr.ip };
    return this.#phrase(answer(nameHost.name, addr.ip), subject, ANY_PORT);
  }

  /**
   * Checks a `bind`: `port` (integer 0-65535) must lie in `bind_ports` and `ip` (any accepted
   * spelling; names are refused) in a `bind_addrs` entry. `0.0.0.0` and `::` are allowed only if
   * an entry covers them. Reasons follow wasmnet: `port 80 not in allowed bind range (3000-9999)`.
   * `bind_addrs` is decided as an allow list of IP/CIDR rules, by the same decision function as
   * the other checks. Never throws. (DESIGN.md §5: `bind` addresses are policy-checked.)
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
    const { bind, bindPorts } = this.#compiled;
    // Ports first, for wasmnet's message. (Under allow-all, bind_ports is 0-65535: always passes.)
    if (!bindPorts.some((r) => portMatches(r, port))) {
      return {
        allowed: false,
        rule: "bind_ports",
        reason: `port ${port} not in allowed bind range (${
          bindPorts.map(formatPortRange).join(",") || "none"
        })`,
      };
    }
    const outcome = decide(bind, { kind: "ip", ip: addr.ip }, port);
    if (isAllowed(outcome)) {
      const phrasing = bound(addr, port, this.config.bindPorts);
      const verdict = phraseOutcome(phrasing, outcome);
      return this.#narrowed(verdict, phrasing, { kind: "ip", ip: addr.ip }, port);
    }
    // The bind rule set has no deny rules and no `*`: the only refusal is "no allow rule".
    return {
      allowed: false,
      rule: "bind_addrs",
      reason: `address ${formatIp(addr.ip)} not in allowed bind addresses (${
        bind.allow.map((r) => r.text).join(", ") || "none"
      })`,
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
    if (parsed.kind === "name" && verdict.allowed && !this.#compiled.rules.allowAll) {
      const special = isPermissive(this.#compiled.rules)
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

  /**
   * Decides `subject` on `port` with the connect/lookup rules, then (if allowed) with each
   * {@linkcode Policy.narrow} allow list, and words the outcome with `phrasing`.
   */
  #phrase(phrasing: Phrasing, subject: Subject, port: PortSpec): Verdict {
    const verdict = phraseOutcome(phrasing, decide(this.#compiled.rules, subject, port));
    return this.#narrowed(verdict, phrasing, subject, port);
  }

  /** `verdict` when it is a denial or every narrowing allows `subject` too; else the refusal. */
  #narrowed(verdict: Verdict, phrasing: Phrasing, subject: Subject, port: PortSpec): Verdict {
    if (!verdict.allowed) return verdict;
    for (const n of this.#narrowings) {
      const outcome = decide(n.rules, subject, port);
      if (isAllowed(outcome)) continue;
      const p = outcome.kind === "name-refused" ? phrasing.name ?? phrasing : phrasing;
      return { allowed: false, rule: "ticket", reason: p.outside(n.label) };
    }
    return verdict;
  }
}

// ── Phrasing: one small table per context, turning an Outcome into a Verdict ──

/**
 * How one context words each {@linkcode Outcome}. Arguments are ready-made fragments:
 * `denied` gets `rule "10.0.0.0/8" (private-use, RFC 1918)` plus any `via …` tail, `allowed` the
 * JSON-quoted rule text, `special` `default-deny range "…" (…)…; <hint>`, `refused` why no allow
 * rule admitted the subject.
 */
interface Phrasing {
  readonly denied: (rule: string) => string;
  readonly allowed: (rule: string) => string;
  readonly special: (range: string) => string;
  readonly refused: (why: string) => string;
  /** The whole reason when the policy is disabled (`--no-policy`). */
  readonly allowAll: () => string;
  /** How the name's own outcome is worded, for a resolved address whose name is refused. */
  readonly name?: Phrasing;
  /** A subject the policy allows but a ticket's allow list (labelled `label`) does not. */
  readonly outside: (label: string) => string;
}

/** A {@linkcode Policy.narrow} allow list, compiled. */
interface CompiledNarrowing {
  /** Names the ticket in denials (`sub alice`). */
  readonly label: string;
  /** The allow list as the decision function reads it. */
  readonly rules: RuleSet;
}

/** The tail of a denial by a ticket: `is not in the ticket's allow list (sub alice)`. */
function notInTicket(label: string): string {
  return `is not in the ticket's allow list (${label})`;
}

const DISABLED = "is allowed: policy checks are disabled (allow-all)";

/** Connect / send_to of a name or a literal address: `10.0.0.1:80 is denied by rule "…"`. */
function connect(host: Host, port: number): Phrasing {
  // Worded only when a reason is read (allowed dials usually never are).
  const hp = once(() => formatHostPort(hostText(host), port));
  return {
    denied: (rule) => `${hp()} is denied by ${rule}`,
    allowed: (rule) => `${hp()} is allowed by rule ${rule}`,
    special: (range) => `${hp()} is in ${range}`,
    refused: (why) => `${hp()} is denied: ${why}`,
    allowAll: () => `${hp()} ${DISABLED}`,
    outside: (label) => `${hp()} ${notInTicket(label)}`,
  };
}

/** `make()`'s value, computed at the first call. */
function once(make: () => string): () => string {
  let value: string | undefined;
  return () => value ??= make();
}

/** Resolve of a name or a literal address: `lookup of example.com is allowed by rule "*"`. */
function lookup(text: string): Phrasing {
  const subject = `lookup of ${text}`;
  return {
    denied: (rule) => `${subject} is denied by ${rule}`,
    allowed: (rule) => `${subject} is allowed by rule ${rule}`,
    special: (range) => `${subject} is denied: the address is in ${range}`,
    refused: (why) => `${subject} is denied: ${why}`,
    allowAll: () => `${subject} ${DISABLED}`,
    outside: (label) => `${subject} ${notInTicket(label)}`,
  };
}

/** An address a name resolved to, before a dial: `example.com:443 resolved to 10.1.1.1, …`. */
function resolved(name: string, ip: IpBytes, port: number): Phrasing {
  const hp = `${name}:${port}`;
  const addr = once(() => formatIp(ip));
  return {
    denied: (rule) => `${hp} resolved to ${addr()}, which is denied by ${rule}`,
    allowed: (rule) => `${hp} (${addr()}) is allowed by rule ${rule}`,
    special: (range) => `${hp} resolved to ${addr()}, which is in ${range}`,
    refused: (why) => `${hp} resolved to ${addr()}, which is denied: ${why}`,
    allowAll: () => `${formatHostPort(addr(), port)} ${DISABLED}`,
    name: connect({ ok: true, name }, port),
    outside: (label) => `${hp} resolved to ${addr()}, which ${notInTicket(label)}`,
  };
}

/** An answer of a `resolve`: `lookup of example.com may return 93.184.216.34: allowed by …`. */
function answer(name: string, ip: IpBytes): Phrasing {
  const subject = `lookup of ${name}`;
  const addr = formatIp(ip);
  return {
    denied: (rule) => `${subject} answered ${addr}, which is denied by ${rule}`,
    allowed: (rule) => `${subject} may return ${addr}: allowed by rule ${rule}`,
    special: (range) => `${subject} answered ${addr}, which is in ${range}`,
    refused: (why) => `${subject} answered ${addr}, which is denied: ${why}`,
    allowAll: () => `lookup of ${addr} ${DISABLED}`,
    name: lookup(name),
    outside: (label) => `${subject} answered ${addr}, which ${notInTicket(label)}`,
  };
}

/** An allowed bind (refusals are worded by `checkBind` itself, as in wasmnet). */
function bound(host: Host, port: number, bindPorts: string): Phrasing {
  const hp = formatHostPort(hostText(host), port);
  return {
    ...connect(host, port),
    allowed: (rule) =>
      `bind to ${hp} is allowed by bind_ports ${JSON.stringify(bindPorts)} and bind_addrs ${rule}`,
    outside: (label) => `bind to ${hp} ${notInTicket(label)}`,
  };
}

const SPECIAL_HINT =
  "in allow-list mode only an allow IP/CIDR rule admits special-purpose addresses";

/**
 * An allowed verdict whose `reason` is worded when first read: most allowed checks (every dial)
 * are never explained, and wording them showed in connect+close profiles.
 */
function allowedVerdict(rule: string, word: () => string): Verdict {
  let reason: string | undefined;
  return {
    allowed: true,
    rule,
    get reason(): string {
      return reason ??= word();
    },
    set reason(text: string) {
      reason = text;
    },
  };
}

/** Words `outcome` with `p`; the verdict's `rule` is the deciding rule or fixed word. */
function phraseOutcome(p: Phrasing, outcome: Outcome): Verdict {
  switch (outcome.kind) {
    case "allow-all":
      return allowedVerdict("allow-all", p.allowAll);
    case "allowed-by": {
      const rule = outcome.rule;
      return allowedVerdict(rule, () => p.allowed(JSON.stringify(rule)));
    }
    case "denied-by": {
      const { rule, via } = outcome;
      return {
        allowed: false,
        rule: rule.text,
        reason: p.denied(`${describeRule(rule)}${viaText(via)}`),
      };
    }
    case "special-range": {
      const { range, via } = outcome;
      return {
        allowed: false,
        rule: range.rule,
        reason: p.special(
          `default-deny range ${JSON.stringify(range.rule)} (${range.note})${
            viaText(via)
          }; ${SPECIAL_HINT}`,
        ),
      };
    }
    case "no-allow-rule":
      return { allowed: false, rule: "no-allow-rule", reason: p.refused("no allow rule matches") };
    case "default-deny":
      return {
        allowed: false,
        rule: "default-deny",
        reason: p.refused('"*" in deny (deny-all mode) and no allow rule matches'),
      };
    case "name-refused":
      return phraseOutcome(p.name ?? p, outcome.name);
    default: {
      const never: never = outcome;
      return never;
    }
  }
}

function describeRule(rule: Rule): string {
  const note = rule.kind === "any" ? undefined : rule.note;
  return `rule ${JSON.stringify(rule.text)}${note === undefined ? "" : ` (${note})`}`;
}

function viaText(via: { readonly ip: IpBytes; readonly via: string } | undefined): string {
  return via === undefined ? "" : ` via its embedded ${via.via} IPv4 address ${formatIp(via.ip)}`;
}

// ── Input checks shared by the public methods ──

/** A successfully parsed host: IP bytes (IPv4-mapped already unmapped) or a normalised name. */
type Host = HostParse & { ok: true };

function subjectOf(host: Host): Subject {
  return host.ip !== undefined ? { kind: "ip", ip: host.ip } : { kind: "name", name: host.name };
}

function hostText(host: Host): string {
  return host.ip !== undefined ? formatIp(host.ip) : host.name;
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

/** The verdict for a resolved/answer address that is not an IP address. */
function invalidAddress(ip: string): Verdict {
  return { allowed: false, rule: "invalid-address", reason: `${show(ip)} is not an IP address` };
}

function invalidTarget(raw: unknown, reason: string): Verdict {
  return { allowed: false, rule: "invalid-target", reason: `${show(raw)} ${reason}` };
}
