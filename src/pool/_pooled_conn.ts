/**
 * The connection a pool hands out: a never-used upstream connection plus whatever the peer sent
 * while it sat idle (a banner), and the read that was in flight when it was handed out.
 *
 * @module
 */
import type { StreamConn } from "../transport/mod.ts";

/** Outcome of one read, captured so a rejected read never becomes an unhandled rejection. */
export type ReadOutcome = { n: number | null } | { error: unknown };

/**
 * A pooled connection after hand-out. `read()` first yields the bytes buffered while idle, then
 * the result of the read that was already in flight (Deno refuses a second concurrent read on one
 * resource, so it is reused, not repeated), then reads the connection directly.
 */
export class PooledConn implements StreamConn {
  /** Target IP the connection was dialled to. */
  readonly ip: string;
  /** Target port. */
  readonly port: number;
  readonly #conn: StreamConn;
  readonly #chunks: Uint8Array[];
  #pending: Promise<ReadOutcome> | undefined;
  readonly #pendingBuffer: Uint8Array;

  /**
   * @param conn the raw connection (owned by this object from now on).
   * @param chunks bytes received while idle, in order (taken over, not copied).
   * @param pending the in-flight read into `pendingBuffer`, if any.
   */
  constructor(
    ip: string,
    port: number,
    conn: StreamConn,
    chunks: Uint8Array[],
    pending: Promise<ReadOutcome> | undefined,
    pendingBuffer: Uint8Array,
  ) {
    this.ip = ip;
    this.port = port;
    this.#conn = conn;
    this.#chunks = chunks;
    this.#pending = pending;
    this.#pendingBuffer = pendingBuffer;
  }

  /** True while the in-flight read from the idle period has not been consumed. */
  get readPending(): boolean {
    return this.#pending !== undefined;
  }

  /** Buffered banner bytes first, then the in-flight read, then the connection. */
  async read(buffer: Uint8Array): Promise<number | null> {
    if (buffer.byteLength === 0) return 0;
    if (this.#chunks.length > 0) return this.#take(buffer);
    const pending = this.#pending;
    if (pending !== undefined) {
      this.#pending = undefined;
      const outcome = await pending;
      if ("error" in outcome) throw outcome.error;
      if (outcome.n === null) return null;
      this.#chunks.push(this.#pendingBuffer.slice(0, outcome.n));
      return this.#take(buffer);
    }
    return await this.#conn.read(buffer);
  }

  #take(buffer: Uint8Array): number {
    const chunk = this.#chunks[0];
    if (chunk === undefined) return 0;
    const n = Math.min(chunk.byteLength, buffer.byteLength);
    buffer.set(chunk.subarray(0, n));
    if (n === chunk.byteLength) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(n);
    return n;
  }

  /** Writes to the connection (writes may run while a read is pending). */
  write(data: Uint8Array): Promise<number> {
    return this.#conn.write(data);
  }

  /** Half-closes the write side when the connection supports it. */
  async closeWrite(): Promise<void> {
    await this.#conn.closeWrite?.();
  }

  /** Closes the connection; the in-flight read (if any) settles and is ignored. */
  close(): void {
    this.#chunks.length = 0;
    this.#conn.close();
  }
}
