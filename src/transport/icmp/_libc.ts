/**
 * The few libc calls an ICMP socket needs, as a runtime's FFI binds them (`transport/deno/icmp.ts`
 * with `Deno.dlopen`, `transport/bun/icmp.ts` with `bun:ffi`), and the Linux constants and
 * `sockaddr` layouts they take. Linux only (x86_64 and aarch64 share these values).
 *
 * @module
 */
import ipaddr from "ipaddr.js";

/**
 * libc functions bound by FFI. Every `Uint8Array` argument is passed as a pointer to its bytes.
 * Calls return what C returns (-1 on failure, then {@linkcode Libc.errno} tells why).
 */
export interface Libc {
  /** `socket(2)`. */
  socket(domain: number, type: number, protocol: number): number;
  /** `sendto(2)`; `addr` is a `sockaddr_in`/`sockaddr_in6`. */
  sendto(fd: number, buf: Uint8Array, flags: number, addr: Uint8Array): number;
  /** `recvfrom(2)`; `addr` receives the sender, `addrLen` (a 4-byte `socklen_t`) its length. */
  recvfrom(
    fd: number,
    buf: Uint8Array,
    flags: number,
    addr: Uint8Array,
    addrLen: Uint8Array,
  ): number;
  /** `setsockopt(2)` with `value` as the option's bytes. */
  setsockopt(fd: number, level: number, name: number, value: Uint8Array): number;
  /** `eventfd(2)`. */
  eventfd(initval: number, flags: number): number;
  /** `read(2)`. */
  read(fd: number, buf: Uint8Array): number;
  /** `write(2)`. */
  write(fd: number, buf: Uint8Array): number;
  /** `close(2)`. */
  close(fd: number): number;
  /** `poll(2)` on the calling thread (call it with timeout 0 from the event loop). */
  poll(fds: Uint8Array, nfds: number, timeoutMs: number): number;
  /**
   * `poll(2)` on a worker thread, so it may wait without blocking the event loop (Deno's
   * `nonblocking` FFI calls). Absent when the runtime cannot (Bun): then the socket polls with
   * timeout 0 on a timer.
   */
  pollAsync?(fds: Uint8Array, nfds: number, timeoutMs: number): Promise<number>;
  /** The calling thread's `errno`, read right after a failed call. */
  errno(): number;
  /** Unloads the library handle (the sockets opened through it must be closed first). */
  unload(): void;
}

/** Linux socket constants. */
export const AF_INET = 2;
/** `AF_INET6` on Linux. */
export const AF_INET6 = 10;
/** `SOCK_DGRAM`. */
export const SOCK_DGRAM = 2;
/** `SOCK_RAW`. */
export const SOCK_RAW = 3;
/** `SOCK_NONBLOCK` (a flag of the socket type). */
export const SOCK_NONBLOCK = 0o4000;
/** `SOCK_CLOEXEC` (a flag of the socket type). */
export const SOCK_CLOEXEC = 0o2000000;
/** `IPPROTO_ICMP`. */
export const IPPROTO_ICMP = 1;
/** `IPPROTO_ICMPV6`. */
export const IPPROTO_ICMPV6 = 58;
/** `SOL_RAW` with `ICMP_FILTER` (1): a bit mask of IPv4 ICMP types the raw socket drops. */
export const SOL_RAW = 255;
/** `ICMP_FILTER`, `ICMP6_FILTER`. */
export const ICMP_FILTER = 1;
/** `EFD_NONBLOCK`, `EFD_CLOEXEC` (the `O_` values). */
export const EFD_FLAGS = 0o4000 | 0o2000000;
/** `POLLIN`. */
export const POLLIN = 1;
/** `EAGAIN` (= `EWOULDBLOCK`), `EINTR`. */
export const EAGAIN = 11;
/** `EINTR`. */
export const EINTR = 4;

/** Size of a `sockaddr_in6`, the larger of the two address structures. */
export const SOCKADDR_BYTES = 28;

/** True when this machine stores integers little-endian (for `sa_family`, a host-order field). */
export const LITTLE_ENDIAN: boolean = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * A `sockaddr_in` (16 bytes) or `sockaddr_in6` (28 bytes) for `ip`, port 0.
 *
 * @throws {TypeError} when `ip` is not an IP address of `family`.
 */
export function sockaddr(family: 4 | 6, ip: string): Uint8Array {
  const parsed = ipaddr.isValid(ip) ? ipaddr.parse(ip) : undefined;
  if (parsed?.kind() !== (family === 4 ? "ipv4" : "ipv6")) {
    throw new TypeError(`${JSON.stringify(ip)} is not an IPv${family} address`);
  }
  const bytes = parsed.toByteArray();
  const out = new Uint8Array(family === 4 ? 16 : SOCKADDR_BYTES);
  new DataView(out.buffer).setUint16(0, family === 4 ? AF_INET : AF_INET6, LITTLE_ENDIAN);
  out.set(bytes, family === 4 ? 4 : 8);
  return out;
}

/** The IP address in a `sockaddr_in`/`sockaddr_in6` (canonical text), or undefined. */
export function sockaddrIp(addr: Uint8Array): string | undefined {
  const dv = new DataView(addr.buffer, addr.byteOffset, addr.byteLength);
  const family = dv.getUint16(0, LITTLE_ENDIAN);
  if (family === AF_INET) return Array.from(addr.subarray(4, 8)).join(".");
  if (family !== AF_INET6) return undefined;
  return new ipaddr.IPv6(Array.from(addr.subarray(8, 24))).toRFC5952String();
}

/** `errno` values → the name and message Deno gives the OS error (as `transport/errors.ts`). */
const ERRNO: Readonly<Record<number, readonly [name: string, message: string]>> = {
  1: ["PermissionDenied", "Operation not permitted (os error 1)"],
  13: ["PermissionDenied", "Permission denied (os error 13)"],
  22: ["InvalidInput", "Invalid argument (os error 22)"],
  24: ["Error", "Too many open files (os error 24)"],
  90: ["Error", "Message too long (os error 90)"],
  93: ["Error", "Protocol not supported (os error 93)"],
  97: ["Error", "Address family not supported by protocol (os error 97)"],
  99: ["AddrNotAvailable", "Cannot assign requested address (os error 99)"],
  101: ["NetworkUnreachable", "Network is unreachable (os error 101)"],
  105: ["Error", "No buffer space available (os error 105)"],
  113: ["NetworkUnreachable", "No route to host (os error 113)"],
};

/** An `Error` for `errno`, named and worded as Deno words the OS error. */
export function errnoError(errno: number): Error {
  const known = ERRNO[errno];
  const out = new Error(known?.[1] ?? `os error ${errno}`);
  out.name = known?.[0] ?? "Error";
  (out as Error & { errno: number }).errno = errno;
  return out;
}
