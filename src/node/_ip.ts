/**
 * IP address syntax checks in the shape of Node 22's `net.isIP`, `net.isIPv4`, `net.isIPv6`.
 *
 * Private to `src/node/`; `net.ts` re-exports them.
 *
 * @module
 */

import { parseHostPort } from "../protocol/host_port.ts";

const IPV4 = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
const ZONE = /^[0-9a-zA-Z\-.:]+$/;

/**
 * Whether `input` is an IPv4 address in dotted-decimal form (Node 22 `net.isIPv4`: four decimal
 * octets 0-255, no leading zeros).
 *
 * @example
 * ```ts
 * import { isIPv4 } from "./_ip.ts";
 * import assert from "node:assert/strict";
 * assert.equal(isIPv4("127.0.0.1"), true);
 * assert.equal(isIPv4("127.000.0.1"), false);
 * ```
 */
export function isIPv4(input: string): boolean {
  return typeof input === "string" && IPV4.test(input);
}

/**
 * Whether `input` is an IPv6 address (Node 22 `net.isIPv6`: eight hex groups, one `::`, an
 * optional trailing IPv4 part and an optional `%zone`).
 *
 * @example
 * ```ts
 * import { isIPv6 } from "./_ip.ts";
 * import assert from "node:assert/strict";
 * assert.equal(isIPv6("::ffff:127.0.0.1"), true);
 * assert.equal(isIPv6("fe80::1%eth0"), true);
 * assert.equal(isIPv6("1::2::3"), false);
 * ```
 */
export function isIPv6(input: string): boolean {
  if (typeof input !== "string") return false;
  let s = input;
  const pct = s.indexOf("%");
  if (pct !== -1) {
    if (!ZONE.test(s.slice(pct + 1))) return false;
    s = s.slice(0, pct);
  }
  if (s.includes(".")) {
    const last = s.lastIndexOf(":");
    if (last === -1 || !isIPv4(s.slice(last + 1))) return false;
    s = `${s.slice(0, last + 1)}0:0`;
  }
  const halves = s.split("::");
  const groups = (x: string): string[] => (x === "" ? [] : x.split(":"));
  if (halves.length > 2) return false;
  if (halves.length === 2) {
    const all = [...groups(halves[0] ?? ""), ...groups(halves[1] ?? "")];
    return all.length <= 7 && all.every((g) => HEX_GROUP.test(g));
  }
  const all = groups(s);
  return all.length === 8 && all.every((g) => HEX_GROUP.test(g));
}

/**
 * `4` for an IPv4 address, `6` for an IPv6 address, `0` otherwise (Node 22 `net.isIP`).
 *
 * @example
 * ```ts
 * import { isIP } from "./_ip.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual([isIP("10.0.0.1"), isIP("::1"), isIP("example.com")], [4, 6, 0]);
 * ```
 */
export function isIP(input: string): 0 | 4 | 6 {
  if (isIPv4(input)) return 4;
  if (isIPv6(input)) return 6;
  return 0;
}

/** `IPv4`/`IPv6` for an address, as Node's `family` strings (`IPv4` for anything else). */
export function familyOf(address: string): "IPv4" | "IPv6" {
  return isIPv6(address) ? "IPv6" : "IPv4";
}

/** Splits `1.2.3.4:5678` / `[::1]:5678` into address and port (`undefined`s if malformed). */
export function splitHostPort(text: string): { address?: string; port?: number } {
  const parsed = parseHostPort(text, 0);
  return typeof parsed === "string" ? {} : { address: parsed.host, port: parsed.port };
}
