/**
 * UDP sockets through `node:dgram` (Node 22 API, as Bun implements it).
 *
 * @module
 */
import * as dgram from "node:dgram";
import type { DatagramConn, NetAddr } from "../types.ts";
import { BadResource, osError } from "../errors.ts";

/**
 * Most received datagrams queued for `receive()`: 256. `node:dgram` cannot pause a socket, so
 * beyond this bound (or {@linkcode MAX_QUEUED_DATAGRAM_BYTES}) the oldest queued datagram is
 * dropped for each new one: UDP is lossy, and the kernel drops datagrams too when its receive
 * buffer is full.
 */
export const MAX_QUEUED_DATAGRAMS = 256;

/** Most received bytes queued for `receive()`: 1 MiB (see {@linkcode MAX_QUEUED_DATAGRAMS}). */
export const MAX_QUEUED_DATAGRAM_BYTES = 1024 * 1024;

/**
 * How often a send is retried after `ECONNREFUSED`. Bun 1.4.5's `node:dgram` reports an ICMP
 * port-unreachable of an *earlier* datagram as the error of the next send (to any address), and
 * that datagram is not sent; the failed attempt clears the error, so sending again works. Deno
 * (and Node) never report ICMP errors on an unconnected UDP socket, and the session's contract is
 * that they do not kill or disturb the socket, so they are retried here and never surface.
 */
const STALE_REFUSAL_RETRIES = 3;

/** A send error that belongs to an earlier datagram (see {@linkcode STALE_REFUSAL_RETRIES}). */
function isStaleRefusal(e: Error): boolean {
  return (e as { code?: unknown }).code === "ECONNREFUSED";
}

/**
 * Opens an unconnected UDP socket on an ephemeral port of the wildcard address of `family`
 * (`0.0.0.0`, or `::` for 6), and resolves it once bound (`node:dgram` binds asynchronously).
 *
 * @throws {Error} (as a rejected promise) named as Deno names the OS error when the socket
 * cannot be bound (see `osError`).
 */
export function openUdp(family: 4 | 6): Promise<NodeDatagramConn> {
  return new Promise<NodeDatagramConn>((resolve, reject) => {
    const sock = dgram.createSocket(family === 4 ? "udp4" : "udp6");
    const onError = (e: Error): void => {
      sock.off("listening", onListening);
      sock.on("error", ignore);
      try {
        sock.close();
      } catch {
        // not open
      }
      reject(osError(e));
    };
    const onListening = (): void => {
      sock.off("error", onError);
      try {
        resolve(new NodeDatagramConn(sock));
      } catch (e) {
        sock.close();
        reject(osError(e));
      }
    };
    sock.once("error", onError);
    sock.once("listening", onListening);
    sock.bind(0, family === 4 ? "0.0.0.0" : "::");
  });
}

/**
 * A bound `node:dgram` socket as a {@linkcode DatagramConn}: received datagrams wait in a bounded
 * queue (oldest dropped beyond {@linkcode MAX_QUEUED_DATAGRAMS} datagrams or
 * {@linkcode MAX_QUEUED_DATAGRAM_BYTES} bytes; {@linkcode NodeDatagramConn.dropped} counts them).
 */
export class NodeDatagramConn implements DatagramConn {
  /** The local address (wildcard address and the bound port). */
  readonly addr: NetAddr;
  /** Datagrams dropped because the queue was full. */
  dropped = 0;
  readonly #sock: dgram.Socket;
  readonly #queue: [Uint8Array, NetAddr][] = [];
  #queuedBytes = 0;
  #closed = false;
  #error: unknown;
  #waiters: (() => void)[] = [];
  readonly #sends = new Set<(e: Error) => void>();

  /** @param sock a bound socket (owned by this object from now on). */
  constructor(sock: dgram.Socket) {
    this.#sock = sock;
    const local = sock.address();
    this.addr = { transport: "udp", hostname: local.address, port: local.port };
    sock.on("message", (msg: Uint8Array, rinfo: dgram.RemoteInfo) => {
      if (this.#closed) return;
      this.#queue.push([msg, { transport: "udp", hostname: rinfo.address, port: rinfo.port }]);
      this.#queuedBytes += msg.byteLength;
      while (
        this.#queue.length > MAX_QUEUED_DATAGRAMS ||
        (this.#queuedBytes > MAX_QUEUED_DATAGRAM_BYTES && this.#queue.length > 1)
      ) {
        const old = this.#queue.shift();
        this.#queuedBytes -= old?.[0].byteLength ?? 0;
        this.dropped++;
      }
      this.#wake();
    });
    sock.on("error", (e: Error) => {
      // An asynchronous socket error (ICMP errors are not reported on unconnected sockets).
      this.#error ??= osError(e);
      this.#wake();
    });
  }

  /**
   * Waits for the next datagram; resolves its bytes and sender. With `buffer`, the bytes are
   * copied into it and a view of it is returned (cut to its length, as `Deno.DatagramConn`).
   *
   * @throws {BadResource} once the socket is closed (also while waiting); the socket's error
   * when it failed.
   */
  async receive(buffer?: Uint8Array): Promise<[Uint8Array, NetAddr]> {
    for (;;) {
      if (this.#closed) throw new BadResource("the UDP socket is closed");
      const next = this.#queue.shift();
      if (next !== undefined) {
        this.#queuedBytes -= next[0].byteLength;
        if (buffer === undefined) return next;
        const n = Math.min(buffer.byteLength, next[0].byteLength);
        buffer.set(next[0].subarray(0, n));
        return [buffer.subarray(0, n), next[1]];
      }
      if (this.#error !== undefined) throw this.#error;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /**
   * Sends one datagram to `addr`; resolves `data.byteLength` once the socket sent it. `data` is
   * not copied: do not change it before the promise settles.
   *
   * @throws {BadResource} once closed; an error named as Deno names the OS error otherwise
   * (`Message too long (os error 90)` for an oversize datagram). An ICMP error of an earlier
   * datagram is not this send's error: it is retried (see {@linkcode STALE_REFUSAL_RETRIES}).
   */
  send(data: Uint8Array, addr: NetAddr): Promise<number> {
    if (this.#closed) return Promise.reject(new BadResource("the UDP socket is closed"));
    return new Promise<number>((resolve, reject) => {
      const abandon = (e: Error): void => reject(e);
      this.#sends.add(abandon);
      const attempt = (retries: number): void => {
        try {
          this.#sock.send(data, addr.port, addr.hostname, (e: Error | null) => {
            if (!this.#sends.has(abandon)) return; // settled by close()
            if (e && retries > 0 && isStaleRefusal(e)) return attempt(retries - 1);
            this.#sends.delete(abandon);
            if (e) reject(osError(e));
            else resolve(data.byteLength);
          });
        } catch (e) {
          this.#sends.delete(abandon);
          reject(osError(e));
        }
      };
      attempt(STALE_REFUSAL_RETRIES);
    });
  }

  /** Closes the socket; a pending `receive` or `send` rejects with `BadResource`. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    try {
      this.#sock.close();
    } catch {
      // already closed
    }
    if (this.#sends.size > 0) {
      const closed = new BadResource("the UDP socket is closed");
      for (const settle of [...this.#sends]) settle(closed);
      this.#sends.clear();
    }
    this.#wake();
  }

  #wake(): void {
    const waiters = this.#waiters;
    if (waiters.length === 0) return;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

function ignore(): void {}
