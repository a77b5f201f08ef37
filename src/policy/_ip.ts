// Private helpers: IP address bytes, CIDR containment and embedded-IPv4 extraction.
// Pure and browser-safe (no Deno.*).

import ipaddr from "ipaddr.js";

/** An IP address as 4 (IPv4) or 16 (IPv6) bytes in network order. */
export interface IpBytes {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
}

/** A network: an address plus a prefix length in bits (0-32 or 0-128). */
export interface Cidr {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

/** An IPv4 address found inside an IPv6 address, and the mechanism that embeds it. */
export interface EmbeddedIpv4 {
  readonly ip: IpBytes;
  readonly via: string;
}

const STRICT_DOTTED_QUAD =
  /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const ZONE_ID = /^[A-Za-z0-9_.-]{1,64}$/;
const IPV6_CHARS = /^[0-9A-Fa-f:.]+$/;
const CANONICAL_QUAD = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

/** The result of parsing an IPv6 literal: the bytes, or why it is not one. */
export type Ipv6Parse = { ok: true; ip: IpBytes } | { ok: false; reason: string };

/**
 * Parses an IPv6 literal without brackets. A zone id (`%eth0`) is stripped. An embedded IPv4 tail
 * (`::ffff:1.2.3.4`) must be strict dotted decimal: leading zeros are rejected, because
 * `010.0.0.1` is octal to some parsers and decimal to others.
 * ipaddr.js is used only for the all-hex form: it turns `::127.0.0.1` into `::ffff:7f00:1`.
 */
export function parseIpv6(text: string): Ipv6Parse {
  let rest = text;
  const percent = rest.indexOf("%");
  if (percent >= 0) {
    const zone = rest.slice(percent + 1);
    if (!ZONE_ID.test(zone)) return { ok: false, reason: "has an invalid zone id" };
    rest = rest.slice(0, percent);
  }
  if (!IPV6_CHARS.test(rest)) return { ok: false, reason: "is not a valid IPv6 address" };
  if (rest.includes(".")) {
    const lastColon = rest.lastIndexOf(":");
    const quad = rest.slice(lastColon + 1);
    if (!STRICT_DOTTED_QUAD.test(quad)) {
      return {
        ok: false,
        reason: "has an embedded IPv4 address that is not strict dotted decimal",
      };
    }
    const q = quad.split(".").map(Number);
    const hi = (((q[0] ?? 0) << 8) | (q[1] ?? 0)).toString(16);
    const lo = (((q[2] ?? 0) << 8) | (q[3] ?? 0)).toString(16);
    rest = `${rest.slice(0, lastColon + 1)}${hi}:${lo}`;
  }
  try {
    const parsed = ipaddr.IPv6.parse(rest);
    return { ok: true, ip: { family: 6, bytes: Uint8Array.from(parsed.toByteArray()) } };
  } catch {
    return { ok: false, reason: "is not a valid IPv6 address" };
  }
}

/**
 * Whether `text` is strict dotted-quad IPv4 (four decimal parts 0–255, no leading zeros): the one
 * spelling that the WHATWG URL host parser returns unchanged, and that is already canonical.
 */
export function isStrictIpv4(text: string): boolean {
  return STRICT_DOTTED_QUAD.test(text);
}

/**
 * Parses strict dotted-quad IPv4 text (four decimal parts 0–255, no leading zeros): the one
 * spelling that the WHATWG URL host parser returns unchanged, so callers may skip that parser
 * for it. Returns undefined for any other text.
 */
export function parseStrictIpv4(text: string): IpBytes | undefined {
  if (!isStrictIpv4(text)) return undefined;
  const bytes = new Uint8Array(4);
  let part = 0;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      bytes[part++] = value;
      value = 0;
    } else value = value * 10 + c - 48;
  }
  bytes[part] = value;
  return { family: 4, bytes };
}

/** Parses canonical dotted-quad IPv4 text (as produced by the WHATWG URL host parser). */
export function parseCanonicalIpv4(text: string): IpBytes | undefined {
  if (!CANONICAL_QUAD.test(text)) return undefined;
  const parts = text.split(".").map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return { family: 4, bytes: Uint8Array.from(parts) };
}

/** If `ip` is IPv4-mapped (`::ffff:a.b.c.d`), returns the IPv4 address; otherwise `ip` itself. */
export function unmap(ip: IpBytes): IpBytes {
  if (
    ip.family === 6 && isZero(ip.bytes, 0, 10) && ip.bytes[10] === 0xff && ip.bytes[11] === 0xff
  ) {
    return { family: 4, bytes: ip.bytes.slice(12, 16) };
  }
  return ip;
}

/** Canonical text: dotted quad for IPv4, RFC 5952 for IPv6 (lower case, `::` compression). */
export function formatIp(ip: IpBytes): string {
  if (ip.family === 4) return Array.from(ip.bytes).join(".");
  return new ipaddr.IPv6(Array.from(ip.bytes)).toRFC5952String();
}

/** Whether `net` contains `ip` (same family, first `prefix` bits equal). */
export function cidrContains(net: Cidr, ip: IpBytes): boolean {
  if (net.family !== ip.family) return false;
  const full = Math.floor(net.prefix / 8);
  for (let i = 0; i < full; i++) {
    if (net.bytes[i] !== ip.bytes[i]) return false;
  }
  const bits = net.prefix % 8;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return ((net.bytes[full] ?? 0) & mask) === ((ip.bytes[full] ?? 0) & mask);
}

/** Canonical CIDR text, host bits cleared: `10.0.0.0/8`, `fd00::/8`. */
export function formatCidr(net: Cidr): string {
  const bytes = net.bytes.slice();
  for (let i = 0; i < bytes.length; i++) {
    const bitStart = i * 8;
    if (bitStart >= net.prefix) bytes[i] = 0;
    else if (bitStart + 8 > net.prefix) {
      bytes[i] = (bytes[i] ?? 0) & ((0xff << (8 - (net.prefix - bitStart))) & 0xff);
    }
  }
  return `${formatIp({ family: net.family, bytes })}/${net.prefix}`;
}

function isZero(bytes: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (bytes[i] !== 0) return false;
  return true;
}

function v4(bytes: Uint8Array, ...idx: number[]): IpBytes {
  return { family: 4, bytes: Uint8Array.from(idx.map((i) => bytes[i] ?? 0)) };
}

/**
 * Every IPv4 address an IPv6 address may carry: IPv4-compatible `::a.b.c.d` (`::/96`, except `::`
 * and `::1`), IPv4-translated `::ffff:0:a.b.c.d` (`::ffff:0:0:0/96`, RFC 2765 SIIT), NAT64 `64:ff9b::/96` (RFC 6052) and local-use `64:ff9b:1::/48` (RFC 8215, all the
 * RFC 6052 layouts for prefix lengths 48, 56, 64 and 96), 6to4 `2002::/16` (RFC 3056), Teredo
 * `2001::/32` (server and de-obfuscated client, RFC 4380) and ISATAP interface ids (RFC 5214).
 * IPv4-mapped addresses never reach this function: they are normalised to IPv4 first.
 */
export function embeddedIpv4(ip: IpBytes): EmbeddedIpv4[] {
  if (ip.family !== 6) return [];
  const b = ip.bytes;
  const out: EmbeddedIpv4[] = [];
  if (isZero(b, 0, 12) && !(isZero(b, 12, 15) && (b[15] === 0 || b[15] === 1))) {
    out.push({ ip: v4(b, 12, 13, 14, 15), via: "IPv4-compatible" });
  }
  if (isZero(b, 0, 8) && b[8] === 0xff && b[9] === 0xff && isZero(b, 10, 12)) {
    out.push({ ip: v4(b, 12, 13, 14, 15), via: "IPv4-translated" });
  }
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b) {
    if (isZero(b, 4, 12)) out.push({ ip: v4(b, 12, 13, 14, 15), via: "NAT64" });
    if (b[4] === 0x00 && b[5] === 0x01) {
      out.push({ ip: v4(b, 6, 7, 9, 10), via: "NAT64 /48" });
      out.push({ ip: v4(b, 7, 9, 10, 11), via: "NAT64 /56" });
      out.push({ ip: v4(b, 9, 10, 11, 12), via: "NAT64 /64" });
      out.push({ ip: v4(b, 12, 13, 14, 15), via: "NAT64 /96" });
    }
  }
  if (b[0] === 0x20 && b[1] === 0x02) out.push({ ip: v4(b, 2, 3, 4, 5), via: "6to4" });
  if (b[0] === 0x20 && b[1] === 0x01 && b[2] === 0x00 && b[3] === 0x00) {
    out.push({ ip: v4(b, 4, 5, 6, 7), via: "Teredo server" });
    const client = v4(b, 12, 13, 14, 15);
    out.push({
      ip: { family: 4, bytes: client.bytes.map((x) => x ^ 0xff) },
      via: "Teredo client",
    });
  }
  if ((b[8] === 0x00 || b[8] === 0x02) && b[9] === 0x00 && b[10] === 0x5e && b[11] === 0xfe) {
    out.push({ ip: v4(b, 12, 13, 14, 15), via: "ISATAP" });
  }
  return out;
}
