// Private: the rule grammar (deny/allow entries, port ranges, bind addresses).
// Pure and browser-safe (no Deno.*).

import { type Cidr, formatCidr, type IpBytes, parseIpv6, unmap } from "./_ip.ts";
import { parseHost } from "./target.ts";

/** An inclusive port range; a single port has `lo === hi`. */
export interface PortRange {
  readonly lo: number;
  readonly hi: number;
}

/** One parsed deny/allow rule. `text` is the rule as written (trimmed); `ports` undefined = any. */
export type Rule =
  | { readonly kind: "any"; readonly text: string; readonly ports: PortRange | undefined }
  | {
    readonly kind: "net";
    readonly text: string;
    readonly net: Cidr;
    readonly ports: PortRange | undefined;
    readonly note: string | undefined;
  }
  | {
    readonly kind: "domain";
    readonly text: string;
    readonly name: string;
    readonly subdomainsOnly: boolean;
    readonly ports: PortRange | undefined;
    readonly note: string | undefined;
  };

/** A parse result: the value, or the reason (shown in parentheses after the bad value). */
export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

const PORT = /^\d{1,5}$/;

/** Parses `443` or `8000-8999` (0-65535). */
function parsePortRange(text: string): Parsed<PortRange> {
  const dash = text.indexOf("-");
  const loText = dash < 0 ? text : text.slice(0, dash);
  const hiText = dash < 0 ? text : text.slice(dash + 1);
  const lo = parsePort(loText.trim());
  if (!lo.ok) return lo;
  const hi = parsePort(hiText.trim());
  if (!hi.ok) return hi;
  if (lo.value > hi.value) {
    return { ok: false, reason: `range ${lo.value}-${hi.value} is reversed` };
  }
  return { ok: true, value: { lo: lo.value, hi: hi.value } };
}

function parsePort(text: string): Parsed<number> {
  if (!PORT.test(text)) {
    return { ok: false, reason: `${JSON.stringify(text)} is not a port number` };
  }
  const n = Number(text);
  if (n > 65535) return { ok: false, reason: `port ${n} > 65535` };
  return { ok: true, value: n };
}

/** Parses `bind_ports`: comma-separated ports and ranges (`"3000-3999, 8080"`); `""` = none. */
export function parsePortList(text: string): Parsed<PortRange[]> {
  if (text.trim() === "") return { ok: true, value: [] };
  const out: PortRange[] = [];
  for (const part of text.split(",")) {
    const r = parsePortRange(part.trim());
    if (!r.ok) return r;
    out.push(r.value);
  }
  return { ok: true, value: out };
}

/** Whether `port` lies in `ports` (`undefined` = every port). */
export function portMatches(ports: PortRange | undefined, port: number): boolean {
  return ports === undefined || (port >= ports.lo && port <= ports.hi);
}

/**
 * Parses an IP or CIDR (`10.0.0.0/8`, `fd00::/8`, `::1`, numeric IPv4 spellings too). An
 * IPv4-mapped IPv6 network of prefix ≥ 96 becomes the IPv4 network (`::ffff:10.0.0.0/104` →
 * `10.0.0.0/8`). Host bits may be set; they are ignored.
 */
export function parseCidr(text: string): Parsed<Cidr> {
  const slash = text.indexOf("/");
  const addrText = slash < 0 ? text : text.slice(0, slash);
  let ip: IpBytes;
  if (addrText.split(":").length === 2) {
    return {
      ok: false,
      reason: `${JSON.stringify(addrText)} is not an IP address (a port is not allowed here)`,
    };
  }
  if (addrText.includes(":")) {
    const p = parseIpv6(addrText);
    if (!p.ok) return { ok: false, reason: `${JSON.stringify(addrText)} ${p.reason}` };
    ip = p.ip;
  } else {
    const h = parseHost(addrText);
    if (!h.ok || h.ip === undefined) {
      return { ok: false, reason: `${JSON.stringify(addrText)} is not an IP address` };
    }
    ip = h.ip;
  }
  const max = ip.family === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lenText)) {
      return { ok: false, reason: `prefix length ${JSON.stringify(lenText)} is not a number` };
    }
    prefix = Number(lenText);
    if (prefix > max) return { ok: false, reason: `prefix length ${prefix} > ${max}` };
  }
  const unmapped = unmap(ip);
  if (unmapped.family === 4 && ip.family === 6) {
    if (prefix >= 96) return { ok: true, value: { ...unmapped, prefix: prefix - 96 } };
  }
  return { ok: true, value: { family: ip.family, bytes: ip.bytes, prefix } };
}

/** Looks up a note (e.g. "loopback") for rules equal to a default-deny entry. */
export type NoteLookup = (canonical: string) => string | undefined;

/**
 * Parses one deny/allow rule (already trimmed, not `@default`):
 * `*`, `*:PORTS`, `IP[:PORTS]`, `CIDR[:PORTS]`, `[IPv6][:PORTS]`, `[IPv6-CIDR][:PORTS]`,
 * an unbracketed IPv6 address or CIDR (no port), `name[:PORTS]`, `*.name[:PORTS]`,
 * where PORTS is `443` or `8000-8999`.
 */
export function parseRule(text: string, noteFor: NoteLookup): Parsed<Rule> {
  if (text === "") return { ok: false, reason: "empty" };
  if (text === "*") return { ok: true, value: { kind: "any", text, ports: undefined } };
  let host: string;
  let portText: string | undefined;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) return { ok: false, reason: "unclosed '['" };
    host = text.slice(1, close);
    const after = text.slice(close + 1);
    if (after !== "") {
      if (!after.startsWith(":")) return { ok: false, reason: "expected ':PORT' after ']'" };
      portText = after.slice(1);
    }
    if (!host.includes(":")) return { ok: false, reason: "brackets are only for IPv6" };
  } else {
    const colons = text.split(":").length - 1;
    if (colons >= 2) {
      host = text; // bare IPv6 address or CIDR; a port needs brackets
    } else if (colons === 1) {
      const i = text.indexOf(":");
      host = text.slice(0, i);
      portText = text.slice(i + 1);
    } else {
      host = text;
    }
  }
  let ports: PortRange | undefined;
  if (portText !== undefined) {
    const p = parsePortRange(portText);
    if (!p.ok) return p;
    ports = p.value;
  }
  if (host === "*") return { ok: true, value: { kind: "any", text, ports } };
  if (host.includes("/") || host.includes(":")) {
    const c = parseCidr(host);
    if (!c.ok) return c;
    return {
      ok: true,
      value: { kind: "net", text, net: c.value, ports, note: noteFor(formatCidr(c.value)) },
    };
  }
  let subdomainsOnly = false;
  let nameText = host;
  if (host.startsWith("*.")) {
    subdomainsOnly = true;
    nameText = host.slice(2);
  }
  const h = parseHost(nameText);
  if (!h.ok) return { ok: false, reason: `${JSON.stringify(nameText)} ${h.reason}` };
  if (h.ip !== undefined) {
    if (subdomainsOnly) return { ok: false, reason: "a wildcard needs a domain name, not an IP" };
    const max = h.ip.family === 4 ? 32 : 128;
    const net: Cidr = { ...h.ip, prefix: max };
    return { ok: true, value: { kind: "net", text, net, ports, note: noteFor(formatCidr(net)) } };
  }
  return {
    ok: true,
    value: {
      kind: "domain",
      text,
      name: h.name,
      subdomainsOnly,
      ports,
      note: subdomainsOnly ? undefined : noteFor(h.name),
    },
  };
}

/** Whether a domain rule covers `name` (already normalised) on some port: its ports ignored. */
export function nameMatches(
  rule: { name: string; subdomainsOnly: boolean },
  name: string,
): boolean {
  if (!rule.subdomainsOnly && name === rule.name) return true;
  return name.endsWith(`.${rule.name}`);
}

/** Whether a rule's port part covers every port a client can dial (none, `1-65535`, `0-65535`). */
export function everyPort(ports: PortRange | undefined): boolean {
  return ports === undefined || (ports.lo <= 1 && ports.hi === 65535);
}

/** `3000-9999` / `443` text of a range. */
export function formatPortRange(r: PortRange): string {
  return r.lo === r.hi ? String(r.lo) : `${r.lo}-${r.hi}`;
}
