// Connection targets: parse and normalise every spelling of a host before any rule sees it.
// Pure and browser-safe (no Deno.*).

import {
  formatIp,
  type IpBytes,
  isStrictIpv4,
  parseCanonicalIpv4,
  parseIpv6,
  parseStrictIpv4,
  unmap,
} from "./_ip.ts";

/**
 * A connection target after normalisation.
 *
 * - `ip`: `ip` is canonical text. IPv4 is a dotted quad (`127.0.0.1`); IPv6 is RFC 5952 text
 *   (lower case, longest zero run compressed to `::`), without brackets or zone id. An IPv4-mapped
 *   address (`::ffff:a.b.c.d`, `::ffff:7f00:1`) becomes family 4 with the IPv4 text.
 * - `name`: lower-case ASCII (IDN labels in punycode, `xn--…`), no trailing dot, hostname syntax
 *   checked (labels of 1-63 characters from `a-z 0-9 - _`, not starting or ending with `-`; at
 *   most 253 characters in all).
 */
export type Target =
  | { kind: "ip"; ip: string; family: 4 | 6 }
  | { kind: "name"; name: string };

/** The result of {@linkcode parseTarget}: a {@linkcode Target}, or why the input is not one. */
export type ParsedTarget = Target | { kind: "invalid"; reason: string };

/** Longest input accepted by {@linkcode parseTarget}, in UTF-16 code units. */
export const MAX_TARGET_LENGTH = 1024;

const FORBIDDEN: ReadonlyArray<readonly [string, string]> = [
  ["/", "contains '/'"],
  ["\\", "contains '\\'"],
  ["@", "contains '@'"],
  ["?", "contains '?'"],
  ["#", "contains '#'"],
  ["%", "contains '%'"],
  ["[", "contains '['"],
  ["]", "contains ']'"],
  ["*", "contains '*'"],
];
// deno-lint-ignore no-control-regex
const WHITESPACE_OR_CONTROL = /[\s\u0000-\u001f\u007f-\u009f]/u;
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * Parses a host as a client sent it (`connect.addr`, `resolve.name`, `send_to.addr`) into a
 * normalised {@linkcode Target}. Never throws; anything unusable is `{ kind: "invalid", reason }`
 * where `reason` completes the sentence `"<input>" <reason>` (e.g. `contains whitespace`).
 *
 * Normalisation (the Rust wasmnet 0.1.3 matched raw strings, so each of these was a bypass):
 * - IPv4 in any spelling the WHATWG URL host parser (and `inet_aton`) accepts: `127.1`,
 *   `2130706433`, `0x7f000001`, `0177.0.0.1`, `017700000001`, `0x7f.1`, a trailing dot → `127.0.0.1`.
 * - IPv6 with or without brackets, any case, zone id stripped (`fe80::1%eth0` → `fe80::1`);
 *   IPv4-mapped (`::ffff:127.0.0.1`, `::ffff:7f00:1`) → family 4. IPv4-compatible
 *   (`::127.0.0.1` → `::7f00:1`) stays family 6; the policy also checks its embedded IPv4.
 * - Names: Unicode mapping and IDN → punycode (`bücher.example` → `xn--bcher-kva.example`,
 *   full-width letters and `。` folded), lower case, one trailing dot removed.
 *
 * Rejected: empty input, whitespace and control characters, `/ \ @ ? # % [ ] *` outside an IPv6
 * literal, `host:port` (ports are separate fields), empty labels, and over-long names or labels.
 *
 * @example
 * ```ts
 * import { parseTarget } from "./target.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(parseTarget("0x7f000001"), { kind: "ip", ip: "127.0.0.1", family: 4 });
 * assert.deepEqual(parseTarget("[::FFFF:127.0.0.1]"), { kind: "ip", ip: "127.0.0.1", family: 4 });
 * assert.deepEqual(parseTarget("Bücher.Example."), { kind: "name", name: "xn--bcher-kva.example" });
 * ```
 */
export function parseTarget(input: string): ParsedTarget {
  // The common case, already canonical: no URL parsing, no re-formatting.
  if (typeof input === "string" && isStrictIpv4(input)) {
    return { kind: "ip", ip: input, family: 4 };
  }
  const result = parseHost(input);
  if (!result.ok) return { kind: "invalid", reason: result.reason };
  if (result.ip !== undefined) {
    return { kind: "ip", ip: formatIp(result.ip), family: result.ip.family };
  }
  return { kind: "name", name: result.name };
}

/**
 * Canonical text of an IP address as returned by DNS or a socket, in the same form as
 * {@linkcode Target} (`::ffff:10.0.0.1` → `10.0.0.1`, `[::1]` → `::1`), or `undefined` if the input
 * is not an IP address in any accepted spelling.
 */
export function canonicalIp(ip: string): string | undefined {
  const t = parseTarget(ip);
  return t.kind === "ip" ? t.ip : undefined;
}

/** Result of the internal host parser: IP bytes or a name, or why it failed. */
export type HostParse =
  | { ok: true; ip: IpBytes; name?: undefined }
  | { ok: true; ip?: undefined; name: string }
  | { ok: false; reason: string };

/** Internal: parse a host into IP bytes (IPv4-mapped already unmapped) or a normalised name. */
export function parseHost(input: string): HostParse {
  if (typeof input !== "string") return { ok: false, reason: "is not a string" };
  if (input.length === 0) return { ok: false, reason: "is empty" };
  if (input.length > MAX_TARGET_LENGTH) {
    return { ok: false, reason: `is longer than ${MAX_TARGET_LENGTH} characters` };
  }
  if (WHITESPACE_OR_CONTROL.test(input)) {
    return { ok: false, reason: "contains whitespace or control characters" };
  }
  if (input.startsWith("[")) {
    if (!input.endsWith("]")) return { ok: false, reason: "has an unclosed '['" };
    const inner = input.slice(1, -1);
    if (!inner.includes(":")) return { ok: false, reason: "has brackets around a non-IPv6 host" };
    return ipv6Host(inner);
  }
  if (input.includes(":")) {
    const v6 = ipv6Host(input);
    if (v6.ok) return v6;
    const colons = input.split(":").length - 1;
    return {
      ok: false,
      reason: colons === 1 ? "contains ':' (give the port separately)" : v6.reason,
    };
  }
  const strict = parseStrictIpv4(input);
  if (strict !== undefined) return { ok: true, ip: strict };
  for (const [ch, reason] of FORBIDDEN) {
    if (input.includes(ch)) return { ok: false, reason };
  }
  let host: string;
  try {
    host = new URL(`http://${input}/`).hostname;
  } catch {
    return { ok: false, reason: "is not a valid host name or IPv4 address" };
  }
  const v4 = parseCanonicalIpv4(host);
  if (v4 !== undefined) return { ok: true, ip: v4 };
  return validateName(host);
}

function ipv6Host(text: string): HostParse {
  const parsed = parseIpv6(text);
  if (!parsed.ok) return parsed;
  return { ok: true, ip: unmap(parsed.ip) };
}

function validateName(host: string): HostParse {
  const name = host.endsWith(".") ? host.slice(0, -1) : host;
  if (name.length === 0) return { ok: false, reason: "is not a valid host name (empty)" };
  if (name.length > 253) return { ok: false, reason: "is longer than 253 characters" };
  for (const label of name.split(".")) {
    if (label.length === 0) return { ok: false, reason: "has an empty label" };
    if (label.length > 63) return { ok: false, reason: "has a label longer than 63 characters" };
    if (!LABEL.test(label)) {
      return { ok: false, reason: `has an invalid label "${label}"` };
    }
  }
  return { ok: true, name };
}
