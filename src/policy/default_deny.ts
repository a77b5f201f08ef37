// The default deny list: every special-purpose range that is not globally reachable.
// Pure and browser-safe (no Deno.*).

/**
 * The rule token that expands to {@linkcode DEFAULT_DENY} plus {@linkcode DEFAULT_DENY_NAMES}
 * inside a `deny` list, e.g. `deny = ["@default", "evil.example"]`. Not valid in `allow`.
 * (New in this implementation; the Rust wasmnet has no such token.)
 */
export const DEFAULT_DENY_TOKEN = "@default";

/**
 * Each default-deny range with a short note, in match order (the first match names the rule in a
 * verdict). Sources: the IANA IPv4 and IPv6 Special-Purpose Address Registries, every entry whose
 * "Globally Reachable" is false, plus multicast and the reserved 240/4.
 *
 * Every IPv6 form that embeds an IPv4 address (see `embeddedIpv4`) is also checked as that IPv4
 * address. IPv6 ranges audited (IANA IPv6 Special-Purpose Address Registry; RFC 2765, 4291, 4380,
 * 5214, 6052, 6146, 7343, 8215): IPv4-mapped `::ffff:0:0/96` is normalised to IPv4 before matching;
 * IPv4-compatible `::/96`, IPv4-translated `::ffff:0:0:0/96`, local-use NAT64 `64:ff9b:1::/48` and
 * Teredo (inside `2001::/23`) are denied whole and checked by embedded IPv4; NAT64 `64:ff9b::/96`
 * and 6to4 `2002::/16` are globally reachable, so only their embedded IPv4 is checked; ISATAP
 * interface ids are checked by embedded IPv4 wherever they appear; network-specific NAT64 prefixes
 * (RFC 6146) and 6rd prefixes are chosen by each operator and cannot be recognised. Not listed: the
 * unallocated remainder of the IPv6 space outside `2000::/3` (not routable).
 */
export const DEFAULT_DENY_RANGES: ReadonlyArray<{ readonly rule: string; readonly note: string }> =
  [
    { rule: "0.0.0.0/8", note: '"this network", RFC 791' },
    { rule: "10.0.0.0/8", note: "private-use, RFC 1918" },
    {
      rule: "100.64.0.0/10",
      note: "shared address space (CGNAT), RFC 6598; incl. Alibaba metadata 100.100.100.200",
    },
    { rule: "127.0.0.0/8", note: "loopback" },
    {
      rule: "169.254.0.0/16",
      note: "link-local; incl. cloud metadata 169.254.169.254",
    },
    { rule: "172.16.0.0/12", note: "private-use, RFC 1918" },
    { rule: "192.0.0.0/24", note: "IETF protocol assignments, RFC 6890" },
    { rule: "192.0.2.0/24", note: "documentation (TEST-NET-1), RFC 5737" },
    { rule: "192.88.99.0/24", note: "deprecated 6to4 relay anycast, RFC 7526" },
    { rule: "192.168.0.0/16", note: "private-use, RFC 1918" },
    { rule: "198.18.0.0/15", note: "benchmarking, RFC 2544" },
    { rule: "198.51.100.0/24", note: "documentation (TEST-NET-2), RFC 5737" },
    { rule: "203.0.113.0/24", note: "documentation (TEST-NET-3), RFC 5737" },
    { rule: "224.0.0.0/4", note: "multicast" },
    { rule: "240.0.0.0/4", note: "reserved, incl. broadcast 255.255.255.255" },
    { rule: "::/128", note: "unspecified address" },
    { rule: "::1/128", note: "loopback" },
    { rule: "::/96", note: "deprecated IPv4-compatible, RFC 4291" },
    { rule: "::ffff:0:0:0/96", note: "IPv4-translated (SIIT), RFC 2765; not routable" },
    { rule: "64:ff9b:1::/48", note: "local-use NAT64, RFC 8215" },
    { rule: "100::/64", note: "discard-only, RFC 6666" },
    { rule: "100:0:0:1::/64", note: "dummy prefix, RFC 9780" },
    {
      rule: "2001::/23",
      note: "IETF protocol assignments incl. Teredo, denied whole, RFC 2928",
    },
    { rule: "2001:db8::/32", note: "documentation, RFC 3849" },
    { rule: "3fff::/20", note: "documentation, RFC 9637" },
    { rule: "5f00::/16", note: "SRv6 SIDs, RFC 9602" },
    { rule: "fc00::/7", note: "unique local, RFC 4193; incl. AWS metadata fd00:ec2::254" },
    { rule: "fe80::/10", note: "link-local" },
    { rule: "fec0::/10", note: "deprecated site-local, RFC 3879" },
    { rule: "ff00::/8", note: "multicast" },
  ];

/**
 * The default-deny CIDRs (see {@linkcode DEFAULT_DENY_RANGES} for the note on each):
 * all IPv4 and IPv6 special-purpose ranges that are not globally reachable. The Rust wasmnet
 * 0.1.3 denied only 10/8, 172.16/12, 192.168/16, 127/8 and 169.254/16 (and no IPv6 at all).
 *
 * `2001::/23` is denied whole, although IANA marks a few small blocks inside it globally reachable
 * (e.g. `2001:1::1/128`, `2001:3::/32`, `2001:4:112::/48`, `2001:20::/28`). Deny wins over allow,
 * so to reach them write an explicit `deny` list: these ranges without `2001::/23`.
 */
export const DEFAULT_DENY: readonly string[] = Object.freeze(
  DEFAULT_DENY_RANGES.map((r) => r.rule),
);

/**
 * Each default-deny name with a note. A name rule covers the name and all its subdomains, so
 * `localhost` also denies `a.localhost`.
 */
export const DEFAULT_DENY_NAME_RULES: ReadonlyArray<
  { readonly rule: string; readonly note: string }
> = [
  { rule: "localhost", note: "loopback name, RFC 6761" },
  { rule: "local", note: "multicast DNS, RFC 6762" },
  { rule: "internal", note: "private-use top-level domain" },
  { rule: "home.arpa", note: "home networks, RFC 8375" },
];

/**
 * The default-deny names: `localhost`, `local`, `internal`, `home.arpa`, each with its subdomains.
 * Defence in depth: their addresses are checked after DNS anyway, but these names often resolve
 * to LAN hosts through mDNS or split DNS, including to global IPv6 addresses.
 */
export const DEFAULT_DENY_NAMES: readonly string[] = Object.freeze(
  DEFAULT_DENY_NAME_RULES.map((r) => r.rule),
);
