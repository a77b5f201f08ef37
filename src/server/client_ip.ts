/**
 * The client's address behind reverse proxies (`--trust-proxy CIDR...`): a peer inside a trusted
 * CIDR may name the client in `X-Forwarded-For` or `Forwarded` (RFC 7239 §5.2); any other peer is
 * the client itself, whatever headers it sends. Pure (ipaddr.js for the CIDR maths).
 *
 * @module
 */
import ipaddr from "ipaddr.js";

/** A parsed address, IPv4-mapped IPv6 folded to IPv4 (`::ffff:1.2.3.4` is `1.2.3.4`). */
function parseIp(text: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  let t = text.trim();
  if (t.startsWith("[")) t = t.slice(1, t.indexOf("]") > 0 ? t.indexOf("]") : undefined);
  if (!ipaddr.isValid(t)) return undefined;
  const ip = ipaddr.parse(t);
  return ip.kind() === "ipv6" && (ip as ipaddr.IPv6).isIPv4MappedAddress()
    ? (ip as ipaddr.IPv6).toIPv4Address()
    : ip;
}

/**
 * Parses trusted-proxy CIDRs (`10.0.0.0/8`, `::1/128`, or a bare address meaning one host).
 *
 * @throws {RangeError} naming the first entry that is not an address or CIDR.
 */
export function parseTrustedProxies(
  cidrs: readonly string[],
): Array<[ipaddr.IPv4 | ipaddr.IPv6, number]> {
  return cidrs.map((c) => {
    const text = c.trim();
    try {
      if (text.includes("/")) {
        const [ip, bits] = ipaddr.parseCIDR(text);
        if (ip.kind() === "ipv6" && (ip as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
          return [(ip as ipaddr.IPv6).toIPv4Address(), bits - 96]; // ::ffff:a.b.c.d/104 → /8
        }
        return [ip, bits];
      }
      const ip = parseIp(text);
      if (ip === undefined) throw new Error("not an address");
      return [ip, ip.kind() === "ipv4" ? 32 : 128];
    } catch {
      throw new RangeError(`invalid --trust-proxy entry ${JSON.stringify(c)} (expected a CIDR)`);
    }
  });
}

/**
 * Builds a check of whether an address is one of the trusted proxies (`--trust-proxy`); an
 * unparsable address is not.
 *
 * @throws {RangeError} for a bad CIDR (see {@linkcode parseTrustedProxies}).
 */
export function trustedProxyCheck(trusted: readonly string[]): (ip: string) => boolean {
  const nets = parseTrustedProxies(trusted);
  return (text) => {
    const ip = parseIp(text);
    return ip !== undefined &&
      nets.some(([net, bits]) => net.kind() === ip.kind() && ip.match(net, bits));
  };
}

/**
 * The addresses a `Forwarded` header (RFC 7239) names in its `for=` parameters, in order
 * (obfuscated identifiers and `unknown` are kept as they are, so they stop the walk).
 */
function forwardedFor(header: string): string[] {
  const out: string[] = [];
  for (const element of header.split(",")) {
    for (const pair of element.split(";")) {
      const eq = pair.indexOf("=");
      if (eq < 0 || pair.slice(0, eq).trim().toLowerCase() !== "for") continue;
      let value = pair.slice(eq + 1).trim();
      if (value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      // `[v6]:port` or `v4:port`: drop the port.
      if (value.startsWith("[")) value = value.slice(0, value.indexOf("]") + 1);
      else if (value.split(":").length === 2) value = value.slice(0, value.indexOf(":"));
      out.push(value);
    }
  }
  return out;
}

/**
 * Builds the function that finds a request's client address: `peer` (the TCP peer) when it is not
 * a trusted proxy; otherwise the chain of `Forwarded` `for=` (preferred) or `X-Forwarded-For`
 * addresses is walked from the right, skipping trusted proxies, and the first untrusted address is
 * the client (a malformed entry ends the walk at the last trusted hop). Headers from an untrusted
 * peer are ignored.
 *
 * @param trusted the `--trust-proxy` CIDRs (empty: every peer is the client).
 * @returns `(peer, header) => clientIp`, where `header(name)` reads a request header (lower-case
 *   name) and the result is an IP address string (IPv4-mapped IPv6 as IPv4).
 * @throws {RangeError} for a bad CIDR (see {@linkcode parseTrustedProxies}).
 */
export function clientIpResolver(
  trusted: readonly string[],
): (peer: string, header: (name: string) => string | undefined) => string {
  const nets = parseTrustedProxies(trusted);
  const isTrusted = (ip: ipaddr.IPv4 | ipaddr.IPv6): boolean =>
    nets.some(([net, bits]) => net.kind() === ip.kind() && ip.match(net, bits));
  return (peer, header) => {
    const peerIp = parseIp(peer);
    if (peerIp === undefined) return peer;
    const normalPeer = peerIp.toString();
    if (nets.length === 0 || !isTrusted(peerIp)) return normalPeer;
    const forwarded = header("forwarded");
    const chain = forwarded !== undefined
      ? forwardedFor(forwarded)
      : (header("x-forwarded-for") ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
    let client = normalPeer;
    for (let i = chain.length - 1; i >= 0; i--) {
      const ip = parseIp(chain[i] ?? "");
      if (ip === undefined) break;
      client = ip.toString();
      if (!isTrusted(ip)) break;
    }
    return client;
  };
}
