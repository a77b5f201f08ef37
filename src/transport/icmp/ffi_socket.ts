/**
 * ICMP echo sockets through libc by FFI: `socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)` (the
 * unprivileged "ping socket" of Linux, allowed to the groups in `net.ipv4.ping_group_range`, which
 * also governs ICMPv6) or `SOCK_RAW` (needs `CAP_NET_RAW`), for IPv4 and IPv6 (ICMPv6 echo 128/129).
 *
 * The socket is non-blocking and stays open from the first send to `close()`; replies are read
 * when the kernel has them. Waiting never blocks the event loop: with a runtime that runs FFI calls
 * on a worker thread (Deno), `poll(2)` waits there on the socket and an `eventfd` that `close()`
 * and aborts write to; otherwise (Bun) `poll` runs with timeout 0 on a timer, every
 * {@linkcode FAST_TICK_MS} ms for the first {@linkcode FAST_TICKS_FOR_MS} ms of a wait, then every
 * {@linkcode SLOW_TICK_MS} ms.
 *
 * Replies are matched to requests: only echo replies (type 0 / 129), only with a sequence number
 * this socket sent and has not had a reply for yet, and on raw sockets — which see every ICMP
 * message of the host, its own requests on loopback included — only with this socket's random
 * identifier (a datagram socket's identifier is its local port, and the kernel delivers only its
 * replies).
 *
 * @module
 */
import type { IcmpEchoReply, IcmpMechanism, IcmpSocket } from "../types.ts";
import { BadResource } from "../errors.ts";
import { buildEchoRequest, ECHO_REPLY, parseIcmp } from "./packet.ts";
import {
  AF_INET,
  AF_INET6,
  EFD_FLAGS,
  EINTR,
  errnoError,
  ICMP_FILTER,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  type Libc,
  LITTLE_ENDIAN,
  POLLIN,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOCK_RAW,
  sockaddr,
  SOCKADDR_BYTES,
  sockaddrIp,
  SOL_RAW,
} from "./_libc.ts";

/** Timer-driven polling (no worker-thread poll): interval for the first part of a wait, in ms. */
export const FAST_TICK_MS = 1;
/** How long a wait polls every {@linkcode FAST_TICK_MS} ms before slowing down, in ms. */
export const FAST_TICKS_FOR_MS = 100;
/** Timer-driven polling interval after the first {@linkcode FAST_TICKS_FOR_MS} ms of a wait, in ms. */
export const SLOW_TICK_MS = 5;
/** Most requests a socket remembers while waiting for their replies (the oldest are forgotten). */
export const MAX_OUTSTANDING = 4096;

/**
 * Opens an ICMP echo socket of `family` by libc: `dgram` or `raw`. `load` binds libc (a handle
 * the socket owns and unloads when it closes, or at once when opening fails).
 *
 * @throws {Error} named and worded as Deno words the OS error: `PermissionDenied` (`Permission
 *   denied (os error 13)`: not in `net.ipv4.ping_group_range`; `Operation not permitted (os
 *   error 1)`: no `CAP_NET_RAW`), `Address family not supported by protocol (os error 97)` (no
 *   IPv6), ...
 */
export function openFfiIcmp(libc: Libc, family: 4 | 6, kind: "dgram" | "raw"): FfiIcmpSocket {
  const type = (kind === "dgram" ? SOCK_DGRAM : SOCK_RAW) | SOCK_NONBLOCK | SOCK_CLOEXEC;
  const fd = libc.socket(
    family === 4 ? AF_INET : AF_INET6,
    type,
    family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6,
  );
  if (fd < 0) {
    const e = errnoError(libc.errno());
    libc.unload();
    throw e;
  }
  let wake = -1;
  if (libc.pollAsync) {
    wake = libc.eventfd(0, EFD_FLAGS);
    if (wake < 0) {
      const e = errnoError(libc.errno());
      libc.close(fd);
      libc.unload();
      throw e;
    }
  }
  if (kind === "raw") filterEchoReplies(libc, fd, family);
  return new FfiIcmpSocket(libc, family, kind, fd, wake);
}

/**
 * Asks the kernel to hand a raw socket only echo replies (`ICMP_FILTER`, `ICMP6_FILTER`: a set
 * bit drops that type). Best effort: the socket filters by type itself too.
 */
function filterEchoReplies(libc: Libc, fd: number, family: 4 | 6): void {
  if (family === 4) {
    const mask = new Uint8Array(4);
    new DataView(mask.buffer).setUint32(0, ~(1 << ECHO_REPLY[4]) >>> 0, LITTLE_ENDIAN);
    libc.setsockopt(fd, SOL_RAW, ICMP_FILTER, mask);
    return;
  }
  const filter = new Uint8Array(32).fill(0xff);
  const dv = new DataView(filter.buffer);
  const word = ECHO_REPLY[6] >>> 5;
  dv.setUint32(word * 4, ~(1 << (ECHO_REPLY[6] & 31)) >>> 0, LITTLE_ENDIAN);
  libc.setsockopt(fd, IPPROTO_ICMPV6, ICMP_FILTER, filter);
}

/** An open ICMP echo socket over libc (see the module documentation). */
export class FfiIcmpSocket implements IcmpSocket {
  /** `dgram` or `raw`. */
  readonly mechanism: IcmpMechanism;
  readonly #libc: Libc;
  readonly #family: 4 | 6;
  readonly #fd: number;
  readonly #wake: number;
  /** The echo identifier of a raw socket's requests (a datagram socket's is the kernel's). */
  readonly #ident: number;
  /** Sequence number → when its request was sent (`performance.now()`), oldest first. */
  readonly #sent = new Map<number, number>();
  /** Replies read and matched, not yet returned by `receive`. */
  readonly #ready: IcmpEchoReply[] = [];
  readonly #buf = new Uint8Array(65536);
  readonly #from = new Uint8Array(SOCKADDR_BYTES);
  readonly #fromLen = new Uint8Array(4);
  readonly #pollFds = new Uint8Array(16);
  readonly #counter = new Uint8Array(8);
  #chain: Promise<unknown> = Promise.resolve();
  #closed = false;
  #polling = false;
  #released = false;
  /** Ends the current timer wait early (timer-driven polling only). */
  #wakeTimer: (() => void) | undefined;

  /** Use {@linkcode openFfiIcmp}. */
  constructor(libc: Libc, family: 4 | 6, kind: "dgram" | "raw", fd: number, wake: number) {
    this.#libc = libc;
    this.#family = family;
    this.mechanism = kind;
    this.#fd = fd;
    this.#wake = wake;
    this.#ident = crypto.getRandomValues(new Uint16Array(1))[0] ?? 0;
  }

  /**
   * Sends one echo request (see {@linkcode IcmpSocket.send}).
   *
   * @throws {BadResource} once closed; {@linkcode RangeError} for a bad `seq` or too much data;
   *   {@linkcode TypeError} when `ip` is not an address of the socket's family; the OS error
   *   (`Network is unreachable (os error 101)`, ...).
   */
  send(ip: string, seq: number, data: Uint8Array): Promise<void> {
    try {
      if (this.#closed) throw new BadResource("the ICMP socket is closed");
      const packet = buildEchoRequest(this.#family, this.#ident, seq, data);
      const addr = sockaddr(this.#family, ip);
      this.#sent.delete(seq);
      this.#sent.set(seq, performance.now());
      if (this.#sent.size > MAX_OUTSTANDING) this.#sent.delete(this.#sent.keys().next().value ?? 0);
      if (this.#libc.sendto(this.#fd, packet, 0, addr) < 0) {
        const e = errnoError(this.#libc.errno());
        this.#sent.delete(seq);
        throw e;
      }
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * The next echo reply to one of this socket's requests, waiting at most `timeoutMs`; undefined
   * on timeout, abort, close, or at once when no request awaits a reply. Concurrent calls are
   * served in order, each with its own deadline.
   *
   * @throws {BadResource} when called after `close()`.
   */
  receive(timeoutMs: number, signal?: AbortSignal): Promise<IcmpEchoReply | undefined> {
    if (this.#closed) return Promise.reject(new BadResource("the ICMP socket is closed"));
    const deadline = performance.now() + Math.max(0, timeoutMs);
    const run = this.#chain.then(() => this.#receive(deadline, signal));
    this.#chain = run.catch(() => {});
    return run;
  }

  /** Closes the socket (once no `poll` runs on it); pending receives resolve undefined. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#wakeUp();
    if (!this.#polling) this.#release();
  }

  async #receive(deadline: number, signal: AbortSignal | undefined): Promise<
    IcmpEchoReply | undefined
  > {
    const onAbort = (): void => this.#wakeUp();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const started = performance.now();
      for (;;) {
        if (this.#closed || signal?.aborted) return undefined;
        this.#readAvailable();
        const reply = this.#ready.shift();
        if (reply) return reply;
        if (this.#sent.size === 0) return undefined;
        const left = deadline - performance.now();
        if (left <= 0) return undefined;
        await this.#wait(left, performance.now() - started);
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Waits until the socket may be readable, `left` ms at most (`waited`: ms of this wait so far). */
  async #wait(left: number, waited: number): Promise<void> {
    const libc = this.#libc;
    if (libc.pollAsync) {
      const dv = new DataView(this.#pollFds.buffer);
      dv.setInt32(0, this.#fd, LITTLE_ENDIAN);
      dv.setInt16(4, POLLIN, LITTLE_ENDIAN);
      dv.setInt16(6, 0, LITTLE_ENDIAN);
      dv.setInt32(8, this.#wake, LITTLE_ENDIAN);
      dv.setInt16(12, POLLIN, LITTLE_ENDIAN);
      dv.setInt16(14, 0, LITTLE_ENDIAN);
      this.#polling = true;
      try {
        await libc.pollAsync(this.#pollFds, 2, Math.min(Math.ceil(left), 0x7fffffff));
      } finally {
        this.#polling = false;
        libc.read(this.#wake, this.#counter); // clears a wake-up (EAGAIN when there was none)
        if (this.#closed) this.#release();
      }
      return;
    }
    const tick = waited < FAST_TICKS_FOR_MS ? FAST_TICK_MS : SLOW_TICK_MS;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.min(Math.ceil(left), tick));
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wakeTimer = done;
    });
    this.#wakeTimer = undefined;
  }

  /** Ends a wait in progress: writes the eventfd, or ends the timer. */
  #wakeUp(): void {
    if (this.#wakeTimer) this.#wakeTimer();
    if (this.#wake >= 0 && !this.#released) {
      const one = new Uint8Array(8);
      new DataView(one.buffer).setBigUint64(0, 1n, LITTLE_ENDIAN);
      this.#libc.write(this.#wake, one);
    }
  }

  /** Reads every datagram the kernel holds; queues the matching echo replies. */
  #readAvailable(): void {
    const libc = this.#libc;
    const lenView = new DataView(this.#fromLen.buffer);
    for (;;) {
      lenView.setUint32(0, SOCKADDR_BYTES, LITTLE_ENDIAN);
      const n = libc.recvfrom(this.#fd, this.#buf, 0, this.#from, this.#fromLen);
      if (n < 0) {
        if (libc.errno() === EINTR) continue;
        return; // EAGAIN: nothing more now (other errors: nothing readable either)
      }
      const at = performance.now();
      const msg = parseIcmp(
        this.#buf.subarray(0, n),
        this.mechanism === "raw" && this.#family === 4,
      );
      if (msg === undefined || msg.type !== ECHO_REPLY[this.#family]) continue;
      if (this.mechanism === "raw" && msg.id !== this.#ident) continue;
      const sentAt = this.#sent.get(msg.seq);
      if (sentAt === undefined) continue;
      this.#sent.delete(msg.seq);
      this.#ready.push({
        source: sockaddrIp(this.#from) ?? "",
        type: msg.type,
        code: msg.code,
        id: msg.id,
        seq: msg.seq,
        data: msg.data.slice(),
        rttMs: Math.max(0, at - sentAt),
      });
    }
  }

  /** Closes the file descriptors and unloads libc, once. */
  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#libc.close(this.#fd);
    if (this.#wake >= 0) this.#libc.close(this.#wake);
    this.#libc.unload();
  }
}
