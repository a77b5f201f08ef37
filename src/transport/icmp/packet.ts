/**
 * ICMP echo messages (RFC 792 for IPv4, RFC 4443 for ICMPv6): building requests and reading
 * replies, pure and runtime-neutral.
 *
 * An echo message is `[type u8][code u8][checksum u16][identifier u16][sequence u16][data]`, all
 * big-endian. IPv4 raw sockets receive the IPv4 header before it; datagram sockets and ICMPv6 raw
 * sockets do not.
 *
 * @module
 */

/** ICMP echo request type for IPv4 (8) and IPv6 (128). */
export const ECHO_REQUEST = { 4: 8, 6: 128 } as const;
/** ICMP echo reply type for IPv4 (0) and IPv6 (129). */
export const ECHO_REPLY = { 4: 0, 6: 129 } as const;
/** Length of the ICMP echo header in bytes. */
export const ECHO_HEADER_BYTES = 8;
/**
 * Largest echo payload in bytes: an IPv4 datagram of 65535 bytes less a 20-byte IPv4 header and
 * the 8-byte echo header (65507), also what ICMPv6 accepts with room to spare.
 */
export const MAX_ECHO_DATA = 65507;

/** The Internet checksum (RFC 1071) of `bytes`: the one's complement of their one's complement sum. */
export function internetChecksum(bytes: Uint8Array): number {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let sum = 0;
  const n = bytes.byteLength;
  for (let i = 0; i + 1 < n; i += 2) sum += dv.getUint16(i);
  if (n % 2 === 1) sum += dv.getUint8(n - 1) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * Builds an echo request of `family` with identifier `id`, sequence `seq` and payload `data`.
 * The checksum is filled in for IPv4 (the kernel fills the ICMPv6 one, which covers a
 * pseudo-header with the addresses, and overwrites the identifier on datagram sockets).
 *
 * @throws {RangeError} when `id` or `seq` is not an integer 0–65535 or `data` is longer than
 *   {@linkcode MAX_ECHO_DATA}.
 */
export function buildEchoRequest(
  family: 4 | 6,
  id: number,
  seq: number,
  data: Uint8Array,
): Uint8Array {
  for (const [what, v] of [["identifier", id], ["sequence number", seq]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) {
      throw new RangeError(`ICMP ${what} must be an integer from 0 to 65535, got ${v}`);
    }
  }
  if (data.byteLength > MAX_ECHO_DATA) {
    throw new RangeError(`ICMP echo data of ${data.byteLength} bytes exceeds ${MAX_ECHO_DATA}`);
  }
  const out = new Uint8Array(ECHO_HEADER_BYTES + data.byteLength);
  out[0] = ECHO_REQUEST[family];
  out[4] = id >>> 8;
  out[5] = id & 0xff;
  out[6] = seq >>> 8;
  out[7] = seq & 0xff;
  out.set(data, ECHO_HEADER_BYTES);
  if (family === 4) {
    const sum = internetChecksum(out);
    out[2] = sum >>> 8;
    out[3] = sum & 0xff;
  }
  return out;
}

/** An ICMP message read off a socket: type, code and, for echo messages, identifier and sequence. */
export interface IcmpMessage {
  /** ICMP type. */
  readonly type: number;
  /** ICMP code. */
  readonly code: number;
  /** Echo identifier. */
  readonly id: number;
  /** Echo sequence number. */
  readonly seq: number;
  /** The payload after the 8-byte echo header (a view of the input). */
  readonly data: Uint8Array;
}

/**
 * Reads an ICMP message from the bytes a socket received; `withIpHeader` for IPv4 raw sockets,
 * whose reads start with the IPv4 header (its length from the IHL field).
 *
 * @returns the message, or undefined when the bytes are too short for an echo header.
 */
export function parseIcmp(bytes: Uint8Array, withIpHeader: boolean): IcmpMessage | undefined {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let start = 0;
  if (withIpHeader) {
    if (bytes.byteLength < 20 || dv.getUint8(0) >>> 4 !== 4) return undefined;
    start = (dv.getUint8(0) & 0x0f) * 4;
  }
  if (bytes.byteLength < start + ECHO_HEADER_BYTES) return undefined;
  return {
    type: dv.getUint8(start),
    code: dv.getUint8(start + 1),
    id: dv.getUint16(start + 4),
    seq: dv.getUint16(start + 6),
    data: bytes.subarray(start + ECHO_HEADER_BYTES),
  };
}
