/**
 * Log output that never blocks the event loop: a bounded buffer in front of one asynchronous write
 * at a time. When the reader of stdout (a pipe, a terminal, a log collector) stops draining it,
 * writes stay pending, the buffer fills up to its bound, and further lines are dropped and counted
 * ({@linkcode droppedLogLines}) instead of stalling the server. Runtime-neutral: the runtime
 * modules (`src/cli/_runtime_*.ts`) pass their own asynchronous write.
 *
 * @example
 * ```ts
 * import { BoundedWriter } from "./output.ts";
 * const seen: string[] = [];
 * const out = new BoundedWriter((bytes) => {
 *   seen.push(new TextDecoder().decode(bytes));
 *   return Promise.resolve(bytes.byteLength);
 * });
 * out.write("hello\n");
 * await out.flush(1000);
 * if (seen.join("") !== "hello\n") throw new Error("lost a line");
 * ```
 *
 * @module
 */

/** Default bound of the bytes a {@linkcode BoundedWriter} holds while the reader lags (1 MiB). */
export const DEFAULT_OUTPUT_BUFFER_BYTES = 1024 * 1024;

/** The most bytes handed to one write (64 KiB): lines are joined up to this size. */
const MAX_WRITE_BYTES = 64 * 1024;

let dropped = 0;

/**
 * Lines dropped by every {@linkcode BoundedWriter} of this process because their reader did not
 * drain them (buffer full) or the output was gone (e.g. a closed pipe). Never decreases.
 */
export function droppedLogLines(): number {
  return dropped;
}

/**
 * Writes `bytes` (some or all of them) and resolves the number written; may stay pending while
 * the reader does not drain. Rejects when the output is gone.
 */
export type AsyncWrite = (bytes: Uint8Array) => Promise<number>;

/** Options of {@linkcode BoundedWriter}. */
export interface BoundedWriterOptions {
  /**
   * Most bytes held while a write is pending (default {@linkcode DEFAULT_OUTPUT_BUFFER_BYTES});
   * a line that does not fit is dropped whole.
   */
  maxBufferedBytes?: number;
}

/**
 * A bounded, asynchronous line writer (see the module doc). `write` never blocks and never
 * throws: it queues the text, or drops it when the queue is at its bound or the output failed.
 * Lines leave in order, joined into writes of up to 64 KiB, one write in flight at a time.
 */
export class BoundedWriter {
  readonly #write: AsyncWrite;
  readonly #max: number;
  readonly #encoder = new TextEncoder();
  #queue: Uint8Array[] = [];
  #queued = 0;
  #pumping: Promise<void> | undefined;
  #failed = false;

  /**
   * @param write the runtime's asynchronous write (Deno: `Deno.stdout.write`; Bun:
   *   `process.stdout.write` with its callback).
   * @param options the buffer bound.
   * @throws {RangeError} when `maxBufferedBytes` is not a positive number.
   */
  constructor(write: AsyncWrite, options: BoundedWriterOptions = {}) {
    const max = options.maxBufferedBytes ?? DEFAULT_OUTPUT_BUFFER_BYTES;
    if (!(max > 0)) {
      throw new RangeError(`Cannot create BoundedWriter: maxBufferedBytes ${max} must be > 0`);
    }
    this.#write = write;
    this.#max = max;
  }

  /** Bytes queued and not yet written (including the write in flight). */
  get bufferedBytes(): number {
    return this.#queued;
  }

  /** Queues `text` (normally one or more whole lines); drops and counts it when it does not fit. */
  write(text: string): void {
    const bytes = this.#encoder.encode(text);
    if (this.#failed || this.#queued + bytes.byteLength > this.#max) {
      dropped += countLines(text);
      return;
    }
    this.#queue.push(bytes);
    this.#queued += bytes.byteLength;
    this.#startPump();
  }

  /**
   * Starts the pump unless one runs. A line queued after the pump's loop found the queue empty
   * but before its promise settled restarts it here (otherwise it would wait for the next line).
   */
  #startPump(): void {
    this.#pumping ??= this.#pump().finally(() => {
      this.#pumping = undefined;
      if (this.#queue.length > 0 && !this.#failed) this.#startPump();
    });
  }

  /**
   * Resolves true once everything queued has been written, or false after `timeoutMs` (a reader
   * that does not drain must not hold the process at exit).
   */
  async flush(timeoutMs: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<false>((resolve) =>
      timer = setTimeout(() => resolve(false), timeoutMs)
    );
    try {
      while (this.#pumping !== undefined) {
        const done = await Promise.race([this.#pumping.then(() => true), late]);
        if (!done) return false;
      }
      return true;
    } finally {
      clearTimeout(timer);
    }
  }

  async #pump(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#take();
      try {
        let off = 0;
        while (off < batch.byteLength) off += await this.#write(batch.subarray(off));
      } catch {
        // The output is gone (a closed pipe): what is queued and all later lines are dropped.
        this.#failed = true;
        dropped += countBytesLines(batch);
        for (const chunk of this.#queue) dropped += countBytesLines(chunk);
        this.#queue = [];
        this.#queued = 0;
        return;
      } finally {
        if (!this.#failed) this.#queued -= batch.byteLength;
      }
    }
  }

  /** Joins queued chunks into one write of up to 64 KiB (a larger single chunk goes alone). */
  #take(): Uint8Array {
    const first = this.#queue.shift() as Uint8Array;
    if (this.#queue.length === 0 || first.byteLength >= MAX_WRITE_BYTES) return first;
    const parts = [first];
    let size = first.byteLength;
    while (this.#queue.length > 0) {
      const next = this.#queue[0] as Uint8Array;
      if (size + next.byteLength > MAX_WRITE_BYTES) break;
      parts.push(next);
      size += next.byteLength;
      this.#queue.shift();
    }
    const out = new Uint8Array(size);
    let off = 0;
    for (const part of parts) {
      out.set(part, off);
      off += part.byteLength;
    }
    return out;
  }
}

/** Lines in `text`: its newlines, at least 1. */
function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) n++;
  return Math.max(1, n);
}

/** Lines in UTF-8 `bytes`: its newline bytes, at least 1. */
function countBytesLines(bytes: Uint8Array): number {
  let n = 0;
  for (const b of bytes) if (b === 0x0a) n++;
  return Math.max(1, n);
}
