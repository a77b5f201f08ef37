/**
 * The one `host:port` formatter and parser of the project: the text form of a socket address, as the wire
 * protocol's `accepted.remote` field carries it (wasmnet 0.1.3: `1.2.3.4:5678`, `[::1]:5678`) and as
 * logs, policy reasons and error messages show it. Pure and browser-safe.
 *
 * @module
 */

/**
 * Formats `host` and `port` as `host:port`, with an IPv6 address in brackets (RFC 3986 §3.2.2
 * `IP-literal`): `formatHostPort("::1", 80)` is `[::1]:80`, `formatHostPort("10.0.0.1", 22)` is
 * `10.0.0.1:22`, `formatHostPort("example.com", 443)` is `example.com:443`. A host that is already
 * bracketed is not bracketed again. Any host containing `:` is taken to be IPv6 (a host name
 * never contains one).
 *
 * @param host an IPv4 or IPv6 address (any spelling, with or without a `%zone`) or a host name.
 * @param port a port number (0-65535); printed as given.
 * @returns the `host:port` text.
 *
 * @example
 * ```ts
 * import { formatHostPort } from "./host_port.ts";
 * import assert from "node:assert/strict";
 * assert.equal(formatHostPort("::1", 8080), "[::1]:8080");
 * assert.equal(formatHostPort("127.0.0.1", 8080), "127.0.0.1:8080");
 * ```
 */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The host part of a `host:port` text made by {@linkcode formatHostPort}: `[::1]:80` → `::1`,
 * `10.0.0.1:22` → `10.0.0.1`; a text without a port (a bare IPv6 address, or no `:`) is returned
 * as it is, and "" stays "".
 *
 * @example
 * ```ts
 * import { hostOfHostPort } from "./host_port.ts";
 * import assert from "node:assert/strict";
 * assert.equal(hostOfHostPort("[::1]:8080"), "::1");
 * assert.equal(hostOfHostPort("127.0.0.1:8080"), "127.0.0.1");
 * assert.equal(hostOfHostPort("2001:db8::5"), "2001:db8::5");
 * ```
 */
export function hostOfHostPort(text: string): string {
  if (text.startsWith("[")) {
    const end = text.indexOf("]");
    return end > 0 ? text.slice(1, end) : text;
  }
  const colon = text.lastIndexOf(":");
  return colon > 0 && text.indexOf(":") === colon ? text.slice(0, colon) : text;
}

/** A host and a port, split from `host:port` by {@linkcode parseHostPort}. */
export interface HostPort {
  /** The host as written (a name or an IP address in any spelling), without brackets. */
  readonly host: string;
  /** The port, `minPort`–65535. */
  readonly port: number;
}

/**
 * Parses `host:port` or `[ipv6]:port` (RFC 3986 §3.2.2 brackets), the form
 * {@linkcode formatHostPort} writes: the destinations of harness plugins and W.A.T.E.R. modules,
 * wsproxy paths and `HOST:PORT` flags. A bare IPv6 address is refused (the port would be
 * ambiguous), as Go's `net.Dial` refuses it; the host is not checked further (the policy parses it).
 *
 * @param text the text to split.
 * @param minPort the smallest port accepted: 1 for destinations (default), 0 for a listen address.
 * @returns the parts, or a reason that completes `invalid address "TEXT": …`.
 *
 * @example
 * ```ts
 * import { parseHostPort } from "./host_port.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(parseHostPort("[::1]:80"), { host: "::1", port: 80 });
 * assert.deepEqual(parseHostPort("example.com:443"), { host: "example.com", port: 443 });
 * assert.equal(parseHostPort("::1:80"), "an IPv6 address needs brackets: [ipv6]:port");
 * assert.equal(parseHostPort("example.com"), "expected host:port");
 * ```
 */
export function parseHostPort(text: string, minPort = 1): HostPort | string {
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0 || text[close + 1] !== ":") return "expected [ipv6]:port";
    host = text.slice(1, close);
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) return "expected host:port";
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(":")) return "an IPv6 address needs brackets: [ipv6]:port";
  }
  if (host === "") return "empty host";
  if (!/^[0-9]{1,5}$/.test(portText)) return `bad port "${portText}"`;
  const port = Number(portText);
  if (port < minPort || port > 65_535) return `port ${port} out of range ${minPort}-65535`;
  return { host, port };
}
