/**
 * A `node:net` socket seen as a `StreamConn`: the adapter of
 * the Bun transport (`transport/bun/`), which runs on `node:net`, `node:dgram` and `node:dns`
 * (Node 22 API, as Bun 1.4 and Deno 2.9 implement it).
 *
 * @module
 */
import type { Socket } from "node:net";
import type { AcceptedConn, NetAddr } from "./types.ts";
import { BadResource, osError } from "./errors.ts";
import { ReceiveQueue } from "./_receive_queue.ts";

export { READ_HIGH_WATER_BYTES } from "./_receive_queue.ts";

/**
 * A `node:net` `Socket` (created with `allowHalfOpen: true`, so a peer's FIN ends only the read
 * side) as a `StreamConn` (an {@linkcode AcceptedConn}); it owns the socket from construction on.
 *
 * - `read()` copies queued chunks into the caller's buffer (several at once when they fit; what
 *   does not fit stays queued). The queue holds at most about `READ_HIGH_WATER_BYTES` (`_receive_queue.ts`)
 *   (256 KiB) plus the socket's own readable buffer: from that many queued bytes on the socket is
 *   paused, and it is resumed once `read()` has taken the queue below half. `null` at the end of
 *   the stream (the peer's FIN).
 * - `write()` resolves `data.byteLength` once the socket's write callback ran (the bytes are in
 *   the kernel), so a slow peer slows the writer down. `data` is not copied: the caller must not
 *   change it before the promise settles.
 * - `closeWrite()` half-closes (`socket.end()`: FIN after the pending writes) and resolves once
 *   that is written or the socket is gone. Never rejects.
 * - `close()` destroys the socket at once; a pending `read()` or `write()` rejects with
 *   {@linkcode BadResource}. A second `close()` does nothing.
 *
 * Errors are worded as Deno words the same OS error ({@linkcode osError}): a reset is an `Error`
 * named `ConnectionReset` with message `Connection reset by peer (os error 104)`.
 */
export class NodeSocketConn implements AcceptedConn {
  /** The peer's address, taken when the connection was made (a destroyed socket forgets it). */
  readonly remoteAddr: NetAddr;
  /** The local address, taken when the connection was made. */
  readonly localAddr: NetAddr;
  readonly #sock: Socket;
  readonly #received: ReceiveQueue;
  #closed = false;
  readonly #writes = new Set<(e: Error) => void>();

  /**
   * @param sock a connected socket (owned by this object from now on).
   */
  constructor(sock: Socket) {
    this.#sock = sock;
    this.remoteAddr = tcpAddr(sock.remoteAddress, sock.remotePort);
    this.localAddr = tcpAddr(sock.localAddress, sock.localPort);
    // Paused from READ_HIGH_WATER_BYTES of queued bytes on: no more reads from the kernel, so
    // TCP flow control slows the peer down.
    const received = new ReceiveQueue(
      { stop: () => sock.pause(), restart: () => sock.resume() },
      "the TCP connection is closed",
    );
    this.#received = received;
    sock.on("data", (chunk: Uint8Array) => received.push(chunk));
    sock.on("end", () => received.end());
    sock.on("error", (e: Error) => received.fail(osError(e)));
    sock.on("close", () => received.end());
  }

  /**
   * Reads into `buffer`; resolves the byte count, or `null` at the end of the stream.
   *
   * @throws {BadResource} once closed; the connection's error (e.g. `ConnectionReset`) when it
   * failed.
   */
  read(buffer: Uint8Array): Promise<number | null> {
    return this.#received.read(buffer);
  }

  /** Takes up to `max` queued bytes with `headroom` in front (see `StreamConn.readChunk`). */
  readChunk(headroom: number, max: number): Promise<Uint8Array | null> {
    return this.#received.readChunk(headroom, max);
  }

  /**
   * Writes all of `data`; resolves `data.byteLength` once the socket's write callback ran. The
   * caller must not change `data` before then (it is not copied).
   *
   * @throws {BadResource} once closed; the connection's error (`BrokenPipe`, `ConnectionReset`,
   * ...) when it failed.
   */
  write(data: Uint8Array): Promise<number> {
    if (this.#closed) {
      return Promise.reject(new BadResource("the TCP connection is closed"));
    }
    if (this.#received.error !== undefined) return Promise.reject(this.#received.error);
    if (data.byteLength === 0) return Promise.resolve(0);
    return new Promise<number>((resolve, reject) => {
      const abandon = (e: Error): void => reject(e);
      this.#writes.add(abandon);
      try {
        this.#sock.write(data, (e?: Error | null) => {
          if (!this.#writes.delete(abandon)) return; // settled by close()
          if (e) reject(this.#received.error ?? osError(e));
          else resolve(data.byteLength);
        });
      } catch (e) {
        this.#writes.delete(abandon);
        reject(osError(e));
      }
    });
  }

  /**
   * Half-closes the write side (FIN after the pending writes);
   * resolves once written, or at once when the connection is already closed or failed. Never
   * rejects.
   */
  closeWrite(): Promise<void> {
    const sock = this.#sock;
    if (this.#closed || sock.destroyed || sock.writableFinished) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        sock.off("finish", done);
        sock.off("close", done);
        this.#writes.delete(done);
        resolve();
      };
      sock.once("finish", done);
      sock.once("close", done);
      this.#writes.add(done); // close() settles it too
      sock.end();
    });
  }

  /** Sets TCP_NODELAY (default on). */
  setNoDelay(on = true): void {
    if (!this.#closed) this.#sock.setNoDelay(on);
  }

  /**
   * Destroys the socket at once (no FIN handshake wait; call `closeWrite()` first for a clean
   * end). Pending reads and writes reject with `BadResource`. A second call does nothing.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sock.destroy(); // its "error" listener (constructor) stays: late errors are ignored
    this.#received.close();
    if (this.#writes.size > 0) {
      const closed = new BadResource("the TCP connection is closed");
      for (const settle of [...this.#writes]) settle(closed);
      this.#writes.clear();
    }
  }
}

/** A TCP {@linkcode NetAddr} from a Node socket's address fields (empty/0 when unknown). */
export function tcpAddr(address: string | undefined, port: number | undefined): NetAddr {
  return { transport: "tcp", hostname: address ?? "", port: port ?? 0 };
}
