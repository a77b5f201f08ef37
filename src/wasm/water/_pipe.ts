/**
 * An in-memory byte pipe: two connected {@linkcode StreamConn} ends, for an app that speaks to a
 * module instance without a socket (the browser dialer). Browser-safe.
 *
 * @module
 */
import type { StreamConn } from "../../transport/types.ts";

/** Bytes one end buffers for its reader before the other end's writes wait (default). */
export const PIPE_BUFFER_BYTES = 256 * 1024;

class PipeEnd implements StreamConn {
  peer!: PipeEnd;
  readonly #limit: number;
  readonly #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false; // no more bytes will arrive
  #closed = false; // this end was closed
  #readable: (() => void) | undefined;
  #drained: (() => void) | undefined;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** The peer wrote `data` (a copy). */
  push(data: Uint8Array): void {
    this.#chunks.push(data);
    this.#buffered += data.length;
    this.#readable?.();
  }

  /** The peer will write no more. */
  end(): void {
    this.#ended = true;
    this.#readable?.();
    this.#drained?.();
  }

  get full(): boolean {
    return this.#buffered >= this.#limit && !this.#closed;
  }

  waitDrained(): Promise<void> {
    return new Promise((resolve) => this.#drained = resolve);
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    for (;;) {
      if (this.#closed) throw Object.assign(new Error("pipe closed"), { name: "BadResource" });
      const head = this.#chunks[0];
      if (head) {
        const n = Math.min(buffer.length, head.length);
        buffer.set(head.subarray(0, n));
        if (n === head.length) this.#chunks.shift();
        else this.#chunks[0] = head.subarray(n);
        this.#buffered -= n;
        if (this.#buffered < this.#limit) this.#drained?.();
        return n;
      }
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#readable = resolve);
      this.#readable = undefined;
    }
  }

  async write(data: Uint8Array): Promise<number> {
    while (this.peer.full) {
      if (this.#closed) break;
      await this.peer.waitDrained();
    }
    if (this.#closed || this.peer.#closed || this.peer.#ended) {
      throw Object.assign(new Error("Broken pipe (os error 32)"), { name: "BrokenPipe" });
    }
    this.peer.push(data.slice());
    return data.length;
  }

  closeWrite(): Promise<void> {
    this.peer.end();
    return Promise.resolve();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ended = true;
    this.#chunks.length = 0;
    this.#readable?.();
    this.#drained?.();
    this.peer.end();
  }
}

/**
 * Two connected ends: what one writes, the other reads. `close()` ends both directions (the
 * other end reads end of stream, its writes fail); `closeWrite()` ends one. Each end buffers at
 * most `bufferBytes` before the writer waits.
 */
export function memoryPipe(bufferBytes = PIPE_BUFFER_BYTES): [StreamConn, StreamConn] {
  const a = new PipeEnd(bufferBytes);
  const b = new PipeEnd(bufferBytes);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
