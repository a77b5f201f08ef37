/**
 * The connection a stream socket hands to the TLS layer at `start_tls`: its down pump may be
 * waiting in a read when the request comes, and that read's bytes (the peer's first handshake
 * bytes) belong to TLS, not to the client as plaintext `data`.
 *
 * @module
 */
import type { StreamConn } from "../transport/mod.ts";

/**
 * A {@linkcode StreamConn} over `conn` whose reads first return the outcome of a read that was
 * already in flight on `conn` (its bytes; a connection allows one read at a time, so the read is
 * taken over, not repeated), then read `conn` directly. Writes, `closeWrite` and `close`
 * go to `conn`; `close` closes it (the read in flight then settles and is ignored).
 */
export class HandoverConn implements StreamConn {
  readonly #conn: StreamConn;
  #pending: Promise<Uint8Array | null> | undefined;
  /** Bytes of the taken-over read not yet returned. */
  #rest: Uint8Array | undefined;

  /**
   * @param conn the connection (owned by this object from now on).
   * @param pending the read in flight on `conn`: the bytes it read, `null` at end of stream.
   */
  constructor(conn: StreamConn, pending: Promise<Uint8Array | null>) {
    this.#conn = conn;
    this.#pending = pending;
    // Never read when the connection is closed first: its rejection is then expected.
    pending.catch(() => {});
  }

  /**
   * The taken-over read's bytes first (as many as fit in `buffer` per call), then `conn`'s.
   *
   * @throws {Error} the taken-over read's error, then `conn`'s.
   */
  async read(buffer: Uint8Array): Promise<number | null> {
    if (this.#rest === undefined && this.#pending !== undefined) {
      const pending = this.#pending;
      this.#pending = undefined;
      const bytes = await pending;
      if (bytes === null) return null;
      this.#rest = bytes;
    }
    const rest = this.#rest;
    if (rest === undefined) return await this.#conn.read(buffer);
    const n = Math.min(rest.byteLength, buffer.byteLength);
    buffer.set(rest.subarray(0, n));
    this.#rest = n === rest.byteLength ? undefined : rest.subarray(n);
    return n;
  }

  /** Writes to `conn`. */
  write(data: Uint8Array): Promise<number> {
    return this.#conn.write(data);
  }

  /** Half-closes `conn`'s write side when it can. */
  async closeWrite(): Promise<void> {
    await this.#conn.closeWrite?.();
  }

  /** Closes `conn`. */
  close(): void {
    this.#rest = undefined;
    this.#conn.close();
  }
}
