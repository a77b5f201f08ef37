/**
 * A Node `Duplex` over a {@linkcode StreamConn}, so `node:tls` can run over a connection the
 * transport owns (and can close at any moment).
 *
 * @module
 */
import { Duplex } from "node:stream";
import type { StreamConn } from "./types.ts";
import { closeQuietly } from "./_close_quietly.ts";

/** First read size, in bytes. */
const FIRST_READ_BYTES = 16 * 1024;
/** Largest read size, in bytes: reads double while they come back full, up to this. */
const MAX_READ_BYTES = 256 * 1024;
/**
 * Reads of at most this many bytes are copied out of the read buffer, which is then reused; a
 * larger read hands its buffer to the stream as is (no copy) and the next read gets a fresh one.
 */
const COPY_AT_MOST = 4 * 1024;

/**
 * A Node `Duplex` (bytes, `allowHalfOpen`) over `conn`, which it owns from construction on:
 * - reading: one `conn.read()` at a time, started when the stream asks for data (Node's readable
 *   high-water mark) and not while {@linkcode ConnDuplex.hold} is in effect; `null` ends the
 *   readable side;
 * - writing: each chunk is written completely (`conn.write` until every byte is taken) before
 *   its write callback runs, so a slow peer slows the writer down;
 * - `end()`: after every write, `conn.closeWrite()` (TCP FIN) when the connection has one;
 * - `destroy()`: `conn.close()` at once (for a `Deno.TcpConn` this frees the socket, and a
 *   pending read or write rejects).
 */
export class ConnDuplex extends Duplex {
  readonly #conn: StreamConn;
  #reading = false;
  #wanted = false;
  #held = false;
  #spare: Uint8Array | undefined;
  #readBytes = FIRST_READ_BYTES;

  /** @param conn the connection, owned by the duplex from now on. */
  constructor(conn: StreamConn) {
    super({ allowHalfOpen: true });
    this.#conn = conn;
  }

  /**
   * Stops starting reads from the connection until {@linkcode ConnDuplex.release} (a read
   * already in flight completes). This is the read backpressure of a consumer above the duplex:
   * the peer's data then waits in the kernel, and TCP flow control slows the peer down.
   */
  hold(): void {
    this.#held = true;
  }

  /** Undoes {@linkcode ConnDuplex.hold}: reads start again when the stream wants data. */
  release(): void {
    if (!this.#held) return;
    this.#held = false;
    this.#pump();
  }

  override _read(): void {
    this.#wanted = true;
    this.#pump();
  }

  #pump(): void {
    if (!this.#wanted || this.#reading || this.#held || this.destroyed) return;
    this.#wanted = false;
    this.#reading = true;
    let buffer = this.#spare;
    this.#spare = undefined;
    if (buffer?.byteLength !== this.#readBytes) buffer = new Uint8Array(this.#readBytes);
    this.#conn.read(buffer).then(
      (n) => {
        this.#reading = false;
        if (n === null) {
          this.push(null);
          return;
        }
        // Adapt the read size: double after a full read, halve after a read under a quarter.
        const size = buffer.byteLength;
        if (n === size && size < MAX_READ_BYTES) {
          this.#readBytes = Math.min(MAX_READ_BYTES, 2 * size);
        } else if (n < size / 4 && size > FIRST_READ_BYTES) {
          this.#readBytes = Math.max(FIRST_READ_BYTES, size / 2);
        }
        if (n <= COPY_AT_MOST) {
          this.#spare = buffer;
          this.push(buffer.slice(0, n));
        } else {
          this.push(buffer.subarray(0, n)); // handed over: Node wraps it without copying
        }
      },
      (e: unknown) => {
        this.#reading = false;
        this.destroy(asError(e));
      },
    );
  }

  override _write(
    chunk: Uint8Array,
    _encoding: string,
    callback: (error?: Error | null) => void,
  ): void {
    this.#writeAll(chunk).then(() => callback(), (e: unknown) => callback(asError(e)));
  }

  async #writeAll(chunk: Uint8Array): Promise<void> {
    let off = 0;
    while (off < chunk.byteLength) off += await this.#conn.write(chunk.subarray(off));
  }

  override _final(callback: (error?: Error | null) => void): void {
    const conn = this.#conn;
    if (!conn.closeWrite) return callback();
    conn.closeWrite().then(() => callback(), (e: unknown) => callback(asError(e)));
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    closeQuietly(this.#conn);
    callback(error);
  }
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
